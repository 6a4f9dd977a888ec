package smpcall

import "github.com/pion/webrtc/v4"

// Hooks for the fault, hostile-peer and security tests of package
// smpcall_test (campaign_test.go, hostile_test.go, security_test.go).

// LegalTransition reports whether a CallStateEvent from → to can be
// announced by the SDK: a transition of the state machine (next, protocol
// §4.2, §4.3, §4.6), the end of any call in progress (timers, the
// transport, Close), a received invitation replacing or creating an entry,
// the crossing rule turning a placed call into the callee (crossing.go),
// a local command undone because its I/O failed,
// and a high-level call's reconnection (StateReconnecting, protocol §6.8).
func LegalTransition(from, to CallState) bool {
	if from == to || from < StateNone || from > StateReconnecting || to < StateNone || to > StateReconnecting {
		return false
	}
	for op := opInvite; op <= opRecvEnded; op++ {
		if got, ok := next(from, op); ok && got == to {
			return true
		}
		// A local command whose I/O failed is undone (Client.carryOut
		// puts the old state back and announces it).
		if local := op <= opStatusOther && op != opEnd && op != opReject; local {
			if got, ok := next(to, op); ok && got == from {
				return true
			}
		}
	}
	switch {
	case to == StateEnded:
		return from.Active() // every timer, Close, the transport, the final event of a Call
	case from == StateInvitationReceived && to == StateInvitationAccepted:
		return true // AcceptCall and acceptCrossing
	case from == StateConnected && to == StateReconnecting, from == StateReconnecting && to == StateConnected:
		return true // a Call's own reconnection
	}
	return false
}

// CallKeyWiped reports whether the media key copies that the Call and its
// Client entry keep are gone or all zero (the key material this SDK can
// wipe; crypto/aes keeps its own round keys, which Go cannot overwrite).
// It reads the Call's fields without its loop: call it only after Done.
func CallKeyWiped(k *Call) bool {
	return keyWiped(k.key)
}

// EntryKeyWiped reports whether the Client holds no media key for the
// contact, or only an all-zero one.
func EntryKeyWiped(c *Client, contactID int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[contactID]
	return e == nil || keyWiped(e.sharedKey)
}

// EntryKeyRef returns the Client's own copy of the contact's media key (nil
// if there is none), so that a test can check that this very memory is
// zeroed when the call ends.
func EntryKeyRef(c *Client, contactID int64) *SharedKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[contactID]; e != nil {
		return e.sharedKey
	}
	return nil
}

// CallKeyRef returns the Call's own copy of its media key (incoming calls
// keep one from the invitation; nil otherwise). Read it only while the
// call's loop does not change it: before the call is started, or after Done.
func CallKeyRef(k *Call) *SharedKey { return k.key }

func keyWiped(k *SharedKey) bool {
	return k == nil || *k == (SharedKey{})
}

// RemoteCandidates counts the peer's ICE candidates that pion holds for
// the call (its remote-candidate statistics), 0 before the peer connection.
func RemoteCandidates(k *Call) int {
	sess := k.session.Load()
	if sess == nil {
		return 0
	}
	n := 0
	for _, s := range sess.pc.GetStats() {
		if c, ok := s.(webrtc.ICECandidateStats); ok && c.Type == webrtc.StatsTypeRemoteCandidate {
			n++
		}
	}
	return n
}

// MaxRemoteCandidates is the bound on the peer's candidates held by pion
// per ICE generation.
const MaxRemoteCandidates = maxRemoteCandidates
