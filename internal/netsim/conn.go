package netsim

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/vnet"
)

// side is one party's host: its vnet host, the wrapper pion sees, its
// uplink and the sockets pion opened through it.
type side struct {
	id   Side
	vnet *vnet.Net
	net  *simNet
	link *uplink

	mu    sync.Mutex // guards conns
	conns map[*conn]struct{}
}

// rebind moves every open socket of the side to a fresh port.
func (s *side) rebind() error {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	var errs []error
	for _, c := range conns {
		errs = append(errs, c.rebind())
	}
	return errors.Join(errs...)
}

// simNet is the transport.Net pion gets from SettingEngine: the side's vnet
// host, with every UDP socket wrapped so that what it sends goes through
// the uplink and what it receives stops while the link is down.
type simNet struct {
	*vnet.Net
	side *side
}

var _ transport.Net = (*simNet)(nil)

// ListenPacket opens a UDP socket (the only kind vnet has).
func (n *simNet) ListenPacket(network, address string) (net.PacketConn, error) {
	laddr, err := n.Net.ResolveUDPAddr(network, address)
	if err != nil {
		return nil, err
	}
	return n.ListenUDP(network, laddr)
}

// ListenUDP opens a wrapped UDP socket.
func (n *simNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	return n.open(network, laddr, nil)
}

// DialUDP opens a wrapped connected UDP socket.
func (n *simNet) DialUDP(network string, laddr, raddr *net.UDPAddr) (transport.UDPConn, error) {
	if raddr == nil {
		return nil, fmt.Errorf("netsim: DialUDP without a remote address")
	}
	return n.open(network, laddr, raddr)
}

// Dial dials UDP through the wrapper; other networks go to vnet (which
// has no TCP).
func (n *simNet) Dial(network, address string) (net.Conn, error) {
	switch network {
	case "udp", "udp4", "udp6":
		raddr, err := n.Net.ResolveUDPAddr(network, address)
		if err != nil {
			return nil, err
		}
		return n.DialUDP(network, nil, raddr)
	}
	return n.Net.Dial(network, address)
}

func (n *simNet) open(network string, laddr, raddr *net.UDPAddr) (*conn, error) {
	c := &conn{side: n.side, network: network}
	if laddr != nil {
		c.bindIP = laddr.IP
	}
	if raddr != nil {
		c.raddr = &net.UDPAddr{IP: raddr.IP, Port: raddr.Port}
	}
	under, err := c.openUnder(laddr)
	if err != nil {
		return nil, err
	}
	c.under = under
	c.laddr = under.LocalAddr()
	n.side.mu.Lock()
	n.side.conns[c] = struct{}{}
	n.side.mu.Unlock()
	return c, nil
}

// conn is a UDP socket of a side. It reports the address it was opened on
// for its whole life, even after Rebind moved it to another vnet socket.
//
// Concurrency: safe for concurrent use, like a net.UDPConn.
type conn struct {
	side    *side
	network string
	bindIP  net.IP       // the IP pion asked for (nil or unspecified: any)
	raddr   *net.UDPAddr // set for dialed sockets
	laddr   net.Addr     // what LocalAddr reports

	mu           sync.Mutex
	under        transport.UDPConn // the vnet socket in use
	gen          int               // bumped by rebind
	closed       bool
	readDeadline time.Time
}

var _ transport.UDPConn = (*conn)(nil)

// openUnder opens a vnet socket at laddr (copied: vnet fills in the port).
func (c *conn) openUnder(laddr *net.UDPAddr) (transport.UDPConn, error) {
	var local *net.UDPAddr
	if laddr != nil {
		local = &net.UDPAddr{IP: laddr.IP, Port: laddr.Port}
	}
	if c.raddr != nil {
		return c.side.vnet.DialUDP(c.network, local, c.raddr)
	}
	return c.side.vnet.ListenUDP(c.network, local)
}

func (c *conn) rebind() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	fresh, err := c.openUnder(&net.UDPAddr{IP: c.bindIP})
	if err != nil {
		return fmt.Errorf("netsim: rebind %v: %w", c.laddr, err)
	}
	if !c.readDeadline.IsZero() {
		_ = fresh.SetReadDeadline(c.readDeadline)
	}
	old := c.under
	c.under = fresh
	c.gen++
	// Closing the old socket wakes a reader blocked on it; ReadFrom sees the
	// new generation and carries on with the fresh socket.
	_ = old.Close()
	return nil
}

func (c *conn) current() (transport.UDPConn, int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.under, c.gen, c.closed
}

func (c *conn) closedErr(op string) error {
	return &net.OpError{Op: op, Net: c.network, Addr: c.laddr, Err: net.ErrClosed}
}

// ReadFrom returns the next packet that arrived while the link was up.
func (c *conn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		under, gen, closed := c.current()
		if closed {
			return 0, nil, c.closedErr("read")
		}
		n, addr, err := under.ReadFrom(p)
		if err != nil {
			if _, g, closed := c.current(); g != gen && !closed {
				continue // rebound while reading
			}
			return n, addr, err
		}
		if !c.side.link.acceptInbound() {
			continue
		}
		return n, addr, nil
	}
}

// ReadFromUDP is ReadFrom with a UDP address.
func (c *conn) ReadFromUDP(p []byte) (int, *net.UDPAddr, error) {
	n, addr, err := c.ReadFrom(p)
	ua, _ := addr.(*net.UDPAddr)
	return n, ua, err
}

// Read reads a packet of a dialed socket.
func (c *conn) Read(p []byte) (int, error) {
	n, _, err := c.ReadFrom(p)
	return n, err
}

// ReadMsgUDP is not supported (nor is it by vnet).
func (c *conn) ReadMsgUDP([]byte, []byte) (int, int, int, *net.UDPAddr, error) {
	return 0, 0, 0, nil, transport.ErrNotSupported
}

// WriteTo hands a copy of p to the side's uplink and returns at once, as a
// kernel socket does; the uplink delivers or drops it.
func (c *conn) WriteTo(p []byte, addr net.Addr) (int, error) {
	dst, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: c.network, Addr: addr, Err: fmt.Errorf("netsim: not a UDP address: %T", addr)}
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return 0, c.closedErr("write")
	}
	data := make([]byte, len(p))
	copy(data, p)
	c.side.link.send(c, data, &net.UDPAddr{IP: dst.IP, Port: dst.Port})
	return len(p), nil
}

// WriteToUDP is WriteTo with a UDP address.
func (c *conn) WriteToUDP(p []byte, addr *net.UDPAddr) (int, error) { return c.WriteTo(p, addr) }

// Write writes to a dialed socket's remote address.
func (c *conn) Write(p []byte) (int, error) {
	if c.raddr == nil {
		return 0, &net.OpError{Op: "write", Net: c.network, Addr: c.laddr, Err: errors.New("netsim: socket not connected")}
	}
	return c.WriteTo(p, c.raddr)
}

// WriteMsgUDP is not supported (nor is it by vnet).
func (c *conn) WriteMsgUDP([]byte, []byte, *net.UDPAddr) (int, int, error) {
	return 0, 0, transport.ErrNotSupported
}

// deliver is the uplink's last step: the packet goes out of the socket the
// conn uses now (after a rebind, the fresh one, so the NAT sees the new
// port). A packet of a socket closed meanwhile is gone.
func (c *conn) deliver(data []byte, dst *net.UDPAddr) {
	under, _, closed := c.current()
	if closed {
		return
	}
	if c.raddr != nil {
		_, _ = under.Write(data)
		return
	}
	_, _ = under.WriteTo(data, dst)
}

// Close closes the socket; blocked reads return.
func (c *conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	under := c.under
	c.mu.Unlock()
	c.side.mu.Lock()
	delete(c.side.conns, c)
	c.side.mu.Unlock()
	return under.Close()
}

// LocalAddr returns the address the socket was opened on.
func (c *conn) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr returns the remote address of a dialed socket, nil otherwise.
func (c *conn) RemoteAddr() net.Addr {
	if c.raddr == nil {
		return nil
	}
	return c.raddr
}

// SetDeadline sets the read deadline (writes never block).
func (c *conn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline sets the read deadline, kept across Rebind.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDeadline = t
	return c.under.SetReadDeadline(t)
}

// SetWriteDeadline is accepted and ignored: writes never block.
func (c *conn) SetWriteDeadline(time.Time) error { return nil }

// SetReadBuffer is accepted and ignored.
func (c *conn) SetReadBuffer(int) error { return nil }

// SetWriteBuffer is accepted and ignored.
func (c *conn) SetWriteBuffer(int) error { return nil }
