// Command callbot is a SimpleX call bot: it connects to a chat core's
// WebSocket API (a real `simplex-chat -p 5225`, or examples/simcore),
// answers incoming calls from allowed contacts, plays a greeting (and, in
// video calls, a looped VP8 clip), records what the caller sends as
// voicemail (Ogg Opus, plus IVF for video calls, named by contact and
// time), and hangs up after a maximum duration or when the caller ends. It
// can also place a call to a named contact and exit when it ends. Logs are
// structured (log/slog); SIGINT ends calls properly (x.call.end) before
// exiting.
//
//	go run ./examples/callbot -url ws://127.0.0.1:5225 -allow alice -out voicemail
//	go run ./examples/callbot -url ws://127.0.0.1:5225 -call alice -media video -video clip.ivf
//
// Recordings: a file is created only when the caller's first frame arrives,
// so calls that never connect (or send nothing) leave no file, and the
// recordings in -out are bounded by -max-recordings and -max-bytes (those
// already there count), so that no contact can fill the disk. A call rings
// for -answer-after before the bot answers, and a newer invitation from the
// same contact starts that again, so a flood of invitations costs one
// answer.
//
// SimpleX apps use relay-only ICE by default: give the bot the same TURN
// server with -turn (and -relay to hide its own address too).
package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/smp"
	"github.com/smpcall/smpcall/video"
)

// defaultGreeting is played when -greeting is not given: a 3 s tone, a copy
// of testdata/media/tone.opus, embedded so that a built callbot runs from
// any directory.
//
//go:embed greeting.opus
var defaultGreeting []byte

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills a slow shutdown
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stderr, nil))
}

type options struct {
	url           string
	allow         map[string]bool
	greeting      string
	video         string
	out           string
	max           time.Duration
	call          string
	media         smpcall.CallMediaType
	relay         bool
	turn          string
	jsonLog       bool
	maxRecordings int
	maxBytes      int64
	answerAfter   time.Duration
}

// run is the bot; cfg, if not nil, overrides the WebRTC settings (tests use
// it to stay on loopback).
func run(ctx context.Context, args []string, logw io.Writer, cfg *smpcall.Config) int {
	fs := flag.NewFlagSet("callbot", flag.ContinueOnError)
	fs.SetOutput(logw)
	var o options
	var allow, media string
	fs.StringVar(&o.url, "url", "ws://127.0.0.1:5225", "chat core WebSocket URL")
	fs.StringVar(&allow, "allow", "", "comma-separated contact names whose calls are answered (default: everyone)")
	fs.StringVar(&o.greeting, "greeting", "", "Ogg Opus greeting on the microphone stream (default: a built-in tone)")
	fs.StringVar(&o.video, "video", "", "IVF VP8 file sent, looped, on the camera stream of video calls (default: no video)")
	fs.StringVar(&o.out, "out", "voicemail", "folder for the recordings")
	fs.IntVar(&o.maxRecordings, "max-recordings", 100, "most recordings (calls) kept in -out, those already there included; 0 records nothing, -1 no limit")
	fs.Int64Var(&o.maxBytes, "max-bytes", 256<<20, "most bytes of recordings in -out, those already there included; -1 no limit")
	fs.DurationVar(&o.max, "max", 60*time.Second, "maximum call duration")
	fs.DurationVar(&o.answerAfter, "answer-after", 500*time.Millisecond, "let a call ring this long before answering; a newer invitation from the same contact starts it again")
	fs.StringVar(&o.call, "call", "", "place a call to this contact, and exit when it ends (status 0 if it connected)")
	fs.StringVar(&media, "media", "audio", "media of the call placed with -call: audio or video")
	fs.BoolVar(&o.relay, "relay", false, "relay-only ICE (needs -turn)")
	fs.StringVar(&o.turn, "turn", "", "TURN server, SimpleX form turn:user:pass@host:port?transport=udp")
	fs.BoolVar(&o.jsonLog, "json", false, "log JSON instead of text")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.media = smpcall.CallMediaType(media)
	if !o.media.Valid() {
		fmt.Fprintf(logw, "callbot: -media must be audio or video, not %q\n", media)
		return 2
	}
	if allow != "" {
		o.allow = map[string]bool{}
		for _, n := range strings.Split(allow, ",") {
			o.allow[strings.TrimSpace(n)] = true
		}
	}
	var h slog.Handler = slog.NewTextHandler(logw, nil)
	if o.jsonLog {
		h = slog.NewJSONHandler(logw, nil)
	}
	log := slog.New(h)
	if err := bot(ctx, o, log, cfg); err != nil {
		log.Error("callbot stopped", "err", err)
		return 1
	}
	return 0
}

// media is what the bot sends, loaded once and checked at start.
type media struct {
	greeting []byte // Ogg Opus
	clip     []byte // IVF VP8, or nil
}

func loadMedia(o options) (media, error) {
	m := media{greeting: defaultGreeting}
	if o.greeting != "" {
		b, err := os.ReadFile(o.greeting)
		if err != nil {
			return m, fmt.Errorf("greeting: %w", err)
		}
		m.greeting = b
	}
	src, err := audio.NewOggSource(bytes.NewReader(m.greeting), nil)
	if err != nil {
		return m, fmt.Errorf("greeting: %w", err)
	}
	src.Close()
	if o.video != "" {
		b, err := os.ReadFile(o.video)
		if err != nil {
			return m, fmt.Errorf("video: %w", err)
		}
		// Loop checks what looping needs (a first key frame) at open.
		v, err := video.NewIVFSource(bytes.NewReader(b), &video.IVFSourceOptions{Loop: true})
		if err != nil {
			return m, fmt.Errorf("video: %w", err)
		}
		v.Close()
		m.clip = b
	}
	return m, nil
}

func bot(ctx context.Context, o options, log *slog.Logger, base *smpcall.Config) error {
	if o.relay && o.turn == "" {
		return errors.New("-relay needs -turn")
	}
	m, err := loadMedia(o)
	if err != nil {
		return err
	}
	rec, err := newRecorder(o.out, o.maxRecordings, o.maxBytes, log)
	if err != nil {
		return err
	}
	cfg := &smpcall.Config{}
	if base != nil {
		*cfg = *base
	}
	cfg.Logger = log
	if o.turn != "" {
		srv, err := smpcall.ParseICEServer(o.turn)
		if err != nil {
			return err
		}
		cfg.ICEServers = append([]smpcall.ICEServer{srv}, cfg.ICEServers...)
		cfg.RelayOnly = o.relay
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	core, err := smp.DialChatCore(dctx, o.url, &smp.ChatClientOptions{Logger: log})
	cancel()
	if err != nil {
		return err
	}
	client, err := smpcall.NewClient(core, cfg)
	if err != nil {
		core.Close()
		return err
	}
	log.Info("callbot ready", "url", o.url, "user", core.User().LocalDisplayName)
	b := &botState{o: o, log: log, client: client, core: core, media: m, rec: rec, ringing: map[int64]*time.Timer{}}
	defer b.shutdown()

	// The call placed with -call: the bot exits when it ends.
	var placed <-chan struct{}
	var placedCall *smpcall.Call
	if o.call != "" {
		ct, err := core.ContactByName(ctx, o.call)
		if err != nil {
			return err
		}
		placedCall, err = b.start(ctx, ct, o.media, func(opts *smpcall.CallOptions) (*smpcall.Call, error) {
			opts.Media = o.media
			return client.PlaceCall(ctx, ct.ContactID, opts)
		})
		if err != nil {
			return err
		}
		placed = placedCall.Done()
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("callbot stopping")
			return nil
		case <-placed:
			reason, err := placedCall.Reason()
			if !connectedOnce(placedCall) {
				return fmt.Errorf("the call to %s did not connect: %s (%v)", o.call, reason, err)
			}
			log.Info("the call is over; exiting", "contact", o.call, "reason", reason)
			return nil
		case ev, ok := <-client.Events():
			if !ok {
				return errors.New("client closed")
			}
			b.handleEvent(ctx, ev)
		}
	}
}

// connectedOnce reports whether an ended call ever connected.
func connectedOnce(k *smpcall.Call) bool {
	select {
	case <-k.Connected():
		return true
	default:
		return false
	}
}

type botState struct {
	o            options
	log          *slog.Logger
	client       *smpcall.Client
	core         *smp.ChatClient
	media        media
	rec          *recorder
	wg           sync.WaitGroup
	reconnecting sync.Mutex

	mu      sync.Mutex
	ringing map[int64]*time.Timer // by contact: the answer to come
	closed  bool
}

// ---- Event handling: the one place that reads the SDK's events. ----------
//
// The Client's events: invitations (RingingEvent) and the chat core
// connection's state. Each call's own events are read in start, below.

func (b *botState) handleEvent(ctx context.Context, ev smpcall.Event) {
	switch e := ev.(type) {
	case *smpcall.RingingEvent:
		ct := e.Invitation.Contact
		if b.o.allow != nil && !b.o.allow[ct.Name()] {
			b.log.Info("declining call", "contact", ct.Name())
			if err := b.client.Reject(ctx, ct.ContactID); err != nil {
				b.log.Warn("reject", "err", err)
			}
			return
		}
		b.ring(ctx, e.Invitation)
	case *smpcall.TransportErrorEvent:
		if e.Temporary {
			// The ChatClient reconnects by itself; calls keep their media.
			b.log.Warn("chat core connection interrupted; the client reconnects", "err", e.Err)
			return
		}
		b.log.Warn("chat core connection lost; reconnecting", "err", e.Err)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.reconnect(ctx)
		}()
	case *smpcall.TransportRestoredEvent:
		b.log.Info("chat core connection restored")
	}
}

// handleCallEvent handles one event of a call with ct.
func (b *botState) handleCallEvent(ct smpcall.Contact, ev smpcall.Event) {
	switch e := ev.(type) {
	case *smpcall.CallRecordEvent:
		b.log.Info("call record", "contact", ct.Name(), "record", e.Record.Text(), "reason", e.Record.Reason)
	case *smpcall.MediaErrorEvent:
		b.log.Warn("media stream stopped", "contact", ct.Name(), "source", e.Source, "sending", e.Sending, "err", e.Err)
	case *smpcall.DecryptFailingEvent:
		b.log.Warn("frames fail to decrypt", "contact", ct.Name(), "source", e.Source, "consecutive", e.Failed)
	}
}

// ---- end of event handling ------------------------------------------------

// ring answers an invitation after -answer-after, unless a newer one from
// the same contact comes first: each invitation replaces the one before
// (protocol §4.2), so a flood of them costs one peer connection, not one
// each. (It also narrows a race of the chat-core API, whose commands name
// the contact, not the call: an offer made for an invitation that a newer
// one just replaced would be taken by the core as the answer to the newer.)
func (b *botState) ring(ctx context.Context, inv smpcall.RcvCallInvitation) {
	ct := inv.Contact
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if t := b.ringing[ct.ContactID]; t != nil {
		t.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(b.o.answerAfter, func() {
		b.mu.Lock()
		if b.closed || b.ringing[ct.ContactID] != t {
			b.mu.Unlock()
			return // replaced, or the bot is stopping
		}
		delete(b.ringing, ct.ContactID)
		b.wg.Add(1)
		b.mu.Unlock()
		defer b.wg.Done()
		b.log.Info("answering call", "contact", ct.Name(), "media", inv.CallType.Media)
		_, err := b.start(ctx, ct, inv.CallType.Media, func(opts *smpcall.CallOptions) (*smpcall.Call, error) {
			return b.client.AcceptCall(ctx, ct.ContactID, opts)
		})
		if err != nil {
			b.log.Info("call not answered", "contact", ct.Name(), "err", err)
		}
	})
	b.ringing[ct.ContactID] = t
}

// reconnect dials the chat core again with backoff until it answers or the
// bot stops; calls that were in progress have ended (the Client ended them).
func (b *botState) reconnect(ctx context.Context) {
	if !b.reconnecting.TryLock() {
		return // one loop at a time
	}
	defer b.reconnecting.Unlock()
	delay := 500 * time.Millisecond
	for {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := b.core.Reconnect(dctx)
		cancel()
		if err == nil {
			b.log.Info("reconnected to the chat core")
			return
		}
		b.log.Warn("reconnect failed", "err", err, "retry", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 30*time.Second)
	}
}

// start runs one call: greeting (and clip) out, voicemail in, hang up at
// the limit. The recording's files appear only when the caller's first
// frame arrives.
func (b *botState) start(ctx context.Context, ct smpcall.Contact, callMedia smpcall.CallMediaType, open func(*smpcall.CallOptions) (*smpcall.Call, error)) (*smpcall.Call, error) {
	greeting, err := audio.NewOggSource(bytes.NewReader(b.media.greeting), &audio.OggSourceOptions{Paced: true})
	if err != nil {
		return nil, fmt.Errorf("greeting: %w", err)
	}
	sources := smpcall.Sources{Mic: greeting}
	closers := []io.Closer{greeting}
	if callMedia == smpcall.MediaVideo && b.media.clip != nil {
		clip, err := video.NewIVFSource(bytes.NewReader(b.media.clip), &video.IVFSourceOptions{Paced: true, Loop: true})
		if err != nil {
			greeting.Close()
			return nil, fmt.Errorf("video: %w", err)
		}
		sources.Camera = clip
		closers = append(closers, clip)
	}
	vm := b.rec.voicemail(ct.Name())
	call, err := open(&smpcall.CallOptions{Sources: sources, Sinks: smpcall.Sinks{Mic: vm.audioSink(), Camera: vm.videoSink()}})
	if err != nil {
		for _, c := range closers {
			c.Close()
		}
		vm.close()
		return nil, err
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		limit := time.NewTimer(b.o.max)
		defer limit.Stop()
		for events := call.Events(); events != nil; {
			select {
			case ev, ok := <-events:
				if !ok {
					events = nil // the call is over
					continue
				}
				b.handleCallEvent(ct, ev)
			case <-limit.C:
				b.log.Info("maximum duration reached; hanging up", "contact", ct.Name())
				ectx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_ = call.End(ectx)
				cancel()
			}
		}
		<-call.Done()
		for _, c := range closers {
			c.Close()
		}
		files, cerr := vm.close()
		reason, err := call.Reason()
		b.log.Info("call finished", "contact", ct.Name(), "reason", reason, "err", err, "voicemail", files, "closeErr", cerr)
	}()
	return call, nil
}

// shutdown ends every call properly and waits for the recordings.
func (b *botState) shutdown() {
	b.mu.Lock()
	b.closed = true
	for _, t := range b.ringing {
		t.Stop()
	}
	b.mu.Unlock()
	b.client.Close() // sends x.call.end for calls in progress
	b.wg.Wait()
}
