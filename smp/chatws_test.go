package smp_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/internal/testnet"
	"github.com/smpcall/smpcall/smp"
)

func loopbackConfig() *smpcall.Config { return testnet.LoopbackConfig() }

func waitEv[T smpcall.Event](t *testing.T, c *smpcall.Client, match ...func(T) bool) T {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-c.Events():
			require.True(t, ok)
			if v, ok := ev.(T); ok && (len(match) == 0 || match[0](v)) {
				return v
			}
		case <-timeout:
			var zero T
			t.Fatalf("no %T", zero)
			return zero
		}
	}
}

type paced struct {
	n     int
	every time.Duration
}

func (p *paced) ReadFrame(ctx context.Context) (audio.Frame, error) {
	select {
	case <-time.After(p.every):
	case <-ctx.Done():
		return audio.Frame{}, ctx.Err()
	}
	p.n++
	return audio.Frame{Data: []byte{0x78, byte(p.n), 1, 2, 3, 4, 5, 6}}, nil
}

// Two Go clients, each on its own WebSocket to the simulated core, place
// and answer an encrypted call with media and end it; the call items go
// through the statuses of protocol §9.
func TestChatClientCallOverWebSocket(t *testing.T) {
	urls := testnet.SimCore(t, "alice", "bob")
	ctx := context.Background()
	at, err := smp.DialChatCore(ctx, urls["alice"], nil)
	require.NoError(t, err)
	bt, err := smp.DialChatCore(ctx, urls["bob"], nil)
	require.NoError(t, err)
	require.Equal(t, "alice", at.User().LocalDisplayName)
	bobAtAlice, err := at.ContactByName(ctx, "bob")
	require.NoError(t, err)
	_, err = at.ContactByName(ctx, "mallory")
	require.Error(t, err)

	alice, err := smpcall.NewClient(at, loopbackConfig())
	require.NoError(t, err)
	defer alice.Close()
	bob, err := smpcall.NewClient(bt, loopbackConfig())
	require.NoError(t, err)
	defer bob.Close()

	var got int
	gotFrames := make(chan struct{}, 1)
	sink := audio.SinkFunc(func(audio.Frame) error {
		got++
		if got == 20 {
			gotFrames <- struct{}{}
		}
		return nil
	})
	call, err := alice.PlaceCall(ctx, bobAtAlice.ContactID, &smpcall.CallOptions{Media: smpcall.MediaAudio, Sinks: smpcall.Sinks{Mic: sink}})
	require.NoError(t, err)
	ring := waitEv[*smpcall.RingingEvent](t, bob)
	require.NotNil(t, ring.Invitation.SharedKey)
	require.NotEmpty(t, ring.Invitation.CallUUID)
	pending, err := bt.Invitations(ctx)
	require.NoError(t, err)
	require.Len(t, pending, 1)
	answer, err := bob.AcceptCall(ctx, ring.Invitation.Contact.ContactID, &smpcall.CallOptions{Sources: smpcall.Sources{Mic: &paced{every: 10 * time.Millisecond}}})
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err = call.WaitConnected(wctx)
	require.NoError(t, err)
	require.True(t, call.Encrypted())
	select {
	case <-gotFrames:
	case <-wctx.Done():
		t.Fatal("no media")
	}
	require.NoError(t, call.End(ctx))
	<-answer.Done()

	// Alice's call item, as the core reported it over the API.
	var texts []string
	for len(texts) == 0 || texts[len(texts)-1] != "outgoing call: ended (00:00)" {
		ev := waitEv[*smpcall.CallItemEvent](t, alice)
		texts = append(texts, ev.Item.Text)
	}
	require.Equal(t, []string{"outgoing call: calling...", "outgoing call: accepted", "outgoing call: connecting...",
		"outgoing call: in progress (00:00)", "outgoing call: ended (00:00)"}, texts)
}

// Core refusals come back as typed errors.
func TestChatClientErrors(t *testing.T) {
	urls := testnet.SimCore(t, "alice", "bob")
	ctx := context.Background()
	at, err := smp.DialChatCore(ctx, urls["alice"], nil)
	require.NoError(t, err)
	defer at.Close()
	err = at.Answer(ctx, 1, smpcall.WebRTCSession{RTCSession: "x", RTCIceCandidates: "y"})
	require.ErrorIs(t, err, smpcall.ErrNoCurrentCall)
	require.NoError(t, at.Invite(ctx, 1, smpcall.DefaultCallType))
	err = at.Offer(ctx, 1, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType})
	var ce *smpcall.ChatError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, smpcall.KindCallState, ce.Kind)
	require.Equal(t, smpcall.TagInvitationSent, ce.CurrentCallState)
	err = at.Invite(ctx, 99, smpcall.DefaultCallType)
	require.ErrorAs(t, err, &ce)
	require.Equal(t, smpcall.KindStore, ce.Kind)
	_, err = at.Command(ctx, "/hello")
	require.ErrorIs(t, err, smpcall.ErrCommand)
	require.NoError(t, at.End(ctx, 1))

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, at.End(cctx, 1), context.Canceled)
	require.NoError(t, at.Close())
	require.NoError(t, at.Close())
	require.ErrorIs(t, at.End(ctx, 1), smpcall.ErrClosed)
}

// With automatic reconnection off, a socket that drops mid-call is a
// permanent loss: pending commands fail clearly, the Client ends the call
// with a reason, and Reconnect dials again.
func TestChatClientSocketDropsMidCallWithoutReconnect(t *testing.T) {
	urls := testnet.SimCore(t, "alice", "bob")
	ctx := context.Background()
	// Alice goes through a proxy we can cut.
	proxy := testnet.NewCutProxy(t, urls["alice"])
	at, err := smp.DialChatCore(ctx, proxy.URL, &smp.ChatClientOptions{NoReconnect: true})
	require.NoError(t, err)
	bt, err := smp.DialChatCore(ctx, urls["bob"], nil)
	require.NoError(t, err)
	alice, err := smpcall.NewClient(at, loopbackConfig())
	require.NoError(t, err)
	defer alice.Close()
	bob, err := smpcall.NewClient(bt, loopbackConfig())
	require.NoError(t, err)
	defer bob.Close()

	call, err := alice.PlaceCall(ctx, 1, &smpcall.CallOptions{Media: smpcall.MediaAudio})
	require.NoError(t, err)
	waitEv[*smpcall.RingingEvent](t, bob)
	answer, err := bob.AcceptCall(ctx, 1, nil)
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err = call.WaitConnected(wctx)
	require.NoError(t, err)

	proxy.Cut()
	<-call.Done()
	reason, err := call.Reason()
	require.Equal(t, smpcall.ReasonTransportLost, reason)
	require.Error(t, err)
	err = at.End(ctx, 1)
	require.ErrorIs(t, err, smp.ErrDisconnected)

	require.NoError(t, at.Reconnect(ctx))
	_, err = at.Contacts(ctx)
	require.NoError(t, err, "works again after Reconnect")
	require.NoError(t, answer.End(ctx))
	require.True(t, errors.Is(smp.ErrDisconnected, smp.ErrDisconnected))
}

// One caller's cancelled context fails that command only; the connection
// stays up for everyone else.
func TestChatClientCancelledCommandKeepsTheConnection(t *testing.T) {
	urls := testnet.SimCore(t, "alice", "bob")
	ctx := context.Background()
	at, err := smp.DialChatCore(ctx, urls["alice"], nil)
	require.NoError(t, err)
	defer at.Close()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for range 20 {
		_, err := at.Contacts(cancelled)
		require.ErrorIs(t, err, context.Canceled)
	}
	cs, err := at.Contacts(ctx)
	require.NoError(t, err)
	require.Len(t, cs, 1)
}

// Concurrent Reconnects leave one connection, and Close returns.
func TestChatClientConcurrentReconnect(t *testing.T) {
	urls := testnet.SimCore(t, "alice", "bob")
	ctx := context.Background()
	at, err := smp.DialChatCore(ctx, urls["alice"], nil)
	require.NoError(t, err)
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- at.Reconnect(ctx) }()
	}
	for range 4 {
		require.NoError(t, <-errs)
	}
	_, err = at.Contacts(ctx)
	require.NoError(t, err)
	closed := make(chan error, 1)
	go func() { closed <- at.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung")
	}
}
