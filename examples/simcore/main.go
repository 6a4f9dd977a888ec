// Command simcore is a local simulated SimpleX chat core: it serves the chat
// core's WebSocket API (the one `simplex-chat -p 5225` serves, protocol §8)
// for several users on the in-memory SMP loopback network, so that an app,
// a browser page, a bot or this SDK's own ChatClient can place and answer
// calls without a real core or network. Every user has every other as a
// contact. By default each user gets its own core and URL (one
// `simplex-chat -p` per user); with -shared all users are profiles of one
// core behind one URL, the first one active, as one simplex-chat with
// several profiles.
//
//	go run ./examples/simcore -users alice,bob -listen 127.0.0.1:5225
//
// Before anything else it prints one line per user, `user <name> <url>`, and
// one per contact, `contact <user> <peer> <contactId>`; then it logs every
// x.call.* message as it crosses the simulated network. Port 0 picks free
// ports; a fixed port gives the users consecutive ports from it. The
// commands it implements are listed in package smp's ChatServer doc; it is
// as strict as the real core (see smp.ChatServerOptions).
//
// It listens on 127.0.0.1 unless -listen says otherwise, and accepts
// WebSocket connections from programs (no Origin header) and from pages of
// its own origin only; -origin allows pages from other hosts (coder/websocket
// origin patterns, e.g. "localhost:*"), and -any-origin allows every page,
// including pages opened from files (Origin "null"). Any page allowed can
// place calls as the simulated users.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/smpcall/smpcall/smp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "simcore:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simcore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	users := fs.String("users", "alice,bob", "comma-separated user names")
	listen := fs.String("listen", "127.0.0.1:5225", "address of the first user's WebSocket server (port 0: free ports)")
	origins := fs.String("origin", "", "comma-separated host patterns of other origins whose pages may connect (default: same origin only)")
	anyOrigin := fs.Bool("any-origin", false, "accept pages from every origin, including files (Origin \"null\")")
	shared := fs.Bool("shared", false, "serve all users as profiles of one core on one URL (the first user active)")
	bare := fs.Bool("bare", false, "send resp objects bare, as cores before the Either-wrapped framing did")
	if err := fs.Parse(args); err != nil {
		return err
	}
	accept := &websocket.AcceptOptions{InsecureSkipVerify: *anyOrigin}
	if *origins != "" {
		accept.OriginPatterns = strings.Split(*origins, ",")
	}
	srvOpts := &smp.ChatServerOptions{AcceptOptions: accept, BareResponses: *bare}
	names := strings.Split(*users, ",")
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" || seen[n] || strings.ContainsAny(n, " @") {
			return fmt.Errorf("bad user list %q", *users)
		}
		seen[n] = true
	}
	host, portStr, err := net.SplitHostPort(*listen)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("bad port in %q", *listen)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		fmt.Fprintf(stderr, "simcore: warning: listening on %s, not a loopback address: whoever reaches it can place calls as the simulated users\n", host)
	}

	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stdout, format+"\n", a...)
	}
	network := smp.NewNetwork(&smp.NetworkConfig{UniqueContactIDs: *shared, Trace: func(t smp.Trace) {
		m, err := smp.DecodeMessage(t.Data)
		event := "unparseable message"
		if err == nil {
			event = m.Event + " " + m.CallID.String()
		}
		say("%s  %s → %s  %s (%s)", time.Now().Format("15:04:05.000"), t.From, t.To, event, t.Fate)
	}})
	defer network.Close()

	type served struct {
		name  string
		srv   *smp.ChatServer
		http  *http.Server
		ln    net.Listener
		alias bool // -shared: another profile of an earlier user's core
	}
	var all []*served
	serveErrs := make(chan error, len(names)) // one per server when it stops
	defer func() {
		n := 0
		for _, s := range all {
			if s.alias {
				continue
			}
			n++
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = s.http.Shutdown(sctx)
			cancel()
			s.srv.Close()
		}
		for range n {
			<-serveErrs
		}
	}()
	var first *served
	for i, name := range names {
		core, err := network.AddUser(name, nil)
		if err != nil {
			return err
		}
		if *shared && first != nil {
			if err := first.srv.AddUser(core); err != nil {
				return err
			}
			all = append(all, &served{name: name, srv: first.srv, ln: first.ln, http: first.http, alias: true})
			continue
		}
		p := 0
		if port != 0 {
			p = port + i
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			return err
		}
		s := &served{name: name, srv: smp.NewChatServer(core, srvOpts), ln: ln}
		s.http = &http.Server{Handler: s.srv, ReadHeaderTimeout: 10 * time.Second}
		go func() { serveErrs <- s.http.Serve(ln) }()
		all = append(all, s)
		first = s
	}
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			if _, _, err := network.Connect(names[i], names[j]); err != nil {
				return err
			}
		}
	}
	for _, s := range all {
		say("user %s ws://%s", s.name, s.ln.Addr())
	}
	for _, a := range names {
		for _, b := range names {
			if a != b {
				say("contact %s %s %d", a, b, network.ContactID(a, b))
			}
		}
	}
	say("ready")
	select {
	case <-ctx.Done():
		return nil
	case err := <-serveErrs:
		serveErrs <- err // the deferred shutdown counts every server
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}
