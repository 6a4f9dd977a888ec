package testnet

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
)

// CutProxy forwards WebSocket frames to an upstream chat core and can cut
// every connection at once, as a network failure would.
type CutProxy struct {
	URL   string
	mu    sync.Mutex
	conns []*websocket.Conn
	wg    sync.WaitGroup
}

// NewCutProxy starts a proxy in front of the chat core at upstream (a ws://
// URL); clients dial its URL field instead. The test's cleanup cuts the
// remaining connections, stops the server and waits for its goroutines.
func NewCutProxy(t testing.TB, upstream string) *CutProxy {
	p := &CutProxy{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		down, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		up, _, err := websocket.Dial(r.Context(), upstream, nil)
		if err != nil {
			down.CloseNow()
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, down, up)
		p.mu.Unlock()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		pipe := func(from, to *websocket.Conn) {
			defer cancel()
			for {
				typ, b, err := from.Read(ctx)
				if err != nil {
					return
				}
				if err := to.Write(ctx, typ, b); err != nil {
					return
				}
			}
		}
		p.wg.Add(1)
		go func() { defer p.wg.Done(); pipe(up, down) }()
		pipe(down, up)
		down.CloseNow()
		up.CloseNow()
	}))
	p.URL = "ws" + strings.TrimPrefix(hs.URL, "http")
	t.Cleanup(func() {
		p.Cut()
		hs.Close()
		p.wg.Wait()
	})
	return p
}

// Cut closes every connection the proxy carries, both sides, without a
// close handshake. New connections are still accepted afterwards, so a
// client can reconnect. Safe to call concurrently and more than once.
func (p *CutProxy) Cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.CloseNow()
	}
}
