package smpcall

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/video"
)

// ErrNoSuchStream is returned when a call has no m-line for a source: an
// older peer whose offer had only one or two m-lines has no screen streams
// (protocol §6.4), an audio-only legacy offer has no camera.
var ErrNoSuchStream = errors.New("smpcall: the peer's session has no stream for this source")

// sendStream is what one of the four streams sends: its source, which may
// be replaced at any time without renegotiation, and whether it is enabled.
type sendStream struct {
	mu     sync.Mutex
	read   func(context.Context) ([]byte, time.Duration, error)
	keyReq video.KeyFrameRequester
	// ctx is what the current source reads with, made on its first read;
	// cancel interrupts its ReadFrame when it is replaced.
	ctx     context.Context
	cancel  context.CancelFunc
	changed chan struct{} // closed and replaced on every change
	enabled atomic.Bool
	// armed: the call is connected and its session has this stream, so a
	// source starts the stream's goroutines; started: they run (media.go,
	// startSender).
	armed, started atomic.Bool
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
		s.ctx, s.cancel = nil, nil
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if kr != nil {
		kr.RequestKeyFrame() // the peer's decoder needs a key frame from the new source
	}
}

// current returns the source to read with a context that a replacement
// cancels. The context lives as long as the source: one per frame cost
// three allocations and a registration with the parent every 20 ms.
func (s *sendStream) current(parent context.Context) (func(context.Context) ([]byte, time.Duration, error), context.Context, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.read == nil {
		return nil, nil, s.changed
	}
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancel(parent)
	}
	return s.read, s.ctx, s.changed
}

// hasSource reports whether the stream has a source to send.
func (s *sendStream) hasSource() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.read != nil
}

// finished forgets a source that ended (io.EOF or an error) unless it was replaced meanwhile.
func (s *sendStream) finished(changed <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == changed {
		s.read, s.keyReq = nil, nil
		if s.cancel != nil {
			s.cancel()
			s.ctx, s.cancel = nil, nil
		}
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
func (c *Call) initStreams() {
	for i := range c.send {
		c.send[i].init()
	}
	o := c.opts.Sources
	c.send[streamMic].read = audioReader(o.Mic)
	c.send[streamCamera].read, c.send[streamCamera].keyReq = videoReader(o.Camera), keyRequester(o.Camera)
	c.send[streamScreenAudio].read = audioReader(o.ScreenAudio)
	c.send[streamScreenVideo].read, c.send[streamScreenVideo].keyReq = videoReader(o.ScreenVideo), keyRequester(o.ScreenVideo)
	c.camera.Store(string(CameraUser))
}

// SetEnabled turns sending of one source on or off, like the apps' mute and
// camera buttons: frames from the source are read and dropped while it is
// disabled, and the peer infers "muted" after about 3 s without frames
// (protocol §6.4). No renegotiation. Errors: an unknown source.
func (c *Call) SetEnabled(src CallMediaSource, enabled bool) error {
	s, ok := streamOf(src)
	if !ok {
		return fmt.Errorf("smpcall: unknown media source %q", src)
	}
	c.send[s].enabled.Store(enabled)
	if enabled && s.video() {
		c.send[s].requestKeyFrame()
	}
	return nil
}

// Enabled reports whether a source is being sent.
func (c *Call) Enabled(src CallMediaSource) bool {
	s, ok := streamOf(src)
	return ok && c.send[s].enabled.Load()
}

// SetAudioSource replaces what the mic or screen-audio stream sends (nil
// stops it) without renegotiation. Errors: not an audio source,
// ErrNoSuchStream, ErrCallEnded.
func (c *Call) SetAudioSource(src CallMediaSource, a audio.Source) error {
	s, err := c.streamFor(src, false)
	if err != nil {
		return err
	}
	c.send[s].set(audioReader(a), nil)
	c.startSender(s)
	return nil
}

// SetVideoSource replaces what the camera or screen-video stream sends
// (nil stops it) without renegotiation; an audio call can start sending
// video this way, since its camera m-line exists from the start (protocol
// §6.4). A source that implements video.KeyFrameRequester is asked for a key
// frame at once. Errors: not a video source, ErrNoSuchStream, ErrCallEnded.
func (c *Call) SetVideoSource(src CallMediaSource, v video.Source) error {
	s, err := c.streamFor(src, true)
	if err != nil {
		return err
	}
	c.send[s].set(videoReader(v), keyRequester(v))
	c.startSender(s)
	return nil
}

// SwitchCamera replaces the camera source with one facing the other way
// (the apps' "flip camera"), without renegotiation.
func (c *Call) SwitchCamera(facing VideoCamera, v video.Source) error {
	if !facing.Valid() {
		return fmt.Errorf("smpcall: unknown camera %q", facing)
	}
	if err := c.SetVideoSource(SourceCamera, v); err != nil {
		return err
	}
	c.camera.Store(string(facing))
	return nil
}

// Camera returns the facing of the current camera source (user until switched).
func (c *Call) Camera() VideoCamera { return VideoCamera(c.camera.Load().(string)) }

// StartScreenShare sends a screen on transceivers 2 and 3 (protocol §6.4);
// sound may be nil. Errors: ErrNoSuchStream when the peer's session has no
// screen m-lines, ErrCallEnded.
func (c *Call) StartScreenShare(screen video.Source, sound audio.Source) error {
	if screen == nil {
		return errors.New("smpcall: start screen share: nil screen source")
	}
	if _, err := c.streamFor(SourceScreenVideo, true); err != nil {
		return err
	}
	if err := c.SetVideoSource(SourceScreenVideo, screen); err != nil {
		return err
	}
	if sound != nil {
		return c.SetAudioSource(SourceScreenAudio, sound)
	}
	return nil
}

// StopScreenShare stops sending on the screen streams.
func (c *Call) StopScreenShare() error {
	if _, err := c.streamFor(SourceScreenVideo, true); err != nil {
		return err
	}
	c.send[streamScreenVideo].set(nil, nil)
	c.send[streamScreenAudio].set(nil, nil)
	return nil
}

// streamFor checks that src is a source of the wanted kind that the call's
// session has (all four until the session is known).
func (c *Call) streamFor(src CallMediaSource, wantVideo bool) (stream, error) {
	s, ok := streamOf(src)
	if !ok || s.video() != wantVideo {
		kind := "audio"
		if wantVideo {
			kind = "video"
		}
		return 0, fmt.Errorf("smpcall: %q is not a %s source", src, kind)
	}
	if c.over.Load() {
		return 0, ErrCallEnded
	}
	if sess := c.session.Load(); sess != nil && !sess.streams.has(s) {
		return 0, ErrNoSuchStream
	}
	return s, nil
}

// PeerEnabled reports whether the peer's source is sending (see PeerMediaEvent).
func (c *Call) PeerEnabled(src CallMediaSource) bool {
	s, ok := streamOf(src)
	return ok && c.stats[s].peerOn.Load()
}
