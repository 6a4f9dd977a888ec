package smpcall

// This file holds the events the SDK itself produces. The transport's
// events (the chat core's vocabulary) are in signaling.go.
//
// Where events go:
//
//   - Client.Events carries what belongs to no Call: invitations
//     (CallInvitationEvent, RingingEvent), the transport's events for
//     contacts without a high-level Call, the transport's own state, and
//     the CallStateEvent and CallRecordEvent of calls driven through the
//     low-level API (SendInvitation, SendOffer, …).
//   - Call.Events carries everything about one high-level call: its
//     CallStateEvent, CallConnectedEvent, ConnectionEvent, PeerMediaEvent,
//     DecryptFailingEvent, MediaErrorEvent and finally its CallRecordEvent.
//
// Both channels are bounded (Config.EventBuffer): when the embedder does
// not read, the oldest events are dropped and counted.

// CallStateEvent says that a call's app-level state changed. Reason is set
// when To is StateEnded, and Err with it when the end was a failure.
type CallStateEvent struct {
	// Contact is the peer of the call.
	Contact Contact
	// From and To are the states before and after the change.
	From, To CallState
	// Reason says why the call ended; it is set only when To is StateEnded.
	Reason EndReason
	// Err is the failure that ended the call, or nil.
	Err error
}

// RingingEvent is emitted by a Client for an incoming invitation that is
// fresh (within Config.RingWindow): the embedder should ring. The same
// invitation is handed to Client.NextInvitation.
type RingingEvent struct {
	// Invitation is the incoming invitation that should ring.
	Invitation RcvCallInvitation
}

// CallConnectedEvent: a call's WebRTC connection is up and media flows.
type CallConnectedEvent struct {
	// Contact is the peer of the call.
	Contact Contact
	// Info describes the connection's path (the selected candidate pair).
	Info ConnectionInfo
	// Encrypted is true when frames are end-to-end encrypted with the shared key.
	Encrypted bool
}

// DecryptFailingEvent: frames of one stream keep failing to decrypt (wrong
// key, or a peer that does not encrypt); they are dropped and counted.
type DecryptFailingEvent struct {
	// Contact is the peer of the call.
	Contact Contact
	// Source is the peer's stream whose frames fail to decrypt.
	Source CallMediaSource
	// Failed is the number of consecutive failures so far.
	Failed int
}

// MediaErrorEvent: a Source or Sink returned an error; that stream stopped.
type MediaErrorEvent struct {
	// Contact is the peer of the call.
	Contact Contact
	// Source is the stream that stopped.
	Source CallMediaSource
	// Sending is true when this side's Source failed, false when the Sink
	// of a received stream did.
	Sending bool
	// Err is the error the Source or Sink returned.
	Err error
}

// PeerMediaEvent: the peer's source went silent for Config.PeerMediaTimeout
// (Enabled false: the SimpleX apps read that as "muted" or "camera off",
// protocol §6.4) or sends frames again (Enabled true; also sent for a
// source's first frame).
type PeerMediaEvent struct {
	// Contact is the peer of the call.
	Contact Contact
	// Source is the peer's stream that went silent or came back.
	Source CallMediaSource
	// Enabled is true when frames arrive again, false when they stopped.
	Enabled bool
}

// CallRecordEvent: a call ended; its record. It is the last event of a
// Call's stream.
type CallRecordEvent struct {
	// Record is the ended call's record.
	Record CallRecord
}

// ContactID implements Event.
func (e *CallStateEvent) ContactID() int64 { return e.Contact.ContactID }

// ContactID implements Event.
func (e *RingingEvent) ContactID() int64 { return e.Invitation.Contact.ContactID }

// ContactID implements Event.
func (e *CallConnectedEvent) ContactID() int64 { return e.Contact.ContactID }

// ContactID implements Event.
func (e *DecryptFailingEvent) ContactID() int64 { return e.Contact.ContactID }

// ContactID implements Event.
func (e *MediaErrorEvent) ContactID() int64 { return e.Contact.ContactID }

// ContactID implements Event.
func (e *PeerMediaEvent) ContactID() int64 { return e.Contact.ContactID }

// ContactID implements Event.
func (e *CallRecordEvent) ContactID() int64 { return e.Record.Contact.ContactID }

func (*CallStateEvent) event()      {}
func (*RingingEvent) event()        {}
func (*CallConnectedEvent) event()  {}
func (*DecryptFailingEvent) event() {}
func (*MediaErrorEvent) event()     {}
func (*PeerMediaEvent) event()      {}
func (*CallRecordEvent) event()     {}
