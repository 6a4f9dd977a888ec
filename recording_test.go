package smpcall_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/netsim"
	"github.com/smpcall/smpcall/internal/testnet"
	"github.com/smpcall/smpcall/internal/testtool"
	"github.com/smpcall/smpcall/video"
)

// TestRecordingAfterLossDecodesCleanly: real VP8 (testdata/media/video.ivf,
// looped) over a simulated network that loses 5 % of packets and is cut
// three times for 10 s, so that whole frames are lost for good (NACK
// cannot bring them back). After a loss the receiver passes no delta frame
// until a key frame (it asks for one with PLI). The recording is decoded
// by the reference decoder, vpxdec: no error, and every picture is the one
// the same frame gives when the file is decoded without loss. A delta frame
// whose reference frame was lost would decode to a different picture.
// (The defect this guards: delta frames after a gap reached the sinks.)
func TestRecordingAfterLossDecodesCleanly(t *testing.T) {
	vpxdec := testtool.Need(t, "vpxdec", "vpx-tools")
	fixture := testnet.Media("video.ivf")
	index := map[string]int{}
	for i, f := range testnet.VP8Frames(t, fixture) {
		_, dup := index[string(f)]
		require.False(t, dup, "fixture frames are distinct")
		index[string(f)] = i
	}

	var (
		mu       sync.Mutex
		received [][]byte
		lost     uint64
		plis     uint64
	)
	synctest.Test(t, func(t *testing.T) {
		p := netsim.Profile{Name: "loss", Delay: 30 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: netsim.Loss{Random: 0.05}}
		sim, err := netsim.New(t, p, 21)
		require.NoError(t, err)
		src, err := video.OpenIVFSource(fixture, &video.IVFSourceOptions{Paced: true, Loop: true})
		require.NoError(t, err)
		defer src.Close()
		sink := video.SinkFunc(func(f video.Frame) error {
			mu.Lock()
			received = append(received, bytes.Clone(f.Data))
			mu.Unlock()
			return nil
		})
		lp := startPair(t, pairOptions{sim: sim, media: smpcall.MediaVideo,
			mod:   func(_ netsim.Side, c *smpcall.Config) { c.ICEServers = []smpcall.ICEServer{} }, // host candidates only
			alice: &smpcall.CallOptions{Sources: smpcall.Sources{Camera: src}},
			bob:   &smpcall.CallOptions{Sinks: smpcall.Sinks{Camera: sink}}})
		// Cuts of 10 s: longer than the sender keeps packets for resending
		// (256 packets, about 8 s of this clip), so whole frames are lost
		// for good; shorter outages are repaired by NACK.
		for range 3 {
			time.Sleep(4 * time.Second)
			sim.SetLinkUp(netsim.A, false)
			time.Sleep(10 * time.Second)
			sim.SetLinkUp(netsim.A, true)
		}
		time.Sleep(4 * time.Second)
		st := lp.bob.Stats().Streams[1]
		require.Equal(t, smpcall.SourceCamera, st.Source)
		lost, plis = st.FramesLost, st.PLISent
		require.Zero(t, st.DecryptFailed)
		require.NoError(t, lp.alice.End(ctx))
		<-lp.bob.Done()
	})

	mu.Lock()
	defer mu.Unlock()
	require.Positive(t, lost, "frames were lost for good: the test covers the gap")
	require.Positive(t, plis, "the receiver asked for a key frame after the loss")
	dir := t.TempDir()
	ivf := filepath.Join(dir, "received.ivf")
	sink, err := video.CreateIVFSink(ivf, nil)
	require.NoError(t, err)
	for _, f := range received {
		_, ok := index[string(f)]
		require.True(t, ok, "a received frame is a frame of the file")
		require.NoError(t, sink.WriteFrame(video.Frame{Data: f, KeyFrame: video.IsKeyFrame(f)}))
	}
	require.NoError(t, sink.Close())
	require.Zero(t, sink.Dropped(), "the first frame received is a key frame")

	decode := func(path, out string) [][]byte {
		res, err := exec.Command(vpxdec, "--i420", "-o", out, path).CombinedOutput()
		require.NoError(t, err, "vpxdec %s: %s", path, res)
		require.NotContains(t, string(res), "orrupt", "vpxdec: %s", res)
		yuv, err := os.ReadFile(out)
		require.NoError(t, err)
		const size = 160 * 120 * 3 / 2
		require.Zero(t, len(yuv)%size)
		var pics [][]byte
		for i := 0; i < len(yuv); i += size {
			pics = append(pics, yuv[i:i+size])
		}
		return pics
	}
	want := decode(fixture, filepath.Join(dir, "fixture.yuv"))
	got := decode(ivf, filepath.Join(dir, "received.yuv"))
	require.Len(t, got, len(received), "vpxdec decoded every recorded frame")
	gaps := 0
	for j, f := range received {
		i := index[string(f)]
		if j > 0 && i != (index[string(received[j-1])]+1)%len(want) {
			gaps++
			require.True(t, video.IsKeyFrame(f), "frame %d (file frame %d) follows a gap but is not a key frame", j, i)
		}
		require.True(t, bytes.Equal(want[i], got[j]), "received frame %d (file frame %d) decodes to another picture", j, i)
	}
	t.Logf("%d frames recorded, %d given up by the receiver, %d PLIs, %d resumptions at a key frame; vpxdec decoded every picture as in the lossless file",
		len(received), lost, plis, gaps)
	require.Positive(t, gaps)
}
