package jitter

import (
	"time"

	"github.com/pion/rtp"
)

// Audio defaults; AudioConfig documents each.
const (
	DefaultAudioHold       = 40 * time.Millisecond
	DefaultAudioMaxPackets = 512
	DefaultAudioMaxBytes   = 1 << 20
)

// AudioConfig configures an Audio. The zero value is the default; a zero or
// negative field takes its default.
type AudioConfig struct {
	// Hold is how long a gap is held open for a reordered packet to fill
	// it, counted from when a later packet showed the gap. Default 40 ms:
	// two 20 ms Opus packets. Audio is not retransmitted (NACK is
	// negotiated for video only), so only reordering can fill a gap, and
	// reordering on real paths rarely exceeds a packet interval; a longer
	// hold would add its length to the delay after every real loss, which
	// the decoder conceals anyway (Opus PLC, and in-band FEC from the next
	// packet: see AudioPacket.Missing).
	Hold time.Duration
	// MaxPackets bounds the packets held (rounded up to a power of two, at
	// most 16384). Default 512: 10 s of 20 ms packets.
	MaxPackets int
	// MaxBytes bounds the payload bytes held. Default 1 MiB; at least 64 KiB.
	MaxBytes int
}

func (c AudioConfig) withDefaults() AudioConfig {
	if c.Hold <= 0 {
		c.Hold = DefaultAudioHold
	}
	c.MaxPackets = ringSize(c.MaxPackets, DefaultAudioMaxPackets)
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultAudioMaxBytes
	}
	c.MaxBytes = max(c.MaxBytes, 64<<10)
	return c
}

// AudioPacket is a packet released by Audio.Pop.
type AudioPacket struct {
	// Payload is the packet's payload (one Opus packet, still
	// SimpleX-encrypted if the peer encrypts). It aliases the Audio's
	// reused buffer and is valid until the next call of any Audio method
	// except Stats and NextDeadline; copy it to keep it.
	Payload        []byte
	SequenceNumber uint16
	Timestamp      uint32
	// Missing is how many sequence numbers right before this packet were
	// given up (lost, too late, or evicted): a decoder can conceal them, or
	// decode the last of them from this packet's in-band FEC (RFC 6716
	// §2.1.7). Padding is not counted.
	// After a discontinuity (AudioStats.Resets) the count starts over.
	Missing int
}

// AudioStats are an Audio's counters since NewAudio.
type AudioStats struct {
	// Packets is every packet pushed.
	Packets uint64
	// Released counts packets returned by Pop.
	Released uint64
	// Lost counts sequence numbers given up (never arrived within Hold, or evicted).
	Lost uint64
	// Late counts packets that arrived after their slot was passed; they
	// are dropped, never played out of order.
	Late uint64
	// Duplicates counts packets received twice.
	Duplicates uint64
	// Reordered counts packets that filled a gap in time.
	Reordered uint64
	// Padding counts packets with an empty payload, which are dropped.
	Padding uint64
	// Evicted counts packets dropped, and gaps given up before Hold, to
	// respect MaxPackets or MaxBytes.
	Evicted uint64
	// Resets counts discontinuities (SSRC change, sequence jump beyond the window).
	Resets uint64
	// Held and HeldBytes are the packets and payload bytes held now.
	Held, HeldBytes int
}

// Audio releases audio packets in sequence order, holding a gap for a
// short time (Hold) so that a reordered packet can fill it. A packet whose
// slot was already passed is dropped as late.
//
// Not safe for concurrent use: one goroutine (the track's reader) owns an
// Audio and calls all its methods.
type Audio struct {
	cfg     AudioConfig
	r       ring
	evict   func()
	missing int

	deadline    int64
	hasDeadline bool

	out   []byte
	stats AudioStats
}

// NewAudio returns an empty Audio.
func NewAudio(cfg AudioConfig) *Audio {
	a := &Audio{cfg: cfg.withDefaults()}
	a.r.init(a.cfg.MaxPackets, a.cfg.MaxBytes, 64)
	a.evict = a.evictHead
	return a
}

// Stats returns the counters.
func (a *Audio) Stats() AudioStats {
	s := a.stats
	s.Held, s.HeldBytes = a.r.held, a.r.heldBytes
	return s
}

// NextDeadline returns when Pop should be called again if no packet comes
// before then (when the gap at the front is given up). It is set by the
// last Pop that returned false.
func (a *Audio) NextDeadline() (time.Time, bool) {
	if !a.hasDeadline {
		return time.Time{}, false
	}
	return a.r.time(a.deadline), true
}

// Push adds a packet received at now. It copies what it keeps.
func (a *Audio) Push(p *rtp.Packet, now time.Time) {
	if p == nil {
		return
	}
	a.stats.Packets++
	r := &a.r
	t := r.since(now)
	e, kind := r.admit(p.SequenceNumber, p.SSRC, t, a.evict)
	if kind == admitResync {
		for r.head <= r.highest {
			a.evictHead()
		}
		r.started = false
		a.missing = 0
		a.stats.Resets++
		e, kind = r.admit(p.SequenceNumber, p.SSRC, t, a.evict)
	}
	switch kind {
	case admitDup:
		a.stats.Duplicates++
		return
	case admitLate:
		a.stats.Late++
		return
	case admitFill:
		a.stats.Reordered++
	}
	n := len(p.Payload)
	var flags uint8
	if n == 0 {
		flags = fPadding
		a.stats.Padding++
	}
	for r.heldBytes+n > r.maxHeld && r.head < e {
		a.evictHead()
	}
	if r.heldBytes+n > r.maxHeld {
		a.stats.Evicted++
		a.missing++
		r.pass()
		return
	}
	s := r.at(e)
	var data []byte
	if n > 0 {
		data = r.buf(n)
		copy(data, p.Payload)
	}
	s.ts, s.flags = p.Timestamp, flags
	r.hold(s, data, t)
}

// Pop returns the next packet in sequence order, if it can be released at
// now: the next one has arrived, or the gap before it was held for Hold.
// Call it until it returns false after every Push and when NextDeadline passes.
func (a *Audio) Pop(now time.Time) (AudioPacket, bool) {
	a.hasDeadline = false
	r := &a.r
	if !r.started {
		return AudioPacket{}, false
	}
	t := r.since(now)
	for r.head <= r.highest {
		s := r.at(r.head)
		if s.state == stMissing {
			if due := s.at + int64(a.cfg.Hold); t < due {
				a.deadline, a.hasDeadline = due, true
				return AudioPacket{}, false
			}
			a.stats.Lost++
			a.missing++
			r.pass()
			continue
		}
		if s.flags&fPadding != 0 {
			r.pass()
			continue
		}
		a.out = append(a.out[:0], s.data...)
		pkt := AudioPacket{Payload: a.out, SequenceNumber: uint16(r.head), Timestamp: s.ts, Missing: a.missing}
		a.missing = 0
		a.stats.Released++
		r.pass()
		return pkt, true
	}
	return AudioPacket{}, false
}

// evictHead drops the slot at head to respect a bound.
func (a *Audio) evictHead() {
	r := &a.r
	s := r.at(r.head)
	switch {
	case s.state == stMissing:
		a.stats.Evicted++
		a.stats.Lost++
		a.missing++
	case s.flags&fPadding == 0:
		a.stats.Evicted++
		a.missing++
	}
	r.pass()
}
