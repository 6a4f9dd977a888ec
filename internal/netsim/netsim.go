package netsim

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"
)

// Side names one of the two parties of a call. Net's methods panic on
// values other than A and B (a programming error in a test).
type Side int

const (
	// A is the side that RawCall makes the offerer (ICE-controlling).
	A Side = iota
	// B is the answerer.
	B
)

// String returns "A" or "B".
func (s Side) String() string {
	switch s {
	case A:
		return "A"
	case B:
		return "B"
	}
	return fmt.Sprintf("Side(%d)", int(s))
}

// NATKind is the behaviour of the NAT in front of one side, in the terms of
// RFC 4787 §4.1 (mapping) and §5 (filtering).
type NATKind int

const (
	// NoNAT puts the side directly on the WAN with a public address: its host
	// candidate is reachable from everywhere.
	NoNAT NATKind = iota
	// NATEndpointIndependent maps and filters independently of the remote
	// endpoint ("full cone"): once the side has sent anything, anyone can
	// reach its mapped address.
	NATEndpointIndependent
	// NATAddressDependent maps independently of the remote endpoint but only
	// lets in packets from IP addresses the side has sent to ("restricted
	// cone").
	NATAddressDependent
	// NATAddressPortDependent maps independently of the remote endpoint but
	// only lets in packets from the exact address:port the side has sent to
	// ("port-restricted cone", the usual home router).
	NATAddressPortDependent
	// NATSymmetric maps every remote address:port to a new external port and
	// filters by address:port: the server-reflexive address is useless to the
	// peer. Between two symmetric sides only TURN relaying works.
	NATSymmetric
)

// String returns the name of the constant without the NAT prefix.
func (k NATKind) String() string {
	switch k {
	case NoNAT:
		return "none"
	case NATEndpointIndependent:
		return "endpoint-independent"
	case NATAddressDependent:
		return "address-dependent"
	case NATAddressPortDependent:
		return "address-port-dependent"
	case NATSymmetric:
		return "symmetric"
	}
	return fmt.Sprintf("NATKind(%d)", int(k))
}

// vnetType translates k into pion's NAT model; nil for NoNAT.
func (k NATKind) vnetType() (*vnet.NATType, error) {
	t := &vnet.NATType{MappingBehavior: vnet.EndpointIndependent, MappingLifeTime: time.Hour}
	switch k {
	case NoNAT:
		return nil, nil
	case NATEndpointIndependent:
		t.FilteringBehavior = vnet.EndpointIndependent
	case NATAddressDependent:
		t.FilteringBehavior = vnet.EndpointAddrDependent
	case NATAddressPortDependent:
		t.FilteringBehavior = vnet.EndpointAddrPortDependent
	case NATSymmetric:
		t.MappingBehavior = vnet.EndpointAddrPortDependent
		t.FilteringBehavior = vnet.EndpointAddrPortDependent
	default:
		return nil, fmt.Errorf("netsim: unknown NAT kind %d", int(k))
	}
	return t, nil
}

// Loss is the packet loss of one uplink. Random and burst loss add up: a
// packet is lost if either model drops it.
type Loss struct {
	// Random is the probability that a packet is lost, independently of all
	// other packets.
	Random float64
	// BurstEnter, BurstExit and BurstLoss make a Gilbert-Elliott model: before
	// each packet the link moves from the good to the bad state with
	// probability BurstEnter and back with probability BurstExit; in the bad
	// state a packet is lost with probability BurstLoss. The mean burst (bad
	// period) lasts 1/BurstExit packets and the bad state holds for a
	// fraction BurstEnter/(BurstEnter+BurstExit) of the packets. BurstLoss 0
	// with BurstEnter > 0 means 1 (Gilbert's original model).
	BurstEnter, BurstExit, BurstLoss float64
}

// Profile describes the simulated network of one call.
//
// Where it applies: each side has an access link between its host (before
// its NAT) and the WAN. The impairments (Delay, Jitter, Loss, Reorder,
// Bandwidth) apply to the uplink of both sides, that is to every packet a
// side sends, whatever the destination (the peer, or the STUN/TURN server),
// with the same parameters and an independent random stream per side. The
// packets the TURN server sends (its answers, and the data it relays) are not
// impaired again. So every path between A and B — host, server-reflexive or
// relayed, including relay to relay — crosses exactly one impaired uplink
// per direction and sees exactly the profile: A→B one-way delay is Delay ±
// Jitter, and so is B→A. A request from a side to the TURN server sees the
// impairment once (request only): a TURN or STUN transaction costs Delay,
// while a connectivity check between the peers costs 2×Delay.
//
// Order on an uplink: the loss models decide first (per packet, in the order
// the side sends them), then the bandwidth cap queues the packet (tail drop
// when the queue would exceed QueueLimit), then Delay ± Jitter is added, then
// Reorder may hold the packet back.
type Profile struct {
	// Name identifies the profile in test and benchmark names.
	Name string
	// Delay is the one-way delay of each direction. Jitter spreads it
	// uniformly over [Delay-Jitter, Delay+Jitter] (never below zero), drawn
	// independently per packet, except that a packet is never delivered
	// before the one its side sent just before it: jitter does not reorder.
	// That is how a real path behaves (delay variation comes from FIFO
	// queues) and not how netem's per-packet jitter behaves, which reorders
	// about half of a 50 ms ± 10 ms video stream and sets off NACKs that a
	// real network would not cause. Reordering comes from Reorder alone.
	Delay, Jitter time.Duration
	// Loss is applied on each uplink.
	Loss Loss
	// Reorder is the probability that a packet is held back until three
	// packets the side sent after it have been delivered (but no more than
	// 100 ms longer than it would have been).
	Reorder float64
	// Bandwidth caps each uplink, in bits per second counting 28 bytes of
	// IPv4+UDP header per packet; 0 means no cap. Packets wait in a FIFO
	// queue; a packet that would wait longer than QueueLimit is dropped.
	Bandwidth int
	// QueueLimit bounds the queue in front of the bandwidth cap, as the
	// longest wait a packet may have; 0 means 200 ms.
	QueueLimit time.Duration
	// NATA and NATB are the NATs in front of the sides.
	NATA, NATB NATKind
	// TURN runs a TURN server (pion/turn, which also answers STUN binding
	// requests) on the WAN, with a long-term credential.
	TURN bool
	// RelayOnly marks profiles meant to be run with the relay-only ICE
	// policy (webrtc.ICETransportPolicyRelay). The network does not enforce
	// it: the caller sets the policy.
	RelayOnly bool
}

// validate checks what New and SetProfile cannot use.
func (p Profile) validate() error {
	probs := []struct {
		name string
		v    float64
	}{
		{"Loss.Random", p.Loss.Random}, {"Loss.BurstEnter", p.Loss.BurstEnter},
		{"Loss.BurstExit", p.Loss.BurstExit}, {"Loss.BurstLoss", p.Loss.BurstLoss},
		{"Reorder", p.Reorder},
	}
	for _, pr := range probs {
		if !(pr.v >= 0 && pr.v <= 1) { // also rejects NaN
			return fmt.Errorf("netsim: profile %q: %s = %v is not a probability", p.Name, pr.name, pr.v)
		}
	}
	if p.Loss.BurstEnter > 0 && p.Loss.BurstExit == 0 {
		return fmt.Errorf("netsim: profile %q: BurstEnter > 0 needs BurstExit > 0 (the link would never leave the bad state)", p.Name)
	}
	for _, k := range []NATKind{p.NATA, p.NATB} {
		if _, err := k.vnetType(); err != nil {
			return err
		}
	}
	if p.Delay < 0 || p.Jitter < 0 || p.QueueLimit < 0 || p.Bandwidth < 0 {
		return fmt.Errorf("netsim: profile %q: negative Delay, Jitter, QueueLimit or Bandwidth", p.Name)
	}
	return nil
}

// Addresses of the simulated topology. The WAN is one vnet router covering
// 0.0.0.0/0; a side without a NAT sits on it with its public address, a side
// with a NAT sits on its own LAN (distinct subnets, so a private host
// candidate of one side is unreachable from the other).
const (
	turnIP    = "192.0.2.3"
	turnPort  = 3478
	turnRealm = "netsim"
	turnUser  = "netsim"
	turnPass  = "netsim-secret"
)

var (
	publicIP = [2]string{"203.0.113.10", "198.51.100.20"}
	lanCIDR  = [2]string{"10.1.0.0/24", "10.2.0.0/24"}
	lanIP    = [2]string{"10.1.0.2", "10.2.0.2"}
)

// Net is a simulated network with two sides, A and B, and optionally a TURN
// server, built on pion's vnet.
//
// Concurrency: every method is safe for concurrent use. Close (also run by
// tb.Cleanup) stops the routers, the uplink schedulers and the TURN server
// and waits for their goroutines; close the PeerConnections using the Net
// first (cleanups registered after New run before it). In synctest mode New
// and Close must run inside the bubble, which is the case when New gets the
// bubble's t.
type Net struct {
	wan    *vnet.Router
	sides  [2]*side
	server *vnet.Net // the TURN server's host on the WAN, nil without TURN
	turn   *turn.Server
	prof   Profile

	mu        sync.Mutex // guards prof
	closeOnce sync.Once
	closeErr  error
}

// quietLogs discards pion's vnet/TURN logging: a NAT dropping unsolicited
// packets is the point of the simulation, not a warning. (A nil
// LoggerFactory makes vnet.NewRouter panic.)
var quietLogs logging.LoggerFactory = &logging.DefaultLoggerFactory{Writer: io.Discard, DefaultLogLevel: logging.LogLevelDisabled}

// New builds the network of p: a WAN router, each side behind its NAT (or
// directly on the WAN), the uplink impairments seeded from seed (the same
// seed and the same sequence of packets give the same losses, jitter and
// reordering), and the TURN server if p.TURN. The network is closed by
// tb.Cleanup or Close.
func New(tb testing.TB, p Profile, seed int64) (*Net, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	n := &Net{prof: p}
	var err error
	n.wan, err = vnet.NewRouter(&vnet.RouterConfig{Name: "wan", CIDR: "0.0.0.0/0", LoggerFactory: quietLogs})
	if err != nil {
		return nil, fmt.Errorf("netsim: WAN router: %w", err)
	}
	for i, kind := range [2]NATKind{p.NATA, p.NATB} {
		s, err := n.addSide(Side(i), kind, p, seed)
		if err != nil {
			return nil, err
		}
		n.sides[i] = s
	}
	if p.TURN {
		if n.server, err = vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{turnIP}}); err != nil {
			return nil, err
		}
		if err = n.wan.AddNet(n.server); err != nil {
			return nil, fmt.Errorf("netsim: TURN host: %w", err)
		}
	}
	if err = n.wan.Start(); err != nil {
		return nil, fmt.Errorf("netsim: start routers: %w", err)
	}
	for _, s := range n.sides {
		s.link.start()
	}
	tb.Cleanup(func() {
		if err := n.Close(); err != nil {
			tb.Errorf("netsim: close: %v", err)
		}
	})
	if p.TURN {
		if err := n.startTURN(); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// addSide puts side i on the WAN, behind a NAT router unless kind is NoNAT.
func (n *Net) addSide(i Side, kind NATKind, p Profile, seed int64) (*side, error) {
	natType, err := kind.vnetType()
	if err != nil {
		return nil, err
	}
	s := &side{id: i, conns: map[*conn]struct{}{}}
	if natType == nil {
		if s.vnet, err = vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{publicIP[i]}}); err != nil {
			return nil, err
		}
		if err = n.wan.AddNet(s.vnet); err != nil {
			return nil, fmt.Errorf("netsim: side %v: %w", i, err)
		}
	} else {
		lan, err := vnet.NewRouter(&vnet.RouterConfig{
			Name: "lan-" + i.String(), CIDR: lanCIDR[i], StaticIPs: []string{publicIP[i]},
			NATType: natType, LoggerFactory: quietLogs,
		})
		if err != nil {
			return nil, fmt.Errorf("netsim: side %v NAT: %w", i, err)
		}
		if s.vnet, err = vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{lanIP[i]}}); err != nil {
			return nil, err
		}
		if err = lan.AddNet(s.vnet); err != nil {
			return nil, fmt.Errorf("netsim: side %v: %w", i, err)
		}
		if err = n.wan.AddRouter(lan); err != nil {
			return nil, fmt.Errorf("netsim: side %v NAT: %w", i, err)
		}
	}
	// Different streams per side, so that A's and B's uplinks do not lose
	// the same packet numbers.
	s.link = newUplink(p, uint64(seed), uint64(i)+1)
	s.net = &simNet{Net: s.vnet, side: s}
	return s, nil
}

// startTURN runs pion's TURN server on the WAN host n.server; relayed
// addresses are allocated on the same host.
func (n *Net) startTURN() error {
	pc, err := n.server.ListenPacket("udp4", net.JoinHostPort(turnIP, fmt.Sprint(turnPort)))
	if err != nil {
		return fmt.Errorf("netsim: TURN listen: %w", err)
	}
	key := turn.GenerateAuthKey(turnUser, turnRealm, turnPass)
	n.turn, err = turn.NewServer(turn.ServerConfig{
		Realm:         turnRealm,
		LoggerFactory: quietLogs,
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			if ra.Username != turnUser {
				return "", nil, false
			}
			return ra.Username, key, true
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn: pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{
				RelayAddress: net.ParseIP(turnIP), Address: "0.0.0.0", Net: n.server,
			},
		}},
	})
	if err != nil {
		_ = pc.Close()
		return fmt.Errorf("netsim: TURN server: %w", err)
	}
	return nil
}

func (n *Net) side(s Side) *side {
	if s != A && s != B {
		panic(fmt.Sprintf("netsim: no side %d", int(s)))
	}
	return n.sides[s]
}

// Profile returns the profile in force (the one given to New, with the
// impairments of the last SetProfile).
func (n *Net) Profile() Profile {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.prof
}

// PublicIP returns the address the side has on the WAN: its own address
// without a NAT, its NAT's external address otherwise.
func (n *Net) PublicIP(s Side) string { return publicIP[n.side(s).id] }

// SettingEngine returns a new SettingEngine for a PeerConnection of side s:
// pion's networking goes through the side's simulated host (SetNet), mDNS is
// off and only UDP over IPv4 is gathered. Everything else is pion's default
// (ICE timeouts, acceptance waits, check interval); the caller may change it.
func (n *Net) SettingEngine(s Side) *webrtc.SettingEngine {
	se := &webrtc.SettingEngine{}
	se.SetNet(n.side(s).net)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return se
}

// ICEServers returns the STUN and TURN server for side s (the same server
// is reachable from both sides): one ICEServer whose URLs are the STUN URL
// and then the TURN URL, with the credential; nil without TURN.
func (n *Net) ICEServers(s Side) []webrtc.ICEServer {
	n.side(s)
	url, user, pass := n.TURNURL()
	if url == "" {
		return nil
	}
	return []webrtc.ICEServer{{
		URLs:       []string{fmt.Sprintf("stun:%s:%d", turnIP, turnPort), url},
		Username:   user,
		Credential: pass,
	}}
}

// TURNURL returns the TURN server's URL ("turn:host:port?transport=udp")
// and long-term credential; all empty without TURN.
func (n *Net) TURNURL() (url, user, pass string) {
	if n.turn == nil {
		return "", "", ""
	}
	return fmt.Sprintf("turn:%s:%d?transport=udp", turnIP, turnPort), turnUser, turnPass
}

// SetLinkUp cuts (up=false) or restores side s's access link. While it is
// down every packet the side sends is dropped, packets already queued or in
// flight on its uplink are dropped when they would be delivered, and every
// packet arriving for the side is discarded; pion's sockets stay open and
// see plain silence, as when a cable is pulled or Wi-Fi is lost.
func (n *Net) SetLinkUp(s Side, up bool) { n.side(s).link.setUp(up) }

// Rebind simulates a NAT rebinding on side s: every socket of the side moves
// to a fresh internal port on the same host address, so its NAT (or, for
// NoNAT, the host itself) presents a new source port to the peer and the
// TURN server, and packets sent to the old address are lost. pion does not
// notice: its sockets and local candidates keep their addresses, exactly as
// when a NAT drops its mappings (RFC 4787 §4.3) and allocates new ones for
// the next outgoing packet. The public IP does not change. The peer learns
// the new address only from the side's next packets (a peer-reflexive
// candidate); a TURN allocation made from the old address is lost to the
// side (the server sees requests from an unknown 5-tuple).
func (n *Net) Rebind(s Side) error { return n.side(s).rebind() }

// SetProfile changes the impairments (Delay, Jitter, Loss, Reorder,
// Bandwidth, QueueLimit) of both uplinks from now on; packets already
// scheduled keep their delivery times. NATs, TURN, Name and RelayOnly cannot
// change and are ignored. It returns an error, and changes nothing, if the
// new values are invalid.
func (n *Net) SetProfile(p Profile) error {
	if err := p.validate(); err != nil {
		return err
	}
	n.mu.Lock()
	old := n.prof
	p.Name, p.NATA, p.NATB, p.TURN, p.RelayOnly = old.Name, old.NATA, old.NATB, old.TURN, old.RelayOnly
	n.prof = p
	n.mu.Unlock()
	for _, s := range n.sides {
		s.link.setProfile(p)
	}
	return nil
}

// LinkStats counts the packets through one side's access link since New.
type LinkStats struct {
	// Sent counts the packets the side wrote to the uplink.
	Sent uint64
	// Delivered counts the packets the uplink handed to the network (they
	// may still be dropped by a NAT or an unreachable destination).
	Delivered uint64
	// Lost counts packets dropped by the loss models; BurstLost is the part
	// dropped in the Gilbert-Elliott bad state (and not also by Random).
	Lost, BurstLost uint64
	// QueueDrops counts packets dropped because the bandwidth-cap queue was
	// full, or because 65536 packets were already in flight on the uplink.
	QueueDrops uint64
	// DownDrops counts uplink packets dropped because the link was down.
	DownDrops uint64
	// InFlight counts the packets on the uplink now (queued, delayed or
	// held back). Sent = Delivered + Lost + QueueDrops + DownDrops +
	// InFlight; packets sent after Close are not counted.
	InFlight uint64
	// Reordered counts delivered packets that left after a packet the side
	// sent later.
	Reordered uint64
	// InDrops counts packets that arrived for the side while its link was
	// down, and were discarded.
	InDrops uint64
}

// Stats is a snapshot of both access links.
type Stats struct {
	// A is side A's link: its uplink fields describe the direction A→B (and
	// A→TURN).
	A LinkStats
	// B is side B's link: direction B→A (and B→TURN).
	B LinkStats
}

// Stats returns the packet counters of both links.
func (n *Net) Stats() Stats {
	return Stats{A: n.sides[A].link.stats(), B: n.sides[B].link.stats()}
}

// Close stops the TURN server, the uplink schedulers and the routers, and
// waits for their goroutines. It may be called more than once.
func (n *Net) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.turn != nil {
			errs = append(errs, n.turn.Close())
		}
		for _, s := range n.sides {
			s.link.close()
		}
		if err := n.wan.Stop(); err != nil {
			errs = append(errs, err)
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}
