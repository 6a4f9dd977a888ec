package smp_test

// Tests of fidelity to the real chat core (issue 12): the framing, the
// delivery rules and the connection behaviour of simplex-chat's WebSocket
// server (apps/simplex-chat/Server.hs) that the simulator must reproduce
// and the ChatClient must survive.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/smp"
)

const testWait = 10 * time.Second

func wsURL(hs *httptest.Server) string { return "ws" + strings.TrimPrefix(hs.URL, "http") }

// serveCore serves h on a real WebSocket on 127.0.0.1; h owns the socket.
// The sockets are cut and h's context cancelled when the test ends.
func serveCore(t *testing.T, h func(ctx context.Context, ws *websocket.Conn)) string {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []*websocket.Conn
	ctx, cancel := context.WithCancel(context.Background())
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		ws.SetReadLimit(-1)
		mu.Lock()
		conns = append(conns, ws)
		mu.Unlock()
		wg.Add(1)
		defer wg.Done()
		defer ws.CloseNow()
		h(ctx, ws)
	}))
	t.Cleanup(func() {
		cancel()
		mu.Lock()
		for _, c := range conns {
			c.CloseNow()
		}
		mu.Unlock()
		hs.Close()
		wg.Wait()
	})
	return wsURL(hs)
}

// rawFrame is a server frame decoded loosely, to look at the wire shape.
type rawFrame struct {
	CorrID *string                    `json:"corrId"`
	Resp   map[string]json.RawMessage `json:"resp"`
}

func (f rawFrame) typ() string {
	var t string
	_ = json.Unmarshal(f.Resp["type"], &t)
	return t
}

// inner returns the tagged object inside a Left/Right wrapper and which it was.
func (f rawFrame) inner(t *testing.T) (string, rawFrame) {
	t.Helper()
	for _, k := range []string{"Right", "Left"} {
		if v, ok := f.Resp[k]; ok {
			var in rawFrame
			require.NoError(t, json.Unmarshal(v, &in.Resp))
			in.CorrID = f.CorrID
			return k, in
		}
	}
	return "", f
}

func readRaw(t *testing.T, ctx context.Context, ws *websocket.Conn) rawFrame {
	t.Helper()
	_, b, err := ws.Read(ctx)
	require.NoError(t, err)
	var f rawFrame
	require.NoError(t, json.Unmarshal(b, &f), "%s", b)
	return f
}

func send(t *testing.T, ctx context.Context, ws *websocket.Conn, corrID, cmd string) {
	t.Helper()
	b, err := json.Marshal(smp.Request{CorrID: corrID, Cmd: cmd})
	require.NoError(t, err)
	require.NoError(t, ws.Write(ctx, websocket.MessageText, b))
}

// simulated starts alice and bob on a loopback network with a ChatServer
// for alice; it returns the network, alice's core and the server's URL.
func simulated(t *testing.T, opts *smp.ChatServerOptions) (*smp.Network, *smp.Core, string) {
	t.Helper()
	n := smp.NewNetwork(nil)
	alice, err := n.AddUser("alice", nil)
	require.NoError(t, err)
	_, err = n.AddUser("bob", nil)
	require.NoError(t, err)
	_, _, err = n.Connect("alice", "bob")
	require.NoError(t, err)
	srv := smp.NewChatServer(alice, opts)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
		require.NoError(t, n.Close())
	})
	return n, alice, wsURL(hs)
}

// The current Server.hs sends resp as a Haskell Either (CSRBody), which
// aeson writes {"Right":…} or {"Left":…}; the simulator does the same by
// default, and the ChatClient works against it end to end.
func TestChatServerWrapsRepliesInEither(t *testing.T) {
	n, _, url := simulated(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	defer ws.CloseNow()

	send(t, ctx, ws, "1", "/user")
	f := readRaw(t, ctx, ws)
	side, in := f.inner(t)
	require.Equal(t, "Right", side, "reply %v", f.Resp)
	require.Equal(t, "1", *in.CorrID)
	require.Equal(t, "activeUser", in.typ())

	send(t, ctx, ws, "2", "/nonsense")
	side, in = readRaw(t, ctx, ws).inner(t)
	require.Equal(t, "Left", side)
	require.Equal(t, "chatCmdError", in.typ())

	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte("not json")))
	f = readRaw(t, ctx, ws)
	require.Nil(t, f.CorrID, "an unreadable request is answered without corrId")
	side, in = f.inner(t)
	require.Equal(t, "Left", side)
	require.Equal(t, "chatCmdError", in.typ())

	// An event: bob calls alice.
	require.NoError(t, n.Core("bob").Invite(ctx, n.ContactID("bob", "alice"), smpcall.DefaultCallType))
	f = readRaw(t, ctx, ws)
	require.Nil(t, f.CorrID)
	side, in = f.inner(t)
	require.Equal(t, "Right", side)
	require.Equal(t, "callInvitation", in.typ())
	ws.Close(websocket.StatusNormalClosure, "")

	// The ChatClient decodes the wrapped form.
	tr, err := smp.DialChatCore(ctx, url, nil)
	require.NoError(t, err)
	defer tr.Close()
	require.Equal(t, "alice", tr.User().LocalDisplayName)
	invs, err := tr.Invitations(ctx)
	require.NoError(t, err)
	require.Len(t, invs, 1)
	_, err = tr.Command(ctx, "/nonsense")
	require.ErrorIs(t, err, smpcall.ErrCommand)
	require.NoError(t, tr.Reject(ctx, invs[0].Contact.ContactID))
}

// All of the real core's output goes through one queue that every
// connection's writer reads: with two clients, each event reaches exactly
// one of them.
func TestChatServerDeliversEachEventToOneConnection(t *testing.T) {
	n, _, url := simulated(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	type seen struct {
		conn int
		uuid string
	}
	got := make(chan seen, 100)
	var readers sync.WaitGroup
	for i := range 2 {
		ws, _, err := websocket.Dial(ctx, url, nil)
		require.NoError(t, err)
		defer ws.CloseNow()
		// A reply proves the server serves this connection.
		send(t, ctx, ws, "1", "/user")
		for {
			f := readRaw(t, ctx, ws)
			if f.CorrID != nil {
				break
			}
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				_, b, err := ws.Read(ctx)
				if err != nil {
					return
				}
				ev, err := smp.DecodeFrame(b)
				if err != nil {
					continue
				}
				evs, _ := smp.DecodeEvent(ev.Resp)
				for _, e := range evs {
					if inv, ok := e.(*smpcall.CallInvitationEvent); ok {
						got <- seen{i, inv.Invitation.CallUUID}
					}
				}
			}
		}()
	}
	const calls = 10
	bob := n.Core("bob")
	for range calls {
		require.NoError(t, bob.Invite(ctx, n.ContactID("bob", "alice"), smpcall.DefaultCallType))
	}
	count := map[string]int{}
	for range calls {
		select {
		case s := <-got:
			count[s.uuid]++
		case <-ctx.Done():
			t.Fatalf("only %d of %d invitations arrived", len(count), calls)
		}
	}
	// Broadcast would have delivered every invitation twice; give a
	// duplicate the time to show up before counting.
	require.NoError(t, bob.Invite(ctx, n.ContactID("bob", "alice"), smpcall.DefaultCallType))
	s := <-got
	count[s.uuid]++
	select {
	case s := <-got:
		count[s.uuid]++
	case <-time.After(200 * time.Millisecond):
	}
	require.Len(t, count, calls+1)
	for uuid, c := range count {
		require.Equal(t, 1, c, "invitation %s delivered %d times", uuid, c)
	}
	cancel()
	readers.Wait()
}

// The real core sends every user's events and flushes what it queued while
// no client was connected to the next one, so a backlog can arrive before
// the reply to /user: the ChatClient for user 1 must never hand user 2's
// events (here a callInvitation with its sharedKey) to its Client.
func TestChatClientNeverDeliversAnotherUsersEvents(t *testing.T) {
	user := func(id int) string {
		return `{"userId":` + itoa(id) + `,"agentUserId":"` + itoa(id) + `","localDisplayName":"u` + itoa(id) + `"}`
	}
	inv := func(uid, cid int) string {
		return `{"resp":{"Right":{"type":"callInvitation","callInvitation":{"user":` + user(uid) +
			`,"contact":{"contactId":` + itoa(cid) + `,"localDisplayName":"c"},"callType":{"media":"audio","capabilities":{"encryption":true}},` +
			`"sharedKey":"Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I=","callUUID":"u` + itoa(cid) + `","callTs":"2025-01-31T12:00:00Z"}}}}`
	}
	ended := func(uid, cid int) string {
		return `{"resp":{"Right":{"type":"callEnded","user":` + user(uid) + `,"contact":{"contactId":` + itoa(cid) + `}}}}`
	}
	url := serveCore(t, func(ctx context.Context, ws *websocket.Conn) {
		_, req, err := ws.Read(ctx)
		if err != nil {
			return
		}
		r, _ := smp.DecodeRequest(req)
		// The backlog first, then the reply, then more of both users.
		for _, f := range []string{inv(2, 20), inv(1, 10),
			`{"corrId":"` + r.CorrID + `","resp":{"Right":{"type":"activeUser","user":` + user(1) + `}}}`,
			ended(2, 20), inv(2, 21), ended(1, 10)} {
			if ws.Write(ctx, websocket.MessageText, []byte(f)) != nil {
				return
			}
		}
		_, _, _ = ws.Read(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	tr, err := smp.DialChatCore(ctx, url, nil)
	require.NoError(t, err)
	defer tr.Close()
	require.Equal(t, int64(1), tr.User().UserID)
	var got []smpcall.Event
	for {
		select {
		case ev := <-tr.Events():
			got = append(got, ev)
			if _, ok := ev.(*smpcall.CallEndedEvent); !ok {
				continue
			}
		case <-ctx.Done():
			t.Fatalf("events: %v", got)
		}
		break
	}
	require.Len(t, got, 2, "%#v", got)
	first, ok := got[0].(*smpcall.CallInvitationEvent)
	require.True(t, ok, "%T", got[0])
	require.Equal(t, int64(1), first.Invitation.User.UserID)
	require.Equal(t, int64(10), first.Invitation.Contact.ContactID)
	require.Equal(t, int64(10), got[1].ContactID())
}

// A frame above the read limit must not close the socket: a contact list
// or a burst of chat items can be that big, and the calls do not depend on
// it. Here a 10 MB event arrives, and a later command still works.
func TestChatClientSurvivesA10MBFrame(t *testing.T) {
	big := `{"resp":{"Right":{"type":"chatItemsStatusesUpdated","user":{"userId":1},"chatItems":["` + strings.Repeat("x", 10<<20) + `"]}}}`
	url := serveCore(t, func(ctx context.Context, ws *websocket.Conn) {
		for {
			_, req, err := ws.Read(ctx)
			if err != nil {
				return
			}
			r, _ := smp.DecodeRequest(req)
			var resp string
			switch r.Cmd {
			case "/user":
				resp = `{"type":"activeUser","user":{"userId":1,"localDisplayName":"alice"}}`
			case "/_call get":
				if ws.Write(ctx, websocket.MessageText, []byte(big)) != nil {
					return
				}
				resp = `{"type":"callInvitations","callInvitations":[]}`
			default:
				resp = `{"type":"cmdOk"}`
			}
			if ws.Write(ctx, websocket.MessageText, []byte(`{"corrId":"`+r.CorrID+`","resp":{"Right":`+resp+`}}`)) != nil {
				return
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	tr, err := smp.DialChatCore(ctx, url, nil)
	require.NoError(t, err)
	defer tr.Close()
	_, err = tr.Invitations(ctx)
	require.NoError(t, err)
	require.NoError(t, tr.End(ctx, 3), "the socket is still up after the big frame")
}

// cutProxy forwards WebSocket frames to a chat core and can take the
// network down (cutting every connection and refusing new ones) and bring
// it back.
type cutProxy struct {
	url string

	mu    sync.Mutex
	down  bool
	conns []*websocket.Conn
}

func newCutProxy(t *testing.T, upstream string) *cutProxy {
	p := &cutProxy{}
	var wg sync.WaitGroup
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
				}
			}
			return
		}
		wg.Add(1)
		defer wg.Done()
		dn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		up, _, err := websocket.Dial(r.Context(), upstream, nil)
		if err != nil {
			dn.CloseNow()
			return
		}
		dn.SetReadLimit(-1)
		up.SetReadLimit(-1)
		p.mu.Lock()
		p.conns = append(p.conns, dn, up)
		p.mu.Unlock()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		pipe := func(from, to *websocket.Conn) {
			defer cancel()
			for {
				typ, b, err := from.Read(ctx)
				if err != nil {
					return
				}
				if to.Write(ctx, typ, b) != nil {
					return
				}
			}
		}
		go pipe(up, dn)
		pipe(dn, up)
		dn.CloseNow()
		up.CloseNow()
	}))
	p.url = wsURL(hs)
	t.Cleanup(func() { p.setDown(true); hs.Close(); wg.Wait() })
	return p
}

func (p *cutProxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	conns := p.conns
	if down {
		p.conns = nil
	}
	p.mu.Unlock()
	if down {
		for _, c := range conns {
			c.CloseNow()
		}
	}
}

func nextEvent[T smpcall.Event](t *testing.T, tr smpcall.Transport) T {
	t.Helper()
	timeout := time.After(testWait)
	for {
		select {
		case ev, ok := <-tr.Events():
			require.True(t, ok, "events closed")
			if v, ok := ev.(T); ok {
				return v
			}
		case <-timeout:
			var zero T
			t.Fatalf("no %T", zero)
			return zero
		}
	}
}

// The socket to the core drops mid-call and the network is back within
// 5 s: the ChatClient reconnects by itself (a temporary TransportErrorEvent,
// then TransportRestoredEvent), and a later command reaches the peer.
func TestChatClientReconnectsByItselfMidCall(t *testing.T) {
	n := smp.NewNetwork(nil)
	defer n.Close()
	var urls []string
	for _, name := range []string{"alice", "bob"} {
		core, err := n.AddUser(name, nil)
		require.NoError(t, err)
		srv := smp.NewChatServer(core, nil)
		hs := httptest.NewServer(srv)
		defer hs.Close()
		defer srv.Close()
		urls = append(urls, wsURL(hs))
	}
	bobID, aliceID, err := n.Connect("alice", "bob")
	require.NoError(t, err)
	proxy := newCutProxy(t, urls[0])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	at, err := smp.DialChatCore(ctx, proxy.url, nil)
	require.NoError(t, err)
	defer at.Close()
	bt, err := smp.DialChatCore(ctx, urls[1], nil)
	require.NoError(t, err)
	defer bt.Close()

	session := smpcall.WebRTCSession{RTCSession: "sdp", RTCIceCandidates: "ice"}
	require.NoError(t, at.Invite(ctx, bobID, smpcall.DefaultCallType))
	nextEvent[*smpcall.CallInvitationEvent](t, bt)
	require.NoError(t, bt.Offer(ctx, aliceID, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType, RTCSession: session}))
	nextEvent[*smpcall.CallOfferEvent](t, at)
	require.NoError(t, at.Answer(ctx, bobID, session))
	nextEvent[*smpcall.CallAnswerEvent](t, bt)

	proxy.setDown(true)
	lost := nextEvent[*smpcall.TransportErrorEvent](t, at)
	require.True(t, lost.Temporary, "the client reconnects by itself: %v", lost.Err)
	require.ErrorIs(t, lost.Err, smp.ErrDisconnected)
	err = at.Extra(ctx, bobID, smpcall.WebRTCExtraInfo{RTCIceCandidates: "x"})
	require.ErrorIs(t, err, smp.ErrDisconnected, "commands fail at once while disconnected")
	// The core queues what happens meanwhile for the next client.
	require.NoError(t, bt.Extra(ctx, aliceID, smpcall.WebRTCExtraInfo{RTCIceCandidates: "while away"}))
	time.Sleep(time.Second)
	proxy.setDown(false)
	nextEvent[*smpcall.TransportRestoredEvent](t, at)
	extra := nextEvent[*smpcall.CallExtraInfoEvent](t, at)
	require.Equal(t, "while away", extra.ExtraInfo.RTCIceCandidates)
	require.Equal(t, uint64(1), at.Stats().Reconnects)
	require.NoError(t, at.End(ctx, bobID))
	ended := nextEvent[*smpcall.CallEndedEvent](t, bt)
	require.Equal(t, aliceID, ended.Contact.ContactID)
}

// Every command honours its context, also when its write is blocked
// because the core stopped reading.
func TestChatClientCommandHonoursContextWhenTheCoreStopsReading(t *testing.T) {
	stop := make(chan struct{})
	url := serveCore(t, func(ctx context.Context, ws *websocket.Conn) {
		_, req, err := ws.Read(ctx)
		if err != nil {
			return
		}
		r, _ := smp.DecodeRequest(req)
		_ = ws.Write(ctx, websocket.MessageText, []byte(`{"corrId":"`+r.CorrID+`","resp":{"type":"activeUser","user":{"userId":1}}}`))
		select { // never read again
		case <-stop:
		case <-ctx.Done():
		}
	})
	defer close(stop)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	tr, err := smp.DialChatCore(ctx, url, nil)
	require.NoError(t, err)
	defer tr.Close()
	extra := smpcall.WebRTCExtraInfo{RTCIceCandidates: strings.Repeat("A", 1<<20)}
	// 32 MB is more than the socket buffers and the client's send queue
	// hold, so writes block. (The outer bound is generous: encoding the
	// commands takes a while under the race detector on a busy machine.)
	const n = 32
	errs := make(chan error, n)
	for range n {
		go func() {
			cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer ccancel()
			errs <- tr.Extra(cctx, 1, extra)
		}()
	}
	bound := time.After(60 * time.Second)
	for range n {
		select {
		case err := <-errs:
			require.ErrorIs(t, err, context.DeadlineExceeded)
		case <-bound:
			t.Fatal("a command did not return")
		}
	}
}

// multiUser serves alice (user 1, active) and carol (user 2) on one
// simulated core, as one simplex-chat with two profiles; bob is their
// common contact on his own core. Contact ids are unique across the
// network, as in one core's database: bob is 1 at alice and 3 at carol.
func multiUser(t *testing.T, opts *smp.ChatServerOptions) (n *smp.Network, srv *smp.ChatServer, url string) {
	t.Helper()
	n = smp.NewNetwork(&smp.NetworkConfig{UniqueContactIDs: true})
	alice, err := n.AddUser("alice", nil)
	require.NoError(t, err)
	carol, err := n.AddUser("carol", nil)
	require.NoError(t, err)
	_, err = n.AddUser("bob", nil)
	require.NoError(t, err)
	a, _, err := n.Connect("alice", "bob")
	require.NoError(t, err)
	c, _, err := n.Connect("carol", "bob")
	require.NoError(t, err)
	require.Equal(t, []int64{1, 3}, []int64{a, c})
	srv = smp.NewChatServer(alice, opts)
	require.NoError(t, srv.AddUser(carol))
	require.Error(t, srv.AddUser(carol), "a user is served once")
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
		require.NoError(t, n.Close())
	})
	return n, srv, wsURL(hs)
}

// command sends one command on a raw socket and returns its reply (events
// in between are skipped), unwrapped, with the side of the Either.
func command(t *testing.T, ctx context.Context, ws *websocket.Conn, id, cmd string) (string, rawFrame) {
	t.Helper()
	send(t, ctx, ws, id, cmd)
	for {
		f := readRaw(t, ctx, ws)
		if f.CorrID != nil && *f.CorrID == id {
			return f.inner(t)
		}
	}
}

func storeError(t *testing.T, f rawFrame) string {
	t.Helper()
	var e struct {
		ChatError struct {
			Type       string `json:"type"`
			StoreError struct {
				Type string `json:"type"`
			} `json:"storeError"`
		} `json:"chatError"`
	}
	b, err := json.Marshal(f.Resp)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &e))
	return e.ChatError.Type + "/" + e.ChatError.StoreError.Type
}

// "/_call invite" works only for the active user (APISendCallInvitation
// looks the contact up under it); the other call commands work for the
// user who owns the contact; "/_user N" switches.
func TestChatServerInvitesOnlyForTheActiveUser(t *testing.T) {
	_, srv, url := multiUser(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	defer ws.CloseNow()

	side, r := command(t, ctx, ws, "1", "/_call invite @3 "+`{"media":"audio","capabilities":{"encryption":true}}`)
	require.Equal(t, "Left", side)
	require.Equal(t, "errorStore/contactNotFound", storeError(t, r), "carol's contact, alice active")
	side, r = command(t, ctx, ws, "2", "/_call invite @1 "+`{"media":"audio","capabilities":{"encryption":true}}`)
	require.Equal(t, "Right", side)
	require.Equal(t, "cmdOk", r.typ())

	side, r = command(t, ctx, ws, "3", "/_user 2")
	require.Equal(t, "Right", side)
	require.Equal(t, "activeUser", r.typ())
	require.Equal(t, "carol", srv.ActiveUser().LocalDisplayName)
	side, _ = command(t, ctx, ws, "4", "/_call invite @3 "+`{"media":"audio","capabilities":{"encryption":true}}`)
	require.Equal(t, "Right", side)
	// alice's call, now that she is not active, still takes the other commands.
	side, r = command(t, ctx, ws, "5", "/_call end @1")
	require.Equal(t, "Right", side, "%v", r.Resp)
	// "/call @name" is the active user's contact too.
	side, _ = command(t, ctx, ws, "6", "/call @bob")
	require.Equal(t, "Right", side)
	side, r = command(t, ctx, ws, "7", "/_user 9")
	require.Equal(t, "Left", side)
	require.Equal(t, "errorStore/userNotFound", storeError(t, r))
	side, r = command(t, ctx, ws, "8", "/user alice")
	require.Equal(t, "Right", side)
	require.Equal(t, "alice", srv.ActiveUser().LocalDisplayName)

	// /users lists both, with activeUser and agentUserId as the core writes them.
	_, r = command(t, ctx, ws, "9", "/users")
	var users struct {
		Users []struct {
			User struct {
				UserID      int64  `json:"userId"`
				AgentUserID string `json:"agentUserId"`
				ActiveUser  bool   `json:"activeUser"`
			} `json:"user"`
		} `json:"users"`
	}
	b, _ := json.Marshal(r.Resp)
	require.NoError(t, json.Unmarshal(b, &users))
	require.Len(t, users.Users, 2)
	require.True(t, users.Users[0].User.ActiveUser)
	require.False(t, users.Users[1].User.ActiveUser)
	require.Equal(t, "2", users.Users[1].User.AgentUserID)
}

// A ChatClient for a user who is not active places calls by making its
// user active first, as the apps do; with KeepActiveUser it says why it
// cannot. Answering needs no switch.
func TestChatClientInvitesForANonActiveUser(t *testing.T) {
	n, srv, url := multiUser(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	strict, err := smp.DialChatCore(ctx, url, &smp.ChatClientOptions{UserID: 2, KeepActiveUser: true})
	require.NoError(t, err)
	require.Equal(t, "carol", strict.User().LocalDisplayName)
	err = strict.Invite(ctx, 3, smpcall.DefaultCallType)
	require.ErrorIs(t, err, smp.ErrNotActiveUser)
	require.Equal(t, "alice", srv.ActiveUser().LocalDisplayName, "nothing changed")
	require.NoError(t, strict.Close())

	tr, err := smp.DialChatCore(ctx, url, &smp.ChatClientOptions{UserID: 2})
	require.NoError(t, err)
	defer tr.Close()
	require.NoError(t, tr.Invite(ctx, 3, smpcall.DefaultCallType))
	require.Equal(t, "carol", srv.ActiveUser().LocalDisplayName)
	bob := n.Core("bob")
	ring := nextCoreEvent[*smpcall.CallInvitationEvent](t, bob)
	require.Equal(t, "carol", ring.Invitation.Contact.Name())
	require.NoError(t, bob.End(ctx, ring.Invitation.Contact.ContactID))
	nextEvent[*smpcall.CallEndedEvent](t, tr)

	// Someone switches the active user back behind the client's back: the
	// core refuses the contact, and the client switches and retries.
	require.NoError(t, srv.SetActiveUser(1))
	require.NoError(t, tr.Invite(ctx, 3, smpcall.DefaultCallType))
	require.Equal(t, "carol", srv.ActiveUser().LocalDisplayName)

	// bob calls alice, who is not active: her events go to her own client
	// only, and answering needs no switch.
	require.NoError(t, tr.Close())
	at, err := smp.DialChatCore(ctx, url, &smp.ChatClientOptions{UserID: 1})
	require.NoError(t, err)
	defer at.Close()
	require.NoError(t, bob.Invite(ctx, n.ContactID("bob", "alice"), smpcall.DefaultCallType))
	inv := nextEvent[*smpcall.CallInvitationEvent](t, at)
	require.Equal(t, int64(1), inv.Invitation.User.UserID)
	require.NoError(t, at.Offer(ctx, 1, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType,
		RTCSession: smpcall.WebRTCSession{RTCSession: "s", RTCIceCandidates: "c"}}))
	require.Equal(t, "carol", srv.ActiveUser().LocalDisplayName, "offer does not switch")
}

func nextCoreEvent[T smpcall.Event](t *testing.T, c *smp.Core) T {
	t.Helper()
	timeout := time.After(testWait)
	for {
		select {
		case ev := <-c.Events():
			if v, ok := ev.(T); ok {
				return v
			}
		case <-timeout:
			var zero T
			t.Fatalf("no %T", zero)
			return zero
		}
	}
}

// On the multi-user simulator, events queued while no client was connected
// are flushed to the next client, and a client for user 1 gets none of
// user 2's (a callInvitation with its sharedKey among them).
func TestChatClientGetsOnlyItsUsersBacklog(t *testing.T) {
	n, srv, url := multiUser(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	bob := n.Core("bob")
	require.NoError(t, bob.Invite(ctx, n.ContactID("bob", "carol"), smpcall.DefaultCallType))
	require.NoError(t, bob.Invite(ctx, n.ContactID("bob", "alice"), smpcall.DefaultCallType))
	// callInvitation and newChatItems for each.
	require.Eventually(t, func() bool { return srv.Stats().QueuedEvents == 4 }, testWait, 5*time.Millisecond)

	tr, err := smp.DialChatCore(ctx, url, nil)
	require.NoError(t, err)
	defer tr.Close()
	require.Equal(t, int64(1), tr.User().UserID)
	require.NoError(t, bob.End(ctx, n.ContactID("bob", "alice")))
	var got []smpcall.Event
	for {
		ev := <-tr.Events()
		got = append(got, ev)
		if _, ok := ev.(*smpcall.CallEndedEvent); ok {
			break
		}
		require.Less(t, len(got), 10, "%#v", got)
	}
	inv, ok := got[0].(*smpcall.CallInvitationEvent)
	require.True(t, ok, "%T", got[0])
	require.Equal(t, "alice", inv.Invitation.User.LocalDisplayName)
	for _, ev := range got {
		if inv, ok := ev.(*smpcall.CallInvitationEvent); ok {
			require.Equal(t, int64(1), inv.Invitation.User.UserID)
		}
		if it, ok := ev.(*smpcall.CallItemEvent); ok {
			require.Equal(t, int64(1), it.User.UserID)
		}
	}
	require.Equal(t, uint64(2), tr.Stats().OtherUsersEvents)
	require.Zero(t, srv.Stats().QueuedEvents)
}

// Older cores send resp bare; the simulator can too, and the client reads it.
func TestChatServerBareResponses(t *testing.T) {
	n, _, url := simulated(t, &smp.ChatServerOptions{BareResponses: true})
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	send(t, ctx, ws, "1", "/user")
	f := readRaw(t, ctx, ws)
	require.Equal(t, "activeUser", f.typ())
	side, _ := f.inner(t)
	require.Empty(t, side)
	send(t, ctx, ws, "2", "/nonsense")
	require.Equal(t, "chatCmdError", readRaw(t, ctx, ws).typ())
	ws.Close(websocket.StatusNormalClosure, "")

	tr, err := smp.DialChatCore(ctx, url, nil)
	require.NoError(t, err)
	defer tr.Close()
	require.NoError(t, n.Core("bob").Invite(ctx, n.ContactID("bob", "alice"), smpcall.DefaultCallType))
	inv := nextEvent[*smpcall.CallInvitationEvent](t, tr)
	require.NotNil(t, inv.Invitation.SharedKey)
	_, err = tr.Command(ctx, "/nonsense")
	require.ErrorIs(t, err, smpcall.ErrCommand)
}

// Broadcast is an explicit option: then every client gets every event.
func TestChatServerBroadcastOption(t *testing.T) {
	n, _, url := simulated(t, &smp.ChatServerOptions{Broadcast: true})
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	var trs []*smp.ChatClient
	for range 2 {
		tr, err := smp.DialChatCore(ctx, url, nil)
		require.NoError(t, err)
		defer tr.Close()
		trs = append(trs, tr)
	}
	require.NoError(t, n.Core("bob").Invite(ctx, n.ContactID("bob", "alice"), smpcall.DefaultCallType))
	a := nextEvent[*smpcall.CallInvitationEvent](t, trs[0])
	b := nextEvent[*smpcall.CallInvitationEvent](t, trs[1])
	require.Equal(t, a.Invitation.CallUUID, b.Invitation.CallUUID)
}

// The simulated core accepts only same-origin pages by default: a page
// from another origin cannot drive it (CSRF from any site the user
// visits); OriginPatterns allows others explicitly.
func TestChatServerRefusesForeignOrigins(t *testing.T) {
	_, _, url := simulated(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	dial := func(url, origin string) (*http.Response, error) {
		ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		if err == nil {
			ws.CloseNow()
		}
		return resp, err
	}
	resp, err := dial(url, "https://evil.example")
	require.Error(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, err = dial(url, "null")
	require.Error(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	_, err = dial(url, "http"+strings.TrimPrefix(url, "ws"))
	require.NoError(t, err, "same origin")

	_, _, allowed := simulated(t, &smp.ChatServerOptions{AcceptOptions: &websocket.AcceptOptions{OriginPatterns: []string{"app.example"}}})
	_, err = dial(allowed, "https://app.example")
	require.NoError(t, err)
	resp, err = dial(allowed, "https://evil.example")
	require.Error(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
}

// MaxReconnectTime bounds the attempts: then the loss is permanent.
func TestChatClientGivesUpAfterMaxReconnectTime(t *testing.T) {
	_, _, url := simulated(t, nil)
	proxy := newCutProxy(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	tr, err := smp.DialChatCore(ctx, proxy.url, &smp.ChatClientOptions{MaxReconnectTime: 300 * time.Millisecond})
	require.NoError(t, err)
	defer tr.Close()
	proxy.setDown(true)
	require.True(t, nextEvent[*smpcall.TransportErrorEvent](t, tr).Temporary)
	final := nextEvent[*smpcall.TransportErrorEvent](t, tr)
	require.False(t, final.Temporary)
	require.ErrorIs(t, final.Err, smp.ErrDisconnected)
	// Reconnect still works by hand once the network is back.
	proxy.setDown(false)
	require.NoError(t, tr.Reconnect(ctx))
	nextEvent[*smpcall.TransportRestoredEvent](t, tr)
	_, err = tr.Invitations(ctx)
	require.NoError(t, err)
}

// A core that comes back without the transport's user (another database)
// is a permanent loss: the client says so and stops.
func TestChatClientStopsWhenItsUserIsGone(t *testing.T) {
	var mu sync.Mutex
	users := `[{"user":{"userId":1,"localDisplayName":"alice","activeUser":true},"unreadCount":0}]`
	url := serveCore(t, func(ctx context.Context, ws *websocket.Conn) {
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			r, _ := smp.DecodeRequest(b)
			resp := `{"type":"cmdOk"}`
			switch r.Cmd {
			case "/user":
				resp = `{"type":"activeUser","user":{"userId":1,"localDisplayName":"alice"}}`
			case "/users":
				mu.Lock()
				resp = `{"type":"usersList","users":` + users + `}`
				mu.Unlock()
			case "/_call end @1":
				// The core goes away and comes back with another user only.
				mu.Lock()
				users = `[{"user":{"userId":5,"localDisplayName":"eve","activeUser":true},"unreadCount":0}]`
				mu.Unlock()
				return
			}
			if ws.Write(ctx, websocket.MessageText, []byte(`{"corrId":"`+r.CorrID+`","resp":`+resp+`}`)) != nil {
				return
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	tr, err := smp.DialChatCore(ctx, url, nil)
	require.NoError(t, err)
	defer tr.Close()
	require.ErrorIs(t, tr.End(ctx, 1), smp.ErrDisconnected)
	require.True(t, nextEvent[*smpcall.TransportErrorEvent](t, tr).Temporary)
	final := nextEvent[*smpcall.TransportErrorEvent](t, tr)
	require.False(t, final.Temporary)
	require.ErrorIs(t, final.Err, smp.ErrUserGone)
	require.ErrorIs(t, tr.End(ctx, 1), smp.ErrDisconnected)
}
