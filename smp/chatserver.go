package smp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/smpcall/smpcall"
)

// ChatServerOptions configure a ChatServer; nil means defaults, which are
// as strict as the real core.
type ChatServerOptions struct {
	// Logger receives the server's logs. Default silent. Keys are never
	// logged, and neither are whole frames.
	Logger *slog.Logger
	// Now stamps chat items. Default time.Now.
	Now func() time.Time
	// AcceptOptions configure the WebSocket handshake. Default nil: only
	// same-origin requests (or requests without an Origin, as from
	// programs) are accepted; a page from another origin is refused with
	// 403, as coder/websocket does. Set OriginPatterns to allow other
	// origins; InsecureSkipVerify allows any.
	AcceptOptions *websocket.AcceptOptions
	// BareResponses sends resp objects without the {"Right":…}/{"Left":…}
	// wrapper, as simplex-chat's Server.hs did before resp became a CSRBody
	// (an Either). Default false: wrapped, as the current Server.hs does.
	BareResponses bool
	// Broadcast hands every event to every connected client. The real core
	// does not: all its output goes through one queue (outputQ) that every
	// connection's writer reads, so each event reaches exactly one client,
	// and events wait in the queue while no client is connected. Default
	// false: the real rule. Broadcast is for tests that watch one core
	// with several clients; events still wait while nobody is connected.
	Broadcast bool
	// EventQueueSize bounds the events waiting for a client (the core's
	// outputQ, a TBQueue of tbqSize = 1024 in ChatOpts). When it is full the
	// users' Cores keep their events (the real core blocks its producers
	// the same way). Default 1024.
	EventQueueSize int
	// SendQueueSize bounds the frames (replies and events) waiting to be
	// written to one connection. When it is full the server stops reading
	// that connection's commands and stops taking events for it until the
	// writer catches up, as the real server does with its queues of one;
	// memory per connection stays bounded whatever the client sends.
	// Default 64.
	SendQueueSize int
	// WriteTimeout bounds one write to a client; a client that does not
	// read for that long is disconnected (Stats.SlowClients). Default 10 s.
	WriteTimeout time.Duration
	// MaxMessageSize bounds one frame from a client; a bigger frame closes
	// the connection with status 1009 (message too big). Default 1 MiB.
	MaxMessageSize int64
	// MaxConnections bounds the clients connected at once; more are refused
	// with HTTP 503 before the WebSocket handshake (Stats.Refused). The
	// real core has no limit, but it also serves only localhost. Default
	// 256.
	MaxConnections int
}

// ChatServer serves the chat core's WebSocket API (protocol §8) the way
// `simplex-chat -p PORT` does (apps/simplex-chat/Server.hs), for one or more
// users, each a Core: NewChatServer starts it with one user, who is active,
// and AddUser adds more. It exists so that apps, bots and ChatClient can be
// tested without a real core, and it is as strict as the real one by
// default (see ChatServerOptions):
//
//   - replies carry the request's corrId and events none; resp is wrapped
//     in {"Right":…} or {"Left":…} as a CSRBody is;
//   - each event goes to exactly one connected client, and events produced
//     while no client is connected wait (up to EventQueueSize) and go to
//     the next one;
//   - every user's events are sent, each naming its user;
//   - "/_call invite" and "/call @name" act for the active user only (the
//     core looks the contact up under the active user; a contact of
//     another user is not found); the other call commands act for the user
//     that owns the contact, as in Commands.hs.
//
// Commands: the call commands /_call invite, offer, answer, extra, end,
// reject, status, get and /call @name; /user (/u), /users, /_user <userId>
// (a password argument is accepted and ignored: the simulator has no hidden
// users), /user <name> (without password) and /_contacts <userId>. Anything else
// gets the core's chatCmdError commandError. The real core's contact ids
// are unique across its users: give the Cores of one server distinct
// contact ids (NetworkConfig.UniqueContactIDs); a command naming an id
// that several users have fails with a commandError.
//
// Concurrency: ServeHTTP, AddUser, SetActiveUser, Stats and Close may be
// called concurrently. Each connection runs a reader, a writer and (one
// consumer mode) an event goroutine; each Core has a goroutine taking its
// events. Close disconnects everyone and waits for all of them.
type ChatServer struct {
	opts ChatServerOptions
	log  *slog.Logger

	mu      sync.Mutex
	users   []*Core // in the order added
	active  int64   // the active user's userId
	conns   map[*serverConn]struct{}
	slots   int // connections accepted or being accepted
	closed  bool
	changed chan struct{} // broadcast mode: the set of connections changed

	out    chan []byte // the core's output queue
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	refused atomic.Uint64
	slow    atomic.Uint64
}

type serverConn struct {
	ws     *websocket.Conn
	send   chan []byte // frames to write, bounded
	ctx    context.Context
	cancel context.CancelFunc
}

// ChatServerStats is a snapshot of a ChatServer's counters.
type ChatServerStats struct {
	// Connections is the number of connected clients.
	Connections int
	// QueuedEvents is the number of events waiting for a client.
	QueuedEvents int
	// QueuedFrames is the number of frames waiting to be written, summed
	// over the connections (each holds at most SendQueueSize).
	QueuedFrames int
	// Refused counts connections refused because MaxConnections were open.
	Refused uint64
	// SlowClients counts clients disconnected because a write to them took
	// longer than WriteTimeout.
	SlowClients uint64
}

// NewChatServer serves core as the first user of a simulated chat core; it
// is the active user. It takes over core's event stream.
func NewChatServer(core *Core, opts *ChatServerOptions) *ChatServer {
	s := &ChatServer{conns: make(map[*serverConn]struct{}), changed: make(chan struct{}, 1)}
	if opts != nil {
		s.opts = *opts
	}
	o := &s.opts
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.EventQueueSize <= 0 {
		o.EventQueueSize = 1024
	}
	if o.SendQueueSize <= 0 {
		o.SendQueueSize = 64
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = 1 << 20
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 256
	}
	s.log = o.Logger
	s.out = make(chan []byte, o.EventQueueSize)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.users = []*Core{core}
	s.active = core.User().UserID
	s.startPump(core)
	if o.Broadcast {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.fanOut()
		}()
	}
	return s
}

// AddUser adds another user of the simulated core (not active). It takes
// over core's event stream. The user id must be new.
func (s *ChatServer) AddUser(core *Core) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return smpcall.ErrClosed
	}
	id := core.User().UserID
	for _, u := range s.users {
		if u == core || u.User().UserID == id {
			return fmt.Errorf("smp: user %d already served", id)
		}
	}
	s.users = append(s.users, core)
	s.startPump(core)
	return nil
}

// SetActiveUser makes the user with this id the active user, as the
// "/_user <userId>" command does.
func (s *ChatServer) SetActiveUser(userID int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.userLocked(userID) == nil {
		return fmt.Errorf("smp: no user %d", userID)
	}
	s.active = userID
	return nil
}

// ActiveUser returns the active user.
func (s *ChatServer) ActiveUser() smpcall.User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userLocked(s.active).User()
}

// Stats returns the server's counters.
func (s *ChatServer) Stats() ChatServerStats {
	s.mu.Lock()
	n, frames := len(s.conns), 0
	for c := range s.conns {
		frames += len(c.send)
	}
	s.mu.Unlock()
	return ChatServerStats{Connections: n, QueuedEvents: len(s.out), QueuedFrames: frames, Refused: s.refused.Load(), SlowClients: s.slow.Load()}
}

func (s *ChatServer) userLocked(id int64) *Core {
	for _, u := range s.users {
		if u.User().UserID == id {
			return u
		}
	}
	return nil
}

// startPump moves core's events, encoded, into the output queue. Caller
// holds s.mu or owns s.
func (s *ChatServer) startPump(core *Core) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-s.ctx.Done():
				return
			case ev, ok := <-core.Events():
				if !ok {
					return
				}
				frame := s.eventFrame(core, ev)
				if frame == nil {
					continue
				}
				select {
				case s.out <- frame: // blocks while the queue is full, as writeTBQueue does
				case <-s.ctx.Done():
					return
				}
			}
		}
	}()
}

// eventFrame encodes one of core's events as the core sends it.
func (s *ChatServer) eventFrame(core *Core, ev smpcall.Event) []byte {
	resp, err := EncodeEvent(s.withUserObject(core, ev), s.opts.Now())
	if err != nil || resp == nil {
		if err != nil {
			s.log.Warn("smp: cannot encode event", "type", fmt.Sprintf("%T", ev), "err", err)
		}
		return nil
	}
	return s.frame(nil, resp, false)
}

// frame builds one server frame, wrapped unless BareResponses.
func (s *ChatServer) frame(corrID *string, resp json.RawMessage, isErr bool) []byte {
	if !s.opts.BareResponses {
		resp = WrapEither(resp, isErr)
	}
	b, err := EncodeFrame(corrID, resp)
	if err != nil {
		s.log.Warn("smp: cannot encode frame", "err", err)
		return nil
	}
	return b
}

// userObject returns the user as the core's JSON shows it: the Core's own
// object if it came from JSON, else a realistic User (notes §1) with
// agentUserId as a string (it is an AgentUserId, encoded with strToJSON in
// Types.hs) and activeUser set as now.
func (s *ChatServer) userObject(core *Core) smpcall.User {
	u := core.User()
	if u.Raw() != nil {
		return u
	}
	s.mu.Lock()
	active := s.active == u.UserID
	order := int64(0)
	for i, c := range s.users {
		if c == core {
			order = int64(i + 1)
		}
	}
	s.mu.Unlock()
	type profile struct {
		ProfileID   int64  `json:"profileId"`
		DisplayName string `json:"displayName"`
		FullName    string `json:"fullName"`
		LocalAlias  string `json:"localAlias"`
	}
	b, err := json.Marshal(struct {
		UserID               int64   `json:"userId"`
		AgentUserID          string  `json:"agentUserId"`
		UserContactID        int64   `json:"userContactId"`
		LocalDisplayName     string  `json:"localDisplayName"`
		Profile              profile `json:"profile"`
		ActiveUser           bool    `json:"activeUser"`
		ActiveOrder          int64   `json:"activeOrder"`
		ShowNtfs             bool    `json:"showNtfs"`
		SendRcptsContacts    bool    `json:"sendRcptsContacts"`
		SendRcptsSmallGroups bool    `json:"sendRcptsSmallGroups"`
	}{u.UserID, strconv.FormatInt(u.UserID, 10), u.UserID, u.LocalDisplayName,
		profile{u.UserID, u.LocalDisplayName, "", ""}, active, order, true, true, true})
	if err != nil {
		return u
	}
	return u.WithRaw(b)
}

// withUserObject returns ev with its user shown as userObject.
func (s *ChatServer) withUserObject(core *Core, ev smpcall.Event) smpcall.Event {
	u := s.userObject(core)
	switch e := ev.(type) {
	case *smpcall.CallInvitationEvent:
		c := *e
		c.Invitation.User = u
		return &c
	case *smpcall.CallOfferEvent:
		c := *e
		c.User = u
		return &c
	case *smpcall.CallAnswerEvent:
		c := *e
		c.User = u
		return &c
	case *smpcall.CallExtraInfoEvent:
		c := *e
		c.User = u
		return &c
	case *smpcall.CallEndedEvent:
		c := *e
		c.User = u
		return &c
	case *smpcall.MessageErrorEvent:
		c := *e
		c.User = u
		return &c
	case *smpcall.CallItemEvent:
		c := *e
		c.User = u
		return &c
	}
	return ev
}

// fanOut is the Broadcast mode: it hands each event to every connection,
// and waits with the queue while nobody is connected.
func (s *ChatServer) fanOut() {
	for {
		s.mu.Lock()
		conns := make([]*serverConn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		if len(conns) == 0 {
			select {
			case <-s.changed:
				continue
			case <-s.ctx.Done():
				return
			}
		}
		select {
		case f := <-s.out:
			for _, c := range conns {
				select {
				case c.send <- f:
				case <-c.ctx.Done():
				}
			}
		case <-s.changed:
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *ChatServer) connsChanged() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// ServeHTTP accepts a WebSocket and serves the API on it until it closes.
func (s *ChatServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "smp: chat server closed", http.StatusServiceUnavailable)
		return
	}
	if s.slots >= s.opts.MaxConnections {
		s.mu.Unlock()
		s.refused.Add(1)
		http.Error(w, "smp: too many connections to the chat core", http.StatusServiceUnavailable)
		return
	}
	s.slots++
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		s.slots--
		s.mu.Unlock()
	}()

	ws, err := websocket.Accept(w, r, s.opts.AcceptOptions)
	if err != nil {
		s.log.Info("smp: WebSocket handshake refused", "err", err)
		return
	}
	ws.SetReadLimit(s.opts.MaxMessageSize)
	c := &serverConn{ws: ws, send: make(chan []byte, s.opts.SendQueueSize)}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	defer c.cancel()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ws.Close(websocket.StatusGoingAway, "server closed")
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.connsChanged()
	s.log.Info("smp: client connected")

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.write(c)
	}()
	if !s.opts.Broadcast {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.output(c)
		}()
	}
	s.serve(c)
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connsChanged()
	c.cancel()
	wg.Wait()
	ws.CloseNow()
	s.log.Info("smp: client disconnected")
}

// write writes the connection's frames in order; a write that does not
// finish in WriteTimeout ends the connection.
func (s *ChatServer) write(c *serverConn) {
	for {
		select {
		case <-c.ctx.Done():
			return
		case b := <-c.send:
			wctx, cancel := context.WithTimeout(c.ctx, s.opts.WriteTimeout)
			err := c.ws.Write(wctx, websocket.MessageText, b)
			timedOut := wctx.Err() == context.DeadlineExceeded
			cancel()
			if err != nil {
				if timedOut {
					s.slow.Add(1)
					s.log.Warn("smp: client does not read; disconnecting it", "timeout", s.opts.WriteTimeout)
				}
				c.cancel()
				return
			}
		}
	}
}

// output is one reader of the core's output queue (Server.hs `output`):
// whichever connection takes an event first sends it.
func (s *ChatServer) output(c *serverConn) {
	for {
		select {
		case <-c.ctx.Done():
			return
		case f := <-s.out:
			select {
			case c.send <- f:
			case <-c.ctx.Done():
				return // lost with the connection, as in the real server
			}
		}
	}
}

// serve reads requests and answers them in order, as the core does
// (Server.hs `receive` and `client`). Binary frames are read too:
// WS.receiveData does not tell them apart.
func (s *ChatServer) serve(c *serverConn) {
	for {
		_, data, err := c.ws.Read(c.ctx)
		if err != nil {
			return
		}
		var corrID *string
		var r Response
		req, err := DecodeRequest(data)
		if err != nil {
			// Server.hs sendError Nothing "invalid request".
			r = Response{Type: RespChatCmdError, Err: &smpcall.ChatError{Kind: smpcall.KindCommandError, Message: InvalidRequestMessage}}
		} else {
			corrID = &req.CorrID
			r = s.execute(c.ctx, req.Cmd)
		}
		resp, err := EncodeResponse(r)
		if err != nil {
			s.log.Warn("smp: cannot encode response", "type", r.Type, "err", err)
			continue
		}
		f := s.frame(corrID, resp, r.Type == RespChatCmdError)
		if f == nil {
			continue
		}
		select {
		case c.send <- f: // blocks while the client does not read: back-pressure
		case <-c.ctx.Done():
			return
		}
	}
}

// errAmbiguous: the simulator's users share a contact id, which a real
// core (one database, one id sequence) never has.
func errAmbiguous(id int64) error {
	return &smpcall.ChatError{Kind: smpcall.KindCommandError,
		Message: fmt.Sprintf("simulated core: contact id %d belongs to several users (give them distinct ids: NetworkConfig.UniqueContactIDs)", id)}
}

// owner returns the user whose contact has this id.
func (s *ChatServer) owner(contactID int64) (*Core, error) {
	s.mu.Lock()
	users := append([]*Core(nil), s.users...)
	s.mu.Unlock()
	var found *Core
	for _, u := range users {
		if _, ok := u.contact(contactID); ok {
			if found != nil {
				return nil, errAmbiguous(contactID)
			}
			found = u
		}
	}
	if found == nil {
		return nil, errNotFound
	}
	return found, nil
}

// execute runs one command.
func (s *ChatServer) execute(ctx context.Context, text string) Response {
	cmd, err := ParseCommand(text)
	if err != nil {
		return errResponse(err)
	}
	s.mu.Lock()
	active := s.userLocked(s.active)
	users := append([]*Core(nil), s.users...)
	s.mu.Unlock()
	ok := func(core *Core, err error) Response {
		if err != nil {
			return errResponse(err)
		}
		u := s.userObject(core)
		return Response{Type: RespCmdOk, User: &u}
	}
	forContact := func(run func(*Core) error) Response {
		core, err := s.owner(cmd.ContactID)
		if err != nil {
			return errResponse(err)
		}
		return ok(core, run(core))
	}
	switch cmd.Kind {
	case CommandInvite:
		// APISendCallInvitation: withUser (the active user), getContact.
		return ok(active, active.Invite(ctx, cmd.ContactID, cmd.CallType))
	case CommandCall:
		ct, found := active.contactByName(cmd.Name)
		if !found {
			return errResponse(&smpcall.ChatError{Kind: smpcall.KindStore, Message: "contactNotFoundByName"})
		}
		return ok(active, active.Invite(ctx, ct.ContactID, cmd.CallType))
	case CommandOffer:
		return forContact(func(c *Core) error { return c.Offer(ctx, cmd.ContactID, cmd.Offer) })
	case CommandAnswer:
		return forContact(func(c *Core) error { return c.Answer(ctx, cmd.ContactID, cmd.Session) })
	case CommandExtra:
		return forContact(func(c *Core) error { return c.Extra(ctx, cmd.ContactID, cmd.Extra) })
	case CommandEnd:
		return forContact(func(c *Core) error { return c.End(ctx, cmd.ContactID) })
	case CommandReject:
		return forContact(func(c *Core) error { return c.Reject(ctx, cmd.ContactID) })
	case CommandStatus:
		return forContact(func(c *Core) error { return c.Status(ctx, cmd.ContactID, cmd.Status) })
	case CommandGet:
		// APIGetCallInvitations lists every user's.
		invs := []smpcall.RcvCallInvitation{}
		for _, u := range users {
			got, err := u.Invitations(ctx)
			if err != nil {
				return errResponse(err)
			}
			obj := s.userObject(u)
			for _, inv := range got {
				inv.User = obj
				invs = append(invs, inv)
			}
		}
		return Response{Type: RespCallInvitations, Invitations: invs}
	case CommandUser:
		u := s.userObject(active)
		return Response{Type: RespActiveUser, User: &u}
	case CommandUsers:
		all := make([]smpcall.User, len(users))
		for i, u := range users {
			all[i] = s.userObject(u)
		}
		return Response{Type: RespUsersList, Users: all}
	case CommandSetActiveUser:
		var target *Core
		for _, u := range users {
			if (cmd.Name == "" && u.User().UserID == cmd.UserID) || (cmd.Name != "" && u.User().LocalDisplayName == cmd.Name) {
				target = u
			}
		}
		if target == nil {
			return errResponse(&smpcall.ChatError{Kind: smpcall.KindStore, Message: "userNotFound"})
		}
		s.mu.Lock()
		s.active = target.User().UserID
		s.mu.Unlock()
		u := s.userObject(target)
		return Response{Type: RespActiveUser, User: &u}
	case CommandContacts:
		for _, u := range users {
			if u.User().UserID == cmd.UserID {
				obj := s.userObject(u)
				return Response{Type: RespContactsList, User: &obj, Contacts: u.Contacts()}
			}
		}
		return errResponse(&smpcall.ChatError{Kind: smpcall.KindStore, Message: "userNotFound"})
	}
	return errResponse(&smpcall.ChatError{Kind: smpcall.KindCommandError, Message: CommandParseError})
}

func errResponse(err error) Response {
	var ce *smpcall.ChatError
	if !errors.As(err, &ce) {
		ce = &smpcall.ChatError{Kind: smpcall.KindCommandError, Message: err.Error()}
	}
	return Response{Type: RespChatCmdError, Err: ce}
}

// Close disconnects every client and stops the server's goroutines. The
// Cores are not closed. It may be called more than once.
func (s *ChatServer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.cancel()
	for _, c := range conns {
		c.ws.CloseNow() // at once: a client that stopped reading must not hold us
	}
	s.wg.Wait()
	return nil
}
