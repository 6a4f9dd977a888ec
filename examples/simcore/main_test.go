package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/smp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type simcore struct {
	urls     map[string]string
	contacts map[string]string
	next     func() string
	stop     func()
}

// startSimcore runs the simulator with args and reads what it prints
// before "ready".
func startSimcore(t *testing.T, users int, args ...string) *simcore {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, pw, io.Discard)
		pw.Close()
	}()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	s := &simcore{urls: map[string]string{}, contacts: map[string]string{}}
	s.next = func() string {
		select {
		case l := <-lines:
			return l
		case <-time.After(10 * time.Second):
			t.Fatal("simcore printed nothing")
			return ""
		}
	}
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(t, <-done)
		for range lines {
		}
	}
	t.Cleanup(s.stop)
	for range users {
		f := strings.Fields(s.next())
		require.Len(t, f, 3)
		require.Equal(t, "user", f[0])
		require.True(t, strings.HasPrefix(f[2], "ws://127.0.0.1:"))
		s.urls[f[1]] = f[2]
	}
	require.Len(t, s.urls, users)
	for range users * (users - 1) {
		f := strings.Fields(s.next())
		require.Equal(t, "contact", f[0])
		s.contacts[f[1]+">"+f[2]] = f[3]
	}
	require.Equal(t, "ready", s.next())
	return s
}

// The simulator prints its users and contacts first, then serves the
// chat-core API on each user's URL and logs the x.call.* messages.
func TestSimcore(t *testing.T) {
	s := startSimcore(t, 3, "-users", "alice,bob,carol", "-listen", "127.0.0.1:0")
	require.Equal(t, "1", s.contacts["alice>bob"])
	require.Equal(t, "2", s.contacts["alice>carol"])
	ctx := context.Background()
	at, err := smp.DialChatCore(ctx, s.urls["alice"], nil)
	require.NoError(t, err)
	bt, err := smp.DialChatCore(ctx, s.urls["bob"], nil)
	require.NoError(t, err)
	require.NoError(t, at.Invite(ctx, 1, smpcall.DefaultCallType))
	select {
	case ev := <-bt.Events():
		inv, ok := ev.(*smpcall.CallInvitationEvent)
		require.True(t, ok, "%T", ev)
		require.Equal(t, "alice", inv.Invitation.Contact.Name())
	case <-time.After(10 * time.Second):
		t.Fatal("no invitation")
	}
	require.Contains(t, s.next(), "alice → bob  x.call.inv")
	_, err = at.Command(ctx, "/nonsense")
	require.ErrorIs(t, err, smpcall.ErrCommand)
	require.NoError(t, at.Close())
	require.NoError(t, bt.Close())
	s.stop()
}

// Pages from other origins are refused unless allowed by -origin (or
// -any-origin); programs send no Origin and are always accepted.
func TestSimcoreOrigins(t *testing.T) {
	dial := func(url, origin string) (int, error) {
		ws, resp, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		if err != nil {
			return resp.StatusCode, err
		}
		ws.CloseNow()
		return http.StatusSwitchingProtocols, nil
	}
	s := startSimcore(t, 2, "-listen", "127.0.0.1:0")
	code, err := dial(s.urls["alice"], "https://evil.example")
	require.Error(t, err)
	require.Equal(t, http.StatusForbidden, code)
	_, err = dial(s.urls["alice"], "http"+strings.TrimPrefix(s.urls["alice"], "ws"))
	require.NoError(t, err)
	s.stop()

	s = startSimcore(t, 2, "-listen", "127.0.0.1:0", "-origin", "app.example,localhost:*")
	_, err = dial(s.urls["alice"], "https://app.example")
	require.NoError(t, err)
	_, err = dial(s.urls["alice"], "http://localhost:8080")
	require.NoError(t, err)
	code, err = dial(s.urls["alice"], "https://evil.example")
	require.Error(t, err)
	require.Equal(t, http.StatusForbidden, code)
	s.stop()

	s = startSimcore(t, 2, "-listen", "127.0.0.1:0", "-any-origin")
	_, err = dial(s.urls["alice"], "null")
	require.NoError(t, err)
}

// -shared: the users are profiles of one core behind one URL, with contact
// ids unique across them, the first user active.
func TestSimcoreShared(t *testing.T) {
	s := startSimcore(t, 2, "-users", "alice,bob", "-listen", "127.0.0.1:0", "-shared")
	require.Equal(t, s.urls["alice"], s.urls["bob"])
	require.Equal(t, "1", s.contacts["alice>bob"])
	require.Equal(t, "2", s.contacts["bob>alice"])
	ctx := context.Background()
	at, err := smp.DialChatCore(ctx, s.urls["alice"], nil)
	require.NoError(t, err)
	require.Equal(t, "alice", at.User().LocalDisplayName)
	require.NoError(t, at.Invite(ctx, 1, smpcall.DefaultCallType))
	require.NoError(t, at.Close())
	// bob's invitation event went to the only client connected, alice's,
	// which does not deliver it; the core still lists the invitation.
	bt, err := smp.DialChatCore(ctx, s.urls["bob"], &smp.ChatClientOptions{UserID: 2})
	require.NoError(t, err)
	defer bt.Close()
	require.Eventually(t, func() bool {
		invs, err := bt.Invitations(ctx)
		return err == nil && len(invs) == 1 && invs[0].Contact.Name() == "alice"
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, bt.Reject(ctx, 2))
}

func TestSimcoreFlags(t *testing.T) {
	ctx := context.Background()
	require.Error(t, run(ctx, []string{"-users", "alice,alice"}, io.Discard, io.Discard))
	require.Error(t, run(ctx, []string{"-users", "a b"}, io.Discard, io.Discard))
	require.Error(t, run(ctx, []string{"-listen", "nohost"}, io.Discard, io.Discard))
	require.Error(t, run(ctx, []string{"-bogus"}, io.Discard, io.Discard))
}
