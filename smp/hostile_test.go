package smp_test

// A hostile chat core against the ChatClient, and hostile clients against
// the ChatServer: each gets a clear error, memory stays bounded (measured
// with runtime.ReadMemStats and queue lengths, not time), nothing panics,
// and a well-behaved party keeps working.

import (
	"context"

	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/smp"
)

const (
	userJSON    = `{"userId":1,"agentUserId":"1","localDisplayName":"alice","activeUser":true}`
	activeReply = `{"type":"activeUser","user":` + userJSON + `}`
)

// reply answers request r with resp (wrapped as the current core does).
func reply(ctx context.Context, ws *websocket.Conn, r smp.Request, resp string) error {
	return ws.Write(ctx, websocket.MessageText, []byte(`{"corrId":"`+r.CorrID+`","resp":{"Right":`+resp+`}}`))
}

// hostileCore answers "/user" and "/users" properly and hands every other
// request to h, which may answer it or not.
func hostileCore(t *testing.T, h func(ctx context.Context, ws *websocket.Conn, r smp.Request) error) string {
	return serveCore(t, func(ctx context.Context, ws *websocket.Conn) {
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			r, err := smp.DecodeRequest(b)
			if err != nil {
				return
			}
			switch r.Cmd {
			case "/user":
				err = reply(ctx, ws, r, activeReply)
			case "/users":
				err = reply(ctx, ws, r, `{"type":"usersList","users":[{"user":`+userJSON+`,"unreadCount":0}]}`)
			default:
				err = h(ctx, ws, r)
			}
			if err != nil {
				return
			}
		}
	})
}

func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// Garbage, replies for commands nobody sent, and call events of the wrong
// shape: the command still gets its answer, this user's undecodable call
// events become message errors, another user's are not delivered, and the
// bad frames are counted.
func TestChatClientAgainstGarbage(t *testing.T) {
	garbage := []string{
		"not json", `{"corrId":5}`, `{"resp":"x"}`, `[]`, `{"corrId":"77","resp":{"type":"cmdOk"}}`,
		`{"resp":{"Right":{"type":"callOffer","user":{"userId":1},"contact":{"contactId":2}}}}`,
		`{"resp":{"type":"callInvitation","callInvitation":{"user":{"userId":1},"contact":{"contactId":2},"callType":{"media":"video","capabilities":{"encryption":true}},"sharedKey":"not base64!","callUUID":"u","callTs":"2025-01-31T12:00:00Z"}}}`,
		`{"resp":{"Right":{"type":"callAnswer","user":{"userId":9},"contact":{"contactId":2},"answer":5}}}`,
		`{"resp":{"Right":{"type":"callExtraInfo","user":{"userId":1},"contact":{"contactId":2},"extraInfo":{"rtcIceCandidates":[]}}}}`,
		`{"resp":{"Right":{"type":"newChatItems","user":{"userId":1},"chatItems":[{"chatItem":{"content":{"type":"rcvCall"}}}]}}}`,
		`{"resp":{"Left":{"type":"chatError"}}}`,
	}
	url := hostileCore(t, func(ctx context.Context, ws *websocket.Conn, r smp.Request) error {
		for _, g := range garbage {
			if err := ws.Write(ctx, websocket.MessageText, []byte(g)); err != nil {
				return err
			}
		}
		if err := ws.Write(ctx, websocket.MessageBinary, []byte{0, 1, 2}); err != nil {
			return err
		}
		// A reply for a command never sent, then the real one.
		if err := ws.Write(ctx, websocket.MessageText, []byte(`{"corrId":"999","resp":{"type":"cmdOk"}}`)); err != nil {
			return err
		}
		return reply(ctx, ws, r, `{"type":"cmdOk"}`)
	})
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	tr, err := smp.DialChatCore(ctx, url, nil)
	require.NoError(t, err)
	defer tr.Close()
	require.NoError(t, tr.End(ctx, 2))
	require.NoError(t, tr.End(ctx, 2), "the connection is still good")
	var errs []string
	for len(errs) < 6 {
		select {
		case ev := <-tr.Events():
			me, ok := ev.(*smpcall.MessageErrorEvent)
			require.True(t, ok, "%T", ev)
			if strings.Contains(me.ErrorMessage, "undecodable event") {
				require.Equal(t, int64(1), me.User.UserID)
			}
			errs = append(errs, me.ErrorMessage)
		case <-ctx.Done():
			t.Fatalf("events: %q", errs)
		}
	}
	// Per round: offer, invitation and extra info of user 1 (not user 9's
	// answer, not the item without its chatInfo, not the untyped chatError).
	undecodable := 0
	for _, e := range errs {
		if strings.Contains(e, "undecodable event") {
			undecodable++
		}
	}
	require.Equal(t, 6, undecodable, "%q", errs)
	st := tr.Stats()
	require.GreaterOrEqual(t, st.BadFrames, uint64(2*9), "%+v", st)
	require.Equal(t, uint64(2), st.SkippedFrames, "the binary frames")
	select {
	case ev := <-tr.Events():
		t.Fatalf("unexpected %T", ev)
	default:
	}
}

// A core that stays silent: dialing and commands end with their context.
func TestChatClientAgainstASilentCore(t *testing.T) {
	silent := serveCore(t, func(ctx context.Context, ws *websocket.Conn) { _, _, _ = ws.Read(ctx); <-ctx.Done() })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := smp.DialChatCore(ctx, silent, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	url := hostileCore(t, func(ctx context.Context, ws *websocket.Conn, r smp.Request) error { return nil })
	tr, err := smp.DialChatCore(context.Background(), url, nil)
	require.NoError(t, err)
	defer tr.Close()
	cctx, ccancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer ccancel()
	require.ErrorIs(t, tr.End(cctx, 2), context.DeadlineExceeded)
}

// A 50 MB frame: as the reply to a command it fails that command with
// ErrFrameTooLarge, as an event it is skipped; the connection stays, and
// the client never holds more than its limit.
func TestChatClientSkips50MBFrames(t *testing.T) {
	pad := []byte(strings.Repeat("x", 50<<20))
	// writeBig streams prefix, the 50 MB pad and suffix as one frame,
	// without building it in memory.
	writeBig := func(ctx context.Context, ws *websocket.Conn, prefix, suffix string) error {
		w, err := ws.Writer(ctx, websocket.MessageText)
		if err != nil {
			return err
		}
		for _, part := range [][]byte{[]byte(prefix), pad, []byte(suffix)} {
			if _, err := w.Write(part); err != nil {
				return err
			}
		}
		return w.Close()
	}
	url := hostileCore(t, func(ctx context.Context, ws *websocket.Conn, r smp.Request) error {
		if strings.HasPrefix(r.Cmd, "/_contacts") {
			return writeBig(ctx, ws, `{"corrId":"`+r.CorrID+`","resp":{"Right":{"type":"contactsList","user":{"userId":1},"contacts":[],"pad":"`, `"}}}`)
		}
		if err := writeBig(ctx, ws, `{"resp":{"Right":{"type":"callExtraInfo","user":{"userId":1},"contact":{"contactId":2},"extraInfo":{"rtcIceCandidates":"`, `"}}}}`); err != nil {
			return err
		}
		return reply(ctx, ws, r, `{"type":"cmdOk"}`)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := smp.DialChatCore(ctx, url, &smp.ChatClientOptions{MaxMessageSize: 1 << 20})
	require.NoError(t, err)
	defer tr.Close()
	before := totalAlloc()
	_, err = tr.Contacts(ctx)
	require.ErrorIs(t, err, smp.ErrFrameTooLarge)
	require.ErrorContains(t, err, "52428")
	require.NoError(t, tr.End(ctx, 2))
	allocated := totalAlloc() - before
	t.Logf("allocated %d bytes while two 50 MB frames went by (limit 1 MiB)", allocated)
	require.Equal(t, uint64(2), tr.Stats().SkippedFrames)
	// Two 50 MB frames went by; the client allocated a few times its 1 MiB
	// limit (the server's writes allocate nothing big).
	require.Less(t, allocated, uint64(20<<20), "allocated %d bytes", allocated)
	select {
	case ev := <-tr.Events():
		t.Fatalf("unexpected %T", ev)
	default:
	}
}

// A flood of call events nobody reads: the event queue stays at its bound,
// the excess is counted, commands keep working, memory stays bounded.
func TestChatClientBoundsAnEventFlood(t *testing.T) {
	const flood = 3000
	ev := []byte(`{"resp":{"Right":{"type":"callExtraInfo","user":{"userId":1},"contact":{"contactId":2},"extraInfo":{"rtcIceCandidates":"` + strings.Repeat("c", 500) + `"}}}}`)
	url := hostileCore(t, func(ctx context.Context, ws *websocket.Conn, r smp.Request) error {
		for range flood {
			if err := ws.Write(ctx, websocket.MessageText, ev); err != nil {
				return err
			}
		}
		return reply(ctx, ws, r, `{"type":"cmdOk"}`)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tr, err := smp.DialChatCore(ctx, url, &smp.ChatClientOptions{EventQueueSize: 100})
	require.NoError(t, err)
	defer tr.Close()
	before := heapAfterGC()
	require.NoError(t, tr.End(ctx, 2))
	grown := int64(heapAfterGC()) - int64(before)
	t.Logf("heap grew by %d bytes over a flood of %d events", grown, flood)
	require.Equal(t, 100, len(tr.Events()))
	require.Equal(t, uint64(flood-100), tr.Stats().DroppedEvents)
	require.Less(t, grown, int64(4<<20), "the heap grew by %d bytes", grown)
}

// --- hostile clients against the simulated core ---

// crowd starts a network where alice has many contacts, so that her
// contact list is a big reply.
func crowd(t *testing.T, contacts int, opts *smp.ChatServerOptions) (*smp.ChatServer, string) {
	t.Helper()
	n := smp.NewNetwork(nil)
	alice, err := n.AddUser("alice", nil)
	require.NoError(t, err)
	for i := range contacts {
		name := "contact-with-a-longish-name-" + strconv.Itoa(i)
		_, err := n.AddUser(name, nil)
		require.NoError(t, err)
		_, _, err = n.Connect("alice", name)
		require.NoError(t, err)
	}
	srv := smp.NewChatServer(alice, opts)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
		require.NoError(t, n.Close())
	})
	return srv, wsURL(hs)
}

// A client that sends commands fast and never reads: the server stops
// reading it once its bounded queue is full (back-pressure), disconnects
// it when a write stalls for WriteTimeout, and its memory stays bounded;
// a well-behaved client is served meanwhile.
func TestChatServerBoundsASlowReader(t *testing.T) {
	srv, url := crowd(t, 150, &smp.ChatServerOptions{WriteTimeout: 3 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	good, err := smp.DialChatCore(ctx, url, nil)
	require.NoError(t, err)
	defer good.Close()
	cs, err := good.Contacts(ctx)
	require.NoError(t, err)
	require.Len(t, cs, 150)

	before := heapAfterGC()
	slow, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	defer slow.CloseNow()
	// Each reply is a ~20 KB contact list: 3000 unread replies would be
	// 60 MB if the server queued them all, far more than socket buffers.
	const requests = 3000
	// The requests are padded (the core trims trailing spaces) so that
	// they cannot all wait in socket buffers either.
	req := []byte(`{"corrId":"1","cmd":"/_contacts 1` + strings.Repeat(" ", 8000) + `"}`)
	flooded := make(chan int, 1)
	go func() {
		sent := 0
		for ; sent < requests; sent++ {
			if slow.Write(ctx, websocket.MessageText, req) != nil {
				break // the server dropped us
			}
		}
		flooded <- sent
	}()
	// The server's writer gets stuck on the client that does not read, and
	// its queue fills up to its bound; then it stops reading the client.
	require.Eventually(t, func() bool { return srv.Stats().QueuedFrames == 64 }, 30*time.Second, time.Millisecond)
	st := srv.Stats()
	grown := int64(heapAfterGC()) - int64(before)
	t.Logf("%d frames queued for the slow client; the heap grew by %d bytes", st.QueuedFrames, grown)
	require.Less(t, grown, int64(16<<20), "the heap grew by %d bytes", grown)
	_, err = good.Contacts(ctx)
	require.NoError(t, err, "a well-behaved client is still served")
	// Its write stalls for WriteTimeout: the server drops it.
	require.Eventually(t, func() bool { return srv.Stats().SlowClients == 1 }, 30*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return srv.Stats().Connections == 1 }, 10*time.Second, 10*time.Millisecond)
	sent := <-flooded
	require.Less(t, sent, requests, "the server stopped reading it")
	t.Logf("the slow client got %d requests out before it was dropped", sent)
	_, err = good.Contacts(ctx)
	require.NoError(t, err)
}

// 500 clients at once: each is served, memory per connection is bounded,
// and when they leave the server is back to its one good client.
func TestChatServerManyConnections(t *testing.T) {
	const clients = 500
	srv, url := crowd(t, 1, &smp.ChatServerOptions{MaxConnections: clients + 1})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	good, err := smp.DialChatCore(ctx, url, nil)
	require.NoError(t, err)
	defer good.Close()
	before := heapAfterGC()
	conns := make([]*websocket.Conn, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws, _, err := websocket.Dial(ctx, url, nil)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = ws
			if err := ws.Write(ctx, websocket.MessageText, []byte(`{"corrId":"1","cmd":"/user"}`)); err != nil {
				errs <- err
				return
			}
			if _, b, err := ws.Read(ctx); err != nil || !strings.Contains(string(b), `"activeUser"`) {
				errs <- fmt.Errorf("reply %q: %v", b, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, clients+1, srv.Stats().Connections)
	grown := int64(heapAfterGC()) - int64(before)
	t.Logf("%d connections: %d bytes of heap each (both ends)", clients, grown/clients)
	// Both ends of every connection live in this process.
	require.Less(t, grown/clients, int64(256<<10), "%d bytes per connection", grown/clients)
	_, err = good.Contacts(ctx)
	require.NoError(t, err)
	for _, ws := range conns {
		ws.CloseNow()
	}
	require.Eventually(t, func() bool { return srv.Stats().Connections == 1 }, 30*time.Second, 10*time.Millisecond)
	_, err = good.Contacts(ctx)
	require.NoError(t, err)
}

// Connect storms: clients that connect and go at once, many at a time.
// Beyond MaxConnections they are refused with 503 before the handshake;
// nothing is left behind, and the good client keeps working.
func TestChatServerConnectStorm(t *testing.T) {
	srv, url := crowd(t, 1, &smp.ChatServerOptions{MaxConnections: 8})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	good, err := smp.DialChatCore(ctx, url, nil)
	require.NoError(t, err)
	defer good.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				ws, resp, err := websocket.Dial(ctx, url, nil)
				mu.Lock()
				if err != nil {
					if resp != nil {
						codes[resp.StatusCode]++
					} else {
						codes[0]++
					}
				} else {
					codes[http.StatusSwitchingProtocols]++
				}
				mu.Unlock()
				if err == nil {
					ws.CloseNow()
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, codes[0], "%v", codes)
	require.Equal(t, 400, codes[http.StatusSwitchingProtocols]+codes[http.StatusServiceUnavailable], "%v", codes)
	require.Positive(t, codes[http.StatusSwitchingProtocols])
	require.Equal(t, uint64(codes[http.StatusServiceUnavailable]), srv.Stats().Refused)
	require.Eventually(t, func() bool { return srv.Stats().Connections == 1 }, 30*time.Second, 10*time.Millisecond)
	_, err = good.Contacts(ctx)
	require.NoError(t, err)
}

// Garbage from a client gets the core's errors; a frame over the limit
// closes that connection with 1009; the good client is unaffected.
func TestChatServerAgainstGarbageCommands(t *testing.T) {
	_, url := crowd(t, 1, &smp.ChatServerOptions{MaxMessageSize: 64 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	good, err := smp.DialChatCore(ctx, url, nil)
	require.NoError(t, err)
	defer good.Close()
	ws, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	for _, g := range []string{"", "null", "[]", "{}", `{"corrId":1,"cmd":"/user"}`, `{"corrId":"1"}`, `{"cmd":"/user"}`, "\xff\xfe", `{"corrId":"1","cmd":5}`} {
		require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(g)))
		f := readRaw(t, ctx, ws)
		require.Nil(t, f.CorrID, "%q", g)
		side, in := f.inner(t)
		require.Equal(t, "Left", side)
		require.Contains(t, string(in.Resp["chatError"]), smp.InvalidRequestMessage, "%q", g)
	}
	for i, cmd := range []string{"", "/", "/_call invite @1 {", "/_call end @-1", "/_call status @1 dancing", strings.Repeat("/", 10000), "/_call offer @1 " + strings.Repeat("[", 5000)} {
		id := strconv.Itoa(i)
		side, r := command(t, ctx, ws, id, cmd)
		require.Equal(t, "Left", side, "%q", cmd)
		require.Equal(t, "chatCmdError", r.typ())
	}
	// Binary frames are requests too, as for the real server.
	require.NoError(t, ws.Write(ctx, websocket.MessageBinary, []byte(`{"corrId":"b","cmd":"/user"}`)))
	f := readRaw(t, ctx, ws)
	require.Equal(t, "b", *f.CorrID)
	// Over the limit: the connection is closed with 1009 (the server may
	// close it before our write of the frame finishes).
	werr := ws.Write(ctx, websocket.MessageText, []byte(`{"corrId":"2","cmd":"`+strings.Repeat("x", 100<<10)+`"}`))
	_, _, err = ws.Read(ctx)
	require.Error(t, err)
	if werr == nil {
		require.Equal(t, websocket.StatusMessageTooBig, websocket.CloseStatus(err), "%v", err)
	}
	_, err = good.Contacts(ctx)
	require.NoError(t, err)
}
