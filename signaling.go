package smpcall

import (
	"context"
	"fmt"
)

// Transport is the boundary between the SDK and the SimpleX side: a running
// chat core (its WebSocket API), package smp's in-memory core, or an
// embedder's own SMP stack. Its methods are the chat core's call commands
// (protocol §8.2) and its events are the core's call events (§8.3), for one
// chat user. The core keeps at most one call per contact and enforces the
// protocol's call states (§4); a Transport reports the core's refusals as
// *ChatError.
//
// Concurrency: all methods may be called concurrently from any goroutine and
// may block until the command is done or ctx ends. Events are delivered in
// the order the core produced them on the channel returned by Events, which
// must never be closed before Close is called or the transport fails for
// good; it is read by one goroutine (the Client's). A Transport must not
// block its own progress on that channel being read promptly for more than a
// bounded queue, and must never call back into the Client.
type Transport interface {
	// Invite sends an invitation (x.call.inv) to the contact ("/_call invite").
	// It replaces any current call with that contact.
	Invite(ctx context.Context, contactID int64, callType CallType) error
	// Offer accepts a received invitation with an SDP offer ("/_call offer").
	Offer(ctx context.Context, contactID int64, offer WebRTCCallOffer) error
	// Answer answers a received offer ("/_call answer").
	Answer(ctx context.Context, contactID int64, answer WebRTCSession) error
	// Extra sends more ICE candidates ("/_call extra").
	Extra(ctx context.Context, contactID int64, extra WebRTCExtraInfo) error
	// End hangs up or cancels, telling the peer ("/_call end").
	End(ctx context.Context, contactID int64) error
	// Reject declines a received invitation locally; nothing is sent to the
	// caller (protocol §4.4) ("/_call reject").
	Reject(ctx context.Context, contactID int64) error
	// Status reports the WebRTC connection state; only the call item changes
	// ("/_call status").
	Status(ctx context.Context, contactID int64, status WebRTCCallStatus) error
	// Invitations lists the pending received invitations ("/_call get").
	Invitations(ctx context.Context) ([]RcvCallInvitation, error)
	// Events returns the channel of events; the same channel on every call.
	Events() <-chan Event
	// Close stops the transport and closes the events channel. It may be
	// called more than once.
	Close() error
}

// Event is one asynchronous event from a Transport (the chat core's event
// vocabulary, protocol §8.3) or from a Client (which adds its own). Use a
// type switch; unknown types may be added in later versions.
type Event interface {
	// ContactID returns the contact the event is about, or 0.
	ContactID() int64
	event()
}

// CallInvitationEvent: an invitation was received (callInvitation).
type CallInvitationEvent struct {
	// Invitation is the received invitation, as the core reports it.
	Invitation RcvCallInvitation
}

// CallOfferEvent: the invited contact accepted with an SDP offer (callOffer).
// It arrives at the caller, which is the WebRTC answerer.
type CallOfferEvent struct {
	// User is the chat core's user the event is for.
	User User
	// Contact is the peer of the call.
	Contact Contact
	// CallType is the peer's (the callee's) call type.
	CallType CallType
	// Offer is the callee's SDP offer with its first ICE candidates.
	Offer WebRTCSession
	// SharedKey is the media key; nil when either side did not offer a key.
	SharedKey *SharedKey
	// AskConfirmation is true when this side asked for encryption but the
	// peer's offer does not have it: the call would not be frame-encrypted
	// (protocol §5.1).
	AskConfirmation bool
}

// CallAnswerEvent: the caller answered our offer (callAnswer).
type CallAnswerEvent struct {
	// User is the chat core's user the event is for.
	User User
	// Contact is the peer of the call.
	Contact Contact
	// Answer is the caller's SDP answer with its first ICE candidates.
	Answer WebRTCSession
}

// CallExtraInfoEvent: the peer sent more ICE candidates (callExtraInfo).
type CallExtraInfoEvent struct {
	// User is the chat core's user the event is for.
	User User
	// Contact is the peer of the call.
	Contact Contact
	// ExtraInfo holds the peer's further ICE candidates.
	ExtraInfo WebRTCExtraInfo
}

// CallEndedEvent: the peer ended the call (callEnded).
type CallEndedEvent struct {
	// User is the chat core's user the event is for.
	User User
	// Contact is the peer of the call.
	Contact Contact
}

// MessageErrorEvent: the core ignored a received message (messageError),
// e.g. "x.call.answer: wrong call state CSTCallNegotiated" (protocol §4.3).
// Contact is set when the transport knows which contact it is about (the
// real core's messageError does not say; package smp's Core does, and its
// ChatClient for a call event of the core that it cannot decode). While a
// placed high-level call waits for the contact's offer, such an error that
// is not about a stale message ends it with ReasonProtocolError.
type MessageErrorEvent struct {
	// User is the chat core's user the event is for.
	User User
	// Contact is the contact the message came from, or nil when the
	// transport does not know it (see above).
	Contact *Contact
	// Severity is the core's severity word; the call errors seen say "error".
	Severity string
	// ErrorMessage is the core's text saying what was wrong with the message.
	ErrorMessage string
}

// CallItemEvent: a call's chat item was created (New) or its status changed
// (newChatItems / chatItemUpdated for call items, protocol §9).
type CallItemEvent struct {
	// User is the chat core's user the event is for.
	User User
	// Contact is the peer of the call.
	Contact Contact
	// New is true for a new item (newChatItems), false for a status change
	// (chatItemUpdated).
	New bool
	// Item is the call's chat item as it is now.
	Item CallItem
}

// CallItem is the chat item of one call (protocol §9).
type CallItem struct {
	// ItemID is the core's ID of the chat item.
	ItemID int64
	// Sent is true on the caller's side (sndCall), false on the callee's (rcvCall).
	Sent bool
	// Status is the call's status as the item shows it.
	Status CICallStatus
	// Duration in whole seconds, as the core records it.
	Duration int
	// Text is the core's item text, e.g. "outgoing call: ended (00:05)".
	Text string
}

// ItemText returns the core's text for a call item (CIContent.hs ciCallInfoText).
func ItemText(sent bool, status CICallStatus, duration int) string {
	prefix := "incoming call: "
	if sent {
		prefix = "outgoing call: "
	}
	mmss := fmt.Sprintf("%02d:%02d", duration/60, duration%60)
	var s string
	switch status {
	case CIStatusPending:
		s = "calling..."
	case CIStatusNegotiated:
		s = "connecting..."
	case CIStatusProgress:
		s = "in progress (" + mmss + ")"
	case CIStatusEnded:
		s = "ended (" + mmss + ")"
	default:
		s = string(status)
	}
	return prefix + s
}

// TransportErrorEvent: the transport lost its connection (Err says why).
//
// Temporary is true when the transport is reconnecting by itself (package
// smp's ChatClient does, with backoff): commands fail until a
// TransportRestoredEvent follows, but calls whose media is already flowing
// do not depend on the signaling connection and keep going. When Temporary
// is false the transport is gone for good and the Client ends every call.
type TransportErrorEvent struct {
	// Err says why the connection was lost.
	Err error
	// Temporary is true while the transport reconnects by itself.
	Temporary bool
}

// TransportRestoredEvent: a transport that reported a temporary loss
// (TransportErrorEvent with Temporary set) is connected again.
type TransportRestoredEvent struct{}

// ContactID implements Event.
func (e *CallInvitationEvent) ContactID() int64 { return e.Invitation.Contact.ContactID }

// ContactID implements Event.
func (e *CallOfferEvent) ContactID() int64 { return e.Contact.ContactID }

// ContactID implements Event.
func (e *CallAnswerEvent) ContactID() int64 { return e.Contact.ContactID }

// ContactID implements Event.
func (e *CallExtraInfoEvent) ContactID() int64 { return e.Contact.ContactID }

// ContactID implements Event.
func (e *CallEndedEvent) ContactID() int64 { return e.Contact.ContactID }

// ContactID implements Event.
func (e *CallItemEvent) ContactID() int64 { return e.Contact.ContactID }

// ContactID implements Event.
func (e *TransportErrorEvent) ContactID() int64 { return 0 }

// ContactID implements Event.
func (*TransportRestoredEvent) ContactID() int64 { return 0 }

// ContactID implements Event.
func (e *MessageErrorEvent) ContactID() int64 {
	if e.Contact == nil {
		return 0
	}
	return e.Contact.ContactID
}

func (*CallInvitationEvent) event()    {}
func (*CallOfferEvent) event()         {}
func (*CallAnswerEvent) event()        {}
func (*CallExtraInfoEvent) event()     {}
func (*CallEndedEvent) event()         {}
func (*MessageErrorEvent) event()      {}
func (*CallItemEvent) event()          {}
func (*TransportErrorEvent) event()    {}
func (*TransportRestoredEvent) event() {}
