package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/framecrypt"
	"github.com/smpcall/smpcall/smp"
)

// Kinds of calls a run compares.
const (
	kindRaw = "raw-pion"
	kindSDK = "smpcall"
)

// fleet is the calls of one step, of one kind.
type fleet interface {
	// prepare makes what n calls need besides the calls (chat users, clients).
	prepare(ctx context.Context, n int) error
	// connect sets up call i and returns once it is connected.
	connect(ctx context.Context, i int) error
	// live counts the calls that are still connected.
	live() int
	// decryptFailures counts frames that failed to decrypt (SDK only).
	decryptFailures() uint64
	close()
}

// loopbackSettings keeps pion on 127.0.0.1 (UDP, IPv4, no mDNS).
func loopbackSettings() *webrtc.SettingEngine {
	se := &webrtc.SettingEngine{}
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return se
}

// sdkConfig is the Client configuration of both ends: loopback, no STUN or
// TURN, defaults otherwise.
func sdkConfig(se *webrtc.SettingEngine) *smpcall.Config {
	return &smpcall.Config{
		ICEServers:     []smpcall.ICEServer{},
		SettingEngine:  se,
		ConnectTimeout: 60 * time.Second,
		CloseTimeout:   20 * time.Second,
	}
}

// rawSpec is the baseline's media: frames as long as the SDK's encrypted ones.
func rawSpec(spec mediaSpec) mediaSpec {
	spec.Bytes += framecrypt.Overhead
	return spec
}

// rawFleet is n raw pion pairs; the far legs live here or in the peer process.
type rawFleet struct {
	r    *runner
	api  *webrtc.API
	spec mediaSpec
	near []*rawLeg
	far  []*rawLeg
}

func (f *rawFleet) prepare(_ context.Context, n int) error {
	f.near = make([]*rawLeg, n)
	f.far = make([]*rawLeg, n)
	return nil
}

// connect sets up pair i the way the SDK's calls go: the far leg (the
// callee, which accepted) offers and the near one (the bot) answers, so
// the measured leg has the SDK bot's ICE and DTLS roles.
func (f *rawFleet) connect(ctx context.Context, i int) error {
	a, err := newRawLeg(f.api, f.r.m, f.spec, f.r.opts.rawMLines)
	if err != nil {
		return err
	}
	f.near[i] = a
	if f.r.peer != nil {
		resp, err := f.r.peer.call(ctx, request{Op: "raw-offer", Spec: f.spec, N: f.r.opts.rawMLines})
		if err != nil {
			return err
		}
		answer, err := a.answer(resp.SDP)
		if err != nil {
			return err
		}
		if _, err := f.r.peer.call(ctx, request{Op: "raw-answer", Leg: resp.Leg, SDP: answer}); err != nil {
			return err
		}
		return a.wait(ctx)
	}
	b, err := newRawLeg(f.api, f.r.m, f.spec, f.r.opts.rawMLines)
	if err != nil {
		return err
	}
	f.far[i] = b
	offer, err := b.offer()
	if err != nil {
		return err
	}
	answer, err := a.answer(offer)
	if err != nil {
		return err
	}
	if err := b.applyAnswer(answer); err != nil {
		return err
	}
	if err := a.wait(ctx); err != nil {
		return err
	}
	return b.wait(ctx)
}

func (f *rawFleet) live() int {
	n := 0
	for _, l := range f.near {
		if l != nil && l.pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
			n++
		}
	}
	return n
}

func (f *rawFleet) decryptFailures() uint64 { return 0 }

func (f *rawFleet) close() {
	legs := append(append([]*rawLeg(nil), f.near...), f.far...)
	_ = parallel(len(legs), 64, func(i int) error {
		if legs[i] != nil {
			legs[i].close()
		}
		return nil
	})
}

// sdkFleet is n SDK calls placed by one bot Client; the far ends live here
// or in the peer process.
type sdkFleet struct {
	r        *runner
	spec     mediaSpec
	peers    *sdkPeers
	bot      *sdkBot
	contacts []int64
}

func (f *sdkFleet) prepare(ctx context.Context, n int) error {
	cfg := sdkConfig(f.r.se)
	var t smpcall.Transport
	if f.r.peer != nil {
		resp, err := f.r.peer.call(ctx, request{Op: "sdk", N: n, Spec: f.spec})
		if err != nil {
			return err
		}
		f.contacts = resp.Contacts
		cc, err := smp.DialChatCore(ctx, resp.URL, &smp.ChatClientOptions{EventQueueSize: 1 << 16, NoReconnect: true})
		if err != nil {
			return err
		}
		t = cc
	} else {
		p, err := newSDKPeers(n, cfg, f.r.m, f.spec)
		if err != nil {
			return err
		}
		f.peers, f.contacts = p, p.contacts
		t = p.bot
	}
	if len(f.contacts) != n {
		return fmt.Errorf("peer process made %d contacts, not %d", len(f.contacts), n)
	}
	bot, err := newSDKBot(t, cfg, f.r.opts.udpMux)
	if err != nil {
		_ = t.Close()
		return err
	}
	f.bot = bot
	return nil
}

func (f *sdkFleet) connect(ctx context.Context, i int) error {
	if f.bot == nil {
		return errors.New("not prepared")
	}
	return f.bot.call(ctx, f.contacts[i], f.r.m, f.spec)
}

func (f *sdkFleet) live() int {
	if f.bot == nil {
		return 0
	}
	f.bot.mu.Lock()
	defer f.bot.mu.Unlock()
	n := 0
	for _, k := range f.bot.calls {
		if k.State() == smpcall.StateConnected {
			n++
		}
	}
	return n
}

func (f *sdkFleet) decryptFailures() uint64 {
	if f.bot == nil {
		return 0
	}
	return f.bot.decryptFailures()
}

func (f *sdkFleet) close() {
	if f.bot != nil {
		f.bot.close()
	}
	if f.peers != nil {
		f.peers.close()
	}
}
