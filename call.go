package smpcall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/smpcall/smpcall/internal/eventq"
)

// Config configures a Client. The zero value works: pass nil to NewClient
// for all defaults. Each field documents its default.
type Config struct {
	// Logger receives the Client's logs. Default: silent. Keys and SDP are never logged.
	Logger *slog.Logger
	// RingWindow is how old an incoming invitation may be and still be
	// announced as ringing (RingingEvent). Older invitations are kept in the
	// pending list but not announced. Default 180 s, as the SimpleX apps
	// (protocol §4.1).
	RingWindow time.Duration
	// CloseTimeout bounds how long Close waits for the transport to send
	// x.call.end for calls in progress. Default 5 s.
	CloseTimeout time.Duration
	// Now returns the current time; tests set it. Default time.Now.
	Now func() time.Time

	// The fields below configure the calls of the high-level path
	// (PlaceCall, AcceptCall).

	// ICEServers are the STUN/TURN servers. nil means DefaultICEServers (the
	// SimpleX apps' public servers); an empty non-nil slice means none
	// (host candidates only).
	ICEServers []ICEServer
	// RelayOnly uses TURN relay candidates only, as the SimpleX apps do by
	// default (protocol §6.7): the peer never learns this side's IP address,
	// and a default-configured SimpleX app connects only over a relay.
	// Default false (all candidate types).
	RelayOnly bool
	// AllowUnencrypted lets a call proceed without frame encryption (a peer
	// without the capability, or askConfirmation, protocol §5.1); media is
	// then protected by DTLS-SRTP only, so a TURN relay that also broke DTLS
	// could see it. Default false: such calls end with ErrUnencrypted.
	AllowUnencrypted bool
	// ConnectTimeout ends a call that has not connected this long after its
	// peer connection was created. Default 30 s (the apps' timeout, protocol §6.6).
	ConnectTimeout time.Duration
	// SignalingTimeout bounds each signaling command a call sends. Default 15 s.
	SignalingTimeout time.Duration
	// ICE is the candidate batching (protocol §6.5); zero fields take the defaults.
	ICE ICEBatching
	// MaxMessageSize is the largest x.call.* chat message JSON, in bytes, that
	// a call produces; candidates that do not fit go to later extras.
	// Default 13,000 (below SMP's post-quantum message size).
	MaxMessageSize int
	// ICEAcceptance is how long the ICE-controlling side (this side when it
	// makes the SDP offer, i.e. when it accepted an invitation) waits before
	// it nominates a working candidate pair of each type. Nil means
	// DefaultICEAcceptance, or RelayOnlyICEAcceptance when RelayOnly is set;
	// see their docs for why. It is applied over SettingEngine unless its
	// FromSettingEngine field is set.
	ICEAcceptance *ICEAcceptance
	// SettingEngine, if set, configures pion for every call (network
	// interfaces, vnet, timeouts). Tests use it to stay on loopback. It is
	// copied; later changes have no effect. Default: pion's defaults.
	SettingEngine *webrtc.SettingEngine
	// DecryptFailureThreshold is how many consecutive frames of one stream
	// must fail to decrypt before a DecryptFailingEvent. Default 5.
	DecryptFailureThreshold int
	// PeerMediaTimeout is how long a peer's source may send no frames
	// before a PeerMediaEvent says it is off. Default 3 s, as the SimpleX
	// apps (protocol §6.4).
	PeerMediaTimeout time.Duration
}

func (c *Config) withDefaults() Config {
	var v Config
	if c != nil {
		v = *c
	}
	if v.Logger == nil {
		v.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if v.RingWindow <= 0 {
		v.RingWindow = 180 * time.Second
	}
	if v.CloseTimeout <= 0 {
		v.CloseTimeout = 5 * time.Second
	}
	if v.Now == nil {
		v.Now = time.Now
	}
	if v.ICEServers == nil {
		v.ICEServers = DefaultICEServers
	}
	if v.ConnectTimeout <= 0 {
		v.ConnectTimeout = 30 * time.Second
	}
	if v.SignalingTimeout <= 0 {
		v.SignalingTimeout = 15 * time.Second
	}
	v.ICE = v.ICE.withDefaults()
	if v.MaxMessageSize <= 0 {
		v.MaxMessageSize = 13000
	}
	if v.DecryptFailureThreshold <= 0 {
		v.DecryptFailureThreshold = 5
	}
	if v.PeerMediaTimeout <= 0 {
		v.PeerMediaTimeout = 3 * time.Second
	}
	return v
}

// EndReason says why a call ended.
type EndReason string

// End reasons.
const (
	ReasonLocalEnd  EndReason = "ended locally"
	ReasonPeerEnded EndReason = "ended by peer"
	ReasonRejected  EndReason = "rejected"
	ReasonReplaced  EndReason = "replaced by a new invitation"
	ReasonTransport EndReason = "transport failed"
	ReasonClosed    EndReason = "client closed"
)

// CallStateEvent is emitted by a Client whenever a call's app-level state
// changes. Reason is set when To is StateEnded.
type CallStateEvent struct {
	Contact  Contact
	From, To CallState
	Reason   EndReason
}

// RingingEvent is emitted by a Client for an incoming invitation that is
// fresh (within Config.RingWindow): the embedder should ring.
type RingingEvent struct {
	Invitation RcvCallInvitation
}

func (e *CallStateEvent) ContactID() int64 { return e.Contact.ContactID }
func (e *RingingEvent) ContactID() int64   { return e.Invitation.Contact.ContactID }
func (*CallStateEvent) event()             {}
func (*RingingEvent) event()               {}

// Client places and answers SimpleX calls over a Transport. It keeps the
// app-level state of each contact's call (protocol §4.6), refuses commands
// that the state does not allow, and forwards every transport event to the
// embedder together with its own CallStateEvent and RingingEvent.
//
// Concurrency: all methods are safe for concurrent use. Commands for the
// same contact are serialized; commands for different contacts run in
// parallel. Events are delivered in order on the channel from Events, from
// an internal queue, so a slow reader never stalls the calls; the channel is
// closed by Close. The Client owns the Transport: Close closes it.
type Client struct {
	t   Transport
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	calls    map[int64]*callEntry
	contacts map[int64]Contact
	handles  map[int64]*Call // calls of the high-level path, by contact
	closed   bool

	out  *eventq.Queue[Event]
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// callEntry is the Client's record of the call with one contact.
type callEntry struct {
	contact  Contact
	incoming bool
	state    CallState
	// gen changes on every state change, so that a command can tell whether
	// an event moved the call while the command was on the wire.
	gen int
	// ops serializes commands for this contact.
	ops sync.Mutex

	// local and peer call types, and the media key, as far as known.
	localType, peerType *CallType
	sharedKey           *SharedKey
	askConfirmation     bool

	// For the call record.
	startedAt, connectedAt time.Time
}

// NewClient starts a Client over t. cfg may be nil for defaults.
func NewClient(t Transport, cfg *Config) (*Client, error) {
	if t == nil {
		return nil, errors.New("smpcall: NewClient: nil transport")
	}
	c := &Client{
		t:        t,
		cfg:      cfg.withDefaults(),
		calls:    make(map[int64]*callEntry),
		contacts: make(map[int64]Contact),
		handles:  make(map[int64]*Call),
		done:     make(chan struct{}),
	}
	c.log = c.cfg.Logger
	c.out = eventq.New[Event]()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.readLoop()
	}()
	return c, nil
}

// Events returns the channel of events for the embedder: every transport
// event, plus CallStateEvent and RingingEvent. It is closed by Close.
func (c *Client) Events() <-chan Event { return c.out.C() }

// CallState returns the app-level state of the call with the contact
// (StateNone if there is none).
func (c *Client) CallState(contactID int64) CallState {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.calls[contactID]; e != nil {
		return e.state
	}
	return StateNone
}

// CallInfo is a snapshot of a call as the Client knows it.
type CallInfo struct {
	Contact  Contact
	Incoming bool
	State    CallState
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
	e := c.calls[contactID]
	if e == nil {
		return CallInfo{}, false
	}
	return CallInfo{
		Contact: e.contact, Incoming: e.incoming, State: e.state,
		LocalType: e.localType, PeerType: e.peerType, SharedKey: e.sharedKey,
		AskConfirmation: e.askConfirmation,
	}, true
}

// SendInvitation invites the contact to a call (x.call.inv). It is allowed
// only when there is no call in progress with the contact. Errors:
// ErrClosed, ErrInvalidState (*StateError), or the transport's error
// (a *ChatError from a core).
func (c *Client) SendInvitation(ctx context.Context, contactID int64, callType CallType) error {
	if !callType.Media.Valid() {
		return fmt.Errorf("smpcall: send invitation: invalid media %q", callType.Media)
	}
	return c.command(ctx, nil, contactID, opInvite, func(e *callEntry) {
		e.incoming = false
		ct := callType
		e.localType = &ct
	}, func(ctx context.Context) error { return c.t.Invite(ctx, contactID, callType) })
}

// accept marks a ringing invitation as accepted while the offer is being
// prepared (app state invitationAccepted). It sends nothing.
func (c *Client) accept(ctx context.Context, contactID int64) error {
	return c.command(ctx, nil, contactID, opAccept, nil, nil)
}

// SendOffer accepts the contact's invitation with an SDP offer
// (x.call.offer). offer.CallType is this side's own call type. Errors:
// ErrClosed, ErrNoCall, ErrInvalidState, or the transport's error.
func (c *Client) SendOffer(ctx context.Context, contactID int64, offer WebRTCCallOffer) error {
	if !offer.CallType.Media.Valid() {
		return fmt.Errorf("smpcall: send offer: invalid media %q", offer.CallType.Media)
	}
	return c.sendOffer(ctx, nil, contactID, offer)
}

// The send methods below take the call entry a command must act on (nil:
// whatever call is current), so that a high-level Call never acts on a
// newer call with the same contact.

func (c *Client) sendOffer(ctx context.Context, expect *callEntry, contactID int64, offer WebRTCCallOffer) error {
	return c.command(ctx, expect, contactID, opOffer, func(e *callEntry) {
		ct := offer.CallType
		e.localType = &ct
	}, func(ctx context.Context) error { return c.t.Offer(ctx, contactID, offer) })
}

// SendAnswer answers the contact's offer (x.call.answer). Errors: ErrClosed,
// ErrNoCall, ErrInvalidState, or the transport's error.
func (c *Client) SendAnswer(ctx context.Context, contactID int64, answer WebRTCSession) error {
	return c.sendAnswer(ctx, nil, contactID, answer)
}

func (c *Client) sendAnswer(ctx context.Context, expect *callEntry, contactID int64, answer WebRTCSession) error {
	return c.command(ctx, expect, contactID, opAnswer, nil,
		func(ctx context.Context) error { return c.t.Answer(ctx, contactID, answer) })
}

// SendExtraInfo sends more ICE candidates (x.call.extra). Allowed after this
// side's offer or answer. Errors: ErrClosed, ErrNoCall, ErrInvalidState, or
// the transport's error.
func (c *Client) SendExtraInfo(ctx context.Context, contactID int64, extra WebRTCExtraInfo) error {
	return c.sendExtra(ctx, nil, contactID, extra)
}

func (c *Client) sendExtra(ctx context.Context, expect *callEntry, contactID int64, extra WebRTCExtraInfo) error {
	return c.command(ctx, expect, contactID, opExtra, nil,
		func(ctx context.Context) error { return c.t.Extra(ctx, contactID, extra) })
}

// SendCallStatus reports the WebRTC connection status to the core (no
// message is sent to the peer). "connected" moves a negotiated call to
// StateConnected. Errors: ErrClosed, ErrNoCall, ErrInvalidState, an invalid
// status, or the transport's error.
func (c *Client) SendCallStatus(ctx context.Context, contactID int64, status WebRTCCallStatus) error {
	return c.sendStatus(ctx, nil, contactID, status)
}

func (c *Client) sendStatus(ctx context.Context, expect *callEntry, contactID int64, status WebRTCCallStatus) error {
	if !status.Valid() {
		return fmt.Errorf("smpcall: report status: invalid status %q", status)
	}
	op := opStatusOther
	if status == StatusConnected {
		op = opStatusConnected
	}
	return c.command(ctx, expect, contactID, op, nil,
		func(ctx context.Context) error { return c.t.Status(ctx, contactID, status) })
}

// EndCall hangs up or cancels the call with the contact (x.call.end). An
// unanswered incoming invitation can be ended too; the caller then sees the
// call end (both items become "missed", protocol §4.4). Errors: ErrClosed,
// ErrNoCall, or the transport's error (the call is ended locally anyway).
func (c *Client) EndCall(ctx context.Context, contactID int64) error {
	return c.endCall(ctx, nil, contactID)
}

func (c *Client) endCall(ctx context.Context, expect *callEntry, contactID int64) error {
	return c.command(ctx, expect, contactID, opEnd, nil,
		func(ctx context.Context) error { return c.t.End(ctx, contactID) })
}

// Reject declines an incoming invitation. As in the SimpleX apps nothing is
// sent: the caller keeps ringing until it ends the call (protocol §4.4).
// Errors: ErrClosed, ErrNoCall, ErrInvalidState, or the transport's error.
func (c *Client) Reject(ctx context.Context, contactID int64) error {
	return c.command(ctx, nil, contactID, opReject, nil,
		func(ctx context.Context) error { return c.t.Reject(ctx, contactID) })
}

// PendingInvitations returns the pending incoming invitations from the
// transport ("/_call get"), including those too old to ring, and makes
// each one known to the Client so that it can be answered or rejected (for
// example after a restart). Errors: ErrClosed or the transport's error.
func (c *Client) PendingInvitations(ctx context.Context) ([]RcvCallInvitation, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	invs, err := c.t.Invitations(ctx)
	if err != nil {
		return nil, fmt.Errorf("smpcall: pending invitations: %w", err)
	}
	c.mu.Lock()
	for i := range invs {
		inv := invs[i]
		id := inv.Contact.ContactID
		c.contacts[id] = inv.Contact
		if e := c.calls[id]; e == nil || !e.state.Active() {
			e = c.newEntry(inv.Contact)
			c.fillInvitation(e, &inv)
			c.setState(e, StateInvitationReceived, "")
		}
	}
	c.mu.Unlock()
	return invs, nil
}

// Close ends every call in progress (sending x.call.end, bounded by
// Config.CloseTimeout; pending incoming invitations are left to the core),
// closes the transport, stops the Client's goroutines and closes the events
// channel. It may be called more than once; later calls return nil.
func (c *Client) Close() error {
	var err error
	c.once.Do(func() {
		c.mu.Lock()
		handles := make([]*Call, 0, len(c.handles))
		for _, h := range c.handles {
			handles = append(handles, h)
		}
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.CloseTimeout)
		for _, h := range handles {
			h.post(endMsg{reason: ReasonClosed, sendEnd: true})
		}
		for _, h := range handles {
			select {
			case <-h.done:
			case <-ctx.Done():
			}
		}
		cancel()

		c.mu.Lock()
		var toEnd []int64
		for id, e := range c.calls {
			if e.state.Active() && e.state != StateInvitationReceived {
				toEnd = append(toEnd, id)
			}
		}
		c.closed = true
		c.mu.Unlock()

		ctx, cancel = context.WithTimeout(context.Background(), c.cfg.CloseTimeout)
		for _, id := range toEnd {
			if e := c.t.End(ctx, id); e != nil {
				c.log.Warn("smpcall: ending call on close", "contact", id, "err", e)
			}
		}
		cancel()
		c.mu.Lock()
		for _, e := range c.calls {
			if e.state.Active() {
				c.setState(e, StateEnded, ReasonClosed)
			}
		}
		c.mu.Unlock()

		err = c.t.Close()
		close(c.done)
		c.wg.Wait()
		c.out.Close()
	})
	return err
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// command runs one local command: it checks and applies the transition
// first (so that the peer's reply, which may arrive before the transport
// returns, finds the new state), runs send, and puts the old state back if
// send fails and nothing else moved the call meanwhile.
func (c *Client) command(ctx context.Context, expect *callEntry, contactID int64, op callOp, prepare func(*callEntry), send func(context.Context) error) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	e := c.calls[contactID]
	if expect != nil && e != expect {
		c.mu.Unlock()
		return fmt.Errorf("smpcall: %s with contact %d: %w", op, contactID, ErrNoCall)
	}
	if e == nil {
		if op != opInvite {
			c.mu.Unlock()
			return fmt.Errorf("smpcall: %s with contact %d: %w", op, contactID, ErrNoCall)
		}
		e = c.newEntry(c.contactOrID(contactID))
		if h := c.handles[contactID]; h != nil && h.entry.Load() == nil {
			h.entry.Store(e) // the call PlaceCall is starting
		}
	}
	c.mu.Unlock()

	e.ops.Lock()
	defer e.ops.Unlock()

	c.mu.Lock()
	if expect != nil && c.calls[contactID] != expect {
		c.mu.Unlock()
		return fmt.Errorf("smpcall: %s with contact %d: %w", op, contactID, ErrNoCall)
	}
	if c.calls[contactID] != e {
		// The entry was replaced (e.g. a new invitation) while we waited.
		if op != opInvite || c.calls[contactID] != nil {
			c.mu.Unlock()
			return &StateError{Op: op.String(), ContactID: contactID, State: c.stateOf(contactID)}
		}
		c.calls[contactID] = e
	}
	from := e.state
	to, ok := next(from, op)
	if !ok {
		c.mu.Unlock()
		if from == StateNone || from == StateEnded {
			return fmt.Errorf("smpcall: %s with contact %d: %w", op, contactID, ErrNoCall)
		}
		return &StateError{Op: op.String(), ContactID: contactID, State: from}
	}
	saved := e.snapshot()
	if prepare != nil {
		prepare(e)
	}
	reason := EndReason("")
	switch op {
	case opEnd:
		reason = ReasonLocalEnd
	case opReject:
		reason = ReasonRejected
	}
	c.setState(e, to, reason)
	gen := e.gen
	c.mu.Unlock()

	if send == nil {
		return nil
	}
	if err := send(ctx); err != nil {
		if to != StateEnded {
			c.mu.Lock()
			if c.calls[contactID] == e && e.gen == gen {
				e.restore(saved)
				c.setState(e, from, "")
			}
			c.mu.Unlock()
		}
		return fmt.Errorf("smpcall: %s with contact %d: %w", op, contactID, err)
	}
	return nil
}

// entryState is the part of a callEntry that a failed command puts back.
type entryState struct {
	incoming            bool
	localType, peerType *CallType
}

func (e *callEntry) snapshot() entryState {
	return entryState{incoming: e.incoming, localType: e.localType, peerType: e.peerType}
}

func (e *callEntry) restore(s entryState) {
	e.incoming, e.localType, e.peerType = s.incoming, s.localType, s.peerType
}

// stateOfEntry is the state of one particular call: StateEnded once it is
// no longer the contact's current call. Caller does not hold c.mu.
func (c *Client) stateOfEntry(contactID int64, e *callEntry) CallState {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case e == nil:
		return c.stateOf(contactID)
	case c.calls[contactID] != e:
		return StateEnded
	}
	return e.state
}

func (c *Client) stateOf(contactID int64) CallState {
	if e := c.calls[contactID]; e != nil {
		return e.state
	}
	return StateNone
}

func (c *Client) contactOrID(id int64) Contact {
	if ct, ok := c.contacts[id]; ok {
		return ct
	}
	return Contact{ContactID: id}
}

// newEntry creates and registers an entry in StateNone. Caller holds c.mu.
func (c *Client) newEntry(contact Contact) *callEntry {
	e := &callEntry{contact: contact}
	c.calls[contact.ContactID] = e
	return e
}

// setState changes e's state, announces it, and forgets ended calls.
// Caller holds c.mu; the event goes to the queue, never to a callback.
func (c *Client) setState(e *callEntry, to CallState, reason EndReason) {
	from := e.state
	e.state = to
	e.gen++
	if from == to {
		return
	}
	c.log.Debug("smpcall: call state", "contact", e.contact.ContactID, "from", from, "to", to, "reason", reason)
	now := c.cfg.Now()
	if from == StateNone {
		e.startedAt = now
	}
	if to == StateConnected {
		e.connectedAt = now
	}
	ev := &CallStateEvent{Contact: e.contact, From: from, To: to, Reason: reason}
	c.out.Push(ev)
	if to == StateEnded {
		if h := c.handles[e.contact.ContactID]; h != nil && (h.entry.Load() == e || h.entry.Load() == nil) {
			h.post(ev) // the Call makes its own, fuller record
			// Forget it now, so that the contact's next call can start at
			// once, while this one still closes its peer connection.
			delete(c.handles, e.contact.ContactID)
		} else if from != StateNone {
			c.out.Push(&CallRecordEvent{Record: e.record(reason, now)})
		}
	}
	if to == StateEnded && c.calls[e.contact.ContactID] == e {
		delete(c.calls, e.contact.ContactID)
	}
}

func (c *Client) fillInvitation(e *callEntry, inv *RcvCallInvitation) {
	e.incoming = true
	pt := inv.CallType
	e.peerType = &pt
	e.localType = nil
	e.sharedKey = inv.SharedKey
}

// readLoop applies transport events to the calls and forwards them.
func (c *Client) readLoop() {
	events := c.t.Events()
	for {
		select {
		case <-c.done:
			return
		case ev, ok := <-events:
			if !ok {
				c.transportGone(errors.New("transport closed"))
				return
			}
			c.handle(ev)
		}
	}
}

func (c *Client) transportGone(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.calls {
		if e.state.Active() {
			c.log.Warn("smpcall: transport failed; ending call", "contact", e.contact.ContactID, "err", err)
			c.setState(e, StateEnded, ReasonTransport)
		}
	}
}

func (c *Client) handle(ev Event) {
	c.mu.Lock()
	switch ev := ev.(type) {
	case *CallInvitationEvent:
		inv := ev.Invitation
		id := inv.Contact.ContactID
		c.contacts[id] = inv.Contact
		if old := c.calls[id]; old != nil && old.state.Active() {
			c.setState(old, StateEnded, ReasonReplaced)
		}
		e := c.newEntry(inv.Contact)
		c.fillInvitation(e, &inv)
		c.setState(e, StateInvitationReceived, "")
		c.out.Push(ev)
		if age := c.cfg.Now().Sub(inv.CallTs.Time); age <= c.cfg.RingWindow {
			c.out.Push(&RingingEvent{Invitation: inv})
		} else {
			c.log.Info("smpcall: invitation too old to ring", "contact", id, "age", age)
		}
		c.mu.Unlock()
		return
	}
	// The high-level call with this contact, if any, gets the signaling events.
	if h := c.handles[ev.ContactID()]; h != nil {
		switch ev.(type) {
		case *CallOfferEvent, *CallAnswerEvent, *CallExtraInfoEvent:
			defer h.post(ev)
		}
	}
	switch ev := ev.(type) {
	case *CallOfferEvent:
		c.contacts[ev.Contact.ContactID] = ev.Contact
		c.apply(ev.Contact, opRecvOffer, "", func(e *callEntry) {
			pt := ev.CallType
			e.peerType = &pt
			e.sharedKey = ev.SharedKey
			e.askConfirmation = ev.AskConfirmation
		})
	case *CallAnswerEvent:
		c.apply(ev.Contact, opRecvAnswer, "", nil)
	case *CallExtraInfoEvent:
		c.apply(ev.Contact, opRecvExtra, "", nil)
	case *CallEndedEvent:
		c.apply(ev.Contact, opRecvEnded, ReasonPeerEnded, nil)
	case *TransportErrorEvent:
		c.mu.Unlock()
		c.transportGone(ev.Err)
		c.mu.Lock()
	}
	c.out.Push(ev)
	c.mu.Unlock()
}

// apply moves a call on a received event. The core only delivers events
// that fit its own state (protocol §4.3), so a misfit here means the Client
// and the core disagree (e.g. the call was placed by another client of the
// same core); it is logged and the state is left alone. Caller holds c.mu.
func (c *Client) apply(contact Contact, op callOp, reason EndReason, update func(*callEntry)) {
	e := c.calls[contact.ContactID]
	if e == nil {
		c.log.Warn("smpcall: event for a call the client does not know", "contact", contact.ContactID, "event", op)
		return
	}
	to, ok := next(e.state, op)
	if !ok {
		c.log.Warn("smpcall: event does not fit the call state", "contact", contact.ContactID, "event", op, "state", e.state)
		return
	}
	if update != nil {
		update(e)
	}
	c.setState(e, to, reason)
}

// PlaceCall invites the contact and drives the call to connected: it sends
// the invitation (this side will be the WebRTC answerer), answers the
// contact's offer with frame encryption when both sides have the key, and
// runs ICE. It returns once the invitation is sent; use the Call's
// WaitConnected, Done and End. There is no answer timeout (as in the
// apps): the caller rings until the contact accepts or someone ends.
// Errors: those of SendInvitation.
func (c *Client) PlaceCall(ctx context.Context, contactID int64, opts *CallOptions) (*Call, error) {
	media := MediaVideo
	if opts != nil && opts.Media != "" {
		media = opts.Media
	}
	if !media.Valid() {
		return nil, fmt.Errorf("smpcall: place call: invalid media %q", media)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if h := c.handles[contactID]; h != nil {
		c.mu.Unlock()
		return nil, &StateError{Op: "place call", ContactID: contactID, State: c.stateOf(contactID)}
	}
	k := c.newCall(c.contactOrID(contactID), false, media, opts)
	c.handles[contactID] = k
	c.mu.Unlock()

	// Registered before sending: the offer may arrive before this returns.
	return c.launch(k, func() error {
		return c.SendInvitation(ctx, contactID, CallType{Media: media, Capabilities: CallCapabilities{Encryption: true}})
	})
}

// AcceptCall accepts the contact's ringing invitation and drives the call
// to connected: this side creates the SDP offer (four m-lines, protocol
// §6.4), encrypting frames with the shared key from the invitation. If the
// invitation has no key and Config.AllowUnencrypted is false, the call is
// ended and WaitConnected returns ErrUnencrypted. Errors: ErrClosed,
// ErrNoCall, ErrInvalidState.
func (c *Client) AcceptCall(ctx context.Context, contactID int64, opts *CallOptions) (*Call, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	e := c.calls[contactID]
	if e == nil || !e.state.Active() {
		c.mu.Unlock()
		return nil, fmt.Errorf("smpcall: accept call with contact %d: %w", contactID, ErrNoCall)
	}
	if e.state != StateInvitationReceived || c.handles[contactID] != nil {
		st := e.state
		c.mu.Unlock()
		return nil, &StateError{Op: "accept call", ContactID: contactID, State: st}
	}
	media := e.peerType.Media
	k := c.newCall(e.contact, true, media, opts)
	k.entry.Store(e)
	c.handles[contactID] = k
	c.mu.Unlock()
	return c.launch(k, func() error { return c.accept(ctx, contactID) })
}

// launch runs the command that starts k's call: on success k's goroutine
// starts; on failure k is forgotten.
func (c *Client) launch(k *Call, cmd func() error) (*Call, error) {
	err := cmd()
	if err == nil {
		err = c.startCall(k)
	}
	if err != nil {
		c.dropCall(k)
		k.inbox.Close()
		k.cancel()
		return nil, err
	}
	return k, nil
}

// startCall starts k's goroutine unless Close has begun waiting for them.
func (c *Client) startCall(k *Call) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		k.run()
	}()
	return nil
}

// dropCall forgets a finished high-level call.
func (c *Client) dropCall(k *Call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.handles[k.contact.ContactID] == k {
		delete(c.handles, k.contact.ContactID)
	}
}

// record is the history entry of a call of the low-level path.
func (e *callEntry) record(reason EndReason, now time.Time) CallRecord {
	r := CallRecord{Contact: e.contact, Incoming: e.incoming, Reason: reason, Encrypted: e.sharedKey != nil,
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
	r.Status = recordStatus(!e.connectedAt.IsZero(), reason)
	return r
}
