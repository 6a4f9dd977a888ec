package smpcall

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/internal/framecrypt"
	"github.com/smpcall/smpcall/internal/rtpframe"
	"github.com/smpcall/smpcall/video"
)

// streamCounters are one media source's counters, updated by its goroutines.
type streamCounters struct {
	framesSent, bytesSent                atomic.Uint64
	framesReceived, bytesReceived        atomic.Uint64
	decrypted, decryptFailed, framesLost atomic.Uint64
	keyFramesReceived, keyFrameRequests  atomic.Uint64
	pliSent                              atomic.Uint64

	// Peer media detection: when the peer's last frame came, and whether
	// the source is considered on.
	lastFrame atomic.Int64
	peerOn    atomic.Bool
	// remoteSSRC is the SSRC of the peer's track (0 until it appears).
	remoteSSRC atomic.Uint32
}

// StreamStats are the counters of one media source of a call.
type StreamStats struct {
	Source CallMediaSource
	// FramesSent and BytesSent count frames this side sent (bytes before encryption).
	FramesSent, BytesSent uint64
	// FramesReceived and BytesReceived count frames delivered to the sink
	// (after decryption).
	FramesReceived, BytesReceived uint64
	// Decrypted counts frames that passed authentication; DecryptFailed
	// frames that did not (dropped, never delivered).
	Decrypted, DecryptFailed uint64
	// FramesLost counts video frames dropped because packets were missing.
	FramesLost uint64
	// KeyFramesReceived counts received VP8 key frames.
	KeyFramesReceived uint64
	// KeyFrameRequests counts PLI/FIR received from the peer; PLISent those we sent.
	KeyFrameRequests, PLISent uint64
	// PacketsReceived, PacketsLost and Jitter describe the RTP stream from
	// the peer (pion's inbound-rtp statistics; jitter in time units).
	PacketsReceived uint32
	PacketsLost     int32
	Jitter          time.Duration
}

// CallStats is a snapshot of a call's counters.
type CallStats struct {
	Streams [4]StreamStats
	// Duration is the time since the call connected (0 before).
	Duration time.Duration
	// RTT is the round-trip time of the selected ICE candidate pair (0 until measured).
	RTT time.Duration
	// Info is the selected candidate pair.
	Info ConnectionInfo
}

// Stats returns a snapshot of the call's counters. Safe at any time.
func (k *Call) Stats() CallStats {
	var s CallStats
	for i := range k.stats {
		c := &k.stats[i]
		s.Streams[i] = StreamStats{
			Source:     MediaSources[i],
			FramesSent: c.framesSent.Load(), BytesSent: c.bytesSent.Load(),
			FramesReceived: c.framesReceived.Load(), BytesReceived: c.bytesReceived.Load(),
			Decrypted: c.decrypted.Load(), DecryptFailed: c.decryptFailed.Load(), FramesLost: c.framesLost.Load(),
			KeyFramesReceived: c.keyFramesReceived.Load(), KeyFrameRequests: c.keyFrameRequests.Load(), PLISent: c.pliSent.Load(),
		}
	}
	if pc := k.pcRef.Load(); pc != nil && k.State() != StateEnded {
		for _, st := range pc.GetStats() {
			switch st := st.(type) {
			case webrtc.InboundRTPStreamStats:
				if i := midIndex(st.Mid); i >= 0 {
					s.Streams[i].PacketsReceived = st.PacketsReceived
					s.Streams[i].PacketsLost = st.PacketsLost
					s.Streams[i].Jitter = time.Duration(st.Jitter * float64(time.Second))
				}
			case webrtc.ICECandidatePairStats:
				if st.Nominated && st.CurrentRoundTripTime > 0 {
					s.RTT = time.Duration(st.CurrentRoundTripTime * float64(time.Second))
				}
			}
		}
	}
	k.mu.Lock()
	if !k.connAt.IsZero() {
		s.Duration = k.c.cfg.Now().Sub(k.connAt)
	}
	s.Info = k.info
	k.mu.Unlock()
	return s
}

// onTrack runs on a pion goroutine when a remote track sends its first
// packet: camera and screen tracks may appear mid-call (DESIGN.md).
func (k *Call) onTrack(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
	i := -1
	for _, tr := range k.pc.GetTransceivers() {
		if tr.Receiver() == r {
			i = midIndex(tr.Mid())
			if i < 0 { // older peers' mids: by kind
				i = 0
				if tr.Kind() == webrtc.RTPCodecTypeVideo {
					i = 1
				}
			}
			break
		}
	}
	if i < 0 {
		return
	}
	k.goMedia(func() { k.receive(i, t) })
}

// receive reads one remote track: reassembles frames, decrypts them, drops
// and counts the ones that fail, and hands the rest to the sink.
func (k *Call) receive(i int, t *webrtc.TrackRemote) {
	isVid := t.Kind() == webrtc.RTPCodecTypeVideo
	var asm rtpframe.VP8
	var lastPLI time.Time
	failures := 0
	sinkOK := true
	pli := func() {
		if time.Since(lastPLI) < 500*time.Millisecond {
			return
		}
		lastPLI = time.Now()
		if err := k.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(t.SSRC())}}); err == nil {
			k.stats[i].pliSent.Add(1)
		}
	}
	k.stats[i].remoteSSRC.Store(uint32(t.SSRC()))
	if isVid {
		pli() // ask for a key frame as soon as the receiver starts
	}
	c := &k.stats[i]
	for {
		p, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		var frame []byte
		if isVid {
			res, err := asm.Push(p)
			if err != nil || res.Lost {
				c.framesLost.Add(1)
				pli()
			}
			frame = res.Frame
		} else {
			frame = p.Payload
		}
		if len(frame) == 0 {
			continue
		}
		out := frame
		if k.cipher != nil {
			prefix := framecrypt.PrefixAudio
			if isVid {
				prefix = framecrypt.PrefixVP8(frame)
			}
			out, err = k.cipher.Open(make([]byte, 0, len(frame)), frame, prefix)
			if err != nil {
				c.decryptFailed.Add(1)
				failures++
				if failures == k.c.cfg.DecryptFailureThreshold {
					k.c.out.Push(&DecryptFailingEvent{Contact: k.contact, Source: MediaSources[i], Failed: failures})
				}
				if isVid {
					pli()
				}
				continue
			}
			c.decrypted.Add(1)
			failures = 0
		} else {
			out = bytes.Clone(frame)
		}
		k.peerFrame(i)
		if !sinkOK {
			continue
		}
		if err := k.deliver(i, isVid, out); err != nil {
			sinkOK = false
			k.c.out.Push(&MediaErrorEvent{Contact: k.contact, Source: MediaSources[i], Err: err})
		}
	}
}

func (k *Call) deliver(i int, isVid bool, data []byte) error {
	c := &k.stats[i]
	var err error
	if isVid {
		key := video.IsKeyFrame(data)
		if key {
			c.keyFramesReceived.Add(1)
		}
		var sink video.Sink
		if i == 3 {
			sink = k.opts.Sinks.ScreenVideo
		} else {
			sink = k.opts.Sinks.Camera
		}
		if sink != nil {
			err = sink.WriteFrame(video.Frame{Data: data, KeyFrame: key})
		}
	} else {
		var sink audio.Sink
		if i == 2 {
			sink = k.opts.Sinks.ScreenAudio
		} else {
			sink = k.opts.Sinks.Mic
		}
		if sink != nil {
			err = sink.WriteFrame(audio.Frame{Data: data})
		}
	}
	if err == nil {
		c.framesReceived.Add(1)
		c.bytesReceived.Add(uint64(len(data)))
	}
	return err
}

// RequestKeyFrame asks the peer for a key frame on one of its video
// streams (an RTCP PLI), e.g. when the embedder's decoder lost its state.
// Errors: not a video source, no frames from that stream yet, ErrCallEnded.
func (k *Call) RequestKeyFrame(src CallMediaSource) error {
	i := sourceIndex(string(src))
	if i < 0 || !isVideo(i) {
		return fmt.Errorf("smpcall: %q is not a video source", src)
	}
	pc := k.pcRef.Load()
	if pc == nil || k.State() == StateEnded {
		return ErrCallEnded
	}
	ssrc := k.stats[i].remoteSSRC.Load()
	if ssrc == 0 {
		return fmt.Errorf("smpcall: no %s stream from the peer yet", src)
	}
	if err := pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
		return fmt.Errorf("smpcall: request key frame: %w", err)
	}
	k.stats[i].pliSent.Add(1)
	return nil
}
