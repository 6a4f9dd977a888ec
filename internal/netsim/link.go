package netsim

import (
	"container/heap"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

const (
	// reorderDepth is how many later packets overtake a packet that Reorder
	// holds back.
	reorderDepth = 3
	// reorderMaxHold bounds the hold when the side stops sending.
	reorderMaxHold = 100 * time.Millisecond
	// defaultQueueLimit is Profile.QueueLimit's zero value.
	defaultQueueLimit = 200 * time.Millisecond
	// ipv4UDPOverhead is what a packet costs on the wire beyond its payload
	// (RFC 791 and RFC 768 headers), counted against Bandwidth.
	ipv4UDPOverhead = 28
	// maxInFlight bounds an uplink without a bandwidth cap (where
	// QueueLimit does not apply): a sender that outpaces Delay by this many
	// packets has the excess dropped as queue drops.
	maxInFlight = 1 << 16
)

// packet is a datagram on an uplink between the side's write and its
// delivery to the simulated network.
type packet struct {
	c    *conn
	data []byte
	dst  *net.UDPAddr
	seq  uint64    // order of sending on this uplink
	at   time.Time // delivery time
	hold int       // > 0 while held back for reordering: later deliveries still needed
	idx  int       // position in the uplink's heap
}

// uplink impairs the packets one side sends. Senders call send from any
// goroutine; one goroutine (run) delivers the packets whose time has come.
// Randomness comes from one seeded generator drawn a fixed number of times
// per packet, so the n-th packet's fate depends only on the seed, the
// stream and n.
type uplink struct {
	mu       sync.Mutex
	p        Profile
	rng      *rand.Rand
	bad      bool      // Gilbert-Elliott state
	busy     time.Time // when the bandwidth cap finishes the queued packets
	last     time.Time // delivery time of the latest packet not held back
	seq      uint64
	maxSeq   uint64 // 1 + highest seq delivered so far
	q        packetHeap
	held     []*packet
	down     bool
	closed   bool
	st       LinkStats
	wake     chan struct{}
	done     chan struct{}
	wg       sync.WaitGroup
	running  bool
	closeOne sync.Once
}

func newUplink(p Profile, seed, stream uint64) *uplink {
	return &uplink{
		p:    p,
		rng:  rand.New(rand.NewPCG(seed, stream)),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
}

// start runs the delivery goroutine. It is separate from newUplink so that
// New can fail before any goroutine exists.
func (l *uplink) start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running = true
	l.wg.Add(1)
	go l.run()
}

// send takes a packet the side wrote (data is the uplink's own copy) and
// decides its fate: dropped now, delivered now, or scheduled.
func (l *uplink) send(c *conn, data []byte, dst *net.UDPAddr) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.st.Sent++
	// Always five draws, in this order, whatever the outcome.
	uState, uRandom, uBurst, uJitter, uReorder := l.rng.Float64(), l.rng.Float64(), l.rng.Float64(), l.rng.Float64(), l.rng.Float64()
	if l.down {
		l.st.DownDrops++
		l.mu.Unlock()
		return
	}
	loss := l.p.Loss
	switch {
	case loss.BurstEnter == 0: // no burst model (SetProfile may have removed it)
		l.bad = false
	case l.bad:
		l.bad = uState >= loss.BurstExit
	default:
		l.bad = uState < loss.BurstEnter
	}
	burstLoss := loss.BurstLoss
	if burstLoss == 0 {
		burstLoss = 1
	}
	switch {
	case uRandom < loss.Random:
		l.st.Lost++
		l.mu.Unlock()
		return
	case l.bad && uBurst < burstLoss:
		l.st.Lost++
		l.st.BurstLost++
		l.mu.Unlock()
		return
	}

	if len(l.q) >= maxInFlight {
		l.st.QueueDrops++
		l.mu.Unlock()
		return
	}
	now := time.Now()
	depart := now
	if l.p.Bandwidth > 0 {
		start := now
		if l.busy.After(now) {
			start = l.busy
		}
		limit := l.p.QueueLimit
		if limit == 0 {
			limit = defaultQueueLimit
		}
		if start.Sub(now) > limit {
			l.st.QueueDrops++
			l.mu.Unlock()
			return
		}
		bits := int64(len(data)+ipv4UDPOverhead) * 8
		l.busy = start.Add(time.Duration(bits * int64(time.Second) / int64(l.p.Bandwidth)))
		depart = l.busy
	}
	delay := l.p.Delay
	if l.p.Jitter > 0 {
		delay += time.Duration((2*uJitter - 1) * float64(l.p.Jitter))
		delay = max(delay, 0)
	}
	// Jitter does not reorder: a packet never overtakes the one sent before
	// it (see Profile.Jitter).
	at := depart.Add(delay)
	if at.Before(l.last) {
		at = l.last
	}
	l.last = at
	pk := &packet{c: c, data: data, dst: dst, seq: l.seq, at: at}
	l.seq++
	if uReorder < l.p.Reorder {
		pk.hold = reorderDepth
		pk.at = pk.at.Add(reorderMaxHold)
		l.held = append(l.held, pk)
	}
	if pk.hold == 0 && len(l.q) == 0 && !pk.at.After(now) {
		// Nothing to wait for: deliver from the sender's goroutine, as vnet
		// itself does, without a hop through run.
		out := l.deliverLocked(pk, nil)
		l.mu.Unlock()
		writeAll(out)
		return
	}
	heap.Push(&l.q, pk)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// deliverLocked accounts for pk leaving the uplink and appends to out what
// must be written now: pk (unless the link is down) and any held packets
// that pk's delivery releases. The caller holds l.mu.
func (l *uplink) deliverLocked(pk *packet, out []*packet) []*packet {
	release := pk.hold == 0
	if pk.hold > 0 { // its maximum hold expired
		l.unhold(pk)
	}
	out = l.emitLocked(pk, out)
	if !release {
		return out
	}
	for i := 0; i < len(l.held); {
		h := l.held[i]
		if h.seq < pk.seq { // only packets sent later overtake h
			h.hold--
		}
		if h.hold > 0 {
			i++
			continue
		}
		l.held = append(l.held[:i], l.held[i+1:]...)
		heap.Remove(&l.q, h.idx)
		out = l.emitLocked(h, out)
	}
	return out
}

func (l *uplink) unhold(pk *packet) {
	pk.hold = 0
	for i, h := range l.held {
		if h == pk {
			l.held = append(l.held[:i], l.held[i+1:]...)
			return
		}
	}
}

func (l *uplink) emitLocked(pk *packet, out []*packet) []*packet {
	if l.down {
		l.st.DownDrops++
		return out
	}
	l.st.Delivered++
	if pk.seq+1 < l.maxSeq {
		l.st.Reordered++
	}
	l.maxSeq = max(l.maxSeq, pk.seq+1)
	return append(out, pk)
}

func writeAll(out []*packet) {
	for _, pk := range out {
		pk.c.deliver(pk.data, pk.dst)
	}
}

// run delivers scheduled packets until close.
func (l *uplink) run() {
	defer l.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		l.mu.Lock()
		now := time.Now()
		var out []*packet
		for len(l.q) > 0 && !l.q[0].at.After(now) {
			out = l.deliverLocked(heap.Pop(&l.q).(*packet), out)
		}
		next := time.Duration(-1)
		if len(l.q) > 0 {
			next = l.q[0].at.Sub(now)
		}
		l.mu.Unlock()
		writeAll(out)
		if next >= 0 {
			timer.Reset(next)
		} else {
			timer.Stop()
		}
		select {
		case <-l.done:
			return
		case <-l.wake:
		case <-timer.C:
		}
	}
}

func (l *uplink) setUp(up bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = !up
}

// acceptInbound is what the side's sockets ask for each received packet:
// a packet arriving while the link is down is counted and discarded.
func (l *uplink) acceptInbound() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		l.st.InDrops++
	}
	return !l.down
}

func (l *uplink) setProfile(p Profile) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p = p
}

func (l *uplink) stats() LinkStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.st
	st.InFlight = uint64(len(l.q))
	return st
}

// close drops whatever is still on the uplink and stops run.
func (l *uplink) close() {
	l.mu.Lock()
	l.closed = true
	l.q, l.held = nil, nil
	running := l.running
	l.mu.Unlock()
	l.closeOne.Do(func() { close(l.done) })
	if running {
		l.wg.Wait()
	}
}

// packetHeap orders packets by delivery time, then by sending order.
type packetHeap []*packet

func (h packetHeap) Len() int { return len(h) }
func (h packetHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h packetHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *packetHeap) Push(x any) {
	pk := x.(*packet)
	pk.idx = len(*h)
	*h = append(*h, pk)
}
func (h *packetHeap) Pop() any {
	old := *h
	pk := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	pk.idx = -1
	return pk
}
