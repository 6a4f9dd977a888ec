package smpcall_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/internal/netsim"
	"github.com/smpcall/smpcall/smp"
	"github.com/smpcall/smpcall/video"
)

// arrivals remembers when frames reached a sink.
type arrivals struct {
	mu    sync.Mutex
	times []time.Time
}

func (a *arrivals) add() {
	a.mu.Lock()
	a.times = append(a.times, time.Now())
	a.mu.Unlock()
}

// firstAfter returns the first arrival after t (ok false if none).
func (a *arrivals) firstAfter(t time.Time) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, at := range a.times {
		if at.After(t) {
			return at, true
		}
	}
	return time.Time{}, false
}

func (a *arrivals) audioSink() audio.Sink {
	return audio.SinkFunc(func(audio.Frame) error { a.add(); return nil })
}

func (a *arrivals) videoSink() video.Sink {
	return video.SinkFunc(func(video.Frame) error { a.add(); return nil })
}

// liveCall is a connected call over a simulated network with endless media
// both ways, for the reconnection tests.
type liveCall struct {
	n              *netsim.Net
	wire           *wireLog
	alice, bob     *smpcall.Call
	aGot, bGot     arrivals // audio and video frames each side received
	aEvents, bEvts *eventRecorder
	statuses       statusLog // what both Clients reported to their cores
}

// statusTap records the call statuses a Client reports to its core
// (/_call status, protocol §4.2); the rest passes through.
type statusTap struct {
	smpcall.Transport
	log  *statusLog
	side string
}

func (s *statusTap) Status(ctx context.Context, id int64, st smpcall.WebRTCCallStatus) error {
	s.log.add(s.side, st)
	return s.Transport.Status(ctx, id, st)
}

type statusLog struct {
	mu   sync.Mutex
	list []string
}

func (l *statusLog) add(side string, st smpcall.WebRTCCallStatus) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(l.list, side+" "+string(st))
}

// since returns what was reported after the first n reports.
func (l *statusLog) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.list[n:]...)
}

func (l *statusLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.list)
}

// eventRecorder keeps a call's events.
type eventRecorder struct {
	mu  sync.Mutex
	evs []smpcall.Event
}

func record(k *smpcall.Call) *eventRecorder {
	r := &eventRecorder{}
	go func() {
		for ev := range k.Events() {
			r.mu.Lock()
			r.evs = append(r.evs, ev)
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *eventRecorder) states() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.evs {
		if e, ok := ev.(*smpcall.CallStateEvent); ok {
			out = append(out, e.To.String())
		}
	}
	return out
}

func startLiveCall(t *testing.T, p netsim.Profile, mod func(side netsim.Side, c *smpcall.Config)) *liveCall {
	t.Helper()
	n, err := netsim.New(t, p, 7)
	require.NoError(t, err)
	lc := &liveCall{n: n, wire: &wireLog{}}
	net := smp.NewNetwork(&smp.NetworkConfig{Trace: lc.wire.trace})
	t.Cleanup(func() { require.NoError(t, net.Close()) })
	ac, _ := net.AddUser("alice", nil)
	bc, _ := net.AddUser("bob", nil)
	bobID, _, err := net.Connect("alice", "bob")
	require.NoError(t, err)
	var clients [2]*smpcall.Client
	for i, core := range []*smp.Core{ac, bc} {
		side := netsim.Side(i)
		cfg := &smpcall.Config{SettingEngine: n.SettingEngine(side), ICEServers: iceServers(n, side), RelayOnly: p.RelayOnly}
		if mod != nil {
			mod(side, cfg)
		}
		clients[i], err = smpcall.NewClient(&statusTap{Transport: core, log: &lc.statuses, side: []string{"alice", "bob"}[i]}, cfg)
		require.NoError(t, err)
		c := clients[i]
		t.Cleanup(func() { require.NoError(t, c.Close()) })
	}
	opts := func(got *arrivals, tag byte) *smpcall.CallOptions {
		return &smpcall.CallOptions{Media: smpcall.MediaVideo,
			Sources: smpcall.Sources{Mic: endlessAudio{&endless{tag: tag, every: 20 * time.Millisecond}},
				Camera: endlessVideo{&endless{tag: tag, vid: true, every: 33 * time.Millisecond}}},
			Sinks: smpcall.Sinks{Mic: got.audioSink(), Camera: got.videoSink()}}
	}
	lc.alice, err = clients[0].PlaceCall(ctx, bobID, opts(&lc.aGot, 'a'))
	require.NoError(t, err)
	lc.aEvents = record(lc.alice)
	inv, err := clients[1].NextInvitation(ctxWithin(t, time.Minute))
	require.NoError(t, err)
	lc.bob, err = clients[1].AcceptCall(ctx, inv.Contact.ContactID, opts(&lc.bGot, 'b'))
	require.NoError(t, err)
	lc.bEvts = record(lc.bob)
	for _, k := range []*smpcall.Call{lc.alice, lc.bob} {
		_, err := k.WaitConnected(ctxWithin(t, time.Minute))
		require.NoError(t, err)
	}
	time.Sleep(2 * time.Second) // media flowing
	return lc
}

func (lc *liveCall) restartMessages() []string {
	var out []string
	for _, l := range lc.wire.lines() {
		if strings.Contains(l, "restart") || strings.HasSuffix(l, " candidates") {
			out = append(out, l)
		}
	}
	return out
}

// The network drops for 5 s mid-call (e.g. Wi-Fi lost and back): both
// sides report reconnecting, the callee (the original offerer) restarts
// ICE over x.call.extra, and media resumes and decrypts within 2 s of the
// link returning, with the same key.
func TestReconnectAfterLinkCut(t *testing.T) {
	p, _ := netsim.ProfileByName("wan-50ms-5pct")
	p.Loss = netsim.Loss{}
	synctest.Test(t, func(t *testing.T) {
		lc := startLiveCall(t, p, nil)
		reported := lc.statuses.len()
		require.Positive(t, reported, "the tap sees the statuses of the call's start")
		lc.n.SetLinkUp(netsim.A, false)
		time.Sleep(5 * time.Second)
		require.Equal(t, smpcall.StateReconnecting, lc.alice.State())
		require.Equal(t, smpcall.StateReconnecting, lc.bob.State())
		require.Zero(t, lc.alice.Stats().RTT, "no RTT for a path that is down")
		require.Zero(t, lc.bob.Stats().RTT, "no RTT for a path that is down")
		back := time.Now()
		lc.n.SetLinkUp(netsim.A, true)
		time.Sleep(10 * time.Second)
		for name, got := range map[string]*arrivals{"alice": &lc.aGot, "bob": &lc.bGot} {
			at, ok := got.firstAfter(back)
			require.True(t, ok, "%s receives media again", name)
			t.Logf("%s: media again %v after the link returned", name, at.Sub(back))
			require.LessOrEqual(t, at.Sub(back), 2*time.Second, name)
		}
		require.Equal(t, smpcall.StateConnected, lc.alice.State())
		require.Equal(t, smpcall.StateConnected, lc.bob.State())
		require.Positive(t, lc.alice.Stats().RTT, "measured again on the path that came back")
		for _, k := range []*smpcall.Call{lc.alice, lc.bob} {
			for _, s := range k.Stats().Streams {
				require.Zero(t, s.DecryptFailed)
			}
		}
		require.Contains(t, lc.aEvents.states(), "reconnecting")
		require.Subset(t, lc.bEvts.states(), []string{"reconnecting", "connected"})
		t.Logf("restart messages on the wire: %q", lc.restartMessages())
		require.Empty(t, lc.statuses.since(reported), "nothing about the interruption went to the cores")
		require.NoError(t, lc.alice.End(ctx))
		<-lc.bob.Done()
	})
}

// A network change: Alice's NAT gives her a new address, so the path the
// call used is dead for good. Only an ICE restart finds the new one.
func TestReconnectAfterAddressChange(t *testing.T) {
	p, _ := netsim.ProfileByName("wan-50ms-5pct")
	p.Loss = netsim.Loss{}
	synctest.Test(t, func(t *testing.T) {
		lc := startLiveCall(t, p, nil)
		require.NoError(t, lc.n.Rebind(netsim.A))
		moved := time.Now()
		time.Sleep(20 * time.Second)
		require.Equal(t, smpcall.StateConnected, lc.alice.State())
		require.Equal(t, smpcall.StateConnected, lc.bob.State())
		for name, got := range map[string]*arrivals{"alice": &lc.aGot, "bob": &lc.bGot} {
			at, ok := got.firstAfter(moved.Add(5 * time.Second))
			require.True(t, ok, "%s receives media on the new path", name)
			t.Logf("%s: media on the new path %v after the move", name, at.Sub(moved))
		}
		require.NotEmpty(t, lc.restartMessages(), "an ICE restart found the new path")
		require.NoError(t, lc.alice.End(ctx))
		<-lc.bob.Done()
	})
}

// A link down for longer than the budget ends the call with its reason.
func TestReconnectGivesUp(t *testing.T) {
	p, _ := netsim.ProfileByName("clean")
	synctest.Test(t, func(t *testing.T) {
		lc := startLiveCall(t, p, nil)
		lc.n.SetLinkUp(netsim.A, false)
		start := time.Now()
		<-lc.alice.Done()
		<-lc.bob.Done()
		for _, k := range []*smpcall.Call{lc.alice, lc.bob} {
			r, err := k.Reason()
			if r == smpcall.ReasonRemoteHangup {
				continue // the other side gave up first and told this one
			}
			require.Equal(t, smpcall.ReasonReconnectGaveUp, r)
			require.Error(t, err)
		}
		took := time.Since(start)
		t.Logf("ended %v after the link went down", took)
		require.Less(t, took, 60*time.Second+2*pathTimeoutForTest, "within the budget (60 s) after the path timed out")
	})
}

// With ReconnectBudget set to Never a call ends as soon as its connection
// drops, as the SimpleX apps do, with ReasonConnectionFailed.
func TestNoReconnectEndsAsConnectionFailed(t *testing.T) {
	p, _ := netsim.ProfileByName("clean")
	synctest.Test(t, func(t *testing.T) {
		lc := startLiveCall(t, p, func(_ netsim.Side, c *smpcall.Config) { c.ReconnectBudget = smpcall.Never })
		lc.n.SetLinkUp(netsim.A, false)
		start := time.Now()
		<-lc.alice.Done()
		<-lc.bob.Done()
		failed := 0
		for _, k := range []*smpcall.Call{lc.alice, lc.bob} {
			r, err := k.Reason()
			if r == smpcall.ReasonRemoteHangup {
				continue // the other side ended first and told this one
			}
			require.Equal(t, smpcall.ReasonConnectionFailed, r)
			require.Error(t, err)
			failed++
			rec, ok := k.Record()
			require.True(t, ok)
			require.Equal(t, smpcall.ReasonConnectionFailed, rec.Reason)
		}
		require.Positive(t, failed)
		require.NotContains(t, append(lc.aEvents.states(), lc.bEvts.states()...), "reconnecting", "no reconnection was tried")
		t.Logf("ended %v after the link went down", time.Since(start))
		require.Less(t, time.Since(start), 2*pathTimeoutForTest+time.Second, "at once, not after a budget")
	})
}

// pathTimeoutForTest mirrors the SDK's silence threshold (reconnect.go).
const pathTimeoutForTest = 3 * time.Second

// A peer without the extension (a SimpleX app, or Config.DisableReconnectExtension)
// never receives an ICE-restart message: the SDK waits for the old path,
// which comes back after a short outage. Both ways round: the callee (the
// original offerer, the side that would restart) facing a caller without
// the extension, and the caller facing a callee without it.
func TestNoRestartMessagesWithoutTheExtension(t *testing.T) {
	for _, tc := range []struct {
		name    string
		without netsim.Side
	}{{"caller without it", netsim.A}, {"callee without it", netsim.B}} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := netsim.ProfileByName("clean")
			synctest.Test(t, func(t *testing.T) {
				lc := startLiveCall(t, p, func(side netsim.Side, c *smpcall.Config) {
					if side == tc.without {
						c.DisableReconnectExtension = true
					}
				})
				reported := lc.statuses.len()
				lc.n.SetLinkUp(netsim.B, false)
				time.Sleep(8 * time.Second)
				require.Equal(t, smpcall.StateReconnecting, lc.alice.State())
				back := time.Now()
				lc.n.SetLinkUp(netsim.B, true)
				time.Sleep(5 * time.Second)
				require.Equal(t, smpcall.StateConnected, lc.alice.State(), "the old path came back")
				_, ok := lc.bGot.firstAfter(back)
				require.True(t, ok)
				require.Empty(t, lc.restartMessages(), "no restart message crossed the wire")
				require.Empty(t, lc.statuses.since(reported), "nothing about the interruption went to the cores")
				require.NoError(t, lc.alice.End(ctx))
				<-lc.bob.Done()
			})
		})
	}
}
