package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
)

// capacityOptions are the flags of the capacity command.
type capacityOptions struct {
	kinds          []string
	video          bool
	audioBytes     int
	videoKbps      int
	videoFPS       int
	calls          []int
	start, step    int
	max            int
	peers          string
	udpMux         bool
	window, settle time.Duration
	grace          time.Duration
	minDelivery    float64
	maxP99         time.Duration
	check          bool
	jsonPath       string
	cpuProfile     string
	memProfile     string
	profileKind    string
	width          int
	connectTimeout time.Duration
	quiet          bool
	rawMLines      int
	repeat         int
	// explicit: the counts came from -calls, so all of them are measured;
	// a ramp (-start/-step/-max) stops a kind at its first failed step.
	explicit bool
}

func parseCapacity(args []string, stderr io.Writer) (*capacityOptions, error) {
	o := &capacityOptions{}
	fs := flag.NewFlagSet("capacity", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kinds := fs.String("kinds", kindRaw+","+kindSDK, "kinds of calls to measure, in this order at every step: "+kindRaw+", "+kindSDK)
	media := fs.String("media", "audio", "audio (an Opus-sized frame every 20 ms each way) or video")
	fs.IntVar(&o.audioBytes, "audio-bytes", 120, "bytes of an audio frame before encryption (120: Opus at 48 kbit/s)")
	fs.IntVar(&o.videoKbps, "video-kbps", 500, "video bitrate each way, kbit/s")
	fs.IntVar(&o.videoFPS, "video-fps", 30, "video frames per second")
	calls := fs.String("calls", "", "explicit call counts, e.g. 50,100,200 (overrides -start/-step/-max); every count is measured, even after a kind fails one")
	fs.IntVar(&o.start, "start", 50, "first call count of the ramp")
	fs.IntVar(&o.step, "step", 50, "calls added at every step of the ramp")
	fs.IntVar(&o.max, "max", 2000, "largest call count tried")
	fs.StringVar(&o.peers, "peers", "same", "where the far ends run: same (this process) or process (a second process, so the measured process carries one leg of every call)")
	fs.BoolVar(&o.udpMux, "udp-mux", false, "the measured SDK Client (the bot) uses Config.UDPMux: one UDP socket for all its calls (the far ends never do)")
	fs.DurationVar(&o.window, "window", 10*time.Second, "measurement window of every step (whole seconds)")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "wait after the calls connect, before measuring")
	fs.DurationVar(&o.grace, "grace", time.Second, "wait after the window for its last frames")
	fs.Float64Var(&o.minDelivery, "min-delivery", 0.999, "a step passes when at least this fraction of the frames made arrives")
	fs.DurationVar(&o.maxP99, "max-p99", 50*time.Millisecond, "… and the one-way frame latency p99 is at most this")
	fs.BoolVar(&o.check, "check", false, "regression guard: exit 1 unless every step of every kind delivers -min-delivery of its frames and all its calls connect (latency is reported, not checked)")
	fs.StringVar(&o.jsonPath, "json", "", "write the JSON summary to this file (default: standard output)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the last step's window (of -profile-kind) to this file")
	fs.StringVar(&o.memProfile, "memprofile", "", "write a heap profile of the last step's live calls (of -profile-kind) to this file, and their goroutines to FILE.goroutines")
	fs.StringVar(&o.profileKind, "profile-kind", kindSDK, "the kind of calls -cpuprofile and -memprofile profile")
	fs.IntVar(&o.width, "connect-width", 16, "calls set up at once")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 60*time.Second, "bound on one call's setup")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines")
	fs.IntVar(&o.repeat, "repeat", 1, "rounds of every step, each kind's alternating with the other's; the step reports the medians of the costs and passes when every round does")
	fs.IntVar(&o.rawMLines, "raw-mlines", 1, "m-lines of a raw pair: 1 (the baseline), or up to 4 to see what the SimpleX session's idle m-lines cost pion itself")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("capacity: unexpected argument %q", fs.Arg(0))
	}
	for _, k := range strings.Split(*kinds, ",") {
		switch k = strings.TrimSpace(k); k {
		case kindRaw, kindSDK:
			o.kinds = append(o.kinds, k)
		default:
			return nil, fmt.Errorf("capacity: unknown kind %q", k)
		}
	}
	switch *media {
	case "audio":
	case "video":
		o.video = true
	default:
		return nil, fmt.Errorf("capacity: -media must be audio or video, not %q", *media)
	}
	switch o.peers {
	case "same", "process":
	default:
		return nil, fmt.Errorf("capacity: -peers must be same or process, not %q", o.peers)
	}
	if *calls != "" {
		for _, s := range strings.Split(*calls, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("capacity: bad call count %q", s)
			}
			o.calls = append(o.calls, n)
		}
		o.explicit = true
	} else {
		if o.start <= 0 || o.step <= 0 || o.max < o.start {
			return nil, errors.New("capacity: need 0 < -start <= -max and -step > 0")
		}
		for n := o.start; n <= o.max; n += o.step {
			o.calls = append(o.calls, n)
		}
	}
	o.window = o.window.Round(time.Second)
	switch {
	case o.window < time.Second || o.window > 60*time.Second:
		return nil, errors.New("capacity: -window must be between 1s and 60s")
	case o.audioBytes < minFrameBytes || o.audioBytes > 1000:
		return nil, fmt.Errorf("capacity: -audio-bytes must be between %d and 1000", minFrameBytes)
	case o.videoFPS <= 0 || o.videoFPS > 60 || o.videoKbps <= 0:
		return nil, errors.New("capacity: -video-fps must be 1–60 and -video-kbps positive")
	case o.minDelivery <= 0 || o.minDelivery > 1:
		return nil, errors.New("capacity: -min-delivery must be in (0, 1]")
	case o.repeat < 1 || o.repeat > 9:
		return nil, errors.New("capacity: -repeat must be 1 to 9")
	case o.rawMLines < 1 || o.rawMLines > 4:
		return nil, errors.New("capacity: -raw-mlines must be 1 to 4")
	case o.width <= 0:
		return nil, errors.New("capacity: -connect-width must be positive")
	}
	return o, nil
}

func (o *capacityOptions) spec() mediaSpec {
	if o.video {
		return mediaSpec{Video: true, Bytes: max(o.videoKbps*1000/8/o.videoFPS, minFrameBytes),
			Interval: time.Second / time.Duration(o.videoFPS), KeyEvery: 2 * o.videoFPS}
	}
	return mediaSpec{Bytes: o.audioBytes, Interval: 20 * time.Millisecond}
}

// summary is the JSON the capacity command prints at the end.
type summary struct {
	Command  string    `json:"command"`
	Started  time.Time `json:"started"`
	Machine  machine   `json:"machine"`
	Settings settings  `json:"settings"`
	Steps    []step    `json:"steps"`
	// MaxCalls is, by kind, the highest call count whose step passed
	// (0: none did).
	MaxCalls map[string]int `json:"max_sustained_calls"`
	// Comparison is smpcall against raw pion at the highest count both sustained.
	Comparison *comparison `json:"comparison,omitempty"`
	// Check is the regression guard's verdict (with -check).
	Check string `json:"check,omitempty"`
}

type machine struct {
	CPUs        int       `json:"cpus"`
	GoVersion   string    `json:"go"`
	LoadBefore  []float64 `json:"load_before"`
	LoadAfter   []float64 `json:"load_after"`
	GOMAXPROCS  int       `json:"gomaxprocs"`
	ProcessMode string    `json:"peers"`
}

type settings struct {
	Media         string  `json:"media"`
	FrameBytes    int     `json:"frame_bytes"`
	FramesPerSec  float64 `json:"frames_per_second_each_way"`
	UDPMux        bool    `json:"udp_mux"`
	WindowSeconds float64 `json:"window_seconds"`
	MinDelivery   float64 `json:"min_delivery"`
	MaxP99Ms      float64 `json:"max_p99_ms"`
	LegsPerCall   int     `json:"measured_legs_per_call"`
	RawFrameBytes int     `json:"raw_frame_bytes"`
	RawMLines     int     `json:"raw_mlines"`
	Repeat        int     `json:"repeat"`
}

// step is one kind at one call count.
type step struct {
	Kind  string `json:"kind"`
	Calls int    `json:"calls"`
	// Legs is how many call legs the measured process carries.
	Legs         int     `json:"legs"`
	Connected    int     `json:"connected"`
	Live         int     `json:"live_at_end"`
	SetupSeconds float64 `json:"setup_seconds"`

	Expected  uint64  `json:"frames_expected"`
	Sent      uint64  `json:"frames_sent"`
	Received  uint64  `json:"frames_received"`
	Delivery  float64 `json:"delivery"`
	P50Ms     float64 `json:"latency_p50_ms"`
	P99Ms     float64 `json:"latency_p99_ms"`
	DecryptKO uint64  `json:"decrypt_failures"`

	// CPUCores is the measured process's CPU during the window (1.0 = one
	// core busy); CPUPerLeg the same per leg, in thousandths of a core.
	CPUCores         float64 `json:"cpu_cores"`
	CPUPerLegMillis  float64 `json:"cpu_per_leg_millicores"`
	PeerCPUCores     float64 `json:"peer_process_cpu_cores,omitempty"`
	HeapPerLegKB     float64 `json:"heap_per_leg_kb"`
	GoroutinesPerLeg float64 `json:"goroutines_per_leg"`
	SocketsPerLeg    float64 `json:"sockets_per_leg"`
	SocketsTotal     int     `json:"sockets_total"`
	HeapTotalMB      float64 `json:"heap_total_mb"`
	GoroutinesTotal  int     `json:"goroutines_total"`
	Pass             bool    `json:"pass"`
	// Rounds are the measurements a step with -repeat combines (medians
	// of the costs, sums of the frames, the worst latency).
	Rounds  []step `json:"rounds,omitempty"`
	Failure string `json:"failure,omitempty"`
}

type comparison struct {
	Calls int `json:"calls"`
	// Ratios are smpcall's figure over raw pion's.
	CPUPerLeg        float64 `json:"cpu_per_leg_ratio"`
	HeapPerLeg       float64 `json:"heap_per_leg_ratio"`
	GoroutinesPerLeg float64 `json:"goroutines_per_leg_ratio"`
	SocketsPerLeg    float64 `json:"sockets_per_leg_ratio"`
}

// runner runs the ramp.
type runner struct {
	opts   *capacityOptions
	spec   mediaSpec
	m      *meter
	se     *webrtc.SettingEngine
	api    *webrtc.API
	peer   *peerProc
	stderr io.Writer
}

func loadavg() []float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	var out []float64
	for _, f := range strings.Fields(string(b))[:3] {
		v, _ := strconv.ParseFloat(f, 64)
		out = append(out, v)
	}
	return out
}

func runCapacity(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseCapacity(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, err)
		}
		return 2
	}
	sum, err := capacity(ctx, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "capacity:", err)
		return 1
	}
	sum.Command = "smpcall-bench capacity " + strings.Join(args, " ")
	out := stdout
	if o.jsonPath != "" {
		f, err := os.Create(o.jsonPath)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer f.Close()
		out = f
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(sum); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if o.check && sum.Check != "pass" {
		fmt.Fprintln(stderr, "capacity check failed:", sum.Check)
		return 1
	}
	return 0
}

func capacity(ctx context.Context, o *capacityOptions, stderr io.Writer) (*summary, error) {
	if o.memProfile != "" {
		// Fine enough to see what one call holds (the default samples
		// every 512 KiB).
		runtime.MemProfileRate = 4096
		defer func() { runtime.MemProfileRate = 512 * 1024 }()
	}
	r := &runner{opts: o, spec: o.spec(), m: &meter{}, se: loopbackSettings(), stderr: stderr}
	r.api = rawAPI(r.se)
	if o.peers == "process" {
		p, err := startPeerProc()
		if err != nil {
			return nil, fmt.Errorf("start peer process: %w", err)
		}
		r.peer = p
		defer p.close()
	}
	legsPerCall := 2
	if r.peer != nil {
		legsPerCall = 1
	}
	sum := &summary{
		Started: time.Now().UTC(),
		Machine: machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0),
			LoadBefore: loadavg(), ProcessMode: o.peers},
		Settings: settings{Media: "audio", FrameBytes: r.spec.Bytes, FramesPerSec: float64(time.Second) / float64(r.spec.Interval),
			UDPMux: o.udpMux, WindowSeconds: o.window.Seconds(), MinDelivery: o.minDelivery,
			MaxP99Ms: ms(o.maxP99), LegsPerCall: legsPerCall, RawFrameBytes: rawSpec(r.spec).Bytes, RawMLines: o.rawMLines, Repeat: o.repeat},
		MaxCalls: map[string]int{},
	}
	if o.video {
		sum.Settings.Media = "video"
	}
	// failed: kinds that failed a round. A ramp stops measuring them;
	// explicit counts (-calls) go on, but no longer raise MaxCalls.
	failed := map[string]bool{}
	check := "pass"
	for _, n := range o.calls {
		// Each kind's rounds alternate with the other's, so that both see
		// the same machine (others' load changes the CPU a leg takes).
		rounds := map[string][]step{}
		for range o.repeat {
			for _, kind := range o.kinds {
				if failed[kind] && !o.explicit {
					continue
				}
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				st := r.step(ctx, kind, n, legsPerCall)
				if o.repeat > 1 {
					r.progress(st, "round")
				}
				rounds[kind] = append(rounds[kind], st)
				if !st.Pass {
					failed[kind] = true
				}
			}
		}
		for _, kind := range o.kinds {
			if len(rounds[kind]) == 0 {
				continue
			}
			st := combine(rounds[kind])
			sum.Steps = append(sum.Steps, st)
			r.progress(st, "")
			// The highest count sustained: a pass after a failed step
			// (possible with -calls) does not raise it.
			if st.Pass && !failed[kind] {
				sum.MaxCalls[kind] = n
			}
			if o.check && check == "pass" && (st.Connected < n || st.Delivery < o.minDelivery) {
				check = fmt.Sprintf("%s at %d calls: %d connected, delivery %.4f%% (%d of %d frames)",
					kind, n, st.Connected, 100*st.Delivery, st.Received, st.Sent)
			}
		}
		if len(failed) == len(o.kinds) && !o.explicit {
			break
		}
	}
	sum.Machine.LoadAfter = loadavg()
	sum.Comparison = compare(sum)
	if o.check {
		sum.Check = check
	}
	return sum, nil
}

// compare puts smpcall beside raw pion at the highest count both sustained.
func compare(sum *summary) *comparison {
	n := min(sum.MaxCalls[kindRaw], sum.MaxCalls[kindSDK])
	var raw, sdk *step
	for i := range sum.Steps {
		s := &sum.Steps[i]
		if s.Calls == n && s.Pass {
			switch s.Kind {
			case kindRaw:
				raw = s
			case kindSDK:
				sdk = s
			}
		}
	}
	if raw == nil || sdk == nil {
		return nil
	}
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return math.Round(a/b*1000) / 1000
	}
	return &comparison{Calls: n,
		CPUPerLeg:        ratio(sdk.CPUPerLegMillis, raw.CPUPerLegMillis),
		HeapPerLeg:       ratio(sdk.HeapPerLegKB, raw.HeapPerLegKB),
		GoroutinesPerLeg: ratio(sdk.GoroutinesPerLeg, raw.GoroutinesPerLeg),
		SocketsPerLeg:    ratio(sdk.SocketsPerLeg, raw.SocketsPerLeg),
	}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func (r *runner) logf(format string, args ...any) {
	if !r.opts.quiet {
		fmt.Fprintf(r.stderr, format+"\n", args...)
	}
}

// combine makes one step of a kind's rounds at one count: the medians
// of the costs, the sums of the frames, the worst latency and connection
// count; it passes when every round did.
func combine(rounds []step) step {
	if len(rounds) == 1 {
		return rounds[0]
	}
	st := rounds[0]
	st.Rounds = rounds
	med := func(get func(*step) float64) float64 {
		v := make([]float64, len(rounds))
		for i := range rounds {
			v[i] = get(&rounds[i])
		}
		sort.Float64s(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return round((v[len(v)/2-1]+v[len(v)/2])/2, 3)
	}
	st.CPUCores = med(func(s *step) float64 { return s.CPUCores })
	st.CPUPerLegMillis = med(func(s *step) float64 { return s.CPUPerLegMillis })
	st.PeerCPUCores = med(func(s *step) float64 { return s.PeerCPUCores })
	st.HeapPerLegKB = med(func(s *step) float64 { return s.HeapPerLegKB })
	st.GoroutinesPerLeg = med(func(s *step) float64 { return s.GoroutinesPerLeg })
	st.SocketsPerLeg = med(func(s *step) float64 { return s.SocketsPerLeg })
	st.SetupSeconds = med(func(s *step) float64 { return s.SetupSeconds })
	st.Expected, st.Sent, st.Received, st.DecryptKO = 0, 0, 0, 0
	for i := range rounds {
		s := &rounds[i]
		st.Expected += s.Expected
		st.Sent += s.Sent
		st.Received += s.Received
		st.DecryptKO += s.DecryptKO
		st.Connected = min(st.Connected, s.Connected)
		st.Live = min(st.Live, s.Live)
		st.P50Ms = max(st.P50Ms, s.P50Ms)
		st.P99Ms = max(st.P99Ms, s.P99Ms)
		if st.Failure == "" && s.Failure != "" {
			st.Failure = fmt.Sprintf("round %d: %s", i+1, s.Failure)
		}
	}
	if st.Sent > 0 {
		st.Delivery = round(float64(st.Received)/float64(st.Sent), 6)
	}
	st.Pass = st.Failure == ""
	return st
}

func (r *runner) progress(st step, label string) {
	mark := "ok"
	if !st.Pass {
		mark = "FAIL: " + st.Failure
	}
	if label != "" {
		mark = label + " " + mark
	}
	r.logf("%-8s %5d calls: %d/%d connected in %.1fs, delivery %.3f%% (%d/%d), p50 %.1fms p99 %.1fms, cpu %.2f cores = %.2f mcore/leg, heap %.0f KB/leg, %.1f goroutines/leg, %.2f sockets/leg — %s",
		st.Kind, st.Calls, st.Connected, st.Calls, st.SetupSeconds, 100*st.Delivery, st.Received, st.Sent,
		st.P50Ms, st.P99Ms, st.CPUCores, st.CPUPerLegMillis, st.HeapPerLegKB, st.GoroutinesPerLeg, st.SocketsPerLeg, mark)
}

// remote runs a request on the peer process, if there is one.
func (r *runner) remote(ctx context.Context, req request) (response, error) {
	if r.peer == nil {
		return response{}, nil
	}
	return r.peer.call(ctx, req)
}

func (r *runner) newFleet(kind string) fleet {
	if kind == kindRaw {
		return &rawFleet{r: r, api: r.api, spec: rawSpec(r.spec)}
	}
	return &sdkFleet{r: r, spec: r.spec}
}

// step measures n calls of one kind: set up, settle, measure over a
// window, tear down.
func (r *runner) step(ctx context.Context, kind string, n, legsPerCall int) (st step) {
	st = step{Kind: kind, Calls: n, Legs: n * legsPerCall}
	fail := func(format string, args ...any) {
		if st.Failure == "" {
			st.Failure = fmt.Sprintf(format, args...)
		}
	}
	defer func() { st.Pass = st.Failure == "" }()
	r.m.clearAhead(time.Now())
	if _, err := r.remote(ctx, request{Op: "clear"}); err != nil {
		fail("%v", err)
		return st
	}
	f := r.newFleet(kind)
	defer func() {
		f.close()
		if _, err := r.remote(context.Background(), request{Op: "teardown"}); err != nil {
			fail("%v", err)
		}
	}()
	if err := f.prepare(ctx, n); err != nil {
		fail("prepare: %v", err)
		return st
	}
	base := measure()
	start := time.Now()
	var firstErr error
	errs := make(chan error, n)
	_ = parallel(n, r.opts.width, func(i int) error {
		cctx, cancel := context.WithTimeout(ctx, r.opts.connectTimeout)
		defer cancel()
		err := f.connect(cctx, i)
		errs <- err
		return nil
	})
	close(errs)
	for err := range errs {
		if err == nil {
			st.Connected++
		} else if firstErr == nil {
			firstErr = err
		}
	}
	st.SetupSeconds = round(time.Since(start).Seconds(), 2)
	if firstErr != nil {
		fail("%d of %d calls did not connect: %v", n-st.Connected, n, firstErr)
	}
	sleep(ctx, r.opts.settle)
	live := measure()
	legs := float64(st.Legs)
	st.HeapPerLegKB = round(float64(int64(live.Heap)-int64(base.Heap))/legs/1024, 1)
	st.GoroutinesPerLeg = round(float64(live.Goroutines-base.Goroutines)/legs, 2)
	st.SocketsPerLeg = round(float64(live.Sockets-base.Sockets)/legs, 2)
	st.SocketsTotal, st.GoroutinesTotal = live.Sockets, live.Goroutines
	st.HeapTotalMB = round(float64(live.Heap)/(1<<20), 1)
	if kind == r.opts.profileKind && r.opts.memProfile != "" {
		writeProfile("heap", r.opts.memProfile, 0)
		writeProfile("goroutine", r.opts.memProfile+".goroutines", 1)
	}

	// The window: whole seconds, so that the meters' buckets line up.
	w0 := time.Now().Truncate(time.Second).Add(time.Second)
	w1 := w0.Add(r.opts.window)
	r.m.setWindow(w0, w1)
	if _, err := r.remote(ctx, request{Op: "window", Start: w0.UnixNano(), End: w1.UnixNano()}); err != nil {
		fail("%v", err)
		return st
	}
	sleep(ctx, time.Until(w0))
	cpuA := cpuTime()
	remA, _ := r.remote(ctx, request{Op: "cpu"})
	stopProfile := func() {}
	if kind == r.opts.profileKind && r.opts.cpuProfile != "" {
		stopProfile = startCPUProfile(r.opts.cpuProfile)
	}
	sleep(ctx, time.Until(w1))
	cpuB := cpuTime()
	remB, _ := r.remote(ctx, request{Op: "cpu"})
	stopProfile()
	st.Live = f.live()
	st.DecryptKO = f.decryptFailures()
	sleep(ctx, r.opts.grace)
	snap := r.m.snapshot(w0.Unix(), w1.Unix())
	if resp, err := r.remote(ctx, request{Op: "snapshot", From: w0.Unix(), To: w1.Unix()}); err != nil {
		fail("%v", err)
	} else {
		snap.merge(resp.Meter)
	}
	secs := r.opts.window.Seconds()
	st.CPUCores = round((cpuB-cpuA).Seconds()/secs, 3)
	st.CPUPerLegMillis = round(1000*st.CPUCores/legs, 3)
	if r.peer != nil {
		st.PeerCPUCores = round((remB.Proc.CPU-remA.Proc.CPU).Seconds()/secs, 3)
	}
	st.Expected = uint64(2*n) * uint64(r.opts.window/r.spec.Interval)
	st.Sent, st.Received = snap.Sent, snap.Received
	if snap.Sent > 0 {
		st.Delivery = round(float64(snap.Received)/float64(snap.Sent), 6)
	}
	st.P50Ms, st.P99Ms = ms(snap.quantile(0.50)), ms(snap.quantile(0.99))
	switch {
	case ctx.Err() != nil:
		fail("%v", ctx.Err())
	case st.Live < st.Connected:
		fail("%d calls dropped during the window", st.Connected-st.Live)
	case float64(snap.Sent) < 0.99*float64(st.Expected):
		fail("sources fell behind: %d of %d frames made", snap.Sent, st.Expected)
	case st.Delivery < r.opts.minDelivery:
		fail("delivery %.3f%% below %.3f%%", 100*st.Delivery, 100*r.opts.minDelivery)
	case snap.quantile(0.99) > r.opts.maxP99:
		fail("latency p99 %.1fms above %.1fms", st.P99Ms, ms(r.opts.maxP99))
	case st.DecryptKO > 0:
		fail("%d frames failed to decrypt", st.DecryptKO)
	}
	return st
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func startCPUProfile(path string) func() {
	f, err := os.Create(path)
	if err != nil {
		logf("cpuprofile: %v", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		logf("cpuprofile: %v", err)
		_ = f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// writeProfile writes one of runtime/pprof's profiles.
func writeProfile(name, path string, debug int) {
	f, err := os.Create(path)
	if err != nil {
		logf("%s profile: %v", name, err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup(name).WriteTo(f, debug); err != nil {
		logf("%s profile: %v", name, err)
	}
}
