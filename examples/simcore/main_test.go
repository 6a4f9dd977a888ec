package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/smp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The simulator prints its users and contacts first, then serves the
// chat-core API on each user's URL and logs the x.call.* messages.
func TestSimcore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-users", "alice,bob,carol", "-listen", "127.0.0.1:0"}, pw, io.Discard)
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
	next := func() string {
		select {
		case l := <-lines:
			return l
		case <-time.After(10 * time.Second):
			t.Fatal("simcore printed nothing")
			return ""
		}
	}
	urls := map[string]string{}
	for range 3 {
		f := strings.Fields(next())
		require.Len(t, f, 3)
		require.Equal(t, "user", f[0])
		require.True(t, strings.HasPrefix(f[2], "ws://127.0.0.1:"))
		urls[f[1]] = f[2]
	}
	require.Len(t, urls, 3)
	contacts := map[string]string{}
	for range 6 {
		f := strings.Fields(next())
		require.Equal(t, "contact", f[0])
		contacts[f[1]+">"+f[2]] = f[3]
	}
	require.Equal(t, "1", contacts["alice>bob"])
	require.Equal(t, "2", contacts["alice>carol"])
	require.Equal(t, "ready", next())

	at, err := smp.DialChatCore(ctx, urls["alice"], nil)
	require.NoError(t, err)
	bt, err := smp.DialChatCore(ctx, urls["bob"], nil)
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
	require.Contains(t, next(), "alice → bob  x.call.inv")
	_, err = at.Command(ctx, "/nonsense")
	require.ErrorIs(t, err, smpcall.ErrCommand)
	require.NoError(t, at.Close())
	require.NoError(t, bt.Close())
	cancel()
	require.NoError(t, <-done)
	for range lines {
	}
}

func TestSimcoreFlags(t *testing.T) {
	ctx := context.Background()
	require.Error(t, run(ctx, []string{"-users", "alice,alice"}, io.Discard, io.Discard))
	require.Error(t, run(ctx, []string{"-users", "a b"}, io.Discard, io.Discard))
	require.Error(t, run(ctx, []string{"-listen", "nohost"}, io.Discard, io.Discard))
	require.Error(t, run(ctx, []string{"-bogus"}, io.Discard, io.Discard))
}
