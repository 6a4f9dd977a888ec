// Command webcall is a SimpleX call you can open in a browser: it starts the
// simulated chat core with two users, "alice" (you, in the browser) and
// "bot" (a Go program on this SDK), serves a web page on
// http://127.0.0.1:8080/ that plays the SimpleX app against alice's
// chat-core WebSocket API, and runs the bot, which answers your calls and
// calls you on request, sending a tone and a small VP8 clip back. Frames
// are end-to-end encrypted in both directions: the page encrypts them with
// insertable streams and WebCrypto as the SimpleX page does, the bot with
// the SDK, both with the key the two chat cores agreed.
//
//	npm ci --prefix examples/webcall   # lz-string for the page, once
//	go run ./examples/webcall          # then open http://127.0.0.1:8080/
//
// Flags: -listen for the address, -relay with -turn for relay-only ICE
// through a TURN server (both sides), -encrypt=false for calls without
// frame encryption (both sides allow it; the page says so), -udp-mux for
// one UDP port for all the bot's calls, -audio and -video for the bot's
// media, -lzstring for another copy of lz-string.min.js.
//
// The page and the chat core's WebSocket (/chat) share one origin, so the
// core's same-origin check holds. Everything listens on 127.0.0.1 and uses
// no STUN or TURN server unless -turn names one.
package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/smp"
)

//go:embed web
var webFiles embed.FS

// The bot's media, embedded so that a built binary runs from anywhere:
// copies of testdata/media/tone.opus and video.ivf (see testdata/media).
//
//go:embed media/tone.opus
var toneOpus []byte

//go:embed media/video.ivf
var clipIVF []byte

// lzPath is where `npm ci --prefix examples/webcall` puts lz-string.
const lzPath = "node_modules/lz-string/libs/lz-string.min.js"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills a slow shutdown
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil))
}

type options struct {
	listen   string
	relay    bool
	turn     string
	encrypt  bool
	lzstring string
	audio    string
	video    string
	udpMux   string
}

// hooks are what the tests change: the bot's WebRTC settings (loopback
// only) and a look at the server once it listens.
type hooks struct {
	cfg   *smpcall.Config
	ready func(url string)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, h *hooks) int {
	fs := flag.NewFlagSet("webcall", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address of the web page and the chat core's WebSocket")
	fs.BoolVar(&o.relay, "relay", false, "relay-only ICE on both sides (needs -turn)")
	fs.StringVar(&o.turn, "turn", "", "TURN server for both sides, SimpleX form turn:user:pass@host:port?transport=udp")
	fs.BoolVar(&o.encrypt, "encrypt", true, "end-to-end frame encryption; false lets both sides call without it")
	fs.StringVar(&o.lzstring, "lzstring", "", "path of lz-string.min.js (default: examples/webcall/"+lzPath+")")
	fs.StringVar(&o.audio, "audio", "", "Ogg Opus file the bot plays, looped (default: a built-in tone)")
	fs.StringVar(&o.video, "video", "", "IVF VP8 file the bot shows in video calls, looped (default: a built-in clip)")
	fs.StringVar(&o.udpMux, "udp-mux", "", "one UDP address for all the bot's calls (Config.UDPMux), e.g. 127.0.0.1:50000; default: a socket per call")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "webcall: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if h == nil {
		h = &hooks{}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err := serve(ctx, o, stdout, log, h); err != nil {
		log.Error("webcall stopped", "err", err)
		return 1
	}
	return 0
}

// pageConfig is /config.json: what the page needs beyond the chat core.
type pageConfig struct {
	Encryption bool           `json:"encryption"`
	Relay      bool           `json:"relay"`
	ICEServers []pageICEEntry `json:"iceServers"`
	Contact    string         `json:"contact"`
}

// pageICEEntry is an RTCIceServer.
type pageICEEntry struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

func serve(ctx context.Context, o options, stdout io.Writer, log *slog.Logger, h *hooks) error {
	if o.relay && o.turn == "" {
		return errors.New("-relay needs -turn")
	}
	lz, err := findLZString(o.lzstring)
	if err != nil {
		return err
	}
	greet, clip := toneOpus, clipIVF
	if o.audio != "" {
		if greet, err = os.ReadFile(o.audio); err != nil {
			return err
		}
	}
	if o.video != "" {
		if clip, err = os.ReadFile(o.video); err != nil {
			return err
		}
	}

	// The bot's WebRTC: no STUN/TURN unless -turn (nothing leaves the
	// machine); the same TURN server and policy as the page.
	cfg := &smpcall.Config{}
	if h.cfg != nil {
		*cfg = *h.cfg
	}
	cfg.Logger = log
	cfg.AllowUnencrypted = !o.encrypt
	if cfg.ICEServers == nil {
		cfg.ICEServers = []smpcall.ICEServer{}
	}
	page := pageConfig{Encryption: o.encrypt, Relay: o.relay, ICEServers: []pageICEEntry{}, Contact: "bot"}
	if o.turn != "" {
		srv, err := smpcall.ParseICEServer(o.turn)
		if err != nil {
			return err
		}
		cfg.ICEServers = append([]smpcall.ICEServer{srv}, cfg.ICEServers...)
		cfg.RelayOnly = o.relay
		page.ICEServers = append(page.ICEServers, pageICEEntry{URLs: srv.URLs, Username: srv.Username, Credential: srv.Credential})
	}

	var udpMux string
	if o.udpMux != "" {
		// Closed after the bot's Client (defers run last in, first out).
		m, err := smpcall.ListenUDPMux(o.udpMux)
		if err != nil {
			return err
		}
		defer m.Close()
		cfg.UDPMux = m
		udpMux = m.Addr().String()
	}

	network := smp.NewNetwork(nil)
	defer network.Close()
	aliceCore, err := network.AddUser("alice", nil)
	if err != nil {
		return err
	}
	botCore, err := network.AddUser("bot", nil)
	if err != nil {
		return err
	}
	if _, _, err := network.Connect("bot", "alice"); err != nil {
		return err
	}
	var peer smpcall.Contact
	for _, ct := range botCore.Contacts() {
		if ct.LocalDisplayName == "alice" {
			peer = ct
		}
	}
	client, err := smpcall.NewClient(botCore, cfg)
	if err != nil {
		return err
	}
	b := &bot{client: client, peer: peer, greet: greet, clip: clip, log: log, udpMux: udpMux}
	botCtx, stopBot := context.WithCancel(ctx)
	botDone := make(chan struct{})
	go func() {
		defer close(botDone)
		b.run(botCtx)
	}()
	defer func() {
		b.close() // ends a call in progress with x.call.end: the page sees it end
		stopBot()
		<-botDone
	}()

	// One origin for the page and alice's chat core: the core only accepts
	// WebSockets from its own origin (coder/websocket's default check).
	chat := smp.NewChatServer(aliceCore, &smp.ChatServerOptions{Logger: log})
	defer chat.Close()
	web, err := fs.Sub(webFiles, "web")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(web))
	mux.Handle("GET /chat", chat)
	mux.HandleFunc("GET /lz-string.min.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		http.ServeFile(w, r, lz)
	})
	mux.HandleFunc("GET /config.json", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, page)
	})
	mux.HandleFunc("GET /bot/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, b.stats())
	})
	mux.HandleFunc("POST /bot/call", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Media smpcall.CallMediaType `json:"media"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil || !req.Media.Valid() {
			http.Error(w, `want {"media":"audio"|"video"}`, http.StatusBadRequest)
			return
		}
		if err := b.place(r.Context(), req.Media); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /bot/hangup", func(w http.ResponseWriter, r *http.Request) {
		if err := b.hangup(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	url := "http://" + ln.Addr().String() + "/"
	fmt.Fprintf(stdout, "webcall: open %s (you are alice; the bot answers and calls back)\n", url)
	log.Info("webcall ready", "url", url, "encrypt", o.encrypt, "relay", o.relay, "turn", o.turn != "", "udp_mux", udpMux)
	if h.ready != nil {
		h.ready(url)
	}
	select {
	case <-ctx.Done():
		err = nil
	case err = <-served:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.close()
	chat.Close() // hijacked WebSockets are not the http.Server's to close
	_ = hs.Shutdown(sctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// findLZString finds lz-string.min.js: the flag, else beside this source
// file (go run), else under the current directory or the repository root.
func findLZString(flagPath string) (string, error) {
	if flagPath != "" {
		if _, err := os.Stat(flagPath); err != nil {
			return "", fmt.Errorf("-lzstring: %w", err)
		}
		return flagPath, nil
	}
	var candidates []string
	if _, file, _, ok := runtime.Caller(0); ok {
		candidates = append(candidates, filepath.Join(filepath.Dir(file), lzPath))
	}
	candidates = append(candidates, lzPath, filepath.Join("examples", "webcall", lzPath))
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", errors.New("lz-string for the page is missing: run `npm ci --prefix examples/webcall` (or give -lzstring)")
}
