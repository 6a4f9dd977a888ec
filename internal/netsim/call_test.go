package netsim

import (
	"context"
	"testing"
	"testing/cryptotest"
	"testing/synctest"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
)

// callCtx bounds a call in virtual time. The bound is generous because
// pion's DTLS handshake has no deadline and backs off up to 60 s between
// retransmissions: with 20 % loss about 1.5 % of calls need over 30 s and
// one in 400 took 4 minutes (virtual time costs nothing).
func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func noAcceptWait(_ Side, se *webrtc.SettingEngine) {
	se.SetHostAcceptanceMinWait(0)
	se.SetSrflxAcceptanceMinWait(0)
	se.SetPrflxAcceptanceMinWait(0)
	se.SetRelayAcceptanceMinWait(0)
}

func TestProfilesCarryCalls(t *testing.T) {
	for _, p := range Profiles() {
		t.Run(p.Name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cryptotest.SetGlobalRandom(t, 1)
				n := newNet(t, p, 1)
				// 120 kbit/s of video and 48 kbit/s of audio (plus headers)
				// fit the narrowest profile.
				res, err := RawCall(callCtx(t), n, RawOptions{
					RelayOnly: p.RelayOnly, Media: 5 * time.Second,
					Audio: true, VideoFrameSize: 1000, VideoFPS: 15, BothWays: true,
				})
				require.NoError(t, err)
				t.Logf("answered %v, ICE %v, connected %v, pairs %v, media %+v", res.Answered, res.ICEConnected, res.Setup, res.Pair, res.Media)
				t.Logf("%+v", n.Stats())
				switch {
				case p.RelayOnly:
					require.Equal(t, [2]string{"relay→relay", "relay→relay"}, res.Pair)
				case p.NATA == NATSymmetric && p.NATB == NATSymmetric:
					require.Contains(t, res.Pair[A]+res.Pair[B], "relay", "only a relay connects two symmetric NATs")
				default:
					require.NotContains(t, res.Pair[A]+res.Pair[B], "relay", "a direct path exists")
				}
				for i, m := range res.Media {
					require.Equal(t, 250, m.AudioSent, "side %d", i)
					require.Equal(t, 75, m.VideoSent, "side %d", i)
					require.LessOrEqual(t, m.AudioReceived, m.AudioSent)
					require.LessOrEqual(t, m.VideoReceived, m.VideoSent)
					// Audio has no retransmission: it loses about what the
					// link loses (a 5 s call sees only a few loss bursts, so
					// allow three times their mean share, plus queue drops).
					// Video is repaired by NACK.
					bad := 0.0
					if p.Loss.BurstEnter > 0 {
						bad = p.Loss.BurstEnter / (p.Loss.BurstEnter + p.Loss.BurstExit)
					}
					maxLoss := p.Loss.Random + 3*bad + 0.06
					require.GreaterOrEqual(t, float64(m.AudioReceived), float64(m.AudioSent)*(1-maxLoss), "side %d", i)
					require.GreaterOrEqual(t, float64(m.VideoReceived), float64(m.VideoSent)*(1-maxLoss), "side %d", i)
				}
				st := n.Stats()
				for _, ls := range []LinkStats{st.A, st.B} {
					require.Equal(t, ls.Sent, ls.Delivered+ls.Lost+ls.QueueDrops+ls.InFlight, "every packet accounted for")
				}
			})
		})
	}
}

func TestNATMatrixWithoutRelay(t *testing.T) {
	for _, tc := range []struct {
		a, b    NATKind
		connect bool
	}{
		{NoNAT, NoNAT, true},
		{NATEndpointIndependent, NATEndpointIndependent, true},
		{NATAddressDependent, NATAddressDependent, true},
		{NATAddressPortDependent, NATAddressPortDependent, true},
		{NATSymmetric, NATEndpointIndependent, true},
		{NATSymmetric, NATAddressDependent, true},
		{NATSymmetric, NATAddressPortDependent, false},
		{NATSymmetric, NATSymmetric, false},
	} {
		t.Run(tc.a.String()+"/"+tc.b.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := newNet(t, Profile{NATA: tc.a, NATB: tc.b, Delay: 20 * time.Millisecond, TURN: true}, 1)
				res, err := RawCall(callCtx(t), n, RawOptions{STUNOnly: true})
				if !tc.connect {
					require.Error(t, err)
					return
				}
				require.NoError(t, err)
				t.Logf("pairs %v, connected after %v", res.Pair, res.Setup)
				if tc.a == NoNAT && tc.b == NoNAT {
					require.Equal(t, [2]string{"host→host", "host→host"}, res.Pair)
				}
			})
		})
	}
	t.Run("symmetric/symmetric with TURN", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := newNet(t, Profile{NATA: NATSymmetric, NATB: NATSymmetric, Delay: 20 * time.Millisecond, TURN: true}, 1)
			res, err := RawCall(callCtx(t), n, RawOptions{})
			require.NoError(t, err)
			require.Contains(t, res.Pair[A]+res.Pair[B], "relay")
		})
	})
}

// stateLog records a PeerConnection's state changes.
type stateLog struct {
	ch chan webrtc.PeerConnectionState
}

func watch(pc *webrtc.PeerConnection) *stateLog {
	l := &stateLog{ch: make(chan webrtc.PeerConnectionState, 100)}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		select {
		case l.ch <- s:
		default:
		}
	})
	return l
}

// waitFor waits (in virtual time) for the state and returns when it came.
func (l *stateLog) waitFor(t *testing.T, want webrtc.PeerConnectionState, within time.Duration) time.Time {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case s := <-l.ch:
			if s == want {
				return time.Now()
			}
		case <-deadline:
			require.FailNow(t, "state not reached", "%v within %v", want, within)
		}
	}
}

func TestLinkCutDisconnectsAndRestoreReconnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newNet(t, Profile{Delay: 30 * time.Millisecond, NATA: NATAddressPortDependent, NATB: NATAddressPortDependent, TURN: true}, 1)
		rp, _, err := connectRaw(callCtx(t), n, RawOptions{})
		require.NoError(t, err)
		defer rp.close()
		logs := [2]*stateLog{watch(rp.peers[A].pc), watch(rp.peers[B].pc)}

		cut := time.Now()
		n.SetLinkUp(A, false)
		for _, l := range logs {
			at := l.waitFor(t, webrtc.PeerConnectionStateDisconnected, 20*time.Second)
			t.Logf("disconnected %v after the cut", at.Sub(cut))
		}
		st := n.Stats().A
		require.NotZero(t, st.DownDrops)
		require.NotZero(t, st.InDrops)

		restore := time.Now()
		n.SetLinkUp(A, true)
		for _, l := range logs {
			at := l.waitFor(t, webrtc.PeerConnectionStateConnected, 20*time.Second)
			t.Logf("connected again %v after the restore", at.Sub(restore))
		}
	})
}

// restartICE runs an ICE restart from A over the in-process signaling.
func (rp *rawPair) restartICE(t *testing.T) {
	t.Helper()
	a, b := rp.peers[A], rp.peers[B]
	for _, p := range rp.peers {
		p.mu.Lock()
		p.remoteSet = false // hold the new candidates until the new description
		p.mu.Unlock()
	}
	offer, err := a.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	require.NoError(t, err)
	require.NoError(t, a.pc.SetLocalDescription(offer))
	require.NoError(t, b.setRemote(offer))
	answer, err := b.pc.CreateAnswer(nil)
	require.NoError(t, err)
	require.NoError(t, b.pc.SetLocalDescription(answer))
	require.NoError(t, a.setRemote(answer))
}

// A NAT rebinding kills a pion call until an ICE restart: the peer keeps
// sending to the dead address (pion does not move the selected pair to
// the peer-reflexive candidate the rebound side's checks create, with or
// without renomination), and with a port-restricted NAT on the other side
// the rebound side's checks do not even get in.
func TestRebindDuringCallNeedsICERestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newNet(t, Profile{Delay: 30 * time.Millisecond, NATA: NATAddressPortDependent, NATB: NATAddressPortDependent, TURN: true}, 1)
		rp, _, err := connectRaw(callCtx(t), n, RawOptions{})
		require.NoError(t, err)
		defer rp.close()
		logs := [2]*stateLog{watch(rp.peers[A].pc), watch(rp.peers[B].pc)}

		require.NoError(t, n.Rebind(A))
		for _, l := range logs {
			l.waitFor(t, webrtc.PeerConnectionStateDisconnected, 20*time.Second)
		}
		rp.restartICE(t)
		for _, l := range logs {
			l.waitFor(t, webrtc.PeerConnectionStateConnected, 20*time.Second)
		}
		time.Sleep(10 * time.Second)
		for _, p := range rp.peers {
			require.Equal(t, webrtc.PeerConnectionStateConnected, p.pc.ConnectionState(), "side %v stays connected", p.side)
		}
	})
}

// pion's own RTT measurement (the selected pair's STUN round trip) sees
// exactly twice the one-way delay, in virtual time.
func TestPionMeasuresTheDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newNet(t, Profile{Delay: 125 * time.Millisecond, NATA: NATAddressPortDependent, TURN: true}, 1)
		rp, _, err := connectRaw(callCtx(t), n, RawOptions{})
		require.NoError(t, err)
		defer rp.close()
		time.Sleep(5 * time.Second) // a few consent checks
		for _, p := range rp.peers {
			var rtt float64
			for _, s := range p.pc.GetStats() {
				if cp, ok := s.(webrtc.ICECandidatePairStats); ok && cp.Nominated {
					rtt = cp.CurrentRoundTripTime
				}
			}
			require.InDelta(t, 0.250, rtt, 1e-9, "side %v", p.side)
		}
	})
}
