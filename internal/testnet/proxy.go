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
	downs []*websocket.Conn // the client sides, for Inject
	down  bool
	wg    sync.WaitGroup
}

// NewCutProxy starts a proxy in front of the chat core at upstream (a ws://
// URL); clients dial its URL field instead. The test's cleanup cuts the
// remaining connections, stops the server and waits for its goroutines.
func NewCutProxy(t testing.TB, upstream string) *CutProxy {
	p := &CutProxy{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		refuse := p.down
		p.mu.Unlock()
		if refuse {
			http.Error(w, "the network is down", http.StatusServiceUnavailable)
			return
		}
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
		p.downs = append(p.downs, down)
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
	p.conns, p.downs = nil, nil
	p.mu.Unlock()
	for _, c := range conns {
		c.CloseNow()
	}
}

// SetDown cuts every connection and refuses new ones until SetDown(false):
// an outage, not just a dropped connection.
func (p *CutProxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
	if down {
		p.Cut()
	}
}

// Inject sends a text frame to every client as if the core had sent it.
func (p *CutProxy) Inject(ctx context.Context, frame []byte) error {
	p.mu.Lock()
	downs := append([]*websocket.Conn(nil), p.downs...)
	p.mu.Unlock()
	for _, c := range downs {
		if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
			return err
		}
	}
	return nil
}
