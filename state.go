package smpcall

import "fmt"

// CallState is the app-level state of a call with one contact (protocol
// §4.6), as the SimpleX apps keep it. It is the Client's view; the core's
// own states are CallStateTag.
//
//	outgoing: InvitationSent → OfferReceived → Negotiated → Connected → Ended
//	incoming: InvitationReceived → InvitationAccepted → OfferSent → AnswerReceived → Connected → Ended
type CallState int

// App-level call states.
const (
	// StateNone: no call with the contact.
	StateNone CallState = iota
	// StateInvitationSent: we invited the contact and wait for its offer.
	StateInvitationSent
	// StateOfferReceived: the contact accepted with an offer; we must answer.
	StateOfferReceived
	// StateNegotiated: we answered; WebRTC is connecting.
	StateNegotiated
	// StateInvitationReceived: the contact invites us (ringing if fresh).
	StateInvitationReceived
	// StateInvitationAccepted: we accepted and prepare the offer.
	StateInvitationAccepted
	// StateOfferSent: we sent our offer and wait for the answer.
	StateOfferSent
	// StateAnswerReceived: the caller answered; WebRTC is connecting.
	StateAnswerReceived
	// StateConnected: media flows.
	StateConnected
	// StateEnded: the call is over; it is forgotten right after this state is announced.
	StateEnded
	// StateReconnecting: an established high-level call lost its connection
	// and is recovering it (Call.State and the Call's CallStateEvents only;
	// the Client and the core still see the call as connected, protocol §6.8).
	StateReconnecting
)

var stateNames = [...]string{
	StateNone: "none", StateInvitationSent: "invitationSent", StateOfferReceived: "offerReceived",
	StateNegotiated: "negotiated", StateInvitationReceived: "invitationReceived",
	StateInvitationAccepted: "invitationAccepted", StateOfferSent: "offerSent",
	StateAnswerReceived: "answerReceived", StateConnected: "connected", StateEnded: "ended",
	StateReconnecting: "reconnecting",
}

// String returns the state's name as the apps use it, e.g. "invitationSent".
func (s CallState) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("CallState(%d)", int(s))
}

// Active reports whether s is a state of a call in progress (not none, not ended).
func (s CallState) Active() bool { return s != StateNone && s != StateEnded }

// Outgoing reports whether s belongs to the caller's side of the machine.
func (s CallState) Outgoing() bool {
	return s == StateInvitationSent || s == StateOfferReceived || s == StateNegotiated
}

// Incoming reports whether s belongs to the callee's side of the machine.
func (s CallState) Incoming() bool {
	return s == StateInvitationReceived || s == StateInvitationAccepted || s == StateOfferSent || s == StateAnswerReceived
}

// callOp is something that moves a call: a local command or a received event.
type callOp int

const (
	opInvite callOp = iota
	opAccept
	opOffer
	opAnswer
	opExtra
	opEnd
	opReject
	opStatusConnected
	opStatusOther
	opRecvInvitation
	opRecvOffer
	opRecvAnswer
	opRecvExtra
	opRecvEnded
)

var opNames = [...]string{
	opInvite: "send invitation", opAccept: "accept", opOffer: "send offer", opAnswer: "send answer",
	opExtra: "send extra info", opEnd: "end call", opReject: "reject", opStatusConnected: "report connected",
	opStatusOther: "report status", opRecvInvitation: "receive invitation", opRecvOffer: "receive offer",
	opRecvAnswer: "receive answer", opRecvExtra: "receive extra info", opRecvEnded: "receive end",
}

func (o callOp) String() string { return opNames[o] }

// next is the whole app-level state machine: the state after op in state s,
// or ok=false if op is not allowed there. The allowed sets follow the core's
// command rules (protocol §4.2) so that the Client refuses locally what the
// core would refuse, and the apps' state sequence (§4.6).
func next(s CallState, op callOp) (CallState, bool) {
	switch op {
	case opInvite:
		// The core would replace a current call; the Client does not do that
		// silently: end the current call first.
		return StateInvitationSent, !s.Active()
	case opAccept:
		return StateInvitationAccepted, s == StateInvitationReceived
	case opOffer:
		return StateOfferSent, s == StateInvitationReceived || s == StateInvitationAccepted
	case opAnswer:
		return StateNegotiated, s == StateOfferReceived
	case opExtra:
		// The core allows extras in CallOfferSent and CallNegotiated only;
		// the caller cannot send candidates before its answer (§4.2).
		return s, s == StateOfferSent || s == StateAnswerReceived || s == StateNegotiated || s == StateConnected
	case opEnd:
		return StateEnded, s.Active()
	case opReject:
		return StateEnded, s == StateInvitationReceived || s == StateInvitationAccepted
	case opStatusConnected:
		switch s {
		case StateNegotiated, StateAnswerReceived, StateConnected:
			return StateConnected, true
		}
		return s, s.Active()
	case opStatusOther:
		return s, s.Active()
	case opRecvInvitation:
		// A new invitation replaces whatever call there was (§4.3).
		return StateInvitationReceived, true
	case opRecvOffer:
		return StateOfferReceived, s == StateInvitationSent
	case opRecvAnswer:
		return StateAnswerReceived, s == StateOfferSent
	case opRecvExtra:
		return s, s == StateOfferReceived || s == StateNegotiated || s == StateAnswerReceived || s == StateConnected
	case opRecvEnded:
		return StateEnded, s.Active()
	}
	return s, false
}
