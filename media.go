package smpcall

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/internal/framecrypt"
	"github.com/smpcall/smpcall/internal/jitter"
	"github.com/smpcall/smpcall/video"
)

// mediaSession is what the media goroutines of a call need, handed to them
// as a value once the loop has set up the peer connection and its tracks.
// Nothing in it changes afterwards.
type mediaSession struct {
	pc *webrtc.PeerConnection
	// cipher is nil when the call is not frame-encrypted.
	cipher *framecrypt.Cipher
	// tracks has a track for each stream the session has, and senders
	// their senders.
	tracks  [numStreams]*webrtc.TrackLocalStaticSample
	senders [numStreams]*webrtc.RTPSender
	streams streamSet
}

// startSession publishes the media session once the tracks are attached.
func (c *Call) startSession() {
	sess := &mediaSession{pc: c.loop.pc, cipher: c.loop.cipher, tracks: c.loop.tracks}
	for _, s := range streams {
		if sess.tracks[s] != nil {
			sess.streams.add(s)
		}
	}
	for _, tr := range c.loop.pc.GetTransceivers() {
		snd := tr.Sender()
		if snd == nil || snd.Track() == nil {
			continue
		}
		if s, ok := streamOf(CallMediaSource(snd.Track().ID())); ok {
			sess.senders[s] = snd
		}
	}
	c.session.Store(sess)
}

// keyFrameInterval limits how often the peer's requests make a source
// produce a key frame: Chrome repeats its PLI every 0.2–0.4 s until it
// decodes one (docs/architecture.md).
const keyFrameInterval = 300 * time.Millisecond

// readRTCP reads what the peer sends about stream s: pion needs RTCP read
// for NACK and reports, receiver reports carry the round-trip time, and
// PLI/FIR ask for a key frame. It runs while the stream sends (see
// startSender): a sender that never sent gets none of these.
func (c *Call) readRTCP(snd *webrtc.RTPSender, s stream) {
	var last time.Time
	buf := make([]byte, receiveMTU)
	for {
		n, _, err := snd.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.ReceiverReport:
				c.noteRTT(p.Reports)
			case *rtcp.SenderReport:
				c.noteRTT(p.Reports)
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				c.stats[s].keyFrameRequests.Add(1)
				if time.Since(last) < keyFrameInterval {
					continue
				}
				last = time.Now()
				c.send[s].requestKeyFrame()
			}
		}
	}
}

// noteRTT takes the round-trip time from the peer's reports on our
// streams (RFC 3550 §6.4.1: now − LSR − DLSR, in 1/65536 s of the NTP
// clock). The receive buffers size their wait from it.
func (c *Call) noteRTT(reports []rtcp.ReceptionReport) {
	for _, r := range reports {
		if r.LastSenderReport == 0 {
			continue
		}
		now := time.Now()
		secs := uint64(now.Unix()) + 2208988800 // NTP era 0 starts in 1900
		frac := uint64(now.Nanosecond()) << 32 / 1e9
		mid := uint32(secs<<16 | frac>>16)
		d := mid - r.LastSenderReport - r.Delay
		if d >= 1<<31 {
			continue // the clock went back, or a report from before a restart
		}
		c.rtt.Store(int64(time.Duration(d) * time.Second >> 16))
	}
}

// startSenders arms every stream the session has: media starts only on
// connected, since pion drops samples written earlier. A stream's send
// loop and RTCP reader start when it has a source, now or later (see
// startSender), so the streams that never send (the screen streams of most
// calls, the camera of an audio call) cost no goroutines.
func (c *Call) startSenders() {
	sess := c.session.Load()
	for _, s := range streams {
		if sess.tracks[s] != nil {
			c.send[s].armed.Store(true)
			c.startSender(s)
		}
	}
}

// startSender starts stream s's send loop and RTCP reader once the stream
// is armed and has a source; they run until the call ends. Both the loop
// (on connected) and the controls (a new source) call it: each stores its
// half before it checks the other's, so one of them starts the stream.
func (c *Call) startSender(s stream) {
	st := &c.send[s]
	if !st.armed.Load() || !st.hasSource() || !st.started.CompareAndSwap(false, true) {
		return
	}
	sess := c.session.Load()
	t := sess.tracks[s]
	c.goMedia(func() { c.sendLoop(sess, s, t) }, nil)
	if snd := sess.senders[s]; snd != nil {
		c.goMedia(func() { c.readRTCP(snd, s) }, snd)
	}
}

// sendLoop sends what stream s's current source produces until the call ends.
func (c *Call) sendLoop(sess *mediaSession, s stream, t *webrtc.TrackLocalStaticSample) {
	st := &c.send[s]
	var sealed []byte // reused: WriteSample copies the frame into its packets
	for {
		read, ctx, changed := st.current(c.mediaCtx)
		if read == nil {
			select {
			case <-changed:
				continue
			case <-c.mediaCtx.Done():
				return
			}
		}
		data, d, err := read(ctx)
		if err != nil {
			switch {
			case c.mediaCtx.Err() != nil:
				return
			case ctx.Err() != nil:
				continue // replaced
			case errors.Is(err, io.EOF):
				c.log.Info("smpcall: source ended", "source", s)
			default:
				c.events.Push(&MediaErrorEvent{Contact: c.contact, Source: s.source(), Sending: true, Err: err})
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
		var ok bool
		if sealed, ok = c.write(sess, s, t, data, sealed[:0], prefix, d); !ok && c.mediaCtx.Err() != nil {
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
//
// buf is reused for the encrypted frame, which is returned for the next call.
func (c *Call) write(sess *mediaSession, s stream, t *webrtc.TrackLocalStaticSample, data, buf []byte, prefix int, d time.Duration) ([]byte, bool) {
	out := data
	if sess.cipher != nil {
		buf = sess.cipher.Seal(buf, data, prefix)
		out = buf
	}
	if err := t.WriteSample(media.Sample{Data: out, Duration: d}); err != nil {
		if c.mediaCtx.Err() == nil && c.writeErrs.Add(1)%100 == 1 {
			c.log.Info("smpcall: write sample failed; frame dropped", "source", s, "err", err)
		}
		return buf, false
	}
	c.stats[s].framesSent.Add(1)
	c.stats[s].bytesSent.Add(uint64(len(data)))
	return buf, true
}

// onTrack starts reading a remote track. pion fires OnTrack on a track's
// first packet, so camera and screen tracks may appear mid-call.
func (c *Call) onTrack(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
	s, ok := c.streamOfReceiver(r)
	if !ok {
		return
	}
	sess := c.session.Load()
	c.goMedia(func() { c.receive(sess, s, t) }, t)
}

// pliInterval limits our own key-frame requests to the peer.
const pliInterval = 500 * time.Millisecond

// receiver is what one remote track's reading goroutine keeps.
type receiver struct {
	call     *Call
	sess     *mediaSession
	s        stream
	t        *webrtc.TrackRemote
	c        *streamCounters
	buf      []byte
	pkt      rtp.Packet
	deadline time.Time
	lastPLI  time.Time
	failures int
	sinkOK   bool
	rtt      time.Duration
	// borrow: the sink only borrows frames (FrameBorrower), so plain is
	// reused for every frame.
	borrow bool
	plain  []byte
}

// FrameBorrower is an optional interface of an audio.Sink or video.Sink
// that reads a frame's Data only during WriteFrame and keeps no reference
// to it afterwards (a recorder that writes it out, a decoder that copies
// it). For a Sink whose BorrowsFrames returns true, the SDK decrypts every
// frame of the stream into one buffer that it reuses, so receiving
// allocates nothing per frame; every other Sink gets a buffer of its own
// with each frame, as audio.Sink says (Data belongs to the Sink).
type FrameBorrower interface {
	// BorrowsFrames reports whether the Sink only borrows each frame's Data
	// for the time of WriteFrame.
	BorrowsFrames() bool
}

func borrows(sink any) bool {
	b, ok := sink.(FrameBorrower)
	return ok && b.BorrowsFrames()
}

// receive reads one remote track through a receive buffer (internal/jitter)
// that waits for reordered and NACK-retransmitted packets, decrypts each
// frame, drops and counts the ones that fail, and hands the rest to the
// sink. After a real video loss no delta frame reaches the sink until a
// key frame, and a PLI asks the peer for one.
func (c *Call) receive(sess *mediaSession, s stream, t *webrtc.TrackRemote) {
	r := &receiver{call: c, sess: sess, s: s, t: t, c: &c.stats[s], buf: make([]byte, receiveMTU), sinkOK: true}
	switch sinks := &c.opts.Sinks; s {
	case streamMic:
		r.borrow = borrows(sinks.Mic)
	case streamCamera:
		r.borrow = borrows(sinks.Camera)
	case streamScreenAudio:
		r.borrow = borrows(sinks.ScreenAudio)
	case streamScreenVideo:
		r.borrow = borrows(sinks.ScreenVideo)
	}
	r.c.remoteSSRC.Store(uint32(t.SSRC()))
	if t.Kind() == webrtc.RTPCodecTypeVideo {
		r.video()
	} else {
		r.audio()
	}
}

// videoNACKRounds is how many NACK round trips a video frame with a
// missing packet waits (jitter's default is 2). Three, because a frame
// given up costs every frame until the next key frame: over 100 simulated
// runs of the matrix's wan-100ms-5pct profile (5 % loss, about 210 ms
// RTT) two rounds delivered 95.0-100 % of the video frames and under 95 %
// in 2 of 100 runs; three rounds delivered 96.7-100 %, most runs all of
// them. The cost is up to one more round trip of delay, only behind a
// loss.
const videoNACKRounds = 3

// videoMaxWait caps how long a video frame with a missing packet waits for
// its retransmission. The buffer waits about three NACK round trips; on a
// satellite-like path (500 ms RTT plus queueing) pion's retransmissions
// came after jitter's default cap of 1 s, and every loss cost a key frame,
// which on a narrow link is the most expensive frame there is.
const videoMaxWait = 2 * time.Second

// receiveMTU is the largest RTP packet read (pion's receive MTU is 1460).
const receiveMTU = 1500

// read waits for the next packet until deadline (zero: none). ok false
// with err nil means the deadline passed; an error ends the track.
func (r *receiver) read(deadline time.Time) (ok bool, err error) {
	if !deadline.Equal(r.deadline) {
		r.deadline = deadline
		if err := r.t.SetReadDeadline(deadline); err != nil {
			return false, err
		}
	}
	// Checked after the deadline is set: the call's end sets one in the
	// past after cancelling mediaCtx, so either this sees the cancellation
	// or the Read below returns at once.
	if err := r.call.mediaCtx.Err(); err != nil {
		return false, err
	}
	n, _, err := r.t.Read(r.buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false, r.call.mediaCtx.Err()
		}
		return false, err
	}
	if err := r.pkt.Unmarshal(r.buf[:n]); err != nil {
		return false, nil // not RTP: skip it
	}
	return true, nil
}

func (r *receiver) pli() {
	if time.Since(r.lastPLI) < pliInterval {
		return
	}
	r.lastPLI = time.Now()
	if err := r.sess.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(r.t.SSRC())}}); err == nil {
		r.c.pliSent.Add(1)
	}
}

// updateRTT hands the buffer the latest round-trip time from RTCP reports.
func (r *receiver) updateRTT(set func(time.Duration)) {
	if rtt := time.Duration(r.call.rtt.Load()); rtt > 0 && rtt != r.rtt {
		r.rtt = rtt
		set(rtt)
	}
}

func (r *receiver) video() {
	vj := jitter.NewVideo(jitter.VideoConfig{NACKInterval: nackInterval, NACKRounds: videoNACKRounds, MaxWait: videoMaxWait})
	r.pli() // ask for a key frame as soon as the receiver starts
	var last jitter.VideoStats
	for {
		deadline, _ := vj.NextDeadline()
		got, err := r.read(deadline)
		if err != nil {
			return
		}
		now := time.Now()
		r.updateRTT(vj.SetRTT)
		if got {
			vj.Push(&r.pkt, now)
		}
		for {
			f, ok := vj.Pop(now)
			if !ok {
				break
			}
			if !r.frame(f.Data, framecrypt.PrefixVP8(f.Data), now) {
				vj.DropUntilKeyFrame() // what depends on this frame cannot be decoded
			}
		}
		if vj.NeedKeyFrame() {
			r.pli()
		}
		st := vj.Stats()
		addChanged(&r.c.framesLost, st.FramesLost+st.DeltaDropped, last.FramesLost+last.DeltaDropped)
		addChanged(&r.c.packetsRecovered, st.Reordered, last.Reordered)
		addChanged(&r.c.packetsLate, st.Late, last.Late)
		last = st
	}
}

// audioMaxPackets bounds an audio receive buffer: 1.28 s of 20 ms packets.
// Audio is not retransmitted and a gap is held only 40 ms, so the buffer
// holds a packet or two; the bound is how far back it remembers which
// packets came (to tell a duplicate from a late packet), and a jump of
// more sequence numbers than it (an outage longer than that) restarts the
// buffer (the skipped frames are counted here, see audio). jitter's
// default (512, 10 s) cost 28 KiB per call for that memory; 64 cost 3.5 KiB.
const audioMaxPackets = 64

func (r *receiver) audio() {
	aj := jitter.NewAudio(jitter.AudioConfig{MaxPackets: audioMaxPackets})
	var last jitter.AudioStats
	var lastSeq uint16
	var lastSSRC uint32
	for {
		deadline, _ := aj.NextDeadline()
		got, err := r.read(deadline)
		if err != nil {
			return
		}
		now := time.Now()
		if got {
			aj.Push(&r.pkt, now)
		}
		for {
			p, ok := aj.Pop(now)
			if !ok {
				break
			}
			r.frame(p.Payload, framecrypt.PrefixAudio, now)
		}
		st := aj.Stats()
		// A jump beyond what the buffer remembers restarts it (the one
		// Push above did) without counting the packets skipped; the
		// stream's own numbers say how many there were (forward, within
		// half the sequence space: RFC 3550 A.1).
		if gap := r.pkt.SequenceNumber - lastSeq; got && st.Resets > last.Resets && r.pkt.SSRC == lastSSRC && gap > 1 && gap < 1<<15 {
			r.c.framesLost.Add(uint64(gap - 1))
		}
		if got {
			lastSeq, lastSSRC = r.pkt.SequenceNumber, r.pkt.SSRC
		}
		addChanged(&r.c.framesLost, st.Lost, last.Lost)
		addChanged(&r.c.packetsRecovered, st.Reordered, last.Reordered)
		addChanged(&r.c.packetsLate, st.Late, last.Late)
		last = st
	}
}

// addChanged adds now-before to c unless it is zero (most packets change
// no counter, and an atomic add is a locked instruction).
func addChanged(c *atomic.Uint64, now, before uint64) {
	if now != before {
		c.Add(now - before)
	}
}

// frame decrypts one frame and delivers it; false when it failed to
// decrypt. frame is only valid during the call.
func (r *receiver) frame(frame []byte, prefix int, now time.Time) bool {
	if len(frame) == 0 {
		return true
	}
	var out []byte
	if r.sess.cipher != nil {
		var err error
		dst := r.plain[:0]
		if !r.borrow {
			dst = make([]byte, 0, max(len(frame)-framecrypt.Overhead, 0))
		}
		out, err = r.sess.cipher.Open(dst, frame, prefix)
		if err != nil {
			r.c.decryptFailed.Add(1)
			r.failures++
			if r.failures == r.call.cfg.DecryptFailureThreshold {
				r.call.events.Push(&DecryptFailingEvent{Contact: r.call.contact, Source: r.s.source(), Failed: r.failures})
			}
			if r.s.video() {
				r.pli()
			}
			return false
		}
		r.c.decrypted.Add(1)
		r.failures = 0
		if r.borrow {
			r.plain = out
		}
	} else if r.borrow {
		out = frame
	} else {
		out = bytes.Clone(frame)
	}
	r.call.peerFrame(r.s, now)
	if !r.sinkOK {
		return true
	}
	if err := r.call.deliverFrame(r.s, out); err != nil {
		r.sinkOK = false
		r.call.events.Push(&MediaErrorEvent{Contact: r.call.contact, Source: r.s.source(), Err: err})
	}
	return true
}

// deliverFrame hands one decrypted frame to stream s's sink.
func (c *Call) deliverFrame(s stream, data []byte) error {
	sc := &c.stats[s]
	var err error
	sinks := &c.opts.Sinks
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
			sc.keyFramesReceived.Add(1)
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
		sc.framesReceived.Add(1)
		sc.bytesReceived.Add(uint64(len(data)))
	}
	return err
}

// peerFrame records a frame from the peer's stream s (from its receive
// goroutine), which arrived at now.
func (c *Call) peerFrame(s stream, now time.Time) {
	sc := &c.stats[s]
	sc.lastFrame.Store(now.UnixNano())
	if sc.peerOn.CompareAndSwap(false, true) {
		c.events.Push(&PeerMediaEvent{Contact: c.contact, Source: s.source(), Enabled: true})
	}
}

// checkPeerMedia announces a peer source as off after PeerMediaTimeout
// without frames, as the web page's 3 s decrypt timer does (protocol §6.4).
// The loop runs it on a ticker.
func (c *Call) checkPeerMedia(now time.Time) {
	for _, s := range streams {
		sc := &c.stats[s]
		if sc.peerOn.Load() && now.Sub(time.Unix(0, sc.lastFrame.Load())) > c.cfg.PeerMediaTimeout && sc.peerOn.CompareAndSwap(true, false) {
			c.events.Push(&PeerMediaEvent{Contact: c.contact, Source: s.source(), Enabled: false})
		}
	}
}
