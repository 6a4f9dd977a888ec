package smpcall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smpcall/smpcall/internal/queue"
)

// Client places and answers SimpleX calls over a Transport. It keeps the
// app-level state of each contact's call (protocol §4.6), refuses commands
// that the state does not allow, and drives the high-level calls
// (PlaceCall, AcceptCall), each of which is a *Call with its own events.
//
// Concurrency: all methods are safe for concurrent use. Transport commands
// for one contact are sent in the order they were decided (a finished
// call's x.call.end goes before the next call's invitation); commands for
// different contacts run in parallel. One goroutine reads the transport's
// events and never waits for the embedder: events go to bounded channels
// (Config.EventBuffer). The Client owns the Transport: Close closes it.
type Client struct {
	t   Transport
	cfg Config
	log *slog.Logger

	// life is cancelled when Close gives up waiting (CloseTimeout): every
	// signaling command of a call runs under it.
	life     context.Context
	lifeStop context.CancelFunc

	mu       sync.Mutex
	entries  map[int64]*callEntry
	contacts knownContacts // bounded: remote input fills it
	// waiting counts the entries in StateInvitationReceived (setState
	// keeps it); at maxWaitingInvitations a new one is refused.
	waiting int
	// refused counts invitations ignored because maxWaitingInvitations
	// were already waiting (DroppedEvents reports them).
	refused       atomic.Uint64
	lines         map[int64]*line
	closing       bool // Close has begun: new work is refused
	closed        bool // the transport is closed
	transportDown bool // a temporary transport outage is in progress

	// active counts the goroutines Close waits for (call loops, outboxes,
	// background commands); idle is closed whenever it is zero.
	active int
	idle   chan struct{}
	// pcCloses are the goroutines closing finished calls' peer
	// connections (callLink.afterCall); Close waits for them last, with
	// its own bound (pcCloseBound), since pion can take seconds.
	pcCloses sync.WaitGroup

	events  *queue.Out[Event]
	invites *queue.Out[RcvCallInvitation]

	stopRead chan struct{}
	readDone chan struct{}
	stopOnce sync.Once
}

// callEntry is the Client's record of the call with one contact. It is
// guarded by Client.mu.
type callEntry struct {
	contact  Contact
	incoming bool
	state    CallState
	// gen changes on every state change, so that a command can tell whether
	// an event moved the call while the command was on the wire.
	gen int

	// local and peer call types, and the media key, as far as known.
	localType, peerType *CallType
	sharedKey           *SharedKey
	askConfirmation     bool
	// accepted: an offer was sent or received (for the record's status, protocol §9).
	accepted bool

	startedAt, connectedAt time.Time
	// call is the high-level Call driving this entry, if any.
	call *Call
	// timer is the ring timeout (outgoing) or the invitation's lifetime (incoming).
	timer *time.Timer
	// cross is set while crossing invitations are being resolved (crossing.go).
	cross *crossState
}

// NewClient starts a Client over t. cfg may be nil for defaults; a Config
// with an impossible value is refused with an error that names the field.
func NewClient(t Transport, cfg *Config) (*Client, error) {
	if t == nil {
		return nil, errors.New("smpcall: NewClient: nil transport")
	}
	rc, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	c := &Client{
		t:        t,
		cfg:      rc,
		log:      rc.Logger,
		entries:  make(map[int64]*callEntry),
		lines:    make(map[int64]*line),
		events:   queue.NewOut[Event](rc.EventBuffer),
		invites:  queue.NewOut[RcvCallInvitation](rc.EventBuffer),
		idle:     make(chan struct{}),
		stopRead: make(chan struct{}),
		readDone: make(chan struct{}),
	}
	close(c.idle)
	c.life, c.lifeStop = context.WithCancel(context.Background())
	go func() {
		defer close(c.readDone)
		c.readLoop()
	}()
	return c, nil
}

// Events returns the Client's event channel: invitations (CallInvitationEvent,
// RingingEvent), the transport's events for contacts without a high-level
// Call, the transport's own state, and the CallStateEvent and
// CallRecordEvent of calls driven through the low-level API. Events of a
// high-level call go to that Call (Call.Events). The channel is bounded by
// Config.EventBuffer (the oldest events are dropped when nobody reads) and
// closed by Close.
func (c *Client) Events() <-chan Event { return c.events.C() }

// DroppedEvents returns how many events the Client dropped because the
// embedder did not read Events (or NextInvitation) in time, and the
// invitations it ignored because 1,024 were already waiting to be
// answered (each is logged, and stays pending in the chat core: see
// PendingInvitations). A Call's own dropped events are in its
// CallStats.DroppedEvents.
func (c *Client) DroppedEvents() uint64 {
	return c.events.Dropped() + c.invites.Dropped() + c.refused.Load()
}

// NextInvitation waits for the next incoming invitation that rings (the
// same ones RingingEvent announces) and returns it; answer it with
// AcceptCall or Reject. Up to Config.EventBuffer invitations wait for it;
// beyond that the oldest are dropped (they stay pending in the core, see
// PendingInvitations). Errors: ctx's error, or ErrClosed after Close.
func (c *Client) NextInvitation(ctx context.Context) (RcvCallInvitation, error) {
	select {
	case inv, ok := <-c.invites.C():
		if !ok {
			return RcvCallInvitation{}, ErrClosed
		}
		return inv, nil
	case <-ctx.Done():
		return RcvCallInvitation{}, ctx.Err()
	}
}

// CallState returns the app-level state of the call with the contact
// (StateNone if there is none).
func (c *Client) CallState(contactID int64) CallState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stateOf(contactID)
}

// CallInfo is a snapshot of a call as the Client knows it.
type CallInfo struct {
	// Contact is the peer of the call, as the chat core names it.
	Contact Contact
	// Incoming is true when the contact invited us, false when we invited
	// the contact.
	Incoming bool
	// State is the call's app-level state.
	State CallState
	// LocalType and PeerType are the call types as far as known.
	LocalType, PeerType *CallType
	// SharedKey is the media key once known (callee: from the invitation;
	// caller: from the offer). Nil when the call is not frame-encrypted.
	SharedKey *SharedKey
	// AskConfirmation is set for a caller whose peer answered without encryption.
	AskConfirmation bool
}

// CallInfo returns a snapshot of the call with the contact, if there is one.
func (c *Client) CallInfo(contactID int64) (CallInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[contactID]
	if e == nil {
		return CallInfo{}, false
	}
	info := CallInfo{
		Contact: e.contact, Incoming: e.incoming, State: e.state,
		LocalType: e.localType, PeerType: e.peerType, AskConfirmation: e.askConfirmation,
	}
	if e.sharedKey != nil {
		kc := *e.sharedKey
		info.SharedKey = &kc
	}
	return info, true
}

// --- the low-level API: the chat core's commands --------------------------

// SendInvitation invites the contact to a call (x.call.inv). It is allowed
// only when there is no call in progress with the contact. Errors:
// ErrClosed, ErrInvalidState (*StateError), or the transport's error
// (a *ChatError from a core).
func (c *Client) SendInvitation(ctx context.Context, contactID int64, callType CallType) error {
	if !callType.Media.Valid() {
		return fmt.Errorf("smpcall: send invitation: invalid media %q", callType.Media)
	}
	return c.userCommand(ctx, contactID, opInvite, func(e *callEntry) {
		e.incoming = false
		ct := callType
		e.localType = &ct
	}, func(ctx context.Context) error { return c.t.Invite(ctx, contactID, callType) })
}

// SendOffer accepts the contact's invitation with an SDP offer
// (x.call.offer). offer.CallType is this side's own call type. Errors:
// ErrClosed, ErrNoCall, ErrInvalidState, or the transport's error.
func (c *Client) SendOffer(ctx context.Context, contactID int64, offer WebRTCCallOffer) error {
	if !offer.CallType.Media.Valid() {
		return fmt.Errorf("smpcall: send offer: invalid media %q", offer.CallType.Media)
	}
	return c.userCommand(ctx, contactID, opOffer, offerPrepare(offer), c.sendOffer(contactID, offer))
}

func offerPrepare(offer WebRTCCallOffer) func(*callEntry) {
	return func(e *callEntry) {
		ct := offer.CallType
		e.localType = &ct
		e.accepted = true
	}
}

func (c *Client) sendOffer(contactID int64, offer WebRTCCallOffer) func(context.Context) error {
	return func(ctx context.Context) error { return c.t.Offer(ctx, contactID, offer) }
}

// SendAnswer answers the contact's offer (x.call.answer). Errors: ErrClosed,
// ErrNoCall, ErrInvalidState, or the transport's error.
func (c *Client) SendAnswer(ctx context.Context, contactID int64, answer WebRTCSession) error {
	return c.userCommand(ctx, contactID, opAnswer, nil, c.sendAnswer(contactID, answer))
}

func (c *Client) sendAnswer(contactID int64, answer WebRTCSession) func(context.Context) error {
	return func(ctx context.Context) error { return c.t.Answer(ctx, contactID, answer) }
}

// SendExtraInfo sends more ICE candidates (x.call.extra). Allowed after this
// side's offer or answer. Errors: ErrClosed, ErrNoCall, ErrInvalidState, or
// the transport's error.
func (c *Client) SendExtraInfo(ctx context.Context, contactID int64, extra WebRTCExtraInfo) error {
	return c.userCommand(ctx, contactID, opExtra, nil, c.sendExtra(contactID, extra))
}

func (c *Client) sendExtra(contactID int64, extra WebRTCExtraInfo) func(context.Context) error {
	return func(ctx context.Context) error { return c.t.Extra(ctx, contactID, extra) }
}

// SendCallStatus reports the WebRTC connection status to the core (no
// message is sent to the peer). "connected" moves a negotiated call to
// StateConnected. Errors: ErrClosed, ErrNoCall, ErrInvalidState, an invalid
// status, or the transport's error.
func (c *Client) SendCallStatus(ctx context.Context, contactID int64, status WebRTCCallStatus) error {
	if !status.Valid() {
		return fmt.Errorf("smpcall: report status: invalid status %q", status)
	}
	return c.userCommand(ctx, contactID, statusOp(status), nil, c.sendStatus(contactID, status))
}

func statusOp(status WebRTCCallStatus) callOp {
	if status == StatusConnected {
		return opStatusConnected
	}
	return opStatusOther
}

func (c *Client) sendStatus(contactID int64, status WebRTCCallStatus) func(context.Context) error {
	return func(ctx context.Context) error { return c.t.Status(ctx, contactID, status) }
}

// EndCall hangs up or cancels the call with the contact (x.call.end). An
// unanswered incoming invitation can be ended too; the caller then sees the
// call end (both items become "missed", protocol §4.4). A high-level Call
// with the contact ends too (ReasonLocalHangup). Errors: ErrClosed,
// ErrNoCall, or the transport's error (the call is ended locally anyway).
func (c *Client) EndCall(ctx context.Context, contactID int64) error {
	return c.userCommand(ctx, contactID, opEnd, nil, func(ctx context.Context) error { return c.t.End(ctx, contactID) })
}

// Reject declines an incoming invitation. As in the SimpleX apps nothing is
// sent: the caller keeps ringing until it ends the call (protocol §4.4).
// Errors: ErrClosed, ErrNoCall, ErrInvalidState, or the transport's error.
func (c *Client) Reject(ctx context.Context, contactID int64) error {
	return c.userCommand(ctx, contactID, opReject, nil, func(ctx context.Context) error { return c.t.Reject(ctx, contactID) })
}

// PendingInvitations returns the pending incoming invitations from the
// transport ("/_call get"), including those too old to ring, and makes
// each one known to the Client so that it can be answered or rejected (for
// example after a restart). Errors: ErrClosed or the transport's error.
func (c *Client) PendingInvitations(ctx context.Context) ([]RcvCallInvitation, error) {
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if closing {
		return nil, ErrClosed
	}
	invs, err := c.t.Invitations(ctx)
	if err != nil {
		return nil, fmt.Errorf("smpcall: pending invitations: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range invs {
		inv := invs[i]
		id := inv.Contact.ContactID
		c.contacts.put(inv.Contact)
		if e := c.entries[id]; (e == nil || !e.state.Active()) && c.roomForInvitation(id) {
			e = c.newEntry(inv.Contact)
			c.fillInvitation(e, &inv)
			c.setState(e, StateInvitationReceived, ReasonNone, nil)
		}
	}
	return invs, nil
}

// Close ends every call in progress (sending x.call.end, bounded by
// Config.CloseTimeout; pending incoming invitations are left to the core),
// closes the transport, stops the Client's goroutines and closes the event
// channels. It may be called more than once; later calls return nil.
func (c *Client) Close() error {
	var err error
	c.stopOnce.Do(func() { err = c.close() })
	return err
}

func (c *Client) close() error {
	c.mu.Lock()
	c.closing = true
	var toEnd []*callEntry
	var calls []*Call
	for _, e := range c.entries {
		switch {
		case e.call != nil:
			calls = append(calls, e.call)
		case e.state.Active() && e.state != StateInvitationReceived:
			toEnd = append(toEnd, e)
		}
	}
	c.mu.Unlock()

	for _, k := range calls {
		k.stop(ReasonClientClosed, nil)
	}
	for _, e := range toEnd {
		c.endInBackground(e, ReasonClientClosed)
	}
	if !c.waitIdle(c.cfg.CloseTimeout) {
		// Interrupt their signaling; a transport that honours contexts
		// returns at once. One that does not is closed below, which must
		// end its commands.
		c.log.Warn("smpcall: close: calls did not end in time; giving up on their signaling")
		c.lifeStop()
		if !c.waitIdle(c.cfg.CloseTimeout) {
			c.log.Error("smpcall: close: the transport ignores cancelled commands; closing it under them")
		}
	}
	c.lifeStop()

	c.mu.Lock()
	for _, e := range c.entries {
		if e.state.Active() {
			c.setState(e, StateEnded, ReasonClientClosed, nil)
		}
	}
	c.closed = true
	c.mu.Unlock()
	c.waitPeerConnections()

	err := c.t.Close()
	close(c.stopRead)
	<-c.readDone
	c.events.Close()
	c.invites.Close()
	return err
}

// spawn runs f in a goroutine that Close waits for, unless Close has
// already finished waiting.
func (c *Client) spawn(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.spawnLocked(f)
}

// spawnLocked is spawn for a caller that holds c.mu.
func (c *Client) spawnLocked(f func()) bool {
	if c.closed {
		return false
	}
	if c.active == 0 {
		c.idle = make(chan struct{})
	}
	c.active++
	go func() {
		defer func() {
			c.mu.Lock()
			c.active--
			if c.active == 0 {
				close(c.idle)
			}
			c.mu.Unlock()
		}()
		f()
	}()
	return true
}

// pcCloseBound bounds how long Close waits for pion to close the peer
// connections of calls that have ended. pion v4.2.26 blocks a close while
// its ICE agent's loop sits in a TURN CreatePermission transaction (about
// 7.8 s each; one was seen to stall a close for longer than 10 s in the
// fault campaign, RELIABILITY.md). Past the bound, pion's goroutines are
// left behind, with an error in the log.
const pcCloseBound = 30 * time.Second

// waitPeerConnections waits for the peer connections' closes; c.closed
// is set, so no new one is added (callLink.afterCall).
func (c *Client) waitPeerConnections() {
	if !runBounded(c.pcCloses.Wait, pcCloseBound) {
		c.log.Error("smpcall: close: pion did not close the calls' peer connections in time; its goroutines are left behind")
	}
}

// runBounded runs f in a goroutine and waits up to d for it to return; it
// reports whether it did. Past d, f goes on running on its own.
func runBounded(f func(), d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// waitIdle waits until no spawned goroutine runs, or for bound (0: no
// bound); it reports whether they all finished.
func (c *Client) waitIdle(bound time.Duration) bool {
	var deadline <-chan time.Time // nil: no bound
	if bound > 0 {
		t := time.NewTimer(bound)
		defer t.Stop()
		deadline = t.C
	}
	for {
		c.mu.Lock()
		idle := c.idle
		c.mu.Unlock()
		select {
		case <-idle:
			c.mu.Lock()
			done := c.active == 0
			c.mu.Unlock()
			if done {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// --- commands -------------------------------------------------------------

// userCommand runs a command of the public API for the contact's current call.
func (c *Client) userCommand(ctx context.Context, contactID int64, op callOp, prepare func(*callEntry), send func(context.Context) error) error {
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if closing {
		return ErrClosed
	}
	reason := ReasonNone
	switch op {
	case opEnd:
		reason = ReasonLocalHangup
		if c.CallState(contactID) == StateInvitationReceived {
			reason = ReasonDeclined // ending an invitation declines it (and tells the caller)
		}
	case opReject:
		reason = ReasonDeclined
	}
	return c.command(ctx, nil, contactID, op, reason, prepare, send)
}

// command runs one command: it checks and applies the transition first (so
// that the peer's reply, which may arrive before the transport returns,
// finds the new state), waits for its turn on the contact's line, runs send,
// and puts the old state back if send fails and nothing else moved the call
// meanwhile. expect, if set, is the call the command must act on: it fails
// with ErrNoCall once that call is no longer the contact's current one.
func (c *Client) command(ctx context.Context, expect *callEntry, contactID int64, op callOp, reason EndReason, prepare func(*callEntry), send func(context.Context) error) error {
	c.mu.Lock()
	d, err := c.decide(expect, contactID, op, reason, prepare)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.carryOut(ctx, d, send)
}

// decision is a command whose transition is applied and whose place on the
// contact's line is taken; carryOut does its I/O.
type decision struct {
	e        *callEntry
	op       callOp
	from, to CallState
	saved    entryState
	gen      int
	t        ticket
}

// decide checks and applies a command's transition and takes its ticket.
// Caller holds c.mu.
func (c *Client) decide(expect *callEntry, contactID int64, op callOp, reason EndReason, prepare func(*callEntry)) (decision, error) {
	if c.closed {
		return decision{}, ErrClosed
	}
	e := c.entries[contactID]
	if expect != nil && e != expect {
		return decision{}, fmt.Errorf("smpcall: %s with contact %d: %w", op, contactID, ErrNoCall)
	}
	if e == nil {
		if op != opInvite {
			return decision{}, fmt.Errorf("smpcall: %s with contact %d: %w", op, contactID, ErrNoCall)
		}
		e = c.newEntry(c.contactOrID(contactID))
	}
	from := e.state
	to, ok := next(from, op)
	if !ok {
		if from == StateNone || from == StateEnded {
			return decision{}, fmt.Errorf("smpcall: %s with contact %d: %w", op, contactID, ErrNoCall)
		}
		return decision{}, &StateError{Op: op.String(), ContactID: contactID, State: from}
	}
	d := decision{e: e, op: op, from: from, to: to, saved: e.snapshot()}
	if prepare != nil {
		prepare(e)
	}
	c.setState(e, to, reason, nil)
	d.gen = e.gen
	d.t = c.ticket(contactID)
	return d, nil
}

// carryOut runs a decided command's I/O in its turn, and puts the old state
// back if it fails and nothing else moved the call meanwhile.
func (c *Client) carryOut(ctx context.Context, d decision, send func(context.Context) error) error {
	id := d.e.contact.ContactID
	err := c.onLine(ctx, id, d.t, send)
	if err == nil {
		return nil
	}
	// A status report changes no state in the core (protocol §4.2): the
	// app-level state follows the WebRTC connection, so a report the core
	// did not take is not undone (undoing it left a connected call in
	// negotiated for good; TestStatusReportThatFailsKeepsTheCallConnected).
	if d.to != StateEnded && d.op != opStatusConnected && d.op != opStatusOther {
		c.mu.Lock()
		if c.entries[id] == d.e && d.e.gen == d.gen {
			d.e.restore(d.saved)
			c.setState(d.e, d.from, ReasonNone, nil)
		}
		c.mu.Unlock()
	}
	return fmt.Errorf("smpcall: %s with contact %d: %w", d.op, id, c.transportErr(err))
}

// transportErr marks errors that happened while the transport was down.
func (c *Client) transportErr(err error) error {
	c.mu.Lock()
	down := c.transportDown
	c.mu.Unlock()
	if down && !errors.Is(err, ErrTransportDown) {
		return fmt.Errorf("%w: %w", ErrTransportDown, err)
	}
	return err
}

// endEntry ends e at once (no I/O) with the reason and returns the ticket
// for the x.call.end that the peer must get, if any.
func (c *Client) endEntry(e *callEntry, reason EndReason, err error) (tellPeer bool, t ticket) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[e.contact.ContactID] != e || !e.state.Active() {
		return false, 0
	}
	c.setState(e, StateEnded, reason, err)
	return true, c.ticket(e.contact.ContactID)
}

// tellEnd sends x.call.end on the contact's line at ticket t.
func (c *Client) tellEnd(ctx context.Context, contactID int64, t ticket) error {
	return c.onLine(ctx, contactID, t, func(ctx context.Context) error { return c.t.End(ctx, contactID) })
}

// endInBackground ends a call of the low-level path and tells the peer,
// without making the caller wait (timers, Close, busy).
func (c *Client) endInBackground(e *callEntry, reason EndReason) {
	tell, t := c.endEntry(e, reason, nil)
	if !tell {
		return
	}
	id := e.contact.ContactID
	if !c.spawn(func() {
		ctx, cancel := c.signalingContext()
		defer cancel()
		if err := c.tellEnd(ctx, id, t); err != nil {
			c.log.Info("smpcall: sending end", "contact", id, "err", err)
		}
	}) {
		c.skipTicket(id, t)
	}
}

// signalingContext bounds one background command.
func (c *Client) signalingContext() (context.Context, context.CancelFunc) {
	if c.cfg.SignalingTimeout > 0 {
		return context.WithTimeout(c.life, c.cfg.SignalingTimeout)
	}
	return context.WithCancel(c.life)
}

// entryState is the part of a callEntry that a failed command puts back.
type entryState struct {
	incoming, accepted  bool
	localType, peerType *CallType
}

func (e *callEntry) snapshot() entryState {
	return entryState{incoming: e.incoming, accepted: e.accepted, localType: e.localType, peerType: e.peerType}
}

func (e *callEntry) restore(s entryState) {
	e.incoming, e.accepted, e.localType, e.peerType = s.incoming, s.accepted, s.localType, s.peerType
}

// stateOf returns the state of the contact's current call. Caller holds c.mu.
func (c *Client) stateOf(contactID int64) CallState {
	if e := c.entries[contactID]; e != nil {
		return e.state
	}
	return StateNone
}

func (c *Client) contactOrID(id int64) Contact {
	if ct, ok := c.contacts.get(id); ok {
		return ct
	}
	return Contact{ContactID: id}
}

// newEntry creates and registers an entry in StateNone. Caller holds c.mu.
func (c *Client) newEntry(contact Contact) *callEntry {
	e := &callEntry{contact: contact}
	c.entries[contact.ContactID] = e
	return e
}

// setState changes e's state and announces it: to e's Call if it has one,
// else on the Client's events. An ended call is forgotten at once, so the
// contact's next call can start while this one still closes its peer
// connection. Caller holds c.mu; nothing here blocks or calls out.
func (c *Client) setState(e *callEntry, to CallState, reason EndReason, err error) {
	from := e.state
	e.state = to
	e.gen++
	if from == to {
		return
	}
	if from == StateInvitationReceived {
		c.waiting--
	}
	if to == StateInvitationReceived {
		c.waiting++
	}
	c.log.Debug("smpcall: call state", "contact", e.contact.ContactID, "from", from, "to", to, "reason", reason)
	now := time.Now()
	if from == StateNone {
		e.startedAt = now
	}
	if to == StateConnected && e.connectedAt.IsZero() {
		e.connectedAt = now
	}
	c.armTimer(e, from, to)
	ev := &CallStateEvent{Contact: e.contact, From: from, To: to, Reason: reason, Err: err}
	if e.call != nil {
		e.call.stateChanged(ev)
	} else {
		c.events.Push(ev)
		if to == StateEnded && from != StateNone {
			c.events.Push(&CallRecordEvent{Record: e.record(reason, err, now)})
		}
	}
	if to == StateEnded {
		e.wipeKey()
		if c.entries[e.contact.ContactID] == e {
			delete(c.entries, e.contact.ContactID)
		}
	}
}

// armTimer starts the timer a state has and stops the one it had: the ring
// timeout of a placed call (Config.RingTimeout) and the lifetime of a
// received invitation (Config.RingWindow, counted from its callTs).
func (c *Client) armTimer(e *callEntry, from, to CallState) {
	if e.timer != nil && from != to {
		e.timer.Stop()
		e.timer = nil
	}
	if e.cross != nil && to != StateInvitationSent {
		if e.cross.timer != nil {
			e.cross.timer.Stop()
		}
		e.cross = nil
	}
	switch {
	case to == StateInvitationSent && c.cfg.RingTimeout > 0:
		e.timer = time.AfterFunc(c.cfg.RingTimeout, func() { c.ringTimeout(e) })
	}
}

// ringTimeout ends a placed call that nobody answered, telling the peer.
func (c *Client) ringTimeout(e *callEntry) {
	c.mu.Lock()
	current := c.entries[e.contact.ContactID] == e && e.state == StateInvitationSent
	k := e.call
	c.mu.Unlock()
	if !current {
		return
	}
	c.log.Info("smpcall: no answer; ending the call", "contact", e.contact.ContactID, "after", c.cfg.RingTimeout)
	if k != nil {
		k.stop(ReasonMissed, nil)
		return
	}
	c.endInBackground(e, ReasonMissed)
}

// invitationExpired drops a received invitation that nobody answered
// within Config.RingWindow. Nothing is sent: the core keeps it, as it keeps
// every unanswered invitation (protocol §4.1).
func (c *Client) invitationExpired(e *callEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[e.contact.ContactID] == e && e.state == StateInvitationReceived && e.call == nil {
		c.log.Info("smpcall: invitation expired", "contact", e.contact.ContactID)
		c.setState(e, StateEnded, ReasonMissed, nil)
	}
}

func (c *Client) fillInvitation(e *callEntry, inv *RcvCallInvitation) {
	e.incoming = true
	pt := inv.CallType
	e.peerType = &pt
	e.localType = nil
	e.setKey(inv.SharedKey)
}

// setKey keeps the Client's own copy of a media key, so that it can wipe
// it when the call ends without touching the embedder's copy.
func (e *callEntry) setKey(k *SharedKey) {
	e.wipeKey()
	if k != nil {
		kc := *k
		e.sharedKey = &kc
	}
}

func (e *callEntry) wipeKey() {
	if e.sharedKey != nil {
		*e.sharedKey = SharedKey{}
		e.sharedKey = nil
	}
}

// record is the history entry of a call of the low-level path.
func (e *callEntry) record(reason EndReason, err error, now time.Time) CallRecord {
	r := CallRecord{Contact: e.contact, Incoming: e.incoming, Reason: reason, Err: err, Encrypted: e.sharedKey != nil,
		StartedAt: e.startedAt, ConnectedAt: e.connectedAt, EndedAt: now}
	switch {
	case e.localType != nil:
		r.Media = e.localType.Media
	case e.peerType != nil:
		r.Media = e.peerType.Media
	}
	if !e.connectedAt.IsZero() {
		r.Duration = now.Sub(e.connectedAt)
	}
	r.Status = recordStatus(!e.connectedAt.IsZero(), e.accepted, e.incoming, reason)
	return r
}

// --- events from the transport ---------------------------------------------

// readLoop applies the transport's events to the calls and routes them.
func (c *Client) readLoop() {
	events := c.t.Events()
	for {
		select {
		case <-c.stopRead:
			return
		case ev, ok := <-events:
			if !ok {
				c.mu.Lock()
				closing := c.closing
				c.mu.Unlock()
				if !closing {
					c.transportGone(errors.New("smpcall: transport closed its events"))
				}
				return
			}
			c.handle(ev)
		}
	}
}

// transportGone ends every call: the transport will not come back.
func (c *Client) transportGone(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if e.state.Active() {
			c.log.Warn("smpcall: transport failed; ending call", "contact", e.contact.ContactID, "err", err)
			c.setState(e, StateEnded, ReasonTransportLost, err)
		}
	}
}

func (c *Client) handle(ev Event) {
	switch ev := ev.(type) {
	case *CallInvitationEvent:
		c.onInvitation(ev)
		return
	case *TransportErrorEvent:
		if !ev.Temporary {
			c.transportGone(ev.Err)
		} else {
			c.mu.Lock()
			c.transportDown = true
			c.mu.Unlock()
			c.log.Warn("smpcall: transport interrupted; calls keep their media", "err", ev.Err)
		}
		c.events.Push(ev)
		return
	case *TransportRestoredEvent:
		c.mu.Lock()
		c.transportDown = false
		c.mu.Unlock()
		c.events.Push(ev)
		return
	case *MessageErrorEvent:
		c.offerRefused(ev)
		c.events.Push(ev)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	id := ev.ContactID()
	var k *Call
	if e := c.entries[id]; e != nil {
		k = e.call
	}
	applied := true
	switch ev := ev.(type) {
	case *CallOfferEvent:
		c.contacts.put(ev.Contact)
		applied = c.apply(ev.Contact, opRecvOffer, ReasonNone, func(e *callEntry) {
			pt := ev.CallType
			e.peerType = &pt
			e.setKey(ev.SharedKey)
			e.askConfirmation = ev.AskConfirmation
			e.accepted = true
		})
	case *CallAnswerEvent:
		applied = c.apply(ev.Contact, opRecvAnswer, ReasonNone, nil)
	case *CallExtraInfoEvent:
		applied = c.apply(ev.Contact, opRecvExtra, ReasonNone, nil)
	case *CallEndedEvent:
		if e := c.entries[id]; e != nil {
			applied = c.apply(ev.Contact, opRecvEnded, peerEndReason(e.state), nil)
		}
	default:
		c.events.Push(ev)
		return
	}
	switch {
	case k == nil:
		c.events.Push(ev)
	case applied:
		k.deliver(ev)
	}
}

// staleRefusals are the core's texts for messages it refused because they
// belong to no call, another call or another state (protocol §4.3): a
// repeated or stale message, which changes nothing.
var staleRefusals = []string{": no current call", ": wrong contact or callId", ": wrong call state"}

// offerRefused ends a placed high-level call whose contact's message the
// transport could not use while the call waits for the contact's offer: a
// malformed or low-order callDhPubKey (protocol §5.2, §10.2), or a call
// event the chat core sent that does not decode (package smp's ChatClient).
// That message was the offer, so the call can never proceed; it would ring
// until RingTimeout as if nobody had answered. The peer is told.
func (c *Client) offerRefused(ev *MessageErrorEvent) {
	if ev.Contact == nil {
		return
	}
	for _, s := range staleRefusals {
		if strings.Contains(ev.ErrorMessage, s) {
			return
		}
	}
	c.mu.Lock()
	var k *Call
	if e := c.entries[ev.Contact.ContactID]; e != nil && e.state == StateInvitationSent {
		k = e.call
	}
	c.mu.Unlock()
	if k != nil {
		k.stop(ReasonProtocolError, fmt.Errorf("%w: the contact's answer to the invitation was refused: %s", ErrProtocol, ev.ErrorMessage))
	}
}

// peerEndReason names a peer's x.call.end by the state it ended.
func peerEndReason(s CallState) EndReason {
	switch s {
	case StateInvitationSent:
		return ReasonDeclined // the callee ended the invitation without accepting it
	case StateInvitationReceived:
		return ReasonMissed // the caller gave up before we accepted
	}
	return ReasonRemoteHangup
}

// apply moves a call on a received event. The core only delivers events
// that fit its own state (protocol §4.3), so a misfit here means the Client
// and the core disagree (e.g. the call was placed by another client of the
// same core); it is logged and the state is left alone. Caller holds c.mu.
func (c *Client) apply(contact Contact, op callOp, reason EndReason, update func(*callEntry)) bool {
	e := c.entries[contact.ContactID]
	if e == nil {
		c.log.Warn("smpcall: event for a call the client does not know", "contact", contact.ContactID, "event", op)
		return false
	}
	to, ok := next(e.state, op)
	if !ok {
		c.log.Warn("smpcall: event does not fit the call state", "contact", contact.ContactID, "event", op, "state", e.state)
		return false
	}
	if update != nil {
		update(e)
	}
	c.setState(e, to, reason, nil)
	return true
}

// onInvitation registers a received invitation (it replaces whatever call
// there was with the contact, as in the core, protocol §4.3), applies the
// busy policy, and announces it if it is fresh enough to ring.
func (c *Client) onInvitation(ev *CallInvitationEvent) {
	inv := ev.Invitation
	id := inv.Contact.ContactID
	c.mu.Lock()
	c.contacts.put(inv.Contact)
	if old := c.entries[id]; old != nil && old.state == StateInvitationSent && old.call != nil {
		c.crossed(old, &inv)
		c.mu.Unlock()
		return
	}
	if !c.roomForInvitation(id) {
		c.mu.Unlock()
		c.refused.Add(1)
		c.log.Warn("smpcall: too many invitations waiting; ignoring one", "contact", id, "waiting", maxWaitingInvitations)
		return
	}
	if old := c.entries[id]; old != nil && old.state.Active() {
		c.setState(old, StateEnded, ReasonReplaced, nil)
	}
	e := c.newEntry(inv.Contact)
	c.fillInvitation(e, &inv)
	c.setState(e, StateInvitationReceived, ReasonNone, nil)
	busy := c.cfg.Busy != BusyRing && c.inCallExcept(id)
	c.events.Push(ev)
	age := time.Since(inv.CallTs.Time)
	ring := !busy && (c.cfg.RingWindow == 0 || age <= c.cfg.RingWindow)
	if ring {
		c.events.Push(&RingingEvent{Invitation: inv})
		c.invites.Push(inv)
		if c.cfg.RingWindow > 0 {
			e.timer = time.AfterFunc(c.cfg.RingWindow-age, func() { c.invitationExpired(e) })
		}
	} else if !busy {
		c.log.Info("smpcall: invitation too old to ring", "contact", id, "age", age)
	}
	c.mu.Unlock()
	if busy {
		c.declineBusy(e)
	}
}

// maxWaitingInvitations bounds the invitations waiting to be answered.
// Each is an entry (with its contact, key and ring timer) that remote
// input creates: a hostile or broken chat core can name any number of
// contacts, and with RingWindow set to Never nothing would end them. No
// one answers a thousand calls at once.
const maxWaitingInvitations = 1024

// roomForInvitation reports whether an invitation from contactID may get an
// entry: it replaces the contact's own waiting one, or fewer than
// maxWaitingInvitations wait, or one that no longer rings (too old, or
// listed by PendingInvitations) is let go to make room: it ends as missed
// here and stays pending in the core. Caller holds c.mu.
func (c *Client) roomForInvitation(contactID int64) bool {
	if e := c.entries[contactID]; e != nil && e.state == StateInvitationReceived {
		return true
	}
	if c.waiting < maxWaitingInvitations {
		return true
	}
	if c.cfg.RingWindow <= 0 {
		return false // every waiting invitation rings until it is answered
	}
	for _, e := range c.entries {
		if e.state == StateInvitationReceived && e.timer == nil && e.call == nil {
			c.setState(e, StateEnded, ReasonMissed, nil)
			return true
		}
	}
	return false
}

// inCallExcept reports whether a call with another contact is in progress
// (placed, or accepted; a call that only rings does not count). Caller holds c.mu.
func (c *Client) inCallExcept(contactID int64) bool {
	for id, e := range c.entries {
		if id != contactID && e.state.Active() && e.state != StateInvitationReceived {
			return true
		}
	}
	return false
}

// declineBusy applies Config.Busy to an invitation that arrived during a call.
func (c *Client) declineBusy(e *callEntry) {
	id := e.contact.ContactID
	c.log.Info("smpcall: busy; declining invitation", "contact", id, "policy", c.cfg.Busy)
	if c.cfg.Busy == BusyDeclineWithEnd {
		c.endInBackground(e, ReasonBusy)
		return
	}
	c.mu.Lock()
	if c.entries[id] != e || e.state != StateInvitationReceived {
		c.mu.Unlock()
		return
	}
	c.setState(e, StateEnded, ReasonBusy, nil)
	t := c.ticket(id)
	c.mu.Unlock()
	if !c.spawn(func() {
		ctx, cancel := c.signalingContext()
		defer cancel()
		err := c.onLine(ctx, id, t, func(ctx context.Context) error { return c.t.Reject(ctx, id) })
		if err != nil {
			c.log.Info("smpcall: rejecting while busy", "contact", id, "err", err)
		}
	}) {
		c.skipTicket(id, t)
	}
}
