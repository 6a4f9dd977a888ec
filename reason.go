package smpcall

import "fmt"

// EndReason says why a call ended. Switch on the constants; String gives a
// stable lower_snake_case form for logs and metrics (it never changes for a
// constant, and MarshalText uses it).
type EndReason uint8

// End reasons. Where a reason reads differently on the two sides it says so.
const (
	// ReasonNone: the call has not ended.
	ReasonNone EndReason = iota
	// ReasonLocalHangup: this side ended the call (Call.End, Client.EndCall).
	ReasonLocalHangup
	// ReasonRemoteHangup: the peer ended a call that it had accepted or
	// that we had accepted (x.call.end).
	ReasonRemoteHangup
	// ReasonDeclined: on the callee's side, this side rejected the
	// invitation; on the caller's side, the callee ended the invitation
	// without accepting it (the protocol does not say why, protocol §4.4).
	ReasonDeclined
	// ReasonMissed: nobody answered: the caller's ring timeout passed, the
	// caller gave up before we accepted, or the invitation grew too old to
	// ring (Config.RingTimeout, Config.RingWindow).
	ReasonMissed
	// ReasonBusy: this side declined the invitation because it was in
	// another call (Config.Busy).
	ReasonBusy
	// ReasonConnectionFailed: WebRTC could not connect, or the connection
	// failed for good.
	ReasonConnectionFailed
	// ReasonConnectionTimeout: the call did not connect within Config.ConnectTimeout.
	ReasonConnectionTimeout
	// ReasonReconnectGaveUp: an established connection dropped and did not
	// come back within the reconnection budget.
	ReasonReconnectGaveUp
	// ReasonTransportLost: the signaling transport (the chat core
	// connection) failed while the call still needed it.
	ReasonTransportLost
	// ReasonProtocolError: the peer or the core sent something this side
	// cannot use (an SDP that does not apply, a bad key, an offer without
	// VP8 under encryption, protocol §10.3).
	ReasonProtocolError
	// ReasonClientClosed: the Client was closed.
	ReasonClientClosed
	// ReasonReplaced: the peer invited again, which replaces the call
	// (protocol §4.3, §4.5).
	ReasonReplaced
	// ReasonUnencrypted: the call would not be frame-encrypted and
	// Config.AllowUnencrypted is false (protocol §5.1).
	ReasonUnencrypted
	// ReasonInternalError: this side failed (e.g. pion could not create the
	// peer connection); the error says what.
	ReasonInternalError
)

var reasonNames = [...]string{
	ReasonNone: "none", ReasonLocalHangup: "local_hangup", ReasonRemoteHangup: "remote_hangup",
	ReasonDeclined: "declined", ReasonMissed: "missed", ReasonBusy: "busy",
	ReasonConnectionFailed: "connection_failed", ReasonConnectionTimeout: "connection_timeout",
	ReasonReconnectGaveUp: "reconnect_gave_up", ReasonTransportLost: "transport_lost",
	ReasonProtocolError: "protocol_error", ReasonClientClosed: "client_closed",
	ReasonReplaced: "replaced", ReasonUnencrypted: "unencrypted", ReasonInternalError: "internal_error",
}

// String returns the stable name, e.g. "remote_hangup".
func (r EndReason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("EndReason(%d)", int(r))
}

// MarshalText writes the stable name.
func (r EndReason) MarshalText() ([]byte, error) {
	if int(r) >= len(reasonNames) {
		return nil, fmt.Errorf("unknown end reason %d", int(r))
	}
	return []byte(reasonNames[r]), nil
}

// UnmarshalText reads a stable name.
func (r *EndReason) UnmarshalText(b []byte) error {
	for i, n := range reasonNames {
		if n == string(b) {
			*r = EndReason(i)
			return nil
		}
	}
	return fmt.Errorf("unknown end reason %q", b)
}

// Failure reports whether the reason is a failure rather than a decision
// of one of the parties.
func (r EndReason) Failure() bool {
	switch r {
	case ReasonConnectionFailed, ReasonConnectionTimeout, ReasonReconnectGaveUp, ReasonTransportLost,
		ReasonProtocolError, ReasonUnencrypted, ReasonInternalError:
		return true
	}
	return false
}
