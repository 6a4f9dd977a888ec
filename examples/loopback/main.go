// Command loopback is the SDK's main demonstration: two SimpleX call clients
// on the in-memory SMP loopback place and accept an end-to-end encrypted
// video call over real WebRTC on 127.0.0.1, stream the committed Opus and
// VP8 fixtures, mute and unmute the microphone, switch the camera, record
// what each side received (Ogg Opus + IVF) and print a summary.
//
//	go run ./examples/loopback                 # 10 s video call
//	go run ./examples/loopback -duration 4s -audio-only -json
//	go run ./examples/loopback -relay -turn turn:user:pass@127.0.0.1:3478?transport=udp
//
// It exits non-zero if the call did not connect, was not encrypted, lost
// more than 5 % of any stream, or any frame failed to decrypt.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/smp"
	"github.com/smpcall/smpcall/video"
)

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	duration  time.Duration
	audioOnly bool
	out       string
	relay     bool
	turn      string
	json      bool
	media     string
}

// Summary is the final JSON line of -json.
type Summary struct {
	OK        bool     `json:"ok"`
	SetupMs   float64  `json:"setupMs"`
	Encrypted bool     `json:"encrypted"`
	Relay     bool     `json:"relay"`
	Caller    Side     `json:"caller"`
	Callee    Side     `json:"callee"`
	Problems  []string `json:"problems,omitempty"`
	Out       string   `json:"out"`
}

// Side is one party's view.
type Side struct {
	State         string      `json:"state"`
	Audio         StreamStats `json:"audio"`
	Video         StreamStats `json:"video"`
	CandidatePair string      `json:"candidatePair"`
	Record        string      `json:"record"`
	RTTMs         float64     `json:"rttMs"`
	PeerMuteSeen  bool        `json:"peerMuteSeen"`
}

// StreamStats are the counters of one medium.
type StreamStats struct {
	Sent          uint64 `json:"sent"`
	Received      uint64 `json:"received"`
	DecryptFailed uint64 `json:"decryptFailed"`
	KeyFrames     uint64 `json:"keyFrames,omitempty"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loopback", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long media streams once connected")
	fs.BoolVar(&o.audioOnly, "audio-only", false, "place an audio call (no camera)")
	fs.StringVar(&o.out, "out", "loopback-out", "folder for what each side received (Ogg Opus + IVF)")
	fs.BoolVar(&o.relay, "relay", false, "relay-only through the TURN server given with -turn")
	fs.StringVar(&o.turn, "turn", "", "TURN server in SimpleX form, e.g. turn:user:pass@127.0.0.1:3478?transport=udp")
	fs.BoolVar(&o.json, "json", false, "print the final summary as one JSON object on the last line")
	fs.StringVar(&o.media, "media", "", "folder with tone.opus, video.ivf, video-alt.ivf (default: the repository's testdata/media)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.relay && o.turn == "" {
		fmt.Fprintln(stderr, "loopback: -relay needs -turn")
		return 2
	}
	if o.duration < time.Second {
		fmt.Fprintln(stderr, "loopback: -duration must be at least 1s")
		return 2
	}
	if o.media == "" {
		o.media = defaultMediaDir()
	}
	s, err := call(ctx, o, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "loopback:", err)
	}
	if s != nil {
		printSummary(stdout, s, o.json)
	}
	if err != nil || s == nil || !s.OK {
		return 1
	}
	return 0
}

// defaultMediaDir finds testdata/media from the working directory or from
// this source file, so `go run ./examples/loopback` works from the repository.
func defaultMediaDir() string {
	if _, err := os.Stat(filepath.Join("testdata", "media", "tone.opus")); err == nil {
		return filepath.Join("testdata", "media")
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "media")
}

// printer serializes progress lines.
type printer struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (p *printer) say(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%6.2fs  %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, a...))
}

type party struct {
	name    string
	client  *smpcall.Client
	peerID  int64
	call    *smpcall.Call
	closers []io.Closer
	sinks   []interface{ Close() error }
	mu      sync.Mutex
	muteSaw bool
}

func (p *party) closeAll() error {
	var errs []error
	for _, c := range p.closers {
		errs = append(errs, c.Close())
	}
	for _, s := range p.sinks {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

func call(ctx context.Context, o options, stdout io.Writer) (*Summary, error) {
	pr := &printer{w: stdout, start: time.Now()}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, err
	}
	cfg, err := clientConfig(o)
	if err != nil {
		return nil, err
	}
	net := smp.NewNetwork(nil)
	defer net.Close()
	aliceCore, _ := net.AddUser("alice", nil)
	bobCore, _ := net.AddUser("bob", nil)
	bobID, aliceID, err := net.Connect("alice", "bob")
	if err != nil {
		return nil, err
	}
	alice := &party{name: "alice", peerID: bobID}
	bob := &party{name: "bob", peerID: aliceID}
	for _, p := range []*party{alice, bob} {
		core := aliceCore
		if p == bob {
			core = bobCore
		}
		if p.client, err = smpcall.NewClient(core, cfg); err != nil {
			return nil, err
		}
		defer p.client.Close()
	}
	media := smpcall.MediaVideo
	if o.audioOnly {
		media = smpcall.MediaAudio
	}
	aOpts, err := mediaOptions(o, alice, media, "video.ivf")
	if err != nil {
		return nil, err
	}
	defer alice.closeAll()
	bOpts, err := mediaOptions(o, bob, media, "video-alt.ivf")
	if err != nil {
		return nil, err
	}
	defer bob.closeAll()

	var wg sync.WaitGroup
	evCtx, stopEvents := context.WithCancel(ctx)
	for _, p := range []*party{alice, bob} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			watch(evCtx, p, pr)
		}()
	}
	defer func() {
		stopEvents()
		for _, p := range []*party{alice, bob} {
			if p.call != nil {
				_ = p.call.End(context.Background()) // its events end with it
			}
		}
		wg.Wait()
	}()

	pr.say("alice calls bob (%s, frame encryption requested)", media)
	start := time.Now()
	if alice.call, err = alice.client.PlaceCall(ctx, alice.peerID, aOpts); err != nil {
		return nil, err
	}
	watchCall(&wg, alice, pr)
	rctx, cancelRing := context.WithTimeout(ctx, 10*time.Second)
	inv, err := bob.client.NextInvitation(rctx)
	cancelRing()
	if err != nil {
		return nil, fmt.Errorf("bob's phone never rang: %w", err)
	}
	if bob.call, err = bob.client.AcceptCall(ctx, inv.Contact.ContactID, bOpts); err != nil {
		return nil, err
	}
	watchCall(&wg, bob, pr)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	info, err := alice.call.WaitConnected(wctx)
	if err != nil {
		return nil, fmt.Errorf("alice: %w", err)
	}
	if _, err := bob.call.WaitConnected(wctx); err != nil {
		return nil, fmt.Errorf("bob: %w", err)
	}
	setup := time.Since(start)
	pr.say("both connected in %.1f ms via %s", float64(setup.Microseconds())/1000, info)

	script(ctx, o, alice, pr)

	states := [2]string{alice.call.State().String(), bob.call.State().String()}
	live := [2]smpcall.CallStats{alice.call.Stats(), bob.call.Stats()} // RTT is measured only while connected
	pr.say("alice hangs up")
	if err := alice.call.End(ctx); err != nil {
		return nil, err
	}
	select {
	case <-bob.call.Done():
	case <-time.After(10 * time.Second):
		return nil, errors.New("bob's call did not end")
	}
	// Final counters, after the last frames arrived.
	stats := [2]smpcall.CallStats{alice.call.Stats(), bob.call.Stats()}
	for i := range stats {
		stats[i].RTT = live[i].RTT
	}
	var closeErr error
	for _, p := range []*party{alice, bob} {
		if err := p.closeAll(); err != nil {
			closeErr = errors.Join(closeErr, fmt.Errorf("%s: %w", p.name, err))
		}
		p.closers, p.sinks = nil, nil
	}
	s := &Summary{SetupMs: float64(setup.Microseconds()) / 1000, Encrypted: alice.call.Encrypted() && bob.call.Encrypted(),
		Relay: info.Relay, Out: o.out}
	s.Caller = side(alice, states[0], stats[0])
	s.Callee = side(bob, states[1], stats[1])
	s.Problems = check(o, s, stats)
	if closeErr != nil {
		s.Problems = append(s.Problems, "closing the recordings: "+closeErr.Error())
	}
	s.OK = len(s.Problems) == 0
	return s, nil
}

func clientConfig(o options) (*smpcall.Config, error) {
	cfg := &smpcall.Config{ICEServers: []smpcall.ICEServer{}}
	se := &webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if o.relay {
		srv, err := smpcall.ParseICEServer(o.turn)
		if err != nil {
			return nil, err
		}
		cfg.ICEServers = []smpcall.ICEServer{srv}
		cfg.RelayOnly = true
	} else {
		// Host candidates on 127.0.0.1 only: nothing leaves the machine.
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
		se.SetIncludeLoopbackCandidate(true)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	cfg.SettingEngine = se
	return cfg, nil
}

// mediaOptions opens a party's sources (looping, paced in real time) and
// the sinks that record what it receives.
func mediaOptions(o options, p *party, media smpcall.CallMediaType, camera string) (*smpcall.CallOptions, error) {
	opts := &smpcall.CallOptions{Media: media}
	mic, err := audio.OpenOggSource(filepath.Join(o.media, "tone.opus"), &audio.OggSourceOptions{Paced: true, Loop: true})
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, mic)
	opts.Sources.Mic = mic
	ogg, err := audio.CreateOggSink(filepath.Join(o.out, p.name+"-received.opus"), nil)
	if err != nil {
		return nil, err
	}
	p.sinks = append(p.sinks, ogg)
	opts.Sinks.Mic = ogg
	if media == smpcall.MediaVideo {
		cam, err := video.OpenIVFSource(filepath.Join(o.media, camera), &video.IVFSourceOptions{Paced: true, Loop: true})
		if err != nil {
			return nil, err
		}
		p.closers = append(p.closers, cam)
		opts.Sources.Camera = cam
		ivf, err := video.CreateIVFSink(filepath.Join(o.out, p.name+"-received.ivf"), nil)
		if err != nil {
			return nil, err
		}
		p.sinks = append(p.sinks, ivf)
		opts.Sinks.Camera = ivf
	}
	return opts, nil
}

// watch prints a party's Client events (invitations) as they come.
func watch(ctx context.Context, p *party, pr *printer) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-p.client.Events():
			if !ok {
				return
			}
			show(p, pr, ev)
		}
	}
}

// watchCall prints the events of a party's call until the call is over.
func watchCall(wg *sync.WaitGroup, p *party, pr *printer) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev := range p.call.Events() {
			show(p, pr, ev)
		}
	}()
}

func show(p *party, pr *printer, ev smpcall.Event) {
	switch e := ev.(type) {
	case *smpcall.CallStateEvent:
		line := fmt.Sprintf("%s: %s → %s", p.name, e.From, e.To)
		if e.Reason != smpcall.ReasonNone {
			line += " (" + e.Reason.String() + ")"
		}
		pr.say("%s", line)
	case *smpcall.RingingEvent:
		pr.say("%s: ringing — %s call from %s", p.name, e.Invitation.CallType.Media, e.Invitation.Contact.Name())
	case *smpcall.CallConnectedEvent:
		pr.say("%s: connected, frames end-to-end encrypted: %v", p.name, e.Encrypted)
	case *smpcall.PeerMediaEvent:
		state := "on"
		if !e.Enabled {
			state = "off"
			if e.Source == smpcall.SourceMic {
				p.mu.Lock()
				p.muteSaw = true
				p.mu.Unlock()
			}
		}
		pr.say("%s: peer's %s is %s", p.name, e.Source, state)
	case *smpcall.DecryptFailingEvent:
		pr.say("%s: %s frames fail to decrypt (%d)", p.name, e.Source, e.Failed)
	case *smpcall.MediaErrorEvent:
		pr.say("%s: media error on %s: %v", p.name, e.Source, e.Err)
	case *smpcall.CallRecordEvent:
		pr.say("%s: call record: %s", p.name, e.Record.Text())
	}
}

// script runs the call for o.duration: progress every second, the mic
// muted and unmuted, the camera switched.
func script(ctx context.Context, o options, alice *party, pr *printer) {
	d := o.duration
	muteAt, unmuteAt, switchAt := d*2/10, d*5/10, d*6/10
	if d >= 8*time.Second {
		unmuteAt = muteAt + 4*time.Second // long enough for the peer to see it (3 s)
	}
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last smpcall.CallStats
	muted, unmuted, switched := false, false, o.audioOnly
	for {
		el := time.Since(start)
		if el >= d {
			return
		}
		switch {
		case !muted && el >= muteAt:
			muted = true
			_ = alice.call.SetEnabled(smpcall.SourceMic, false)
			pr.say("alice mutes her microphone")
		case muted && !unmuted && el >= unmuteAt:
			unmuted = true
			_ = alice.call.SetEnabled(smpcall.SourceMic, true)
			pr.say("alice unmutes her microphone")
		case !switched && el >= switchAt:
			switched = true
			alt, err := video.OpenIVFSource(filepath.Join(o.media, "video-alt.ivf"), &video.IVFSourceOptions{Paced: true, Loop: true})
			if err == nil {
				alice.closers = append(alice.closers, alt)
				err = alice.call.SwitchCamera(smpcall.CameraEnvironment, alt)
			}
			pr.say("alice switches to her %s camera (%v)", smpcall.CameraEnvironment, errOrOK(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			st := alice.call.Stats()
			a, v := st.Streams[0], st.Streams[1]
			kbps := float64((a.BytesSent+v.BytesSent)-(last.Streams[0].BytesSent+last.Streams[1].BytesSent)) * 8 / 1000
			pr.say("alice sent %d audio / %d video frames, got %d / %d; %.0f kbit/s out, rtt %.2f ms",
				a.FramesSent, v.FramesSent, a.FramesReceived, v.FramesReceived, kbps, float64(st.RTT.Microseconds())/1000)
			last = st
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func errOrOK(err error) string {
	if err != nil {
		return err.Error()
	}
	return "ok"
}

func side(p *party, state string, st smpcall.CallStats) Side {
	a, v := st.Streams[0], st.Streams[1]
	s := Side{State: state, CandidatePair: st.Info.String(), RTTMs: float64(st.RTT.Microseconds()) / 1000,
		Audio: StreamStats{Sent: a.FramesSent, Received: a.FramesReceived, DecryptFailed: a.DecryptFailed},
		Video: StreamStats{Sent: v.FramesSent, Received: v.FramesReceived, DecryptFailed: v.DecryptFailed, KeyFrames: v.KeyFramesReceived}}
	if r, ok := p.call.Record(); ok {
		s.Record = r.Text()
	}
	p.mu.Lock()
	s.PeerMuteSeen = p.muteSaw
	p.mu.Unlock()
	return s
}

// check lists what went wrong; an empty list is success.
func check(o options, s *Summary, stats [2]smpcall.CallStats) []string {
	var probs []string
	if s.Caller.State != "connected" || s.Callee.State != "connected" {
		probs = append(probs, fmt.Sprintf("not connected (caller %s, callee %s)", s.Caller.State, s.Callee.State))
	}
	if !s.Encrypted {
		probs = append(probs, "frames were not end-to-end encrypted")
	}
	if o.relay && !s.Relay {
		probs = append(probs, "relay requested but the path is "+s.Caller.CandidatePair)
	}
	pairs := []struct {
		name       string
		sent, recv uint64
	}{
		{"caller→callee audio", s.Caller.Audio.Sent, s.Callee.Audio.Received},
		{"callee→caller audio", s.Callee.Audio.Sent, s.Caller.Audio.Received},
	}
	if !o.audioOnly {
		pairs = append(pairs,
			struct {
				name       string
				sent, recv uint64
			}{"caller→callee video", s.Caller.Video.Sent, s.Callee.Video.Received},
			struct {
				name       string
				sent, recv uint64
			}{"callee→caller video", s.Callee.Video.Sent, s.Caller.Video.Received})
	}
	for _, p := range pairs {
		if p.sent == 0 || p.recv*100 < p.sent*95 {
			probs = append(probs, fmt.Sprintf("%s: received %d of %d frames", p.name, p.recv, p.sent))
		}
	}
	for i, st := range stats {
		for _, ss := range st.Streams {
			if ss.DecryptFailed > 0 {
				probs = append(probs, fmt.Sprintf("%s: %d %s frames failed to decrypt", []string{"caller", "callee"}[i], ss.DecryptFailed, ss.Source))
			}
		}
	}
	return probs
}

func printSummary(w io.Writer, s *Summary, asJSON bool) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "summary: %s\n", map[bool]string{true: "OK", false: "FAILED"}[s.OK])
	fmt.Fprintf(w, "  setup %.1f ms, encrypted %v, relay %v, recordings in %s\n", s.SetupMs, s.Encrypted, s.Relay, s.Out)
	for _, x := range []struct {
		name string
		s    Side
	}{{"caller (alice)", s.Caller}, {"callee (bob)", s.Callee}} {
		fmt.Fprintf(w, "  %s: %s; audio sent %d received %d; video sent %d received %d (%d key frames); %d decrypt failures; %s\n",
			x.name, x.s.Record, x.s.Audio.Sent, x.s.Audio.Received, x.s.Video.Sent, x.s.Video.Received, x.s.Video.KeyFrames,
			x.s.Audio.DecryptFailed+x.s.Video.DecryptFailed, x.s.CandidatePair)
	}
	for _, p := range s.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	if asJSON {
		b, _ := json.Marshal(s)
		fmt.Fprintln(w, string(b))
	}
}
