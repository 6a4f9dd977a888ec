package smp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smpcall/smpcall"
)

// Pipe carries whole chat messages (the JSON bytes of one message) to and
// from one contact: the contact's SMP connection, or an in-memory loopback.
// Embedders with their own SMP stack implement it to run a Core over it.
//
// Concurrency: Send may be called from several goroutines (the Core
// serializes sends per contact, so messages leave in command order);
// Receive is called by one goroutine. Both block until done or ctx ends.
// After Close, both return an error; Close may be called more than once.
type Pipe interface {
	// Send sends one message to the contact.
	Send(ctx context.Context, msg []byte) error
	// Receive returns the contact's next message.
	Receive(ctx context.Context) ([]byte, error)
	// Close ends the pipe; Send and Receive then return an error.
	Close() error
}

// CoreConfig configures a Core; nil means all defaults.
type CoreConfig struct {
	// Rand is the source of call ids, message ids, UUIDs and X25519 private
	// keys. Default crypto/rand.Reader. Tests set a seeded reader for
	// reproducible ids; never do that in production.
	Rand io.Reader
	// Now is the clock for callTs and item durations. Default time.Now.
	Now func() time.Time
	// Logger receives the core's logs. Default silent. Keys are never logged.
	Logger *slog.Logger
	// ChatVersion is the "v" of sent messages. Default ChatVersion ("1-16").
	ChatVersion string
	// CallsAllowed decides whether calls with a contact are allowed (the
	// calls preference, protocol §10). Default: all contacts allowed.
	CallsAllowed func(smpcall.Contact) bool
	// CallVersion2 turns on call version 2 (protocol §5.4): invitations
	// carry callVRange "1-2", an invitation's callVRange is answered with
	// the agreed callVersion in the offer, and a call that agrees on
	// version 2 derives its media key with HKDF-SHA512 from the X25519
	// output (Call.hs callMediaKey). A peer without versions (every
	// released SimpleX app seen so far) gets version 1, the raw X25519
	// output, either way.
	//
	// Default false, and keep it so until a released SimpleX client is
	// seen to send callVRange: the version-2 code was found in a single
	// unreleased Call.hs, and with it off the core neither sends the
	// version fields nor looks at them, exactly like the released apps.
	CallVersion2 bool
	// EventQueueSize bounds the events waiting to be read from Events. When
	// it is full (nobody reads, and a peer keeps sending), further events
	// are dropped and counted (DroppedEvents). Default 1024.
	EventQueueSize int
}

// callVRange is the range of call versions the core supports.
func (c *Core) callVRange() CallVersionRange {
	if c.cfg.CallVersion2 {
		return CallVersionRange{CallVersion1, CallVersion2}
	}
	return CallVersionRange{CallVersion1, CallVersion1}
}

// Core does for one chat user what the SimpleX chat core does for calls
// (protocol §3–§5, §8–§9): it keeps at most one call per contact in the
// core's states, generates call ids and X25519 keys, encodes and decodes the
// x.call.* messages on each contact's Pipe, derives the sharedKey, applies
// the askConfirmation rule, keeps each call's chat item, and reports
// commands that the state does not allow as *smpcall.ChatError and received
// messages that do not fit as MessageErrorEvent. It implements
// smpcall.Transport.
//
// Concurrency: all methods are safe for concurrent use. Each contact's Pipe
// is read by one goroutine of the Core; Close stops them and waits.
type Core struct {
	user smpcall.User
	cfg  CoreConfig
	log  *slog.Logger

	mu       sync.Mutex
	contacts map[int64]*coreContact
	nextItem int64
	closed   bool

	events   chan smpcall.Event
	evMu     sync.Mutex // serializes sends to events with its close
	evClosed bool
	dropped  atomic.Uint64
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

type coreContact struct {
	contact smpcall.Contact
	pipe    Pipe
	// sendMu keeps this contact's messages in command order on the pipe.
	sendMu sync.Mutex
	call   *coreCall
	items  []*callItem
}

// coreCall is the core's Call record (Call.hs) with the data of its state.
type coreCall struct {
	id    smpcall.CallID
	uuid  string
	state smpcall.CallStateTag
	ts    time.Time
	item  *callItem

	localType, peerType *smpcall.CallType
	keys                *keyPair // caller, until the offer arrives; callee: its public key is sent with the offer
	sharedKey           *smpcall.SharedKey
	// offered is the caller's call version range as sent in the invitation.
	offered CallVersionRange
	// version is the callee's agreed call version, sent in the offer; nil
	// when the invitation had no callVRange or versions are off.
	version      *uint16
	localSession *smpcall.WebRTCSession
	peerSession  *smpcall.WebRTCSession
}

type callItem struct {
	id        int64
	sent      bool
	status    smpcall.CICallStatus
	duration  int
	updatedAt time.Time
}

func (it *callItem) public() smpcall.CallItem {
	return smpcall.CallItem{ItemID: it.id, Sent: it.sent, Status: it.status, Duration: it.duration,
		Text: smpcall.ItemText(it.sent, it.status, it.duration)}
}

// NewCore returns the call handling of one user. Add contacts with AddContact.
func NewCore(user smpcall.User, cfg *CoreConfig) *Core {
	var c CoreConfig
	if cfg != nil {
		c = *cfg
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ChatVersion == "" {
		c.ChatVersion = ChatVersion
	}
	if c.EventQueueSize <= 0 {
		c.EventQueueSize = 1024
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Core{user: user, cfg: c, log: c.Logger, contacts: make(map[int64]*coreContact),
		events: make(chan smpcall.Event, c.EventQueueSize), ctx: ctx, cancel: cancel}
}

// User returns the core's user.
func (c *Core) User() smpcall.User { return c.user }

// AddContact makes contact reachable over pipe and starts reading it. The
// Core owns the pipe from now on and closes it on Close.
func (c *Core) AddContact(contact smpcall.Contact, pipe Pipe) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return smpcall.ErrClosed
	}
	if _, ok := c.contacts[contact.ContactID]; ok {
		return fmt.Errorf("smp: contact %d already added", contact.ContactID)
	}
	cc := &coreContact{contact: contact, pipe: pipe}
	c.contacts[contact.ContactID] = cc
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.readLoop(cc)
	}()
	return nil
}

// Contacts returns the core's contacts, by contact id.
func (c *Core) Contacts() []smpcall.Contact {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]smpcall.Contact, 0, len(c.contacts))
	for _, cc := range c.contacts {
		out = append(out, cc.contact)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ContactID < out[j].ContactID })
	return out
}

// contact returns the contact with this id.
func (c *Core) contact(id int64) (smpcall.Contact, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cc := c.contacts[id]
	if cc == nil {
		return smpcall.Contact{}, false
	}
	return cc.contact, true
}

// contactByName returns the contact with this local display name
// (Store getContactIdByName).
func (c *Core) contactByName(name string) (smpcall.Contact, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cc := range c.contacts {
		if cc.contact.LocalDisplayName == name {
			return cc.contact, true
		}
	}
	return smpcall.Contact{}, false
}

// CallItems returns the call chat items with the contact, oldest first.
func (c *Core) CallItems(contactID int64) []smpcall.CallItem {
	c.mu.Lock()
	defer c.mu.Unlock()
	cc := c.contacts[contactID]
	if cc == nil {
		return nil
	}
	out := make([]smpcall.CallItem, len(cc.items))
	for i, it := range cc.items {
		out[i] = it.public()
	}
	return out
}

// CurrentCall reports the core's state of the call with the contact.
func (c *Core) CurrentCall(contactID int64) (smpcall.CallStateTag, smpcall.CallID, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cc := c.contacts[contactID]
	if cc == nil || cc.call == nil {
		return "", "", false
	}
	return cc.call.state, cc.call.id, true
}

// Events implements smpcall.Transport.
func (c *Core) Events() <-chan smpcall.Event { return c.events }

// DroppedEvents counts the events dropped because the event queue was full.
func (c *Core) DroppedEvents() uint64 { return c.dropped.Load() }

// emit queues an event without ever blocking (it may run with c.mu held):
// when the queue is full the event is dropped and counted.
func (c *Core) emit(ev smpcall.Event) {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	if c.evClosed {
		return
	}
	select {
	case c.events <- ev:
	default:
		if n := c.dropped.Add(1); n == 1 || n%1000 == 0 {
			c.log.Warn("smp: core event queue full; dropping events", "dropped", n, "limit", c.cfg.EventQueueSize)
		}
	}
}

// Close stops reading the pipes, closes them and the events channel, and
// waits. It does not end calls (a chat core that stops does not either).
func (c *Core) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	pipes := make([]Pipe, 0, len(c.contacts))
	for _, cc := range c.contacts {
		pipes = append(pipes, cc.pipe)
	}
	c.mu.Unlock()
	c.cancel()
	var errs []error
	for _, p := range pipes {
		errs = append(errs, p.Close())
	}
	c.wg.Wait()
	c.evMu.Lock()
	c.evClosed = true
	close(c.events)
	c.evMu.Unlock()
	return errors.Join(errs...)
}

// --- commands (protocol §4.2) --------------------------------------------

var errNotFound = &smpcall.ChatError{Kind: smpcall.KindStore, Message: "contactNotFound"}

// Invite implements smpcall.Transport: a new call replaces the current one
// (whose item is closed as if disconnected; nothing is sent for it).
func (c *Core) Invite(ctx context.Context, contactID int64, callType smpcall.CallType) error {
	if !callType.Media.Valid() {
		return &smpcall.ChatError{Kind: smpcall.KindCommandError, Message: fmt.Sprintf("invalid call media %q", callType.Media)}
	}
	if !c.callsAllowed(contactID) {
		return &smpcall.ChatError{Kind: smpcall.KindCommandError, Message: "feature not allowed Audio/video calls"}
	}
	return c.command(ctx, contactID, func(cc *coreContact, now time.Time) (*Message, error) {
		var id [16]byte
		if _, err := io.ReadFull(c.cfg.Rand, id[:]); err != nil {
			return nil, err
		}
		call := &coreCall{id: smpcall.CallID(id[:]), state: smpcall.TagInvitationSent, ts: now}
		uuid, err := newUUID(c.cfg.Rand)
		if err != nil {
			return nil, err
		}
		call.uuid = uuid
		lt := callType
		call.localType = &lt
		inv := &CallInvitation{CallType: callType}
		call.offered = c.callVRange()
		if c.cfg.CallVersion2 {
			r := call.offered
			inv.CallVRange = &r
		}
		if callType.Capabilities.Encryption {
			kp, err := newKeyPair(c.cfg.Rand)
			if err != nil {
				return nil, err
			}
			call.keys = kp
			inv.CallDHPubKey = &kp.pub
		}
		c.replaceCall(cc, call, now)
		call.item = c.newItem(cc, true, now)
		return &Message{Event: EventInvitation, CallID: call.id, Invitation: inv}, nil
	})
}

// Reject implements smpcall.Transport: allowed in invitationReceived only;
// the item becomes rejected and nothing is sent (protocol §4.4).
func (c *Core) Reject(ctx context.Context, contactID int64) error {
	return c.command(ctx, contactID, func(cc *coreContact, now time.Time) (*Message, error) {
		call, err := c.currentIn(cc, smpcall.TagInvitationReceived)
		if err != nil {
			return nil, err
		}
		c.setItem(cc, call.item, smpcall.CIStatusRejected, 0, now)
		cc.call = nil
		return nil, nil
	})
}

// Offer implements smpcall.Transport: allowed in invitationReceived; the
// stored public key goes with the offer iff the offer's own call type asks
// for encryption.
func (c *Core) Offer(ctx context.Context, contactID int64, offer smpcall.WebRTCCallOffer) error {
	if !offer.CallType.Media.Valid() {
		return &smpcall.ChatError{Kind: smpcall.KindCommandError, Message: fmt.Sprintf("invalid call media %q", offer.CallType.Media)}
	}
	return c.command(ctx, contactID, func(cc *coreContact, now time.Time) (*Message, error) {
		call, err := c.currentIn(cc, smpcall.TagInvitationReceived)
		if err != nil {
			return nil, err
		}
		co := &CallOffer{CallType: offer.CallType, RTCSession: offer.RTCSession, CallVersion: call.version}
		if offer.CallType.Capabilities.Encryption && call.keys != nil {
			co.CallDHPubKey = &call.keys.pub
		}
		call.keys = nil // the core keeps only the shared key from here on
		lt := offer.CallType
		call.localType = &lt
		s := offer.RTCSession
		call.localSession = &s
		call.state = smpcall.TagOfferSent
		c.setItem(cc, call.item, smpcall.CIStatusAccepted, 0, now)
		return &Message{Event: EventOffer, CallID: call.id, Offer: co}, nil
	})
}

// Answer implements smpcall.Transport: allowed in offerReceived.
func (c *Core) Answer(ctx context.Context, contactID int64, answer smpcall.WebRTCSession) error {
	return c.command(ctx, contactID, func(cc *coreContact, now time.Time) (*Message, error) {
		call, err := c.currentIn(cc, smpcall.TagOfferReceived)
		if err != nil {
			return nil, err
		}
		s := answer
		call.localSession = &s
		call.state = smpcall.TagNegotiated
		c.setItem(cc, call.item, smpcall.CIStatusNegotiated, 0, now)
		return &Message{Event: EventAnswer, CallID: call.id, Answer: &CallAnswer{RTCSession: answer}}, nil
	})
}

// Extra implements smpcall.Transport: allowed in offerSent or negotiated.
func (c *Core) Extra(ctx context.Context, contactID int64, extra smpcall.WebRTCExtraInfo) error {
	return c.command(ctx, contactID, func(cc *coreContact, now time.Time) (*Message, error) {
		call, err := c.currentIn(cc, smpcall.TagOfferSent, smpcall.TagNegotiated)
		if err != nil {
			return nil, err
		}
		return &Message{Event: EventExtra, CallID: call.id, Extra: &CallExtraInfo{RTCExtraInfo: extra}}, nil
	})
}

// End implements smpcall.Transport: allowed in any state; sends x.call.end,
// closes the item as if disconnected and forgets the call.
func (c *Core) End(ctx context.Context, contactID int64) error {
	return c.command(ctx, contactID, func(cc *coreContact, now time.Time) (*Message, error) {
		call, err := c.currentIn(cc)
		if err != nil {
			return nil, err
		}
		c.reportStatus(cc, call.item, smpcall.StatusDisconnected, now)
		cc.call = nil
		return &Message{Event: EventEnd, CallID: call.id}, nil
	})
}

// Status implements smpcall.Transport: only the item changes (protocol §9).
func (c *Core) Status(ctx context.Context, contactID int64, status smpcall.WebRTCCallStatus) error {
	if !status.Valid() {
		return &smpcall.ChatError{Kind: smpcall.KindCommandError, Message: fmt.Sprintf("invalid call status %q", status)}
	}
	return c.command(ctx, contactID, func(cc *coreContact, now time.Time) (*Message, error) {
		call, err := c.currentIn(cc)
		if err != nil {
			return nil, err
		}
		c.reportStatus(cc, call.item, status, now)
		return nil, nil
	})
}

// Invitations implements smpcall.Transport: every call in invitationReceived.
func (c *Core) Invitations(ctx context.Context) ([]smpcall.RcvCallInvitation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, smpcall.ErrClosed
	}
	var out []smpcall.RcvCallInvitation
	for _, cc := range c.contacts {
		if cc.call != nil && cc.call.state == smpcall.TagInvitationReceived {
			out = append(out, c.rcvInvitation(cc, cc.call))
		}
	}
	return out, nil
}

// command runs one command for a contact: build applies the state change
// under the core's lock and returns the message to send, which then goes on
// the contact's pipe in command order. The state changes before the message
// leaves, so that a fast reply finds the new state (as in the real core,
// where the agent queues the message).
func (c *Core) command(ctx context.Context, contactID int64, build func(*coreContact, time.Time) (*Message, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return smpcall.ErrClosed
	}
	cc := c.contacts[contactID]
	if cc == nil {
		c.mu.Unlock()
		return errNotFound
	}
	c.mu.Unlock()

	cc.sendMu.Lock()
	defer cc.sendMu.Unlock()
	if err := ctx.Err(); err != nil {
		return err // do not change the state for a message that cannot leave
	}
	c.mu.Lock()
	msg, err := build(cc, c.cfg.Now())
	var data []byte
	if err == nil && msg != nil {
		msg.Version = c.cfg.ChatVersion
		msg.MsgID = make([]byte, 12)
		if _, err = io.ReadFull(c.cfg.Rand, msg.MsgID); err == nil {
			data, err = msg.Encode()
		}
	}
	c.mu.Unlock()
	if err != nil || data == nil {
		return err
	}
	if err := cc.pipe.Send(ctx, data); err != nil {
		return &smpcall.ChatError{Kind: "errorAgent", Message: err.Error()}
	}
	return nil
}

// currentIn returns the contact's current call if its state is one of
// allowed (any state if none given), else the core's error (protocol §10.1).
func (c *Core) currentIn(cc *coreContact, allowed ...smpcall.CallStateTag) (*coreCall, error) {
	call := cc.call
	if call == nil {
		return nil, &smpcall.ChatError{Kind: smpcall.KindNoCurrentCall}
	}
	if len(allowed) == 0 {
		return call, nil
	}
	for _, s := range allowed {
		if call.state == s {
			return call, nil
		}
	}
	return nil, &smpcall.ChatError{Kind: smpcall.KindCallState, CurrentCallState: call.state}
}

// replaceCall installs call as the contact's current call; a previous
// call's item is closed as if disconnected. Caller holds c.mu.
func (c *Core) replaceCall(cc *coreContact, call *coreCall, now time.Time) {
	if old := cc.call; old != nil && old.item != nil {
		c.reportStatus(cc, old.item, smpcall.StatusDisconnected, now)
	}
	cc.call = call
}

func (c *Core) newItem(cc *coreContact, sent bool, now time.Time) *callItem {
	c.nextItem++
	it := &callItem{id: c.nextItem, sent: sent, status: smpcall.CIStatusPending, updatedAt: now}
	cc.items = append(cc.items, it)
	c.emit(&smpcall.CallItemEvent{User: c.user, Contact: cc.contact, New: true, Item: it.public()})
	return it
}

func (c *Core) setItem(cc *coreContact, it *callItem, status smpcall.CICallStatus, duration int, now time.Time) {
	if it == nil || (it.status == status && it.duration == duration) {
		return
	}
	it.status, it.duration, it.updatedAt = status, duration, now
	c.emit(&smpcall.CallItemEvent{User: c.user, Contact: cc.contact, Item: it.public()})
}

// reportStatus applies a WebRTC status (or an end, which counts as
// disconnected) to a call item: Internal.hs callStatusItemContent, first
// matching row wins (protocol §9).
func (c *Core) reportStatus(cc *coreContact, it *callItem, st smpcall.WebRTCCallStatus, now time.Time) {
	if it == nil {
		return
	}
	status, duration, ok := ItemStatusAfter(it.status, st, now.Sub(it.updatedAt))
	if ok {
		c.setItem(cc, it, status, duration, now)
	}
}

// ItemStatusAfter is the core's rule for a call item's status when a WebRTC
// status is reported (or the call ends, which counts as disconnected):
// Internal.hs callStatusItemContent, protocol §9. sinceUpdate is the time
// since the item last changed; it becomes the duration of a call that ends
// while in progress. ok is false when the item does not change.
func ItemStatusAfter(cur smpcall.CICallStatus, st smpcall.WebRTCCallStatus, sinceUpdate time.Duration) (status smpcall.CICallStatus, duration int, ok bool) {
	switch {
	case cur == smpcall.CIStatusProgress && st == smpcall.StatusConnected:
		return cur, 0, false
	case cur == smpcall.CIStatusProgress && (st == smpcall.StatusDisconnected || st == smpcall.StatusFailed):
		return smpcall.CIStatusEnded, int(sinceUpdate / time.Second), true
	case cur == smpcall.CIStatusPending && st == smpcall.StatusDisconnected:
		return smpcall.CIStatusMissed, 0, true
	case cur == smpcall.CIStatusEnded || cur == smpcall.CIStatusError:
		return cur, 0, false
	}
	switch st {
	case smpcall.StatusConnecting:
		return smpcall.CIStatusNegotiated, 0, true
	case smpcall.StatusConnected:
		return smpcall.CIStatusProgress, 0, true
	case smpcall.StatusDisconnected:
		return smpcall.CIStatusEnded, 0, true
	case smpcall.StatusFailed:
		return smpcall.CIStatusError, 0, true
	}
	return cur, 0, false
}

func (c *Core) rcvInvitation(cc *coreContact, call *coreCall) smpcall.RcvCallInvitation {
	inv := smpcall.RcvCallInvitation{User: c.user, Contact: cc.contact, SharedKey: call.sharedKey,
		CallUUID: call.uuid, CallTs: smpcall.CoreTime{Time: call.ts}}
	if call.peerType != nil {
		inv.CallType = *call.peerType
	}
	return inv
}

// --- received messages (protocol §4.3) -----------------------------------

func (c *Core) readLoop(cc *coreContact) {
	for {
		data, err := cc.pipe.Receive(c.ctx)
		if err != nil {
			if c.ctx.Err() == nil {
				c.log.Warn("smp: pipe closed", "contact", cc.contact.ContactID, "err", err)
			}
			return
		}
		c.receive(cc, data)
	}
}

// receive handles the bytes of one chat message: a single JSON object or a
// JSON array of them (batching, protocol §3.1).
func (c *Core) receive(cc *coreContact, data []byte) {
	msgs, err := splitBatch(data)
	if err != nil {
		c.log.Info("smp: bad chat message", "contact", cc.contact.ContactID, "err", err)
		c.messageError(cc, err.Error())
		return
	}
	for _, one := range msgs {
		m, err := DecodeMessage(one)
		if errors.Is(err, ErrNotCall) {
			continue
		}
		if err != nil {
			// The real core drops the message and creates a "parse error"
			// chat item; we surface it as a message error.
			c.log.Info("smp: malformed call message", "contact", cc.contact.ContactID, "err", err)
			c.messageError(cc, err.Error())
			continue
		}
		if m.Event == EventInvitation && !c.callsAllowed(cc.contact.ContactID) {
			// The real core records a "feature rejected: calls" item (§4.3).
			c.log.Info("smp: calls not allowed; invitation ignored", "contact", cc.contact.ContactID)
			continue
		}
		c.handle(cc, m)
	}
}

// callsAllowed asks Config.CallsAllowed, never with the core's lock held.
func (c *Core) callsAllowed(contactID int64) bool {
	if c.cfg.CallsAllowed == nil {
		return true
	}
	c.mu.Lock()
	cc := c.contacts[contactID]
	c.mu.Unlock()
	return cc == nil || c.cfg.CallsAllowed(cc.contact)
}

func (c *Core) messageError(cc *coreContact, text string) {
	ct := cc.contact
	c.emit(&smpcall.MessageErrorEvent{User: c.user, Contact: &ct, Severity: "error", ErrorMessage: text})
}

func (c *Core) handle(cc *coreContact, m *Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	now := c.cfg.Now()
	if m.Event == EventInvitation {
		c.receiveInvitation(cc, m, now)
		return
	}
	call := cc.call
	// msgCurrentCall: the checks before the state check.
	switch {
	case call == nil:
		c.messageError(cc, m.Event+": no current call")
		return
	case call.id != m.CallID:
		c.messageError(cc, m.Event+": wrong contact or callId")
		return
	}
	wrongState := func() { c.messageError(cc, m.Event+": wrong call state "+haskellState(call.state)) }
	switch m.Event {
	case EventOffer:
		if call.state != smpcall.TagInvitationSent {
			wrongState()
			return
		}
		o := m.Offer
		version := CallVersion1
		if o.CallVersion != nil {
			offered := call.offered
			if offered.Max == 0 {
				offered = CallVersionRange{CallVersion1, CallVersion1}
			}
			if *o.CallVersion < offered.Min || *o.CallVersion > offered.Max {
				// The key would differ from the peer's: refuse rather than
				// run a call whose frames cannot decrypt.
				c.messageError(cc, fmt.Sprintf("%s: call version %d is not in the offered range %s", m.Event, *o.CallVersion, offered))
				return
			}
			version = *o.CallVersion
		}
		if o.CallDHPubKey != nil && call.keys != nil {
			k, err := call.keys.sharedKey(version, call.id, *o.CallDHPubKey)
			if err != nil {
				c.messageError(cc, m.Event+": "+err.Error())
				return
			}
			call.sharedKey = &k
		}
		call.keys = nil
		pt := o.CallType
		call.peerType = &pt
		s := o.RTCSession
		call.peerSession = &s
		call.state = smpcall.TagOfferReceived
		ask := call.localType.Capabilities.Encryption && !o.CallType.Capabilities.Encryption
		c.emit(&smpcall.CallOfferEvent{User: c.user, Contact: cc.contact, CallType: o.CallType,
			Offer: o.RTCSession, SharedKey: call.sharedKey, AskConfirmation: ask})
		c.setItem(cc, call.item, smpcall.CIStatusAccepted, 0, now)
	case EventAnswer:
		if call.state != smpcall.TagOfferSent {
			wrongState()
			return
		}
		s := m.Answer.RTCSession
		call.peerSession = &s
		call.state = smpcall.TagNegotiated
		c.emit(&smpcall.CallAnswerEvent{User: c.user, Contact: cc.contact, Answer: s})
		c.setItem(cc, call.item, smpcall.CIStatusNegotiated, 0, now)
	case EventExtra:
		if call.state != smpcall.TagOfferReceived && call.state != smpcall.TagNegotiated {
			wrongState()
			return
		}
		c.emit(&smpcall.CallExtraInfoEvent{User: c.user, Contact: cc.contact, ExtraInfo: m.Extra.RTCExtraInfo})
	case EventEnd:
		c.emit(&smpcall.CallEndedEvent{User: c.user, Contact: cc.contact})
		c.reportStatus(cc, call.item, smpcall.StatusDisconnected, now)
		cc.call = nil
	}
}

func (c *Core) receiveInvitation(cc *coreContact, m *Message, now time.Time) {
	inv := m.Invitation
	call := &coreCall{id: m.CallID, state: smpcall.TagInvitationReceived, ts: now}
	pt := inv.CallType
	call.peerType = &pt
	if uuid, err := newUUID(c.cfg.Rand); err == nil {
		call.uuid = uuid
	}
	// Call versions (protocol §5.4): with versions on, an invitation with a
	// range is answered with the agreed version (in the offer) and keyed
	// with it; without a range, or with versions off, it is version 1.
	version := CallVersion1
	if c.cfg.CallVersion2 && inv.CallVRange != nil {
		v, ok := c.callVRange().Compatible(*inv.CallVRange)
		if !ok {
			c.messageError(cc, fmt.Sprintf("%s: no call version in common (peer %s, ours %s)", m.Event, inv.CallVRange, c.callVRange()))
			return
		}
		version = v
		call.version = &v
	}
	if inv.CallType.Capabilities.Encryption {
		kp, err := newKeyPair(c.cfg.Rand)
		if err != nil {
			c.log.Error("smp: key generation failed", "err", err)
			return
		}
		if inv.CallDHPubKey != nil {
			k, err := kp.sharedKey(version, m.CallID, *inv.CallDHPubKey)
			if err != nil {
				c.messageError(cc, m.Event+": "+err.Error())
				return
			}
			call.sharedKey = &k
		}
		// Only the public key is kept to send with the offer; the private
		// key is not needed once the shared key exists (protocol §4.1).
		call.keys = &keyPair{pub: kp.pub}
	}
	c.replaceCall(cc, call, now)
	c.emit(&smpcall.CallInvitationEvent{Invitation: c.rcvInvitation(cc, call)})
	call.item = c.newItem(cc, false, now)
}

// haskellState names a state as the core's messageError text does (the
// Haskell constructor, e.g. CSTCallNegotiated).
func haskellState(t smpcall.CallStateTag) string {
	s := string(t)
	if s == "" {
		return "CSTCall"
	}
	return "CSTCall" + string(s[0]-'a'+'A') + s[1:]
}

// newUUID returns a random RFC 4122 version 4 UUID string (the callUUID).
func newUUID(r io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
