package smpcall

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
)

// UDPMux is one UDP socket that carries the ICE traffic, and so the media,
// of every call that uses it (Config.UDPMux): a server opens one port for
// all its calls instead of one per call and candidate. pion tells the
// calls apart by their ICE username fragments and then by the peer's
// address (pion's ice.UDPMuxDefault, RFC 8445 §5.1.1.1 host candidates that
// share a base).
//
// What still has a socket of its own per call: server-reflexive candidates
// (a STUN binding made from a fresh socket) and TURN allocations, for each
// STUN or TURN server of Config.ICEServers. Both are outgoing, so no inbound
// port needs opening for them; a server with a public address that wants
// exactly one socket uses no ICE servers (Config.ICEServers empty): its
// host candidate is reachable as it is. Behind a 1:1 NAT, forward the port
// and announce the public address with SettingEngine.SetNAT1To1IPs (host
// type).
//
// After the first STUN check pion routes a packet to its call by the
// peer's address, so two calls between the same two sockets cannot share
// it: a call between two Clients that both use muxes (in one process, or
// two servers) is fine, but a second one at the same time between the
// same two mux sockets is not. A server's peers are devices with
// addresses of their own.
//
// Concurrency: safe for concurrent use by any number of Clients and their
// calls. The embedder owns it: close it after the Clients that use it.
type UDPMux struct {
	conn   *net.UDPConn
	mux    *ice.UDPMuxDefault
	closed atomic.Bool
}

// udpMuxBuffer is the socket buffer the mux asks for, each way. Every call
// shares the one socket, so a pause of its reader must not overflow the
// kernel's queue: 4 MiB hold about a second of 1,000 audio calls. Linux
// caps it at net.core.rmem_max / wmem_max.
const udpMuxBuffer = 4 << 20

// ListenUDPMux opens the UDP socket for Config.UDPMux on addr, a host:port
// as for net.ListenUDP: "203.0.113.7:3478" listens on one address (what a
// host with several addresses should do, so that replies leave from the
// address the peer used), ":3478" on every address (IPv4 and IPv6), and port
// 0 picks a free port (see Addr).
func ListenUDPMux(addr string) (*UDPMux, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("smpcall: UDP mux address: %w", err)
	}
	network := "udp"
	if ua.IP != nil && ua.IP.To4() != nil {
		network = "udp4"
	}
	conn, err := net.ListenUDP(network, ua)
	if err != nil {
		return nil, fmt.Errorf("smpcall: UDP mux: %w", err)
	}
	_ = conn.SetReadBuffer(udpMuxBuffer) // best effort: capped by the system
	_ = conn.SetWriteBuffer(udpMuxBuffer)
	// pion's mux logs at Warn that an unspecified address lists every
	// interface; that is what ":port" asks for, so only its errors show.
	lf := logging.NewDefaultLoggerFactory()
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: conn, Logger: lf.NewLogger("smpcall-udpmux")})
	return &UDPMux{conn: conn, mux: mux}, nil
}

// Addr returns the socket's local address (its port, when ListenUDPMux was
// given port 0).
func (m *UDPMux) Addr() net.Addr { return m.conn.LocalAddr() }

// Close closes the socket. Calls still using it lose their media path (and
// end once their reconnection budget is spent); close the Clients first.
// Close may be called more than once.
func (m *UDPMux) Close() error {
	if !m.closed.Swap(true) {
		return m.mux.Close()
	}
	return nil
}

// check reports why m cannot be used, for Config.resolve.
func (m *UDPMux) check() error {
	switch {
	case m.mux == nil:
		return errors.New("not made by ListenUDPMux")
	case m.closed.Load():
		return errors.New("closed")
	}
	return nil
}
