package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// soakRun runs the command and returns its summary and output.
func soakRun(t *testing.T, args ...string) (int, Summary, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var s Summary
	if code != 2 {
		require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &s), "the last line is the JSON summary:\n%s\n%s", stdout.String(), stderr.String())
	}
	return code, s, stdout.String() + stderr.String()
}

// A short soak over loopback UDP and one over a simulated network: calls
// complete with media both ways, nothing fails to decrypt, and goroutines,
// heap and open files return to where they were.
func TestSoak(t *testing.T) {
	for _, args := range [][]string{
		{"-calls", "3", "-duration", "3s", "-hold", "500ms", "-progress", "1s"},
		{"-calls", "2", "-duration", "3s", "-hold", "500ms", "-progress", "1s", "-net", "wan-50ms-5pct", "-media", "audio"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, s, out := soakRun(t, args...)
			require.Equal(t, 0, code, out)
			require.True(t, s.OK, out)
			require.Contains(t, out, "progress: ")
			require.GreaterOrEqual(t, s.Done, 2, out)
			require.Zero(t, s.Failed)
			require.Empty(t, s.ByReason)
			require.Positive(t, s.SetupMs.P50)
			require.GreaterOrEqual(t, s.SetupMs.P99, s.SetupMs.P50)
			require.Positive(t, s.FramesReceived)
			require.Zero(t, s.DecryptFailed)
			require.True(t, s.Returned, out)
			require.LessOrEqual(t, s.After.Goroutines, s.Before.Goroutines, out)
			require.LessOrEqual(t, s.After.OpenFiles, s.Before.OpenFiles, out)
			require.Less(t, s.After.HeapBytes, s.Before.HeapBytes+4<<20, out)
		})
	}
}

func TestSoakFlags(t *testing.T) {
	for _, args := range [][]string{{"-calls", "0"}, {"-media", "screen"}, {"-net", "moon"}, {"-duration", "-1s"}, {"extra"}, {"-bogus"}} {
		code, _, out := soakRun(t, args...)
		require.Equal(t, 2, code, "%v: %s", args, out)
	}
}
