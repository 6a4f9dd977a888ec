package smpcall

import (
	"context"
	"math/rand/v2"
	"time"
)

// Crossing invitations: both parties invite each other at the same moment.
// Each core replaces its own sent invitation with the one it receives
// (protocol §4.5), so neither invitation is live at both ends, and an offer
// for either is ignored ("wrong contact or callId"): the call is stuck
// unless one side invites again. The rule here, applied by the side whose
// high-level Call (PlaceCall) sees an invitation from the same contact
// while its own is still unanswered:
//
//   - One side re-invites at once: the one whose own display name sorts
//     before the contact's (both sides compute the same order).
//   - The other waits up to crossingWait for that new invitation and
//     accepts it, its PlaceCall's Call becoming the callee. If none comes
//     (the peer is a SimpleX app, which does not know this rule, or the
//     names were equal), it re-invites itself.
//   - A side that has re-invited and then sees another invitation accepts
//     it: the other side gave up waiting and re-invited too.
//   - Equal names: each side waits a random time below crossingWait and
//     re-invites unless the other's new invitation came first.
//
// Re-inviting is what always works with a SimpleX app on the other side:
// the app's core takes the new invitation and rings; accepting it connects.
// The superseded invitations are never announced as ringing.
var crossingWait = 10 * time.Second

type crossRole uint8

const (
	crossReinvite crossRole = iota // re-invite at once
	crossAccept                    // wait for the peer's new invitation
	crossTie                       // equal names: random wait
)

// crossState is an entry's crossing resolution in progress. Guarded by Client.mu.
type crossState struct {
	role      crossRole
	reinvited bool
	timer     *time.Timer
}

// crossingRole orders the two display names the same way on both sides.
func crossingRole(user User, contact Contact) crossRole {
	own := user.Profile.DisplayName
	if own == "" {
		own = user.LocalDisplayName
	}
	peer := contact.Profile.DisplayName
	if peer == "" {
		peer = contact.LocalDisplayName
	}
	switch {
	case own == "" || peer == "" || own == peer:
		return crossTie
	case own < peer:
		return crossReinvite
	}
	return crossAccept
}

// crossed handles an invitation from the contact of e, whose placed call
// is still unanswered. Caller holds c.mu.
func (c *Client) crossed(e *callEntry, inv *RcvCallInvitation) {
	cs := e.cross
	if cs == nil {
		cs = &crossState{role: crossingRole(inv.User, inv.Contact)}
		e.cross = cs
	}
	c.log.Info("smpcall: crossing invitations", "contact", e.contact.ContactID, "role", cs.role, "reinvited", cs.reinvited)
	if cs.timer != nil {
		// We were waiting for exactly this.
		cs.timer.Stop()
		cs.timer = nil
		c.acceptCrossing(e, inv)
		return
	}
	switch {
	case cs.role == crossReinvite && !cs.reinvited:
		c.reinvite(e)
	case cs.role != crossTie && cs.reinvited:
		c.acceptCrossing(e, inv)
	case cs.role == crossAccept:
		c.waitCrossing(e, crossingWait)
	default: // a tie, the first time or again
		c.waitCrossing(e, time.Duration(rand.Int64N(int64(crossingWait))))
	}
}

// waitCrossing re-invites after d unless the peer's new invitation comes
// first. Caller holds c.mu.
func (c *Client) waitCrossing(e *callEntry, d time.Duration) {
	e.cross.timer = time.AfterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.entries[e.contact.ContactID] != e || e.state != StateInvitationSent || e.cross == nil || e.cross.timer == nil {
			return
		}
		e.cross.timer = nil
		c.reinvite(e)
	})
}

// reinvite sends the placed call's invitation again; the core takes it as
// a new call (protocol §4.2) and the peer's core replaces the crossed one
// with it. Caller holds c.mu.
func (c *Client) reinvite(e *callEntry) {
	e.cross.reinvited = true
	id := e.contact.ContactID
	callType := DefaultCallType
	if e.localType != nil {
		callType = *e.localType
	}
	t := c.ticket(id)
	k := e.call
	if !c.spawnLocked(func() {
		ctx, cancel := c.signalingContext()
		defer cancel()
		err := c.onLine(ctx, id, t, func(ctx context.Context) error { return c.t.Invite(ctx, id, callType) })
		if err != nil && k != nil {
			k.stop(ReasonTransportLost, err)
		}
	}) {
		c.skipTicketLocked(id, t)
	}
}

// acceptCrossing makes e's placed call the callee of inv: the Call offers
// as if AcceptCall had been called. Caller holds c.mu.
func (c *Client) acceptCrossing(e *callEntry, inv *RcvCallInvitation) {
	e.cross = nil
	k := e.call
	c.fillInvitation(e, inv)
	c.setState(e, StateInvitationReceived, ReasonNone, nil)
	c.setState(e, StateInvitationAccepted, ReasonNone, nil)
	var key *SharedKey
	if e.sharedKey != nil {
		kc := *e.sharedKey
		key = &kc
	}
	k.post(becomeCallee{media: inv.CallType.Media, key: key})
}

// becomeCallee tells a placed Call to answer the peer's invitation instead.
type becomeCallee struct {
	media CallMediaType
	key   *SharedKey
}

// onBecomeCallee switches a placed call that has no peer connection yet to
// the callee's role and makes the offer.
func (c *Call) onBecomeCallee(m becomeCallee) {
	if c.loop.pc != nil {
		c.terminate(ReasonInternalError, errCrossingTooLate)
		return
	}
	c.incoming.Store(true)
	c.mediaType.Store(&m.media)
	c.key = m.key
	if err := c.startOffer(); err != nil {
		c.fail(err)
	}
}
