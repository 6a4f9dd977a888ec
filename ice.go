package smpcall

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
)

// ICEServer is a STUN or TURN server. ICE servers are not exchanged in the
// protocol: each side uses its own (protocol §6.7).
type ICEServer struct {
	// URLs like "turn:host:3478?transport=udp", "turns:host:443?transport=tcp", "stun:host:3478".
	URLs []string
	// Username is the TURN user name; STUN servers need none.
	Username string
	// Credential is the TURN password that goes with Username.
	Credential string
}

// DefaultICEServers are the built-in servers of the current SimpleX apps
// (call.ts and the iOS app, protocol §6.7). Their credentials are public
// values in the client sources. Tests always set their own.
var DefaultICEServers = []ICEServer{
	{URLs: []string{"stuns:stun.simplex.im:443"}},
	{URLs: []string{"stun:stun.simplex.im:443"}},
	{URLs: []string{"turns:turn.simplex.im:443?transport=tcp"}, Username: "private2", Credential: "Hxuq2QxUjnhj96Zq2r4HjqHRj"},
}

// ParseICEServer parses SimpleX's string form of a server as the apps let
// users configure it (WebRTC.swift parseRTCIceServer): scheme stun, stuns,
// turn or turns, optional "user:password@", host, optional ":port" and
// "?transport=udp|tcp". For example "turn:user:pass@turn.example.com:3478?transport=udp".
func ParseICEServer(s string) (ICEServer, error) {
	var srv ICEServer
	scheme, rest, ok := strings.Cut(s, ":")
	switch {
	case !ok:
		return srv, fmt.Errorf("smpcall: ICE server %q: no scheme", s)
	case scheme != "stun" && scheme != "stuns" && scheme != "turn" && scheme != "turns":
		return srv, fmt.Errorf("smpcall: ICE server %q: unknown scheme %q", redactURL(s), scheme)
	}
	rest = strings.TrimPrefix(rest, "//")
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		cred := rest[:at]
		rest = rest[at+1:]
		user, pass, ok := strings.Cut(cred, ":")
		if !ok || user == "" {
			return srv, fmt.Errorf("smpcall: ICE server %q: credentials must be user:password", redactURL(s))
		}
		srv.Username, srv.Credential = user, pass
	}
	hostport, query, _ := strings.Cut(rest, "?")
	if hostport == "" || strings.ContainsAny(hostport, "/ ") {
		return srv, fmt.Errorf("smpcall: ICE server %q: bad host", redactURL(s))
	}
	if query != "" {
		if query != "transport=udp" && query != "transport=tcp" {
			return srv, fmt.Errorf("smpcall: ICE server %q: unsupported query %q", redactURL(s), query)
		}
		hostport += "?" + query
	}
	if strings.HasPrefix(scheme, "turn") && srv.Username == "" {
		return srv, fmt.Errorf("smpcall: ICE server %q: TURN needs user:password@", s)
	}
	srv.URLs = []string{scheme + ":" + hostport}
	return srv, nil
}

// redactURL hides a password in an ICE server string for error messages.
func redactURL(s string) string {
	at := strings.LastIndex(s, "@")
	if at < 0 {
		return s
	}
	scheme, rest, _ := strings.Cut(s[:at], ":")
	user, _, _ := strings.Cut(strings.TrimPrefix(rest, "//"), ":")
	return scheme + ":" + user + ":***" + s[at:]
}

func (s ICEServer) pion() webrtc.ICEServer {
	return webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential}
}

// ICEBatching is the timing of ICE candidate batches (protocol §6.5; the web
// page's iceCandidates config). Zero fields take the defaults.
type ICEBatching struct {
	// InitialDelay: the first batch rides in the offer or answer when
	// gathering completes or after this long, whichever is first. Default 750 ms.
	InitialDelay time.Duration
	// ExtrasInterval: later candidates go out in extras this often. Default 1500 ms.
	ExtrasInterval time.Duration
	// ExtrasTimeout: extras stop this long after the first batch, with a
	// final flush. Default 12 s.
	ExtrasTimeout time.Duration
}

// ConnectionInfo describes the path a connected call uses (the selected ICE
// candidate pair).
type ConnectionInfo struct {
	// LocalType and RemoteType are the candidate types: host, srflx, prflx or relay.
	LocalType, RemoteType string
	// Protocol is "udp" or "tcp".
	Protocol string
	// Relay is true when either side uses a TURN relay.
	Relay bool
	// LocalAddress and RemoteAddress are "ip:port".
	LocalAddress, RemoteAddress string
}

// String describes the path, e.g. "relay/host udp 1.2.3.4:5 → 6.7.8.9:10 relay".
func (i ConnectionInfo) String() string {
	path := "peer-to-peer"
	if i.Relay {
		path = "relay"
	}
	return fmt.Sprintf("%s/%s %s %s → %s %s", i.LocalType, i.RemoteType, i.Protocol, i.LocalAddress, i.RemoteAddress, path)
}

func connectionInfo(pair *webrtc.ICECandidatePair) (ConnectionInfo, error) {
	if pair == nil || pair.Local == nil || pair.Remote == nil {
		return ConnectionInfo{}, errors.New("no selected candidate pair")
	}
	l, r := pair.Local, pair.Remote
	return ConnectionInfo{
		LocalType: l.Typ.String(), RemoteType: r.Typ.String(), Protocol: l.Protocol.String(),
		Relay:        l.Typ == webrtc.ICECandidateTypeRelay || r.Typ == webrtc.ICECandidateTypeRelay,
		LocalAddress: fmt.Sprintf("%s:%d", l.Address, l.Port), RemoteAddress: fmt.Sprintf("%s:%d", r.Address, r.Port),
	}, nil
}

// ICEAcceptance is how long the ICE-controlling agent waits, from the start
// of connectivity checks, before it may nominate a working pair whose
// candidates are of each type (pion/ice's acceptance minimum waits). pion
// cannot switch to a better pair after nominating one, so a wait is only
// worth its cost where a better pair may still turn up.
type ICEAcceptance struct {
	// Host, ServerReflexive, PeerReflexive and Relay are the waits for
	// candidates of type host, srflx, prflx and relay.
	Host, ServerReflexive, PeerReflexive, Relay time.Duration
	// FromSettingEngine leaves the waits to Config.SettingEngine (or to
	// pion's defaults: 0, 500 ms, 1 s and 2 s) and ignores the fields above.
	FromSettingEngine bool
}

// DefaultICEAcceptance is used with the all-candidates policy. Chrome
// selects the first writable pair at once and may switch later; pion,
// which cannot switch, waits a little for a relay pair so that a direct
// pair that validates within a few check rounds is preferred (with no
// wait, 2 of 30 calls over a simulated 100 ms WAN ended relayed although a
// direct path existed). pion's own defaults (500 ms for server-reflexive,
// 1 s for peer-reflexive, 2 s for relay) held working pairs back for
// seconds: behind NATs the winning pair is usually host→peer-reflexive,
// so a second of every call was the peer-reflexive wait.
var DefaultICEAcceptance = ICEAcceptance{Relay: 300 * time.Millisecond}

// RelayOnlyICEAcceptance is used with Config.RelayOnly: every candidate
// is a relay, so nothing better can turn up and the first working pair is
// nominated at once. (pion/ice v4.4.8 means to do this by itself, but
// computes its relay-only default before the candidate types are applied,
// so pion/webrtc's relay policy still waited 2 s: every call that a
// SimpleX user placed to the SDK connected about 2 s late.)
var RelayOnlyICEAcceptance = ICEAcceptance{}

// apply sets the waits on se unless they are left to it.
func (a ICEAcceptance) apply(se *webrtc.SettingEngine) {
	if a.FromSettingEngine {
		return
	}
	se.SetHostAcceptanceMinWait(a.Host)
	se.SetSrflxAcceptanceMinWait(a.ServerReflexive)
	se.SetPrflxAcceptanceMinWait(a.PeerReflexive)
	se.SetRelayAcceptanceMinWait(a.Relay)
}
