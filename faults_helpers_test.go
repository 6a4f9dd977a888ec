package smpcall_test

// Helpers of the fault, hostile-peer and security suites.

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/netsim"
	"github.com/smpcall/smpcall/smp"
)

// lanProfile is a simulated network without NATs, loss or TURN: the
// cheapest one to run a real call over.
var lanProfile = netsim.Profile{Name: "lan", Delay: 5 * time.Millisecond}

// pairOptions configure startPair.
type pairOptions struct {
	profile netsim.Profile // default lanProfile
	media   smpcall.CallMediaType
	// mod changes a side's Config; wrap a side's Transport ("alice", "bob").
	mod  func(side netsim.Side, c *smpcall.Config)
	wrap func(name string, tr smpcall.Transport) smpcall.Transport
	// noMedia: no sources (nothing but ICE keepalives and RTCP flows).
	noMedia bool
	// noWire: do not keep the messages that cross (floods).
	noWire bool
	// sim is the network to call over (default: a new one of profile).
	sim *netsim.Net
	// alice and bob are the calls' options (default: endless sources,
	// unless noMedia, and sinks into the pair's arrivals); with them the
	// pair returns as soon as both sides are connected.
	alice, bob *smpcall.CallOptions
}

// livePair is a connected call between two SDK Clients whose signaling
// crosses the smp loopback and whose media crosses a simulated network,
// with media flowing both ways. It runs in the caller's synctest bubble.
type livePair struct {
	sim        *netsim.Net
	net        *smp.Network
	cores      [2]*smp.Core
	clients    [2]*smpcall.Client
	peer       [2]int64 // the other side's contact id at each side
	alice, bob *smpcall.Call
	aEvents    *eventRecorder
	bEvents    *eventRecorder
	aGot, bGot arrivals
	wire       *rawWire
}

// rawWire keeps every chat message that crossed the loopback, as bytes.
type rawWire struct {
	mu   sync.Mutex
	msgs []smp.Trace
}

func (w *rawWire) trace(tr smp.Trace) {
	w.mu.Lock()
	w.msgs = append(w.msgs, tr)
	w.mu.Unlock()
}

// find returns the raw messages from → to of one event, oldest first.
func (w *rawWire) find(from, event string) [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out [][]byte
	for _, tr := range w.msgs {
		if tr.From != from || tr.Fate == smp.Dropped {
			continue
		}
		if m, err := smp.DecodeMessage(tr.Data); err == nil && m.Event == event {
			out = append(out, tr.Data)
		}
	}
	return out
}

// events lists "from>to event" of every message that crossed.
func (w *rawWire) events() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, tr := range w.msgs {
		ev := "garbage"
		if m, err := smp.DecodeMessage(tr.Data); err == nil {
			ev = m.Event
		}
		out = append(out, tr.From+">"+tr.To+" "+ev)
	}
	return out
}

func startPair(t *testing.T, o pairOptions) *livePair {
	t.Helper()
	if o.profile.Name == "" {
		o.profile = lanProfile
	}
	if o.media == "" {
		o.media = smpcall.MediaVideo
	}
	sim := o.sim
	if sim == nil {
		var err error
		sim, err = netsim.New(t, o.profile, 11)
		require.NoError(t, err)
	}
	lp := &livePair{sim: sim, wire: &rawWire{}}
	w := lp.wire
	if o.noWire {
		w = nil
	}
	lp.net = newLoopback(t, w)
	var err error
	for i, name := range sideNames {
		lp.cores[i], err = lp.net.AddUser(name, nil)
		require.NoError(t, err)
	}
	lp.peer[0], lp.peer[1], err = lp.net.Connect("alice", "bob")
	require.NoError(t, err)
	for i, name := range sideNames {
		side := netsim.Side(i)
		cfg := &smpcall.Config{SettingEngine: sim.SettingEngine(side), ICEServers: iceServers(sim, side), RelayOnly: o.profile.RelayOnly}
		if cfg.ICEServers == nil {
			cfg.ICEServers = []smpcall.ICEServer{}
		}
		if o.mod != nil {
			o.mod(side, cfg)
		}
		var tr smpcall.Transport = lp.cores[i]
		if o.wrap != nil {
			tr = o.wrap(name, tr)
		}
		lp.clients[i], err = smpcall.NewClient(tr, cfg)
		require.NoError(t, err)
		c := lp.clients[i]
		t.Cleanup(func() { require.NoError(t, c.Close()) })
	}
	opts := func(got *arrivals, tag byte) *smpcall.CallOptions {
		co := &smpcall.CallOptions{Media: o.media, Sinks: smpcall.Sinks{Mic: got.audioSink(), Camera: got.videoSink()}}
		if !o.noMedia {
			co.Sources.Mic = endlessAudio{&endless{tag: tag, every: 20 * time.Millisecond}}
			if o.media == smpcall.MediaVideo {
				co.Sources.Camera = endlessVideo{&endless{tag: tag, vid: true, every: 33 * time.Millisecond}}
			}
		}
		return co
	}
	aliceOpts, bobOpts := o.alice, o.bob
	if aliceOpts == nil {
		aliceOpts, bobOpts = opts(&lp.aGot, 'a'), opts(&lp.bGot, 'b')
	}
	aliceOpts.Media = o.media
	lp.alice, err = lp.clients[0].PlaceCall(ctx, lp.peer[0], aliceOpts)
	require.NoError(t, err)
	lp.aEvents = record(lp.alice)
	inv, err := lp.clients[1].NextInvitation(ctxWithin(t, time.Minute))
	require.NoError(t, err)
	lp.bob, err = lp.clients[1].AcceptCall(ctx, inv.Contact.ContactID, bobOpts)
	require.NoError(t, err)
	lp.bEvents = record(lp.bob)
	for _, k := range []*smpcall.Call{lp.alice, lp.bob} {
		_, err := k.WaitConnected(ctxWithin(t, time.Minute))
		require.NoError(t, err, fmt.Sprint(k.Reason()))
	}
	if o.alice == nil {
		time.Sleep(time.Second) // media flowing
	}
	return lp
}

// count returns how many frames arrived so far.
func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.times)
}

// logger is a Config.Logger that keeps everything (debug level) in s.
func (s *syncBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newLoopback is an smp loopback network that keeps what crosses in w (if
// not nil) and is closed when the test ends.
func newLoopback(t *testing.T, w *rawWire) *smp.Network {
	var trace func(smp.Trace)
	if w != nil {
		trace = w.trace
	}
	n := smp.NewNetwork(&smp.NetworkConfig{Trace: trace})
	t.Cleanup(func() { require.NoError(t, n.Close()) })
	return n
}
