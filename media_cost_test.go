package smpcall_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/internal/netsim"
)

// requireGoroutinesIn waits until exactly n goroutines have a frame of fn
// (a goroutine just started may not have entered it yet).
func requireGoroutinesIn(t *testing.T, fn string, n int, msg string) {
	t.Helper()
	require.Eventually(t, func() bool { return goroutinesIn(fn) == n }, waitTime, time.Millisecond,
		"%s: want %d goroutines in %s, have %d", msg, n, fn, goroutinesIn(fn))
}

// goroutinesIn counts the goroutines whose stack has a frame of fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn+"(") {
			count++
		}
	}
	return count
}

// copySink is a FrameBorrower: it reads each frame during WriteFrame only,
// keeping a copy, so the SDK decrypts into a buffer it reuses.
type copySink struct{ c *collector }

func (s copySink) WriteFrame(f audio.Frame) error {
	s.c.add(append([]byte(nil), f.Data...), false)
	return nil
}

func (copySink) BorrowsFrames() bool { return true }

var _ smpcall.FrameBorrower = copySink{}

// A stream gets its send loop and RTCP reader when it has something to
// send, not before: in an audio call where only one side has a mic, that
// side runs one of each and the other none; a camera started mid-call
// starts its own, and its frames arrive. A sink that borrows frames gets
// every frame intact although the SDK reuses its buffer.
func TestIdleStreamsRunNoGoroutines(t *testing.T) {
	alice, bob, _ := newRTCPair(t, rtcConfig(nil), rtcConfig(nil), nil)
	sentA := frames(100, 100, false)
	var bobGot, aliceGotVideo collector
	ac, err := alice.client.PlaceCall(ctx, alice.peerID, &smpcall.CallOptions{Media: smpcall.MediaAudio,
		Sources: smpcall.Sources{Mic: &audioList{listSource{frames: sentA, every: 10 * time.Millisecond}}},
		Sinks:   smpcall.Sinks{Camera: aliceGotVideo.Video()}})
	require.NoError(t, err)
	wait[*smpcall.RingingEvent](t, bob.client)
	bc, err := bob.client.AcceptCall(ctx, bob.peerID, &smpcall.CallOptions{Sinks: smpcall.Sinks{Mic: copySink{&bobGot}}})
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err = ac.WaitConnected(wctx)
	require.NoError(t, err)
	_, err = bc.WaitConnected(wctx)
	require.NoError(t, err)

	requireDelivered(t, sentA, &bobGot)
	requireGoroutinesIn(t, "smpcall.(*Call).sendLoop", 1, "alice's mic only")
	requireGoroutinesIn(t, "smpcall.(*Call).readRTCP", 1, "alice's mic only")

	sentV := frames(30, 2000, true)
	require.NoError(t, bc.SetVideoSource(smpcall.SourceCamera, &videoList{listSource{frames: sentV, every: 15 * time.Millisecond}}))
	requireGoroutinesIn(t, "smpcall.(*Call).sendLoop", 2, "bob's camera too")
	requireGoroutinesIn(t, "smpcall.(*Call).readRTCP", 2, "bob's camera too")
	requireDelivered(t, sentV, &aliceGotVideo)

	// Replacing a source or stopping it keeps the one loop.
	require.NoError(t, bc.SetVideoSource(smpcall.SourceCamera, nil))
	require.NoError(t, bc.SetVideoSource(smpcall.SourceCamera, &videoList{listSource{frames: sentV, every: time.Millisecond}}))
	time.Sleep(50 * time.Millisecond) // a second loop, if one were started, would show by now
	requireGoroutinesIn(t, "smpcall.(*Call).sendLoop", 2, "still one loop per stream")

	require.NoError(t, ac.End(ctx))
	<-bc.Done()
	require.Zero(t, goroutinesIn("smpcall.(*Call).sendLoop"), "stopped by the end")
	require.Zero(t, goroutinesIn("smpcall.(*Call).readRTCP"), "stopped by the end")
	require.Zero(t, goroutinesIn("smpcall.(*Call).goMedia.func1"), "stopped by the end")
}

// An audio outage longer than the receive buffer remembers (64 packets)
// restarts the buffer; the frames it skipped still count as lost. Over a
// simulated network in virtual time, the link drops for 3 s (150 frames)
// while audio flows.
func TestLongAudioOutageCountsLostFrames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := netsim.Profile{Name: "clean", Delay: 10 * time.Millisecond}
		sc := startSimCall(t, p, simOptions{seed: 1, media: smpcall.MediaAudio, frames: 12 * time.Second})
		time.Sleep(3 * time.Second)
		before := sc.bob.call.Stats().Streams[0]
		sc.n.SetLinkUp(netsim.A, false)
		time.Sleep(3 * time.Second)
		sc.n.SetLinkUp(netsim.A, true)
		time.Sleep(5 * time.Second)
		after := sc.bob.call.Stats().Streams[0]
		sc.end(t)
		lost := after.FramesLost - before.FramesLost
		require.GreaterOrEqual(t, lost, uint64(140), "about 150 frames went missing")
		require.LessOrEqual(t, lost, uint64(160))
		require.Greater(t, after.FramesReceived, before.FramesReceived+100, "audio came back")
	})
}
