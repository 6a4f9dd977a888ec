package smpcall

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
)

// Never turns a Config timer off: any negative duration does, where the
// field's documentation says so.
const Never time.Duration = -1

// Limits of Config.MaxMessageSize. The upper one is the largest JSON chat
// message the chat core sends (protocol §3.1, maxEncodedMsgLength); below
// the lower one not even a bare offer fits once the envelope is added.
const (
	MinMessageSize = 2048
	MaxMessageSize = 15602
)

// Config configures a Client and the calls it runs. The zero value works:
// pass nil to NewClient for all defaults. Each field documents its default;
// zero means that default, and for the timers that may be turned off a
// negative value (Never) turns them off. NewClient rejects a Config with an
// impossible value and names the field.
//
// Every timer and clock reading of the SDK goes through the time package,
// so tests can run the SDK inside testing/synctest with virtual time.
type Config struct {
	// Logger receives the logs. Default: silent. Keys and SDP are never logged.
	Logger *slog.Logger

	// RingWindow is how long after it was received (callTs) an incoming
	// invitation rings: within it a RingingEvent is announced, after it the
	// invitation is dropped from the Client as missed (protocol §4.1: the
	// apps show invitations up to 180 s old; the core keeps them, and
	// PendingInvitations still lists them). Default 180 s; Never: rings until
	// the caller ends it.
	RingWindow time.Duration
	// RingTimeout is how long a placed call rings before it ends as missed,
	// telling the peer with x.call.end so that its phone stops ringing too.
	// The core and the apps have no such timer (the caller rings until its
	// user gives up, protocol §4.1). Default 60 s; Never: ring until ended.
	RingTimeout time.Duration
	// Busy says what happens to an invitation that arrives while this
	// Client is already in a call with another contact. Default BusyRing.
	Busy BusyPolicy
	// CloseTimeout bounds how long Close waits for calls to end and for
	// their x.call.end to reach the transport. Default 5 s; Never: no bound.
	// After that, Close also waits for pion to close the ended calls' peer
	// connections, which is quick unless pion stalls behind a TURN
	// transaction (bounded at 30 s; see Client.Close).
	CloseTimeout time.Duration
	// EventBuffer is the size of the Client's event channel and of each
	// Call's. When an embedder does not keep up, the oldest events are
	// dropped and counted (Client.DroppedEvents for the Client's channel,
	// CallStats.DroppedEvents for a Call's), never memory grown.
	// Default 128.
	EventBuffer int

	// The fields below configure the calls of the high-level path
	// (PlaceCall, AcceptCall).

	// ICEServers are the STUN/TURN servers. nil means DefaultICEServers (the
	// SimpleX apps' public servers); an empty non-nil slice means none
	// (host candidates only).
	ICEServers []ICEServer
	// RelayOnly uses TURN relay candidates only, as the SimpleX apps do by
	// default (protocol §6.7): the peer never learns this side's IP address,
	// and a default-configured SimpleX app connects only over a relay.
	// Default false (all candidate types).
	RelayOnly bool
	// ICEAcceptance is how long the ICE-controlling side (this side when it
	// makes the SDP offer, i.e. when it accepted an invitation) waits before
	// it nominates a working candidate pair of each type. Nil means
	// DefaultICEAcceptance, or RelayOnlyICEAcceptance when RelayOnly is set;
	// see their docs for why. It is applied over SettingEngine unless its
	// FromSettingEngine field is set.
	ICEAcceptance *ICEAcceptance
	// AllowUnencrypted lets a call proceed without frame encryption (a peer
	// without the capability, or askConfirmation, protocol §5.1); media is
	// then protected by DTLS-SRTP only, so a TURN relay that also broke DTLS
	// could see it. Default false: such calls end with ErrUnencrypted.
	AllowUnencrypted bool
	// ConnectTimeout ends a call that has not connected this long after its
	// peer connection was created. Default 30 s (the apps' timeout, protocol
	// §6.6); Never: wait for ICE to fail by itself.
	ConnectTimeout time.Duration
	// SignalingTimeout bounds each signaling command a call sends. Default
	// 15 s; Never: bounded only by the call's life.
	SignalingTimeout time.Duration
	// ICE is the candidate batching (protocol §6.5); zero fields take the defaults.
	ICE ICEBatching
	// MaxMessageSize is the largest x.call.* chat message JSON, in bytes, that
	// a call produces; candidates that do not fit go to later extras.
	// Default 13,000 (below SMP's post-quantum message size); it must lie
	// between MinMessageSize and MaxMessageSize.
	MaxMessageSize int
	// SettingEngine, if set, configures pion for every call (network
	// interfaces, vnet, UDP mux). Tests use it to stay on loopback. It is
	// copied; later changes have no effect. The SDK sets its own ICE
	// timeouts on the copy (see ReconnectBudget) and the acceptance waits
	// (see ICEAcceptance). Default: pion's defaults.
	SettingEngine *webrtc.SettingEngine
	// UDPMux, if set, carries every call's ICE traffic on one UDP socket
	// (ListenUDPMux), so that a server opens one port for all its calls
	// instead of a socket per call: host candidates use the mux's address.
	// Server-reflexive candidates and TURN allocations still take a socket
	// per call and ICE server (outgoing; see UDPMux). Several Clients may
	// share one mux (UDPMux says the one limit); the embedder closes it
	// after them. It replaces a UDP mux set on SettingEngine. Default nil:
	// each call opens its own sockets, as pion does.
	UDPMux *UDPMux
	// DecryptFailureThreshold is how many consecutive frames of one stream
	// must fail to decrypt before a DecryptFailingEvent. Default 5.
	DecryptFailureThreshold int
	// ReconnectBudget is how long an established call whose connection
	// dropped (a network change, a NAT rebinding, a lost TURN allocation)
	// may take to recover before it ends with ReasonReconnectGaveUp.
	// Meanwhile the call is StateReconnecting. Default 60 s (the budget of
	// the extension, protocol §6.8); Never: end as soon as the connection
	// drops, as the SimpleX apps do.
	ReconnectBudget time.Duration
	// DisableReconnectExtension stops the SDK from announcing and using the
	// ICE-restart extension (protocol §6.8). By default the SDK announces it
	// in its offer or answer ("smpReconnect": 1, a key every known parser
	// ignores) and, with a peer that announced it too, restarts ICE over
	// x.call.extra when the connection drops. Restart messages are never
	// sent to a peer that did not announce it. Default false.
	DisableReconnectExtension bool
	// PeerMediaTimeout is how long a peer's source may send no frames
	// before a PeerMediaEvent says it is off. Default 3 s, as the SimpleX
	// apps (protocol §6.4); Never: no detection.
	PeerMediaTimeout time.Duration

	// pion is what every call of the Client shares (resolve builds it).
	pion *pionShared
}

// BusyPolicy is what a Client does with an invitation that arrives while
// it is in a call with another contact (protocol §4.1: the core has no busy
// logic; the apps show one call at a time).
type BusyPolicy int

// Busy policies.
const (
	// BusyRing announces the invitation as usual (call waiting): the
	// embedder decides. The default, because it decides nothing behind the
	// embedder's back, lets a bot or gateway carry many calls at once, and
	// tells the caller nothing (SimpleX deliberately does not tell a caller
	// that it was declined, protocol §4.4).
	BusyRing BusyPolicy = iota
	// BusyDeclineLocally rejects the invitation as the apps' decline button
	// does: nothing is sent, so the caller rings until it gives up (its own
	// ring timeout).
	BusyDeclineLocally
	// BusyDeclineWithEnd ends the invitation with x.call.end, so the caller
	// stops ringing at once (both call items become "missed"), at the cost
	// of telling the caller that this side is online.
	BusyDeclineWithEnd
)

// String returns the policy's name, e.g. "decline-locally".
func (p BusyPolicy) String() string {
	switch p {
	case BusyRing:
		return "ring"
	case BusyDeclineLocally:
		return "decline-locally"
	case BusyDeclineWithEnd:
		return "decline-with-end"
	}
	return fmt.Sprintf("BusyPolicy(%d)", int(p))
}

// Defaults of the Config fields.
const (
	defaultRingWindow       = 180 * time.Second
	defaultRingTimeout      = 60 * time.Second
	defaultCloseTimeout     = 5 * time.Second
	defaultEventBuffer      = 128
	defaultConnectTimeout   = 30 * time.Second
	defaultSignalingTimeout = 15 * time.Second
	defaultMaxMessageSize   = 13000
	defaultDecryptThreshold = 5
	defaultPeerMediaTimeout = 3 * time.Second
	defaultReconnectBudget  = 60 * time.Second
)

// resolve checks cfg and returns it with the defaults filled in. A nil cfg
// is all defaults.
func (c *Config) resolve() (Config, error) {
	var v Config
	if c != nil {
		v = *c
	}
	var errs []error
	bad := func(field string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("smpcall: Config.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	// timer resolves a duration that may be turned off (negative → 0 = off).
	timer := func(d *time.Duration, def time.Duration) {
		switch {
		case *d == 0:
			*d = def
		case *d < 0:
			*d = 0
		}
	}
	positive := func(field string, d *time.Duration, def time.Duration) {
		switch {
		case *d == 0:
			*d = def
		case *d < 0:
			bad(field, "%v is negative", *d)
		}
	}
	if v.Logger == nil {
		v.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	timer(&v.RingWindow, defaultRingWindow)
	timer(&v.RingTimeout, defaultRingTimeout)
	timer(&v.CloseTimeout, defaultCloseTimeout)
	timer(&v.ConnectTimeout, defaultConnectTimeout)
	timer(&v.SignalingTimeout, defaultSignalingTimeout)
	timer(&v.PeerMediaTimeout, defaultPeerMediaTimeout)
	timer(&v.ReconnectBudget, defaultReconnectBudget)
	switch v.Busy {
	case BusyRing, BusyDeclineLocally, BusyDeclineWithEnd:
	default:
		bad("Busy", "unknown policy %d", int(v.Busy))
	}
	switch {
	case v.EventBuffer == 0:
		v.EventBuffer = defaultEventBuffer
	case v.EventBuffer < 0:
		bad("EventBuffer", "%d is negative", v.EventBuffer)
	}
	if v.ICEServers == nil {
		v.ICEServers = DefaultICEServers
	}
	for i, s := range v.ICEServers {
		if len(s.URLs) == 0 {
			bad(fmt.Sprintf("ICEServers[%d]", i), "no URLs")
		}
		for _, u := range s.URLs {
			// pion's error would quote the URL with its password.
			if _, err := stun.ParseURI(u); err != nil {
				bad(fmt.Sprintf("ICEServers[%d]", i), "%q is not a STUN or TURN URL", redactURL(u))
			}
		}
	}
	if a := v.ICEAcceptance; a != nil {
		for name, d := range map[string]time.Duration{"Host": a.Host, "ServerReflexive": a.ServerReflexive, "PeerReflexive": a.PeerReflexive, "Relay": a.Relay} {
			if d < 0 {
				bad("ICEAcceptance."+name, "%v is negative", d)
			}
		}
	}
	positive("ICE.InitialDelay", &v.ICE.InitialDelay, 750*time.Millisecond)
	positive("ICE.ExtrasInterval", &v.ICE.ExtrasInterval, 1500*time.Millisecond)
	positive("ICE.ExtrasTimeout", &v.ICE.ExtrasTimeout, 12*time.Second)
	if v.ICE.ExtrasInterval < 10*time.Millisecond && v.ICE.ExtrasInterval > 0 {
		bad("ICE.ExtrasInterval", "%v is below 10ms", v.ICE.ExtrasInterval)
	}
	switch {
	case v.MaxMessageSize == 0:
		v.MaxMessageSize = defaultMaxMessageSize
	case v.MaxMessageSize < MinMessageSize || v.MaxMessageSize > MaxMessageSize:
		bad("MaxMessageSize", "%d is outside [%d, %d]", v.MaxMessageSize, MinMessageSize, MaxMessageSize)
	}
	switch {
	case v.DecryptFailureThreshold == 0:
		v.DecryptFailureThreshold = defaultDecryptThreshold
	case v.DecryptFailureThreshold < 0:
		bad("DecryptFailureThreshold", "%d is negative", v.DecryptFailureThreshold)
	}
	if v.UDPMux != nil {
		if err := v.UDPMux.check(); err != nil {
			bad("UDPMux", "%v", err)
		}
	}
	if len(errs) == 0 {
		p, err := newPionShared(&v)
		if err != nil {
			errs = append(errs, err)
		}
		v.pion = p
	}
	return v, errors.Join(errs...)
}
