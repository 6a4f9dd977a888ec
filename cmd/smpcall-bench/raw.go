package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// This file is the baseline: plain pion peer connections carrying the same
// frames as the SDK's calls. Each leg is what a careful pion user writes:
// pion's default codecs and interceptors (one API shared by all legs),
// one transceiver of the media's kind, RTCP read on the sender (pion's
// examples do this so that NACK and reports work), frames written with
// WriteSample, and the remote track read into a reused buffer. The frames
// are padded to the size the SDK's encrypted frames have, so both put the
// same bytes on the wire; the baseline does not encrypt them.

// rawAPI is the pion API of every raw leg of a process.
func rawAPI(se *webrtc.SettingEngine) *webrtc.API {
	return webrtc.NewAPI(webrtc.WithSettingEngine(*se))
}

// rawLeg is one end of a raw pair.
type rawLeg struct {
	pc    *webrtc.PeerConnection
	track *webrtc.TrackLocalStaticSample
	src   *source
	spec  mediaSpec
	m     *meter

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool

	connected chan struct{}
	failed    chan struct{}
}

func newRawLeg(api *webrtc.API, m *meter, spec mediaSpec, mlines int) (*rawLeg, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	capab := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	if spec.Video {
		capab = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	}
	track, err := webrtc.NewTrackLocalStaticSample(capab, "media", "raw")
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	l := &rawLeg{pc: pc, track: track, spec: spec, m: m, src: newSource(m, spec),
		connected: make(chan struct{}), failed: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	sender, err := pc.AddTrack(track)
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	l.goLeg(func() {
		for {
			if _, _, err := sender.ReadRTCP(); err != nil {
				return
			}
		}
	})
	// More m-lines, as the SimpleX session has (-raw-mlines), each with a
	// track that never sends.
	for i := 1; i < mlines; i++ {
		c := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
		if i%2 == 1 {
			c = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
		}
		idle, err := webrtc.NewTrackLocalStaticSample(c, fmt.Sprintf("idle%d", i), "raw")
		if err != nil {
			_ = pc.Close()
			return nil, err
		}
		if _, err := pc.AddTrack(idle); err != nil {
			_ = pc.Close()
			return nil, err
		}
	}
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if t.Kind() == track.Kind() {
			l.goLeg(func() { l.receive(t) })
		}
	})
	var once, failOnce sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			once.Do(func() {
				close(l.connected)
				l.goLeg(l.send)
			})
		case webrtc.PeerConnectionStateFailed:
			failOnce.Do(func() { close(l.failed) })
		}
	})
	return l, nil
}

// goLeg starts one of the leg's goroutines unless it is closing.
func (l *rawLeg) goLeg(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		f()
	}()
}

func (l *rawLeg) send() {
	for {
		b, err := l.src.frame(l.ctx)
		if err != nil {
			return
		}
		if err := l.track.WriteSample(media.Sample{Data: b, Duration: l.spec.Interval}); err != nil && l.ctx.Err() != nil {
			return
		}
	}
}

// receive reads the remote track; video frames are put back together from
// their packets in arrival order (loopback does not reorder).
func (l *rawLeg) receive(t *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	var vp8 codecs.VP8Packet
	var frame []byte
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil || len(pkt.Payload) == 0 {
			continue
		}
		if !l.spec.Video {
			l.m.got(pkt.Payload)
			continue
		}
		p, err := vp8.Unmarshal(pkt.Payload)
		if err != nil {
			continue
		}
		if vp8.S == 1 {
			frame = frame[:0]
		}
		frame = append(frame, p...)
		if pkt.Marker {
			l.m.got(frame)
			frame = frame[:0]
		}
	}
}

func (l *rawLeg) wait(ctx context.Context) error {
	select {
	case <-l.connected:
		return nil
	case <-l.failed:
		return errors.New("raw pair: connection failed")
	case <-ctx.Done():
		return fmt.Errorf("raw pair: %w", ctx.Err())
	}
}

func (l *rawLeg) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	_ = l.pc.Close()
	l.wg.Wait()
}

// offer makes this leg's offer, with every candidate (no trickle).
func (l *rawLeg) offer() (string, error) {
	o, err := l.pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	return l.setLocal(o)
}

func (l *rawLeg) setLocal(d webrtc.SessionDescription) (string, error) {
	g := webrtc.GatheringCompletePromise(l.pc)
	if err := l.pc.SetLocalDescription(d); err != nil {
		return "", err
	}
	select {
	case <-g:
	case <-time.After(10 * time.Second):
		return "", errors.New("raw pair: gathering did not complete")
	}
	return l.pc.LocalDescription().SDP, nil
}

// answer applies the peer's offer and returns the answer (with every
// candidate).
func (l *rawLeg) answer(offer string) (string, error) {
	if err := l.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", err
	}
	a, err := l.pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	return l.setLocal(a)
}

func (l *rawLeg) applyAnswer(sdp string) error {
	return l.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
}
