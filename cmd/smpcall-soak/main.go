// Command smpcall-soak runs calls in a loop and checks that nothing
// accumulates (RELIABILITY.md, "Soak"): -calls lanes, each a caller and a
// callee Client on the in-memory SMP loopback, place, accept, connect,
// carry media for -hold, and hang up, again and again for -duration. It
// prints a progress line every -progress and, last, a JSON summary: calls
// completed, failures by reason, setup time (p50, p99, max), frames
// delivered, decrypt failures, and goroutines, heap and open files before
// the first call and after everything closed, which must return to the
// baseline.
//
//	go run ./cmd/smpcall-soak -calls 20 -duration 60s
//	go run ./cmd/smpcall-soak -calls 8 -duration 2m -media audio -net wan-50ms-5pct
//
// -net loopback (the default) runs WebRTC over real UDP on 127.0.0.1;
// any profile of internal/netsim (clean, wan-50ms-5pct, wan-100ms-5pct,
// sat-250ms-bursty-300k, loss-20pct, symmetric-nat-turn, relay-only) runs
// it over a simulated network (pion vnet, one per lane, in real time).
//
// The exit status is 0 when every call completed and the resources came
// back to the baseline, 1 otherwise, 2 for bad flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/internal/netsim"
	"github.com/smpcall/smpcall/internal/pace"
	"github.com/smpcall/smpcall/smp"
	"github.com/smpcall/smpcall/video"
)

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) }

// Summary is the last line of the output, in JSON.
type Summary struct {
	OK       bool           `json:"ok"`
	Calls    int            `json:"calls"`
	Duration string         `json:"duration"`
	Hold     string         `json:"hold"`
	Media    string         `json:"media"`
	Net      string         `json:"net"`
	Done     int            `json:"completed"`
	Failed   int            `json:"failed"`
	ByReason map[string]int `json:"failedByReason"`
	SetupMs  Percentiles    `json:"setupMs"`
	// FramesReceived counts the frames the callers and callees received
	// (after decryption); DecryptFailed the frames that did not decrypt.
	FramesReceived uint64    `json:"framesReceived"`
	DecryptFailed  uint64    `json:"decryptFailed"`
	Before         Resources `json:"before"`
	After          Resources `json:"after"`
	// Returned reports whether After is back at Before (goroutines and
	// open files at most Before, heap within 4 MiB).
	Returned bool     `json:"returned"`
	Problems []string `json:"problems,omitempty"`
}

// Percentiles of a duration distribution, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Resources are the process's goroutines, live heap (after a GC) and open
// files (-1 where /proc/self/fd cannot be read).
type Resources struct {
	Goroutines int    `json:"goroutines"`
	HeapBytes  uint64 `json:"heapBytes"`
	OpenFiles  int    `json:"openFiles"`
}

type options struct {
	calls    int
	duration time.Duration
	hold     time.Duration
	media    smpcall.CallMediaType
	net      string
	progress time.Duration
	seed     int64
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	var media string
	fs := flag.NewFlagSet("smpcall-soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.calls, "calls", 4, "concurrent calls (lanes of a caller and a callee)")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long lanes start new calls")
	fs.DurationVar(&o.hold, "hold", 2*time.Second, "how long each call carries media before it is hung up")
	fs.StringVar(&media, "media", "video", "audio or video")
	fs.StringVar(&o.net, "net", "loopback", "loopback (UDP on 127.0.0.1) or an internal/netsim profile name")
	fs.DurationVar(&o.progress, "progress", 5*time.Second, "how often a progress line is printed")
	fs.Int64Var(&o.seed, "seed", 1, "seed of the simulated networks")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.media = smpcall.CallMediaType(media)
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.calls < 1:
		return o, errors.New("-calls must be at least 1")
	case o.duration <= 0 || o.hold <= 0 || o.progress <= 0:
		return o, errors.New("-duration, -hold and -progress must be positive")
	case o.media != smpcall.MediaAudio && o.media != smpcall.MediaVideo:
		return o, fmt.Errorf("-media %q: audio or video", media)
	}
	if _, ok := netsim.ProfileByName(o.net); !ok && o.net != "loopback" {
		return o, fmt.Errorf("-net %q: loopback or one of the internal/netsim profiles", o.net)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "smpcall-soak:", err)
		}
		return 2
	}
	s := Summary{Calls: o.calls, Duration: o.duration.String(), Hold: o.hold.String(), Media: string(o.media), Net: o.net, ByReason: map[string]int{}}
	s.Before = measure()
	setups, err := soak(ctx, o, &s, stdout)
	if err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	s.After = settle(s.Before)
	s.Returned = back(s.Before, s.After) && s.After.HeapBytes <= s.Before.HeapBytes+4<<20
	s.SetupMs = percentiles(setups)
	if !s.Returned {
		s.Problems = append(s.Problems, fmt.Sprintf("resources did not return to the baseline: before %+v, after %+v", s.Before, s.After))
	}
	if s.Failed > 0 {
		s.Problems = append(s.Problems, fmt.Sprintf("%d calls failed", s.Failed))
	}
	if s.Done == 0 {
		s.Problems = append(s.Problems, "no call completed")
	}
	s.OK = len(s.Problems) == 0
	b, _ := json.Marshal(s)
	fmt.Fprintln(stdout, string(b))
	if !s.OK {
		return 1
	}
	return 0
}

// lane is one caller and one callee.
type lane struct {
	caller, callee *smpcall.Client
	calleeAtCaller int64
}

// counters are shared by the lanes.
type counters struct {
	mu       sync.Mutex
	done     int
	byReason map[string]int
	setups   []time.Duration
	frames   atomic.Uint64
	failed   atomic.Uint64 // decrypt failures
	active   atomic.Int32
}

func (c *counters) fail(reason string) {
	c.mu.Lock()
	c.byReason[reason]++
	c.mu.Unlock()
}

func soak(ctx context.Context, o options, s *Summary, stdout io.Writer) (setups []time.Duration, err error) {
	net := smp.NewNetwork(&smp.NetworkConfig{Seed: uint64(o.seed)})
	tb := &cleanups{}
	lanes := make([]*lane, o.calls)
	// What closing reports is part of the result (named results: a
	// deferred assignment to a local would be lost).
	defer func() {
		for _, l := range lanes {
			if l == nil {
				continue
			}
			err = errors.Join(err, l.caller.Close(), l.callee.Close())
		}
		err = errors.Join(err, net.Close(), tb.run())
	}()
	for i := range lanes {
		a, b := fmt.Sprintf("caller%d", i), fmt.Sprintf("callee%d", i)
		ac, err := net.AddUser(a, nil)
		if err != nil {
			return nil, err
		}
		bc, err := net.AddUser(b, nil)
		if err != nil {
			return nil, err
		}
		id, _, err := net.Connect(a, b)
		if err != nil {
			return nil, err
		}
		acfg, bcfg, err := configs(o, tb, i)
		if err != nil {
			return nil, err
		}
		l := &lane{calleeAtCaller: id}
		if l.caller, err = smpcall.NewClient(ac, acfg); err != nil {
			return nil, err
		}
		if l.callee, err = smpcall.NewClient(bc, bcfg); err != nil {
			_ = l.caller.Close()
			return nil, err
		}
		lanes[i] = l
	}

	c := &counters{byReason: map[string]int{}}
	start := time.Now()
	deadline := start.Add(o.duration)
	stopProgress := make(chan struct{})
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() {
		defer pwg.Done()
		t := time.NewTicker(o.progress)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				c.mu.Lock()
				done, failed := c.done, 0
				for _, n := range c.byReason {
					failed += n
				}
				c.mu.Unlock()
				r := measure()
				fmt.Fprintf(stdout, "progress: %4.0fs completed %d failed %d active %d goroutines %d heap %d KiB files %d\n",
					time.Since(start).Seconds(), done, failed, c.active.Load(), r.Goroutines, r.HeapBytes>>10, r.OpenFiles)
			}
		}
	}()
	var wg sync.WaitGroup
	for _, l := range lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				l.once(ctx, o, c)
			}
		}()
	}
	wg.Wait()
	close(stopProgress)
	pwg.Wait()

	c.mu.Lock()
	defer c.mu.Unlock()
	s.Done = c.done
	for r, n := range c.byReason {
		s.ByReason[r] = n
		s.Failed += n
	}
	s.FramesReceived = c.frames.Load()
	s.DecryptFailed = c.failed.Load()
	return c.setups, nil
}

// once runs one call of a lane: place, accept, connect, media, hang up.
func (l *lane) once(ctx context.Context, o options, c *counters) {
	c.active.Add(1)
	defer c.active.Add(-1)
	var callerGot, calleeGot atomic.Uint64
	opts := func(got *atomic.Uint64) *smpcall.CallOptions {
		co := &smpcall.CallOptions{Media: o.media,
			Sources: smpcall.Sources{Mic: &synthAudio{}},
			Sinks: smpcall.Sinks{Mic: audio.SinkFunc(func(audio.Frame) error { got.Add(1); return nil }),
				Camera: video.SinkFunc(func(video.Frame) error { got.Add(1); return nil })}}
		if o.media == smpcall.MediaVideo {
			co.Sources.Camera = &synthVideo{}
		}
		return co
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	begin := time.Now()
	caller, err := l.caller.PlaceCall(cctx, l.calleeAtCaller, opts(&callerGot))
	if err != nil {
		c.fail("place_call_error")
		time.Sleep(100 * time.Millisecond)
		return
	}
	defer func() { _ = caller.End(context.Background()) }()
	inv, err := l.callee.NextInvitation(cctx)
	if err != nil {
		c.fail("no_invitation")
		return
	}
	callee, err := l.callee.AcceptCall(cctx, inv.Contact.ContactID, opts(&calleeGot))
	if err != nil {
		c.fail("accept_error")
		return
	}
	defer func() { _ = callee.End(context.Background()) }()
	for _, k := range []*smpcall.Call{caller, callee} {
		if _, err := k.WaitConnected(cctx); err != nil {
			r, _ := k.Reason()
			if r == smpcall.ReasonNone {
				c.fail("setup_timeout")
			} else {
				c.fail(r.String())
			}
			return
		}
	}
	setup := time.Since(begin)
	select {
	case <-time.After(o.hold):
	case <-caller.Done():
	case <-callee.Done():
	}
	for _, k := range []*smpcall.Call{caller, callee} {
		if r, _ := k.Reason(); r != smpcall.ReasonNone {
			c.fail("dropped_" + r.String())
			return
		}
	}
	st := [2]smpcall.CallStats{caller.Stats(), callee.Stats()}
	if err := caller.End(cctx); err != nil {
		c.fail("end_timeout")
		return
	}
	select {
	case <-callee.Done():
	case <-cctx.Done():
		c.fail("peer_not_told")
		return
	}
	if r, _ := callee.Reason(); r != smpcall.ReasonRemoteHangup {
		c.fail("callee_" + r.String())
		return
	}
	for _, s := range st {
		for _, ss := range s.Streams {
			c.failed.Add(ss.DecryptFailed)
		}
	}
	got := callerGot.Load() + calleeGot.Load()
	c.frames.Add(got)
	if callerGot.Load() == 0 || calleeGot.Load() == 0 {
		c.fail("no_media")
		return
	}
	c.mu.Lock()
	c.done++
	c.setups = append(c.setups, setup)
	c.mu.Unlock()
}

// configs returns the two Configs of lane i: real UDP on 127.0.0.1, or a
// simulated network of its own.
func configs(o options, tb *cleanups, i int) (a, b *smpcall.Config, err error) {
	if o.net == "loopback" {
		se := &webrtc.SettingEngine{}
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
		se.SetIncludeLoopbackCandidate(true)
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		return &smpcall.Config{ICEServers: []smpcall.ICEServer{}, SettingEngine: se},
			&smpcall.Config{ICEServers: []smpcall.ICEServer{}, SettingEngine: se}, nil
	}
	p, _ := netsim.ProfileByName(o.net)
	n, err := netsim.New(tb, p, o.seed+int64(i))
	if err != nil {
		return nil, nil, err
	}
	cfg := func(s netsim.Side) *smpcall.Config {
		c := &smpcall.Config{SettingEngine: n.SettingEngine(s), RelayOnly: p.RelayOnly, ICEServers: []smpcall.ICEServer{}}
		for _, srv := range n.ICEServers(s) {
			cred, _ := srv.Credential.(string)
			c.ICEServers = append(c.ICEServers, smpcall.ICEServer{URLs: srv.URLs, Username: srv.Username, Credential: cred})
		}
		return c
	}
	return cfg(netsim.A), cfg(netsim.B), nil
}

// cleanups stands in for the testing.TB that netsim.New wants (it uses
// Cleanup and Errorf only; any other method would panic on the nil
// embedded interface): the simulated networks close when run is called.
type cleanups struct {
	testing.TB
	mu   sync.Mutex
	fns  []func()
	errs []string
}

func (c *cleanups) Cleanup(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, f)
}

func (c *cleanups) Errorf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

// run runs the cleanups, last first, and returns the errors they reported.
func (c *cleanups) run() error {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, e := range c.errs {
		errs = append(errs, errors.New(e))
	}
	return errors.Join(errs...)
}

// measure reads the process's resources after two GCs (the second one
// empties the sync.Pool caches that the first moved aside).
func measure() Resources {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	r := Resources{Goroutines: runtime.NumGoroutine(), HeapBytes: m.HeapAlloc, OpenFiles: -1}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		r.OpenFiles = len(fds) - 1 // ReadDir's own descriptor
	}
	return r
}

// back reports whether the goroutines and open files in r are at most
// base's (files unknown: not counted).
func back(base, r Resources) bool {
	return r.Goroutines <= base.Goroutines && (base.OpenFiles < 0 || r.OpenFiles <= base.OpenFiles)
}

// settle measures until the resources are back at the baseline, or 10 s
// passed: goroutines of closed peer connections exit shortly after Close.
func settle(base Resources) Resources {
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := measure()
		if back(base, r) || time.Now().After(deadline) {
			return r
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) float64 {
		i := int(q * float64(len(s)-1))
		return float64(s[i].Microseconds()) / 1000
	}
	return Percentiles{P50: at(0.5), P99: at(0.99), Max: at(1)}
}

// synthAudio sends a 100-byte Opus-like frame (TOC byte 0x78) every 20 ms.
type synthAudio struct{ n uint16 }

func (s *synthAudio) ReadFrame(ctx context.Context) (audio.Frame, error) {
	if err := pace.Until(ctx, time.Now().Add(20*time.Millisecond), nil, nil); err != nil {
		return audio.Frame{}, err
	}
	s.n++
	f := make([]byte, 100)
	f[0], f[1], f[2] = 0x78, byte(s.n>>8), byte(s.n)
	return audio.Frame{Data: f, Duration: 20 * time.Millisecond}, nil
}

// synthVideo sends a 1,200-byte VP8-like frame 30 times a second, a key
// frame every 30 frames and when asked.
type synthVideo struct {
	n   int
	key atomic.Bool
}

func (s *synthVideo) ReadFrame(ctx context.Context) (video.Frame, error) {
	if err := pace.Until(ctx, time.Now().Add(33*time.Millisecond), nil, nil); err != nil {
		return video.Frame{}, err
	}
	f := make([]byte, 1200)
	f[0] = 0x01 // delta: P bit set (RFC 6386 §9.1)
	if s.n%30 == 0 || s.key.Swap(false) {
		f[0] = 0x10
	}
	s.n++
	f[1], f[2] = byte(s.n>>8), byte(s.n)
	return video.Frame{Data: f, KeyFrame: video.IsKeyFrame(f), Duration: 33 * time.Millisecond}, nil
}

// RequestKeyFrame makes the next frame a key frame (video.KeyFrameRequester).
func (s *synthVideo) RequestKeyFrame() { s.key.Store(true) }
