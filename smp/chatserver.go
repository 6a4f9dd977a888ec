package smp

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/eventq"
)

// ChatServerOptions configure a ChatServer; nil means defaults.
type ChatServerOptions struct {
	// Logger receives the server's logs. Default silent.
	Logger *slog.Logger
	// Now stamps chat items. Default time.Now.
	Now func() time.Time
	// AcceptOptions configure the WebSocket handshake. Default: only
	// same-host origins, as coder/websocket does.
	AcceptOptions *websocket.AcceptOptions
}

// ChatServer serves the chat core's WebSocket API (protocol §8) for one
// Core: what `simplex-chat -p 5225` serves for its user, so that apps, bots
// or a ChatClient can make calls on the loopback network without a real
// core. Implemented commands: the call commands /_call invite, offer,
// answer, extra, end, reject, status, get and /call @name; the look-ups
// /user (/u), /users and /_contacts <userId>. Anything else gets the core's
// chatCmdError commandError. Responses carry the request's corrId; events
// (callInvitation … callEnded, messageError, newChatItems and
// chatItemUpdated for call items) go to every connected client (the real
// server hands each event to one of them).
//
// Concurrency: ServeHTTP may be called concurrently; each connection runs a
// reader and a writer goroutine; Close disconnects everyone and waits.
type ChatServer struct {
	core *Core
	opts ChatServerOptions
	log  *slog.Logger

	mu     sync.Mutex
	conns  map[*serverConn]struct{}
	closed bool
	wg     sync.WaitGroup
	stop   chan struct{}
}

type serverConn struct {
	ws  *websocket.Conn
	out *eventq.Queue[[]byte]
}

// NewChatServer serves core. It takes over core's event stream.
func NewChatServer(core *Core, opts *ChatServerOptions) *ChatServer {
	s := &ChatServer{core: core, conns: make(map[*serverConn]struct{}), stop: make(chan struct{})}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.Logger == nil {
		s.opts.Logger = slog.New(slog.DiscardHandler)
	}
	if s.opts.Now == nil {
		s.opts.Now = time.Now
	}
	s.log = s.opts.Logger
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.pumpEvents()
	}()
	return s
}

// pumpEvents encodes the core's events and queues them for every client.
func (s *ChatServer) pumpEvents() {
	for {
		select {
		case <-s.stop:
			return
		case ev, ok := <-s.core.Events():
			if !ok {
				return
			}
			resp, err := EncodeEvent(ev, s.opts.Now())
			if err != nil || resp == nil {
				if err != nil {
					s.log.Warn("smp: cannot encode event", "err", err)
				}
				continue
			}
			frame, err := EncodeFrame(nil, resp)
			if err != nil {
				continue
			}
			s.mu.Lock()
			for c := range s.conns {
				c.out.Push(frame)
			}
			s.mu.Unlock()
		}
	}
}

// ServeHTTP accepts a WebSocket and serves the API on it until it closes.
func (s *ChatServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, s.opts.AcceptOptions)
	if err != nil {
		return
	}
	c := &serverConn{ws: ws, out: eventq.New[[]byte]()}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.out.Close()
		ws.Close(websocket.StatusGoingAway, "server closed")
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	ctx, cancel := context.WithCancel(r.Context())
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for b := range c.out.C() {
			wctx, wcancel := context.WithTimeout(ctx, 10*time.Second) // a client that stops reading is dropped
			err := ws.Write(wctx, websocket.MessageText, b)
			wcancel()
			if err != nil {
				cancel()
				return
			}
		}
	}()
	s.serve(ctx, c)
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	cancel()
	c.out.Close()
	<-writerDone
	ws.Close(websocket.StatusNormalClosure, "")
}

// serve reads requests and answers them in order, as the core does.
func (s *ChatServer) serve(ctx context.Context, c *serverConn) {
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			continue
		}
		req, err := DecodeRequest(data)
		if err != nil {
			// The core answers an unreadable request without a corrId.
			s.reply(c, nil, Response{Type: RespChatCmdError, Err: &smpcall.ChatError{Kind: smpcall.KindCommandError, Message: InvalidRequestMessage}})
			continue
		}
		id := req.CorrID
		s.reply(c, &id, s.execute(ctx, req.Cmd))
	}
}

func (s *ChatServer) reply(c *serverConn, corrID *string, r Response) {
	resp, err := EncodeResponse(r)
	if err != nil {
		s.log.Warn("smp: cannot encode response", "err", err)
		return
	}
	frame, err := EncodeFrame(corrID, resp)
	if err != nil {
		return
	}
	c.out.Push(frame)
}

// execute runs one command against the core.
func (s *ChatServer) execute(ctx context.Context, text string) Response {
	cmd, err := ParseCommand(text)
	if err != nil {
		return errResponse(err)
	}
	user := s.core.User()
	ok := Response{Type: RespCmdOk, User: &user}
	run := func(err error) Response {
		if err != nil {
			return errResponse(err)
		}
		return ok
	}
	switch cmd.Kind {
	case CommandInvite:
		return run(s.core.Invite(ctx, cmd.ContactID, cmd.CallType))
	case CommandCall:
		for _, ct := range s.core.Contacts() {
			if ct.LocalDisplayName == cmd.Name {
				return run(s.core.Invite(ctx, ct.ContactID, cmd.CallType))
			}
		}
		return errResponse(&smpcall.ChatError{Kind: smpcall.KindStore, Message: "contactNotFoundByName"})
	case CommandOffer:
		return run(s.core.Offer(ctx, cmd.ContactID, cmd.Offer))
	case CommandAnswer:
		return run(s.core.Answer(ctx, cmd.ContactID, cmd.Session))
	case CommandExtra:
		return run(s.core.Extra(ctx, cmd.ContactID, cmd.Extra))
	case CommandEnd:
		return run(s.core.End(ctx, cmd.ContactID))
	case CommandReject:
		return run(s.core.Reject(ctx, cmd.ContactID))
	case CommandStatus:
		return run(s.core.Status(ctx, cmd.ContactID, cmd.Status))
	case CommandGet:
		invs, err := s.core.Invitations(ctx)
		if err != nil {
			return errResponse(err)
		}
		return Response{Type: RespCallInvitations, Invitations: invs}
	case CommandUser:
		return Response{Type: RespActiveUser, User: &user}
	case CommandUsers:
		return Response{Type: RespUsersList, Users: []smpcall.User{user}}
	case CommandContacts:
		if cmd.UserID != user.UserID {
			return errResponse(&smpcall.ChatError{Kind: smpcall.KindStore, Message: "userNotFound"})
		}
		return Response{Type: RespContactsList, User: &user, Contacts: s.core.Contacts()}
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
// Core is not closed. It may be called more than once.
func (s *ChatServer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	close(s.stop)
	for _, c := range conns {
		c.ws.CloseNow() // at once: a client that stopped reading must not hold us
	}
	s.wg.Wait()
	return nil
}
