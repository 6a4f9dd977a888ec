package smpcall_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
)

// stallTransport holds the offer, answer and extra commands until the test
// releases them, like a chat core that stopped answering. With ignoreCtx it
// does not even honour the command's context.
type stallTransport struct {
	smpcall.Transport
	ignoreCtx         bool
	release           chan struct{}
	started, returned atomic.Int32
}

func (s *stallTransport) stall(ctx context.Context) error {
	s.started.Add(1)
	defer s.returned.Add(1)
	if s.ignoreCtx {
		<-s.release
		return nil
	}
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *stallTransport) Offer(ctx context.Context, id int64, o smpcall.WebRTCCallOffer) error {
	if err := s.stall(ctx); err != nil {
		return err
	}
	return s.Transport.Offer(ctx, id, o)
}

func (s *stallTransport) Answer(ctx context.Context, id int64, a smpcall.WebRTCSession) error {
	if err := s.stall(ctx); err != nil {
		return err
	}
	return s.Transport.Answer(ctx, id, a)
}

func (s *stallTransport) Extra(ctx context.Context, id int64, e smpcall.WebRTCExtraInfo) error {
	if err := s.stall(ctx); err != nil {
		return err
	}
	return s.Transport.Extra(ctx, id, e)
}

// End returns while the chat core sits on the call's offer or answer: the
// call's loop never waits for signaling, so hanging up is immediate, the
// contact is free at once, and the x.call.end still reaches the peer once
// the core moves again.
func TestEndDoesNotWaitForStalledSignaling(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stalled   string // whose transport stalls
		ignoreCtx bool
	}{
		{"callee offer, context honoured", "bob", false},
		{"callee offer, context ignored", "bob", true},
		{"caller answer, context ignored", "alice", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &stallTransport{ignoreCtx: tc.ignoreCtx, release: make(chan struct{})}
			released := false
			release := func() {
				if !released {
					released = true
					close(st.release)
				}
			}
			t.Cleanup(release) // before the Clients close
			wrap := func(name string, tr smpcall.Transport) smpcall.Transport {
				if name != tc.stalled {
					return tr
				}
				st.Transport = tr
				return st
			}
			var tp taps
			alice, bob, _ := newRTCPair(t, rtcConfig(nil), rtcConfig(nil), func(name string, tr smpcall.Transport) smpcall.Transport {
				return wrap(name, tp.wrap(name, tr))
			})
			ac, err := alice.client.PlaceCall(ctx, alice.peerID, &smpcall.CallOptions{Media: smpcall.MediaAudio})
			require.NoError(t, err)
			wait[*smpcall.RingingEvent](t, bob.client)
			bc, err := bob.client.AcceptCall(ctx, bob.peerID, nil)
			require.NoError(t, err)
			require.Eventually(t, func() bool { return st.started.Load() > 0 }, waitTime, time.Millisecond, "the stall began")

			stalled, side, peerID := bc, bob, bob.peerID
			other := ac
			if tc.stalled == "alice" {
				stalled, side, peerID, other = ac, alice, alice.peerID, bc
			}
			ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			begin := time.Now()
			require.NoError(t, stalled.End(ectx))
			took := time.Since(begin)
			t.Logf("End returned after %v with the core stalled", took)
			if tc.ignoreCtx {
				require.Zero(t, st.returned.Load(), "End returned while the stalled command was still blocked")
			}
			reason, _ := stalled.Reason()
			require.Equal(t, smpcall.ReasonLocalHangup, reason)
			require.Equal(t, smpcall.StateEnded, stalled.State())
			require.Equal(t, smpcall.StateNone, side.client.CallState(peerID), "the contact is free at once")
			rec, ok := stalled.Record()
			require.True(t, ok)
			require.Equal(t, smpcall.ReasonLocalHangup, rec.Reason)

			// Once the core moves, the end reaches the peer.
			release()
			select {
			case <-other.Done():
			case <-time.After(waitTime):
				t.Fatal("the peer never heard the end")
			}
			if tc.stalled == "bob" {
				r, _ := other.Reason()
				require.Equal(t, smpcall.ReasonDeclined, r, "the callee ended before its offer went out")
			}
		})
	}
}

// Events of a high-level call go to the Call, not to the Client; and a
// Client whose events nobody reads still makes a thousand calls with flat
// memory: its queues are bounded and drop the oldest.
func TestUnreadEventsStayBounded(t *testing.T) {
	cfg := func(c *smpcall.Config) { c.EventBuffer = 16 }
	alice, bob, _ := newRTCPair(t, rtcConfig(cfg), rtcConfig(cfg), nil)

	// One full call first: its events are on the Call.
	ac, err := alice.client.PlaceCall(ctx, alice.peerID, &smpcall.CallOptions{Media: smpcall.MediaAudio})
	require.NoError(t, err)
	inv, err := bob.client.NextInvitation(ctxWithin(t, waitTime))
	require.NoError(t, err)
	bc, err := bob.client.AcceptCall(ctx, inv.Contact.ContactID, nil)
	require.NoError(t, err)
	_, err = ac.WaitConnected(ctxWithin(t, 20*time.Second))
	require.NoError(t, err)
	waitCall[*smpcall.CallConnectedEvent](t, bc)
	require.NoError(t, ac.End(ctx))
	<-bc.Done()
	var kinds []string
	for ev := range bc.Events() {
		kinds = append(kinds, typeName(ev))
	}
	require.Contains(t, kinds, "CallStateEvent")
	require.Equal(t, "CallRecordEvent", kinds[len(kinds)-1])
	for len(alice.client.Events()) > 0 {
		switch e := (<-alice.client.Events()).(type) {
		case *smpcall.CallConnectedEvent, *smpcall.CallRecordEvent, *smpcall.CallStateEvent, *smpcall.CallOfferEvent:
			t.Fatalf("a high-level call's %T reached the Client's stream", e)
		}
	}

	// Now a thousand calls that Bob's Client announces and nobody reads:
	// Alice places each, Bob's phone rings, Alice gives up.
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	const calls = 1000
	var after100 uint64
	for i := range calls {
		k, err := alice.client.PlaceCall(ctx, alice.peerID, &smpcall.CallOptions{Media: smpcall.MediaAudio})
		require.NoError(t, err, "call %d", i)
		require.Eventually(t, func() bool { return bob.client.CallState(bob.peerID) == smpcall.StateInvitationReceived }, waitTime, 100*time.Microsecond)
		require.NoError(t, k.End(ctx))
		require.Eventually(t, func() bool { return bob.client.CallState(bob.peerID) == smpcall.StateNone }, waitTime, 100*time.Microsecond)
		if i == 99 {
			after100 = heap()
		}
	}
	final := heap()
	t.Logf("heap after 100 calls %d KB, after %d calls %d KB; Bob dropped %d unread events", after100/1024, calls, final/1024, bob.client.DroppedEvents())
	require.LessOrEqual(t, len(bob.client.Events()), 16, "the Client's channel holds at most EventBuffer events")
	require.Greater(t, bob.client.DroppedEvents(), uint64(calls), "unread events were dropped, not kept")
	require.Less(t, final, after100+4<<20, "memory stays flat: %d KB after 100 calls, %d KB after %d", after100/1024, final/1024, calls)
}

func ctxWithin(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

func typeName(ev smpcall.Event) string {
	switch ev.(type) {
	case *smpcall.CallStateEvent:
		return "CallStateEvent"
	case *smpcall.CallRecordEvent:
		return "CallRecordEvent"
	case *smpcall.CallConnectedEvent:
		return "CallConnectedEvent"
	case *smpcall.PeerMediaEvent:
		return "PeerMediaEvent"
	}
	return "other"
}
