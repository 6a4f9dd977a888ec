package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/internal/testnet"
	"github.com/smpcall/smpcall/internal/testtool"
	"github.com/smpcall/smpcall/smp"
	"github.com/smpcall/smpcall/video"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func loopback() *smpcall.Config { return testnet.LoopbackConfig() }

// syncBuf is a log the bot writes and the test reads.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type runningBot struct {
	log    *syncBuf
	cancel context.CancelFunc
	done   chan int
}

func startBot(t *testing.T, args ...string) *runningBot {
	ctx, cancel := context.WithCancel(context.Background())
	b := &runningBot{log: &syncBuf{}, cancel: cancel, done: make(chan int, 1)}
	go func() { b.done <- run(ctx, args, b.log, loopback()) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-b.done:
		case <-time.After(15 * time.Second):
			t.Error("the bot did not stop")
		}
	})
	require.Eventually(t, func() bool { return strings.Contains(b.log.String(), "callbot ready") }, 10*time.Second, 10*time.Millisecond, "log:\n%s", b.log.String())
	return b
}

func client(t *testing.T, url string) (*smpcall.Client, *smp.ChatClient) {
	tr, err := smp.DialChatCore(context.Background(), url, nil)
	require.NoError(t, err)
	c, err := smpcall.NewClient(tr, loopback())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, tr
}

// A caller hears the greeting, leaves a message, hangs up; the bot's
// recording is a valid Ogg Opus file holding what the caller sent.
func TestCallbotTakesAMessage(t *testing.T) {
	urls := testnet.SimCore(t, "bot", "alice", "mallory")
	out := t.TempDir()
	b := startBot(t, "-url", urls["bot"], "-allow", "alice", "-out", out, "-max", "20s")

	alice, at := client(t, urls["alice"])
	botContact, err := at.ContactByName(context.Background(), "bot")
	require.NoError(t, err)
	var mu sync.Mutex
	greeting := 0
	sent := testnet.OpusPackets(t, testnet.Media("tone.opus"))
	call, err := alice.PlaceCall(context.Background(), botContact.ContactID, &smpcall.CallOptions{
		Media:   smpcall.MediaAudio,
		Sources: smpcall.Sources{Mic: &message{packets: sent[:60]}},
		Sinks: smpcall.Sinks{Mic: audio.SinkFunc(func(audio.Frame) error {
			mu.Lock()
			greeting++
			mu.Unlock()
			return nil
		})},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = call.WaitConnected(ctx)
	require.NoError(t, err, "log:\n%s", b.log.String())
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return greeting >= 25 }, 10*time.Second, 10*time.Millisecond, "alice hears the greeting")
	require.Eventually(t, func() bool { return call.Stats().Streams[0].FramesSent == 60 }, 10*time.Second, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond) // the last packets arrive
	require.NoError(t, call.End(ctx))
	require.Eventually(t, func() bool { return strings.Contains(b.log.String(), "call finished") }, 10*time.Second, 10*time.Millisecond)

	// A contact not on the list is declined: its call keeps ringing unanswered.
	mallory, mt := client(t, urls["mallory"])
	botAtMallory, err := mt.ContactByName(context.Background(), "bot")
	require.NoError(t, err)
	mc, err := mallory.PlaceCall(context.Background(), botAtMallory.ContactID, &smpcall.CallOptions{Media: smpcall.MediaAudio})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return strings.Contains(b.log.String(), "declining call") }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, smpcall.StateInvitationSent, mc.State())
	require.NoError(t, mc.End(context.Background()))

	files, err := filepath.Glob(filepath.Join(out, "alice-*.opus"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	got := testnet.OpusPackets(t, files[0])
	require.GreaterOrEqual(t, len(got), 57, "the message arrived (≥ 95%%)")
	for i, p := range got {
		require.Equal(t, sent[i], p, "packet %d of the voicemail", i)
	}
	ivf, _ := filepath.Glob(filepath.Join(out, "alice-*.ivf"))
	require.Empty(t, ivf, "no video file for an audio call")
	b.cancel()
	require.Equal(t, 0, <-b.done)
	require.Contains(t, b.log.String(), "callbot stopping")
	b.done <- 0 // for the cleanup
	opusdec := testtool.Need(t, "opusdec", "opus-tools")
	decoded, err := exec.Command(opusdec, "--quiet", files[0], filepath.Join(t.TempDir(), "v.wav")).CombinedOutput()
	require.NoError(t, err, string(decoded))
}

// The bot places a video call to a named contact: the greeting on the
// microphone stream, the clip on the camera stream; it hangs up at its
// maximum duration and, as a command-line user expects, exits with status 0
// because the call connected.
func TestCallbotPlacesACall(t *testing.T) {
	urls := testnet.SimCore(t, "bot", "alice")
	alice, _ := client(t, urls["alice"])
	b := startBot(t, "-url", urls["bot"], "-call", "alice", "-media", "video", "-video", testnet.Media("video.ivf"), "-out", t.TempDir(), "-max", "3s")
	ring := waitRinging(t, alice)
	require.Equal(t, "bot", ring.Invitation.Contact.Name())
	require.Equal(t, smpcall.MediaVideo, ring.Invitation.CallType.Media)
	var mu sync.Mutex
	heard, seen, keys := 0, 0, 0
	call, err := alice.AcceptCall(context.Background(), ring.Invitation.Contact.ContactID, &smpcall.CallOptions{
		Sinks: smpcall.Sinks{
			Mic: audio.SinkFunc(func(audio.Frame) error { mu.Lock(); heard++; mu.Unlock(); return nil }),
			Camera: video.SinkFunc(func(f video.Frame) error {
				mu.Lock()
				seen++
				if f.KeyFrame {
					keys++
				}
				mu.Unlock()
				return nil
			}),
		},
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return heard >= 20 && seen >= 20 && keys >= 1 }, 15*time.Second, 10*time.Millisecond)
	// The bot hangs up at its maximum duration.
	select {
	case <-call.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("the bot did not hang up")
	}
	reason, _ := call.Reason()
	require.Equal(t, smpcall.ReasonRemoteHangup, reason)
	select {
	case code := <-b.done:
		require.Equal(t, 0, code, "log:\n%s", b.log.String())
		b.done <- code
	case <-time.After(15 * time.Second):
		t.Fatal("the bot did not exit after its call")
	}
	require.Contains(t, b.log.String(), "the call is over; exiting")
}

// A placed call that never connects makes the bot exit with status 1.
func TestCallbotPlacedCallNotConnected(t *testing.T) {
	urls := testnet.SimCore(t, "bot", "alice")
	alice, _ := client(t, urls["alice"])
	b := startBot(t, "-url", urls["bot"], "-call", "alice", "-out", t.TempDir())
	ring := waitRinging(t, alice)
	require.NoError(t, alice.EndCall(context.Background(), ring.Invitation.Contact.ContactID))
	select {
	case code := <-b.done:
		require.Equal(t, 1, code, "log:\n%s", b.log.String())
		b.done <- code
	case <-time.After(15 * time.Second):
		t.Fatal("the bot did not exit")
	}
	require.Contains(t, b.log.String(), "did not connect")
}

func waitRinging(t *testing.T, c *smpcall.Client) *smpcall.RingingEvent {
	t.Helper()
	var evs []smpcall.Event
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-c.Events():
			evs = append(evs, ev)
			if ring, ok := ev.(*smpcall.RingingEvent); ok {
				return ring
			}
		case <-timeout:
			t.Fatalf("never rang: %v", evs)
		}
	}
}

// A video call to the bot: the bot answers with its clip and records the
// caller's video as IVF beside the Ogg voicemail.
func TestCallbotAnswersVideo(t *testing.T) {
	urls := testnet.SimCore(t, "bot", "alice")
	out := t.TempDir()
	b := startBot(t, "-url", urls["bot"], "-out", out, "-video", testnet.Media("video-alt.ivf"))
	alice, at := client(t, urls["alice"])
	bot, err := at.ContactByName(context.Background(), "bot")
	require.NoError(t, err)
	cam, err := video.OpenIVFSource(testnet.Media("video.ivf"), &video.IVFSourceOptions{Paced: true})
	require.NoError(t, err)
	defer cam.Close()
	var mu sync.Mutex
	seen := 0
	call, err := alice.PlaceCall(context.Background(), bot.ContactID, &smpcall.CallOptions{
		Media:   smpcall.MediaVideo,
		Sources: smpcall.Sources{Mic: &message{packets: testnet.OpusPackets(t, testnet.Media("tone.opus"))[:40]}, Camera: cam},
		Sinks:   smpcall.Sinks{Camera: video.SinkFunc(func(video.Frame) error { mu.Lock(); seen++; mu.Unlock(); return nil })},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = call.WaitConnected(ctx)
	require.NoError(t, err, "log:\n%s", b.log.String())
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return seen >= 20 }, 10*time.Second, 10*time.Millisecond, "alice sees the bot's clip")
	require.Eventually(t, func() bool { return call.Stats().Streams[1].FramesSent >= 40 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, call.End(ctx))
	require.Eventually(t, func() bool { return strings.Contains(b.log.String(), "call finished") }, 10*time.Second, 10*time.Millisecond)
	ivf, err := filepath.Glob(filepath.Join(out, "alice-*.ivf"))
	require.NoError(t, err)
	require.Len(t, ivf, 1, "the caller's video is recorded")
	frames := testnet.VP8Frames(t, ivf[0])
	require.GreaterOrEqual(t, len(frames), 20)
	opus, _ := filepath.Glob(filepath.Join(out, "alice-*.opus"))
	require.Len(t, opus, 1)
}

// Issue 11: a flood of invitations that never connect leaves no files;
// only the one call that connects and speaks is recorded.
func TestCallbotFloodLeavesNoFiles(t *testing.T) {
	urls := testnet.SimCore(t, "bot", "alice")
	out := t.TempDir()
	b := startBot(t, "-url", urls["bot"], "-out", out)
	alice, at := client(t, urls["alice"])
	bot, err := at.ContactByName(context.Background(), "bot")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Straight to the core, as a misbehaving contact would: each invitation
	// replaces the one before.
	const flood = 200
	for i := 0; i < flood; i++ {
		require.NoError(t, at.Invite(ctx, bot.ContactID, smpcall.CallType{Media: smpcall.MediaVideo, Capabilities: smpcall.CallCapabilities{Encryption: true}}))
	}
	require.NoError(t, at.End(ctx, bot.ContactID))
	settled(t, b)
	answered := strings.Count(b.log.String(), "answering call")
	require.LessOrEqual(t, answered, 20, "the bot answers once a burst is over, not each invitation")
	early, err := os.ReadDir(out)
	require.NoError(t, err)
	require.Empty(t, early, "the %d answered calls never connected: no files", answered)

	call, err := alice.PlaceCall(ctx, bot.ContactID, &smpcall.CallOptions{
		Media: smpcall.MediaAudio, Sources: smpcall.Sources{Mic: &message{packets: testnet.OpusPackets(t, testnet.Media("tone.opus"))[:30]}},
	})
	require.NoError(t, err)
	_, err = call.WaitConnected(ctx)
	require.NoError(t, err, "log:\n%s", b.log.String())
	require.Eventually(t, func() bool { return call.Stats().Streams[0].FramesSent == 30 }, 10*time.Second, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond) // the last packets arrive
	require.NoError(t, call.End(ctx))
	require.Eventually(t, func() bool { return strings.Contains(b.log.String(), "voicemail=["+out) }, 20*time.Second, 10*time.Millisecond, "log:\n%s", b.log.String())

	files, err := os.ReadDir(out)
	require.NoError(t, err)
	var names []string
	for _, f := range files {
		names = append(names, f.Name())
	}
	require.Len(t, names, 1, "only the connected call left a file: %v", names)
	require.True(t, strings.HasSuffix(names[0], ".opus"), names[0])
	got := testnet.OpusPackets(t, filepath.Join(out, names[0]))
	require.GreaterOrEqual(t, len(got), 28)
	t.Logf("%d invitations, %d answered by the bot, 1 connected call: files %v", flood+1, strings.Count(b.log.String(), "answering call"), names)
}

// settled waits until every call the bot answered is over (or failed to
// start) and its log has not changed for longer than its answer delay.
func settled(t *testing.T, b *runningBot) {
	t.Helper()
	last, stable := "", 0
	require.Eventually(t, func() bool {
		l := b.log.String()
		answered := strings.Count(l, "answering call")
		done := strings.Count(l, "call finished") + strings.Count(l, "call not answered")
		if answered > 0 && answered == done && l == last {
			stable++
		} else {
			stable = 0
		}
		last = l
		return stable >= 2
	}, 30*time.Second, 400*time.Millisecond, "log:\n%s", b.log.String())
}

// -max-recordings and -max-bytes bound the folder, counting what is
// already there; a call past the bound goes on unrecorded.
func TestCallbotRecordingBudget(t *testing.T) {
	speak := func(t *testing.T, alice *smpcall.Client, botID int64, packets int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		call, err := alice.PlaceCall(ctx, botID, &smpcall.CallOptions{
			Media: smpcall.MediaAudio, Sources: smpcall.Sources{Mic: &message{packets: testnet.OpusPackets(t, testnet.Media("tone.opus"))[:packets]}},
		})
		require.NoError(t, err)
		_, err = call.WaitConnected(ctx)
		require.NoError(t, err)
		require.Eventually(t, func() bool { return call.Stats().Streams[0].FramesSent == uint64(packets) }, 10*time.Second, 10*time.Millisecond)
		time.Sleep(200 * time.Millisecond)
		require.NoError(t, call.End(ctx))
	}
	t.Run("count", func(t *testing.T) {
		urls := testnet.SimCore(t, "bot", "alice")
		out := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(out, "earlier.opus"), []byte("an earlier recording"), 0o644))
		b := startBot(t, "-url", urls["bot"], "-out", out, "-max-recordings", "2")
		alice, at := client(t, urls["alice"])
		bot, err := at.ContactByName(context.Background(), "bot")
		require.NoError(t, err)
		speak(t, alice, bot.ContactID, 20)
		require.Eventually(t, func() bool { return strings.Count(b.log.String(), "call finished") == 1 }, 10*time.Second, 10*time.Millisecond)
		speak(t, alice, bot.ContactID, 20)
		require.Eventually(t, func() bool { return strings.Count(b.log.String(), "call finished") == 2 }, 10*time.Second, 10*time.Millisecond)
		files, _ := filepath.Glob(filepath.Join(out, "*.opus"))
		require.Len(t, files, 2, "the earlier file and one new recording: %v", files)
		require.Contains(t, b.log.String(), "recording budget reached")
		require.Contains(t, b.log.String(), "media stream stopped", "the second call's recording stopped, the call went on")
	})
	t.Run("bytes", func(t *testing.T) {
		urls := testnet.SimCore(t, "bot", "alice")
		out := t.TempDir()
		b := startBot(t, "-url", urls["bot"], "-out", out, "-max-bytes", "4000")
		alice, at := client(t, urls["alice"])
		bot, err := at.ContactByName(context.Background(), "bot")
		require.NoError(t, err)
		speak(t, alice, bot.ContactID, 100) // ~18 KB of Opus
		require.Eventually(t, func() bool { return strings.Contains(b.log.String(), "call finished") }, 10*time.Second, 10*time.Millisecond)
		files, _ := filepath.Glob(filepath.Join(out, "*.opus"))
		require.Len(t, files, 1)
		info, err := os.Stat(files[0])
		require.NoError(t, err)
		require.LessOrEqual(t, info.Size(), int64(4000), "the recording stopped at the bound")
		require.Greater(t, len(testnet.OpusPackets(t, files[0])), 5, "what fits is a valid recording")
		require.Contains(t, b.log.String(), "recording budget reached")
	})
	t.Run("zero", func(t *testing.T) {
		urls := testnet.SimCore(t, "bot", "alice")
		out := t.TempDir()
		startBot(t, "-url", urls["bot"], "-out", out, "-max-recordings", "0")
		alice, at := client(t, urls["alice"])
		bot, err := at.ContactByName(context.Background(), "bot")
		require.NoError(t, err)
		speak(t, alice, bot.ContactID, 20)
		files, _ := os.ReadDir(out)
		require.Empty(t, files)
	})
}

// The default greeting is built in: a valid Ogg Opus stream.
func TestDefaultGreeting(t *testing.T) {
	src, err := audio.NewOggSource(bytes.NewReader(defaultGreeting), nil)
	require.NoError(t, err)
	defer src.Close()
	n := 0
	for {
		_, err := src.ReadFrame(context.Background())
		if err != nil {
			break
		}
		n++
	}
	require.Equal(t, 151, n, "testdata/media/tone.opus")
}

func TestCallbotFlags(t *testing.T) {
	var log syncBuf
	require.Equal(t, 2, run(context.Background(), []string{"-nope"}, &log, nil))
	require.Equal(t, 1, run(context.Background(), []string{"-relay", "-url", "ws://127.0.0.1:1"}, &log, nil))
	require.Contains(t, log.String(), "-relay needs -turn")
	require.Equal(t, 1, run(context.Background(), []string{"-url", "ws://127.0.0.1:1", "-out", t.TempDir()}, &log, nil))
	require.Contains(t, log.String(), "dial chat core")
	require.Equal(t, 2, run(context.Background(), []string{"-media", "hologram"}, &log, nil))
	require.Equal(t, 1, run(context.Background(), []string{"-greeting", "main.go", "-out", t.TempDir()}, &log, nil))
	require.Contains(t, log.String(), "greeting")
	require.Equal(t, 1, run(context.Background(), []string{"-video", testnet.Media("tone.opus"), "-out", t.TempDir()}, &log, nil))
	require.Contains(t, log.String(), "video")
}

// message plays packets paced at 20 ms, then stays silent.
type message struct {
	packets [][]byte
	i       int
}

func (m *message) ReadFrame(ctx context.Context) (audio.Frame, error) {
	select {
	case <-time.After(20 * time.Millisecond):
	case <-ctx.Done():
		return audio.Frame{}, ctx.Err()
	}
	if m.i >= len(m.packets) {
		<-ctx.Done()
		return audio.Frame{}, ctx.Err()
	}
	m.i++
	return audio.Frame{Data: m.packets[m.i-1]}, nil
}

// When the chat core's connection drops, the bot reconnects and answers
// calls again.
func TestCallbotReconnects(t *testing.T) {
	urls := testnet.SimCore(t, "bot", "alice")
	proxy := testnet.NewCutProxy(t, urls["bot"])
	b := startBot(t, "-url", proxy.URL, "-out", t.TempDir(), "-max", "5s")
	proxy.Cut()
	require.Eventually(t, func() bool { return strings.Contains(b.log.String(), "chat core connection restored") }, 15*time.Second, 20*time.Millisecond, "log:\n%s", b.log.String())

	alice, at := client(t, urls["alice"])
	bot, err := at.ContactByName(context.Background(), "bot")
	require.NoError(t, err)
	call, err := alice.PlaceCall(context.Background(), bot.ContactID, &smpcall.CallOptions{Media: smpcall.MediaAudio})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = call.WaitConnected(ctx)
	require.NoError(t, err, "log:\n%s", b.log.String())
	require.NoError(t, call.End(ctx))
}
