package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/smpcall/smpcall/internal/browser"
	"github.com/smpcall/smpcall/internal/framecrypt"
	"github.com/smpcall/smpcall/internal/testnet"
	"github.com/smpcall/smpcall/internal/testtool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuf is a log the program writes and the test reads.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// needLZString is testtool.Need for the page's lz-string: .ci/run installs
// it with npm ci, so it is required in CI and skipped without locally.
func needLZString(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(lzPath); err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing but CI is set; .ci/run runs npm ci --prefix examples/webcall", lzPath)
	}
	t.Skipf("%s is missing (npm ci --prefix examples/webcall)", lzPath)
}

// server runs the program on a free port with the bot on loopback.
type server struct {
	url string
	log *syncBuf
}

func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	needLZString(t)
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{log: &syncBuf{}}
	urls := make(chan string, 1)
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...), io.Discard, s.log,
			&hooks{cfg: testnet.LoopbackConfig(), ready: func(u string) { urls <- u }})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			require.Equal(t, 0, code, "log:\n%s", s.log.String())
		case <-time.After(20 * time.Second):
			t.Error("webcall did not stop")
		}
	})
	select {
	case s.url = <-urls:
	case code := <-done:
		done <- code
		t.Fatalf("webcall exited with %d:\n%s", code, s.log.String())
	case <-time.After(20 * time.Second):
		t.Fatal("webcall did not start")
	}
	return s
}

func (s *server) botStats(t *testing.T) botStats {
	t.Helper()
	resp, err := http.Get(s.url + "bot/stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	var st botStats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

func (s *server) post(t *testing.T, path, body string) int {
	t.Helper()
	resp, err := http.Post(s.url+path, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// openPage starts Chromium and opens the page (with an optional query).
func openPage(t *testing.T, ctx context.Context, url string) *browser.Page {
	t.Helper()
	path := testtool.Need(t, "chromium", "chromium")
	b, err := browser.Launch(ctx, &browser.Options{Path: path})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	p, err := b.NewPage(ctx, url)
	require.NoError(t, err)
	require.NoError(t, p.SetViewport(ctx, 1100, 760))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("page console:\n%s", strings.Join(p.Console(), "\n"))
		}
	})
	require.NoError(t, p.Evaluate(ctx, `webcall.ready.then(() => true)`, nil), "console:\n%s", strings.Join(p.Console(), "\n"))
	return p
}

// withPage starts the program with args and opens its page (with query)
// in Chromium; ctx bounds the test.
func withPage(t *testing.T, query string, args ...string) (*server, context.Context, *browser.Page) {
	t.Helper()
	s := startServer(t, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	return s, ctx, openPage(t, ctx, s.url+query)
}

// pageSnap is the page's webcall.snapshot().
type pageSnap struct {
	State     string  `json:"state"`
	Outgoing  bool    `json:"outgoing"`
	Media     string  `json:"media"`
	Encrypted bool    `json:"encrypted"`
	SetupMs   float64 `json:"setupMs"`
	Reason    string  `json:"reason"`
	LocalSDP  string  `json:"localSdp"`
	Path      *struct {
		Relay  bool   `json:"relay"`
		Local  string `json:"local"`
		Remote string `json:"remote"`
		Text   string `json:"text"`
	} `json:"path"`
	Counters map[string]struct {
		OK     int `json:"ok"`
		Failed int `json:"failed"`
	} `json:"counters"`
	Audio struct {
		SamplesReceived  int `json:"samplesReceived"`
		ConcealedSamples int `json:"concealedSamples"`
		PacketsReceived  int `json:"packetsReceived"`
	} `json:"audio"`
	Video struct {
		FramesDecoded  int `json:"framesDecoded"`
		FramesReceived int `json:"framesReceived"`
		FrameWidth     int `json:"frameWidth"`
	} `json:"video"`
}

func snap(t *testing.T, ctx context.Context, p *browser.Page) pageSnap {
	t.Helper()
	var s pageSnap
	require.NoError(t, p.Evaluate(ctx, `webcall.snapshot()`, &s))
	return s
}

func click(t *testing.T, ctx context.Context, p *browser.Page, id string) {
	t.Helper()
	require.NoError(t, p.WaitFor(ctx, fmt.Sprintf(`!document.getElementById(%q).disabled && !document.getElementById(%q).closest("[hidden]")`, id, id)))
	require.NoError(t, p.Evaluate(ctx, fmt.Sprintf(`document.getElementById(%q).click()`, id), nil))
}

// eventually polls cond (which reads both sides) until it holds.
func eventually(t *testing.T, ctx context.Context, what string, cond func() bool, show func() string) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v\n%s", what, ctx.Err(), show())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// A role is who places the call.
type role struct {
	name string
	// start places the call from its side and, for the bot, accepts it on the page.
	start func(t *testing.T, ctx context.Context, s *server, p *browser.Page, media string)
}

var (
	browserCalls = role{"browser calls the bot (the SDK offers)", func(t *testing.T, ctx context.Context, s *server, p *browser.Page, media string) {
		click(t, ctx, p, "call-"+media)
	}}
	botCalls = role{"the bot calls the browser (the browser offers)", func(t *testing.T, ctx context.Context, s *server, p *browser.Page, media string) {
		click(t, ctx, p, "ask-"+media)
		click(t, ctx, p, "accept")
	}}
)

// connect places a call in the given role and waits until both sides say connected.
func connect(t *testing.T, ctx context.Context, s *server, p *browser.Page, r role, media string) (pageSnap, botStats) {
	t.Helper()
	r.start(t, ctx, s, p, media)
	var ps pageSnap
	var bs botStats
	eventually(t, ctx, "connected on both sides", func() bool {
		ps, bs = snap(t, ctx, p), s.botStats(t)
		return ps.State == "connected" && bs.State == "connected" && bs.SetupMs > 0
	}, func() string { return fmt.Sprintf("page %+v\nbot %+v\nlog:\n%s", ps, bs, s.log.String()) })
	require.Equal(t, r.name == browserCalls.name, ps.Outgoing)
	require.Equal(t, ps.Outgoing, bs.Incoming)
	require.Equal(t, media, ps.Media)
	checkSDP(t, ps.LocalSDP)
	return ps, bs
}

// checkSDP checks the page's offer or answer as the SimpleX page makes
// them (protocol §6.4): four m-lines, mids 0–3 in the order microphone,
// camera, screen audio, screen video (in audio calls too), each sendrecv,
// VP8 first on video.
func checkSDP(t *testing.T, sdp string) {
	t.Helper()
	type mline struct{ kind, mid, dir, first string }
	var ms []mline
	rtpmap := map[string]string{}
	for _, line := range strings.Split(sdp, "\r\n") {
		switch {
		case strings.HasPrefix(line, "m="):
			f := strings.Fields(strings.TrimPrefix(line, "m="))
			m := mline{kind: f[0]}
			if len(f) > 3 {
				m.first = f[3]
			}
			ms = append(ms, m)
			rtpmap = map[string]string{}
		case len(ms) == 0:
		case strings.HasPrefix(line, "a=mid:"):
			ms[len(ms)-1].mid = strings.TrimPrefix(line, "a=mid:")
		case line == "a=sendrecv" || line == "a=sendonly" || line == "a=recvonly" || line == "a=inactive":
			ms[len(ms)-1].dir = strings.TrimPrefix(line, "a=")
		case strings.HasPrefix(line, "a=rtpmap:"):
			pt, codec, _ := strings.Cut(strings.TrimPrefix(line, "a=rtpmap:"), " ")
			rtpmap[pt] = codec
			if m := &ms[len(ms)-1]; pt == m.first {
				m.first = codec
			}
		}
	}
	require.Len(t, ms, 4, "four m-lines:\n%s", sdp)
	for i, kind := range []string{"audio", "video", "audio", "video"} {
		require.Equal(t, kind, ms[i].kind, "m-line %d", i)
		require.Equal(t, fmt.Sprint(i), ms[i].mid, "m-line %d", i)
		require.Equal(t, "sendrecv", ms[i].dir, "m-line %d", i)
		if kind == "video" {
			require.Equal(t, "VP8/90000", ms[i].first, "VP8 first on m-line %d", i)
		} else {
			require.Equal(t, "opus/48000/2", ms[i].first, "m-line %d", i)
		}
	}
}

// flowing waits until both sides decrypted (or, unencrypted, received) a
// good number of each other's audio and video frames and Chrome decoded
// them.
func flowing(t *testing.T, ctx context.Context, s *server, p *browser.Page, encrypted bool) (pageSnap, botStats) {
	t.Helper()
	var ps pageSnap
	var bs botStats
	eventually(t, ctx, "media in both directions", func() bool {
		ps, bs = snap(t, ctx, p), s.botStats(t)
		mic, cam := bs.Streams[0], bs.Streams[1]
		page := ps.Video.FramesDecoded >= 20 && ps.Audio.SamplesReceived > 48000/2
		if encrypted {
			page = page && ps.Counters["decAudio"].OK >= 25 && ps.Counters["decVideo"].OK >= 20
			return page && mic.Decrypted >= 25 && cam.Decrypted >= 20
		}
		return page && mic.FramesReceived >= 25 && cam.FramesReceived >= 20
	}, func() string { return fmt.Sprintf("page %+v\nbot %+v", ps, bs) })
	return ps, bs
}

// checkScreenshot takes a screenshot of the page and checks that the
// remote video shows a picture: many colours, not one flat fill.
func checkScreenshot(t *testing.T, ctx context.Context, p *browser.Page, name string) {
	t.Helper()
	shot, err := p.Screenshot(ctx)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err)
	var r struct{ X, Y, W, H float64 }
	require.NoError(t, p.Evaluate(ctx, `(() => { const b = document.getElementById("remote-video").getBoundingClientRect(); return {X: b.x, Y: b.y, W: b.width, H: b.height} })()`, &r))
	area := image.Rect(int(r.X), int(r.Y), int(r.X+r.W), int(r.Y+r.H)).Intersect(img.Bounds())
	require.False(t, area.Empty(), "the remote video is on screen")
	colours := map[[3]uint32]bool{}
	for y := area.Min.Y; y < area.Max.Y; y += 2 {
		for x := area.Min.X; x < area.Max.X; x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 10, g >> 10, b >> 10}] = true
		}
	}
	if dir := os.Getenv("WEBCALL_SCREENSHOTS"); dir != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), shot, 0o644))
	}
	require.Greater(t, len(colours), 50, "the remote video shows a picture (distinct colours)")
	t.Logf("screenshot %s: %d bytes, %d distinct colours in the remote video", name, len(shot), len(colours))
}

func hangUp(t *testing.T, ctx context.Context, s *server, p *browser.Page) {
	t.Helper()
	click(t, ctx, p, "hangup")
	eventually(t, ctx, "ended on both sides", func() bool {
		return snap(t, ctx, p).State == "ended" && s.botStats(t).State == "ended"
	}, func() string { return s.log.String() })
}

// Both roles, encrypted video: connected; Go decrypts Chrome's audio and
// video frames with zero failures; Chrome decrypts Go's frames and decodes
// VP8 and Opus. A screenshot of the page during the call shows the video.
func TestEncryptedVideoCall(t *testing.T) {
	s, ctx, p := withPage(t, "")
	for _, r := range []role{browserCalls, botCalls} {
		t.Run(r.name, func(t *testing.T) {
			ps, bs := connect(t, ctx, s, p, r, "video")
			require.True(t, ps.Encrypted, "the page encrypts")
			require.True(t, bs.Encrypted, "the bot encrypts")
			ps, bs = flowing(t, ctx, s, p, true)
			mic, cam := bs.Streams[0], bs.Streams[1]
			require.Zero(t, mic.DecryptFailed, "Go: audio frames that failed")
			require.Zero(t, cam.DecryptFailed, "Go: video frames that failed")
			require.Empty(t, bs.DecryptFailing)
			require.Zero(t, ps.Counters["decAudio"].Failed, "Chrome: audio frames that failed")
			require.Zero(t, ps.Counters["decVideo"].Failed, "Chrome: video frames that failed")
			require.Zero(t, ps.Counters["encAudio"].Failed+ps.Counters["encVideo"].Failed)
			require.Equal(t, 160, ps.Video.FrameWidth, "Chrome decoded the bot's 160x120 clip")
			require.Positive(t, cam.KeyFrames, "Go saw Chrome's key frames")
			t.Logf("%s: setup page %.0f ms, bot %.0f ms; path %s / %s", r.name, ps.SetupMs, bs.SetupMs, ps.Path.Text, bs.Path)
			t.Logf("Go decrypted %d audio + %d video frames (0 failed); Chrome decrypted %d audio + %d video frames (0 failed), decoded %d VP8 frames and %d audio samples",
				mic.Decrypted, cam.Decrypted, ps.Counters["decAudio"].OK, ps.Counters["decVideo"].OK, ps.Video.FramesDecoded, ps.Audio.SamplesReceived)
			require.False(t, ps.Path.Relay, "host candidates: peer-to-peer")
			checkScreenshot(t, ctx, p, "video-call-"+map[bool]string{true: "browser-offers", false: "sdk-offers"}[!ps.Outgoing])
			hangUp(t, ctx, s, p)
		})
	}
}

// Audio calls in both roles: the page's four transceivers without a camera
// track, Opus both ways, nothing on the camera stream.
func TestEncryptedAudioCall(t *testing.T) {
	s, ctx, p := withPage(t, "")
	for _, r := range []role{browserCalls, botCalls} {
		t.Run(r.name, func(t *testing.T) {
			connect(t, ctx, s, p, r, "audio")
			var ps pageSnap
			var bs botStats
			eventually(t, ctx, "audio in both directions", func() bool {
				ps, bs = snap(t, ctx, p), s.botStats(t)
				return ps.Counters["decAudio"].OK >= 25 && ps.Audio.SamplesReceived > 48000/2 && bs.Streams[0].Decrypted >= 25
			}, func() string { return fmt.Sprintf("page %+v\nbot %+v", ps, bs) })
			require.Zero(t, bs.Streams[0].DecryptFailed)
			require.Zero(t, ps.Counters["decAudio"].Failed)
			require.Zero(t, bs.Streams[1].Decrypted+bs.Streams[1].DecryptFailed, "no video from the page")
			require.Zero(t, ps.Counters["decVideo"].OK+ps.Counters["decVideo"].Failed, "no video from the bot")
			t.Logf("%s: setup page %.0f ms, bot %.0f ms", r.name, ps.SetupMs, bs.SetupMs)
			hangUp(t, ctx, s, p)
		})
	}
}

// Relay-only on both sides through a real coturn on 127.0.0.1: both roles
// connect over the relay. Each role gets its own coturn: Chrome allocates a
// relay per network interface and transport (seven for a four-m-line offer
// here), and StartTURN's coturn has ten relay ports.
func TestRelayOnly(t *testing.T) {
	for _, r := range []role{browserCalls, botCalls} {
		t.Run(r.name, func(t *testing.T) {
			turn := testnet.StartTURN(t)
			s, ctx, p := withPage(t, "", "-relay", "-turn", turn.SimpleX())
			connect(t, ctx, s, p, r, "video")
			ps, bs := flowing(t, ctx, s, p, true)
			require.NotNil(t, ps.Path)
			require.True(t, ps.Path.Relay, "page path %s", ps.Path.Text)
			require.Equal(t, "relay", ps.Path.Local, "the page uses only its relay candidate")
			require.True(t, bs.Relay, "bot path %s", bs.Path)
			require.True(t, strings.HasPrefix(bs.Path, "relay/"), "the bot uses only its relay candidate: %s", bs.Path)
			t.Logf("relay-only, %s: setup page %.0f ms, bot %.0f ms; page path %s; bot path %s", r.name, ps.SetupMs, bs.SetupMs, ps.Path.Text, bs.Path)
			hangUp(t, ctx, s, p)
		})
	}
}

// With -udp-mux the bot's calls share one UDP port (Config.UDPMux): Chrome
// reaches it in both roles, peer-to-peer on the mux's address, and the
// frames of both directions decrypt.
func TestUDPMux(t *testing.T) {
	s, ctx, p := withPage(t, "", "-udp-mux", "127.0.0.1:0")
	mux := s.botStats(t).UDPMux
	require.NotEmpty(t, mux, "the bot reports its mux")
	for _, r := range []role{browserCalls, botCalls} {
		t.Run(r.name, func(t *testing.T) {
			connect(t, ctx, s, p, r, "video")
			ps, bs := flowing(t, ctx, s, p, true)
			require.Contains(t, bs.Path, " "+mux+" → ", "the bot's side of the path is the mux: %s", bs.Path)
			require.Zero(t, bs.Streams[0].DecryptFailed+bs.Streams[1].DecryptFailed)
			require.Zero(t, ps.Counters["decAudio"].Failed+ps.Counters["decVideo"].Failed)
			require.Positive(t, ps.Video.FramesDecoded, "Chrome decoded the bot's video")
			t.Logf("udp mux %s, %s: setup page %.0f ms, bot %.0f ms; bot path %s", mux, r.name, ps.SetupMs, bs.SetupMs, bs.Path)
			hangUp(t, ctx, s, p)
		})
	}
}

// Encryption off on both sides (the bot allows it): media flows in the
// clear inside DTLS-SRTP, and the page says so.
func TestEncryptionOff(t *testing.T) {
	s, ctx, p := withPage(t, "", "-encrypt=false")
	for _, r := range []role{browserCalls, botCalls} {
		t.Run(r.name, func(t *testing.T) {
			ps, bs := connect(t, ctx, s, p, r, "video")
			require.False(t, ps.Encrypted)
			require.False(t, bs.Encrypted)
			ps, bs = flowing(t, ctx, s, p, false)
			for name, c := range ps.Counters {
				require.Zero(t, c.OK+c.Failed, "no frame transform on the page: %s", name)
			}
			require.Zero(t, bs.Streams[0].Decrypted+bs.Streams[1].Decrypted+bs.Streams[0].DecryptFailed+bs.Streams[1].DecryptFailed)
			require.NoError(t, p.WaitFor(ctx, `document.getElementById("e2e").textContent.startsWith("NOT end-to-end encrypted")`))
			t.Logf("unencrypted, %s: Go received %d audio + %d video frames, Chrome decoded %d VP8 frames and %d audio samples",
				r.name, bs.Streams[0].FramesReceived, bs.Streams[1].FramesReceived, ps.Video.FramesDecoded, ps.Audio.SamplesReceived)
			hangUp(t, ctx, s, p)
		})
	}
}

// A wrong key on the page's side (?corruptKey=1 flips one bit): the call
// connects, bytes flow, but Chrome decodes nothing, and Go delivers nothing
// and says so with a DecryptFailingEvent per stream.
func TestWrongKey(t *testing.T) {
	s, ctx, p := withPage(t, "?corruptKey=1")
	for _, r := range []role{browserCalls, botCalls} {
		t.Run(r.name, func(t *testing.T) {
			connect(t, ctx, s, p, r, "video")
			var ps pageSnap
			var bs botStats
			eventually(t, ctx, "failures on both sides", func() bool {
				ps, bs = snap(t, ctx, p), s.botStats(t)
				return ps.Counters["decAudio"].Failed >= 25 && ps.Counters["decVideo"].Failed >= 20 &&
					bs.Streams[0].DecryptFailed >= 25 && bs.Streams[1].DecryptFailed >= 10 && len(bs.DecryptFailing) == 2
			}, func() string { return fmt.Sprintf("page %+v\nbot %+v", ps, bs) })
			require.Zero(t, ps.Counters["decAudio"].OK+ps.Counters["decVideo"].OK, "Chrome decrypted nothing")
			require.Zero(t, ps.Video.FramesDecoded, "Chrome decoded no video")
			require.Zero(t, ps.Audio.SamplesReceived-ps.Audio.ConcealedSamples, "Chrome played no received audio")
			require.Positive(t, ps.Audio.PacketsReceived, "yet packets arrived")
			for _, st := range bs.Streams[:2] {
				require.Zero(t, st.Decrypted, "Go decrypted nothing (%s)", st.Source)
				require.Zero(t, st.FramesReceived, "Go delivered nothing (%s)", st.Source)
			}
			require.Contains(t, bs.DecryptFailing, "mic")
			require.Contains(t, bs.DecryptFailing, "camera")
			require.Contains(t, s.log.String(), "frames fail to decrypt")
			t.Logf("wrong key, %s: Chrome failed %d audio + %d video frames, decoded 0; Go failed %d audio + %d video frames, delivered 0; events %v",
				r.name, ps.Counters["decAudio"].Failed, ps.Counters["decVideo"].Failed, bs.Streams[0].DecryptFailed, bs.Streams[1].DecryptFailed, bs.DecryptFailing)
			hangUp(t, ctx, s, p)
		})
	}
}

// cryptoPage opens a page that loads only the page's crypto.js, served
// from the embedded files on 127.0.0.1 (a secure context for WebCrypto).
func cryptoPage(t *testing.T, ctx context.Context) *browser.Page {
	t.Helper()
	web, err := fs.Sub(webFiles, "web")
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("GET /crypto.js", http.FileServerFS(web))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><script src="crypto.js"></script>`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	path := testtool.Need(t, "chromium", "chromium")
	b, err := browser.Launch(ctx, &browser.Options{Path: path})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	p, err := b.NewPage(ctx, srv.URL+"/")
	require.NoError(t, err)
	require.NoError(t, p.Evaluate(ctx, `
		window.hex = (s) => Uint8Array.from(s.match(/../g) || [], (h) => parseInt(h, 16))
		window.toHex = (a) => Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("")
		window.attempt = async (f) => { try { return {ok: toHex(await f())} } catch (e) { return {err: String(e.message || e)} } }
		true`, nil))
	return p
}

type jsResult struct {
	OK  string `json:"ok"`
	Err string `json:"err"`
}

func (r jsResult) String() string { return "ok=" + r.OK + " err=" + r.Err }

func evalCrypto(t *testing.T, ctx context.Context, p *browser.Page, format string, args ...any) jsResult {
	t.Helper()
	quoted := make([]any, len(args))
	for i, a := range args {
		b, err := json.Marshal(a)
		require.NoError(t, err)
		quoted[i] = string(b)
	}
	var r jsResult
	require.NoError(t, p.Evaluate(ctx, "attempt(async () => "+fmt.Sprintf(format, quoted...)+")", &r))
	return r
}

func readVectors(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", name))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, v))
}

// The page's frame crypto, run in Chromium, against the vectors made with
// the SimpleX page's own code (testdata/frame-vectors*.json), byte for
// byte, and against the Go SDK's framecrypt in both directions.
func TestPageFrameCrypto(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := cryptoPage(t, ctx)

	var fixed struct {
		KeyHex    string `json:"keyHex"`
		SharedKey string `json:"sharedKey"`
		Frames    []struct {
			Name        string `json:"name"`
			N           int    `json:"unencryptedPrefixBytes"`
			Plain       string `json:"plainFrameHex"`
			IV          string `json:"ivHex"`
			Encrypted   string `json:"encryptedFrameHex"`
			NativeFrame string `json:"encryptedFrameNativeHex"`
		} `json:"frames"`
	}
	readVectors(t, "frame-vectors-fixed-iv.json", &fixed)
	require.NotEmpty(t, fixed.Frames)
	keyJS := `(await FrameCrypto.importKey(%s))`
	for _, f := range fixed.Frames {
		enc := evalCrypto(t, ctx, p, `FrameCrypto.encrypt(`+keyJS+`, hex(%s), %s, hex(%s))`, fixed.SharedKey, f.Plain, f.N, f.IV)
		require.Equal(t, f.Encrypted, enc.OK, "%s: encrypt with the fixed IV (%s)", f.Name, enc)
		dec := evalCrypto(t, ctx, p, `FrameCrypto.decrypt(`+keyJS+`, hex(%s), %s)`, fixed.SharedKey, f.Encrypted, f.N)
		require.Equal(t, f.Plain, dec.OK, "%s: decrypt (%s)", f.Name, dec)
		if f.NativeFrame != "" { // iOS: prefix || tag || IV for an empty rest
			dec := evalCrypto(t, ctx, p, `FrameCrypto.decrypt(`+keyJS+`, hex(%s), %s)`, fixed.SharedKey, f.NativeFrame, f.N)
			require.Equal(t, f.Plain, dec.OK, "%s: decrypt the native form (%s)", f.Name, dec)
		}
	}
	// The padded key and its unpadded form are the same key.
	unpadded := strings.TrimRight(fixed.SharedKey, "=")
	f := fixed.Frames[0]
	dec := evalCrypto(t, ctx, p, `FrameCrypto.decrypt(`+keyJS+`, hex(%s), %s)`, unpadded, f.Encrypted, f.N)
	require.Equal(t, f.Plain, dec.OK, "unpadded key")
	for _, bad := range []string{"", "not base64!", "AAECAwQFBgcICQoLDA0ODw==", fixed.SharedKey + "AA"} {
		r := evalCrypto(t, ctx, p, `FrameCrypto.importKey(%s).then(() => new Uint8Array(1))`, bad)
		require.NotEmpty(t, r.Err, "key %q must be refused", bad)
	}

	var page struct {
		Data []struct {
			Name      string `json:"name"`
			FrameType string `json:"frameType"`
			AESKey    string `json:"aesKey"`
			Plain     string `json:"plainHex"`
			Encrypted string `json:"encryptedHex"`
			Decrypted string `json:"decryptedHex"`
		} `json:"data"`
		Tampered []struct {
			Name      string `json:"name"`
			FrameType string `json:"frameType"`
			AESKey    string `json:"aesKey"`
			Encrypted string `json:"encryptedHex"`
		} `json:"tampered"`
		HeaderNotAuthenticated []struct {
			Name      string `json:"name"`
			FrameType string `json:"frameType"`
			AESKey    string `json:"aesKey"`
			Encrypted string `json:"encryptedHex"`
			Decrypted string `json:"decryptedHex"`
		} `json:"headerNotAuthenticated"`
	}
	readVectors(t, "frame-vectors.json", &page)
	require.NotEmpty(t, page.Data)
	for _, v := range page.Data {
		n := prefixFor(v.FrameType)
		dec := evalCrypto(t, ctx, p, `FrameCrypto.decrypt(`+keyJS+`, hex(%s), FrameCrypto.prefixLength(%s))`, v.AESKey, v.Encrypted, v.FrameType)
		if v.Name == "empty" {
			// The page "decrypts" its 12-byte encrypted empty frame to the
			// first IV byte without any check; like the Go SDK this page
			// refuses a frame shorter than prefix + IV (dropping an empty
			// frame is harmless).
			require.NotEmpty(t, dec.Err, "empty: refused (%s)", dec)
		} else {
			require.Equal(t, v.Decrypted, dec.OK, "%s: decrypt the page's frame (%s)", v.Name, dec)
			require.Equal(t, v.Plain, dec.OK, v.Name)
		}
		// Encrypted here with a random IV: the page opens it, and so does Go.
		enc := evalCrypto(t, ctx, p, `FrameCrypto.encrypt(`+keyJS+`, hex(%s), %s)`, v.AESKey, v.Plain, n)
		require.Empty(t, enc.Err, v.Name)
		require.Len(t, enc.OK, len(v.Encrypted), "%s: same length as the page's output", v.Name)
		require.Equal(t, v.Plain[:2*min(n, len(v.Plain)/2)], enc.OK[:2*min(n, len(v.Plain)/2)], "%s: the clear prefix", v.Name)
		key, err := framecrypt.ParseKey(v.AESKey)
		require.NoError(t, err)
		ci, err := framecrypt.New(key)
		require.NoError(t, err)
		frame, err := hex.DecodeString(enc.OK)
		require.NoError(t, err)
		if v.Name != "empty" {
			plain, err := ci.Open(nil, frame, n)
			require.NoError(t, err, "%s: Go opens the page's frame", v.Name)
			require.Equal(t, v.Plain, hex.EncodeToString(plain), v.Name)
		}
		// And the other way: Go seals, the page opens.
		plain, err := hex.DecodeString(v.Plain)
		require.NoError(t, err)
		sealed := ci.Seal(nil, plain, n)
		back := evalCrypto(t, ctx, p, `FrameCrypto.decrypt(`+keyJS+`, hex(%s), %s)`, v.AESKey, hex.EncodeToString(sealed), n)
		if v.Name == "empty" {
			require.NotEmpty(t, back.Err, "empty: refused")
			continue
		}
		require.Equal(t, v.Plain, back.OK, "%s: the page opens Go's frame (%s)", v.Name, back)
	}
	for _, v := range page.Tampered {
		dec := evalCrypto(t, ctx, p, `FrameCrypto.decrypt(`+keyJS+`, hex(%s), FrameCrypto.prefixLength(%s))`, v.AESKey, v.Encrypted, v.FrameType)
		require.NotEmpty(t, dec.Err, "%s must fail (%s)", v.Name, dec)
	}
	for _, v := range page.HeaderNotAuthenticated {
		dec := evalCrypto(t, ctx, p, `FrameCrypto.decrypt(`+keyJS+`, hex(%s), FrameCrypto.prefixLength(%s))`, v.AESKey, v.Encrypted, v.FrameType)
		require.Equal(t, v.Decrypted, dec.OK, "%s: the clear prefix is not authenticated (%s)", v.Name, dec)
	}
}

func prefixFor(frameType string) int {
	switch frameType {
	case "key":
		return framecrypt.PrefixVideoKey
	case "delta":
		return framecrypt.PrefixVideoDelta
	}
	return framecrypt.PrefixAudio
}

// The page accepts the chat core's replies and events bare and wrapped
// in Right/Left, as newer cores send them (protocol §8.1).
func TestPageUnwrapsReplies(t *testing.T) {
	_, ctx, p := withPage(t, "")
	var got []map[string]any
	require.NoError(t, p.Evaluate(ctx, `[
		ChatCore.unwrap({type: "cmdOk"}),
		ChatCore.unwrap({Right: {type: "cmdOk"}}),
		ChatCore.unwrap({Left: {type: "error", errorType: {type: "noCurrentCall"}}}),
	]`, &got))
	require.Equal(t, "cmdOk", got[0]["type"])
	require.Equal(t, "cmdOk", got[1]["type"])
	require.Equal(t, "chatError", got[2]["type"])
	// A wrapped event reaches the call logic: a Right-wrapped invitation rings.
	require.NoError(t, p.Evaluate(ctx, `(() => {
		core.receive(JSON.stringify({resp: {Right: {type: "callInvitation", callInvitation: {
			user: me, contact: bot, callType: {media: "audio", capabilities: {encryption: true}},
			sharedKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", callTs: new Date().toISOString()}}}}))
	})()`, nil))
	require.NoError(t, p.WaitFor(ctx, `!document.getElementById("incoming").hidden`))
	// A wrapped error reply rejects its command with the core's words.
	var msg string
	require.NoError(t, p.Evaluate(ctx, `(async () => {
		const pr = new Promise((resolve, reject) => core.pending.set("x1", {resolve, reject}))
		core.receive(JSON.stringify({corrId: "x1", resp: {Left: {type: "error", errorType: {type: "noCurrentCall"}}}}))
		try { await pr; return "resolved" } catch (e) { return e.message }
	})()`, &msg))
	require.Contains(t, msg, "noCurrentCall")
}

// The chat core's WebSocket takes connections from the page's own origin
// only; the page and /chat share one server.
func TestSameOrigin(t *testing.T) {
	s := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws := "ws" + strings.TrimPrefix(s.url, "http") + "chat"
	_, _, err := websocket.Dial(ctx, ws, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://example.com"}}})
	require.Error(t, err, "a foreign origin is refused")
	c, _, err := websocket.Dial(ctx, ws, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {strings.TrimSuffix(s.url, "/")}}})
	require.NoError(t, err, "the page's origin is accepted")
	c.CloseNow()

	resp, err := http.Get(s.url + "config.json")
	require.NoError(t, err)
	var cfg pageConfig
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&cfg))
	resp.Body.Close()
	require.Equal(t, pageConfig{Encryption: true, ICEServers: []pageICEEntry{}, Contact: "bot"}, cfg, "no STUN/TURN server unless -turn")
	for _, path := range []string{"", "app.js", "crypto.js", "style.css", "lz-string.min.js"} {
		resp, err := http.Get(s.url + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	require.Equal(t, http.StatusBadRequest, s.post(t, "bot/call", `{"media":"hologram"}`))
	require.Equal(t, http.StatusConflict, s.post(t, "bot/hangup", ``), "no call to hang up")
}

func TestFlags(t *testing.T) {
	var log syncBuf
	require.Equal(t, 2, run(context.Background(), []string{"-nope"}, io.Discard, &log, nil))
	require.Equal(t, 2, run(context.Background(), []string{"extra"}, io.Discard, &log, nil))
	require.Equal(t, 1, run(context.Background(), []string{"-relay"}, io.Discard, &log, nil))
	require.Contains(t, log.String(), "-relay needs -turn")
	require.Equal(t, 1, run(context.Background(), []string{"-lzstring", filepath.Join(t.TempDir(), "missing.js")}, io.Discard, &log, nil))
	require.Contains(t, log.String(), "-lzstring")
	require.Equal(t, 1, run(context.Background(), []string{"-turn", "stun:", "-lzstring", "main.go"}, io.Discard, &log, nil))
	require.Contains(t, log.String(), "ICE server")
}

// The page rejects the bot's call (nothing goes to the caller, protocol
// §4.4, so the bot's call rings on); asked again, the bot calls anew; when
// the bot hangs up, the page shows the call ended by the bot.
func TestRejectThenBotHangsUp(t *testing.T) {
	s, ctx, p := withPage(t, "")
	click(t, ctx, p, "ask-audio")
	click(t, ctx, p, "reject")
	require.NoError(t, p.WaitFor(ctx, `document.getElementById("state").textContent.includes("ended (rejected)")`))
	require.Equal(t, "invitationSent", s.botStats(t).State, "the bot's call rings on")
	botCalls.start(t, ctx, s, p, "audio")
	eventually(t, ctx, "connected", func() bool {
		return snap(t, ctx, p).State == "connected" && s.botStats(t).State == "connected"
	}, func() string { return s.log.String() })
	require.Equal(t, 2, s.botStats(t).Calls)
	require.Equal(t, http.StatusNoContent, s.post(t, "bot/hangup", ``))
	require.NoError(t, p.WaitFor(ctx, `document.getElementById("state").textContent.includes("ended by the bot")`))
	require.Equal(t, "ended", s.botStats(t).State)
}
