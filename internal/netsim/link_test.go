package netsim

import (
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests send plain UDP through the sides' simulated hosts (the same
// sockets pion gets) and run in a synctest bubble, so times are exact.

// udpPacket is what a receiving test socket saw.
type udpPacket struct {
	seq  uint32
	sent time.Time // the sender's clock, carried in the payload
	at   time.Time
	from *net.UDPAddr
}

// receiver reads a socket until it is closed.
type receiver struct {
	ch chan udpPacket
}

func receive(t *testing.T, c net.PacketConn) *receiver {
	t.Helper()
	r := &receiver{ch: make(chan udpPacket, 100000)}
	go func() {
		defer close(r.ch)
		buf := make([]byte, 2000)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			p := udpPacket{at: time.Now(), from: from.(*net.UDPAddr)}
			if n >= 12 {
				p.seq = binary.BigEndian.Uint32(buf)
				p.sent = time.Unix(0, int64(binary.BigEndian.Uint64(buf[4:])))
			}
			r.ch <- p
		}
	}()
	t.Cleanup(func() { _ = c.Close() })
	return r
}

// drain returns what arrived so far (call after synctest.Wait).
func (r *receiver) drain() []udpPacket {
	var out []udpPacket
	for {
		select {
		case p, ok := <-r.ch:
			if !ok {
				return out
			}
			out = append(out, p)
		default:
			return out
		}
	}
}

func sendSeq(t *testing.T, c net.PacketConn, seq uint32, size int, to net.Addr) {
	t.Helper()
	buf := make([]byte, max(size, 12))
	binary.BigEndian.PutUint32(buf, seq)
	binary.BigEndian.PutUint64(buf[4:], uint64(time.Now().UnixNano()))
	_, err := c.WriteTo(buf, to)
	require.NoError(t, err)
}

func sideSocket(t *testing.T, n *Net, s Side) net.PacketConn {
	t.Helper()
	c, err := n.sides[s].net.ListenPacket("udp4", "0.0.0.0:0")
	require.NoError(t, err)
	return c
}

// publicAddr is the address of a socket of a side without NAT.
func publicAddr(n *Net, s Side, c net.PacketConn) *net.UDPAddr {
	return &net.UDPAddr{IP: net.ParseIP(n.PublicIP(s)), Port: c.LocalAddr().(*net.UDPAddr).Port}
}

func newNet(t *testing.T, p Profile, seed int64) *Net {
	t.Helper()
	n, err := New(t, p, seed)
	require.NoError(t, err)
	return n
}

// blast sends count packets from a to dst, settling the network every
// 100 packets so that no receive queue overflows.
func blast(t *testing.T, a net.PacketConn, dst net.Addr, count int) {
	t.Helper()
	for i := range count {
		sendSeq(t, a, uint32(i), 100, dst)
		if i%100 == 99 {
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(time.Second)
	synctest.Wait()
}

func TestDelayIsExactInVirtualTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newNet(t, Profile{Delay: 250 * time.Millisecond}, 1)
		a, b := sideSocket(t, n, A), sideSocket(t, n, B)
		ra := receive(t, a)
		go func() { // echo
			buf := make([]byte, 100)
			for {
				k, from, err := b.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = b.WriteTo(buf[:k], from)
			}
		}()
		t.Cleanup(func() { _ = b.Close() })
		start := time.Now()
		sendSeq(t, a, 1, 20, publicAddr(n, B, b))
		p := <-ra.ch
		require.Equal(t, 500*time.Millisecond, p.at.Sub(start), "RTT = 2 × one-way delay")

		// The delay changes at run time.
		require.NoError(t, n.SetProfile(Profile{Delay: 40 * time.Millisecond}))
		start = time.Now()
		sendSeq(t, a, 2, 20, publicAddr(n, B, b))
		p = <-ra.ch
		require.Equal(t, 80*time.Millisecond, p.at.Sub(start))
		require.Equal(t, uint64(2), n.Stats().A.Delivered)
		require.Equal(t, uint64(2), n.Stats().B.Delivered)
	})
}

func TestJitterSpreadsDelayWithoutReordering(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const delay, jitter = 100 * time.Millisecond, 25 * time.Millisecond
		n := newNet(t, Profile{Delay: delay, Jitter: jitter}, 3)
		a, b := sideSocket(t, n, A), sideSocket(t, n, B)
		rb := receive(t, b)
		// Spaced further apart than the jitter spread: every packet gets its
		// own draw.
		for i := range 200 {
			sendSeq(t, a, uint32(i), 50, publicAddr(n, B, b))
			time.Sleep(60 * time.Millisecond)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		got := rb.drain()
		require.Len(t, got, 200)
		lo, hi := time.Hour, time.Duration(0)
		for _, p := range got {
			d := p.at.Sub(p.sent)
			lo, hi = min(lo, d), max(hi, d)
		}
		require.GreaterOrEqual(t, lo, delay-jitter)
		require.LessOrEqual(t, hi, delay+jitter)
		require.Less(t, lo, delay-jitter/2, "the low end of the spread is used")
		require.Greater(t, hi, delay+jitter/2, "the high end of the spread is used")

		// Back to back: jitter varies the delay but never reorders.
		for i := range 500 {
			sendSeq(t, a, uint32(1000+i), 50, publicAddr(n, B, b))
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		got = rb.drain()
		require.Len(t, got, 500)
		for i := 1; i < len(got); i++ {
			require.Greater(t, got[i].seq, got[i-1].seq)
		}
		require.Zero(t, n.Stats().A.Reordered)
	})
}

// lossRun sends count packets A→B under loss and returns which arrived.
func lossRun(t *testing.T, loss Loss, seed int64, count int) (arrived []bool, st LinkStats) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		n := newNet(t, Profile{Loss: loss}, seed)
		a, b := sideSocket(t, n, A), sideSocket(t, n, B)
		rb := receive(t, b)
		blast(t, a, publicAddr(n, B, b), count)
		arrived = make([]bool, count)
		for _, p := range rb.drain() {
			arrived[p.seq] = true
		}
		st = n.Stats().A
	})
	return arrived, st
}

func countLost(arrived []bool) (lost int, meanRun float64) {
	runs, run := 0, 0
	for _, ok := range arrived {
		if !ok {
			lost++
			run++
			continue
		}
		if run > 0 {
			runs++
			run = 0
		}
	}
	if run > 0 {
		runs++
	}
	if runs == 0 {
		return lost, 0
	}
	return lost, float64(lost) / float64(runs)
}

func TestRandomLossRateAndSeed(t *testing.T) {
	const count, p = 20000, 0.05
	arrived, st := lossRun(t, Loss{Random: p}, 42, count)
	lost, meanRun := countLost(arrived)
	sigma := math.Sqrt(count * p * (1 - p))
	require.InDelta(t, count*p, float64(lost), 5*sigma, "loss rate within 5σ of %v", p)
	require.Equal(t, uint64(lost), st.Lost, "the stats reflect the loss")
	require.Equal(t, uint64(count), st.Sent)
	require.Equal(t, uint64(count-lost), st.Delivered)
	require.Less(t, meanRun, 1.2, "independent losses rarely come in runs")

	again, _ := lossRun(t, Loss{Random: p}, 42, count)
	require.Equal(t, arrived, again, "same seed, same packets: same losses")
	other, _ := lossRun(t, Loss{Random: p}, 43, count)
	require.NotEqual(t, arrived, other, "another seed loses other packets")
}

func TestBurstyLossMakesBursts(t *testing.T) {
	const count = 20000
	loss := Loss{BurstEnter: 0.01, BurstExit: 0.2, BurstLoss: 1}
	arrived, st := lossRun(t, loss, 7, count)
	lost, meanRun := countLost(arrived)
	// Stationary share of the bad state: enter/(enter+exit) = 1/21.
	require.InDelta(t, 1.0/21, float64(lost)/count, 0.02)
	// A bad period lasts 1/exit = 5 packets on average (and all are lost).
	require.InDelta(t, 5, meanRun, 1.5, "losses come in bursts")
	require.Equal(t, st.Lost, st.BurstLost)
	require.Equal(t, uint64(lost), st.Lost)
}

func TestBandwidthCapAndQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rate = 1_000_000
		n := newNet(t, Profile{Bandwidth: rate, QueueLimit: 100 * time.Millisecond}, 1)
		a, b := sideSocket(t, n, A), sideSocket(t, n, B)
		rb := receive(t, b)
		// 1000 bytes on the wire per packet (972 + 28 header bytes), offered
		// at 2 Mbit/s for 4 s: twice the cap.
		const size, pps, secs = 1000 - ipv4UDPOverhead, 250, 4
		start := time.Now()
		for i := range pps * secs {
			sendSeq(t, a, uint32(i), size, publicAddr(n, B, b))
			time.Sleep(time.Second / pps)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		got := rb.drain()
		// Capacity is 125 packets/s; the queue adds at most 100 ms of them.
		require.InDelta(t, 125*secs+12, len(got), 3)
		inSteadyState := 0
		for _, p := range got {
			d := p.at.Sub(start)
			if d >= time.Second && d < 3*time.Second {
				inSteadyState++
			}
			// Queued no longer than the limit (plus its own transmission).
			require.LessOrEqual(t, p.at.Sub(p.sent), 100*time.Millisecond+8*time.Millisecond)
		}
		require.InDelta(t, 250, inSteadyState, 2, "2 s at 1 Mbit/s of 8000-bit packets")
		st := n.Stats().A
		require.Equal(t, uint64(pps*secs-len(got)), st.QueueDrops)
	})
}

func TestReorderHoldsPacketsBackPastThree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const count, p = 2000, 0.1
		n := newNet(t, Profile{Delay: 10 * time.Millisecond, Reorder: p}, 5)
		a, b := sideSocket(t, n, A), sideSocket(t, n, B)
		rb := receive(t, b)
		for i := range count {
			sendSeq(t, a, uint32(i), 50, publicAddr(n, B, b))
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		got := rb.drain()
		require.Len(t, got, count, "reordering loses nothing")
		late := 0
		var maxSeq uint32
		for i, pk := range got {
			if i > 0 && pk.seq < maxSeq {
				late++
				overtaken := 0
				for _, q := range got[:i] {
					if q.seq > pk.seq {
						overtaken++
					}
				}
				require.Equal(t, reorderDepth, overtaken, "packet %d", pk.seq)
			}
			maxSeq = max(maxSeq, pk.seq)
		}
		sigma := math.Sqrt(count * p * (1 - p))
		require.InDelta(t, count*p, float64(late), 5*sigma)
		require.Equal(t, uint64(late), n.Stats().A.Reordered)
	})
}

func TestLinkDownDropsBothWays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newNet(t, Profile{Delay: 20 * time.Millisecond}, 1)
		a, b := sideSocket(t, n, A), sideSocket(t, n, B)
		ra, rb := receive(t, a), receive(t, b)
		toA, toB := publicAddr(n, A, a), publicAddr(n, B, b)
		exchange := func(seq uint32) (gotA, gotB int) {
			sendSeq(t, a, seq, 20, toB)
			sendSeq(t, b, seq, 20, toA)
			time.Sleep(time.Second)
			synctest.Wait()
			return len(ra.drain()), len(rb.drain())
		}
		gotA, gotB := exchange(1)
		require.Equal(t, [2]int{1, 1}, [2]int{gotA, gotB})

		// A packet in flight when the link goes down is lost too.
		sendSeq(t, a, 2, 20, toB)
		time.Sleep(10 * time.Millisecond)
		n.SetLinkUp(A, false)
		gotA, gotB = exchange(3)
		require.Equal(t, [2]int{0, 0}, [2]int{gotA, gotB})
		st := n.Stats().A
		require.Equal(t, uint64(2), st.DownDrops, "sent while down, and in flight")
		require.Equal(t, uint64(1), st.InDrops)

		n.SetLinkUp(A, true)
		gotA, gotB = exchange(4)
		require.Equal(t, [2]int{1, 1}, [2]int{gotA, gotB})
	})
}

// natProbe reports, for a side-A socket behind kind, the mapped addresses
// it gets towards two server ports and whether unsolicited packets from
// the server's IP on a third port and from another IP (B) get in.
func natProbe(t *testing.T, kind NATKind) (mapped1, mapped2 *net.UDPAddr, fromSameIP, fromOtherIP bool) {
	synctest.Test(t, func(t *testing.T) {
		n := newNet(t, Profile{NATA: kind, TURN: true}, 1)
		srv := func(port int) (net.PacketConn, *receiver) {
			c, err := n.server.ListenPacket("udp4", fmt.Sprintf("%s:%d", turnIP, port))
			require.NoError(t, err)
			return c, receive(t, c)
		}
		s1, r1 := srv(4001)
		_, r2 := srv(4002)
		s3, _ := srv(4003)
		b := sideSocket(t, n, B)
		a := sideSocket(t, n, A)
		ra := receive(t, a)
		sendSeq(t, a, 1, 20, s1.LocalAddr())
		sendSeq(t, a, 2, 20, &net.UDPAddr{IP: net.ParseIP(turnIP), Port: 4002})
		time.Sleep(time.Second)
		synctest.Wait()
		p1, p2 := r1.drain(), r2.drain()
		require.Len(t, p1, 1)
		require.Len(t, p2, 1)
		mapped1, mapped2 = p1[0].from, p2[0].from

		sendSeq(t, s3, 3, 20, mapped1)
		time.Sleep(time.Second)
		synctest.Wait()
		fromSameIP = len(ra.drain()) == 1
		sendSeq(t, b, 4, 20, mapped1)
		time.Sleep(time.Second)
		synctest.Wait()
		fromOtherIP = len(ra.drain()) == 1
	})
	return mapped1, mapped2, fromSameIP, fromOtherIP
}

func TestNATKinds(t *testing.T) {
	for _, tc := range []struct {
		kind                    NATKind
		sameMapping, sameIP, ip bool
	}{
		{NoNAT, true, true, true},
		{NATEndpointIndependent, true, true, true},
		{NATAddressDependent, true, true, false},
		{NATAddressPortDependent, true, false, false},
		{NATSymmetric, false, false, false},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			m1, m2, sameIP, otherIP := natProbe(t, tc.kind)
			require.Equal(t, publicIP[A], m1.IP.String(), "the side appears with its public address")
			require.Equal(t, tc.sameMapping, m1.String() == m2.String(), "mapping %v vs %v", m1, m2)
			require.Equal(t, tc.sameIP, sameIP, "unsolicited packet from the contacted IP, another port")
			require.Equal(t, tc.ip, otherIP, "unsolicited packet from another IP")
		})
	}
}

func TestRebindChangesSourceAddress(t *testing.T) {
	for _, kind := range []NATKind{NoNAT, NATEndpointIndependent, NATAddressPortDependent, NATSymmetric} {
		t.Run(kind.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := newNet(t, Profile{NATA: kind, Delay: 5 * time.Millisecond}, 1)
				a, b := sideSocket(t, n, A), sideSocket(t, n, B)
				ra, rb := receive(t, a), receive(t, b)
				localBefore := a.LocalAddr().String()
				sendSeq(t, a, 1, 20, publicAddr(n, B, b))
				time.Sleep(time.Second)
				synctest.Wait()
				before := rb.drain()
				require.Len(t, before, 1)

				require.NoError(t, n.Rebind(A))
				require.Equal(t, localBefore, a.LocalAddr().String(), "pion's socket keeps its address")
				sendSeq(t, a, 2, 20, publicAddr(n, B, b))
				time.Sleep(time.Second)
				synctest.Wait()
				after := rb.drain()
				require.Len(t, after, 1)
				oldAddr, newAddr := before[0].from, after[0].from
				require.NotEqual(t, oldAddr.String(), newAddr.String(), "the peer sees a new source address")
				require.True(t, oldAddr.IP.Equal(newAddr.IP), "same public IP")

				sendSeq(t, b, 3, 20, oldAddr)
				time.Sleep(time.Second)
				synctest.Wait()
				require.Empty(t, ra.drain(), "the old address is dead")
				sendSeq(t, b, 4, 20, newAddr)
				time.Sleep(time.Second)
				synctest.Wait()
				require.Len(t, ra.drain(), 1, "the new address works")
			})
		})
	}
}

func TestProfileValidation(t *testing.T) {
	for _, p := range []Profile{
		{Loss: Loss{Random: 1.5}},
		{Loss: Loss{Random: math.NaN()}},
		{Loss: Loss{BurstEnter: 0.1}},
		{Reorder: -0.1},
		{Delay: -time.Second},
		{Bandwidth: -1},
		{NATA: NATKind(99)},
	} {
		synctest.Test(t, func(t *testing.T) {
			_, err := New(t, p, 1)
			require.Error(t, err, "%+v", p)
		})
	}
	synctest.Test(t, func(t *testing.T) {
		n := newNet(t, Profile{Name: "x", Delay: time.Millisecond}, 1)
		require.Error(t, n.SetProfile(Profile{Jitter: -1}))
		require.NoError(t, n.SetProfile(Profile{Name: "y", Delay: 2 * time.Millisecond, NATA: NATSymmetric}))
		got := n.Profile()
		require.Equal(t, "x", got.Name, "name, NATs and TURN stay")
		require.Equal(t, NoNAT, got.NATA)
		require.Equal(t, 2*time.Millisecond, got.Delay)
	})
}

func TestUplinkInFlightIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newNet(t, Profile{Delay: time.Second}, 1)
		a, b := sideSocket(t, n, A), sideSocket(t, n, B)
		t.Cleanup(func() { _ = b.Close() })
		const extra = 1000
		for i := range maxInFlight + extra {
			sendSeq(t, a, uint32(i), 12, publicAddr(n, B, b))
		}
		st := n.Stats().A
		require.Equal(t, uint64(maxInFlight), st.InFlight)
		require.Equal(t, uint64(extra), st.QueueDrops)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		st = n.Stats().A
		require.Zero(t, st.InFlight)
		require.Equal(t, uint64(maxInFlight), st.Delivered)
	})
}

func TestSetProfileChangesLossAtRunTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Enter the bad state at once and (practically) never leave it.
		n := newNet(t, Profile{Loss: Loss{BurstEnter: 1, BurstExit: 1e-9}}, 1)
		a, b := sideSocket(t, n, A), sideSocket(t, n, B)
		rb := receive(t, b)
		blast(t, a, publicAddr(n, B, b), 500)
		require.Empty(t, rb.drain(), "everything lost in the bad state")
		require.NoError(t, n.SetProfile(Profile{}))
		blast(t, a, publicAddr(n, B, b), 500)
		require.Len(t, rb.drain(), 500, "the burst model is gone, and its state with it")
		require.Equal(t, uint64(500), n.Stats().A.BurstLost)
	})
}
