package smpcall

import (
	"context"
	"fmt"
)

// This file is the Client's side of the high-level path: it starts Calls
// and is their signaler (callLink). A Call talks to the Client only
// through callLink; the Client talks to a Call only through deliver,
// stateChanged and stop.

// PlaceCall invites the contact and drives the call to connected: it sends
// the invitation (this side will be the WebRTC answerer), answers the
// contact's offer with frame encryption when both sides have the key, and
// runs ICE. It returns once the invitation is sent; use the Call's Events,
// WaitConnected, Done and End. The call rings until the contact accepts,
// someone ends it, or Config.RingTimeout passes (ReasonMissed).
//
// Calling a contact who is calling us answers that call: if the contact's
// invitation is ringing, PlaceCall accepts it (as AcceptCall does, with
// the invitation's media); if the two invitations cross on the way, the
// Clients resolve it so that exactly one call proceeds (crossing.go, and
// protocol §4.5 for why the core alone gets stuck). Either way the
// returned Call may turn out to be incoming (Call.Incoming).
//
// Errors: ErrClosed, ErrInvalidState (a call with the contact is in
// progress), an invalid media type, or the transport's error.
func (c *Client) PlaceCall(ctx context.Context, contactID int64, opts *CallOptions) (*Call, error) {
	media := MediaVideo
	if opts != nil && opts.Media != "" {
		media = opts.Media
	}
	if !media.Valid() {
		return nil, fmt.Errorf("smpcall: place call: invalid media %q", media)
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if e := c.entries[contactID]; e != nil && e.state == StateInvitationReceived && e.call == nil {
		c.mu.Unlock()
		return c.AcceptCall(ctx, contactID, opts)
	}
	if st := c.stateOf(contactID); st.Active() {
		c.mu.Unlock()
		return nil, &StateError{Op: "place call", ContactID: contactID, State: st}
	}
	// The entry, its Call and the transition exist before the invitation
	// goes out (in one critical section, so that an invitation from the
	// contact that arrives meanwhile is seen as crossing ours): the
	// contact's offer may arrive before the transport returns.
	e := c.newEntry(c.contactOrID(contactID))
	k := newCall(&callLink{c: c, e: e}, &c.cfg, e.contact, false, media, nil, opts)
	e.call = k
	callType := CallType{Media: media, Capabilities: CallCapabilities{Encryption: true}}
	d, err := c.decide(e, contactID, opInvite, ReasonNone, func(e *callEntry) {
		e.incoming = false
		e.localType = &callType
	})
	c.mu.Unlock()
	if err == nil {
		err = c.carryOut(ctx, d, func(ctx context.Context) error { return c.t.Invite(ctx, contactID, callType) })
	}
	if err == nil {
		err = c.start(k)
	}
	if err != nil {
		c.mu.Lock()
		if e.call == k {
			e.call = nil
		}
		if c.entries[contactID] == e && !e.state.Active() {
			delete(c.entries, contactID)
		}
		c.mu.Unlock()
		return nil, err
	}
	return k, nil
}

// AcceptCall accepts the contact's ringing invitation and drives the call
// to connected: this side creates the SDP offer (four m-lines, protocol
// §6.4), encrypting frames with the shared key from the invitation. If the
// invitation has no key and Config.AllowUnencrypted is false, the call ends
// at once with ReasonUnencrypted and WaitConnected returns ErrUnencrypted.
// Errors: ErrClosed, ErrNoCall, ErrInvalidState.
func (c *Client) AcceptCall(ctx context.Context, contactID int64, opts *CallOptions) (*Call, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	e := c.entries[contactID]
	if e == nil || !e.state.Active() {
		c.mu.Unlock()
		return nil, fmt.Errorf("smpcall: accept call with contact %d: %w", contactID, ErrNoCall)
	}
	if e.state != StateInvitationReceived || e.call != nil {
		st := e.state
		c.mu.Unlock()
		return nil, &StateError{Op: "accept call", ContactID: contactID, State: st}
	}
	var key *SharedKey
	if e.sharedKey != nil {
		kc := *e.sharedKey
		key = &kc
	}
	k := newCall(&callLink{c: c, e: e}, &c.cfg, e.contact, true, e.peerType.Media, key, opts)
	e.call = k
	c.setState(e, StateInvitationAccepted, ReasonNone, nil)
	c.mu.Unlock()
	if err := c.start(k); err != nil {
		c.mu.Lock()
		if e.call == k {
			e.call = nil
		}
		c.mu.Unlock()
		return nil, err
	}
	return k, nil
}

// start runs k's loop and outbox unless Close has finished waiting for them.
func (c *Client) start(k *Call) error {
	k.out = newOutbox(k.sig, c.life, c.cfg.SignalingTimeout, func(r sigResult) { k.post(r) }, k.log)
	if !c.spawn(k.out.run) {
		return ErrClosed
	}
	if !c.spawn(k.run) {
		k.out.finish(nil)
		return ErrClosed
	}
	return nil
}

// callLink is a Call's signaler: the chat core's commands for that one
// call, each refused with ErrNoCall once the call is no longer the
// contact's current one (a newer invitation replaced it).
type callLink struct {
	c *Client
	e *callEntry
}

func (l *callLink) id() int64 { return l.e.contact.ContactID }

func (l *callLink) offer(ctx context.Context, offer WebRTCCallOffer) error {
	return l.c.command(ctx, l.e, l.id(), opOffer, ReasonNone, offerPrepare(offer), l.c.sendOffer(l.id(), offer))
}

func (l *callLink) answer(ctx context.Context, answer WebRTCSession) error {
	return l.c.command(ctx, l.e, l.id(), opAnswer, ReasonNone, nil, l.c.sendAnswer(l.id(), answer))
}

func (l *callLink) extra(ctx context.Context, extra WebRTCExtraInfo) error {
	return l.c.command(ctx, l.e, l.id(), opExtra, ReasonNone, nil, l.c.sendExtra(l.id(), extra))
}

func (l *callLink) status(ctx context.Context, status WebRTCCallStatus) error {
	return l.c.command(ctx, l.e, l.id(), statusOp(status), ReasonNone, nil, l.c.sendStatus(l.id(), status))
}

func (l *callLink) ended(reason EndReason, err error) (bool, ticket) {
	return l.c.endEntry(l.e, reason, err)
}

func (l *callLink) tellEnd(ctx context.Context, t ticket) error { return l.c.tellEnd(ctx, l.id(), t) }

func (l *callLink) state() CallState {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	if l.c.entries[l.id()] != l.e {
		return StateEnded
	}
	return l.e.state
}

func (l *callLink) afterCall(f func()) {
	c := l.c
	c.mu.Lock()
	if !c.closed {
		c.pcCloses.Add(1)
		c.mu.Unlock()
		go func() {
			defer c.pcCloses.Done()
			f()
		}()
		return
	}
	c.mu.Unlock()
	// Close has stopped waiting (a call that outlived its CloseTimeout):
	// wait here, with the same bound, so that pion's goroutines do not
	// outlive the call unnoticed.
	if !runBounded(f, pcCloseBound) {
		c.log.Error("smpcall: pion did not close the peer connection in time; its goroutines are left behind")
	}
}

func (l *callLink) detach() {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	l.e.call = nil
}
