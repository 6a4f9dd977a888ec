// Command callbot is a SimpleX call bot: it connects to a chat core's
// WebSocket API (a real `simplex-chat -p 5225`, or examples/simcore),
// answers incoming calls from allowed contacts, plays a greeting, records
// what the caller sends as voicemail (Ogg Opus, plus IVF for video calls,
// one pair of files per call named by contact and time), and hangs up after
// a maximum duration or when the caller ends. It can also place a call to a
// named contact. Logs are structured (log/slog); SIGINT ends calls properly
// (x.call.end) before exiting.
//
//	go run ./examples/callbot -url ws://127.0.0.1:5225 -allow alice -out voicemail
//	go run ./examples/callbot -url ws://127.0.0.1:5225 -call alice
//
// SimpleX apps use relay-only ICE by default: give the bot the same TURN
// server with -turn (and -relay to hide its own address too).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/smp"
	"github.com/smpcall/smpcall/video"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills a slow shutdown
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stderr, nil))
}

type options struct {
	url      string
	allow    map[string]bool
	greeting string
	out      string
	max      time.Duration
	call     string
	relay    bool
	turn     string
	jsonLog  bool
}

// run is the bot; cfg, if not nil, overrides the WebRTC settings (tests use
// it to stay on loopback).
func run(ctx context.Context, args []string, logw io.Writer, cfg *smpcall.Config) int {
	fs := flag.NewFlagSet("callbot", flag.ContinueOnError)
	fs.SetOutput(logw)
	var o options
	var allow string
	fs.StringVar(&o.url, "url", "ws://127.0.0.1:5225", "chat core WebSocket URL")
	fs.StringVar(&allow, "allow", "", "comma-separated contact names whose calls are answered (default: everyone)")
	fs.StringVar(&o.greeting, "greeting", "", "Ogg Opus greeting (default: the repository's testdata/media/tone.opus)")
	fs.StringVar(&o.out, "out", "voicemail", "folder for the recordings")
	fs.DurationVar(&o.max, "max", 60*time.Second, "maximum call duration")
	fs.StringVar(&o.call, "call", "", "place a call to this contact")
	fs.BoolVar(&o.relay, "relay", false, "relay-only ICE (needs -turn)")
	fs.StringVar(&o.turn, "turn", "", "TURN server, SimpleX form turn:user:pass@host:port?transport=udp")
	fs.BoolVar(&o.jsonLog, "json", false, "log JSON instead of text")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if allow != "" {
		o.allow = map[string]bool{}
		for _, n := range strings.Split(allow, ",") {
			o.allow[strings.TrimSpace(n)] = true
		}
	}
	if o.greeting == "" {
		_, file, _, _ := runtime.Caller(0)
		o.greeting = filepath.Join(filepath.Dir(file), "..", "..", "testdata", "media", "tone.opus")
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

func bot(ctx context.Context, o options, log *slog.Logger, base *smpcall.Config) error {
	if o.relay && o.turn == "" {
		return errors.New("-relay needs -turn")
	}
	if _, err := os.Stat(o.greeting); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
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
	b := &botState{o: o, log: log, client: client, core: core}
	defer b.shutdown()

	if o.call != "" {
		ct, err := core.ContactByName(ctx, o.call)
		if err != nil {
			return err
		}
		b.start(ctx, ct, func(opts *smpcall.CallOptions) (*smpcall.Call, error) {
			opts.Media = smpcall.MediaAudio
			return client.PlaceCall(ctx, ct.ContactID, opts)
		})
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("callbot stopping")
			return nil
		case ev, ok := <-client.Events():
			if !ok {
				return errors.New("client closed")
			}
			b.handle(ctx, ev)
		}
	}
}

type botState struct {
	o            options
	log          *slog.Logger
	client       *smpcall.Client
	core         *smp.ChatClient
	wg           sync.WaitGroup
	reconnecting sync.Mutex
}

func (b *botState) handle(ctx context.Context, ev smpcall.Event) {
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
		b.log.Info("answering call", "contact", ct.Name(), "media", e.Invitation.CallType.Media)
		b.start(ctx, ct, func(opts *smpcall.CallOptions) (*smpcall.Call, error) {
			return b.client.AcceptCall(ctx, ct.ContactID, opts)
		})
	case *smpcall.CallRecordEvent:
		b.log.Info("call record", "contact", e.Record.Contact.Name(), "record", e.Record.Text(), "reason", e.Record.Reason)
	case *smpcall.TransportErrorEvent:
		b.log.Warn("chat core connection lost; reconnecting", "err", e.Err)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.reconnect(ctx)
		}()
	}
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

// start runs one call: greeting in, voicemail out, hang up at the limit.
func (b *botState) start(ctx context.Context, ct smpcall.Contact, open func(*smpcall.CallOptions) (*smpcall.Call, error)) {
	base := filepath.Join(b.o.out, fmt.Sprintf("%s-%s", safeName(ct.Name()), time.Now().UTC().Format("20060102-150405.000")))
	greeting, err := audio.OpenOggSource(b.o.greeting, &audio.OggSourceOptions{Paced: true})
	if err != nil {
		b.log.Error("greeting", "err", err)
		return
	}
	voice, err := audio.CreateOggSink(base+".opus", nil)
	if err != nil {
		greeting.Close()
		b.log.Error("recording", "err", err)
		return
	}
	pic, err := video.CreateIVFSink(base+".ivf", nil)
	if err != nil {
		greeting.Close()
		voice.Close()
		b.log.Error("recording", "err", err)
		return
	}
	call, err := open(&smpcall.CallOptions{Sources: smpcall.Sources{Mic: greeting}, Sinks: smpcall.Sinks{Mic: voice, Camera: pic}})
	if err != nil {
		greeting.Close()
		voice.Close()
		pic.Close()
		os.Remove(base + ".opus")
		os.Remove(base + ".ivf")
		b.log.Error("call", "contact", ct.Name(), "err", err)
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		limit := time.NewTimer(b.o.max)
		defer limit.Stop()
		select {
		case <-call.Done():
		case <-limit.C:
			b.log.Info("maximum duration reached; hanging up", "contact", ct.Name())
			ectx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = call.End(ectx)
			cancel()
		}
		<-call.Done()
		greeting.Close()
		errs := errors.Join(voice.Close(), pic.Close())
		if pic.Frames() == 0 {
			os.Remove(base + ".ivf") // an audio call: no video to keep
		}
		reason, cerr := call.Reason()
		b.log.Info("call finished", "contact", ct.Name(), "reason", reason, "err", cerr, "voicemail", base+".opus", "closeErr", errs)
	}()
}

// shutdown ends every call properly and waits for the recordings.
func (b *botState) shutdown() {
	b.client.Close() // sends x.call.end for calls in progress
	b.wg.Wait()
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 || r == '.' {
			return '_'
		}
		return r
	}, s)
}
