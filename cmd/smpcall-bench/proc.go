package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/smpcall/smpcall/smp"
)

// This file runs the far ends of the calls in a second process, so that
// the measured process carries only its own side: the parent starts
// itself again with peerEnv set, and talks to the child over its stdin
// and stdout, one JSON object a line. The SDK's signaling goes through
// the child's simulated chat core, which the parent's Client reaches as a
// bot reaches simplex-chat: over its WebSocket API (smp.ChatClient).

// peerEnv makes the program (or the test binary) run as the peer process.
const peerEnv = "SMPCALL_BENCH_PEER"

// request is one command to the peer process.
type request struct {
	ID  int    `json:"id"`
	Op  string `json:"op"`
	N   int    `json:"n,omitempty"`
	SDP string `json:"sdp,omitempty"`
	Leg int    `json:"leg,omitempty"`
	// Spec is the media of the step's calls.
	Spec mediaSpec `json:"spec"`
	// From and To are seconds (snapshot); Start and End UnixNano (window).
	From  int64 `json:"from,omitempty"`
	To    int64 `json:"to,omitempty"`
	Start int64 `json:"start,omitempty"`
	End   int64 `json:"end,omitempty"`
}

type response struct {
	ID       int           `json:"id"`
	Err      string        `json:"err,omitempty"`
	URL      string        `json:"url,omitempty"`
	Contacts []int64       `json:"contacts,omitempty"`
	SDP      string        `json:"sdp,omitempty"`
	Leg      int           `json:"leg,omitempty"`
	Meter    meterSnapshot `json:"meter"`
	Proc     procStats     `json:"proc"`
}

// peerProc is the parent's handle on the peer process.
type peerProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	mu      sync.Mutex
	nextID  int
	pending map[int]chan response
	done    chan struct{}
	err     error
}

func startPeerProc() (*peerProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), peerEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &peerProc{cmd: cmd, stdin: stdin, pending: map[int]chan response{}, done: make(chan struct{})}
	go p.read(stdout)
	return p, nil
}

func (p *peerProc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var resp response
		if err := json.Unmarshal(sc.Bytes(), &resp); err != nil {
			continue
		}
		p.mu.Lock()
		ch := p.pending[resp.ID]
		delete(p.pending, resp.ID)
		p.mu.Unlock()
		if ch != nil {
			ch <- resp
		}
	}
	p.mu.Lock()
	p.err = errors.New("peer process exited")
	if err := sc.Err(); err != nil {
		p.err = fmt.Errorf("peer process: %w", err)
	}
	p.mu.Unlock()
	close(p.done)
}

// call sends one request and waits for its response.
func (p *peerProc) call(ctx context.Context, req request) (response, error) {
	ch := make(chan response, 1)
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return response{}, p.err
	}
	p.nextID++
	req.ID = p.nextID
	p.pending[req.ID] = ch
	b, _ := json.Marshal(req)
	_, err := p.stdin.Write(append(b, '\n'))
	p.mu.Unlock()
	if err != nil {
		return response{}, fmt.Errorf("peer process: %w", err)
	}
	select {
	case resp := <-ch:
		if resp.Err != "" {
			return resp, fmt.Errorf("peer process: %s: %s", req.Op, resp.Err)
		}
		return resp, nil
	case <-p.done:
		return response{}, p.err
	case <-ctx.Done():
		return response{}, ctx.Err()
	}
}

// close ends the peer process: it stops when its stdin closes.
func (p *peerProc) close() error {
	_ = p.stdin.Close()
	t := time.AfterFunc(30*time.Second, func() { _ = p.cmd.Process.Kill() })
	defer t.Stop()
	err := p.cmd.Wait()
	<-p.done
	return err
}

// runPeer is the peer process: it serves requests from stdin until it closes.
func runPeer(stdin io.Reader, stdout io.Writer) error {
	pr := &peerRunner{m: &meter{}, se: loopbackSettings()}
	pr.api = rawAPI(pr.se)
	var wmu sync.Mutex
	enc := json.NewEncoder(stdout)
	var wg sync.WaitGroup
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var req request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			return fmt.Errorf("bad request: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := pr.handle(req)
			resp.ID = req.ID
			wmu.Lock()
			defer wmu.Unlock()
			_ = enc.Encode(resp)
		}()
	}
	wg.Wait()
	pr.teardown()
	return sc.Err()
}

// peerRunner holds the peer process's legs of the current step.
type peerRunner struct {
	m   *meter
	se  *webrtc.SettingEngine
	api *webrtc.API

	mu   sync.Mutex
	sdk  *sdkPeers
	raws []*rawLeg
}

func (pr *peerRunner) handle(req request) response {
	var resp response
	fail := func(err error) response { resp.Err = err.Error(); return resp }
	switch req.Op {
	case "sdk":
		p, err := newSDKPeers(req.N, sdkConfig(pr.se), pr.m, req.Spec)
		if err != nil {
			return fail(err)
		}
		srv, err := serveChat(p.bot)
		if err != nil {
			p.close()
			return fail(err)
		}
		p.server = srv
		pr.mu.Lock()
		pr.sdk = p
		pr.mu.Unlock()
		resp.URL, resp.Contacts = srv.url, p.contacts
	case "raw-offer":
		l, err := newRawLeg(pr.api, pr.m, req.Spec, max(req.N, 1))
		if err != nil {
			return fail(err)
		}
		pr.mu.Lock()
		pr.raws = append(pr.raws, l)
		resp.Leg = len(pr.raws) - 1
		pr.mu.Unlock()
		if resp.SDP, err = l.offer(); err != nil {
			return fail(err)
		}
	case "raw-answer":
		pr.mu.Lock()
		var l *rawLeg
		if req.Leg >= 0 && req.Leg < len(pr.raws) {
			l = pr.raws[req.Leg]
		}
		pr.mu.Unlock()
		if l == nil {
			return fail(fmt.Errorf("no raw leg %d", req.Leg))
		}
		if err := l.applyAnswer(req.SDP); err != nil {
			return fail(err)
		}
	case "clear":
		pr.m.clearAhead(time.Now())
	case "window":
		pr.m.setWindow(time.Unix(0, req.Start), time.Unix(0, req.End))
	case "snapshot":
		resp.Meter = pr.m.snapshot(req.From, req.To)
	case "cpu":
		resp.Proc.CPU = cpuTime()
	case "measure":
		resp.Proc = measure()
	case "teardown":
		pr.teardown()
	default:
		return fail(fmt.Errorf("unknown op %q", req.Op))
	}
	return resp
}

func (pr *peerRunner) teardown() {
	pr.mu.Lock()
	sdk, raws := pr.sdk, pr.raws
	pr.sdk, pr.raws = nil, nil
	pr.mu.Unlock()
	if sdk != nil {
		sdk.close()
	}
	_ = parallel(len(raws), 64, func(i int) error { raws[i].close(); return nil })
}

// chatServer serves a simulated chat core's WebSocket API on 127.0.0.1.
type chatServer struct {
	srv  *smp.ChatServer
	http *http.Server
	url  string
	done chan struct{}
}

func serveChat(core *smp.Core) (*chatServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cs := &chatServer{srv: smp.NewChatServer(core, &smp.ChatServerOptions{EventQueueSize: 1 << 16}), done: make(chan struct{})}
	cs.http = &http.Server{Handler: cs.srv, ReadHeaderTimeout: 10 * time.Second}
	cs.url = "ws://" + ln.Addr().String()
	go func() {
		defer close(cs.done)
		_ = cs.http.Serve(ln)
	}()
	return cs, nil
}

func (cs *chatServer) close() {
	_ = cs.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = cs.http.Shutdown(ctx)
	<-cs.done
}
