package smpcall_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/smp"
	"github.com/smpcall/smpcall/video"
)

// endless produces frames (distinct per source tag) forever, paced.
type endless struct {
	tag   byte
	vid   bool
	every time.Duration
	n     int
	keys  atomic.Int32 // key frame requests
	force atomic.Bool
}

func (s *endless) next(ctx context.Context) ([]byte, error) {
	select {
	case <-time.After(s.every):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.n++
	f := []byte{0x78, s.tag, byte(s.n >> 8), byte(s.n), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	if s.vid {
		f[0] = 0x01
		if s.n%30 == 1 || s.force.Swap(false) {
			f[0] = 0x10
		}
	}
	return f, nil
}

func (s *endless) RequestKeyFrame() { s.keys.Add(1); s.force.Store(true) }

type endlessAudio struct{ *endless }

func (s endlessAudio) ReadFrame(ctx context.Context) (af audioFrame, err error) {
	b, err := s.next(ctx)
	return audioFrame{Data: b}, err
}

type endlessVideo struct{ *endless }

func (s endlessVideo) ReadFrame(ctx context.Context) (video.Frame, error) {
	b, err := s.next(ctx)
	return video.Frame{Data: b}, err
}

func (s endlessVideo) RequestKeyFrame() { s.endless.RequestKeyFrame() }

// tagSink counts received frames by their source tag.
type tagSink struct {
	mu   sync.Mutex
	tags map[byte]int
}

func (s *tagSink) add(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tags == nil {
		s.tags = map[byte]int{}
	}
	if len(b) > 1 {
		s.tags[b[1]]++
	}
}

func (s *tagSink) count(tag byte) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tags[tag]
}

type connectedPair struct {
	alice, bob     *smpcall.Client
	ac, bc         *smpcall.Call
	offers         atomic.Int32
	bobCam, bobScr tagSink
	bobScrAudio    tagSink
	bobMic         tagSink
}

// connect places a call from Alice to Bob and waits until both are
// connected; it counts the x.call.offer messages on the wire.
func connect(t *testing.T, media smpcall.CallMediaType, aliceSources smpcall.Sources, bobSources smpcall.Sources) *connectedPair {
	p := &connectedPair{}
	n := smp.NewNetwork(&smp.NetworkConfig{Trace: func(tr smp.Trace) {
		if m, err := smp.DecodeMessage(tr.Data); err == nil && m.Event == smp.EventOffer {
			p.offers.Add(1)
		}
	}})
	ac, _ := n.AddUser("alice", nil)
	bc, _ := n.AddUser("bob", nil)
	bobID, aliceID, err := n.Connect("alice", "bob")
	require.NoError(t, err)
	p.alice, err = smpcall.NewClient(ac, rtcConfig(nil))
	require.NoError(t, err)
	p.bob, err = smpcall.NewClient(bc, rtcConfig(nil))
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, p.alice.Close())
		require.NoError(t, p.bob.Close())
		require.NoError(t, n.Close())
	})
	p.ac, err = p.alice.PlaceCall(ctx, bobID, &smpcall.CallOptions{Media: media, Sources: aliceSources})
	require.NoError(t, err)
	wait[*smpcall.RingingEvent](t, p.bob)
	p.bc, err = p.bob.AcceptCall(ctx, aliceID, &smpcall.CallOptions{Sources: bobSources, Sinks: smpcall.Sinks{
		Mic:         audioSinkFunc(func(b []byte) { p.bobMic.add(b) }),
		Camera:      video.SinkFunc(func(f video.Frame) error { p.bobCam.add(f.Data); return nil }),
		ScreenVideo: video.SinkFunc(func(f video.Frame) error { p.bobScr.add(f.Data); return nil }),
		ScreenAudio: audioSinkFunc(func(b []byte) { p.bobScrAudio.add(b) }),
	}})
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err = p.ac.WaitConnected(wctx)
	require.NoError(t, err)
	_, err = p.bc.WaitConnected(wctx)
	require.NoError(t, err)
	return p
}

func TestMuteIsSeenByThePeerAndUnmuteBringsItBack(t *testing.T) {
	mic := &endless{tag: 'm', every: 20 * time.Millisecond}
	p := connect(t, smpcall.MediaAudio, smpcall.Sources{Mic: endlessAudio{mic}}, smpcall.Sources{})
	on := waitCall(t, p.bc, func(e *smpcall.PeerMediaEvent) bool { return e.Source == smpcall.SourceMic })
	require.True(t, on.Enabled)
	require.True(t, p.bc.PeerEnabled(smpcall.SourceMic))

	require.NoError(t, p.ac.SetEnabled(smpcall.SourceMic, false))
	require.False(t, p.ac.Enabled(smpcall.SourceMic))
	muted := time.Now()
	off := waitCall(t, p.bc, func(e *smpcall.PeerMediaEvent) bool { return e.Source == smpcall.SourceMic })
	require.False(t, off.Enabled)
	// The peer infers "muted" from 3 s without frames (protocol §6.4): never sooner.
	require.GreaterOrEqual(t, time.Since(muted), 3*time.Second)
	sentWhileMuted := p.ac.Stats().Streams[0].FramesSent

	require.NoError(t, p.ac.SetEnabled(smpcall.SourceMic, true))
	back := waitCall(t, p.bc, func(e *smpcall.PeerMediaEvent) bool { return e.Source == smpcall.SourceMic })
	require.True(t, back.Enabled)
	// The counter moves just after the frame leaves, so the peer may see it first.
	require.Eventually(t, func() bool { return p.ac.Stats().Streams[0].FramesSent > sentWhileMuted+1 }, 5*time.Second, 10*time.Millisecond)
	require.Error(t, p.ac.SetEnabled("speaker", false))
}

func TestCameraSwitchReachesThePeerWithoutANewOffer(t *testing.T) {
	front := &endless{tag: 'f', vid: true, every: 15 * time.Millisecond}
	p := connect(t, smpcall.MediaVideo, smpcall.Sources{Camera: endlessVideo{front}}, smpcall.Sources{})
	require.Eventually(t, func() bool { return p.bobCam.count('f') > 5 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, smpcall.CameraUser, p.ac.Camera())

	back := &endless{tag: 'b', vid: true, every: 15 * time.Millisecond}
	require.NoError(t, p.ac.SwitchCamera(smpcall.CameraEnvironment, endlessVideo{back}))
	require.Equal(t, smpcall.CameraEnvironment, p.ac.Camera())
	require.Eventually(t, func() bool { return p.bobCam.count('b') > 5 }, 10*time.Second, 10*time.Millisecond)
	require.Positive(t, back.keys.Load(), "the new camera was asked for a key frame")
	before := p.bobCam.count('f')
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, before, p.bobCam.count('f'), "the old camera stopped")
	require.Equal(t, int32(1), p.offers.Load(), "no renegotiation")
	require.Error(t, p.ac.SwitchCamera("sideways", endlessVideo{back}))
}

func TestScreenShareReachesThePeerWithoutANewOffer(t *testing.T) {
	p := connect(t, smpcall.MediaVideo, smpcall.Sources{}, smpcall.Sources{})
	scr := &endless{tag: 's', vid: true, every: 20 * time.Millisecond}
	snd := &endless{tag: 'a', every: 20 * time.Millisecond}
	require.NoError(t, p.ac.StartScreenShare(endlessVideo{scr}, endlessAudio{snd}))
	require.Eventually(t, func() bool { return p.bobScr.count('s') > 5 && p.bobScrAudio.count('a') > 5 }, 10*time.Second, 10*time.Millisecond)
	require.Zero(t, p.bobCam.count('s'), "screen frames arrive on the screen stream only")
	require.NoError(t, p.ac.StopScreenShare())
	n := p.bobScr.count('s')
	time.Sleep(150 * time.Millisecond)
	require.LessOrEqual(t, p.bobScr.count('s'), n+1)
	require.Equal(t, int32(1), p.offers.Load())
	require.Error(t, p.ac.StartScreenShare(nil, nil))
	require.Error(t, p.ac.SetVideoSource(smpcall.SourceMic, nil), "mic is not a video source")
}

func TestAudioCallCanStartVideo(t *testing.T) {
	p := connect(t, smpcall.MediaAudio, smpcall.Sources{}, smpcall.Sources{})
	cam := &endless{tag: 'c', vid: true, every: 15 * time.Millisecond}
	require.NoError(t, p.ac.SetVideoSource(smpcall.SourceCamera, endlessVideo{cam}))
	require.Eventually(t, func() bool { return p.bobCam.count('c') > 5 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, int32(1), p.offers.Load())
}

func TestKeyFramesOnRequest(t *testing.T) {
	cam := &endless{tag: 'k', vid: true, every: 15 * time.Millisecond}
	p := connect(t, smpcall.MediaVideo, smpcall.Sources{}, smpcall.Sources{Camera: endlessVideo{cam}})
	// Alice's receiver sends PLI when it starts; Bob's source is asked.
	require.Eventually(t, func() bool { return cam.keys.Load() >= 1 }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return p.ac.Stats().Streams[1].FramesReceived > 3 }, 10*time.Second, 10*time.Millisecond)
	before := cam.keys.Load()
	time.Sleep(350 * time.Millisecond) // past the sender's rate limit
	require.NoError(t, p.ac.RequestKeyFrame(smpcall.SourceCamera))
	require.Eventually(t, func() bool { return cam.keys.Load() > before }, 10*time.Second, 10*time.Millisecond)
	require.Positive(t, p.bc.Stats().Streams[1].KeyFrameRequests)
	require.Positive(t, p.ac.Stats().Streams[1].KeyFramesReceived)
	require.Error(t, p.ac.RequestKeyFrame(smpcall.SourceMic))
	require.Error(t, p.ac.RequestKeyFrame(smpcall.SourceScreenVideo), "no screen stream from the peer yet")
}

func TestStatsAndRecords(t *testing.T) {
	mic := &endless{tag: 'm', every: 20 * time.Millisecond}
	p := connect(t, smpcall.MediaAudio, smpcall.Sources{Mic: endlessAudio{mic}}, smpcall.Sources{})
	require.Eventually(t, func() bool {
		st := p.bc.Stats()
		return st.Streams[0].PacketsReceived > 10 && st.RTT > 0
	}, 10*time.Second, 20*time.Millisecond)
	st := p.bc.Stats()
	require.Equal(t, "host", st.Info.LocalType)
	require.GreaterOrEqual(t, st.Streams[0].PacketsLost, int32(0))
	require.Positive(t, st.Duration)
	_, ok := p.ac.Record()
	require.False(t, ok, "no record while the call runs")

	require.NoError(t, p.ac.End(ctx))
	<-p.bc.Done()
	ra, ok := p.ac.Record()
	require.True(t, ok)
	require.Equal(t, smpcall.CIStatusEnded, ra.Status)
	require.False(t, ra.Incoming)
	require.Equal(t, smpcall.MediaAudio, ra.Media)
	require.True(t, ra.Encrypted)
	require.Positive(t, ra.Duration)
	require.Equal(t, smpcall.ReasonLocalHangup, ra.Reason)
	require.Regexp(t, `^outgoing call: ended \(00:0\d\)$`, ra.Text())
	rb, _ := p.bc.Record()
	require.True(t, rb.Incoming)
	require.Equal(t, smpcall.ReasonRemoteHangup, rb.Reason)
	ev := waitCall[*smpcall.CallRecordEvent](t, p.bc)
	require.Equal(t, smpcall.CIStatusEnded, ev.Record.Status)
	_, open := <-p.bc.Events()
	require.False(t, open, "the record is the call's last event")
}

func TestRecordsOfCallsThatNeverConnected(t *testing.T) {
	alice, bob, _ := newRTCPair(t, rtcConfig(nil), rtcConfig(nil), nil)
	// Missed: the caller gives up before an answer.
	ac, err := alice.client.PlaceCall(ctx, alice.peerID, nil)
	require.NoError(t, err)
	wait[*smpcall.RingingEvent](t, bob.client)
	require.NoError(t, ac.End(ctx))
	r, _ := ac.Record()
	require.Equal(t, smpcall.CIStatusMissed, r.Status)
	require.Zero(t, r.Duration)
	missed := wait[*smpcall.CallRecordEvent](t, bob.client)
	require.Equal(t, smpcall.CIStatusMissed, missed.Record.Status)
	require.True(t, missed.Record.Incoming)
	require.Equal(t, "incoming call: missed", missed.Record.Text())

	// Rejected: the callee declines.
	ac, err = alice.client.PlaceCall(ctx, alice.peerID, nil)
	require.NoError(t, err)
	wait[*smpcall.RingingEvent](t, bob.client)
	require.NoError(t, bob.client.Reject(ctx, bob.peerID))
	rej := wait[*smpcall.CallRecordEvent](t, bob.client)
	require.Equal(t, smpcall.CIStatusRejected, rej.Record.Status)
	require.NoError(t, ac.End(ctx))
}

// A new invitation from the peer replaces a running call: the old Call ends
// and frees the contact at once, so the new one can be accepted right away,
// and nothing the old Call still does touches the new call.
func TestReinviteReplacesRunningCall(t *testing.T) {
	n := smp.NewNetwork(nil)
	defer n.Close()
	ac, _ := n.AddUser("alice", nil)
	bc, _ := n.AddUser("bob", nil)
	bobID, aliceID, err := n.Connect("alice", "bob")
	require.NoError(t, err)
	alice, err := smpcall.NewClient(ac, rtcConfig(nil))
	require.NoError(t, err)
	defer alice.Close()
	bob, err := smpcall.NewClient(bc, rtcConfig(nil))
	require.NoError(t, err)
	defer bob.Close()

	call, err := alice.PlaceCall(ctx, bobID, &smpcall.CallOptions{Media: smpcall.MediaAudio})
	require.NoError(t, err)
	wait[*smpcall.RingingEvent](t, bob)
	first, err := bob.AcceptCall(ctx, aliceID, nil)
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err = first.WaitConnected(wctx)
	require.NoError(t, err)

	// Alice's core calls again (e.g. another device of hers).
	require.NoError(t, ac.Invite(ctx, bobID, smpcall.CallType{Media: smpcall.MediaAudio, Capabilities: smpcall.CallCapabilities{Encryption: true}}))
	_, newID, _ := ac.CurrentCall(bobID)
	wait[*smpcall.RingingEvent](t, bob)
	second, err := bob.AcceptCall(ctx, aliceID, nil)
	require.NoError(t, err, "the contact is free as soon as the old call ended")
	<-first.Done()
	reason, _ := first.Reason()
	require.Equal(t, smpcall.ReasonReplaced, reason)
	// Bob's new offer reaches Alice's core for the new call id: the old
	// Call did not end or answer the new call.
	require.Eventually(t, func() bool {
		st, id, ok := ac.CurrentCall(bobID)
		return ok && id == newID && st == smpcall.TagOfferReceived
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, second.End(ctx))
	require.NoError(t, call.End(ctx))
}
