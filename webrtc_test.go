package smpcall_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/internal/rtcpayload"
	"github.com/smpcall/smpcall/internal/testnet"
	"github.com/smpcall/smpcall/smp"
	"github.com/smpcall/smpcall/video"
)

// loopbackSettings keeps pion on 127.0.0.1.
func loopbackSettings() *webrtc.SettingEngine { return testnet.LoopbackSettings() }

func rtcConfig(mod func(*smpcall.Config)) *smpcall.Config {
	cfg := &smpcall.Config{ICEServers: []smpcall.ICEServer{}, SettingEngine: loopbackSettings(), ConnectTimeout: 20 * time.Second}
	if mod != nil {
		mod(cfg)
	}
	return cfg
}

// frames makes n distinct frames: video ones start with a VP8 frame tag
// (every 10th a key frame), audio ones with an Opus TOC byte; each carries
// its index so a receiver can match it to what was sent.
func frames(n, size int, vid bool) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		f := make([]byte, size)
		for j := range f {
			f[j] = byte(i*7 + j*13)
		}
		if vid {
			f[0] = 0x01 // delta
			if i%10 == 0 {
				f[0] = 0x10 // key frame: P bit clear
			}
		} else {
			f[0] = 0x78 // Opus TOC
		}
		f[1], f[2] = byte(i>>8), byte(i)
		out[i] = f
	}
	return out
}

// listSource paces a fixed list of frames.
type listSource struct {
	frames [][]byte
	every  time.Duration
	next   int
}

func (s *listSource) read(ctx context.Context) ([]byte, error) {
	if s.next >= len(s.frames) {
		<-ctx.Done() // stay open like a muted live source
		return nil, ctx.Err()
	}
	select {
	case <-time.After(s.every):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f := s.frames[s.next]
	s.next++
	return f, nil
}

type audioList struct{ listSource }

func (s *audioList) ReadFrame(ctx context.Context) (audio.Frame, error) {
	f, err := s.read(ctx)
	return audio.Frame{Data: f}, err
}

type videoList struct{ listSource }

func (s *videoList) ReadFrame(ctx context.Context) (video.Frame, error) {
	f, err := s.read(ctx)
	return video.Frame{Data: f, KeyFrame: video.IsKeyFrame(f)}, err
}

// collector keeps what a sink received.
type collector struct {
	mu     sync.Mutex
	frames [][]byte
	keys   int
}

func (c *collector) add(b []byte, key bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frames = append(c.frames, b)
	if key {
		c.keys++
	}
}

func (c *collector) Audio() audio.Sink {
	return audio.SinkFunc(func(f audio.Frame) error { c.add(f.Data, false); return nil })
}

func (c *collector) Video() video.Sink {
	return video.SinkFunc(func(f video.Frame) error { c.add(f.Data, f.KeyFrame); return nil })
}

func (c *collector) got() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.frames...)
}

// requireDelivered checks every received frame is byte-identical to the sent
// frame with its index, in order, and that nearly all arrived.
func requireDelivered(t *testing.T, sent [][]byte, c *collector) {
	t.Helper()
	require.Eventually(t, func() bool { return len(c.got()) >= len(sent)*95/100 }, 10*time.Second, 10*time.Millisecond,
		"received %d of %d", len(c.got()), len(sent))
	last := -1
	for _, f := range c.got() {
		require.GreaterOrEqual(t, len(f), 3)
		i := int(f[1])<<8 | int(f[2])
		require.Less(t, i, len(sent))
		require.Greater(t, i, last, "in order")
		last = i
		require.True(t, bytes.Equal(sent[i], f), "frame %d differs", i)
	}
}

type callSide struct {
	client *smpcall.Client
	peerID int64
}

func newRTCPair(t *testing.T, aliceCfg, bobCfg *smpcall.Config, wrap func(name string, tr smpcall.Transport) smpcall.Transport) (alice, bob callSide, n *smp.Network) {
	n = smp.NewNetwork(nil)
	ac, err := n.AddUser("alice", nil)
	require.NoError(t, err)
	bc, err := n.AddUser("bob", nil)
	require.NoError(t, err)
	bobID, aliceID, err := n.Connect("alice", "bob")
	require.NoError(t, err)
	var at, bt smpcall.Transport = ac, bc
	if wrap != nil {
		at, bt = wrap("alice", ac), wrap("bob", bc)
	}
	a, err := smpcall.NewClient(at, aliceCfg)
	require.NoError(t, err)
	b, err := smpcall.NewClient(bt, bobCfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, a.Close())
		require.NoError(t, b.Close())
		require.NoError(t, n.Close())
	})
	return callSide{a, bobID}, callSide{b, aliceID}, n
}

func TestCallConnectsWithEncryptedMedia(t *testing.T) {
	alice, bob, _ := newRTCPair(t, rtcConfig(nil), rtcConfig(nil), nil)
	aAudio, aVideo := frames(60, 80, false), frames(40, 3000, true)
	bAudio, bVideo := frames(60, 120, false), frames(40, 1500, true)
	var aliceGotAudio, aliceGotVideo, bobGotAudio, bobGotVideo collector

	ac, err := alice.client.PlaceCall(ctx, alice.peerID, &smpcall.CallOptions{
		Media:   smpcall.MediaVideo,
		Sources: smpcall.Sources{Mic: &audioList{listSource{frames: aAudio, every: 10 * time.Millisecond}}, Camera: &videoList{listSource{frames: aVideo, every: 15 * time.Millisecond}}},
		Sinks:   smpcall.Sinks{Mic: aliceGotAudio.Audio(), Camera: aliceGotVideo.Video()},
	})
	require.NoError(t, err)
	ring := wait[*smpcall.RingingEvent](t, bob.client)
	require.Equal(t, smpcall.MediaVideo, ring.Invitation.CallType.Media)
	bc, err := bob.client.AcceptCall(ctx, bob.peerID, &smpcall.CallOptions{
		Sources: smpcall.Sources{Mic: &audioList{listSource{frames: bAudio, every: 10 * time.Millisecond}}, Camera: &videoList{listSource{frames: bVideo, every: 15 * time.Millisecond}}},
		Sinks:   smpcall.Sinks{Mic: bobGotAudio.Audio(), Camera: bobGotVideo.Video()},
	})
	require.NoError(t, err)

	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ai, err := ac.WaitConnected(wctx)
	require.NoError(t, err)
	bi, err := bc.WaitConnected(wctx)
	require.NoError(t, err)
	require.True(t, ac.Encrypted())
	require.True(t, bc.Encrypted())
	require.Equal(t, "host", ai.LocalType)
	require.False(t, ai.Relay)
	require.Equal(t, "udp", bi.Protocol)
	require.Equal(t, smpcall.StateConnected, ac.State())
	require.Equal(t, smpcall.StateConnected, bc.State())

	requireDelivered(t, aAudio, &bobGotAudio)
	requireDelivered(t, aVideo, &bobGotVideo)
	requireDelivered(t, bAudio, &aliceGotAudio)
	requireDelivered(t, bVideo, &aliceGotVideo)
	require.Positive(t, bobGotVideo.keys)

	require.Eventually(t, func() bool { return bc.Stats().Streams[0].FramesSent == uint64(len(bAudio)) }, 5*time.Second, 10*time.Millisecond)
	require.Positive(t, bc.Stats().Duration)

	require.NoError(t, ac.End(ctx))
	<-bc.Done()
	// Once the call is over the counters are final and consistent.
	st := bc.Stats()
	require.Zero(t, st.Streams[0].DecryptFailed)
	require.Zero(t, st.Streams[1].DecryptFailed)
	require.Equal(t, st.Streams[1].Decrypted, st.Streams[1].FramesReceived)
	require.Equal(t, uint64(len(bobGotVideo.got())), st.Streams[1].FramesReceived)
	reason, err := bc.Reason()
	require.Equal(t, smpcall.ReasonRemoteHangup, reason)
	require.NoError(t, err)
	reason, _ = ac.Reason()
	require.Equal(t, smpcall.ReasonLocalHangup, reason)
	require.NoError(t, ac.End(ctx), "End twice")
}

func TestAudioCallHasFourMLinesAndConnects(t *testing.T) {
	var tp taps
	alice, bob, _ := newRTCPair(t, rtcConfig(nil), rtcConfig(nil), tp.wrap)
	ac, err := alice.client.PlaceCall(ctx, alice.peerID, &smpcall.CallOptions{Media: smpcall.MediaAudio})
	require.NoError(t, err)
	ring := wait[*smpcall.RingingEvent](t, bob.client)
	require.Equal(t, smpcall.MediaAudio, ring.Invitation.CallType.Media)
	bc, err := bob.client.AcceptCall(ctx, bob.peerID, nil)
	require.NoError(t, err)
	offer := waitTap[*smpcall.CallOfferEvent](t, &tp, "alice")
	sdp := decodeSDP(t, offer.Offer.RTCSession)
	require.Equal(t, []string{"audio 0", "video 1", "audio 2", "video 3"}, mlines(sdp))
	answer := waitTap[*smpcall.CallAnswerEvent](t, &tp, "bob")
	asdp := decodeSDP(t, answer.Answer.RTCSession)
	require.Equal(t, []string{"audio 0", "video 1", "audio 2", "video 3"}, mlines(asdp))
	require.Equal(t, 4, countLines(asdp, "a=sendrecv"), "answer every m-line sendrecv")
	require.Equal(t, 4, countLines(sdp, "a=sendrecv"), "a sender on every m-line")
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err = ac.WaitConnected(wctx)
	require.NoError(t, err)
	_, err = bc.WaitConnected(wctx)
	require.NoError(t, err)
}

func TestCallEndsWhenPeerHangsUpBeforeAnswer(t *testing.T) {
	alice, bob, _ := newRTCPair(t, rtcConfig(nil), rtcConfig(nil), nil)
	ac, err := alice.client.PlaceCall(ctx, alice.peerID, nil)
	require.NoError(t, err)
	wait[*smpcall.RingingEvent](t, bob.client)
	require.NoError(t, ac.End(ctx))
	_, err = ac.WaitConnected(ctx)
	require.ErrorIs(t, err, smpcall.ErrCallEnded)
	waitState(t, bob.client, smpcall.StateEnded)
	_, err = bob.client.AcceptCall(ctx, bob.peerID, nil)
	require.ErrorIs(t, err, smpcall.ErrNoCall)
}

func TestPlaceCallRefusedStates(t *testing.T) {
	alice, _, _ := newRTCPair(t, rtcConfig(nil), rtcConfig(nil), nil)
	_, err := alice.client.PlaceCall(ctx, alice.peerID, &smpcall.CallOptions{Media: "hologram"})
	require.Error(t, err)
	ac, err := alice.client.PlaceCall(ctx, alice.peerID, nil)
	require.NoError(t, err)
	_, err = alice.client.PlaceCall(ctx, alice.peerID, nil)
	require.ErrorIs(t, err, smpcall.ErrInvalidState)
	_, err = alice.client.AcceptCall(ctx, alice.peerID, nil)
	require.ErrorIs(t, err, smpcall.ErrInvalidState)
	require.NoError(t, ac.End(ctx))
}

// eventMap is a Transport whose events pass through f: a test double at the
// boundary we do not own, to model a peer without the capability or a key
// that does not match.
type eventMap struct {
	smpcall.Transport
	ch   chan smpcall.Event
	done chan struct{}
}

func mapEvents(tr smpcall.Transport, f func(smpcall.Event) smpcall.Event) *eventMap {
	m := &eventMap{Transport: tr, ch: make(chan smpcall.Event), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		defer close(m.ch)
		for ev := range tr.Events() {
			m.ch <- f(ev)
		}
	}()
	return m
}

func (m *eventMap) Events() <-chan smpcall.Event { return m.ch }

func (m *eventMap) Close() error {
	err := m.Transport.Close()
	go func() { // drain so the pump can exit
		for range m.ch {
		}
	}()
	<-m.done
	return err
}

func TestWrongKeyDeliversNothing(t *testing.T) {
	wrong := smpcall.SharedKey{1, 2, 3}
	wrap := func(name string, tr smpcall.Transport) smpcall.Transport {
		return mapEvents(tr, func(ev smpcall.Event) smpcall.Event {
			if o, ok := ev.(*smpcall.CallOfferEvent); ok && name == "alice" && o.SharedKey != nil {
				o.SharedKey = &wrong
			}
			return ev
		})
	}
	alice, bob, _ := newRTCPair(t, rtcConfig(nil), rtcConfig(nil), wrap)
	var got collector
	ac, err := alice.client.PlaceCall(ctx, alice.peerID, &smpcall.CallOptions{Media: smpcall.MediaAudio, Sinks: smpcall.Sinks{Mic: got.Audio()}})
	require.NoError(t, err)
	wait[*smpcall.RingingEvent](t, bob.client)
	bc, err := bob.client.AcceptCall(ctx, bob.peerID, &smpcall.CallOptions{
		Sources: smpcall.Sources{Mic: &audioList{listSource{frames: frames(30, 60, false), every: 5 * time.Millisecond}}},
	})
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err = ac.WaitConnected(wctx)
	require.NoError(t, err, "both stay connected: only the counters show it")
	fail := waitCall[*smpcall.DecryptFailingEvent](t, ac)
	require.Equal(t, smpcall.SourceMic, fail.Source)
	require.Eventually(t, func() bool { return ac.Stats().Streams[0].DecryptFailed >= 25 }, 10*time.Second, 10*time.Millisecond)
	require.Empty(t, got.got(), "no frame that failed to decrypt is delivered")
	require.Zero(t, ac.Stats().Streams[0].FramesReceived)
	require.NoError(t, bc.End(ctx))
}

func stripKeys(name string, tr smpcall.Transport) smpcall.Transport {
	return mapEvents(tr, func(ev smpcall.Event) smpcall.Event {
		switch e := ev.(type) {
		case *smpcall.CallInvitationEvent:
			e.Invitation.SharedKey = nil
		case *smpcall.RingingEvent:
			e.Invitation.SharedKey = nil
		case *smpcall.CallOfferEvent:
			e.SharedKey, e.AskConfirmation = nil, true
		}
		return ev
	})
}

func TestUnencryptedRefusedByDefault(t *testing.T) {
	alice, bob, _ := newRTCPair(t, rtcConfig(nil), rtcConfig(nil), stripKeys)
	ac, err := alice.client.PlaceCall(ctx, alice.peerID, nil)
	require.NoError(t, err)
	wait[*smpcall.RingingEvent](t, bob.client)
	bc, err := bob.client.AcceptCall(ctx, bob.peerID, nil)
	require.NoError(t, err)
	_, err = bc.WaitConnected(ctx)
	require.ErrorIs(t, err, smpcall.ErrUnencrypted)
	reason, _ := bc.Reason()
	require.Equal(t, smpcall.ReasonUnencrypted, reason)
	<-ac.Done() // the peer learns it by x.call.end
	reason, _ = ac.Reason()
	require.Equal(t, smpcall.ReasonDeclined, reason, "for the caller the callee ended before its offer")
}

func TestUnencryptedWhenAllowed(t *testing.T) {
	allow := func(c *smpcall.Config) { c.AllowUnencrypted = true }
	alice, bob, _ := newRTCPair(t, rtcConfig(allow), rtcConfig(allow), stripKeys)
	sent := frames(30, 50, false)
	var got collector
	ac, err := alice.client.PlaceCall(ctx, alice.peerID, &smpcall.CallOptions{Media: smpcall.MediaAudio, Sinks: smpcall.Sinks{Mic: got.Audio()}})
	require.NoError(t, err)
	wait[*smpcall.RingingEvent](t, bob.client)
	bc, err := bob.client.AcceptCall(ctx, bob.peerID, &smpcall.CallOptions{Sources: smpcall.Sources{Mic: &audioList{listSource{frames: sent, every: 5 * time.Millisecond}}}})
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err = ac.WaitConnected(wctx)
	require.NoError(t, err)
	require.False(t, ac.Encrypted())
	require.False(t, bc.Encrypted())
	requireDelivered(t, sent, &got)
	require.Zero(t, ac.Stats().Streams[0].Decrypted)
}

func decodeSDP(t *testing.T, s string) string {
	t.Helper()
	sess, err := rtcpayloadDecode(s)
	require.NoError(t, err)
	return sess
}

func mlines(sdp string) []string {
	var out []string
	var kind string
	for _, l := range splitLines(sdp) {
		if len(l) > 2 && l[:2] == "m=" {
			kind = l[2:7]
			if kind == "video" {
				kind = "video"
			} else {
				kind = "audio"
			}
		}
		if len(l) > 6 && l[:6] == "a=mid:" {
			out = append(out, fmt.Sprintf("%s %s", kind, l[6:]))
		}
	}
	return out
}

func countLines(sdp, line string) int {
	n := 0
	for _, l := range splitLines(sdp) {
		if l == line {
			n++
		}
	}
	return n
}

func rtcpayloadDecode(s string) (string, error) {
	sess, err := rtcpayload.DecodeSession(s)
	return sess.SDP, err
}

func splitLines(s string) []string { return strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") }

func TestConnectTimeoutEndsTheCall(t *testing.T) {
	short := func(c *smpcall.Config) { c.ConnectTimeout = 300 * time.Millisecond }
	// Bob has no usable network interface: ICE cannot succeed.
	noNet := func(c *smpcall.Config) {
		short(c)
		se := loopbackSettings()
		se.SetInterfaceFilter(func(string) bool { return false })
		c.SettingEngine = se
	}
	alice, bob, _ := newRTCPair(t, rtcConfig(short), rtcConfig(noNet), nil)
	ac, err := alice.client.PlaceCall(ctx, alice.peerID, nil)
	require.NoError(t, err)
	wait[*smpcall.RingingEvent](t, bob.client)
	bc, err := bob.client.AcceptCall(ctx, bob.peerID, nil)
	require.NoError(t, err)
	_, errB := bc.WaitConnected(ctx)
	_, errA := ac.WaitConnected(ctx)
	ra, _ := ac.Reason()
	rb, _ := bc.Reason()
	// Whichever timer fires first ends the call; the other side hears x.call.end.
	require.True(t, errors.Is(errA, smpcall.ErrConnectTimeout) || errors.Is(errB, smpcall.ErrConnectTimeout), "%v / %v", errA, errB)
	require.Contains(t, []smpcall.EndReason{smpcall.ReasonConnectionTimeout, smpcall.ReasonRemoteHangup}, ra)
	require.Contains(t, []smpcall.EndReason{smpcall.ReasonConnectionTimeout, smpcall.ReasonRemoteHangup}, rb)
	require.Equal(t, smpcall.StateNone, alice.client.CallState(alice.peerID))
}

// No x.call.* message exceeds Config.MaxMessageSize: candidates that do not
// fit in the offer or answer go to extras (protocol §6.5).
func TestMessageSizeLimitMovesCandidatesToExtras(t *testing.T) {
	multi := func(limit int) func(*smpcall.Config) {
		return func(c *smpcall.Config) {
			se := loopbackSettings()
			se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
			c.SettingEngine = se
			c.MaxMessageSize = limit
		}
	}
	run := func(limit int) (sizes map[string][]int) {
		sizes = map[string][]int{}
		var mu sync.Mutex
		n := smp.NewNetwork(&smp.NetworkConfig{Trace: func(tr smp.Trace) {
			m, err := smp.DecodeMessage(tr.Data)
			require.NoError(t, err)
			mu.Lock()
			sizes[m.Event] = append(sizes[m.Event], len(tr.Data))
			mu.Unlock()
		}})
		defer n.Close()
		ac, _ := n.AddUser("alice", nil)
		bc, _ := n.AddUser("bob", nil)
		bobID, aliceID, err := n.Connect("alice", "bob")
		require.NoError(t, err)
		a, err := smpcall.NewClient(ac, rtcConfig(multi(limit)))
		require.NoError(t, err)
		defer a.Close()
		b, err := smpcall.NewClient(bc, rtcConfig(multi(limit)))
		require.NoError(t, err)
		defer b.Close()
		call, err := a.PlaceCall(ctx, bobID, &smpcall.CallOptions{Media: smpcall.MediaAudio})
		require.NoError(t, err)
		wait[*smpcall.RingingEvent](t, b)
		answer, err := b.AcceptCall(ctx, aliceID, nil)
		require.NoError(t, err)
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		_, err = call.WaitConnected(wctx)
		require.NoError(t, err)
		_, err = answer.WaitConnected(wctx)
		require.NoError(t, err)
		require.NoError(t, call.End(ctx))
		mu.Lock()
		defer mu.Unlock()
		out := map[string][]int{}
		for k, v := range sizes {
			out[k] = append([]int(nil), v...)
		}
		return out
	}
	free := run(13000)
	require.Len(t, free["x.call.offer"], 1)
	require.Empty(t, free["x.call.extra"], "with room, every candidate rides in the offer and answer")

	limit := free["x.call.offer"][0] - 1
	tight := run(limit)
	require.NotEmpty(t, tight["x.call.extra"], "what did not fit went to extras")
	for ev, ss := range tight {
		for _, s := range ss {
			require.LessOrEqual(t, s, limit, ev)
		}
	}
}

// With host candidates only, gathering completes at once and the offer and
// answer go out then: they do not wait for the initial-batch timer
// (protocol §6.5). With a 60 s timer the call still connects within the
// test's 15 s bound.
func TestOfferDoesNotWaitForTheTimerWhenGatheringCompletes(t *testing.T) {
	slow := func(c *smpcall.Config) { c.ICE.InitialDelay = 60 * time.Second }
	alice, bob, _ := newRTCPair(t, rtcConfig(slow), rtcConfig(slow), nil)
	ac, err := alice.client.PlaceCall(ctx, alice.peerID, &smpcall.CallOptions{Media: smpcall.MediaAudio})
	require.NoError(t, err)
	wait[*smpcall.RingingEvent](t, bob.client)
	bc, err := bob.client.AcceptCall(ctx, bob.peerID, nil)
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err = ac.WaitConnected(wctx)
	require.NoError(t, err)
	_, err = bc.WaitConnected(wctx)
	require.NoError(t, err)
}
