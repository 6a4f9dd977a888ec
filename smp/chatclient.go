package smp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/jsonfield"
)

// Errors of a ChatClient; test with errors.Is.
var (
	// ErrDisconnected is wrapped by the errors of commands that were
	// pending when the WebSocket to the chat core dropped, and of commands
	// sent while it is down (they fail at once; nothing is queued).
	ErrDisconnected = errors.New("smp: chat core connection lost")
	// ErrFrameTooLarge is wrapped by the error of a command whose response
	// was bigger than ChatClientOptions.MaxMessageSize (it was skipped; the
	// connection stays up).
	ErrFrameTooLarge = errors.New("smp: chat core frame larger than MaxMessageSize")
	// ErrNotActiveUser is wrapped by Invite's error when the transport's
	// user is not the core's active user and ChatClientOptions.KeepActiveUser
	// forbids switching: the core places calls only for its active user.
	ErrNotActiveUser = errors.New("smp: not the chat core's active user")
	// ErrUserGone: the core no longer has the transport's user (found when
	// verifying the user after reconnecting); the transport stops.
	ErrUserGone = errors.New("smp: the chat core has no such user")
)

const (
	// writeTimeout bounds one write to the core's socket; a core that does
	// not read for that long counts as disconnected.
	writeTimeout = 10 * time.Second
	// dialTimeout bounds one automatic reconnection attempt (dial and the
	// user check).
	dialTimeout = 10 * time.Second
	// Automatic reconnection waits between attempts: capped exponential
	// backoff with jitter (each wait is drawn from [d/2, d)).
	backoffMin = 100 * time.Millisecond
	backoffMax = 5 * time.Second
	// sendQueueSize bounds the commands waiting for the writer.
	sendQueueSize = 16
)

// ChatClientOptions configure a ChatClient; nil means defaults.
type ChatClientOptions struct {
	// Logger receives the client's logs. Default silent. Frames are never
	// logged (events carry sharedKeys).
	Logger *slog.Logger
	// UserID selects the chat user whose calls the transport carries.
	// Default: the core's active user at Dial.
	UserID int64
	// Dial configures the WebSocket handshake (headers, HTTP client).
	Dial *websocket.DialOptions
	// MaxMessageSize bounds one frame from the core that the client
	// decodes. A bigger frame is read to its end and skipped, without
	// holding more than this in memory; the connection stays up, and a
	// command whose response it was fails with ErrFrameTooLarge. Default
	// 16 MiB: the core sends every event of every user on this socket, and
	// a contact list of a few thousand contacts or a burst of chat items
	// takes megabytes, while the call events are a few kilobytes.
	MaxMessageSize int64
	// EventQueueSize bounds the events waiting to be read from Events.
	// When it is full, further call events are dropped and counted
	// (Stats.DroppedEvents); TransportErrorEvent and TransportRestoredEvent
	// make room by dropping the oldest event. A Client reads events
	// promptly; this only bites a process that does not. Default 1024.
	EventQueueSize int
	// NoReconnect turns off automatic reconnection: a dropped socket is
	// then reported as a TransportErrorEvent with Temporary false, and
	// Reconnect dials again. Default: reconnect by itself.
	NoReconnect bool
	// MaxReconnectTime bounds how long the client keeps trying to
	// reconnect after the socket dropped; then it reports a
	// TransportErrorEvent with Temporary false and stops trying (Reconnect
	// still works). Default 0: forever.
	MaxReconnectTime time.Duration
	// KeepActiveUser forbids Invite to change the core's active user.
	// The core's "/_call invite" looks the contact up under the active user,
	// so a transport for another user must first make its user active
	// ("/_user <userId>", as the apps do when the person switches
	// profiles); with KeepActiveUser, Invite fails with ErrNotActiveUser
	// instead. Default false: switch.
	KeepActiveUser bool
}

// ChatClientStats counts what a ChatClient dropped or skipped.
type ChatClientStats struct {
	// DroppedEvents: events dropped because Events was not read and the
	// event queue was full.
	DroppedEvents uint64
	// OtherUsersEvents: events of other users of the core, not delivered.
	OtherUsersEvents uint64
	// SkippedFrames: frames bigger than MaxMessageSize, skipped.
	SkippedFrames uint64
	// BadFrames: frames that did not decode (bad JSON, a known event of the
	// wrong shape).
	BadFrames uint64
	// Reconnects: connections re-established after a loss.
	Reconnects uint64
}

// ChatClient talks to a running SimpleX chat core over its WebSocket API
// (the terminal client started with `simplex-chat -p PORT`, or this
// package's ChatServer), protocol §8. It implements smpcall.Transport for
// one chat user: each method sends the call command of §8.2 and waits for
// its response; the user's call events arrive on Events.
//
// It must be the only client of its core. The core puts all its output on
// one queue that every connection reads, so with two clients each event
// reaches only one of them; and the core sends the events of all its
// users, which the ChatClient filters by user (it learns or verifies its
// user before it reads any event, so a backlog the core flushes on
// connect cannot leak another user's call, with its sharedKey, to this
// user's Client). The core places calls only for its active user; Invite
// switches the active user to the transport's own when needed (see
// ChatClientOptions.KeepActiveUser).
//
// The calls' media does not depend on this socket. When it drops, pending
// commands fail with ErrDisconnected, a TransportErrorEvent with Temporary
// set is delivered, and the client reconnects by itself with capped
// exponential backoff (100 ms to 5 s, jittered); commands sent meanwhile
// fail at once with ErrDisconnected. Once connected again and the user is
// verified, a TransportRestoredEvent follows. Events the core produced
// meanwhile were queued by the core and arrive then. See NoReconnect and
// MaxReconnectTime.
//
// Concurrency: all methods are safe for concurrent use, and every command
// honours its context, also while its write is blocked. Per connection
// one goroutine reads the socket and one writes it; Close stops them and
// any reconnection, and waits.
type ChatClient struct {
	url  string
	opts ChatClientOptions
	log  *slog.Logger

	ctx    context.Context // the client's lifetime; Close cancels it
	cancel context.CancelFunc
	wg     sync.WaitGroup // sessions' goroutines and the reconnect loop

	events   chan smpcall.Event
	evMu     sync.Mutex // serializes sends to events with its close
	evClosed bool

	mu           sync.Mutex
	sess         *session // nil while disconnected
	user         smpcall.User
	activeID     int64 // the core's active user as last seen; 0 if unknown
	nextID       uint64
	closed       bool
	lossReported bool // a TransportErrorEvent went out since the last connection
	reconnecting bool

	connectMu sync.Mutex // one connection attempt at a time
	inviteMu  sync.Mutex // a switch of the active user and its invite go together

	dropped, otherUsers, skipped, bad, reconnects atomic.Uint64
}

// session is one WebSocket connection to the core.
type session struct {
	ws      *websocket.Conn
	out     chan *outFrame
	pending map[string]chan reply // guarded by ChatClient.mu
	done    chan struct{}
	once    sync.Once
	err     error // why it ended; set before done is closed
	// replaced: ended by Reconnect, not lost (no event).
	replaced atomic.Bool
}

type outFrame struct {
	data      []byte
	cancelled atomic.Bool // the command gave up; do not send if not sent yet
}

// reply is a response, or the news that the connection was lost first.
type reply struct {
	r    Response
	err  error // set instead of r when the response could not be had
	lost bool
}

// DialChatCore connects to a chat core's WebSocket URL (e.g.
// ws://127.0.0.1:5225) and learns the user whose calls it carries: the
// active user ("/user"), or ChatClientOptions.UserID, which it checks
// against "/users". No event is read before the user is known.
func DialChatCore(ctx context.Context, url string, opts *ChatClientOptions) (*ChatClient, error) {
	c := &ChatClient{url: url}
	if opts != nil {
		c.opts = *opts
	}
	o := &c.opts
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = 16 << 20
	}
	if o.EventQueueSize <= 0 {
		o.EventQueueSize = 1024
	}
	c.log = o.Logger
	c.events = make(chan smpcall.Event, o.EventQueueSize)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if o.UserID != 0 {
		c.user = smpcall.User{UserID: o.UserID}
	}
	if err := c.connect(ctx); err != nil {
		c.cancel()
		c.closeEvents()
		return nil, err
	}
	return c, nil
}

// User returns the chat user this transport carries.
func (c *ChatClient) User() smpcall.User {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.user
}

// Stats returns what the client dropped or skipped so far.
func (c *ChatClient) Stats() ChatClientStats {
	return ChatClientStats{DroppedEvents: c.dropped.Load(), OtherUsersEvents: c.otherUsers.Load(),
		SkippedFrames: c.skipped.Load(), BadFrames: c.bad.Load(), Reconnects: c.reconnects.Load()}
}

// Reconnect dials the core again, replacing the current connection if
// there is one (its pending commands fail with ErrDisconnected). It is
// rarely needed: the client reconnects by itself unless NoReconnect is
// set. Pending invitations can be fetched again with Invitations.
func (c *ChatClient) Reconnect(ctx context.Context) error {
	return c.connect(ctx)
}

// connect dials, learns or verifies the user, delivers the backlog the
// core flushed meanwhile (this user's part), and installs the connection.
func (c *ChatClient) connect(ctx context.Context) error {
	c.connectMu.Lock()
	defer c.connectMu.Unlock()
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return smpcall.ErrClosed
	}
	ws, _, err := websocket.Dial(ctx, c.url, c.opts.Dial)
	if err != nil {
		return fmt.Errorf("smp: dial chat core %s: %w", c.url, err)
	}
	// The client enforces its own limit, skipping big frames instead of
	// letting the library close the socket on them.
	ws.SetReadLimit(-1)
	user, active, backlog, err := c.handshake(ctx, ws)
	if err != nil {
		ws.CloseNow()
		return err
	}
	s := &session{ws: ws, out: make(chan *outFrame, sendQueueSize), pending: make(map[string]chan reply), done: make(chan struct{})}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		ws.CloseNow()
		return smpcall.ErrClosed
	}
	old := c.sess
	c.sess = s
	c.user = user
	c.activeID = active
	restored := c.lossReported
	c.lossReported = false
	c.wg.Add(2)
	c.mu.Unlock()
	if old != nil {
		old.replaced.Store(true)
		c.endSession(old, errors.New("replaced by Reconnect"))
	}
	if restored {
		c.reconnects.Add(1)
		c.log.Info("smp: chat core connection restored")
		c.emitTransport(&smpcall.TransportRestoredEvent{})
	}
	// The backlog before anything the read loop delivers, to keep the
	// core's order.
	for _, ev := range backlog {
		c.deliver(ev)
	}
	go func() {
		defer c.wg.Done()
		c.writeLoop(s)
	}()
	go func() {
		defer c.wg.Done()
		c.readLoop(s)
	}()
	return nil
}

// handshake sends "/user" (user not known yet) or "/users" (to verify a
// known user) on a new connection and reads until its reply, keeping the
// events that arrive first: the core flushes events it queued while no
// client was connected, and they may belong to any of its users.
func (c *ChatClient) handshake(ctx context.Context, ws *websocket.Conn) (user smpcall.User, active int64, backlog []smpcall.Event, err error) {
	c.mu.Lock()
	want := c.user.UserID
	c.nextID++
	id := strconv.FormatUint(c.nextID, 10)
	c.mu.Unlock()
	cmd := CmdActiveUser()
	if want != 0 {
		cmd = CmdUsers()
	}
	lost := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("smp: %s: %w", cmd, ctx.Err())
		}
		return fmt.Errorf("smp: %s: %w: %v", cmd, ErrDisconnected, err)
	}
	req, _ := json.Marshal(Request{CorrID: id, Cmd: cmd})
	if err := ws.Write(ctx, websocket.MessageText, req); err != nil {
		return user, 0, nil, lost(err)
	}
	var pending []smpcall.Event
	for {
		data, size, err := c.readFrame(ctx, ws)
		if err != nil {
			return user, 0, nil, lost(err)
		}
		if size > 0 {
			c.skipped.Add(1)
			if frameCorrID(data) == id {
				return user, 0, nil, fmt.Errorf("smp: %s: %w (%d bytes)", cmd, ErrFrameTooLarge, size)
			}
			continue
		}
		if uninteresting(data) {
			continue
		}
		f, err := DecodeFrame(data)
		if err != nil {
			c.bad.Add(1)
			continue
		}
		if !f.HasCorrID {
			evs, err := DecodeEvent(f.Resp)
			if err != nil {
				c.bad.Add(1)
				continue
			}
			// Bounded like the event queue; the excess is dropped.
			for _, ev := range evs {
				if len(pending) < c.opts.EventQueueSize {
					pending = append(pending, ev)
				} else {
					c.dropped.Add(1)
				}
			}
			continue
		}
		if f.CorrID != id {
			continue
		}
		r, err := DecodeResponse(f.Resp)
		if err != nil {
			return user, 0, nil, fmt.Errorf("smp: %s: %w", cmd, err)
		}
		if r.Err != nil {
			return user, 0, nil, fmt.Errorf("smp: %s: %w", cmd, r.Err)
		}
		switch {
		case want == 0 && r.Type == RespActiveUser && r.User != nil:
			user, active = *r.User, r.User.UserID
		case want != 0 && r.Type == RespUsersList:
			found := false
			for _, u := range r.Users {
				if u.UserID == want {
					user, found = u, true
				}
				if isActive(u) {
					active = u.UserID
				}
			}
			if !found {
				return user, 0, nil, fmt.Errorf("smp: user %d: %w", want, ErrUserGone)
			}
		default:
			return user, 0, nil, fmt.Errorf("smp: %s: unexpected response %s", cmd, jsonfield.Quote(r.Type))
		}
		break
	}
	for _, ev := range pending {
		if forUser(ev, user.UserID) {
			backlog = append(backlog, ev)
		} else {
			c.otherUsers.Add(1)
		}
	}
	return user, active, backlog, nil
}

// isActive reads "activeUser" from a user object as the core sent it.
func isActive(u smpcall.User) bool {
	var v struct {
		ActiveUser bool `json:"activeUser"`
	}
	return u.Raw() != nil && json.Unmarshal(u.Raw(), &v) == nil && v.ActiveUser
}

// readFrame reads one text frame of at most MaxMessageSize bytes. A bigger
// one is read to its end and dropped: then data is its beginning and size
// its length. Binary frames (the core sends none) are skipped.
func (c *ChatClient) readFrame(ctx context.Context, ws *websocket.Conn) (data []byte, size int64, err error) {
	for {
		typ, r, err := ws.Reader(ctx)
		if err != nil {
			return nil, 0, err
		}
		limit := c.opts.MaxMessageSize
		data, err := io.ReadAll(io.LimitReader(r, limit+1))
		if err != nil {
			return nil, 0, err
		}
		if int64(len(data)) <= limit {
			if typ != websocket.MessageText {
				c.skipped.Add(1)
				continue
			}
			return data, 0, nil
		}
		n, err := io.Copy(io.Discard, r)
		if err != nil {
			return nil, 0, err
		}
		head := data[:min(len(data), 256)]
		return head, int64(len(data)) + n, nil
	}
}

// corrIDPrefix finds the corrId at the start of a frame: Server.hs encodes
// ChatSrvResponse with its fields in order, corrId first.
var corrIDPrefix = regexp.MustCompile(`^\s*\{\s*"corrId"\s*:\s*"([^"\\]{1,64})"`)

func frameCorrID(head []byte) string {
	if m := corrIDPrefix.FindSubmatch(head); m != nil {
		return string(m[1])
	}
	return ""
}

// readLoop delivers responses to their commands and this user's events to
// Events until the connection fails.
func (c *ChatClient) readLoop(s *session) {
	for {
		data, size, err := c.readFrame(c.ctx, s.ws)
		if err != nil {
			c.endSession(s, err)
			return
		}
		if size > 0 {
			c.skipped.Add(1)
			c.log.Warn("smp: skipped a frame from the chat core larger than MaxMessageSize", "bytes", size, "limit", c.opts.MaxMessageSize)
			if id := frameCorrID(data); id != "" {
				c.answer(s, id, reply{err: fmt.Errorf("%w (%d bytes, limit %d)", ErrFrameTooLarge, size, c.opts.MaxMessageSize)})
			}
			continue
		}
		c.handleFrame(s, data)
	}
}

// eventPrefix reads the type of an event frame from its first bytes:
// Server.hs writes corrId (absent for events) then resp, and aeson's
// tagged objects start with "type".
var eventPrefix = regexp.MustCompile(`^\s*\{\s*"resp"\s*:\s*(?:\{\s*"(?:Right|Left)"\s*:\s*)?\{\s*"type"\s*:\s*"([A-Za-z0-9_]{1,64})"`)

var (
	callItemMarkers = [][]byte{[]byte(`"sndCall"`), []byte(`"rcvCall"`)}
	eventsWithItems = map[string]bool{EvNewChatItems: true, EvNewChatItem: true, EvChatItemUpdated: true}
	callEvents      = map[string]bool{EvCallInvitation: true, EvCallOffer: true, EvCallAnswer: true, EvCallExtraInfo: true,
		EvCallEnded: true, EvMessageError: true, EvChatError: true, EvChatErrors: true}
)

// uninteresting reports, without decoding the frame, that it is an event
// DecodeEvent would turn into nothing: a type it does not know, or chat
// items none of which is a call item. The core sends every event of every
// user on this socket, and most of them (messages, receipts, contact list
// updates) are not about calls; decoding a multi-megabyte one several
// times over would be wasted. Frames it cannot classify are decoded.
func uninteresting(data []byte) bool {
	m := eventPrefix.FindSubmatch(data[:min(len(data), 512)])
	if m == nil {
		return false
	}
	switch {
	case callEvents[string(m[1])]:
		return false
	case eventsWithItems[string(m[1])]:
		for _, mk := range callItemMarkers {
			if bytes.Contains(data, mk) {
				return false
			}
		}
		return true
	}
	return true
}

func (c *ChatClient) handleFrame(s *session, data []byte) {
	if uninteresting(data) {
		return
	}
	f, err := DecodeFrame(data)
	if err != nil {
		c.bad.Add(1)
		c.log.Warn("smp: bad frame from the chat core", "err", err)
		// If it names a command, that command gets the error rather than
		// waiting for an answer that will not come.
		var id struct {
			CorrID *string `json:"corrId"`
		}
		if json.Unmarshal(data, &id) == nil && id.CorrID != nil {
			c.answer(s, *id.CorrID, reply{r: Response{Err: &smpcall.ChatError{Kind: smpcall.KindCommandError, Message: "undecodable response: " + err.Error()}}})
		}
		return
	}
	if f.HasCorrID {
		r, err := DecodeResponse(f.Resp)
		if err != nil {
			c.bad.Add(1)
			r = Response{Err: &smpcall.ChatError{Kind: smpcall.KindCommandError, Message: "undecodable response: " + err.Error()}}
		}
		if r.Type == RespActiveUser && r.User != nil {
			c.mu.Lock()
			c.activeID = r.User.UserID
			c.mu.Unlock()
		}
		c.answer(s, f.CorrID, reply{r: r})
		return
	}
	evs, err := DecodeEvent(f.Resp)
	if err != nil {
		c.bad.Add(1)
		c.log.Warn("smp: bad event from the chat core", "err", err)
		c.badEvent(f.Resp, err)
		return
	}
	for _, ev := range evs {
		c.deliver(ev)
	}
}

// badEvent tells this user's Client about a call event of theirs that did
// not decode, so that a call does not wait for what will not come. Whose
// it is (user and contact) is read leniently; other users' are only
// counted.
func (c *ChatClient) badEvent(resp json.RawMessage, err error) {
	type id struct {
		UserID    int64 `json:"userId"`
		ContactID int64 `json:"contactId"`
	}
	var v struct {
		Type       string `json:"type"`
		User       *id    `json:"user"`
		Contact    *id    `json:"contact"`
		Invitation *struct {
			User    *id `json:"user"`
			Contact *id `json:"contact"`
		} `json:"callInvitation"`
	}
	_, inner, derr := decodeResp(resp)
	if derr != nil || json.Unmarshal(inner, &v) != nil || !strings.HasPrefix(v.Type, "call") {
		return
	}
	uid := int64(0)
	contact := v.Contact
	if v.User != nil {
		uid = v.User.UserID
	} else if v.Invitation != nil && v.Invitation.User != nil {
		uid = v.Invitation.User.UserID
	}
	if contact == nil && v.Invitation != nil {
		contact = v.Invitation.Contact
	}
	c.mu.Lock()
	me := c.user
	c.mu.Unlock()
	if uid != me.UserID {
		return
	}
	ev := &smpcall.MessageErrorEvent{User: me, Severity: "error", ErrorMessage: "smp: undecodable event from the chat core: " + err.Error()}
	// Naming the contact lets the Client end a call that waits for
	// exactly this event (an offer whose sharedKey is not a key).
	if contact != nil && contact.ContactID != 0 {
		ev.Contact = &smpcall.Contact{ContactID: contact.ContactID}
	}
	c.emit(ev)
}

// deliver emits ev if it is this transport's user's.
func (c *ChatClient) deliver(ev smpcall.Event) {
	c.mu.Lock()
	uid := c.user.UserID
	c.mu.Unlock()
	if !forUser(ev, uid) {
		c.otherUsers.Add(1)
		return
	}
	c.emit(ev)
}

// forUser keeps the events of one user; an event that names no user (a
// chatError without user_) is kept: it carries no call data.
func forUser(ev smpcall.Event, uid int64) bool {
	var u smpcall.User
	switch e := ev.(type) {
	case *smpcall.CallInvitationEvent:
		u = e.Invitation.User
	case *smpcall.CallOfferEvent:
		u = e.User
	case *smpcall.CallAnswerEvent:
		u = e.User
	case *smpcall.CallExtraInfoEvent:
		u = e.User
	case *smpcall.CallEndedEvent:
		u = e.User
	case *smpcall.CallItemEvent:
		u = e.User
	case *smpcall.MessageErrorEvent:
		if e.User.UserID == 0 {
			return true
		}
		u = e.User
	default:
		return true
	}
	return u.UserID == uid
}

// emit queues a call event, or drops and counts it when the queue is full.
func (c *ChatClient) emit(ev smpcall.Event) {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	if c.evClosed {
		return
	}
	select {
	case c.events <- ev:
	default:
		if n := c.dropped.Add(1); n == 1 || n%1000 == 0 {
			c.log.Warn("smp: event queue full; dropping chat core events", "dropped", n, "limit", c.opts.EventQueueSize)
		}
	}
}

// emitTransport queues a transport event, dropping the oldest queued event
// if there is no room: the Client must learn about the connection.
func (c *ChatClient) emitTransport(ev smpcall.Event) {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	if c.evClosed {
		return
	}
	for {
		select {
		case c.events <- ev:
			return
		default:
		}
		select {
		case <-c.events:
			c.dropped.Add(1)
		default:
		}
	}
}

func (c *ChatClient) closeEvents() {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	if !c.evClosed {
		c.evClosed = true
		close(c.events)
	}
}

// answer hands a reply to the command waiting for it.
func (c *ChatClient) answer(s *session, corrID string, r reply) {
	c.mu.Lock()
	ch := s.pending[corrID]
	delete(s.pending, corrID)
	c.mu.Unlock()
	if ch == nil {
		c.log.Info("smp: response with an unknown corrId", "corrId", corrID)
		return
	}
	ch <- r // buffered; only one sender, the one that removed it
}

// writeLoop writes the session's requests in order.
func (c *ChatClient) writeLoop(s *session) {
	for {
		select {
		case <-s.done:
			return
		case f := <-s.out:
			if f.cancelled.Load() {
				continue
			}
			// coder/websocket closes the connection when a write's context
			// ends; the writer's own bound decides that, not a caller's.
			wctx, cancel := context.WithTimeout(c.ctx, writeTimeout)
			err := s.ws.Write(wctx, websocket.MessageText, f.data)
			cancel()
			if err != nil {
				c.endSession(s, fmt.Errorf("write: %w", err))
				return
			}
		}
	}
}

// endSession ends a connection once: it fails its pending commands and,
// if it was the current one and not replaced or closed, reports the loss
// and starts reconnecting.
func (c *ChatClient) endSession(s *session, err error) {
	first := false
	s.once.Do(func() {
		first = true
		s.err = err
		close(s.done)
	})
	if !first {
		return
	}
	s.ws.CloseNow()
	c.mu.Lock()
	current := c.sess == s
	if current {
		c.sess = nil
	}
	pending := s.pending
	s.pending = make(map[string]chan reply)
	closed := c.closed
	report := current && !closed && !s.replaced.Load()
	temporary := !c.opts.NoReconnect
	startLoop := report && temporary && !c.reconnecting
	if report {
		c.lossReported = true
	}
	if startLoop {
		c.reconnecting = true
		c.wg.Add(1)
	}
	c.mu.Unlock()
	for _, ch := range pending {
		ch <- reply{lost: true}
	}
	if !report {
		return
	}
	c.log.Warn("smp: chat core connection lost", "err", err, "reconnecting", temporary)
	c.emitTransport(&smpcall.TransportErrorEvent{Err: fmt.Errorf("%w: %v", ErrDisconnected, err), Temporary: temporary})
	if startLoop {
		go func() {
			defer c.wg.Done()
			c.reconnectLoop(time.Now())
		}()
	}
}

// reconnectLoop dials again with capped, jittered exponential backoff until
// connected, closed, or MaxReconnectTime is over.
func (c *ChatClient) reconnectLoop(lostAt time.Time) {
	defer func() {
		c.mu.Lock()
		c.reconnecting = false
		c.mu.Unlock()
	}()
	delay := backoffMin
	for {
		wait := delay/2 + rand.N(delay/2)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return
		}
		c.mu.Lock()
		done := c.closed || c.sess != nil // closed, or Reconnect was called
		c.mu.Unlock()
		if done {
			return
		}
		actx, cancel := context.WithTimeout(c.ctx, dialTimeout)
		err := c.connect(actx)
		cancel()
		if err == nil || errors.Is(err, smpcall.ErrClosed) {
			return
		}
		permanent := errors.Is(err, ErrUserGone)
		if !permanent && c.opts.MaxReconnectTime > 0 && time.Since(lostAt) >= c.opts.MaxReconnectTime {
			permanent = true
			err = fmt.Errorf("%w: gave up reconnecting after %v: %v", ErrDisconnected, c.opts.MaxReconnectTime, err)
		}
		if permanent {
			c.log.Warn("smp: chat core connection lost for good", "err", err)
			c.emitTransport(&smpcall.TransportErrorEvent{Err: err, Temporary: false})
			return
		}
		c.log.Info("smp: reconnecting to the chat core failed", "err", err, "retry in", delay)
		delay = min(delay*2, backoffMax)
	}
}

// Command sends one command text and returns the core's response. A
// chatCmdError response is returned as a *smpcall.ChatError. It fails at
// once with ErrDisconnected while the connection is down, with ctx.Err()
// when ctx ends first (the command may still have reached the core), with
// ErrDisconnected when the connection drops before the response, and with
// ErrFrameTooLarge when the response is bigger than MaxMessageSize.
func (c *ChatClient) Command(ctx context.Context, cmd string) (Response, error) {
	if err := ctx.Err(); err != nil {
		return Response{}, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return Response{}, smpcall.ErrClosed
	}
	s := c.sess
	if s == nil {
		c.mu.Unlock()
		return Response{}, fmt.Errorf("%s: %w", firstWords(cmd), ErrDisconnected)
	}
	c.nextID++
	id := strconv.FormatUint(c.nextID, 10)
	ch := make(chan reply, 1)
	s.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(s.pending, id)
		c.mu.Unlock()
	}
	req, err := json.Marshal(Request{CorrID: id, Cmd: cmd})
	if err != nil {
		forget()
		return Response{}, err
	}
	f := &outFrame{data: req}
	select {
	case s.out <- f:
	case <-ctx.Done():
		forget()
		return Response{}, ctx.Err()
	case <-s.done:
		forget()
		return Response{}, c.lostErr(cmd)
	}
	select {
	case rep := <-ch:
		switch {
		case rep.lost:
			return Response{}, c.lostErr(cmd)
		case rep.err != nil:
			return Response{}, fmt.Errorf("smp: %s: %w", firstWords(cmd), rep.err)
		case rep.r.Err != nil:
			return rep.r, rep.r.Err
		}
		return rep.r, nil
	case <-ctx.Done():
		f.cancelled.Store(true)
		forget()
		return Response{}, ctx.Err()
	}
}

func (c *ChatClient) lostErr(cmd string) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return smpcall.ErrClosed
	}
	return fmt.Errorf("%s: %w", firstWords(cmd), ErrDisconnected)
}

// firstWords names a command in errors without its (possibly large) JSON.
func firstWords(cmd string) string {
	f := strings.Fields(cmd)
	if len(f) > 3 {
		f = f[:3]
	}
	return strings.Join(f, " ")
}

func (c *ChatClient) ok(ctx context.Context, cmd string, err error) error {
	if err != nil {
		return err
	}
	r, err := c.Command(ctx, cmd)
	if err != nil {
		return err
	}
	if r.Type != RespCmdOk {
		return fmt.Errorf("smp: %s: unexpected response %s", firstWords(cmd), jsonfield.Quote(r.Type))
	}
	return nil
}

// Invite implements smpcall.Transport ("/_call invite"). The core invites
// only for its active user (Commands.hs APISendCallInvitation runs under
// withUser and looks the contact up for that user), so when the
// transport's user is not active, Invite first makes it active with
// "/_user <userId>" — unless KeepActiveUser is set, when it fails with
// ErrNotActiveUser. If the core says the contact is not found and its
// active user turns out to have changed behind this client's back, it
// switches and tries once more.
func (c *ChatClient) Invite(ctx context.Context, contactID int64, ct smpcall.CallType) error {
	cmd, err := CmdInvite(contactID, ct)
	if err != nil {
		return err
	}
	c.inviteMu.Lock()
	defer c.inviteMu.Unlock()
	if err := c.ensureActive(ctx, cmd); err != nil {
		return err
	}
	err = c.ok(ctx, cmd, nil)
	var ce *smpcall.ChatError
	if err == nil || !errors.As(err, &ce) || ce.Kind != smpcall.KindStore {
		return err
	}
	r, rerr := c.Command(ctx, CmdActiveUser())
	if rerr != nil || r.User == nil || r.User.UserID == c.User().UserID {
		return err
	}
	if err := c.ensureActive(ctx, cmd); err != nil {
		return err
	}
	return c.ok(ctx, cmd, nil)
}

// ensureActive makes the transport's user the core's active user.
func (c *ChatClient) ensureActive(ctx context.Context, cmd string) error {
	c.mu.Lock()
	me, active := c.user.UserID, c.activeID
	c.mu.Unlock()
	if active == me {
		return nil
	}
	if c.opts.KeepActiveUser {
		return fmt.Errorf("smp: %s: %w: user %d is not active (active: %d), and KeepActiveUser is set", firstWords(cmd), ErrNotActiveUser, me, active)
	}
	r, err := c.Command(ctx, CmdSetActiveUser(me))
	if err != nil {
		return fmt.Errorf("smp: %s: making user %d active: %w", firstWords(cmd), me, err)
	}
	if r.Type != RespActiveUser || r.User == nil || r.User.UserID != me {
		return fmt.Errorf("smp: %s: making user %d active: unexpected response %s", firstWords(cmd), me, jsonfield.Quote(r.Type))
	}
	c.mu.Lock()
	c.activeID = me
	c.mu.Unlock()
	c.log.Info("smp: made the transport's user the core's active user", "userId", me)
	return nil
}

// Offer implements smpcall.Transport ("/_call offer").
func (c *ChatClient) Offer(ctx context.Context, contactID int64, offer smpcall.WebRTCCallOffer) error {
	cmd, err := CmdOffer(contactID, offer)
	return c.ok(ctx, cmd, err)
}

// Answer implements smpcall.Transport ("/_call answer").
func (c *ChatClient) Answer(ctx context.Context, contactID int64, answer smpcall.WebRTCSession) error {
	cmd, err := CmdAnswer(contactID, answer)
	return c.ok(ctx, cmd, err)
}

// Extra implements smpcall.Transport ("/_call extra").
func (c *ChatClient) Extra(ctx context.Context, contactID int64, extra smpcall.WebRTCExtraInfo) error {
	cmd, err := CmdExtra(contactID, extra)
	return c.ok(ctx, cmd, err)
}

// End implements smpcall.Transport ("/_call end").
func (c *ChatClient) End(ctx context.Context, contactID int64) error {
	return c.ok(ctx, CmdEnd(contactID), nil)
}

// Reject implements smpcall.Transport ("/_call reject").
func (c *ChatClient) Reject(ctx context.Context, contactID int64) error {
	return c.ok(ctx, CmdReject(contactID), nil)
}

// Status implements smpcall.Transport ("/_call status").
func (c *ChatClient) Status(ctx context.Context, contactID int64, status smpcall.WebRTCCallStatus) error {
	cmd, err := CmdStatus(contactID, status)
	return c.ok(ctx, cmd, err)
}

// Invitations implements smpcall.Transport ("/_call get"), keeping this
// user's (the core lists every user's).
func (c *ChatClient) Invitations(ctx context.Context) ([]smpcall.RcvCallInvitation, error) {
	r, err := c.Command(ctx, CmdGetCalls())
	if err != nil {
		return nil, err
	}
	me := c.User().UserID
	var out []smpcall.RcvCallInvitation
	for _, inv := range r.Invitations {
		if inv.User.UserID == me {
			out = append(out, inv)
		}
	}
	return out, nil
}

// Contacts lists the user's contacts ("/_contacts <userId>").
func (c *ChatClient) Contacts(ctx context.Context) ([]smpcall.Contact, error) {
	r, err := c.Command(ctx, CmdContacts(c.User().UserID))
	if err != nil {
		return nil, err
	}
	return r.Contacts, nil
}

// ContactByName finds a contact by its local display name (or, failing
// that, its profile's display name).
func (c *ChatClient) ContactByName(ctx context.Context, name string) (smpcall.Contact, error) {
	cs, err := c.Contacts(ctx)
	if err != nil {
		return smpcall.Contact{}, err
	}
	for _, ct := range cs {
		if ct.LocalDisplayName == name {
			return ct, nil
		}
	}
	for _, ct := range cs {
		if ct.Profile.DisplayName == name {
			return ct, nil
		}
	}
	return smpcall.Contact{}, fmt.Errorf("smp: no contact named %q", name)
}

// Events implements smpcall.Transport.
func (c *ChatClient) Events() <-chan smpcall.Event { return c.events }

// Close closes the connection, stops reconnecting, fails pending commands
// with smpcall.ErrClosed and closes Events. It may be called more than once.
func (c *ChatClient) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.wg.Wait()
		return nil
	}
	c.closed = true
	s := c.sess
	c.mu.Unlock()
	c.cancel() // ends the reads and writes in progress and the reconnect loop
	if s != nil {
		c.endSession(s, smpcall.ErrClosed)
	}
	c.wg.Wait()
	c.closeEvents()
	return nil
}
