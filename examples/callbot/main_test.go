package main

import (
	"bytes"
	"context"
	"github.com/smpcall/smpcall/internal/testtool"
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
	"github.com/smpcall/smpcall/smp"
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

// The bot places a call to a named contact and plays its greeting.
func TestCallbotPlacesACall(t *testing.T) {
	urls := testnet.SimCore(t, "bot", "alice")
	alice, _ := client(t, urls["alice"])
	startBot(t, "-url", urls["bot"], "-call", "alice", "-out", t.TempDir(), "-max", "3s")
	var evs []smpcall.Event
	var ring *smpcall.RingingEvent
	timeout := time.After(10 * time.Second)
	for ring == nil {
		select {
		case ev := <-alice.Events():
			evs = append(evs, ev)
			ring, _ = ev.(*smpcall.RingingEvent)
		case <-timeout:
			t.Fatalf("alice never rang: %v", evs)
		}
	}
	require.Equal(t, "bot", ring.Invitation.Contact.Name())
	var mu sync.Mutex
	heard := 0
	call, err := alice.AcceptCall(context.Background(), ring.Invitation.Contact.ContactID, &smpcall.CallOptions{
		Sinks: smpcall.Sinks{Mic: audio.SinkFunc(func(audio.Frame) error { mu.Lock(); heard++; mu.Unlock(); return nil })},
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return heard >= 20 }, 15*time.Second, 10*time.Millisecond)
	// The bot hangs up at its maximum duration.
	select {
	case <-call.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("the bot did not hang up")
	}
	reason, _ := call.Reason()
	require.Equal(t, smpcall.ReasonRemoteHangup, reason)
}

func TestCallbotFlags(t *testing.T) {
	var log syncBuf
	require.Equal(t, 2, run(context.Background(), []string{"-nope"}, &log, nil))
	require.Equal(t, 1, run(context.Background(), []string{"-relay", "-url", "ws://127.0.0.1:1"}, &log, nil))
	require.Contains(t, log.String(), "-relay needs -turn")
	require.Equal(t, 1, run(context.Background(), []string{"-url", "ws://127.0.0.1:1", "-out", t.TempDir()}, &log, nil))
	require.Contains(t, log.String(), "dial chat core")
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
	require.Eventually(t, func() bool { return strings.Contains(b.log.String(), "reconnected to the chat core") }, 15*time.Second, 20*time.Millisecond, "log:\n%s", b.log.String())

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
