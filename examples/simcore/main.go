// Command simcore is a local simulated SimpleX chat core: it serves the chat
// core's WebSocket API (the one `simplex-chat -p 5225` serves, protocol §8)
// for several users on the in-memory SMP loopback network, so that an app,
// a browser page, a bot or this SDK's own ChatClient can place and answer
// calls without a real core or network. Every user has every other as a
// contact; each user gets its own WebSocket URL.
//
//	go run ./examples/simcore -users alice,bob -listen 127.0.0.1:5225
//
// Before anything else it prints one line per user, `user <name> <url>`, and
// one per contact, `contact <user> <peer> <contactId>`; then it logs every
// x.call.* message as it crosses the simulated network. Port 0 picks free
// ports; a fixed port gives the users consecutive ports from it. The
// commands it implements are listed in package smp's ChatServer doc.
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
	if err := fs.Parse(args); err != nil {
		return err
	}
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

	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stdout, format+"\n", a...)
	}
	network := smp.NewNetwork(&smp.NetworkConfig{Trace: func(t smp.Trace) {
		m, err := smp.DecodeMessage(t.Data)
		event := "unparseable message"
		if err == nil {
			event = m.Event + " " + m.CallID.String()
		}
		say("%s  %s → %s  %s (%s)", time.Now().Format("15:04:05.000"), t.From, t.To, event, t.Fate)
	}})
	defer network.Close()

	type served struct {
		name string
		srv  *smp.ChatServer
		http *http.Server
		ln   net.Listener
	}
	var all []*served
	serveErrs := make(chan error, len(names)) // one per server when it stops
	defer func() {
		for _, s := range all {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = s.http.Shutdown(sctx)
			cancel()
			s.srv.Close()
		}
		for range all {
			<-serveErrs
		}
	}()
	for i, name := range names {
		core, err := network.AddUser(name, nil)
		if err != nil {
			return err
		}
		p := 0
		if port != 0 {
			p = port + i
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			return err
		}
		// Any origin may connect (a SimpleX-style page opened from a file has
		// Origin "null"): the simulator only listens where -listen says,
		// 127.0.0.1 by default, and carries no real messages.
		srv := smp.NewChatServer(core, &smp.ChatServerOptions{AcceptOptions: &websocket.AcceptOptions{InsecureSkipVerify: true}})
		s := &served{name: name, srv: srv, ln: ln}
		s.http = &http.Server{Handler: s.srv, ReadHeaderTimeout: 10 * time.Second}
		go func() { serveErrs <- s.http.Serve(ln) }()
		all = append(all, s)
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
