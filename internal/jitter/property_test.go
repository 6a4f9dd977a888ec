package jitter

import (
	"bytes"
	"container/heap"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// The property test runs a closed-loop simulation per seed: a VP8 sender
// (frames of random sizes in RFC 7741 packets, key frames every N frames
// and on PLI, bursts of padding-only packets), a network (delay, jitter
// that reorders, random or bursty loss, duplicates, and NACK
// retransmissions that arrive about one RTT after the gap shows, and may be
// lost again), and a receiver that drives a Video the way the SDK's reading
// goroutine does (Pop after every packet and at NextDeadline, a PLI while
// NeedKeyFrame, rate-limited). Everything is seeded: a failure prints the
// scenario and seed, and
//
//	JITTER_SEED=<seed> go test -run 'TestVideoProperty/<scenario>' ./internal/jitter
//
// replays exactly that run. JITTER_SEEDS=<n> changes the number of seeds
// per scenario.

type scenario struct {
	name string

	frames     int
	keyEvery   [2]int // key frame interval, drawn per seed from [a, b]
	keySize    [2]int
	deltaSize  [2]int
	paddingP   float64 // probability of a padding burst after a frame
	picBits    []uint8 // drawn per seed
	cfg        VideoConfig
	setRTT     bool // tell the buffer the RTT
	rtt        time.Duration
	delay      time.Duration // one way
	jitter     time.Duration // uniform extra delay [0, jitter): reorders packets
	loss       float64       // random loss
	burst      bool          // Gilbert-Elliott loss instead
	dup        float64       // duplicate probability
	nack       float64       // probability that a NACK round gets a resend
	nackRounds int
	nackEvery  time.Duration // pion generator interval

	// expectations
	allFrames bool // every frame is released (reordering only)
	// recovered: when the network brought every lost packet back within
	// the wait, every frame is released; over all seeds, at least
	// minShare of the frames are.
	recovered bool
	minShare  float64
}

var scenarios = []scenario{
	{
		name: "reorder-dup", frames: 150, keyEvery: [2]int{30, 90}, keySize: [2]int{3000, 40000}, deltaSize: [2]int{100, 6000},
		paddingP: 0.15, picBits: []uint8{15, 15, 7, 0}, setRTT: true, rtt: 40 * time.Millisecond,
		delay: 20 * time.Millisecond, jitter: 60 * time.Millisecond, dup: 0.03, nack: 1, nackRounds: 3, nackEvery: 20 * time.Millisecond,
		allFrames: true,
	},
	{
		name: "loss5-nack", frames: 150, keyEvery: [2]int{30, 90}, keySize: [2]int{3000, 40000}, deltaSize: [2]int{100, 6000},
		paddingP: 0.1, picBits: []uint8{15, 15, 7}, setRTT: true, rtt: 100 * time.Millisecond,
		delay: 50 * time.Millisecond, jitter: 20 * time.Millisecond, loss: 0.05, dup: 0.01, nack: 1, nackRounds: 3, nackEvery: 20 * time.Millisecond,
		recovered: true, minShare: 0.95,
	},
	{
		name: "loss5-nack-rtt-unknown", frames: 150, keyEvery: [2]int{30, 90}, keySize: [2]int{3000, 40000}, deltaSize: [2]int{100, 6000},
		paddingP: 0.1, picBits: []uint8{15, 7}, rtt: 80 * time.Millisecond,
		delay: 40 * time.Millisecond, jitter: 20 * time.Millisecond, loss: 0.05, nack: 1, nackRounds: 3, nackEvery: 20 * time.Millisecond,
		recovered: true, minShare: 0.95,
	},
	{
		name: "bursty-nack", frames: 150, keyEvery: [2]int{30, 300}, keySize: [2]int{3000, 60000}, deltaSize: [2]int{100, 8000},
		paddingP: 0.2, picBits: []uint8{15, 7, 0}, setRTT: true, rtt: 120 * time.Millisecond,
		delay: 60 * time.Millisecond, jitter: 30 * time.Millisecond, burst: true, dup: 0.02, nack: 0.8, nackRounds: 2, nackEvery: 20 * time.Millisecond,
	},
	{
		name: "no-nack-late", frames: 150, keyEvery: [2]int{30, 90}, keySize: [2]int{3000, 40000}, deltaSize: [2]int{100, 6000},
		paddingP: 0.2, picBits: []uint8{15, 0}, rtt: 100 * time.Millisecond,
		delay: 50 * time.Millisecond, jitter: 400 * time.Millisecond, loss: 0.03, dup: 0.05,
	},
	{
		name: "tight-bounds", frames: 150, keyEvery: [2]int{10, 60}, keySize: [2]int{20000, 110000}, deltaSize: [2]int{100, 20000},
		paddingP: 0.2, picBits: []uint8{15, 0}, setRTT: true, rtt: 200 * time.Millisecond,
		cfg:   VideoConfig{MaxPackets: 64, MaxBytes: 64 << 10, MaxFrameSize: 100_000},
		delay: 100 * time.Millisecond, jitter: 50 * time.Millisecond, burst: true, dup: 0.02, nack: 0.9, nackRounds: 2, nackEvery: 20 * time.Millisecond,
	},
}

func seedCount(t *testing.T) int {
	if s := os.Getenv("JITTER_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("JITTER_SEEDS: %v", err)
		}
		return n
	}
	switch {
	case testing.Short():
		return 20
	case raceEnabled:
		return 50
	}
	return 500
}

func TestVideoProperty(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			var seeds []uint64
			if s := os.Getenv("JITTER_SEED"); s != "" {
				n, err := strconv.ParseUint(s, 10, 64)
				if err != nil {
					t.Fatalf("JITTER_SEED: %v", err)
				}
				seeds = []uint64{n}
			} else {
				for i := range seedCount(t) {
					seeds = append(seeds, uint64(i+1))
				}
			}
			var sent, released, lost, dropped, late, reordered, evicted, unrecovered int
			for _, seed := range seeds {
				r := simulate(sc, seed)
				if r.err != nil {
					t.Fatalf("scenario %s seed %d: %v\nreplay: JITTER_SEED=%d go test -run 'TestVideoProperty/%s$' ./internal/jitter",
						sc.name, seed, r.err, seed, sc.name)
				}
				sent += r.sent
				released += r.released
				st := r.stats
				lost += int(st.FramesLost)
				dropped += int(st.DeltaDropped)
				late += int(st.Late)
				reordered += int(st.Reordered)
				evicted += int(st.Evicted)
				unrecovered += r.unrecovered
			}
			share := float64(released) / float64(sent)
			t.Logf("%d seeds: %d frames sent, %d released (%.2f%%), lost %d, delta dropped %d; packets reordered-in-time %d, late %d, evicted %d; packets the network did not bring back in time %d",
				len(seeds), sent, released, 100*share, lost, dropped, reordered, late, evicted, unrecovered)
			if share < sc.minShare {
				t.Fatalf("released %.2f%% of the frames, want at least %.0f%%", 100*share, 100*sc.minShare)
			}
		})
	}
}

type simResult struct {
	sent, released int
	unrecovered    int // lost media packets not resent in time
	stats          VideoStats
	err            error
}

// Simulation events.
type event struct {
	at   time.Time
	n    int // tie-break: scheduling order
	kind int
	pkt  *rtp.Packet
	idx  int
}

const (
	evSend = iota
	evArrive
	evTimer
	evPLI
)

type eventQ []*event

func (q eventQ) Len() int { return len(q) }
func (q eventQ) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].n < q[j].n
}
func (q eventQ) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQ) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQ) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func uniform(rng *rand.Rand, d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rng.Int64N(int64(d)))
}

func between(rng *rand.Rand, r [2]int) int { return r[0] + rng.IntN(r[1]-r[0]+1) }

func simulate(sc scenario, seed uint64) (res simResult) {
	rng := rand.New(rand.NewPCG(seed, 0x6a177e5))
	var start time.Time // of the run, for traces
	tracing := os.Getenv("JITTER_TRACE") != ""
	trace := func(format string, a ...any) {
		if tracing {
			fmt.Printf(format+"\n", a...)
		}
	}
	fail := func(format string, a ...any) {
		if res.err == nil {
			res.err = fmt.Errorf(format, a...)
		}
	}

	// Sender.
	s := newSender(uint16(rng.Uint32()), rng.Uint32(), sc.picBits[rng.IntN(len(sc.picBits))])
	if rng.IntN(4) == 0 {
		s.seq = 65535 - uint16(rng.IntN(200)) // wrap early
		s.ts = 0xffffffff - uint32(rng.IntN(30000))
	}
	keyEvery := between(rng, sc.keyEvery)
	frames := make([][]byte, sc.frames)
	isKey := make([]bool, sc.frames)
	byTS := map[uint32]int{}
	pliPending := false
	const frameGap = time.Second / 30
	const pace = 500 * time.Microsecond

	// Receiver.
	v := NewVideo(sc.cfg)
	if sc.setRTT {
		v.SetRTT(sc.rtt)
	}
	wait := v.Wait()

	// Network: Gilbert-Elliott state for bursty loss.
	bad := false
	lossy := func() bool {
		if !sc.burst {
			return rng.Float64() < sc.loss
		}
		if bad {
			bad = rng.Float64() >= 0.3
		} else {
			bad = rng.Float64() < 0.02
		}
		if bad {
			return rng.Float64() < 0.8
		}
		return rng.Float64() < 0.005
	}

	var q eventQ
	n := 0
	schedule := func(at time.Time, kind int, p *rtp.Packet, idx int) {
		n++
		heap.Push(&q, &event{at: at, n: n, kind: kind, pkt: p, idx: idx})
	}
	// Lost media packets wait for the next packet that arrives: that is
	// when the receiver's NACK generator notices them.
	var pendingLost []*rtp.Packet
	transmit := func(p *rtp.Packet, sendAt time.Time, protect bool) {
		arrive := sendAt.Add(sc.delay)
		if !protect {
			arrive = arrive.Add(uniform(rng, sc.jitter))
			if lossy() {
				if len(p.Payload) > 0 { // senders keep no padding for retransmission
					pendingLost = append(pendingLost, p)
				}
				return
			}
		}
		schedule(arrive, evArrive, p, 0)
		if !protect && rng.Float64() < sc.dup {
			schedule(arrive.Add(uniform(rng, 10*time.Millisecond)), evArrive, p, 0)
		}
		for _, lp := range pendingLost {
			// The receiver noticed the gap when the first later packet
			// came: at arrive, or up to one jitter before it. A
			// retransmission after that plus the wait is too late.
			inTime := arrive.Add(-sc.jitter + wait)
			recovered := false
			// NACK round k: the generator's next tick, a round trip, and
			// (after the first) the sender's once-per-RTT resend limit.
			first := arrive.Add(uniform(rng, sc.nackEvery))
			for k := range sc.nackRounds {
				at := first.Add(time.Duration(k)*(sc.rtt+sc.nackEvery) + sc.rtt + uniform(rng, sc.jitter))
				if rng.Float64() >= sc.nack {
					continue
				}
				if lossy() {
					trace("   retransmission %d of seq %d lost", k, lp.SequenceNumber)
					continue
				}
				trace("   seq %d lost, resent round %d arrives %v", lp.SequenceNumber, k, at.Sub(start))
				schedule(at, evArrive, lp, 0)
				recovered = !at.After(inTime)
				break
			}
			if !recovered {
				res.unrecovered++
			}
		}
		pendingLost = pendingLost[:0]
	}

	cfg := v.cfg
	var lastPLI time.Time
	lastIdx := -1
	var lastSt VideoStats
	timerAt := time.Time{}
	collect := func(now time.Time) {
		for range 100000 {
			f, ok := v.Pop(now)
			if !ok {
				break
			}
			i, known := byTS[f.Timestamp]
			switch {
			case !known:
				fail("released a frame with timestamp %d that was never sent", f.Timestamp)
			case !bytes.Equal(f.Data, frames[i]):
				fail("frame %d (ts %d) released with different bytes (%d, want %d)", i, f.Timestamp, len(f.Data), len(frames[i]))
			case i <= lastIdx:
				fail("frame %d released after frame %d", i, lastIdx)
			case f.KeyFrame != isKey[i]:
				fail("frame %d: KeyFrame %v, sent %v", i, f.KeyFrame, isKey[i])
			case !f.KeyFrame && lastIdx != i-1:
				fail("delta frame %d released after frame %d: frames in between were lost", i, lastIdx)
			}
			trace("%v   release frame %d key %v", now.Sub(start), i, f.KeyFrame)
			lastIdx = i
			res.released++
		}
		st := v.Stats()
		if st.FramesLost != lastSt.FramesLost || st.DeltaDropped != lastSt.DeltaDropped {
			trace("   pop@%v: lost %d dropped %d needkey %v", now.Sub(start), st.FramesLost, st.DeltaDropped, v.NeedKeyFrame())
		}
		lastSt = st
		if st.Held > cfg.MaxPackets || st.HeldBytes > cfg.MaxBytes {
			fail("bounds: %d packets, %d bytes held", st.Held, st.HeldBytes)
		}
		if d, ok := v.NextDeadline(); ok {
			if !d.After(now) {
				fail("deadline %v is not after now %v", d, now)
			}
			if !d.Equal(timerAt) {
				timerAt = d
				schedule(d, evTimer, nil, 0)
			}
		}
		if v.NeedKeyFrame() && now.Sub(lastPLI) >= 300*time.Millisecond {
			lastPLI = now
			schedule(now.Add(sc.rtt/2), evPLI, nil, 0)
		}
	}

	start = t0.Add(time.Duration(rng.Int64N(int64(time.Hour))))
	schedule(start, evSend, nil, 0)
	steps := 0
	for q.Len() > 0 && res.err == nil {
		if steps++; steps > 10_000_000 {
			fail("simulation does not end")
			break
		}
		ev := heap.Pop(&q).(*event)
		switch ev.kind {
		case evSend:
			i := ev.idx
			key := i == 0 || i%keyEvery == 0 || pliPending
			pliPending = false
			size := between(rng, sc.deltaSize)
			if key {
				size = between(rng, sc.keySize)
			}
			if i == sc.frames-1 {
				size = min(size, 20000) // fits the tightest bounds
			}
			frames[i], isKey[i] = vp8Frame(rng, size, key), key
			byTS[s.ts] = i
			pkts := s.frame(frames[i])
			if rng.Float64() < sc.paddingP && i < sc.frames-1 {
				pkts = append(pkts, s.padding(1+rng.IntN(20))...)
			}
			// The first and the last frame arrive, without loss or jitter,
			// so that every frame is accounted for when the run ends.
			protect := i == 0 || i == sc.frames-1
			for j, p := range pkts {
				transmit(p, ev.at.Add(time.Duration(j)*pace), protect)
			}
			if i+1 < sc.frames {
				schedule(start.Add(time.Duration(i+1)*frameGap), evSend, nil, i+1)
			}
		case evArrive:
			trace("%v push seq %d ts-frame %d len %d marker %v", ev.at.Sub(start), ev.pkt.SequenceNumber, byTS[ev.pkt.Timestamp], len(ev.pkt.Payload), ev.pkt.Marker)
			before := v.Stats()
			v.Push(ev.pkt, ev.at)
			if after := v.Stats(); after.Late != before.Late {
				trace("   LATE")
			}
			collect(ev.at)
		case evTimer:
			if ev.at.Equal(timerAt) {
				collect(ev.at)
			}
		case evPLI:
			pliPending = true
		}
	}
	// The last frame is a complete key or delta frame; release what remains.
	collect(start.Add(time.Hour))
	res.sent = sc.frames
	res.stats = v.Stats()
	if res.err != nil {
		return res
	}
	st := res.stats
	if lastIdx != sc.frames-1 && (isKey[sc.frames-1] || !v.NeedKeyFrame()) {
		fail("the last frame (key %v) was not released; last released %d", isKey[sc.frames-1], lastIdx)
	}
	if st.Held != 0 {
		fail("%d packets still held at the end", st.Held)
	}
	if int(st.FramesReleased) != res.released {
		fail("FramesReleased %d, released %d", st.FramesReleased, res.released)
	}
	accounted := int(st.FramesReleased + st.DeltaDropped + st.FramesLost)
	switch {
	case s.picBits != 0 && st.Evicted == 0 && st.Resets == 0 && accounted != sc.frames:
		fail("accounting: released %d + delta dropped %d + lost %d != %d sent", st.FramesReleased, st.DeltaDropped, st.FramesLost, sc.frames)
	case int(st.FramesReleased+st.DeltaDropped) > sc.frames:
		fail("released %d + dropped %d > %d sent", st.FramesReleased, st.DeltaDropped, sc.frames)
	case accounted < sc.frames && st.FramesLost == 0:
		fail("frames went missing without a loss: %+v", st)
	}
	if sc.allFrames {
		if res.released != sc.frames || st.FramesLost != 0 || st.DeltaDropped != 0 || st.Late != 0 {
			fail("reordering alone: released %d of %d; %+v", res.released, sc.frames, st)
		}
	}
	if sc.recovered && res.unrecovered == 0 && (res.released != sc.frames || st.FramesLost != 0) {
		fail("every lost packet came back in time, but released %d of %d; %+v", res.released, sc.frames, st)
	}
	return res
}
