package smpcall_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/smp"
)

func isEnd(e *smpcall.CallStateEvent) bool { return e.To == smpcall.StateEnded }

// ended waits (in virtual time) for the end of c's call with the contact
// and returns its reason and the record's status.
func ended(t *testing.T, c *smpcall.Client) (smpcall.EndReason, smpcall.CICallStatus) {
	t.Helper()
	ev := waitWithin(t, c, time.Hour, isEnd)
	rec := waitWithin[*smpcall.CallRecordEvent](t, c, time.Hour)
	return ev.Reason, rec.Record.Status
}

// Every end reason the signaling side decides, on both sides, with the
// record status SimpleX would show (protocol §9), over the loopback in
// virtual time: the ring timeout's 60 s and the invitation lifetime cost
// nothing. The reasons that need a WebRTC connection (failed, timeout,
// reconnect) are tested with real peer connections elsewhere.
func TestEndReasons(t *testing.T) {
	inviteAndRing := func(t *testing.T, p *pair) {
		require.NoError(t, p.alice.SendInvitation(ctx, p.bobID, smpcall.DefaultCallType))
		wait[*smpcall.RingingEvent](t, p.bob)
	}
	negotiate := func(t *testing.T, p *pair) {
		inviteAndRing(t, p)
		require.NoError(t, p.bob.SendOffer(ctx, p.aliceID, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType, RTCSession: session}))
		wait[*smpcall.CallOfferEvent](t, p.alice)
		require.NoError(t, p.alice.SendAnswer(ctx, p.bobID, session))
		wait[*smpcall.CallAnswerEvent](t, p.bob)
	}
	type side struct {
		reason smpcall.EndReason
		status smpcall.CICallStatus
	}
	for _, tc := range []struct {
		name       string
		aliceCfg   *smpcall.Config
		bobCfg     *smpcall.Config
		run        func(t *testing.T, p *pair)
		alice, bob *side // nil: that side has no ended call to check
	}{
		{name: "caller hangs up while it rings",
			run: func(t *testing.T, p *pair) {
				inviteAndRing(t, p)
				require.NoError(t, p.alice.EndCall(ctx, p.bobID))
			},
			alice: &side{smpcall.ReasonLocalHangup, smpcall.CIStatusMissed}, bob: &side{smpcall.ReasonMissed, smpcall.CIStatusMissed}},
		{name: "callee declines; the caller rings until its timeout",
			run: func(t *testing.T, p *pair) {
				inviteAndRing(t, p)
				require.NoError(t, p.bob.Reject(ctx, p.aliceID))
			},
			alice: &side{smpcall.ReasonMissed, smpcall.CIStatusMissed}, bob: &side{smpcall.ReasonDeclined, smpcall.CIStatusRejected}},
		{name: "callee ends the invitation; the caller hears it",
			run: func(t *testing.T, p *pair) {
				inviteAndRing(t, p)
				require.NoError(t, p.bob.EndCall(ctx, p.aliceID))
			},
			alice: &side{smpcall.ReasonDeclined, smpcall.CIStatusMissed}, bob: &side{smpcall.ReasonDeclined, smpcall.CIStatusRejected}},
		{name: "hang-up after negotiation",
			run: func(t *testing.T, p *pair) {
				negotiate(t, p)
				require.NoError(t, p.bob.EndCall(ctx, p.aliceID))
			},
			alice: &side{smpcall.ReasonRemoteHangup, smpcall.CIStatusEnded}, bob: &side{smpcall.ReasonLocalHangup, smpcall.CIStatusEnded}},
		{name: "ring timeout",
			run:   inviteAndRing,
			alice: &side{smpcall.ReasonMissed, smpcall.CIStatusMissed}, bob: &side{smpcall.ReasonMissed, smpcall.CIStatusMissed}},
		{name: "invitation lifetime on the callee's side",
			aliceCfg: &smpcall.Config{RingTimeout: smpcall.Never},
			bobCfg:   &smpcall.Config{RingWindow: 30 * time.Second},
			run: func(t *testing.T, p *pair) {
				inviteAndRing(t, p)
				start := time.Now()
				waitWithin(t, p.bob, time.Hour, isEnd)
				require.Equal(t, 30*time.Second, time.Since(start).Round(time.Second))
				require.Equal(t, smpcall.StateInvitationSent, p.alice.CallState(p.bobID), "the caller keeps ringing")
				require.NoError(t, p.alice.EndCall(ctx, p.bobID))
			},
			alice: &side{smpcall.ReasonLocalHangup, smpcall.CIStatusMissed}},
		{name: "the caller invites again: the first call is replaced",
			run: func(t *testing.T, p *pair) {
				inviteAndRing(t, p)
				require.NoError(t, p.aliceCore.Invite(ctx, p.bobID, smpcall.DefaultCallType)) // e.g. Alice's other device
			},
			bob: &side{smpcall.ReasonReplaced, smpcall.CIStatusMissed}},
		{name: "transport gone",
			run: func(t *testing.T, p *pair) {
				inviteAndRing(t, p)
				require.NoError(t, p.aliceCore.Close())
			},
			alice: &side{smpcall.ReasonTransportLost, smpcall.CIStatusError}},
		{name: "client closed",
			run: func(t *testing.T, p *pair) {
				inviteAndRing(t, p)
				go func() { _ = p.alice.Close() }()
			},
			alice: &side{smpcall.ReasonClientClosed, smpcall.CIStatusMissed}, bob: &side{smpcall.ReasonMissed, smpcall.CIStatusMissed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newPair(t, tc.aliceCfg, tc.bobCfg)
				tc.run(t, p)
				for who, want := range map[*smpcall.Client]*side{p.alice: tc.alice, p.bob: tc.bob} {
					if want == nil {
						continue
					}
					reason, status := ended(t, who)
					require.Equal(t, want.reason, reason)
					require.Equal(t, want.status, status)
					require.Equal(t, want.reason.String(), reason.String())
				}
			})
		})
	}
}

// The caller's ring timeout ends an unanswered call as missed and tells the
// peer with x.call.end, so its phone stops ringing too.
func TestRingTimeoutEndsAsMissed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil, nil)
		require.NoError(t, p.alice.SendInvitation(ctx, p.bobID, smpcall.DefaultCallType))
		start := time.Now()
		wait[*smpcall.RingingEvent](t, p.bob)
		ev := waitWithin(t, p.alice, time.Hour, isEnd)
		require.Equal(t, smpcall.ReasonMissed, ev.Reason)
		require.Equal(t, 60*time.Second, time.Since(start).Round(time.Second))
		bobEnded := waitWithin(t, p.bob, time.Hour, isEnd)
		require.Equal(t, smpcall.ReasonMissed, bobEnded.Reason, "the caller gave up")
		synctest.Wait()
		require.Equal(t, []string{"alice>bob x.call.inv delivered", "alice>bob x.call.end delivered"}, p.wireLog())
	})
}

// Busy policies: an invitation from Carol while Alice and Bob are in a call.
func TestBusyPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy    smpcall.BusyPolicy
		rings     bool
		wire      []string // what crosses between Bob and Carol
		carolEnds smpcall.EndReason
	}{
		{smpcall.BusyRing, true, []string{"carol>bob x.call.inv delivered"}, smpcall.ReasonNone},
		{smpcall.BusyDeclineLocally, false, []string{"carol>bob x.call.inv delivered"}, smpcall.ReasonNone},
		{smpcall.BusyDeclineWithEnd, false, []string{"carol>bob x.call.inv delivered", "bob>carol x.call.end delivered"}, smpcall.ReasonDeclined},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var p pair
				p.net = smp.NewNetwork(&smp.NetworkConfig{Trace: p.trace})
				t.Cleanup(func() { require.NoError(t, p.net.Close()) })
				cores := map[string]*smp.Core{}
				for _, u := range []string{"alice", "bob", "carol"} {
					c, err := p.net.AddUser(u, nil)
					require.NoError(t, err)
					cores[u] = c
				}
				bobAtAlice, aliceAtBob, _ := p.net.Connect("alice", "bob")
				bobAtCarol, carolAtBob, _ := p.net.Connect("carol", "bob")
				clients := map[string]*smpcall.Client{}
				for u, c := range cores {
					cfg := &smpcall.Config{RingTimeout: smpcall.Never}
					if u == "bob" {
						cfg.Busy = tc.policy
					}
					cl, err := smpcall.NewClient(c, cfg)
					require.NoError(t, err)
					t.Cleanup(func() { require.NoError(t, cl.Close()) })
					clients[u] = cl
				}
				alice, bob, carol := clients["alice"], clients["bob"], clients["carol"]
				// Alice and Bob are in a call (Bob accepted with an offer).
				require.NoError(t, alice.SendInvitation(ctx, bobAtAlice, smpcall.DefaultCallType))
				wait[*smpcall.RingingEvent](t, bob)
				require.NoError(t, bob.SendOffer(ctx, aliceAtBob, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType, RTCSession: session}))
				synctest.Wait()
				p.mu.Lock()
				p.wire = nil
				p.mu.Unlock()

				require.NoError(t, carol.SendInvitation(ctx, bobAtCarol, smpcall.DefaultCallType))
				synctest.Wait()
				inv := wait[*smpcall.CallInvitationEvent](t, bob)
				require.Equal(t, "carol", inv.Invitation.Contact.Name())
				if tc.rings {
					wait[*smpcall.RingingEvent](t, bob)
					require.Equal(t, smpcall.StateInvitationReceived, bob.CallState(carolAtBob))
				} else {
					ev := wait(t, bob, func(e *smpcall.CallStateEvent) bool { return e.To == smpcall.StateEnded })
					require.Equal(t, smpcall.ReasonBusy, ev.Reason)
					require.Equal(t, smpcall.StateNone, bob.CallState(carolAtBob))
				}
				synctest.Wait()
				require.Equal(t, tc.wire, p.wireLog())
				if tc.carolEnds != smpcall.ReasonNone {
					ev := wait(t, carol, isEnd)
					require.Equal(t, tc.carolEnds, ev.Reason, "Carol stops ringing at once")
				} else {
					require.Equal(t, smpcall.StateInvitationSent, carol.CallState(bobAtCarol), "Carol is not told")
				}
				require.Equal(t, smpcall.StateOfferSent, bob.CallState(aliceAtBob), "the call in progress is untouched")
			})
		})
	}
}

// End reasons of high-level calls that the signaling decides before any
// peer connection exists, and the matching reason on the other side.
func TestCallEndReasonsBeforeMedia(t *testing.T) {
	t.Run("unencrypted", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := newPair(t, nil, nil, stripKeys)
			ac, err := p.alice.PlaceCall(ctx, p.bobID, &smpcall.CallOptions{Media: smpcall.MediaAudio})
			require.NoError(t, err)
			inv, err := p.bob.NextInvitation(ctx)
			require.NoError(t, err)
			bc, err := p.bob.AcceptCall(ctx, inv.Contact.ContactID, nil)
			require.NoError(t, err)
			<-bc.Done()
			r, err := bc.Reason()
			require.Equal(t, smpcall.ReasonUnencrypted, r)
			require.ErrorIs(t, err, smpcall.ErrUnencrypted)
			<-ac.Done()
			r, _ = ac.Reason()
			require.Equal(t, smpcall.ReasonDeclined, r)
			rec, _ := bc.Record()
			require.Equal(t, smpcall.CIStatusError, rec.Status)
		})
	})
	t.Run("protocol error", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := newPair(t, nil, nil)
			ac, err := p.alice.PlaceCall(ctx, p.bobID, &smpcall.CallOptions{Media: smpcall.MediaAudio})
			require.NoError(t, err)
			wait[*smpcall.RingingEvent](t, p.bob)
			// Bob's side sends an offer whose session is not LZString JSON.
			require.NoError(t, p.bob.SendOffer(ctx, p.aliceID, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType,
				RTCSession: smpcall.WebRTCSession{RTCSession: "not lz-string", RTCIceCandidates: "NoXSA==="}}))
			<-ac.Done()
			r, err := ac.Reason()
			require.Equal(t, smpcall.ReasonProtocolError, r)
			require.ErrorIs(t, err, smpcall.ErrProtocol)
			ev := waitWithin(t, p.bob, time.Hour, isEnd)
			require.Equal(t, smpcall.ReasonRemoteHangup, ev.Reason, "the caller told bob")
		})
	})
}
