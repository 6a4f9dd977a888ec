package smpcall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/internal/framecrypt"
	"github.com/smpcall/smpcall/video"
)

// ErrNoSuchStream is returned when a call has no m-line for a source: an
// older peer whose offer had only one or two m-lines has no screen streams
// (protocol §6.4), an audio-only legacy offer has no camera.
var ErrNoSuchStream = errors.New("smpcall: the peer's session has no stream for this source")

// PeerMediaEvent: the peer's source went silent for Config.PeerMediaTimeout
// (Enabled false: the SimpleX apps read that as "muted" or "camera off",
// protocol §6.4) or sends frames again (Enabled true; also sent for a
// source's first frame).
type PeerMediaEvent struct {
	Contact Contact
	Source  CallMediaSource
	Enabled bool
}

func (e *PeerMediaEvent) ContactID() int64 { return e.Contact.ContactID }
func (*PeerMediaEvent) event()             {}

// sendStream is what one of the four streams sends: its source, which may
// be replaced at any time without renegotiation, and whether it is enabled.
type sendStream struct {
	mu      sync.Mutex
	read    func(context.Context) ([]byte, time.Duration, error)
	keyReq  video.KeyFrameRequester
	cancel  context.CancelFunc // interrupts the ReadFrame of the source being replaced
	changed chan struct{}      // closed and replaced on every change
	enabled atomic.Bool
}

func (s *sendStream) init() {
	s.changed = make(chan struct{})
	s.enabled.Store(true)
}

// set replaces the source (nil stops sending) and wakes the send loop.
func (s *sendStream) set(read func(context.Context) ([]byte, time.Duration, error), kr video.KeyFrameRequester) {
	s.mu.Lock()
	s.read, s.keyReq = read, kr
	if s.cancel != nil {
		s.cancel()
		s.cancel = nil
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if kr != nil {
		kr.RequestKeyFrame() // the peer's decoder needs a key frame from the new source
	}
}

// current returns the source to read with a context that a replacement cancels.
func (s *sendStream) current(parent context.Context) (func(context.Context) ([]byte, time.Duration, error), context.Context, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.read == nil {
		return nil, nil, s.changed
	}
	ctx, cancel := context.WithCancel(parent)
	if s.cancel != nil {
		s.cancel()
	}
	s.cancel = cancel
	return s.read, ctx, s.changed
}

// finished forgets a source that ended (io.EOF or an error) unless it was replaced meanwhile.
func (s *sendStream) finished(changed <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == changed {
		s.read, s.keyReq = nil, nil
	}
}

func (s *sendStream) requestKeyFrame() {
	s.mu.Lock()
	kr := s.keyReq
	s.mu.Unlock()
	if kr != nil {
		kr.RequestKeyFrame()
	}
}

func audioReader(src audio.Source) func(context.Context) ([]byte, time.Duration, error) {
	if src == nil {
		return nil
	}
	return func(ctx context.Context) ([]byte, time.Duration, error) {
		f, err := src.ReadFrame(ctx)
		d := f.Duration
		if d <= 0 {
			d = audio.DefaultDuration
		}
		return f.Data, d, err
	}
}

func videoReader(src video.Source) func(context.Context) ([]byte, time.Duration, error) {
	if src == nil {
		return nil
	}
	return func(ctx context.Context) ([]byte, time.Duration, error) {
		f, err := src.ReadFrame(ctx)
		d := f.Duration
		if d <= 0 {
			d = video.DefaultDuration
		}
		return f.Data, d, err
	}
}

func keyRequester(src video.Source) video.KeyFrameRequester {
	kr, _ := src.(video.KeyFrameRequester)
	return kr
}

// initStreams sets up the four send streams from the call options.
func (k *Call) initStreams() {
	for i := range k.send {
		k.send[i].init()
	}
	o := k.opts.Sources
	k.send[0].read = audioReader(o.Mic)
	k.send[1].read, k.send[1].keyReq = videoReader(o.Camera), keyRequester(o.Camera)
	k.send[2].read = audioReader(o.ScreenAudio)
	k.send[3].read, k.send[3].keyReq = videoReader(o.ScreenVideo), keyRequester(o.ScreenVideo)
	k.camera.Store(string(CameraUser))
}

// SetEnabled turns sending of one source on or off, like the apps' mute and
// camera buttons: frames from the source are read and dropped while it is
// disabled, and the peer infers "muted" after about 3 s without frames
// (protocol §6.4). No renegotiation. Errors: an unknown source.
func (k *Call) SetEnabled(src CallMediaSource, enabled bool) error {
	i := sourceIndex(string(src))
	if i < 0 {
		return fmt.Errorf("smpcall: unknown media source %q", src)
	}
	k.send[i].enabled.Store(enabled)
	if enabled && isVideo(i) {
		k.send[i].requestKeyFrame()
	}
	return nil
}

// Enabled reports whether a source is being sent.
func (k *Call) Enabled(src CallMediaSource) bool {
	i := sourceIndex(string(src))
	return i >= 0 && k.send[i].enabled.Load()
}

// SetAudioSource replaces what the mic or screen-audio stream sends (nil
// stops it) without renegotiation. Errors: not an audio source,
// ErrNoSuchStream, ErrCallEnded.
func (k *Call) SetAudioSource(src CallMediaSource, s audio.Source) error {
	i, err := k.streamFor(src, false)
	if err != nil {
		return err
	}
	k.send[i].set(audioReader(s), nil)
	return nil
}

// SetVideoSource replaces what the camera or screen-video stream sends
// (nil stops it) without renegotiation; an audio call can start sending
// video this way, since its camera m-line exists from the start (protocol
// §6.4). A source that implements video.KeyFrameRequester is asked for a key
// frame at once. Errors: not a video source, ErrNoSuchStream, ErrCallEnded.
func (k *Call) SetVideoSource(src CallMediaSource, s video.Source) error {
	i, err := k.streamFor(src, true)
	if err != nil {
		return err
	}
	k.send[i].set(videoReader(s), keyRequester(s))
	return nil
}

// SwitchCamera replaces the camera source with one facing the other way
// (the apps' "flip camera"), without renegotiation.
func (k *Call) SwitchCamera(facing VideoCamera, s video.Source) error {
	if !facing.Valid() {
		return fmt.Errorf("smpcall: unknown camera %q", facing)
	}
	if err := k.SetVideoSource(SourceCamera, s); err != nil {
		return err
	}
	k.camera.Store(string(facing))
	return nil
}

// Camera returns the facing of the current camera source (user until switched).
func (k *Call) Camera() VideoCamera { return VideoCamera(k.camera.Load().(string)) }

// StartScreenShare sends a screen on transceivers 2 and 3 (protocol §6.4);
// sound may be nil. Errors: ErrNoSuchStream when the peer's session has no
// screen m-lines, ErrCallEnded.
func (k *Call) StartScreenShare(screen video.Source, sound audio.Source) error {
	if screen == nil {
		return errors.New("smpcall: start screen share: nil screen source")
	}
	if _, err := k.streamFor(SourceScreenVideo, true); err != nil {
		return err
	}
	if err := k.SetVideoSource(SourceScreenVideo, screen); err != nil {
		return err
	}
	if sound != nil {
		return k.SetAudioSource(SourceScreenAudio, sound)
	}
	return nil
}

// StopScreenShare stops sending on the screen streams.
func (k *Call) StopScreenShare() error {
	if _, err := k.streamFor(SourceScreenVideo, true); err != nil {
		return err
	}
	k.send[3].set(nil, nil)
	k.send[2].set(nil, nil)
	return nil
}

func (k *Call) streamFor(src CallMediaSource, wantVideo bool) (int, error) {
	i := sourceIndex(string(src))
	if i < 0 || isVideo(i) != wantVideo {
		return 0, fmt.Errorf("smpcall: %q is not a %s source", src, map[bool]string{true: "video", false: "audio"}[wantVideo])
	}
	select {
	case <-k.done:
		return 0, ErrCallEnded
	default:
	}
	if m := k.hasStream.Load(); m != 0 && m&(1<<i) == 0 {
		return 0, ErrNoSuchStream
	}
	return i, nil
}

// startSenders starts one send loop per stream the session has; media
// starts only on connected (onConnected runs it once), since pion drops
// samples written earlier.
func (k *Call) startSenders() {
	var mask uint32
	for i, t := range k.tracks {
		if t == nil {
			continue
		}
		mask |= 1 << i
		k.goMedia(func() { k.sendLoop(i, t) })
	}
	k.hasStream.Store(mask)
	k.goMedia(k.watchPeerMedia)
}

// sendLoop sends what stream i's current source produces until the call ends.
func (k *Call) sendLoop(i int, t *webrtc.TrackLocalStaticSample) {
	s := &k.send[i]
	for {
		read, ctx, changed := s.current(k.ctx)
		if read == nil {
			select {
			case <-changed:
				continue
			case <-k.ctx.Done():
				return
			}
		}
		data, d, err := read(ctx)
		if err != nil {
			switch {
			case k.ctx.Err() != nil:
				return
			case ctx.Err() != nil:
				continue // replaced
			case errors.Is(err, io.EOF):
				k.log.Info("smpcall: source ended", "source", MediaSources[i])
			default:
				k.c.out.Push(&MediaErrorEvent{Contact: k.contact, Source: MediaSources[i], Sending: true, Err: err})
			}
			s.finished(changed)
			continue
		}
		if len(data) == 0 || !s.enabled.Load() {
			continue // muted: the frame is read and dropped
		}
		prefix := framecrypt.PrefixAudio
		if isVideo(i) {
			prefix = framecrypt.PrefixVP8(data)
		}
		if !k.write(i, t, data, prefix, d) && k.ctx.Err() != nil {
			return
		}
	}
}

// write encrypts one frame (the whole encoded frame, before packetization,
// protocol §7.1) and sends it. Once a key is in force nothing is ever sent
// in the clear.
// A failed write (a transient network error) drops the frame and reports
// false; the stream goes on.
//
// Muted time does not advance the RTP timestamp: pion can only skip time
// together with sequence numbers, which the peer would count as loss and
// NACK. After an unmute the peer's jitter buffer sees the stream resume.
func (k *Call) write(i int, t *webrtc.TrackLocalStaticSample, data []byte, prefix int, d time.Duration) bool {
	out := data
	if k.cipher != nil {
		out = k.cipher.Seal(make([]byte, 0, len(data)+framecrypt.Overhead), data, prefix)
	}
	if err := t.WriteSample(media.Sample{Data: out, Duration: d}); err != nil {
		if k.ctx.Err() == nil && k.writeErrs.Add(1)%100 == 1 {
			k.log.Info("smpcall: write sample failed; frame dropped", "source", MediaSources[i], "err", err)
		}
		return false
	}
	k.stats[i].framesSent.Add(1)
	k.stats[i].bytesSent.Add(uint64(len(data)))
	return true
}

// peerFrame records a frame from the peer's source i (from its receive goroutine).
func (k *Call) peerFrame(i int) {
	k.stats[i].lastFrame.Store(time.Now().UnixNano())
	if k.stats[i].peerOn.CompareAndSwap(false, true) {
		k.c.out.Push(&PeerMediaEvent{Contact: k.contact, Source: MediaSources[i], Enabled: true})
	}
}

// watchPeerMedia announces a peer source as off after PeerMediaTimeout
// without frames, as the web page's 3 s decrypt timer does (protocol §6.4).
func (k *Call) watchPeerMedia() {
	timeout := k.c.cfg.PeerMediaTimeout
	tick := time.NewTicker(max(timeout/12, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-k.ctx.Done():
			return
		case now := <-tick.C:
			for i := range k.stats {
				c := &k.stats[i]
				if c.peerOn.Load() && now.Sub(time.Unix(0, c.lastFrame.Load())) > timeout && c.peerOn.CompareAndSwap(true, false) {
					k.c.out.Push(&PeerMediaEvent{Contact: k.contact, Source: MediaSources[i], Enabled: false})
				}
			}
		}
	}
}

// PeerEnabled reports whether the peer's source is sending (see PeerMediaEvent).
func (k *Call) PeerEnabled(src CallMediaSource) bool {
	i := sourceIndex(string(src))
	return i >= 0 && k.stats[i].peerOn.Load()
}
