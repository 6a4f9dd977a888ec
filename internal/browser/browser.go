// Package browser runs a headless Chromium and drives it over the Chrome
// DevTools Protocol (CDP) for the tests that need a real libwebrtc peer:
// the browser is the stack the SimpleX Android and desktop apps run, so a
// test that calls it exercises Chrome's offers, packetization, RTCP and
// insertable-stream frame transforms (issue 13).
//
// CDP travels over a pipe (--remote-debugging-pipe: Chromium reads
// NUL-terminated JSON messages on file descriptor 3 and writes them on 4), so
// no debugging port is ever opened. Chromium gets a fresh profile directory
// and the flags in Flags, which keep it off the network beyond loopback,
// give it fake camera and microphone devices, and let WebRTC use 127.0.0.1.
//
// It is test support: only tests and the examples' tests import it.
package browser

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Flags are the Chromium command-line flags every Launch uses: headless, no
// sandbox (containers and CI run as root), no GPU, no QUIC, none of the
// background services that would reach the network, fake media devices with
// the permission prompt answered, and loopback candidates for WebRTC.
var Flags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
	"--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
	"--allow-loopback-in-peer-connection",
	// Remote audio plays without a click (the tests never click).
	"--autoplay-policy=no-user-gesture-required",
}

// maxMessage bounds one CDP message from Chromium (screenshots are the
// largest, a few hundred KiB). A bigger one ends the session.
const maxMessage = 64 << 20

// maxConsole bounds the console lines a Page keeps (the newest are kept).
const maxConsole = 2000

// ErrClosed is returned by calls on a browser that has exited or been closed.
var ErrClosed = errors.New("browser: closed")

// Options configure Launch; nil means defaults.
type Options struct {
	// Path is the Chromium binary. Default: "chromium" from PATH.
	Path string
	// Args are more flags, after Flags.
	Args []string
	// Stderr receives Chromium's own log output. Default: discarded.
	Stderr io.Writer
}

// Browser is a running Chromium.
//
// Concurrency: all methods are safe for concurrent use. Close stops the
// process (and its helper processes) and the reader goroutine, and may be
// called more than once.
type Browser struct {
	cmd     *exec.Cmd
	dir     string
	toChrom *os.File // our end of Chromium's fd 3

	wmu    sync.Mutex // serializes writes
	mu     sync.Mutex
	nextID int64
	calls  map[int64]chan reply
	pages  map[string]*Page // by CDP session id
	err    error            // set when the connection is gone
	exited chan struct{}    // closed when the process has exited
	readWG sync.WaitGroup
	once   sync.Once
}

type reply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type message struct {
	ID        int64           `json:"id"`
	Method    string          `json:"method"`
	Params    json.RawMessage `json:"params"`
	SessionID string          `json:"sessionId"`
	reply
}

// Launch starts Chromium with a fresh profile and connects to it. ctx bounds
// the start only; the browser runs until Close.
func Launch(ctx context.Context, opts *Options) (*Browser, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Path == "" {
		p, err := exec.LookPath("chromium")
		if err != nil {
			return nil, fmt.Errorf("browser: %w", err)
		}
		o.Path = p
	}
	dir, err := os.MkdirTemp("", "smpcall-chromium-")
	if err != nil {
		return nil, fmt.Errorf("browser: profile: %w", err)
	}
	// fd 3: Chromium reads our commands; fd 4: Chromium writes to us.
	inR, inW, err := os.Pipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	args := append(append([]string{}, Flags...), "--remote-debugging-pipe", "--user-data-dir="+dir)
	args = append(args, o.Args...)
	args = append(args, "about:blank")
	cmd := exec.Command(o.Path, args...)
	cmd.ExtraFiles = []*os.File{inR, outW}
	cmd.Stdout = o.Stderr
	cmd.Stderr = o.Stderr
	// Chromium drops DBus, crash-reporter and desktop lookups faster with no
	// session around; and the process group lets Close stop its helpers.
	cmd.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS=disabled:")
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("browser: start %s: %w", o.Path, err)
	}
	// The child has its copies now.
	inR.Close()
	outW.Close()
	b := &Browser{cmd: cmd, dir: dir, toChrom: inW, calls: map[int64]chan reply{}, pages: map[string]*Page{}, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(b.exited)
	}()
	b.readWG.Add(1)
	go func() {
		defer b.readWG.Done()
		b.read(outR)
	}()
	// The browser answers once it is up.
	if _, err := b.call(ctx, "", "Browser.getVersion", nil); err != nil {
		b.Close()
		return nil, fmt.Errorf("browser: no answer from Chromium: %w", err)
	}
	return b, nil
}

// read dispatches Chromium's messages until the pipe closes.
func (b *Browser) read(r io.ReadCloser) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxMessage)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, 0); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			return 0, nil, io.ErrUnexpectedEOF
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		var m message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue // not ours to fix; a call waiting for it times out
		}
		if m.Method == "" {
			b.mu.Lock()
			ch := b.calls[m.ID]
			delete(b.calls, m.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- m.reply
			}
			continue
		}
		b.mu.Lock()
		p := b.pages[m.SessionID]
		b.mu.Unlock()
		if p != nil {
			p.event(m.Method, m.Params)
		}
	}
	err := sc.Err()
	if err == nil {
		err = io.EOF
	}
	b.mu.Lock()
	b.err = fmt.Errorf("%w: %v", ErrClosed, err)
	calls := b.calls
	b.calls = map[int64]chan reply{}
	b.mu.Unlock()
	for _, ch := range calls {
		close(ch)
	}
}

// call sends one CDP command (to the browser, or to a page's session) and
// waits for its result.
func (b *Browser) call(ctx context.Context, session, method string, params any) (json.RawMessage, error) {
	b.mu.Lock()
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return nil, err
	}
	b.nextID++
	id := b.nextID
	ch := make(chan reply, 1)
	b.calls[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	data, err := json.Marshal(msg)
	if err != nil {
		b.forget(id)
		return nil, err
	}
	b.wmu.Lock()
	_, err = b.toChrom.Write(append(data, 0))
	b.wmu.Unlock()
	if err != nil {
		b.forget(id)
		return nil, fmt.Errorf("browser: %s: %w", method, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			b.mu.Lock()
			err := b.err
			b.mu.Unlock()
			return nil, err
		}
		if r.Error != nil {
			return nil, fmt.Errorf("browser: %s: %s (%d)", method, r.Error.Message, r.Error.Code)
		}
		return r.Result, nil
	case <-ctx.Done():
		b.forget(id)
		return nil, fmt.Errorf("browser: %s: %w", method, ctx.Err())
	}
}

func (b *Browser) forget(id int64) {
	b.mu.Lock()
	delete(b.calls, id)
	b.mu.Unlock()
}

// NewPage opens a tab, attaches to it and loads url, waiting until the
// document has loaded.
func (b *Browser) NewPage(ctx context.Context, url string) (*Page, error) {
	res, err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"})
	if err != nil {
		return nil, err
	}
	var t struct {
		TargetID string `json:"targetId"`
	}
	if err := json.Unmarshal(res, &t); err != nil {
		return nil, fmt.Errorf("browser: createTarget: %w", err)
	}
	res, err = b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": t.TargetID, "flatten": true})
	if err != nil {
		return nil, err
	}
	var s struct {
		SessionID string `json:"sessionId"`
	}
	if err := json.Unmarshal(res, &s); err != nil {
		return nil, fmt.Errorf("browser: attachToTarget: %w", err)
	}
	p := &Page{b: b, session: s.SessionID, target: t.TargetID}
	b.mu.Lock()
	b.pages[s.SessionID] = p
	b.mu.Unlock()
	for _, m := range []string{"Runtime.enable", "Page.enable"} {
		if _, err := b.call(ctx, p.session, m, nil); err != nil {
			return nil, err
		}
	}
	if err := p.Navigate(ctx, url); err != nil {
		return nil, err
	}
	return p, nil
}

// Close closes Chromium: politely first, then by killing its process
// group. It removes the profile directory and waits for the reader.
func (b *Browser) Close() error {
	b.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _ = b.call(ctx, "", "Browser.close", nil)
		cancel()
		select {
		case <-b.exited:
		case <-time.After(3 * time.Second):
		}
		killProcessGroup(b.cmd) // helpers that outlived the browser process, or a stuck browser
		<-b.exited
		b.toChrom.Close()
		b.readWG.Wait()
		os.RemoveAll(b.dir)
	})
	return nil
}

// Page is one tab.
//
// Concurrency: all methods are safe for concurrent use.
type Page struct {
	b       *Browser
	session string
	target  string

	mu      sync.Mutex
	console []string
}

// event records console output and uncaught exceptions, bounded.
func (p *Page) event(method string, params json.RawMessage) {
	var line string
	switch method {
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		if json.Unmarshal(params, &e) != nil {
			return
		}
		parts := make([]string, 0, len(e.Args))
		for _, a := range e.Args {
			if a.Value != nil {
				parts = append(parts, fmt.Sprint(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		line = e.Type + ": " + strings.Join(parts, " ")
	case "Runtime.exceptionThrown":
		var e struct {
			ExceptionDetails struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		if json.Unmarshal(params, &e) != nil {
			return
		}
		line = "exception: " + e.ExceptionDetails.Text + " " + e.ExceptionDetails.Exception.Description
	default:
		return
	}
	p.mu.Lock()
	p.console = append(p.console, line)
	if len(p.console) > maxConsole {
		p.console = p.console[len(p.console)-maxConsole:]
	}
	p.mu.Unlock()
}

// Console returns the page's console lines and uncaught exceptions so far
// (the newest 2000).
func (p *Page) Console() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.console...)
}

// Navigate loads url and waits until its document has loaded.
func (p *Page) Navigate(ctx context.Context, url string) error {
	res, err := p.b.call(ctx, p.session, "Page.navigate", map[string]any{"url": url})
	if err != nil {
		return err
	}
	var n struct {
		ErrorText string `json:"errorText"`
	}
	if err := json.Unmarshal(res, &n); err == nil && n.ErrorText != "" {
		return fmt.Errorf("browser: navigate to %s: %s", url, n.ErrorText)
	}
	return p.WaitFor(ctx, `document.readyState === "complete" && location.href !== "about:blank"`)
}

// WaitFor polls the JavaScript expression every 50 ms until it is true.
func (p *Page) WaitFor(ctx context.Context, expr string) error {
	for {
		var ok bool
		err := p.Evaluate(ctx, "!!("+expr+")", &ok)
		if err == nil && ok {
			return nil
		}
		if errors.Is(err, ErrClosed) {
			return err
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("browser: waiting for %s: %w (last error: %v)", expr, ctx.Err(), err)
			}
			return fmt.Errorf("browser: waiting for %s: %w", expr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Evaluate runs a JavaScript expression in the page, waits for it if it is
// a promise, and decodes its JSON value into result (which may be nil). A
// thrown exception is an error carrying its message.
func (p *Page) Evaluate(ctx context.Context, expr string, result any) error {
	res, err := p.b.call(ctx, p.session, "Runtime.evaluate", map[string]any{
		"expression": expr, "awaitPromise": true, "returnByValue": true, "userGesture": true,
	})
	if err != nil {
		return err
	}
	var r struct {
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return fmt.Errorf("browser: evaluate: %w", err)
	}
	if e := r.ExceptionDetails; e != nil {
		msg := e.Exception.Description
		if msg == "" {
			msg = e.Text
		}
		return fmt.Errorf("browser: evaluate: %s", msg)
	}
	if result == nil || r.Result.Type == "undefined" || len(r.Result.Value) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Result.Value, result); err != nil {
		return fmt.Errorf("browser: evaluate: result: %w", err)
	}
	return nil
}

// Screenshot returns a PNG of the page's viewport.
func (p *Page) Screenshot(ctx context.Context) ([]byte, error) {
	res, err := p.b.call(ctx, p.session, "Page.captureScreenshot", map[string]any{"format": "png"})
	if err != nil {
		return nil, err
	}
	var s struct {
		Data string `json:"data"`
	}
	if err := json.Unmarshal(res, &s); err != nil {
		return nil, fmt.Errorf("browser: screenshot: %w", err)
	}
	png, err := base64.StdEncoding.DecodeString(s.Data)
	if err != nil {
		return nil, fmt.Errorf("browser: screenshot: %w", err)
	}
	return png, nil
}

// SetViewport sets the page's viewport size in CSS pixels.
func (p *Page) SetViewport(ctx context.Context, width, height int) error {
	_, err := p.b.call(ctx, p.session, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false,
	})
	return err
}

// Close closes the tab.
func (p *Page) Close(ctx context.Context) error {
	_, err := p.b.call(ctx, "", "Target.closeTarget", map[string]any{"targetId": p.target})
	p.b.mu.Lock()
	delete(p.b.pages, p.session)
	p.b.mu.Unlock()
	return err
}
