package jitter

import "time"

// Slot states. A slot describes one extended sequence number (slot.ext).
// Inside the window [head, highest] every slot is stMissing or stHeld;
// behind head a slot remembers, until it is reused, whether its packet came
// (stDone) or was given up (stGone), which tells a late retransmission from
// a duplicate.
const (
	stFree    uint8 = iota // never used
	stMissing              // in the window, not received yet
	stHeld                 // in the window, received, not released yet
	stDone                 // behind head: was received
	stGone                 // behind head: never received, given up
)

// Slot flags, set when a packet is stored.
const (
	fPadding uint8 = 1 << iota // empty payload: only takes a sequence number
	fBad                       // malformed VP8 payload descriptor
	fStart                     // S=1, PID=0: first packet of a VP8 frame
	fMarker                    // RTP marker: last packet of a frame
	fKey                       // start packet of a VP8 key frame
)

type slot struct {
	ext   int64  // extended sequence number this slot describes
	at    int64  // ns since ring.base: arrival (stHeld) or when first known missing (stMissing)
	data  []byte // stHeld: the payload (VP8: without the descriptor), from the ring's free list
	ts    uint32 // RTP timestamp
	pic   uint16 // VP8 PictureID, if picBits > 0
	bits  uint8  // PictureID width: 0 (none), 7 or 15
	state uint8
	flags uint8
}

// admit results.
type admitKind uint8

const (
	admitNew    admitKind = iota // beyond highest: the slot is prepared, the caller stores
	admitFill                    // a missing slot inside the window: reordered or retransmitted
	admitDup                     // already received
	admitLate                    // its slot was passed (released or given up) before it came
	admitResync                  // a discontinuity: the caller flushes and starts over
)

const (
	// minRing is the ring's starting length; it grows by doubling up to the
	// configured maximum, so a quiet track does not pay for a large ring.
	minRing = 512
	// maxRing keeps the window below half the 16-bit sequence space, where
	// unwrapping a sequence number stops being unambiguous (RFC 3550 A.1).
	maxRing = 1 << 14
	// resyncAfter is how many consecutive-sequence packets far behind the
	// window (older than the ring remembers) it takes to decide that the
	// sender restarted its sequence numbers lower, rather than that a few
	// stale packets arrived.
	resyncAfter = 16
	// poolBufCap is the size class of recycled payload buffers: every
	// payload of a packet within a 1500-byte MTU fits (pion reads 1460).
	poolBufCap = 1536
)

// ring is the sequence-indexed packet store shared by Video and Audio.
type ring struct {
	slots   []slot
	mask    int64
	maxLen  int
	maxHeld int // bytes

	head, highest int64 // window: [head, highest]; empty when head > highest
	started       bool
	fresh         bool  // nothing but padding has left the window yet
	startAt       int64 // when the window began (ring clock)
	ssrc          uint32
	base          time.Time
	haveBase      bool

	held, heldBytes int

	oldRun  int // consecutive far-old packets
	oldNext uint16

	pool    [][]byte
	poolMax int
}

func (r *ring) init(maxLen, maxBytes, poolMax int) {
	n := min(minRing, maxLen)
	r.slots = make([]slot, n)
	r.mask = int64(n - 1)
	r.maxLen = maxLen
	r.maxHeld = maxBytes
	r.poolMax = poolMax
	// The free list grows as buffers come back (release): a buffer that
	// keeps up holds one or two packets, and 64 empty entries of an
	// audio receiver cost 1.5 KB a call (BENCHMARKS.md, Capacity).
	r.pool = nil
}

func (r *ring) at(e int64) *slot { return &r.slots[e&r.mask] }

// since converts a time to the ring's clock: ns since the first packet. It
// uses time.Time.Sub, so the monotonic clock when the caller passes
// time.Now().
func (r *ring) since(now time.Time) int64 {
	if !r.haveBase {
		r.base, r.haveBase = now, true
	}
	return int64(now.Sub(r.base))
}

func (r *ring) time(t int64) time.Time { return r.base.Add(time.Duration(t)) }

// begin starts a window at seq. After a resync the extended numbers
// continue far above everything the ring remembers, so no stale slot can
// match a new packet.
func (r *ring) begin(seq uint16, ssrc uint32) {
	e := int64(1<<40) | int64(seq)
	if r.highest != 0 {
		e = (r.highest+1<<17)&^0xffff | int64(seq)
	}
	r.head, r.highest = e, e-1
	r.started, r.fresh, r.ssrc = true, true, ssrc
	r.oldRun = 0
}

// prep makes the slot of e a fresh missing slot noticed at t.
func (r *ring) prep(e, t int64) {
	s := r.at(e)
	*s = slot{ext: e, at: t, state: stMissing}
}

// ensure grows the ring so that need slots fit, if the bound allows.
func (r *ring) ensure(need int64) {
	if need <= int64(len(r.slots)) || len(r.slots) >= r.maxLen {
		return
	}
	n := len(r.slots)
	for int64(n) < need && n < r.maxLen {
		n *= 2
	}
	old, oldMask := r.slots, r.mask
	r.slots, r.mask = make([]slot, n), int64(n-1)
	// Only the last len(old) numbers can be in the old ring; they stay
	// distinct in the larger one.
	for x := r.highest - int64(len(old)) + 1; x <= r.highest; x++ {
		if s := &old[x&oldMask]; s.ext == x && s.state != stFree {
			*r.at(x) = *s
		}
	}
}

// admit finds the slot for an incoming sequence number. For admitNew and
// admitFill the slot of e is stMissing and the caller stores into it.
// evict is called to drop the oldest slot (at head) when the window must
// slide to make room; it must advance head by one.
func (r *ring) admit(seq uint16, ssrc uint32, t int64, evict func()) (int64, admitKind) {
	if !r.started {
		r.begin(seq, ssrc)
		r.startAt = t
	}
	if ssrc != r.ssrc {
		return 0, admitResync
	}
	e := r.highest + int64(int16(seq-uint16(r.highest)))
	if e < r.head {
		// Before anything but padding left the window, an older packet is one that
		// was reordered ahead of the first: extend the window back.
		if r.fresh && r.highest-e < int64(r.maxLen) {
			r.ensure(r.highest - e + 1)
			if r.highest-e < int64(len(r.slots)) {
				for x := e; x < r.head; x++ {
					if s := r.at(x); s.ext == x && s.state == stDone {
						// Padding passed while fresh (see passPadding):
						// back in the window, as it was.
						s.state, s.at = stHeld, t
						r.held++
						continue
					}
					r.prep(x, t)
				}
				r.head = e
				return e, admitFill
			}
		}
		if r.head-e >= int64(len(r.slots)) {
			// Older than the ring remembers. A run of these in sequence
			// is a sender that restarted its numbering lower.
			if r.oldRun > 0 && seq == r.oldNext {
				r.oldRun++
			} else {
				r.oldRun = 1
			}
			r.oldNext = seq + 1
			if r.oldRun >= resyncAfter {
				return e, admitResync
			}
			return e, admitLate
		}
		r.oldRun = 0
		if s := r.at(e); s.ext == e && s.state == stDone {
			return e, admitDup
		}
		return e, admitLate
	}
	r.oldRun = 0
	if e <= r.highest {
		if r.at(e).state == stHeld {
			return e, admitDup
		}
		return e, admitFill
	}
	if e-r.highest >= int64(r.maxLen) {
		return e, admitResync // a jump no window could hold
	}
	r.ensure(e - r.head + 1)
	for e-r.head >= int64(len(r.slots)) {
		if r.head > r.highest {
			r.head = e - int64(len(r.slots)) + 1
			break
		}
		evict()
	}
	for x := max(r.highest+1, r.head); x <= e; x++ {
		r.prep(x, t)
	}
	r.highest = e
	return e, admitNew
}

// buf returns a payload buffer of length n, recycled when it fits the size class.
func (r *ring) buf(n int) []byte {
	if n <= poolBufCap {
		if k := len(r.pool); k > 0 {
			b := r.pool[k-1]
			r.pool = r.pool[:k-1]
			return b[:n]
		}
		return make([]byte, n, poolBufCap)
	}
	return make([]byte, n)
}

func (r *ring) hold(s *slot, data []byte, t int64) {
	s.data, s.at, s.state = data, t, stHeld
	r.held++
	r.heldBytes += len(data)
}

// release drops a held slot's payload (the slot stays stHeld until done).
func (r *ring) release(s *slot) {
	if s.state != stHeld {
		return
	}
	r.held--
	r.heldBytes -= len(s.data)
	if cap(s.data) == poolBufCap && len(r.pool) < r.poolMax {
		r.pool = append(r.pool, s.data[:0])
	}
	s.data = nil
}

// pass moves head over its slot: a held packet is done (its payload
// recycled), a missing one is given up.
func (r *ring) pass() {
	s := r.at(r.head)
	if s.state == stHeld {
		r.release(s)
		s.state = stDone
	} else {
		s.state = stGone
	}
	r.head++
	r.fresh = false
}

// passPadding passes a held padding packet at head without ending the
// fresh state: a media packet reordered ahead of it may still extend the
// window back over it.
func (r *ring) passPadding() {
	s := r.at(r.head)
	r.release(s)
	s.state = stDone
	r.head++
}
