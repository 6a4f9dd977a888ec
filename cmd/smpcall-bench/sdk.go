package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/smp"
)

// This file is the SDK's side of a run: the far ends (chat users that
// accept the bot's calls, each with its own Client, on a simulated chat
// network) and the bot, one Client carrying every call, as a bot,
// recorder or gateway would.

// callOptions are the sources and sinks of one call leg.
func callOptions(m *meter, spec mediaSpec) *smpcall.CallOptions {
	o := &smpcall.CallOptions{Media: smpcall.MediaAudio}
	src := newSource(m, spec)
	if spec.Video {
		o.Media = smpcall.MediaVideo
		o.Sources.Camera = videoSource{src}
		o.Sinks.Camera = videoSink{m}
	} else {
		o.Sources.Mic = src
		o.Sinks.Mic = sink{m}
	}
	return o
}

// sdkPeers is the far end of n SDK calls: a simulated chat network with
// the bot's user and n users, each with a Client that accepts the bot's
// invitation. The peers stand for n people on n devices: each call opens
// its own sockets on their side, never a UDP mux (calls between the same
// two mux sockets would share one address pair, which ICE cannot tell
// apart; see smpcall.UDPMux).
type sdkPeers struct {
	net     *smp.Network
	bot     *smp.Core
	clients []*smpcall.Client
	// contacts are the users' contact ids at the bot.
	contacts []int64
	server   *chatServer // the bot's chat core on a WebSocket, if served
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func newSDKPeers(n int, cfg *smpcall.Config, m *meter, spec mediaSpec) (*sdkPeers, error) {
	p := &sdkPeers{net: smp.NewNetwork(nil)}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	var err error
	if p.bot, err = p.net.AddUser("bot", nil); err != nil {
		p.close()
		return nil, err
	}
	for i := range n {
		name := fmt.Sprintf("peer%d", i+1)
		core, err := p.net.AddUser(name, nil)
		if err != nil {
			p.close()
			return nil, err
		}
		id, _, err := p.net.Connect("bot", name)
		if err != nil {
			p.close()
			return nil, err
		}
		c, err := smpcall.NewClient(core, cfg)
		if err != nil {
			p.close()
			return nil, err
		}
		p.clients = append(p.clients, c)
		p.contacts = append(p.contacts, id)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.accept(ctx, c, m, spec)
		}()
	}
	return p, nil
}

// accept answers every invitation the user gets.
func (p *sdkPeers) accept(ctx context.Context, c *smpcall.Client, m *meter, spec mediaSpec) {
	for {
		inv, err := c.NextInvitation(ctx)
		if err != nil {
			return
		}
		if _, err := c.AcceptCall(ctx, inv.Contact.ContactID, callOptions(m, spec)); err != nil && ctx.Err() == nil {
			logf("peer: accept: %v", err)
		}
	}
}

func (p *sdkPeers) close() {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	if p.server != nil {
		p.server.close()
	}
	parallel(len(p.clients), 64, func(i int) error { return p.clients[i].Close() })
	_ = p.net.Close()
}

// sdkBot is the measured side: one Client that places every call.
type sdkBot struct {
	client *smpcall.Client
	calls  []*smpcall.Call
	mu     sync.Mutex
	mux    *smpcall.UDPMux
}

func newSDKBot(t smpcall.Transport, cfg *smpcall.Config, useMux bool) (*sdkBot, error) {
	b := &sdkBot{}
	if useMux {
		var err error
		if b.mux, err = smpcall.ListenUDPMux("127.0.0.1:0"); err != nil {
			return nil, err
		}
		c := *cfg
		c.UDPMux = b.mux
		cfg = &c
	}
	c, err := smpcall.NewClient(t, cfg)
	if err != nil {
		if b.mux != nil {
			_ = b.mux.Close()
		}
		return nil, err
	}
	b.client = c
	return b, nil
}

// call places a call to the contact and waits until it is connected.
func (b *sdkBot) call(ctx context.Context, contact int64, m *meter, spec mediaSpec) error {
	k, err := b.client.PlaceCall(ctx, contact, callOptions(m, spec))
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.calls = append(b.calls, k)
	b.mu.Unlock()
	_, err = k.WaitConnected(ctx)
	return err
}

// decryptFailures sums the frames that failed to decrypt on the bot's calls.
func (b *sdkBot) decryptFailures() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var n uint64
	for _, k := range b.calls {
		for _, s := range k.Stats().Streams {
			n += s.DecryptFailed
		}
	}
	return n
}

func (b *sdkBot) close() {
	b.mu.Lock()
	calls := b.calls
	b.mu.Unlock()
	parallel(len(calls), 64, func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return calls[i].End(ctx)
	})
	_ = b.client.Close()
	if b.mux != nil {
		_ = b.mux.Close()
	}
}

// parallel runs f(0..n-1) on at most width goroutines and returns the
// errors joined.
func parallel(n, width int, f func(int) error) error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(n, width) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}
