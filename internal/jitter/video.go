package jitter

import (
	"slices"
	"time"

	"github.com/pion/rtp"
)

// Video defaults; VideoConfig documents each.
const (
	DefaultInitialRTT   = 100 * time.Millisecond
	DefaultNACKInterval = 20 * time.Millisecond
	DefaultNACKRounds   = 2
	DefaultJitterMargin = 30 * time.Millisecond
	DefaultMinWait      = 50 * time.Millisecond
	DefaultMaxWait      = time.Second
	DefaultMaxPackets   = 4096
	DefaultMaxBytes     = 8 << 20
	DefaultMaxFrameSize = 4 << 20
)

// VideoConfig configures a Video. The zero value is the default; a zero or
// negative field takes its default.
//
// How long a frame with missing packets is held:
//
//	wait = NACKRounds × (RTT + NACKInterval) + JitterMargin, clamped to [MinWait, MaxWait]
//
// A lost packet is noticed when a later one arrives. pion's NACK generator
// asks for it on its next tick (within NACKInterval), the request and the
// resent packet take one RTT, and if the resent packet is lost too, the
// next request goes out once the sender's resend suppression (about one
// RTT) has passed: so each NACK round costs about RTT + NACKInterval, and
// the margin absorbs jitter on the retransmission's path. With the defaults
// and an unknown RTT the wait is 2 × (100 + 20) + 30 = 270 ms; on a LAN it
// is 72 ms, and the clamp keeps a wild RTT estimate from stalling the
// stream for more than a second. The wait only delays frames when a packet
// is actually missing: complete frames leave as soon as they are complete.
type VideoConfig struct {
	// InitialRTT is the round-trip time assumed until SetRTT is called.
	// Default 100 ms, a typical TURN-relayed path.
	InitialRTT time.Duration
	// NACKInterval is the period of the receiver's NACK generator (pion's
	// nack.GeneratorInterval). Default 20 ms, which assumes the peer
	// connection sets nack.GeneratorInterval(20*time.Millisecond); pion's
	// own default is 100 ms, and with it this field must be 100 ms too.
	NACKInterval time.Duration
	// NACKRounds is how many NACK round trips a missing packet is waited
	// for. Default 2: one retransmission may itself be lost.
	NACKRounds int
	// JitterMargin is added to the wait for jitter on the retransmission's
	// path. Default 30 ms.
	JitterMargin time.Duration
	// MinWait and MaxWait clamp the wait. Defaults 50 ms and 1 s.
	MinWait, MaxWait time.Duration
	// MaxPackets bounds the packets held (the window of sequence numbers,
	// rounded up to a power of two, at most 16384). Default 4096: a
	// MaxFrameSize frame in 1200-byte packets, or a second of 30 Mbit/s.
	MaxPackets int
	// MaxBytes bounds the payload bytes held. Default 8 MiB: two frames of
	// MaxFrameSize. At least 64 KiB; keep it above MaxFrameSize, or the
	// largest frames are evicted before they complete.
	MaxBytes int
	// MaxFrameSize bounds an assembled frame; a larger one is dropped as
	// lost (Oversized). Default 4 MiB, the bound of internal/rtpframe. The
	// buffer frames are assembled in keeps the size of the largest frame
	// released.
	MaxFrameSize int
}

func (c VideoConfig) withDefaults() VideoConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.InitialRTT, DefaultInitialRTT)
	def(&c.NACKInterval, DefaultNACKInterval)
	def(&c.JitterMargin, DefaultJitterMargin)
	def(&c.MinWait, DefaultMinWait)
	def(&c.MaxWait, DefaultMaxWait)
	c.MaxWait = max(c.MaxWait, c.MinWait)
	if c.NACKRounds <= 0 {
		c.NACKRounds = DefaultNACKRounds
	}
	c.MaxPackets = ringSize(c.MaxPackets, DefaultMaxPackets)
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	c.MaxBytes = max(c.MaxBytes, 64<<10)
	if c.MaxFrameSize <= 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	return c
}

// ringSize rounds a packet bound up to a power of two in [64, maxRing].
func ringSize(n, def int) int {
	if n <= 0 {
		n = def
	}
	s := 64
	for s < n && s < maxRing {
		s *= 2
	}
	return s
}

// VideoFrame is a complete VP8 frame released by Pop.
type VideoFrame struct {
	// Data is the encoded frame: the payloads of its packets with the VP8
	// payload descriptors removed (RFC 7741 §4.1), still SimpleX-encrypted
	// if the peer encrypts. It aliases the Video's reused buffer and is
	// valid until the next call of any Video method except Stats,
	// NextDeadline, NeedKeyFrame and Wait; copy it to keep it.
	Data []byte
	// Timestamp is the frame's RTP timestamp.
	Timestamp uint32
	// KeyFrame: the P bit of the first byte is clear (RFC 6386 §9.1). The
	// SimpleX frame encryption leaves that byte in the clear (protocol §7.2).
	KeyFrame bool
}

// VideoStats are a Video's counters since NewVideo. Packet counters count
// each pushed packet once.
type VideoStats struct {
	// Packets is every packet pushed.
	Packets uint64
	// FramesReleased counts frames returned by Pop; KeyFrames those of
	// them that are key frames.
	FramesReleased, KeyFrames uint64
	// FramesLost counts frames given up: a frame with packets missing
	// after the wait, with its start missing, malformed or oversized, or
	// evicted. Frames that vanished whole inside a gap are counted from
	// the VP8 PictureIDs when the sender sets them (Chrome and pion do);
	// without them a run of lost packets counts as one frame.
	FramesLost uint64
	// DeltaDropped counts delta frames discarded while waiting for a key
	// frame (after a loss, or before the first key frame).
	DeltaDropped uint64
	// Oversized counts frames larger than MaxFrameSize (also in FramesLost).
	Oversized uint64
	// Late counts media packets that arrived after their frame was
	// released or given up (too late for the wait, or stale).
	Late uint64
	// Duplicates counts packets received twice (e.g. a NACK answered
	// twice, or a retransmission of a packet that was only reordered).
	Duplicates uint64
	// Reordered counts packets that filled a gap in time: reordered, or
	// retransmitted after a NACK (without RTX the two look the same).
	Reordered uint64
	// Padding counts padding-only packets (empty payload), which Chrome
	// sends on the video SSRC for bandwidth probing when RTX is not
	// negotiated; they take sequence numbers but carry no frame data.
	Padding uint64
	// PaddingSkipped counts missing sequence numbers that were skipped
	// without waiting because the PictureIDs on both sides showed that no
	// frame data was missing in them: lost padding, which senders never
	// retransmit (or the rest of a frame already dropped).
	PaddingSkipped uint64
	// Malformed counts packets whose VP8 payload descriptor is malformed.
	Malformed uint64
	// Evicted counts packets dropped, and missing packets given up
	// before the wait, to respect MaxPackets or MaxBytes.
	Evicted uint64
	// Resets counts discontinuities: an SSRC change or a sequence jump
	// larger than the window, after which the buffer starts over.
	Resets uint64
	// Held and HeldBytes are the packets and payload bytes held now.
	Held, HeldBytes int
}

// Video reassembles VP8 frames from RTP packets (RFC 7741) and releases
// complete frames in decode (sequence) order.
//
// A frame is the packets from one with S=1 and PID=0 to the one with the
// marker bit, with contiguous sequence numbers and one RTP timestamp;
// padding-only packets may sit between or inside frames and are skipped.
// Packets may arrive in any order, twice, or late. When a packet is
// missing, the frames from there on wait up to Wait() for it (NACK round
// trips); then the incomplete frame is lost, NeedKeyFrame turns true, and
// delta frames are dropped until a complete key frame arrives.
//
// Senders never retransmit padding, so a lost padding packet would cost a
// key frame if it were treated like lost media. The VP8 PictureID (RFC 7741
// §4.2; Chrome and pion number every frame) tells them apart: when the
// frame after a gap is the picture right after the last one finished, the
// gap held no frame data and is skipped at once (PaddingSkipped). Without
// PictureIDs such a gap costs the wait and a key frame.
//
// Not safe for concurrent use: one goroutine (the track's reader) owns a
// Video and calls all its methods.
type Video struct {
	cfg   VideoConfig
	r     ring
	evict func()
	rtt   time.Duration
	wait  time.Duration

	waitKey bool

	// The current loss event, from the first thing given up to the next
	// frame start, for counting the frames lost in it.
	inLoss       bool
	lossFrames   int // started frames dropped as lost in this event
	orphanFrames int // distinct timestamps among dropped packets whose frame start was never seen
	orphanTS     uint32
	orphanOK     bool

	// The last frame the buffer is finished with (released or dropped):
	// its PictureID, and its timestamp if the rest of it may still come.
	lastPic  uint16
	lastBits uint8
	dropTS   uint32
	dropOK   bool

	// Cursor: how far the state at head has been examined, so that each
	// Pop does not rescan. Valid while curHead == head. In gap mode,
	// [head, curPos) is missing slots, padding, or the rest of a dropped
	// frame; in frame mode [head, curPos) is the frame so far (curSize
	// bytes), all present.
	curHead int64
	curPos  int64
	curSize int
	curGap  bool

	deadline    int64
	hasDeadline bool

	out   []byte
	stats VideoStats
}

// NewVideo returns an empty Video.
func NewVideo(cfg VideoConfig) *Video {
	v := &Video{cfg: cfg.withDefaults(), waitKey: true, curHead: -1}
	v.r.init(v.cfg.MaxPackets, v.cfg.MaxBytes, 256)
	v.evict = v.evictHead
	v.setWait()
	return v
}

// SetRTT sets the round-trip time the wait is computed from, e.g. from RTCP
// receiver reports on the call's own sender or from the ICE candidate
// pair. d <= 0 returns to the configured InitialRTT.
func (v *Video) SetRTT(d time.Duration) {
	v.rtt = d
	v.setWait()
}

func (v *Video) setWait() {
	rtt := v.rtt
	if rtt <= 0 {
		rtt = v.cfg.InitialRTT
	}
	w := time.Duration(v.cfg.NACKRounds)*(rtt+v.cfg.NACKInterval) + v.cfg.JitterMargin
	v.wait = min(max(w, v.cfg.MinWait), v.cfg.MaxWait)
}

// Wait returns how long a missing packet is currently waited for.
func (v *Video) Wait() time.Duration { return v.wait }

// NeedKeyFrame reports whether the buffer is waiting for a key frame: from
// NewVideo until the first complete key frame, and from any loss of frame
// data until the next one. It turns true in the Pop that gives the data up.
// It is a level, not an edge: the caller sends a PLI while it is true, at
// the rate it chooses (a lost PLI is then simply sent again).
func (v *Video) NeedKeyFrame() bool { return v.waitKey }

// DropUntilKeyFrame is for a frame the caller threw away after Pop (its
// decryption failed, or the decoder rejected it): the delta frames after it
// cannot be decoded, so the buffer drops them (DeltaDropped) until a
// complete key frame, and NeedKeyFrame is true until then.
func (v *Video) DropUntilKeyFrame() { v.waitKey = true }

// Stats returns the counters.
func (v *Video) Stats() VideoStats {
	s := v.stats
	s.Held, s.HeldBytes = v.r.held, v.r.heldBytes
	return s
}

// NextDeadline returns when Pop should be called again if no packet comes
// before then: the moment a missing packet is given up. It is set by the
// last Pop that returned false; ok is false when nothing is waiting on a
// deadline (the buffer is empty, or waits for packets that have not been
// sent yet).
func (v *Video) NextDeadline() (time.Time, bool) {
	if !v.hasDeadline {
		return time.Time{}, false
	}
	return v.r.time(v.deadline), true
}

// Push adds a packet received at now. It copies what it keeps: p and its
// payload may be reused when Push returns. Malformed, duplicate and late
// packets are counted and dropped; nothing a peer sends makes it panic or
// grow past the configured bounds.
func (v *Video) Push(p *rtp.Packet, now time.Time) {
	if p == nil {
		return
	}
	v.stats.Packets++
	r := &v.r
	t := r.since(now)
	e, kind := r.admit(p.SequenceNumber, p.SSRC, t, v.evict)
	if kind == admitResync {
		v.resync()
		e, kind = r.admit(p.SequenceNumber, p.SSRC, t, v.evict)
	}
	switch kind {
	case admitDup:
		v.stats.Duplicates++
		return
	case admitLate:
		if len(p.Payload) == 0 {
			v.stats.Padding++
		} else {
			v.stats.Late++
		}
		return
	case admitFill:
		v.stats.Reordered++
	}

	var d vp8Desc
	var flags uint8
	n := 0
	switch {
	case len(p.Payload) == 0:
		flags = fPadding
		v.stats.Padding++
	default:
		var ok bool
		if d, ok = parseVP8(p.Payload); !ok {
			flags = fBad
			v.stats.Malformed++
			d = vp8Desc{}
		} else {
			n = len(p.Payload) - d.size
			if d.start {
				flags |= fStart
				// RFC 6386 §9.1: bit 0 of the frame tag is 0 for key frames.
				if p.Payload[d.size]&1 == 0 {
					flags |= fKey
				}
			}
			if p.Marker {
				flags |= fMarker
			}
		}
	}

	// MaxBytes: drop the oldest until the packet fits; if it does not fit
	// even alone, it is the oldest and goes itself.
	for r.heldBytes+n > r.maxHeld && r.head < e {
		v.evictHead()
	}
	if r.heldBytes+n > r.maxHeld {
		v.stats.Evicted++
		v.beginLoss(true)
		r.pass()
		return
	}

	s := r.at(e)
	var data []byte
	if n > 0 {
		data = r.buf(n)
		copy(data, p.Payload[d.size:])
	}
	s.ts, s.flags, s.pic, s.bits = p.Timestamp, flags, d.pic, d.picBits
	r.hold(s, data, t)
	if v.curGap && v.curHead == r.head && e < v.curPos && flags&fPadding == 0 {
		v.curPos = e // a gap the cursor had passed over is filled
	}
}

// Pop returns the next complete frame in decode order, if one can be
// released at now. Call it until it returns false after every Push and
// when NextDeadline passes.
func (v *Video) Pop(now time.Time) (VideoFrame, bool) {
	v.hasDeadline = false
	r := &v.r
	if !r.started {
		return VideoFrame{}, false
	}
	t := r.since(now)
	for r.head <= r.highest {
		s := r.at(r.head)
		if s.state == stMissing {
			pos := v.scanGap()
			if pos > r.highest {
				// Nothing after the gap is waiting for it (only padding
				// so far): no reason to give it up yet.
				return VideoFrame{}, false
			}
			if p := r.at(pos); p.flags&fStart != 0 {
				if v.consecutive(p) {
					// The frame before the gap is finished and the one
					// after it is the next picture: the gap held no frame
					// data, only padding, which is never retransmitted.
					v.skipTo(pos, true)
					continue
				}
				if v.waitKey && p.flags&fKey != 0 {
					// Nothing before a key frame matters while waiting
					// for one.
					v.beginLoss(true)
					v.skipTo(pos, false)
					continue
				}
			}
			if due := s.at + int64(v.wait); t < due {
				v.block(due)
				return VideoFrame{}, false
			}
			v.beginLoss(v.lastBits == 0)
			r.pass()
			continue
		}
		if s.flags&fPadding != 0 {
			r.passPadding()
			continue
		}
		if s.flags&fStart == 0 {
			if v.dropOK && s.ts == v.dropTS {
				r.pass() // the rest of a frame already dropped and counted
				continue
			}
			if v.holdFresh(t) {
				return VideoFrame{}, false
			}
			v.discard(s)
			r.pass()
			continue
		}

		// A frame starts at head.
		v.endLoss(s)
		v.dropOK = false
		pos, res := v.scanFrame()
		switch res {
		case scanPending:
			return VideoFrame{}, false
		case scanComplete:
			if s.flags&fKey == 0 && v.waitKey {
				if v.holdFresh(t) {
					return VideoFrame{}, false
				}
				v.setLast(s)
				v.stats.DeltaDropped++
				for r.head <= pos {
					r.pass()
				}
				continue
			}
			return v.release(pos), true
		case scanGap:
			if s.flags&fKey == 0 && v.waitKey {
				// Undecodable anyway: do not wait for its packets.
				if v.holdFresh(t) {
					return VideoFrame{}, false
				}
				v.dropFrame(pos, false)
				continue
			}
			if due := r.at(pos).at + int64(v.wait); t < due {
				v.block(due)
				return VideoFrame{}, false
			}
			v.dropFrame(pos, true)
		case scanBroken:
			v.dropFrame(pos, true)
		case scanOversize:
			v.stats.Oversized++
			v.dropFrame(pos, true)
		}
	}
	return VideoFrame{}, false
}

// scanFrame results.
const (
	scanPending  = iota // the frame's next packets have not arrived; nothing after them either
	scanComplete        // pos is the marker packet
	scanGap             // pos is missing
	scanBroken          // pos cannot continue the frame (new start, other timestamp, malformed)
	scanOversize        // pos would make the frame larger than MaxFrameSize
)

// scanFrame examines the frame starting at head, resuming at the cursor.
func (v *Video) scanFrame() (int64, int) {
	r := &v.r
	if v.curHead != r.head || v.curGap {
		v.curHead, v.curGap, v.curPos, v.curSize = r.head, false, r.head, 0
	}
	ts := r.at(r.head).ts
	for ; v.curPos <= r.highest; v.curPos++ {
		s := r.at(v.curPos)
		if s.state == stMissing {
			return v.curPos, scanGap
		}
		if v.curPos != r.head {
			if s.flags&fPadding != 0 {
				continue
			}
			if s.flags&(fBad|fStart) != 0 || s.ts != ts {
				return v.curPos, scanBroken
			}
		}
		if v.curSize+len(s.data) > v.cfg.MaxFrameSize {
			return v.curPos, scanOversize
		}
		v.curSize += len(s.data)
		if s.flags&fMarker != 0 {
			return v.curPos, scanComplete
		}
	}
	return v.curPos, scanPending
}

// scanGap returns the first slot from head that holds frame data (not
// missing, not padding, not the rest of a dropped frame), or highest+1.
func (v *Video) scanGap() int64 {
	r := &v.r
	if v.curHead != r.head || !v.curGap {
		v.curHead, v.curGap, v.curPos = r.head, true, r.head
	}
	for ; v.curPos <= r.highest; v.curPos++ {
		s := r.at(v.curPos)
		if s.state == stMissing || s.flags&fPadding != 0 {
			continue
		}
		if s.flags&fStart == 0 && v.dropOK && s.ts == v.dropTS {
			continue
		}
		break
	}
	return v.curPos
}

// release assembles the complete frame [head, end] and passes it.
func (v *Video) release(end int64) VideoFrame {
	r := &v.r
	s := r.at(r.head)
	f := VideoFrame{Timestamp: s.ts, KeyFrame: s.flags&fKey != 0}
	v.setLast(s)
	v.out = slices.Grow(v.out[:0], v.curSize)
	for r.head <= end {
		v.out = append(v.out, r.at(r.head).data...)
		r.pass()
	}
	f.Data = v.out
	if f.KeyFrame {
		v.waitKey = false
		v.stats.KeyFrames++
	}
	v.stats.FramesReleased++
	return f
}

// dropFrame drops the incomplete frame at head: its packets [head, end)
// are passed, and the rest of it, should it come, is recognised by its
// timestamp. lost: it counts as lost (and starts a loss event) rather than
// as a delta frame dropped while waiting for a key frame.
func (v *Video) dropFrame(end int64, lost bool) {
	r := &v.r
	s := r.at(r.head)
	if lost {
		v.beginLoss(true)
		v.lossFrames++
		v.stats.FramesLost++
	} else {
		v.stats.DeltaDropped++
	}
	v.setLast(s)
	v.dropTS, v.dropOK = s.ts, true
	// At least the start goes: a start packet larger than MaxFrameSize
	// on its own is oversized at head.
	for r.pass(); r.head < end; {
		r.pass()
	}
}

// discard accounts for a held media packet that is thrown away outside a
// complete frame (an orphan, or evicted); the caller passes it.
func (v *Video) discard(s *slot) {
	v.beginLoss(true)
	switch {
	case s.flags&fStart != 0:
		v.lossFrames++
		v.stats.FramesLost++
		v.setLast(s)
		v.dropTS, v.dropOK = s.ts, true
	case v.dropOK && s.ts == v.dropTS:
	case !v.orphanOK || s.ts != v.orphanTS:
		v.orphanFrames++
		v.stats.FramesLost++
		v.orphanTS, v.orphanOK = s.ts, true
	}
}

// evictHead drops the slot at head to respect a bound.
func (v *Video) evictHead() {
	r := &v.r
	s := r.at(r.head)
	switch {
	case s.state == stMissing:
		v.stats.Evicted++
		v.beginLoss(v.lastBits == 0)
	case s.flags&fPadding == 0:
		v.stats.Evicted++
		v.discard(s)
	}
	r.pass()
}

// resync empties the buffer at a discontinuity; the next packet starts a
// new window, and the decoder needs a key frame.
func (v *Video) resync() {
	r := &v.r
	for r.head <= r.highest {
		v.evictHead()
	}
	r.started = false
	v.waitKey = true
	v.dropOK = false
	v.stats.Resets++
}

// beginLoss starts (or continues) a loss event. definite: frame data was
// thrown away, so the decoder needs a key frame now. Otherwise only missing
// sequence numbers were given up, which may have been padding: when the
// PictureIDs can tell, endLoss decides at the next frame start.
func (v *Video) beginLoss(definite bool) {
	if definite {
		v.waitKey = true
	}
	if !v.inLoss {
		v.inLoss, v.lossFrames, v.orphanFrames, v.orphanOK = true, 0, 0, false
	}
}

// endLoss closes the loss event at the next frame start s and counts the
// frames that vanished in it.
func (v *Video) endLoss(s *slot) {
	if !v.inLoss {
		return
	}
	v.inLoss = false
	// Orphans were counted as they were dropped, one per timestamp; the
	// PictureIDs also count the frames of which nothing arrived.
	add := 0
	if d, ok := v.picGap(s); ok {
		add = max(d-v.orphanFrames, 0)
	} else if v.orphanFrames == 0 && v.lossFrames == 0 {
		add = 1 // something was lost, but no PictureIDs to say what
	}
	v.stats.FramesLost += uint64(add)
	if add > 0 {
		v.waitKey = true
	}
}

func (v *Video) setLast(s *slot) { v.lastPic, v.lastBits = s.pic, s.bits }

// picGap returns how many pictures lie between the last finished frame and
// s, when both carry PictureIDs of the same width and the distance is
// plausible (less than half the PictureID space).
func (v *Video) picGap(s *slot) (int, bool) {
	if v.lastBits == 0 || s.bits != v.lastBits {
		return 0, false
	}
	m := uint16(1)<<s.bits - 1
	d := int((s.pic - v.lastPic - 1) & m)
	if d > int(m/2) {
		return 0, false
	}
	return d, true
}

// consecutive reports whether s starts the picture right after the last
// finished frame.
func (v *Video) consecutive(s *slot) bool {
	d, ok := v.picGap(s)
	return ok && d == 0
}

// skipTo passes [head, pos): missing slots, padding and the rest of a
// dropped frame. padding: the missing slots are known to be padding.
func (v *Video) skipTo(pos int64, padding bool) {
	r := &v.r
	for r.head < pos {
		if padding && r.at(r.head).state == stMissing {
			v.stats.PaddingSkipped++
		}
		r.pass()
	}
}

// holdFresh reports whether to wait rather than discard something at head:
// until the window has existed for one wait, a packet from before the first
// one received (the key frame's start) may still arrive reordered.
func (v *Video) holdFresh(t int64) bool {
	if !v.r.fresh {
		return false
	}
	if due := v.r.startAt + int64(v.wait); t < due {
		v.block(due)
		return true
	}
	return false
}

func (v *Video) block(due int64) { v.deadline, v.hasDeadline = due, true }
