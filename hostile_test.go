package smpcall_test

// Hostile peers against the Client and its Calls (RELIABILITY.md,
// "Hostile peers"): malformed and oversized sessions and candidates, an SDP
// that does not apply, an offer without VP8 under encryption, bad and
// low-order keys, floods of x.call.extra, replayed and stale x.call.*
// messages, ICE-restart messages from a peer that never announced the
// extension or that change the m-lines, and candidates pointing at odd
// addresses. Each ends the call with the right reason or is ignored; none
// panics, hangs or leaks a goroutine (the synctest bubble of each test
// fails on a goroutine left blocked, and goleak checks the package), and
// memory stays bounded. The hostile side is either an SDK Client whose
// outgoing commands are tampered with (a peer running different code) or
// raw x.call.* messages injected into the loopback (a broken or hostile SMP
// stack, which real SMP's double ratchet and duplicate suppression rule out
// for anyone but the contact itself).

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/lzstring"
	"github.com/smpcall/smpcall/internal/netsim"
	"github.com/smpcall/smpcall/internal/rtcpayload"
	"github.com/smpcall/smpcall/internal/testnet"
	"github.com/smpcall/smpcall/smp"
)

// tamper is a Transport whose outgoing offer, answer and extras pass
// through functions first: a peer that runs other code than ours.
type tamper struct {
	smpcall.Transport
	offer  func(*smpcall.WebRTCCallOffer)
	answer func(*smpcall.WebRTCSession)
	extra  func(*smpcall.WebRTCExtraInfo)
}

func (tp *tamper) Offer(ctx context.Context, id int64, o smpcall.WebRTCCallOffer) error {
	if tp.offer != nil {
		tp.offer(&o)
	}
	return tp.Transport.Offer(ctx, id, o)
}

func (tp *tamper) Answer(ctx context.Context, id int64, a smpcall.WebRTCSession) error {
	if tp.answer != nil {
		tp.answer(&a)
	}
	return tp.Transport.Answer(ctx, id, a)
}

func (tp *tamper) Extra(ctx context.Context, id int64, e smpcall.WebRTCExtraInfo) error {
	if tp.extra != nil {
		tp.extra(&e)
	}
	return tp.Transport.Extra(ctx, id, e)
}

// lz is the rtcSession/rtcIceCandidates encoding of a JSON text.
func lz(s string) string { return lzstring.CompressToBase64(s) }

// editSession rewrites the SDP (and type) inside an rtcSession string.
func editSession(t *testing.T, s *smpcall.WebRTCSession, f func(sess *rtcpayload.Session)) {
	sess, err := rtcpayload.DecodeSession(s.RTCSession)
	require.NoError(t, err)
	f(&sess)
	s.RTCSession, err = rtcpayload.EncodeSession(sess)
	require.NoError(t, err)
}

// hostileSetup is a victim Client (alice) and a peer (bob) on the loopback
// and a simulated LAN, without a call yet.
type hostileSetup struct {
	net            *smp.Network
	wire           *rawWire
	sim            *netsim.Net
	aliceCore      *smp.Core
	bobCore        *smp.Core
	alice, bob     *smpcall.Client // bob is nil when the test plays bob's core itself
	bobID, aliceID int64
	logs           *syncBuffer // alice's log
}

func newHostile(t *testing.T, sdkBob bool, bobTamper *tamper) *hostileSetup {
	t.Helper()
	h := &hostileSetup{wire: &rawWire{}, logs: &syncBuffer{}}
	var err error
	h.sim, err = netsim.New(t, lanProfile, 3)
	require.NoError(t, err)
	h.net = smp.NewNetwork(&smp.NetworkConfig{Trace: h.wire.trace})
	t.Cleanup(func() { require.NoError(t, h.net.Close()) })
	h.aliceCore, err = h.net.AddUser("alice", nil)
	require.NoError(t, err)
	h.bobCore, err = h.net.AddUser("bob", nil)
	require.NoError(t, err)
	h.bobID, h.aliceID, err = h.net.Connect("alice", "bob")
	require.NoError(t, err)
	cfg := func(side netsim.Side) *smpcall.Config {
		return &smpcall.Config{SettingEngine: h.sim.SettingEngine(side), ICEServers: []smpcall.ICEServer{}}
	}
	acfg := cfg(netsim.A)
	acfg.Logger = h.logs.logger()
	h.alice, err = smpcall.NewClient(h.aliceCore, acfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.alice.Close()) })
	if sdkBob {
		var tr smpcall.Transport = h.bobCore
		if bobTamper != nil {
			bobTamper.Transport = h.bobCore
			tr = bobTamper
		}
		h.bob, err = smpcall.NewClient(tr, cfg(netsim.B))
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, h.bob.Close()) })
	}
	return h
}

// endedWithin waits (virtual time) for k to end and returns how long it took.
func endedWithin(t *testing.T, k *smpcall.Call, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-k.Done():
		return time.Since(start)
	case <-time.After(limit):
		r, err := k.Reason()
		t.Fatalf("the call did not end within %v (state %s, reason %s %v)", limit, k.State(), r, err)
		return 0
	}
}

// TestHostilePeerOffers: a callee whose offer is broken in each way makes
// the caller end the call at once with ReasonProtocolError (an error
// wrapping ErrProtocol, protocol §10.3) and tell the callee with
// x.call.end.
func TestHostilePeerOffers(t *testing.T) {
	huge := `{"type":"offer","sdp":"v=0\r\n` + strings.Repeat("a=x-padding:0123456789abcdef\r\n", 40_000) + `"}` // 1.2 M characters
	for _, tc := range []struct {
		name  string
		media smpcall.CallMediaType
		edit  func(t *testing.T, o *smpcall.WebRTCCallOffer)
	}{
		{"rtcSession is not LZString", smpcall.MediaAudio, func(t *testing.T, o *smpcall.WebRTCCallOffer) { o.RTCSession.RTCSession = "not lz-string!" }},
		{"rtcSession is LZString of text", smpcall.MediaAudio, func(t *testing.T, o *smpcall.WebRTCCallOffer) { o.RTCSession.RTCSession = lz("hello") }},
		{"rtcSession is an answer", smpcall.MediaAudio, func(t *testing.T, o *smpcall.WebRTCCallOffer) {
			editSession(t, &o.RTCSession, func(s *rtcpayload.Session) { s.Type = "answer" })
		}},
		{"an SDP that does not apply", smpcall.MediaAudio, func(t *testing.T, o *smpcall.WebRTCCallOffer) {
			editSession(t, &o.RTCSession, func(s *rtcpayload.Session) { s.SDP = "v=0\r\nm=audio nonsense\r\n" })
		}},
		{"an SDP without its DTLS fingerprint", smpcall.MediaAudio, func(t *testing.T, o *smpcall.WebRTCCallOffer) {
			editSession(t, &o.RTCSession, func(s *rtcpayload.Session) { s.SDP = dropLines(s.SDP, "a=fingerprint:") })
		}},
		{"video without VP8 under encryption", smpcall.MediaVideo, func(t *testing.T, o *smpcall.WebRTCCallOffer) {
			editSession(t, &o.RTCSession, func(s *rtcpayload.Session) { s.SDP = strings.ReplaceAll(s.SDP, "VP8/90000", "H264/90000") })
		}},
		{"rtcIceCandidates is not LZString", smpcall.MediaAudio, func(t *testing.T, o *smpcall.WebRTCCallOffer) { o.RTCSession.RTCIceCandidates = "%%%" }},
		{"rtcIceCandidates of the wrong shape", smpcall.MediaAudio, func(t *testing.T, o *smpcall.WebRTCCallOffer) {
			o.RTCSession.RTCIceCandidates = lz(`[{"candidate":5}]`)
		}},
		{"300 candidates", smpcall.MediaAudio, func(t *testing.T, o *smpcall.WebRTCCallOffer) {
			o.RTCSession.RTCIceCandidates = lz("[" + strings.TrimSuffix(strings.Repeat(`{"candidate":"candidate:1 1 udp 1 10.0.0.1 9 typ host","sdpMid":"0"},`, 300), ",") + "]")
		}},
		{"rtcSession of 1.2 M characters", smpcall.MediaAudio, func(t *testing.T, o *smpcall.WebRTCCallOffer) { o.RTCSession.RTCSession = lz(huge) }},
		{"a decompression bomb (4 M units from 40 KB)", smpcall.MediaAudio, func(t *testing.T, o *smpcall.WebRTCCallOffer) {
			o.RTCSession.RTCSession = lz(strings.Repeat("a", 4<<20))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tp := &tamper{}
				tp.offer = func(o *smpcall.WebRTCCallOffer) { tc.edit(t, o) }
				h := newHostile(t, true, tp)
				heap := liveHeap()
				ac, err := h.alice.PlaceCall(ctx, h.bobID, &smpcall.CallOptions{Media: tc.media})
				require.NoError(t, err)
				inv, err := h.bob.NextInvitation(ctxWithin(t, time.Minute))
				require.NoError(t, err)
				bc, err := h.bob.AcceptCall(ctx, inv.Contact.ContactID, nil)
				require.NoError(t, err)
				took := endedWithin(t, ac, time.Minute)
				require.Less(t, took, time.Second, "at once, not at a timeout")
				r, err := ac.Reason()
				require.Equal(t, smpcall.ReasonProtocolError, r)
				require.ErrorIs(t, err, smpcall.ErrProtocol)
				endedWithin(t, bc, time.Minute)
				r, _ = bc.Reason()
				require.Equal(t, smpcall.ReasonRemoteHangup, r, "the caller told the callee")
				require.Contains(t, h.wire.events(), "alice>bob x.call.end")
				require.Less(t, liveHeap(), heap+16<<20, "memory stays bounded")
			})
		})
	}
}

// TestHostilePeerAnswers: a caller whose answer is broken makes the callee
// end the call at once with ReasonProtocolError and tell the caller.
func TestHostilePeerAnswers(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, a *smpcall.WebRTCSession)
	}{
		{"rtcSession is not LZString", func(t *testing.T, a *smpcall.WebRTCSession) { a.RTCSession = "!!" }},
		{"rtcSession is an offer", func(t *testing.T, a *smpcall.WebRTCSession) {
			editSession(t, a, func(s *rtcpayload.Session) { s.Type = "offer" })
		}},
		{"an SDP that does not apply", func(t *testing.T, a *smpcall.WebRTCSession) {
			editSession(t, a, func(s *rtcpayload.Session) { s.SDP = "v=0\r\nnonsense\r\n" })
		}},
		{"an answer with other m-lines", func(t *testing.T, a *smpcall.WebRTCSession) {
			editSession(t, a, func(s *rtcpayload.Session) { s.SDP = keepFirstMLine(s.SDP) })
		}},
		{"rtcIceCandidates is not LZString", func(t *testing.T, a *smpcall.WebRTCSession) { a.RTCIceCandidates = "@" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tp := &tamper{}
				tp.answer = func(a *smpcall.WebRTCSession) { tc.edit(t, a) }
				h := newHostile(t, true, tp)
				bc, err := h.bob.PlaceCall(ctx, h.aliceID, &smpcall.CallOptions{Media: smpcall.MediaAudio})
				require.NoError(t, err)
				inv, err := h.alice.NextInvitation(ctxWithin(t, time.Minute))
				require.NoError(t, err)
				ac, err := h.alice.AcceptCall(ctx, inv.Contact.ContactID, nil)
				require.NoError(t, err)
				took := endedWithin(t, ac, time.Minute)
				require.Less(t, took, 2*time.Second, "at once, not at a timeout")
				r, err := ac.Reason()
				require.Equal(t, smpcall.ReasonProtocolError, r, "%v", err)
				require.ErrorIs(t, err, smpcall.ErrProtocol)
				t.Logf("%v", err)
				endedWithin(t, bc, time.Minute)
				r, _ = bc.Reason()
				require.Equal(t, smpcall.ReasonRemoteHangup, r)
			})
		})
	}
}

// dropLines removes the SDP lines with the prefix.
func dropLines(sdp, prefix string) string {
	var out []string
	for _, l := range strings.Split(sdp, "\r\n") {
		if !strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\r\n")
}

// keepFirstMLine cuts an SDP after its first media section.
func keepFirstMLine(sdp string) string {
	first := strings.Index(sdp, "\r\nm=")
	second := strings.Index(sdp[first+2:], "\r\nm=")
	if first < 0 || second < 0 {
		return sdp
	}
	return sdp[:first+2+second+2]
}

// --- raw x.call.* messages ------------------------------------------------

func encode(t *testing.T, m *smp.Message) []byte {
	t.Helper()
	b, err := m.Encode()
	require.NoError(t, err)
	return b
}

func extraMsg(t *testing.T, id smpcall.CallID, payload string) []byte {
	return encode(t, &smp.Message{Event: smp.EventExtra, CallID: id,
		Extra: &smp.CallExtraInfo{RTCExtraInfo: smpcall.WebRTCExtraInfo{RTCIceCandidates: payload}}})
}

// currentCallID is the id of the call alice's core has with bob.
func currentCallID(t *testing.T, core *smp.Core, contactID int64) smpcall.CallID {
	t.Helper()
	_, id, ok := core.CurrentCall(contactID)
	require.True(t, ok, "no current call")
	return id
}

// A key that is malformed or of low order (its X25519 output would be all
// zero, a key everyone knows) in the peer's offer: the caller's core
// refuses the offer (protocol §5.2), so the caller's Call must end with a
// protocol error and tell the peer, not ring on until its ring timeout as
// if nobody had answered.
func TestHostilePeerBadKeys(t *testing.T) {
	session := smpcall.WebRTCSession{RTCSession: lz(`{"type":"offer","sdp":"v=0\r\n"}`), RTCIceCandidates: lz("[]")}
	for _, tc := range []struct {
		name string
		msg  func(t *testing.T, id smpcall.CallID) []byte
	}{
		{"low-order key", func(t *testing.T, id smpcall.CallID) []byte {
			var zero smp.DHPublicKey
			return encode(t, &smp.Message{Event: smp.EventOffer, CallID: id,
				Offer: &smp.CallOffer{CallType: smpcall.DefaultCallType, RTCSession: session, CallDHPubKey: &zero}})
		}},
		{"malformed key", func(t *testing.T, id smpcall.CallID) []byte {
			var k smp.DHPublicKey
			k[0] = 9
			b := encode(t, &smp.Message{Event: smp.EventOffer, CallID: id,
				Offer: &smp.CallOffer{CallType: smpcall.DefaultCallType, RTCSession: session, CallDHPubKey: &k}})
			return []byte(strings.Replace(string(b), k.String(), "MCowBQYDK2VuAyEAnot-a-key", 1))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHostile(t, false, nil)
				ac, err := h.alice.PlaceCall(ctx, h.bobID, &smpcall.CallOptions{Media: smpcall.MediaAudio})
				require.NoError(t, err)
				synctest.Wait() // the invitation is at bob's core
				require.NoError(t, h.net.Inject("bob", "alice", tc.msg(t, currentCallID(t, h.aliceCore, h.bobID))))
				took := endedWithin(t, ac, 5*time.Minute)
				r, err := ac.Reason()
				require.Equal(t, smpcall.ReasonProtocolError, r, "%v after %v", err, took)
				require.ErrorIs(t, err, smpcall.ErrProtocol)
				require.Less(t, took, time.Second, "at once, not at the ring timeout")
				synctest.Wait()
				_, _, ok := h.bobCore.CurrentCall(h.aliceID)
				require.False(t, ok, "the peer was told (x.call.end)")
			})
		})
	}
	// In an invitation the same keys never ring: the core refuses the
	// invitation and the Client hears only its message error.
	t.Run("in the invitation", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHostile(t, false, nil)
			var zero smp.DHPublicKey
			id, err := smpcall.ParseCallID("AAECAwQFBgcICQoLDA0ODw==")
			require.NoError(t, err)
			require.NoError(t, h.net.Inject("bob", "alice", encode(t, &smp.Message{Event: smp.EventInvitation, CallID: id,
				Invitation: &smp.CallInvitation{CallType: smpcall.DefaultCallType, CallDHPubKey: &zero}})))
			me := waitWithin[*smpcall.MessageErrorEvent](t, h.alice, time.Minute)
			require.Contains(t, me.ErrorMessage, "callDhPubKey")
			require.Equal(t, smpcall.StateNone, h.alice.CallState(h.bobID))
			for len(h.alice.Events()) > 0 {
				_, rings := (<-h.alice.Events()).(*smpcall.RingingEvent)
				require.False(t, rings)
			}
		})
	})
}

// TestHostilePeerExtraFlood: a peer floods a connected call with
// x.call.extra, all at once and then steadily. The Call's inbox drops what
// it cannot take (and logs it), the remote candidates handed to pion stay
// bounded, memory stays bounded, and the call keeps its media.
func TestHostilePeerExtraFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &syncBuffer{}
		lp := startPair(t, pairOptions{media: smpcall.MediaAudio, noWire: true, mod: func(side netsim.Side, c *smpcall.Config) {
			if side == netsim.A {
				c.Logger = logs.logger()
			}
		}})
		id := currentCallID(t, lp.cores[0], lp.peer[0])
		cands := func(from, n int) string {
			cs := make([]rtcpayload.Candidate, n)
			mid := "0"
			for i := range cs {
				p := from + i
				cs[i] = rtcpayload.Candidate{Candidate: fmt.Sprintf("candidate:%d 1 udp 2122260223 10.%d.%d.%d %d typ host", p, p>>16&255, p>>8&255, p&255, 1024+p%60000), SDPMid: &mid}
			}
			s, err := rtcpayload.EncodeCandidates(cs)
			require.NoError(t, err)
			return s
		}
		heap := liveHeap()
		// A burst: 20,000 messages at once, one candidate each.
		const burst = 20_000
		for i := range burst {
			require.NoError(t, lp.net.Inject("bob", "alice", extraMsg(t, id, cands(i, 1))))
		}
		synctest.Wait()
		// Then steadily: 100 messages of 50 candidates a second for 10 s.
		for s := range 10 {
			for j := range 100 {
				require.NoError(t, lp.net.Inject("bob", "alice", extraMsg(t, id, cands(burst+(s*100+j)*50, 50))))
			}
			time.Sleep(time.Second)
		}
		before := lp.aGot.count()
		time.Sleep(3 * time.Second)
		require.Equal(t, smpcall.StateConnected, lp.alice.State())
		require.Greater(t, lp.aGot.count(), before+100, "media keeps flowing")
		require.Contains(t, logs.String(), "too many signaling events for one call; dropped", "the burst was dropped, not queued")
		n := smpcall.RemoteCandidates(lp.alice)
		t.Logf("remote candidates in pion after %d offered: %d; heap %d KB → %d KB", burst+50_000, n, heap>>10, liveHeap()>>10)
		require.LessOrEqual(t, n, smpcall.MaxRemoteCandidates, "the candidates handed to pion are bounded")
		require.Equal(t, 1, strings.Count(logs.String(), "too many remote candidates"), "said once")
		require.Less(t, liveHeap(), heap+4<<20, "memory stays bounded")
		require.NoError(t, lp.alice.End(ctx))
		<-lp.bob.Done()
	})
}

// TestHostilePeerStaleMessages: messages of an earlier call, and repeats
// of the current call's offer and answer, change nothing: the chat core
// refuses them ("wrong contact or callId", "wrong call state", protocol
// §4.3, §4.5) and the current call keeps its state, its key and its media.
// A repeated invitation is another matter: to the core it is a new call
// that replaces the current one (protocol §4.3), which the SDK reports as
// ReasonReplaced. Replays need a broken SMP stack: SMP's agent drops
// repeated messages and the double ratchet refuses old ones.
func TestHostilePeerStaleMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lp := startPair(t, pairOptions{media: smpcall.MediaAudio})
		require.NoError(t, lp.alice.End(ctx))
		<-lp.bob.Done()
		old := map[string][][]byte{}
		for _, ev := range []string{smp.EventInvitation, smp.EventOffer, smp.EventAnswer, smp.EventExtra, smp.EventEnd} {
			old["alice "+ev] = lp.wire.find("alice", ev)
			old["bob "+ev] = lp.wire.find("bob", ev)
		}
		// A second call, connected.
		lp.connectAgain(t)
		keyA, _ := lp.clients[0].CallInfo(lp.peer[0])
		keyB, _ := lp.clients[1].CallInfo(lp.peer[1])
		require.NotNil(t, keyA.SharedKey)
		sent := len(lp.wire.events())
		replay := func(from, to string, msgs [][]byte) int {
			for _, m := range msgs {
				require.NoError(t, lp.net.Inject(from, to, m))
			}
			return len(msgs)
		}
		n := 0
		for _, ev := range []string{smp.EventOffer, smp.EventAnswer, smp.EventExtra, smp.EventEnd} {
			n += replay("bob", "alice", old["bob "+ev])
			n += replay("alice", "bob", old["alice "+ev])
		}
		// The current call's own offer and answer, again.
		n += replay("bob", "alice", lp.wire.find("bob", smp.EventOffer)[1:])
		n += replay("alice", "bob", lp.wire.find("alice", smp.EventAnswer)[1:])
		require.Positive(t, n)
		before := lp.aGot.count()
		time.Sleep(3 * time.Second)
		for i, k := range []*smpcall.Call{lp.alice, lp.bob} {
			require.Equal(t, smpcall.StateConnected, k.State())
			require.Equal(t, smpcall.StateConnected, lp.clients[i].CallState(lp.peer[i]))
		}
		require.Greater(t, lp.aGot.count(), before+100, "media keeps flowing")
		nowA, _ := lp.clients[0].CallInfo(lp.peer[0])
		nowB, _ := lp.clients[1].CallInfo(lp.peer[1])
		require.Equal(t, *keyA.SharedKey, *nowA.SharedKey, "the key did not change")
		require.Equal(t, *keyB.SharedKey, *nowB.SharedKey, "the key did not change")
		require.Len(t, lp.wire.events(), sent+n, "nobody answered a stale message")
		errs := 0
		for len(lp.clients[0].Events()) > 0 {
			if me, ok := (<-lp.clients[0].Events()).(*smpcall.MessageErrorEvent); ok {
				require.Regexp(t, `wrong contact or callId|wrong call state|no current call`, me.ErrorMessage)
				errs++
			}
		}
		require.Positive(t, errs, "the core reported what it refused")

		// The first call's invitation, again: the core takes it as a new
		// call, which replaces the running one.
		replay("alice", "bob", old["alice "+smp.EventInvitation])
		endedWithin(t, lp.bob, time.Minute)
		r, _ := lp.bob.Reason()
		require.Equal(t, smpcall.ReasonReplaced, r)
		require.Equal(t, smpcall.StateInvitationReceived, lp.clients[1].CallState(lp.peer[1]), "the replayed invitation rings")
		endedWithin(t, lp.alice, 2*time.Minute) // the path went silent, or the replaced call told alice
	})
}

// connectAgain places a new call from alice to bob on a pair whose first
// call has ended, and waits until it is connected.
func (lp *livePair) connectAgain(t *testing.T) {
	t.Helper()
	var err error
	lp.alice, err = lp.clients[0].PlaceCall(ctx, lp.peer[0], &smpcall.CallOptions{Media: smpcall.MediaAudio,
		Sources: smpcall.Sources{Mic: endlessAudio{&endless{tag: 'a', every: 20 * time.Millisecond}}}, Sinks: smpcall.Sinks{Mic: lp.aGot.audioSink()}})
	require.NoError(t, err)
	inv, err := lp.clients[1].NextInvitation(ctxWithin(t, time.Minute))
	require.NoError(t, err)
	lp.bob, err = lp.clients[1].AcceptCall(ctx, inv.Contact.ContactID, &smpcall.CallOptions{
		Sources: smpcall.Sources{Mic: endlessAudio{&endless{tag: 'b', every: 20 * time.Millisecond}}}, Sinks: smpcall.Sinks{Mic: lp.bGot.audioSink()}})
	require.NoError(t, err)
	for _, k := range []*smpcall.Call{lp.alice, lp.bob} {
		_, err := k.WaitConnected(ctxWithin(t, time.Minute))
		require.NoError(t, err)
	}
}

// restartMsg is an x.call.extra carrying an ICE-restart message (protocol §6.8).
func restartMsg(t *testing.T, id smpcall.CallID, r rtcpayload.Restart) []byte {
	t.Helper()
	s, err := rtcpayload.EncodeRestart(r)
	require.NoError(t, err)
	return extraMsg(t, id, s)
}

// sdpWith is an SDP whose m-lines are of the kinds given; nothing else in
// it is usable.
func sdpWith(kinds ...string) string {
	s := "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
	for i, k := range kinds {
		s += fmt.Sprintf("m=%s 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:%d\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=sendrecv\r\n", k, i)
	}
	return s
}

// TestHostilePeerRestartMessages: ICE-restart messages (protocol §6.8)
// where they do not belong are ignored, and a restart that changes the
// m-lines ends the call with a protocol error.
func TestHostilePeerRestartMessages(t *testing.T) {
	four := sdpWith("audio", "video", "audio", "video")
	ignored := []struct {
		name  string
		noExt bool // bob never announced the extension
		to    string
		r     rtcpayload.Restart
	}{
		{"a restart offer from a peer without the extension", true, "alice", rtcpayload.Restart{T: rtcpayload.RestartOffer, Gen: 1, SDP: four}},
		{"restart candidates from a peer without the extension", true, "alice", rtcpayload.Restart{T: rtcpayload.RestartCands, Gen: 0}},
		{"a restart offer to a side without the extension", true, "bob", rtcpayload.Restart{T: rtcpayload.RestartOffer, Gen: 1, SDP: four}},
		{"a restart offer of an old generation", false, "alice", rtcpayload.Restart{T: rtcpayload.RestartOffer, Gen: 0, SDP: four}},
		{"a restart offer to the original offerer", false, "bob", rtcpayload.Restart{T: rtcpayload.RestartOffer, Gen: 3, SDP: four}},
		{"an unsolicited restart answer", false, "alice", rtcpayload.Restart{T: rtcpayload.RestartAnswer, Gen: 0, SDP: four}},
		{"a restart offer whose SDP does not apply", false, "alice", rtcpayload.Restart{T: rtcpayload.RestartOffer, Gen: 2, SDP: four}},
		{"candidates of a future generation", false, "alice", rtcpayload.Restart{T: rtcpayload.RestartCands, Gen: 9}},
	}
	for _, tc := range ignored {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lp := startPair(t, pairOptions{media: smpcall.MediaAudio, mod: func(side netsim.Side, c *smpcall.Config) {
					c.DisableReconnectExtension = tc.noExt && side == netsim.B
				}})
				from, victim, got, core, peer := "bob", lp.alice, &lp.aGot, lp.cores[0], lp.peer[0]
				if tc.to == "bob" {
					from, victim, got, core, peer = "alice", lp.bob, &lp.bGot, lp.cores[1], lp.peer[1]
				}
				sent := len(lp.wire.events())
				require.NoError(t, lp.net.Inject(from, tc.to, restartMsg(t, currentCallID(t, core, peer), tc.r)))
				require.NoError(t, lp.net.Inject(from, tc.to, extraMsg(t, currentCallID(t, core, peer), lz(`{"t":"bogus","gen":1}`))))
				before := got.count()
				time.Sleep(3 * time.Second)
				require.Equal(t, smpcall.StateConnected, victim.State())
				require.Greater(t, got.count(), before+100, "media keeps flowing")
				require.Len(t, lp.wire.events(), sent+2, "no restart message in reply")
				require.NoError(t, lp.alice.End(ctx))
				<-lp.bob.Done()
			})
		})
	}
	t.Run("a restart that changes the m-lines", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lp := startPair(t, pairOptions{media: smpcall.MediaAudio})
			id := currentCallID(t, lp.cores[0], lp.peer[0])
			require.NoError(t, lp.net.Inject("bob", "alice", restartMsg(t, id, rtcpayload.Restart{T: rtcpayload.RestartOffer, Gen: 1, SDP: sdpWith("audio")})))
			took := endedWithin(t, lp.alice, time.Minute)
			require.Less(t, took, time.Second)
			r, err := lp.alice.Reason()
			require.Equal(t, smpcall.ReasonProtocolError, r)
			require.ErrorIs(t, err, smpcall.ErrProtocol)
			endedWithin(t, lp.bob, time.Minute)
			r, _ = lp.bob.Reason()
			require.Equal(t, smpcall.ReasonRemoteHangup, r)
		})
	})
}

// oddCandidates point at addresses no peer should name, or are not
// candidates at all.
var oddCandidates = []string{
	"candidate:1 1 udp 2130706431 0.0.0.0 9 typ host",
	"candidate:2 1 udp 2130706431 255.255.255.255 9 typ host",
	"candidate:3 1 udp 2130706431 224.0.0.251 5353 typ host",
	"candidate:4 1 udp 2130706431 127.0.0.1 1 typ host",
	"candidate:5 1 udp 2130706431 ::1 9 typ host",
	"candidate:6 1 udp 2130706431 fe80::1%eth0 9 typ host",
	"candidate:7 1 udp 2130706431 ff02::1 9 typ host",
	"candidate:8 1 udp 2130706431 10.0.0.1 0 typ host",
	"candidate:9 1 udp 2130706431 10.0.0.1 65536 typ host",
	"candidate:10 1 udp 99999999999999999999 10.0.0.1 9 typ host",
	"candidate:11 1 udp 1 evil.example.com 9 typ host",
	"candidate:12 1 udp 1 0123abcd-1234-5678-9abc-def012345678.local 9 typ host",
	"candidate:13 1 tcp 1 10.0.0.1 9 typ host tcptype active",
	"candidate:14 1 tcp 1 10.0.0.1 9 typ host tcptype passive",
	"candidate:15 1 udp 1 10.0.0.1 9 typ relay raddr 0.0.0.0 rport 0",
	"candidate:16 1 udp 1 10.0.0.1 9 typ srflx raddr garbage rport x",
	"candidate:17 1 udp 1 10.0.0.1 9 typ bogus",
	"candidate:18 2 udp 1 10.0.0.1 9 typ host",
	"candidate:19 1 sctp 1 10.0.0.1 9 typ host",
	"candidate:20 1 udp 1 10.0.0.1 9 typ host ufrag other generation 7 network-id 99",
	"candidate:" + strings.Repeat("x", 8000) + " 1 udp 1 10.0.0.1 9 typ host",
	"a=candidate:21 1 udp 1 10.0.0.1 9 typ host",
	"candidate:22",
	"garbage",
}

func oddList(t *testing.T) string {
	mid, other, uf := "0", "99", "nope"
	idx := uint16(1000)
	var cs []rtcpayload.Candidate
	for i, c := range oddCandidates {
		cand := rtcpayload.Candidate{Candidate: c, SDPMid: &mid}
		switch i % 4 {
		case 1:
			cand.SDPMid = &other
		case 2:
			cand.SDPMid, cand.SDPMLineIndex = nil, &idx
		case 3:
			cand.UsernameFragment = &uf
		}
		cs = append(cs, cand)
	}
	s, err := rtcpayload.EncodeCandidates(cs)
	require.NoError(t, err)
	return s
}

// TestHostilePeerOddCandidates: candidates at odd addresses (unspecified,
// broadcast, multicast, loopback, link-local, port 0 or 65536, hostnames,
// mDNS names, TCP, an 8 KB foundation, unknown mids) neither end nor
// disturb a call, whether they come during setup or once it is connected.
// (They cost the victim at most a connectivity check each; a real peer can
// always make us send STUN checks to addresses it names, which is how ICE
// works, and the number it can name is bounded, see
// TestHostilePeerExtraFlood.)
func TestHostilePeerOddCandidates(t *testing.T) {
	t.Run("during setup", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var list string
			lp := startPair(t, pairOptions{media: smpcall.MediaAudio, wrap: func(name string, tr smpcall.Transport) smpcall.Transport {
				if name != "bob" {
					return tr
				}
				return &tamper{Transport: tr,
					offer: func(o *smpcall.WebRTCCallOffer) {
						if list == "" {
							list = oddList(t)
						}
						o.RTCSession.RTCIceCandidates = list
					},
					extra: func(e *smpcall.WebRTCExtraInfo) {
						cs, err := rtcpayload.DecodeCandidates(e.RTCIceCandidates)
						if err != nil {
							return
						}
						odd, _ := rtcpayload.DecodeCandidates(list)
						e.RTCIceCandidates, _ = rtcpayload.EncodeCandidates(append(odd, cs...))
					}}
			}})
			before := lp.aGot.count()
			time.Sleep(2 * time.Second)
			require.Greater(t, lp.aGot.count(), before+50, "media flows")
			require.NoError(t, lp.alice.End(ctx))
			<-lp.bob.Done()
		})
	})
	t.Run("connected", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lp := startPair(t, pairOptions{media: smpcall.MediaAudio})
			for i, core := range lp.cores {
				from, to := sideNames[1-i], sideNames[i]
				require.NoError(t, lp.net.Inject(from, to, extraMsg(t, currentCallID(t, core, lp.peer[i]), oddList(t))))
			}
			before := lp.aGot.count()
			time.Sleep(5 * time.Second)
			require.Equal(t, smpcall.StateConnected, lp.alice.State())
			require.Equal(t, smpcall.StateConnected, lp.bob.State())
			require.Greater(t, lp.aGot.count(), before+200, "media keeps flowing")
			require.NoError(t, lp.alice.End(ctx))
			<-lp.bob.Done()
		})
	})
}

// wsRewriter is a WebSocket proxy in front of a chat core that passes every
// frame through and rewrites the core's frames with edit: a chat core (or
// whatever sits on its port) that sends what it should not.
func wsRewriter(t *testing.T, target string, edit func([]byte) []byte) string {
	t.Helper()
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		client.SetReadLimit(-1)
		core, _, err := websocket.Dial(ctx, target, nil)
		if err != nil {
			client.CloseNow()
			return
		}
		core.SetReadLimit(-1)
		pump := func(from, to *websocket.Conn, f func([]byte) []byte) {
			defer wg.Done()
			defer from.CloseNow()
			defer to.CloseNow()
			for {
				typ, b, err := from.Read(ctx)
				if err != nil {
					return
				}
				if err := to.Write(ctx, typ, f(b)); err != nil {
					return
				}
			}
		}
		wg.Add(2)
		go pump(client, core, func(b []byte) []byte { return b })
		go pump(core, client, edit)
	}))
	t.Cleanup(func() {
		cancel()
		hs.CloseClientConnections()
		hs.Close()
		wg.Wait()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

// A chat core whose callOffer event carries a sharedKey that is not a key:
// the ChatClient cannot decode the event and reports a message error for
// its user. The caller's Call waits for exactly that offer, so it must end
// with ReasonProtocolError and tell the peer, not ring until its ring
// timeout. (Real time: the ChatClient's sockets keep a synctest bubble's
// clock from moving.)
func TestHostileCoreMalformedSharedKey(t *testing.T) {
	urls := testnet.SimCore(t, "alice", "bob")
	key := regexp.MustCompile(`"sharedKey":"[A-Za-z0-9_=-]+"`)
	aliceURL := wsRewriter(t, urls["alice"], func(b []byte) []byte {
		if bytes.Contains(b, []byte(`"callOffer"`)) {
			return key.ReplaceAll(b, []byte(`"sharedKey":"not base64!"`))
		}
		return b
	})
	at, err := smp.DialChatCore(ctx, aliceURL, nil)
	require.NoError(t, err)
	bt, err := smp.DialChatCore(ctx, urls["bob"], nil)
	require.NoError(t, err)
	bobAtAlice, err := at.ContactByName(ctx, "bob")
	require.NoError(t, err)
	alice, err := smpcall.NewClient(at, rtcConfig(func(c *smpcall.Config) { c.RingTimeout = 5 * time.Second }))
	require.NoError(t, err)
	defer alice.Close()
	bob, err := smpcall.NewClient(bt, rtcConfig(nil))
	require.NoError(t, err)
	defer bob.Close()

	ac, err := alice.PlaceCall(ctx, bobAtAlice.ContactID, &smpcall.CallOptions{Media: smpcall.MediaAudio})
	require.NoError(t, err)
	inv, err := bob.NextInvitation(ctxWithin(t, waitTime))
	require.NoError(t, err)
	bc, err := bob.AcceptCall(ctx, inv.Contact.ContactID, nil)
	require.NoError(t, err)
	select {
	case <-ac.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the call did not end")
	}
	r, err := ac.Reason()
	require.Equal(t, smpcall.ReasonProtocolError, r, "%v", err)
	require.ErrorIs(t, err, smpcall.ErrProtocol)
	select {
	case <-bc.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the peer was not told")
	}
	r, _ = bc.Reason()
	require.Equal(t, smpcall.ReasonRemoteHangup, r)
}
