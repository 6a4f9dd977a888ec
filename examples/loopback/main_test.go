package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/smpcall/smpcall/internal/testtool"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/smpcall/smpcall/internal/testnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The README's main command, short and with -json: both sides connected and
// encrypted, every stream delivered ≥ 95 %, nothing failed to decrypt, and
// the recordings decode with the reference decoders to the frames sent.
func TestLoopbackVideoCall(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-duration", "3s", "-json", "-out", out}, &stdout, &stderr)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())

	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var s struct {
		OK        bool    `json:"ok"`
		SetupMs   float64 `json:"setupMs"`
		Encrypted bool    `json:"encrypted"`
		Relay     bool    `json:"relay"`
		Caller    Side    `json:"caller"`
		Callee    Side    `json:"callee"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &s), "last line is the JSON summary")
	require.True(t, s.OK)
	require.True(t, s.Encrypted)
	require.False(t, s.Relay)
	require.Positive(t, s.SetupMs)
	for _, x := range []struct {
		from, to Side
	}{{s.Caller, s.Callee}, {s.Callee, s.Caller}} {
		require.Equal(t, "connected", x.from.State)
		require.Positive(t, x.from.Audio.Sent)
		require.Positive(t, x.from.Video.Sent)
		require.GreaterOrEqual(t, x.to.Audio.Received*100, x.from.Audio.Sent*95)
		require.GreaterOrEqual(t, x.to.Video.Received*100, x.from.Video.Sent*95)
		require.Zero(t, x.to.Audio.DecryptFailed)
		require.Zero(t, x.to.Video.DecryptFailed)
		require.Positive(t, x.to.Video.KeyFrames)
		require.Contains(t, x.from.CandidatePair, "peer-to-peer")
	}
	require.Equal(t, 2, strings.Count(stdout.String(), "; 0 decrypt failures; "), "the readable summary gives each side's decrypt failures")
	require.Contains(t, stdout.String(), "alice mutes her microphone")
	require.Contains(t, stdout.String(), "alice switches to her environment camera (ok)")

	media := defaultMediaDir()
	opusdec, vpxdec := testtool.Need(t, "opusdec", "opus-tools"), testtool.Need(t, "vpxdec", "vpx-tools")
	for _, who := range []string{"alice", "bob"} {
		// Audio: every recorded packet is a packet of the fixture, and opusdec decodes the file.
		sent := set(packetList(t, filepath.Join(media, "tone.opus")))
		got := packetList(t, filepath.Join(out, who+"-received.opus"))
		require.GreaterOrEqual(t, len(got), 50)
		for _, p := range got {
			require.True(t, sent[string(p)], "%s received an Opus packet that was never sent", who)
		}
		cmd := exec.Command(opusdec, "--quiet", filepath.Join(out, who+"-received.opus"), filepath.Join(out, who+".wav"))
		outp, err := cmd.CombinedOutput()
		require.NoError(t, err, string(outp))

		// Video: every recorded frame is a frame of the camera files, and vpxdec decodes them all.
		frames := set(append(ivfList(t, filepath.Join(media, "video.ivf")), ivfList(t, filepath.Join(media, "video-alt.ivf"))...))
		gotV := ivfList(t, filepath.Join(out, who+"-received.ivf"))
		require.GreaterOrEqual(t, len(gotV), 30)
		for _, f := range gotV {
			require.True(t, frames[string(f)], "%s received a VP8 frame that was never sent", who)
		}
		cmd = exec.Command(vpxdec, "--i420", "-o", filepath.Join(out, who+".yuv"), filepath.Join(out, who+"-received.ivf"))
		outp, err = cmd.CombinedOutput()
		require.NoError(t, err, string(outp))
		st, err := os.Stat(filepath.Join(out, who+".yuv"))
		require.NoError(t, err)
		require.Positive(t, st.Size())
		// 160x120 I420 frames: vpxdec decoded every recorded frame.
		require.Equal(t, int64(len(gotV))*160*120*3/2, st.Size())
	}
}

func TestLoopbackAudioOnly(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-duration", "2s", "-audio-only", "-json", "-out", out}, &stdout, &stderr)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	_, err := os.Stat(filepath.Join(out, "bob-received.ivf"))
	require.True(t, errors.Is(err, os.ErrNotExist), "no video in an audio call")
}

func TestLoopbackFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, 2, run(context.Background(), []string{"-relay"}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "-relay needs -turn")
	require.Equal(t, 2, run(context.Background(), []string{"-duration", "1ms"}, &stdout, &stderr))
	require.Equal(t, 2, run(context.Background(), []string{"-bogus"}, &stdout, &stderr))
	stderr.Reset()
	require.Equal(t, 1, run(context.Background(), []string{"-media", t.TempDir(), "-out", t.TempDir()}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "tone.opus")
}

func packetList(t *testing.T, path string) [][]byte { return testnet.OpusPackets(t, path) }

func ivfList(t *testing.T, path string) [][]byte { return testnet.VP8Frames(t, path) }

func set(frames [][]byte) map[string]bool {
	out := map[string]bool{}
	for _, f := range frames {
		out[string(f)] = true
	}
	return out
}

// -relay -turn: the call goes through a real TURN server (coturn on
// 127.0.0.1), relay-only, and the summary says so.
func TestLoopbackRelay(t *testing.T) {
	turn := testnet.StartTURN(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-duration", "2s", "-audio-only", "-json", "-relay", "-turn", turn.SimpleX(), "-out", t.TempDir()}, &stdout, &stderr)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var s struct {
		OK, Relay bool
		Caller    Side
	}
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &s))
	require.True(t, s.OK)
	require.True(t, s.Relay)
	require.Contains(t, s.Caller.CandidatePair, "relay")
}
