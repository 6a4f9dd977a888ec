package smpcall

import (
	"bytes"
	"errors"
	"io"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/internal/framecrypt"
	"github.com/smpcall/smpcall/internal/rtpframe"
	"github.com/smpcall/smpcall/video"
)

// mediaSession is what the media goroutines of a call need, handed to them
// as a value once the loop has set up the peer connection and its tracks.
// Nothing in it changes afterwards.
type mediaSession struct {
	pc *webrtc.PeerConnection
	// cipher is nil when the call is not frame-encrypted.
	cipher *framecrypt.Cipher
	// tracks has a track for each stream the session has.
	tracks  [numStreams]*webrtc.TrackLocalStaticSample
	streams streamSet
}

// startSession publishes the media session once the tracks are attached,
// and reads RTCP on every sender: pion needs it read for NACK and reports,
// and PLI/FIR from the peer ask for a key frame.
func (k *Call) startSession() {
	sess := &mediaSession{pc: k.loop.pc, cipher: k.loop.cipher, tracks: k.loop.tracks}
	for _, s := range streams {
		if sess.tracks[s] != nil {
			sess.streams.add(s)
		}
	}
	k.session.Store(sess)
	for _, tr := range k.loop.pc.GetTransceivers() {
		snd := tr.Sender()
		if snd == nil || snd.Track() == nil {
			continue
		}
		s, ok := streamOf(CallMediaSource(snd.Track().ID()))
		if !ok {
			continue
		}
		k.goMedia(func() { k.readRTCP(snd, s) })
	}
}

// keyFrameInterval limits how often the peer's requests make a source
// produce a key frame: Chrome repeats its PLI every 0.2–0.4 s until it
// decodes one (docs/architecture.md).
const keyFrameInterval = 300 * time.Millisecond

func (k *Call) readRTCP(snd *webrtc.RTPSender, s stream) {
	var last time.Time
	for {
		pkts, _, err := snd.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				k.stats[s].keyFrameRequests.Add(1)
				if time.Since(last) < keyFrameInterval {
					continue
				}
				last = time.Now()
				k.send[s].requestKeyFrame()
			}
		}
	}
}

// startSenders starts one send loop per stream the session has; media
// starts only on connected, since pion drops samples written earlier.
func (k *Call) startSenders() {
	sess := k.session.Load()
	for _, s := range streams {
		if t := sess.tracks[s]; t != nil {
			k.goMedia(func() { k.sendLoop(sess, s, t) })
		}
	}
}

// sendLoop sends what stream s's current source produces until the call ends.
func (k *Call) sendLoop(sess *mediaSession, s stream, t *webrtc.TrackLocalStaticSample) {
	st := &k.send[s]
	for {
		read, ctx, changed := st.current(k.mediaCtx)
		if read == nil {
			select {
			case <-changed:
				continue
			case <-k.mediaCtx.Done():
				return
			}
		}
		data, d, err := read(ctx)
		if err != nil {
			switch {
			case k.mediaCtx.Err() != nil:
				return
			case ctx.Err() != nil:
				continue // replaced
			case errors.Is(err, io.EOF):
				k.log.Info("smpcall: source ended", "source", s)
			default:
				k.events.Push(&MediaErrorEvent{Contact: k.contact, Source: s.source(), Sending: true, Err: err})
			}
			st.finished(changed)
			continue
		}
		if len(data) == 0 || !st.enabled.Load() {
			continue // muted: the frame is read and dropped
		}
		prefix := framecrypt.PrefixAudio
		if s.video() {
			prefix = framecrypt.PrefixVP8(data)
		}
		if !k.write(sess, s, t, data, prefix, d) && k.mediaCtx.Err() != nil {
			return
		}
	}
}

// write encrypts one frame (the whole encoded frame, before packetization,
// protocol §7.1) and sends it. Once a key is in force nothing is ever sent
// in the clear. A failed write (a transient network error) drops the frame
// and reports false; the stream goes on.
//
// Muted time does not advance the RTP timestamp: pion can only skip time
// together with sequence numbers, which the peer would count as loss and
// NACK. After an unmute the peer's jitter buffer sees the stream resume.
func (k *Call) write(sess *mediaSession, s stream, t *webrtc.TrackLocalStaticSample, data []byte, prefix int, d time.Duration) bool {
	out := data
	if sess.cipher != nil {
		out = sess.cipher.Seal(make([]byte, 0, len(data)+framecrypt.Overhead), data, prefix)
	}
	if err := t.WriteSample(media.Sample{Data: out, Duration: d}); err != nil {
		if k.mediaCtx.Err() == nil && k.writeErrs.Add(1)%100 == 1 {
			k.log.Info("smpcall: write sample failed; frame dropped", "source", s, "err", err)
		}
		return false
	}
	k.stats[s].framesSent.Add(1)
	k.stats[s].bytesSent.Add(uint64(len(data)))
	return true
}

// onTrack starts reading a remote track. pion fires OnTrack on a track's
// first packet, so camera and screen tracks may appear mid-call.
func (k *Call) onTrack(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
	s, ok := k.streamOfReceiver(r)
	if !ok {
		return
	}
	sess := k.session.Load()
	k.goMedia(func() { k.receive(sess, s, t) })
}

// pliInterval limits our own key-frame requests to the peer.
const pliInterval = 500 * time.Millisecond

// receive reads one remote track: reassembles frames, decrypts them, drops
// and counts the ones that fail, and hands the rest to the sink.
func (k *Call) receive(sess *mediaSession, s stream, t *webrtc.TrackRemote) {
	isVid := t.Kind() == webrtc.RTPCodecTypeVideo
	var asm rtpframe.VP8
	var lastPLI time.Time
	failures := 0
	sinkOK := true
	c := &k.stats[s]
	pli := func() {
		if time.Since(lastPLI) < pliInterval {
			return
		}
		lastPLI = time.Now()
		if err := sess.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(t.SSRC())}}); err == nil {
			c.pliSent.Add(1)
		}
	}
	c.remoteSSRC.Store(uint32(t.SSRC()))
	if isVid {
		pli() // ask for a key frame as soon as the receiver starts
	}
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
		if sess.cipher != nil {
			prefix := framecrypt.PrefixAudio
			if isVid {
				prefix = framecrypt.PrefixVP8(frame)
			}
			out, err = sess.cipher.Open(make([]byte, 0, len(frame)), frame, prefix)
			if err != nil {
				c.decryptFailed.Add(1)
				failures++
				if failures == k.cfg.DecryptFailureThreshold {
					k.events.Push(&DecryptFailingEvent{Contact: k.contact, Source: s.source(), Failed: failures})
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
		k.peerFrame(s)
		if !sinkOK {
			continue
		}
		if err := k.deliverFrame(s, out); err != nil {
			sinkOK = false
			k.events.Push(&MediaErrorEvent{Contact: k.contact, Source: s.source(), Err: err})
		}
	}
}

// deliverFrame hands one decrypted frame to stream s's sink.
func (k *Call) deliverFrame(s stream, data []byte) error {
	c := &k.stats[s]
	var err error
	sinks := &k.opts.Sinks
	switch s {
	case streamMic, streamScreenAudio:
		sink := sinks.Mic
		if s == streamScreenAudio {
			sink = sinks.ScreenAudio
		}
		if sink != nil {
			err = sink.WriteFrame(audio.Frame{Data: data})
		}
	default:
		key := video.IsKeyFrame(data)
		if key {
			c.keyFramesReceived.Add(1)
		}
		sink := sinks.Camera
		if s == streamScreenVideo {
			sink = sinks.ScreenVideo
		}
		if sink != nil {
			err = sink.WriteFrame(video.Frame{Data: data, KeyFrame: key})
		}
	}
	if err == nil {
		c.framesReceived.Add(1)
		c.bytesReceived.Add(uint64(len(data)))
	}
	return err
}

// peerFrame records a frame from the peer's stream s (from its receive goroutine).
func (k *Call) peerFrame(s stream) {
	c := &k.stats[s]
	c.lastFrame.Store(time.Now().UnixNano())
	if c.peerOn.CompareAndSwap(false, true) {
		k.events.Push(&PeerMediaEvent{Contact: k.contact, Source: s.source(), Enabled: true})
	}
}

// checkPeerMedia announces a peer source as off after PeerMediaTimeout
// without frames, as the web page's 3 s decrypt timer does (protocol §6.4).
// The loop runs it on a ticker.
func (k *Call) checkPeerMedia(now time.Time) {
	for _, s := range streams {
		c := &k.stats[s]
		if c.peerOn.Load() && now.Sub(time.Unix(0, c.lastFrame.Load())) > k.cfg.PeerMediaTimeout && c.peerOn.CompareAndSwap(true, false) {
			k.events.Push(&PeerMediaEvent{Contact: k.contact, Source: s.source(), Enabled: false})
		}
	}
}
