package smpcall

import "time"

// CallRecord is the history entry of a finished call, in SimpleX's
// vocabulary (protocol §9): what the apps show as "outgoing call: ended
// (01:23)", "incoming call: missed", and so on.
type CallRecord struct {
	// Contact is the peer of the call.
	Contact Contact
	// Incoming is true when the peer invited us (rcvCall), false for our
	// own invitation (sndCall).
	Incoming bool
	// Media is the call's media: audio or video.
	Media CallMediaType
	// Status is missed, rejected, ended or error.
	Status CICallStatus
	// Duration is the time the call was connected (0 if it never was).
	Duration time.Duration
	// Reason says why the call ended; Err is the error behind it, if any.
	Reason EndReason
	// Err is the error behind Reason, or nil when the call ended normally.
	Err error
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

// recordStatus maps how a call ended to the status SimpleX shows for it
// (protocol §9): a call that connected "ended"; one this side declined
// "rejected"; one that failed "error"; one that ended before it was
// accepted "missed" (the core's pending + disconnected rule) and one that
// ended after it was accepted but before it connected "ended" (0 s).
func recordStatus(connected, accepted, incoming bool, reason EndReason) CICallStatus {
	switch {
	case connected:
		return CIStatusEnded
	case incoming && (reason == ReasonDeclined || reason == ReasonBusy):
		return CIStatusRejected
	case reason.Failure():
		return CIStatusError
	case accepted:
		return CIStatusEnded
	}
	return CIStatusMissed
}

// Record returns the call's record once it has ended (ok false before).
func (c *Call) Record() (CallRecord, bool) {
	r := c.record.Load()
	if r == nil {
		return CallRecord{}, false
	}
	return *r, true
}

// makeRecord builds and publishes the record; it runs once, in finish.
func (c *Call) makeRecord() CallRecord {
	snap := c.snap.Load()
	incoming := c.Incoming()
	r := CallRecord{Contact: c.contact, Incoming: incoming, Media: c.Media(), Reason: snap.reason, Err: snap.err,
		Encrypted: snap.encrypted, StartedAt: c.startedAt, ConnectedAt: snap.connectedAt, EndedAt: time.Now()}
	if !r.ConnectedAt.IsZero() {
		r.Duration = r.EndedAt.Sub(r.ConnectedAt)
	}
	accepted := incoming || c.loop.pc != nil
	r.Status = recordStatus(!r.ConnectedAt.IsZero(), accepted, incoming, r.Reason)
	c.record.Store(&r)
	return r
}
