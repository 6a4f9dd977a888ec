package smpcall_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/testnet"
	"github.com/smpcall/smpcall/smp"
)

// A call's media does not depend on the chat-core socket: when Alice's
// socket to her core drops for a few seconds mid-call, and when the core
// sends her a 10 MB frame, the call stays connected with media flowing
// both ways; her ChatClient reconnects by itself, and a later End still
// reaches Bob.
func TestCallOutlivesTheChatCoreSocket(t *testing.T) {
	urls := testnet.SimCore(t, "alice", "bob")
	proxy := testnet.NewCutProxy(t, urls["alice"])
	dial := func(url string) (*smpcall.Client, *smp.ChatClient) {
		tr, err := smp.DialChatCore(ctxWithin(t, 10*time.Second), url, nil)
		require.NoError(t, err)
		c, err := smpcall.NewClient(tr, rtcConfig(nil))
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, c.Close()) })
		return c, tr
	}
	alice, at := dial(proxy.URL)
	bob, _ := dial(urls["bob"])
	bobAtAlice, err := at.ContactByName(ctx, "bob")
	require.NoError(t, err)

	var aGot, bGot arrivals
	ac, err := alice.PlaceCall(ctx, bobAtAlice.ContactID, &smpcall.CallOptions{Media: smpcall.MediaAudio,
		Sources: smpcall.Sources{Mic: endlessAudio{&endless{tag: 'a', every: 20 * time.Millisecond}}},
		Sinks:   smpcall.Sinks{Mic: aGot.audioSink()}})
	require.NoError(t, err)
	inv, err := bob.NextInvitation(ctxWithin(t, 10*time.Second))
	require.NoError(t, err)
	bc, err := bob.AcceptCall(ctx, inv.Contact.ContactID, &smpcall.CallOptions{
		Sources: smpcall.Sources{Mic: endlessAudio{&endless{tag: 'b', every: 20 * time.Millisecond}}},
		Sinks:   smpcall.Sinks{Mic: bGot.audioSink()}})
	require.NoError(t, err)
	for _, k := range []*smpcall.Call{ac, bc} {
		_, err := k.WaitConnected(ctxWithin(t, 20*time.Second))
		require.NoError(t, err)
	}

	// The socket goes down for 3 s.
	proxy.SetDown(true)
	down := time.Now()
	waitFor[*smpcall.TransportErrorEvent](t, alice, func(e *smpcall.TransportErrorEvent) bool { return e.Temporary })
	time.Sleep(3 * time.Second)
	_, ok := aGot.firstAfter(down.Add(2 * time.Second))
	require.True(t, ok, "alice heard bob while her chat core was unreachable")
	_, ok = bGot.firstAfter(down.Add(2 * time.Second))
	require.True(t, ok, "bob heard alice meanwhile")
	require.Equal(t, smpcall.StateConnected, ac.State())
	proxy.SetDown(false)
	waitFor[*smpcall.TransportRestoredEvent](t, alice)
	require.Equal(t, uint64(1), at.Stats().Reconnects)

	// A 10 MB frame from the core (a huge event for another user).
	big := `{"resp":{"type":"newChatItems","user":{"userId":99},"chatItems":[],"filler":"` + strings.Repeat("x", 10<<20) + `"}}`
	require.NoError(t, proxy.Inject(ctxWithin(t, 10*time.Second), []byte(big)))
	mark := time.Now()
	time.Sleep(500 * time.Millisecond)
	_, ok = aGot.firstAfter(mark)
	require.True(t, ok, "media flows after the big frame")
	require.Equal(t, smpcall.StateConnected, ac.State())

	require.NoError(t, ac.End(ctx))
	select {
	case <-bc.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the end did not reach bob")
	}
	r, _ := bc.Reason()
	require.Equal(t, smpcall.ReasonRemoteHangup, r)
}

// waitFor returns the next Client event of type T that matches.
func waitFor[T smpcall.Event](t *testing.T, c *smpcall.Client, match ...func(T) bool) T {
	t.Helper()
	return waitWithin(t, c, 15*time.Second, match...)
}
