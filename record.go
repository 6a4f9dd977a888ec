package smpcall

import "time"

// CallRecord is the history entry of a finished call, in SimpleX's
// vocabulary (protocol §9): what the apps show as "outgoing call: ended
// (01:23)", "incoming call: missed", and so on.
type CallRecord struct {
	Contact Contact
	// Incoming is true when the peer invited us (rcvCall), false for our
	// own invitation (sndCall).
	Incoming bool
	Media    CallMediaType
	// Status is missed, rejected, ended or error.
	Status CICallStatus
	// Duration is the time the call was connected (0 if it never was).
	Duration time.Duration
	// Reason says why the call ended; Err is the error behind it, if any.
	Reason EndReason
	Err    error
	// Encrypted is true when media frames were end-to-end encrypted.
	Encrypted bool
	// StartedAt is when the call was placed or accepted; ConnectedAt is
	// zero if it never connected.
	StartedAt, ConnectedAt, EndedAt time.Time
}

// Text returns the core's item text for the record, e.g.
// "outgoing call: ended (00:05)".
func (r CallRecord) Text() string {
	return ItemText(!r.Incoming, r.Status, int(r.Duration/time.Second))
}

// CallRecordEvent: a call of the high-level path ended; its record.
type CallRecordEvent struct {
	Record CallRecord
}

func (e *CallRecordEvent) ContactID() int64 { return e.Record.Contact.ContactID }
func (*CallRecordEvent) event()             {}

// recordStatus maps how a call ended to the status SimpleX would show: a
// call that connected "ended"; one we declined "rejected"; one that failed
// "error"; any other that never connected "missed" (as the core's pending
// + disconnected rule, protocol §9).
func recordStatus(connected bool, reason EndReason) CICallStatus {
	switch {
	case connected:
		return CIStatusEnded
	case reason == ReasonRejected:
		return CIStatusRejected
	case reason == ReasonConnectTimeout || reason == ReasonConnectionFailed || reason == ReasonError ||
		reason == ReasonUnencrypted || reason == ReasonTransport:
		return CIStatusError
	}
	return CIStatusMissed
}

// Record returns the call's record once it has ended (ok false before).
func (k *Call) Record() (CallRecord, bool) {
	r := k.record.Load()
	if r == nil {
		return CallRecord{}, false
	}
	return *r, true
}

// makeRecord builds and publishes the record; it runs once, in finish.
func (k *Call) makeRecord() {
	k.mu.Lock()
	r := CallRecord{Contact: k.contact, Incoming: k.incoming, Media: k.media, Reason: k.reason, Err: k.err,
		Encrypted: k.encrypted, StartedAt: k.startedAt, ConnectedAt: k.connAt, EndedAt: k.c.cfg.Now()}
	k.mu.Unlock()
	if !r.ConnectedAt.IsZero() {
		r.Duration = r.EndedAt.Sub(r.ConnectedAt)
	}
	r.Status = recordStatus(!r.ConnectedAt.IsZero(), r.Reason)
	k.record.Store(&r)
	k.c.out.Push(&CallRecordEvent{Record: r})
}
