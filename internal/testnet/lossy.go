package testnet

import (
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Impairment is what a LossyProxy does to the packets clients send to the
// server: a one-way delay spread by jitter without reordering (a FIFO, as a
// real path), random loss, and a chance that a packet is held back behind
// the next few.
type Impairment struct {
	Delay, Jitter time.Duration
	Loss          float64
	Reorder       float64
}

// LossyProxy is a UDP proxy on 127.0.0.1 in front of a server (a TURN
// server): each client gets its own upstream socket, the packets a client
// sends are impaired on their way to the server, and the server's answers
// come back unimpaired. So a relayed call between two clients of the proxy
// sees the impairment once per direction.
type LossyProxy struct {
	// Addr is the proxy's "127.0.0.1:port".
	Addr string
	imp  Impairment
	up   *net.UDPAddr
	ln   *net.UDPConn
	rng  *rand.Rand

	mu      sync.Mutex
	clients map[string]*lossyClient
	stats   LossyStats
	wg      sync.WaitGroup
	done    chan struct{}
}

// LossyStats counts what the proxy did.
type LossyStats struct{ Forwarded, Lost, Reordered uint64 }

type lossyClient struct {
	addr    *net.UDPAddr
	conn    *net.UDPConn // to the server
	last    time.Time    // delivery time of the previous packet (FIFO)
	pending chan lossyPacket
}

type lossyPacket struct {
	data []byte
	at   time.Time
}

// NewLossyProxy starts a proxy in front of upstream ("127.0.0.1:port"),
// stopped when the test ends. The seed makes the loss pattern repeatable.
func NewLossyProxy(t testing.TB, upstream string, imp Impairment, seed uint64) *LossyProxy {
	t.Helper()
	up, err := net.ResolveUDPAddr("udp4", upstream)
	require.NoError(t, err)
	ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	p := &LossyProxy{Addr: ln.LocalAddr().String(), imp: imp, up: up, ln: ln, rng: rand.New(rand.NewPCG(seed, 1)),
		clients: map[string]*lossyClient{}, done: make(chan struct{})}
	p.wg.Add(1)
	go p.readClients()
	t.Cleanup(p.close)
	return p
}

// Stats returns the counters.
func (p *LossyProxy) Stats() LossyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

func (p *LossyProxy) close() {
	close(p.done)
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.clients {
		c.conn.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// readClients takes packets from clients and schedules them to the server.
func (p *LossyProxy) readClients() {
	defer p.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := p.ln.ReadFromUDP(buf)
		if err != nil {
			return
		}
		c, err := p.client(from)
		if err != nil {
			continue
		}
		p.mu.Lock()
		lost := p.rng.Float64() < p.imp.Loss
		if lost {
			p.stats.Lost++
			p.mu.Unlock()
			continue
		}
		d := p.imp.Delay
		if p.imp.Jitter > 0 {
			d += time.Duration(p.rng.Int64N(int64(2*p.imp.Jitter))) - p.imp.Jitter
		}
		at := time.Now().Add(max(d, 0))
		if at.Before(c.last) {
			at = c.last // jitter does not reorder
		}
		if p.rng.Float64() < p.imp.Reorder {
			at = at.Add(30 * time.Millisecond) // overtaken by what follows
			p.stats.Reordered++
		} else {
			c.last = at
		}
		p.stats.Forwarded++
		p.mu.Unlock()
		select {
		case c.pending <- lossyPacket{data: append([]byte(nil), buf[:n]...), at: at}:
		default: // the client's queue is full: a tail drop
		}
	}
}

// client returns the upstream socket of a client, starting its goroutines.
func (p *LossyProxy) client(from *net.UDPAddr) (*lossyClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.clients[from.String()]; c != nil {
		return c, nil
	}
	conn, err := net.DialUDP("udp4", nil, p.up)
	if err != nil {
		return nil, err
	}
	c := &lossyClient{addr: from, conn: conn, pending: make(chan lossyPacket, 4096)}
	p.clients[from.String()] = c
	p.wg.Add(2)
	go p.send(c)
	go p.readServer(c)
	return c, nil
}

// send delivers a client's packets to the server when they are due; a held
// back packet waits in a timer so that later ones overtake it.
func (p *LossyProxy) send(c *lossyClient) {
	defer p.wg.Done()
	var timers sync.WaitGroup
	defer timers.Wait()
	for {
		select {
		case <-p.done:
			return
		case pk := <-c.pending:
			timers.Add(1)
			time.AfterFunc(time.Until(pk.at), func() {
				defer timers.Done()
				_, _ = c.conn.Write(pk.data)
			})
		}
	}
}

// readServer returns the server's packets to the client.
func (p *LossyProxy) readServer(c *lossyClient) {
	defer p.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, err := c.conn.Read(buf)
		if err != nil {
			return
		}
		_, _ = p.ln.WriteToUDP(buf[:n], c.addr)
	}
}
