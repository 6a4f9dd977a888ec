package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain runs the test binary as the peer process when the capacity
// command starts it (-peers process starts os.Executable, which in a test
// is this binary).
func TestMain(m *testing.M) {
	if os.Getenv(peerEnv) != "" {
		if err := runPeer(os.Stdin, os.Stdout); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// capacityRun runs the command with tiny numbers and returns its summary.
func capacityRun(t *testing.T, args ...string) *summary {
	t.Helper()
	path := filepath.Join(t.TempDir(), "summary.json")
	var stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args = append([]string{"capacity", "-window", "1s", "-settle", "300ms", "-grace", "1s", "-json", path}, args...)
	code := run(ctx, args, os.Stdout, &stderr)
	require.Equal(t, 0, code, "stderr: %s", stderr.String())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var s summary
	require.NoError(t, json.Unmarshal(b, &s))
	return &s
}

// requireStep checks what is countable in a step (timing is not: the
// machine running the tests may be busy).
func requireStep(t *testing.T, st step, kind string, calls, legs int) {
	t.Helper()
	require.Equal(t, kind, st.Kind)
	require.Equal(t, calls, st.Calls)
	require.Equal(t, legs, st.Legs)
	require.Equal(t, calls, st.Connected, "%s: %s", kind, st.Failure)
	require.Equal(t, calls, st.Live, "%s: %s", kind, st.Failure)
	require.Positive(t, st.Sent)
	require.LessOrEqual(t, st.Received, st.Sent)
	require.GreaterOrEqual(t, float64(st.Received), 0.9*float64(st.Sent), "frames arrived")
	require.Positive(t, st.GoroutinesPerLeg)
	require.Positive(t, st.HeapPerLegKB)
	require.Positive(t, st.CPUCores)
	require.Zero(t, st.DecryptKO)
}

// Both ends in this process: a raw pair and an SDK call at each of two
// counts, every leg counted here.
func TestCapacitySameProcess(t *testing.T) {
	s := capacityRun(t, "-calls", "1,2", "-quiet")
	require.Len(t, s.Steps, 4)
	requireStep(t, s.Steps[0], kindRaw, 1, 2)
	requireStep(t, s.Steps[1], kindSDK, 1, 2)
	requireStep(t, s.Steps[2], kindRaw, 2, 4)
	requireStep(t, s.Steps[3], kindSDK, 2, 4)
	require.Equal(t, 2, s.Settings.LegsPerCall)
	require.Equal(t, 120, s.Settings.FrameBytes)
	require.Equal(t, 148, s.Settings.RawFrameBytes, "the raw pair carries frames as long as encrypted ones")
	require.Equal(t, 50.0, s.Settings.FramesPerSec)
	// Each raw leg has one socket; so has each SDK leg without the mux.
	require.Equal(t, 1.0, s.Steps[2].SocketsPerLeg)
	require.Equal(t, 1.0, s.Steps[3].SocketsPerLeg)
	require.Contains(t, s.Command, "capacity -window 1s")
	require.NotEmpty(t, s.Machine.LoadBefore)
}

// Counts given with -calls are all measured, even when every step fails
// (here: a latency bound nothing can meet), and none counts as sustained.
func TestCapacityExplicitCountsAllMeasured(t *testing.T) {
	s := capacityRun(t, "-calls", "1,2", "-max-p99", "1ns", "-quiet")
	require.Len(t, s.Steps, 4)
	for _, st := range s.Steps {
		require.False(t, st.Pass, "%s at %d calls", st.Kind, st.Calls)
		require.NotEmpty(t, st.Failure)
	}
	require.Empty(t, s.MaxCalls)
}

// The far ends in a second process (this test binary, see TestMain): the
// measured process carries one leg of every call; with the UDP mux, the
// SDK's calls share one socket.
func TestCapacityPeerProcess(t *testing.T) {
	s := capacityRun(t, "-calls", "3", "-peers", "process", "-udp-mux", "-quiet")
	require.Len(t, s.Steps, 2)
	requireStep(t, s.Steps[0], kindRaw, 3, 3)
	requireStep(t, s.Steps[1], kindSDK, 3, 3)
	require.Equal(t, 1, s.Settings.LegsPerCall)
	require.True(t, s.Settings.UDPMux)
	require.Equal(t, 1.0, s.Steps[0].SocketsPerLeg, "raw pion: a socket per leg")
	require.Zero(t, s.Steps[1].SocketsPerLeg, "the SDK: the mux's socket, opened before the calls")
	require.Positive(t, s.Steps[1].PeerCPUCores)
}

// A video run, and the guard's verdict in the summary.
func TestCapacityVideoCheck(t *testing.T) {
	s := capacityRun(t, "-calls", "1", "-media", "video", "-video-kbps", "300", "-kinds", kindSDK, "-check", "-min-delivery", "0.5", "-quiet")
	require.Len(t, s.Steps, 1)
	requireStep(t, s.Steps[0], kindSDK, 1, 2)
	require.Equal(t, "video", s.Settings.Media)
	require.Equal(t, 1250, s.Settings.FrameBytes)
	require.Equal(t, "pass", s.Check)
}

func TestCapacityRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"capacity", "-kinds", "nope"},
		{"capacity", "-media", "smell"},
		{"capacity", "-peers", "cloud"},
		{"capacity", "-calls", "10,x"},
		{"capacity", "-window", "0s"},
		{"capacity", "-start", "10", "-max", "5"},
		{"capacity", "extra"},
		{"nosuch"},
		{},
	} {
		var stderr bytes.Buffer
		require.Equal(t, 2, run(context.Background(), args, os.Stdout, &stderr), "%v", args)
		require.NotEmpty(t, stderr.String(), "%v", args)
	}
}

// The meter counts by the second a frame was made and computes quantiles
// from the window's histogram; snapshots merge.
func TestMeter(t *testing.T) {
	var m meter
	now := time.Now()
	m.clearAhead(now.Add(-2 * time.Second))
	m.setWindow(now.Add(-time.Second), now.Add(time.Second))
	src := newSource(&m, mediaSpec{Bytes: 40, Interval: time.Millisecond})
	for range 10 {
		b, err := src.frame(context.Background())
		require.NoError(t, err)
		m.got(b)
	}
	m.got([]byte{1, 2}) // too short to carry a stamp
	sec := time.Now().Unix()
	s := m.snapshot(sec-1, sec+1)
	require.Equal(t, uint64(10), s.Sent)
	require.Equal(t, uint64(10), s.Received)
	require.Equal(t, uint64(1), s.Bad)
	require.LessOrEqual(t, s.quantile(0.99), 50*time.Millisecond)
	o := meterSnapshot{Sent: 5, Received: 4, Hist: []uint64{histBins - 1, 1}}
	s.merge(o)
	require.Equal(t, uint64(15), s.Sent)
	require.Equal(t, histBins*histBin, s.quantile(1))
}
