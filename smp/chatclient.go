package smp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/eventq"
)

// ErrDisconnected is wrapped by the errors of commands that were pending
// when the WebSocket to the chat core dropped, and of commands sent while
// it is down. Reconnect brings it back.
var ErrDisconnected = errors.New("smp: chat core connection lost")

// writeTimeout bounds one write to the core's socket.
const writeTimeout = 10 * time.Second

// reply is a response, or the news that the connection was lost first.
type reply struct {
	r    Response
	lost bool
}

// ChatClientOptions configure a ChatClient; nil means defaults.
type ChatClientOptions struct {
	// Logger receives the client's logs. Default silent.
	Logger *slog.Logger
	// UserID selects whose events the transport delivers and whose contacts
	// ContactByName searches. Default: the core's active user at Dial.
	UserID int64
	// Dial configures the WebSocket handshake (headers, HTTP client).
	Dial *websocket.DialOptions
	// MaxMessageSize bounds one frame from the core. Default 4 MiB.
	MaxMessageSize int64
}

// ChatClient talks to a running SimpleX chat core over its WebSocket API
// (the terminal client started with `simplex-chat -p 5225`, or this
// package's ChatServer), protocol §8. It implements smpcall.Transport for
// one chat user: each method sends the call command of §8.2 and waits for
// its response; the core's call events arrive on Events.
//
// Concurrency: all methods are safe for concurrent use. One goroutine reads
// the socket; Close stops it and waits. When the socket drops, pending and
// later commands fail with ErrDisconnected, a TransportErrorEvent is
// delivered (a Client then ends its calls), and Reconnect dials again.
type ChatClient struct {
	url  string
	opts ChatClientOptions
	log  *slog.Logger

	events *eventq.Queue[smpcall.Event]

	mu      sync.Mutex
	conn    *websocket.Conn
	gen     int // connection generation, so a stale reader cannot clobber a new one
	pending map[string]chan reply
	nextID  uint64
	user    smpcall.User
	userID  atomic.Int64 // whose events to deliver; 0 until known: all
	closed  bool
	readers sync.WaitGroup

	reconnectMu sync.Mutex // one Reconnect at a time
}

// DialChatCore connects to a chat core's WebSocket URL (e.g.
// ws://127.0.0.1:5225) and learns the user whose calls it carries.
func DialChatCore(ctx context.Context, url string, opts *ChatClientOptions) (*ChatClient, error) {
	c := &ChatClient{url: url, pending: make(map[string]chan reply), events: eventq.New[smpcall.Event]()}
	if opts != nil {
		c.opts = *opts
	}
	if c.opts.Logger == nil {
		c.opts.Logger = slog.New(slog.DiscardHandler)
	}
	if c.opts.MaxMessageSize <= 0 {
		c.opts.MaxMessageSize = 4 << 20
	}
	c.log = c.opts.Logger
	if err := c.connect(ctx); err != nil {
		c.events.Close()
		return nil, err
	}
	if c.opts.UserID == 0 {
		r, err := c.Command(ctx, CmdActiveUser())
		if err == nil && r.User == nil {
			err = fmt.Errorf("smp: %s: no user in the response", CmdActiveUser())
		}
		if err != nil {
			c.Close()
			return nil, err
		}
		c.mu.Lock()
		c.user = *r.User
		c.mu.Unlock()
		c.userID.Store(r.User.UserID)
	} else {
		c.user = smpcall.User{UserID: c.opts.UserID}
		c.userID.Store(c.opts.UserID)
	}
	return c, nil
}

func (c *ChatClient) connect(ctx context.Context) error {
	conn, _, err := websocket.Dial(ctx, c.url, c.opts.Dial)
	if err != nil {
		return fmt.Errorf("smp: dial chat core %s: %w", c.url, err)
	}
	conn.SetReadLimit(c.opts.MaxMessageSize)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		conn.Close(websocket.StatusNormalClosure, "")
		return smpcall.ErrClosed
	}
	// Replace any previous connection: its commands will never be answered
	// on this one, so they fail now.
	old, oldPending := c.conn, c.pending
	c.pending = make(map[string]chan reply)
	c.conn = conn
	c.gen++
	gen := c.gen
	c.readers.Add(1)
	c.mu.Unlock()
	if old != nil {
		old.CloseNow()
	}
	for _, ch := range oldPending {
		ch <- reply{lost: true}
	}
	go func() {
		defer c.readers.Done()
		c.read(conn, gen)
	}()
	return nil
}

// User returns the chat user this transport carries.
func (c *ChatClient) User() smpcall.User {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.user
}

// Reconnect dials the core again after the connection dropped. Calls that
// were in progress are not resumed (the Client ended them); pending
// invitations can be fetched again with Invitations.
func (c *ChatClient) Reconnect(ctx context.Context) error {
	c.reconnectMu.Lock()
	defer c.reconnectMu.Unlock()
	return c.connect(ctx)
}

// read delivers responses to their commands and events to Events until the
// connection fails.
func (c *ChatClient) read(conn *websocket.Conn, gen int) {
	ctx := context.Background()
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			c.dropped(gen, err)
			return
		}
		if typ != websocket.MessageText {
			c.log.Info("smp: ignoring a binary frame from the chat core")
			continue
		}
		f, err := DecodeFrame(data)
		if err != nil {
			c.log.Warn("smp: bad frame from the chat core", "err", err)
			// If it names a command, that command gets the error rather
			// than waiting for an answer that will not come.
			var id struct {
				CorrID *string `json:"corrId"`
			}
			if json.Unmarshal(data, &id) == nil && id.CorrID != nil {
				c.answer(*id.CorrID, Response{Err: &smpcall.ChatError{Kind: smpcall.KindCommandError, Message: "undecodable response: " + err.Error()}})
			}
			continue
		}
		if f.HasCorrID {
			r, err := DecodeResponse(f.Resp)
			if err != nil {
				r = Response{Err: &smpcall.ChatError{Kind: smpcall.KindCommandError, Message: "undecodable response: " + err.Error()}}
			}
			c.answer(f.CorrID, r)
			continue
		}
		evs, err := DecodeEvent(f.Resp)
		if err != nil {
			c.log.Warn("smp: bad event from the chat core", "err", err)
			continue
		}
		for _, ev := range evs {
			if c.forUs(ev) {
				c.events.Push(ev)
			}
		}
	}
}

// answer hands a response to the command waiting for it.
func (c *ChatClient) answer(corrID string, r Response) {
	c.mu.Lock()
	ch := c.pending[corrID]
	delete(c.pending, corrID)
	c.mu.Unlock()
	if ch == nil {
		c.log.Info("smp: response with an unknown corrId", "corrId", corrID)
		return
	}
	ch <- reply{r: r} // buffered
}

// forUs keeps the events of this transport's user.
func (c *ChatClient) forUs(ev smpcall.Event) bool {
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
		u = e.User
	default:
		return true
	}
	uid := c.userID.Load()
	return uid == 0 || u.UserID == 0 || u.UserID == uid
}

// dropped fails the pending commands and tells the Client.
func (c *ChatClient) dropped(gen int, err error) {
	c.mu.Lock()
	if gen != c.gen {
		c.mu.Unlock()
		return
	}
	closed := c.closed
	c.conn = nil
	pending := c.pending
	c.pending = make(map[string]chan reply)
	c.mu.Unlock()
	for _, ch := range pending {
		ch <- reply{lost: true}
	}
	if !closed {
		c.log.Warn("smp: chat core connection lost", "err", err)
		c.events.Push(&smpcall.TransportErrorEvent{Err: fmt.Errorf("%w: %v", ErrDisconnected, err)})
	}
}

// Command sends one command text and returns the core's response. A
// chatCmdError response is returned as a *smpcall.ChatError.
func (c *ChatClient) Command(ctx context.Context, cmd string) (Response, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return Response{}, smpcall.ErrClosed
	}
	conn := c.conn
	if conn == nil {
		c.mu.Unlock()
		return Response{}, fmt.Errorf("%s: %w", firstWords(cmd), ErrDisconnected)
	}
	c.nextID++
	id := strconv.FormatUint(c.nextID, 10)
	ch := make(chan reply, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}
	req, err := json.Marshal(Request{CorrID: id, Cmd: cmd})
	if err != nil {
		forget()
		return Response{}, err
	}
	if err := ctx.Err(); err != nil {
		forget()
		return Response{}, err
	}
	// coder/websocket closes the whole connection when a write's context
	// ends; one caller's deadline must not cut everyone off, so the write
	// gets its own bound and ctx only bounds the wait for the answer.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	err = conn.Write(wctx, websocket.MessageText, req)
	cancel()
	if err != nil {
		forget()
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return Response{}, smpcall.ErrClosed
		}
		return Response{}, fmt.Errorf("%s: %w: %v", firstWords(cmd), ErrDisconnected, err)
	}
	select {
	case rep := <-ch:
		if rep.lost {
			return Response{}, fmt.Errorf("%s: %w", firstWords(cmd), ErrDisconnected)
		}
		if rep.r.Err != nil {
			return rep.r, rep.r.Err
		}
		return rep.r, nil
	case <-ctx.Done():
		forget()
		return Response{}, ctx.Err()
	}
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
	if r.Type != "cmdOk" {
		return fmt.Errorf("smp: %s: unexpected response %q", firstWords(cmd), r.Type)
	}
	return nil
}

// Invite implements smpcall.Transport ("/_call invite").
func (c *ChatClient) Invite(ctx context.Context, contactID int64, ct smpcall.CallType) error {
	cmd, err := CmdInvite(contactID, ct)
	return c.ok(ctx, cmd, err)
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

// Invitations implements smpcall.Transport ("/_call get"), keeping this user's.
func (c *ChatClient) Invitations(ctx context.Context) ([]smpcall.RcvCallInvitation, error) {
	r, err := c.Command(ctx, CmdGetCalls())
	if err != nil {
		return nil, err
	}
	var out []smpcall.RcvCallInvitation
	for _, inv := range r.Invitations {
		if inv.User.UserID == c.userID.Load() {
			out = append(out, inv)
		}
	}
	return out, nil
}

// Contacts lists the user's contacts ("/_contacts <userId>").
func (c *ChatClient) Contacts(ctx context.Context) ([]smpcall.Contact, error) {
	r, err := c.Command(ctx, CmdContacts(c.userID.Load()))
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
func (c *ChatClient) Events() <-chan smpcall.Event { return c.events.C() }

// Close closes the connection, fails pending commands and closes Events.
// It may be called more than once.
func (c *ChatClient) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		conn.Close(websocket.StatusNormalClosure, "")
	}
	done := make(chan struct{})
	go func() { c.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		if conn != nil {
			conn.CloseNow()
		}
		<-done
	}
	c.events.Close()
	return nil
}
