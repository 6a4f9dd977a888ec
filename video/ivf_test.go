package video

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"github.com/smpcall/smpcall/internal/testtool"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	fixtureIVF    = "../testdata/media/video.ivf"
	fixtureAltIVF = "../testdata/media/video-alt.ivf"
)

// onlyReader hides every method but Read (no Seek), like a pipe or socket.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// onlyWriter hides every method but Write.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

type ivfTestFrame struct {
	data []byte
	pts  uint64
}

// readFixtureFrames returns the header and raw frames of an IVF file,
// parsed independently of IVFSource.
func readFixtureFrames(t testing.TB, path string) ([]byte, []ivfTestFrame) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(b), 32)
	var frames []ivfTestFrame
	for off := 32; off < len(b); {
		require.LessOrEqual(t, off+12, len(b))
		n := int(binary.LittleEndian.Uint32(b[off:]))
		pts := binary.LittleEndian.Uint64(b[off+4:])
		require.LessOrEqual(t, off+12+n, len(b))
		frames = append(frames, ivfTestFrame{data: b[off+12 : off+12+n], pts: pts})
		off += 12 + n
	}
	return b[:32], frames
}

// ivfHeaderBytes builds a file header; mod may change it.
func ivfHeaderBytes(mod func(h []byte)) []byte {
	h := make([]byte, 32)
	copy(h, "DKIF")
	binary.LittleEndian.PutUint16(h[6:], 32)
	copy(h[8:], "VP80")
	binary.LittleEndian.PutUint16(h[12:], 160)
	binary.LittleEndian.PutUint16(h[14:], 120)
	binary.LittleEndian.PutUint32(h[16:], 1000)
	binary.LittleEndian.PutUint32(h[20:], 1)
	if mod != nil {
		mod(h)
	}
	return h
}

func buildIVF(header []byte, frames []ivfTestFrame) []byte {
	b := append([]byte(nil), header...)
	for _, f := range frames {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(f.data)))
		b = binary.LittleEndian.AppendUint64(b, f.pts)
		b = append(b, f.data...)
	}
	return b
}

func readAllFrames(t testing.TB, s *IVFSource, limit int) ([]Frame, error) {
	t.Helper()
	var out []Frame
	for range limit {
		f, err := s.ReadFrame(context.Background())
		if err != nil {
			return out, err
		}
		out = append(out, f)
	}
	return out, nil
}

// needVpxdec returns the vpxdec path; without it the test is skipped
// locally and fails in CI.
func needVpxdec(t *testing.T) string {
	return testtool.Need(t, "vpxdec", "vpx-tools")
}

// vpxdecMD5 decodes path with vpxdec and returns the MD5 of all decoded
// frames.
func vpxdecMD5(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(needVpxdec(t), "--md5", path).CombinedOutput()
	require.NoError(t, err, "vpxdec --md5 %s: %s", path, out)
	f := strings.Fields(string(out))
	require.NotEmpty(t, f, "vpxdec output: %s", out)
	require.Len(t, f[0], 32, "vpxdec output: %s", out)
	return f[0]
}

func TestIVFFixtures(t *testing.T) {
	for _, path := range []string{fixtureIVF, fixtureAltIVF} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			_, raw := readFixtureFrames(t, path)
			s, err := OpenIVFSource(path, nil)
			require.NoError(t, err)
			defer s.Close()
			h := s.Header()
			assert.Equal(t, IVFHeader{FourCC: "VP80", Width: 160, Height: 120,
				TimebaseDenominator: 1000, TimebaseNumerator: 1, FrameCount: 90}, h)

			frames, err := readAllFrames(t, s, 1000)
			require.ErrorIs(t, err, io.EOF)
			require.Len(t, frames, 90)
			require.Len(t, raw, 90)
			var keys []int
			var total time.Duration
			for i, f := range frames {
				assert.Equal(t, raw[i].data, f.Data, "frame %d", i)
				assert.Equal(t, IsKeyFrame(f.Data), f.KeyFrame, "frame %d", i)
				if f.KeyFrame {
					keys = append(keys, i)
					w, h, ok := vp8KeyFrameSize(f.Data)
					assert.True(t, ok)
					assert.Equal(t, [2]uint16{160, 120}, [2]uint16{w, h})
				}
				assert.InDelta(t, float64(DefaultDuration), float64(f.Duration), float64(2*time.Millisecond), "frame %d", i)
				total += f.Duration
			}
			assert.GreaterOrEqual(t, len(keys), 3)
			assert.Equal(t, 0, keys[0], "the file starts with a key frame")
			assert.InDelta(t, float64(3*time.Second), float64(total), float64(40*time.Millisecond))

			_, err = s.ReadFrame(context.Background())
			assert.ErrorIs(t, err, io.EOF, "EOF stays EOF")

			// vpxdec decodes the fixture.
			vpxdecMD5(t, path)
		})
	}
	// The two fixtures are different pictures.
	_, a := readFixtureFrames(t, fixtureIVF)
	_, b := readFixtureFrames(t, fixtureAltIVF)
	assert.NotEqual(t, a[0].data, b[0].data)
}

func TestIVFSourceNonSeekableReader(t *testing.T) {
	b, err := os.ReadFile(fixtureIVF)
	require.NoError(t, err)
	want, err := readAllFrames(t, mustSource(t, bytes.NewReader(b), nil), 1000)
	require.ErrorIs(t, err, io.EOF)
	got, err := readAllFrames(t, mustSource(t, onlyReader{bytes.NewReader(b)}, nil), 1000)
	require.ErrorIs(t, err, io.EOF)
	assert.Equal(t, want, got)
}

func mustSource(t testing.TB, r io.Reader, opts *IVFSourceOptions) *IVFSource {
	t.Helper()
	s, err := NewIVFSource(r, opts)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestIVFSinkRoundTrip(t *testing.T) {
	origMD5 := vpxdecMD5(t, fixtureIVF)
	for _, tc := range []struct {
		name      string
		timescale uint32
		seekable  bool
	}{
		{"90kHz-file", 0, true},
		{"1kHz-file", 1000, true},
		{"90kHz-stream", 90000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := OpenIVFSource(fixtureIVF, nil)
			require.NoError(t, err)
			defer src.Close()
			in, err := readAllFrames(t, src, 1000)
			require.ErrorIs(t, err, io.EOF)

			out := filepath.Join(t.TempDir(), "out.ivf")
			var sink *IVFSink
			var buf bytes.Buffer
			if tc.seekable {
				sink, err = CreateIVFSink(out, &IVFSinkOptions{Timescale: tc.timescale})
			} else {
				sink, err = NewIVFSink(onlyWriter{&buf}, &IVFSinkOptions{Timescale: tc.timescale})
			}
			require.NoError(t, err)
			for _, f := range in {
				require.NoError(t, sink.WriteFrame(f))
			}
			require.NoError(t, sink.Close())
			require.NoError(t, sink.Close(), "second Close is a no-op")
			assert.Equal(t, 90, sink.Frames())
			assert.Equal(t, 0, sink.Dropped())
			assert.Error(t, sink.WriteFrame(in[0]), "WriteFrame after Close")
			if !tc.seekable {
				require.NoError(t, os.WriteFile(out, buf.Bytes(), 0o644))
			}

			back, err := OpenIVFSource(out, nil)
			require.NoError(t, err)
			defer back.Close()
			h := back.Header()
			wantScale := tc.timescale
			if wantScale == 0 {
				wantScale = 90000
			}
			wantCount := uint32(90)
			if !tc.seekable {
				wantCount = 0 // left as written, before any frame
			}
			assert.Equal(t, IVFHeader{FourCC: "VP80", Width: 160, Height: 120,
				TimebaseDenominator: wantScale, TimebaseNumerator: 1, FrameCount: wantCount}, h)
			got, err := readAllFrames(t, back, 1000)
			require.ErrorIs(t, err, io.EOF)
			require.Len(t, got, len(in))
			for i := range in {
				assert.Equal(t, in[i].Data, got[i].Data, "frame %d", i)
				assert.Equal(t, in[i].KeyFrame, got[i].KeyFrame, "frame %d", i)
				assert.InDelta(t, float64(in[i].Duration), float64(got[i].Duration), float64(time.Millisecond), "frame %d", i)
			}
			assert.Equal(t, origMD5, vpxdecMD5(t, out), "vpxdec decodes the copy to the same pictures")
		})
	}
}

func TestIVFSinkArrivalTime(t *testing.T) {
	var buf bytes.Buffer
	sink, err := NewIVFSink(&buf, &IVFSinkOptions{ArrivalTime: true, Timescale: 1000})
	require.NoError(t, err)
	t0 := time.Unix(1000, 0)
	var now time.Time
	sink.now = func() time.Time { return now }
	_, raw := readFixtureFrames(t, fixtureIVF)
	for _, at := range []time.Duration{0, 40 * time.Millisecond, 40 * time.Millisecond, 100 * time.Millisecond} {
		now = t0.Add(at)
		require.NoError(t, sink.WriteFrame(Frame{Data: raw[0].data, KeyFrame: true}))
	}
	require.NoError(t, sink.Close())
	_, got := parseIVFBytes(t, buf.Bytes())
	var pts []uint64
	for _, f := range got {
		pts = append(pts, f.pts)
	}
	assert.Equal(t, []uint64{0, 40, 41, 100}, pts, "arrival times in ms, kept strictly increasing")
	assert.Equal(t, uint32(0), binary.LittleEndian.Uint32(buf.Bytes()[24:]), "a bytes.Buffer cannot seek: the count stays as written")
}

func parseIVFBytes(t testing.TB, b []byte) ([]byte, []ivfTestFrame) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.ivf")
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return readFixtureFrames(t, p)
}

func TestIVFSinkDurations(t *testing.T) {
	var buf bytes.Buffer
	sink, err := NewIVFSink(&buf, nil)
	require.NoError(t, err)
	_, raw := readFixtureFrames(t, fixtureIVF)
	for _, d := range []time.Duration{0, 10 * time.Millisecond, 20 * time.Millisecond, 0} {
		require.NoError(t, sink.WriteFrame(Frame{Data: raw[0].data, Duration: d}))
	}
	require.NoError(t, sink.Close())
	_, got := parseIVFBytes(t, buf.Bytes())
	var pts []uint64
	for _, f := range got {
		pts = append(pts, f.pts)
	}
	// 0 counts as 1/30 s = 3000 ticks at 90 kHz.
	assert.Equal(t, []uint64{0, 3000, 3900, 5700}, pts)
}

func TestIVFSinkDropsLeadingDeltaFrames(t *testing.T) {
	_, raw := readFixtureFrames(t, fixtureIVF)
	out := filepath.Join(t.TempDir(), "late.ivf")
	sink, err := CreateIVFSink(out, nil)
	require.NoError(t, err)
	// A call joined late: frames 1..89, so 1..29 are deltas with nothing
	// to predict from. Also a "key frame" without the VP8 start code and
	// an empty frame, neither decodable.
	require.NoError(t, sink.WriteFrame(Frame{Data: []byte{0x10, 0x02, 0x00, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0}}))
	require.NoError(t, sink.WriteFrame(Frame{}))
	for _, f := range raw[1:] {
		require.NoError(t, sink.WriteFrame(Frame{Data: f.data, KeyFrame: IsKeyFrame(f.data)}))
	}
	require.NoError(t, sink.Close())
	assert.Equal(t, 29+2, sink.Dropped())
	assert.Equal(t, 60, sink.Frames())

	s, err := OpenIVFSource(out, nil)
	require.NoError(t, err)
	defer s.Close()
	got, err := readAllFrames(t, s, 1000)
	require.ErrorIs(t, err, io.EOF)
	require.Len(t, got, 60)
	assert.True(t, got[0].KeyFrame)
	assert.Equal(t, raw[30].data, got[0].Data)
	assert.Equal(t, uint32(60), s.Header().FrameCount)

	out2, err := exec.Command(needVpxdec(t), "--i420", "-o", filepath.Join(t.TempDir(), "out.yuv"), out).CombinedOutput()
	require.NoError(t, err, "vpxdec: %s", out2)
}

func TestIVFSinkSizeFromOptions(t *testing.T) {
	_, raw := readFixtureFrames(t, fixtureIVF)
	var buf bytes.Buffer
	sink, err := NewIVFSink(&buf, &IVFSinkOptions{Width: 320, Height: 240})
	require.NoError(t, err)
	require.NoError(t, sink.WriteFrame(Frame{Data: raw[0].data}))
	require.NoError(t, sink.Close())
	s := mustSource(t, bytes.NewReader(buf.Bytes()), nil)
	assert.Equal(t, uint16(320), s.Header().Width)
	assert.Equal(t, uint16(240), s.Header().Height)
}

func TestIVFSinkNoFrames(t *testing.T) {
	var buf bytes.Buffer
	sink, err := NewIVFSink(&buf, nil)
	require.NoError(t, err)
	require.NoError(t, sink.WriteFrame(Frame{Data: []byte{0x01, 0x02, 0x03}})) // delta: dropped
	require.NoError(t, sink.Close())
	assert.Equal(t, 1, sink.Dropped())
	require.Len(t, buf.Bytes(), 32, "a valid, empty IVF file")
	s := mustSource(t, bytes.NewReader(buf.Bytes()), nil)
	_, err = s.ReadFrame(context.Background())
	assert.ErrorIs(t, err, io.EOF)
}

type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(p), nil
}

func TestIVFSinkErrors(t *testing.T) {
	_, raw := readFixtureFrames(t, fixtureIVF)
	sink, err := NewIVFSink(&failingWriter{n: 2}, nil) // header and one frame
	require.NoError(t, err)
	require.NoError(t, sink.WriteFrame(Frame{Data: raw[0].data}))
	err = sink.WriteFrame(Frame{Data: raw[1].data})
	require.ErrorContains(t, err, "disk full")
	assert.ErrorContains(t, sink.WriteFrame(Frame{Data: raw[2].data}), "disk full", "errors are sticky")
	assert.ErrorContains(t, sink.Close(), "disk full")

	sink, err = NewIVFSink(io.Discard, nil)
	require.NoError(t, err)
	assert.ErrorContains(t, sink.WriteFrame(Frame{Data: make([]byte, IVFMaxFrameSize+1)}), "exceeds")
	require.NoError(t, sink.Close())

	_, err = NewIVFSink(nil, nil)
	assert.Error(t, err)
	_, err = CreateIVFSink(filepath.Join(t.TempDir(), "no", "such", "dir.ivf"), nil)
	assert.Error(t, err)
}

func TestIVFSinkConcurrentClose(t *testing.T) {
	_, raw := readFixtureFrames(t, fixtureIVF)
	sink, err := CreateIVFSink(filepath.Join(t.TempDir(), "c.ivf"), nil)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, f := range raw {
			if sink.WriteFrame(Frame{Data: f.data}) != nil {
				return
			}
		}
	})
	wg.Go(func() { _ = sink.Dropped() + sink.Frames() })
	require.NoError(t, sink.Close())
	wg.Wait()
}

func TestIVFSourceRequestKeyFrame(t *testing.T) {
	_, raw := readFixtureFrames(t, fixtureIVF)
	ctx := context.Background()
	s, err := OpenIVFSource(fixtureIVF, nil)
	require.NoError(t, err)
	defer s.Close()

	f, err := s.ReadFrame(ctx)
	require.NoError(t, err)
	require.True(t, f.KeyFrame)
	f, err = s.ReadFrame(ctx)
	require.NoError(t, err)
	require.False(t, f.KeyFrame)

	s.RequestKeyFrame()
	s.RequestKeyFrame() // coalesced with the first
	assert.Equal(t, 0, s.KeyFrameRequests(), "served only by a ReadFrame")
	f, err = s.ReadFrame(ctx)
	require.NoError(t, err)
	assert.True(t, f.KeyFrame)
	assert.Equal(t, raw[30].data, f.Data, "skipped to the next key frame")
	assert.Equal(t, 1, s.KeyFrameRequests())

	f, err = s.ReadFrame(ctx)
	require.NoError(t, err)
	assert.Equal(t, raw[31].data, f.Data, "then on from there")
	assert.False(t, f.KeyFrame)

	// Past the last key frame, without Loop there is none left.
	for range 60 - 32 + 1 {
		_, err = s.ReadFrame(ctx)
		require.NoError(t, err)
	}
	s.RequestKeyFrame()
	_, err = s.ReadFrame(ctx)
	assert.ErrorIs(t, err, io.EOF)
	assert.Equal(t, 1, s.KeyFrameRequests())
}

func TestIVFSourceRequestKeyFrameLoop(t *testing.T) {
	_, raw := readFixtureFrames(t, fixtureIVF)
	ctx := context.Background()
	s, err := OpenIVFSource(fixtureIVF, &IVFSourceOptions{Loop: true})
	require.NoError(t, err)
	defer s.Close()
	for range 61 {
		_, err = s.ReadFrame(ctx)
		require.NoError(t, err)
	}
	s.RequestKeyFrame()
	f, err := s.ReadFrame(ctx)
	require.NoError(t, err)
	assert.True(t, f.KeyFrame)
	assert.Equal(t, raw[0].data, f.Data, "wrapped around to frame 0")
	assert.Equal(t, 1, s.KeyFrameRequests())

	// The next frame is already a key frame: served without skipping.
	for range 29 {
		_, err = s.ReadFrame(ctx)
		require.NoError(t, err)
	}
	s.RequestKeyFrame()
	f, err = s.ReadFrame(ctx)
	require.NoError(t, err)
	assert.Equal(t, raw[30].data, f.Data)
	assert.Equal(t, 2, s.KeyFrameRequests())
}

func TestIVFSourceRequestKeyFrameConcurrent(t *testing.T) {
	s, err := OpenIVFSource(fixtureIVF, &IVFSourceOptions{Loop: true})
	require.NoError(t, err)
	defer s.Close()
	var req KeyFrameRequester = s
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					req.RequestKeyFrame()
					_ = s.KeyFrameRequests()
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	keys := 0
	deadline := time.Now().Add(10 * time.Second)
	for s.KeyFrameRequests() < 5 && time.Now().Before(deadline) {
		f, err := s.ReadFrame(context.Background())
		require.NoError(t, err)
		if f.KeyFrame {
			keys++
		}
		time.Sleep(100 * time.Microsecond)
	}
	close(stop)
	wg.Wait()
	assert.Positive(t, s.KeyFrameRequests())
	assert.GreaterOrEqual(t, keys, s.KeyFrameRequests())
}

func TestIVFSourcePaced(t *testing.T) {
	s, err := OpenIVFSource(fixtureIVF, &IVFSourceOptions{Paced: true})
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	start := time.Now()
	var media time.Duration
	for i := range 12 {
		if i == 6 {
			s.RequestKeyFrame() // skips ~24 frames but not their time
		}
		f, err := s.ReadFrame(ctx)
		require.NoError(t, err)
		// Frame i comes out no earlier than the durations before it.
		assert.GreaterOrEqual(t, time.Since(start), media-2*time.Millisecond, "frame %d", i)
		media += f.Duration
	}
	assert.Equal(t, 1, s.KeyFrameRequests())
	assert.GreaterOrEqual(t, time.Since(start), 11*30*time.Millisecond)
}

func TestIVFSourcePacedCancelKeepsFrame(t *testing.T) {
	_, raw := readFixtureFrames(t, fixtureIVF)
	s, err := OpenIVFSource(fixtureIVF, &IVFSourceOptions{Paced: true})
	require.NoError(t, err)
	defer s.Close()
	f, err := s.ReadFrame(context.Background())
	require.NoError(t, err)
	require.Equal(t, raw[0].data, f.Data)

	// Frame 1 is due 33 ms after frame 0; give up before that.
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_, err = s.ReadFrame(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	f, err = s.ReadFrame(context.Background())
	require.NoError(t, err)
	assert.Equal(t, raw[1].data, f.Data, "a cancelled wait does not lose the frame")
}

// slowIVF is a two-frame file whose first frame lasts 1000 s.
func slowIVF(t testing.TB) []byte {
	_, raw := readFixtureFrames(t, fixtureIVF)
	return buildIVF(ivfHeaderBytes(func(h []byte) {
		binary.LittleEndian.PutUint32(h[16:], 1) // 1/1 s ticks
	}), []ivfTestFrame{{raw[0].data, 0}, {raw[1].data, 1000}})
}

func TestIVFSourceContextCancel(t *testing.T) {
	s := mustSource(t, bytes.NewReader(slowIVF(t)), &IVFSourceOptions{Paced: true})
	f, err := s.ReadFrame(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1000*time.Second, f.Duration)

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	_, err = s.ReadFrame(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(start), 2*time.Second)

	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = s.ReadFrame(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	_, err = s.ReadFrame(ctx) // already done: returns at once
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	// Close wakes a waiting ReadFrame.
	done := make(chan error, 1)
	go func() {
		_, err := s.ReadFrame(context.Background())
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, s.Close())
	select {
	case err := <-done:
		assert.ErrorIs(t, err, os.ErrClosed)
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not wake ReadFrame")
	}
	require.NoError(t, s.Close())
}

func TestIVFSourceLoop(t *testing.T) {
	_, raw := readFixtureFrames(t, fixtureIVF)
	b, err := os.ReadFile(fixtureIVF)
	require.NoError(t, err)
	for name, r := range map[string]func() io.Reader{
		"seekable":     func() io.Reader { return bytes.NewReader(b) },
		"non-seekable": func() io.Reader { return onlyReader{bytes.NewReader(b)} },
	} {
		t.Run(name, func(t *testing.T) {
			s := mustSource(t, r(), &IVFSourceOptions{Loop: true})
			frames, err := readAllFrames(t, s, 200)
			require.NoError(t, err)
			var total time.Duration
			for i, f := range frames {
				assert.Equal(t, raw[i%90].data, f.Data, "frame %d", i)
				assert.InDelta(t, float64(DefaultDuration), float64(f.Duration), float64(2*time.Millisecond), "frame %d", i)
				total += f.Duration
			}
			assert.True(t, frames[90].KeyFrame)
			assert.Equal(t, frames[88].Duration, frames[89].Duration, "the last frame repeats the previous duration")
			assert.InDelta(t, float64(200*time.Second/30), float64(total), float64(50*time.Millisecond))
		})
	}
}

func TestIVFSourceLoopNeedsKeyFrameFirst(t *testing.T) {
	_, raw := readFixtureFrames(t, fixtureIVF)
	b := buildIVF(ivfHeaderBytes(nil), raw[1:])
	_, err := NewIVFSource(bytes.NewReader(b), &IVFSourceOptions{Loop: true})
	require.ErrorIs(t, err, ErrInvalidIVF)
	assert.ErrorContains(t, err, "first frame is not a key frame")

	// Without Loop it is fine (a sink drops the leading deltas).
	s := mustSource(t, bytes.NewReader(b), nil)
	frames, err := readAllFrames(t, s, 1000)
	require.ErrorIs(t, err, io.EOF)
	assert.Len(t, frames, 89)
}

func TestIVFSourceDurationFallbacks(t *testing.T) {
	_, raw := readFixtureFrames(t, fixtureIVF)
	k, d := raw[0].data, raw[1].data
	b := buildIVF(ivfHeaderBytes(nil), []ivfTestFrame{
		{k, 100}, {d, 150}, // 50 ms
		{d, 150},     // zero step: previous (50 ms)
		{d, 120},     // backwards: previous
		{d, 1 << 62}, // absurd jump: previous
		{d, 1<<62 + 20},
	})
	s := mustSource(t, bytes.NewReader(b), nil)
	frames, err := readAllFrames(t, s, 10)
	require.ErrorIs(t, err, io.EOF)
	var got []time.Duration
	for _, f := range frames {
		got = append(got, f.Duration)
	}
	ms := time.Millisecond
	assert.Equal(t, []time.Duration{50 * ms, 50 * ms, 50 * ms, 50 * ms, 20 * ms, 20 * ms}, got)

	// A single frame with nothing to go by lasts DefaultDuration.
	s = mustSource(t, bytes.NewReader(buildIVF(ivfHeaderBytes(nil), []ivfTestFrame{{k, 7}})), nil)
	f, err := s.ReadFrame(context.Background())
	require.NoError(t, err)
	assert.Equal(t, DefaultDuration, f.Duration)
}

func TestIVFSourceBadFiles(t *testing.T) {
	fixture, err := os.ReadFile(fixtureIVF)
	require.NoError(t, err)
	_, raw := readFixtureFrames(t, fixtureIVF)
	hdr := ivfHeaderBytes(nil)
	withFrameHeader := func(size uint32, data []byte) []byte {
		b := append([]byte(nil), hdr...)
		b = binary.LittleEndian.AppendUint32(b, size)
		b = binary.LittleEndian.AppendUint64(b, 0)
		return append(b, data...)
	}
	firstFrameEnd := 32 + 12 + len(raw[0].data)
	for _, tc := range []struct {
		name string
		data []byte
		loop bool
		// want is the expected error text; wantStream, if set, is the text
		// when the reader cannot seek (the size cannot be checked first).
		want, wantStream string
		good             int // frames returned before the error
	}{
		{name: "empty", data: nil, want: "empty input"},
		{name: "wrong signature", data: append([]byte("RIFF"), hdr[4:]...), want: `wrong signature "RIFF", want "DKIF"`},
		{name: "short and wrong", data: []byte("GIF8"), want: `wrong signature "GIF8"`},
		{name: "webm", data: []byte{0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81}, want: `wrong signature "\x1aE\xdf\xa3"`},
		{name: "version", data: ivfHeaderBytes(func(h []byte) { h[4] = 1 }), want: "unsupported version 1"},
		{name: "header size", data: ivfHeaderBytes(func(h []byte) { h[6] = 40 }), want: "wrong header size 40, want 32"},
		{name: "VP9", data: ivfHeaderBytes(func(h []byte) { copy(h[8:], "VP90") }), want: `unsupported codec FourCC "VP90"`},
		{name: "H264", data: ivfHeaderBytes(func(h []byte) { copy(h[8:], "H264") }), want: `unsupported codec FourCC "H264"`},
		{name: "AV1 binary FourCC", data: ivfHeaderBytes(func(h []byte) { copy(h[8:], "\x00\x01AV") }), want: `unsupported codec FourCC "\x00\x01AV"`},
		{name: "zero timebase denominator", data: ivfHeaderBytes(func(h []byte) { binary.LittleEndian.PutUint32(h[16:], 0) }), want: "invalid timebase 1/0"},
		{name: "zero timebase numerator", data: ivfHeaderBytes(func(h []byte) { binary.LittleEndian.PutUint32(h[20:], 0) }), want: "invalid timebase 0/1000"},
		{name: "truncated header", data: fixture[:20], want: "truncated header: 20 of 32 bytes"},
		{name: "truncated frame header", data: fixture[:32+7], want: "frame 0 (at byte 32): truncated frame header: 7 of 12 bytes"},
		{name: "frame larger than the file", data: withFrameHeader(5000, raw[0].data[:100]),
			want:       "frame 0 (at byte 32): frame size 5000 is larger than the 100 bytes left in the file",
			wantStream: "frame 0 (at byte 32): truncated frame: 100 of 5000 bytes"},
		{name: "truncated second frame", data: fixture[:firstFrameEnd+12+10], good: 1,
			want:       "frame 1 (at byte " + strconv.Itoa(firstFrameEnd) + "): frame size",
			wantStream: "frame 1 (at byte " + strconv.Itoa(firstFrameEnd) + "): truncated frame: 10 of"},
		{name: "truncated last frame", data: fixture[:len(fixture)-1], good: 89,
			want: "frame 89", wantStream: "frame 89"},
		{name: "absurd size", data: withFrameHeader(0xffffffff, raw[0].data), want: "frame size 4294967295 exceeds the 8388608-byte limit"},
		{name: "just over the limit", data: withFrameHeader(IVFMaxFrameSize+1, raw[0].data), want: "exceeds the 8388608-byte limit"},
		{name: "empty frame", data: withFrameHeader(0, nil), want: "empty frame (size 0)"},
		{name: "loop without frames", data: hdr, loop: true, want: "frame 0 (at byte 32): missing: the file has no frames"},
	} {
		for _, stream := range []bool{false, true} {
			name := tc.name
			want := tc.want
			if stream {
				name += "/stream"
				if tc.wantStream != "" {
					want = tc.wantStream
				}
			}
			t.Run(name, func(t *testing.T) {
				var r io.Reader = bytes.NewReader(tc.data)
				if stream {
					r = onlyReader{r}
				}
				s, err := NewIVFSource(r, &IVFSourceOptions{Loop: tc.loop})
				n := 0
				if err == nil {
					defer s.Close()
					var frames []Frame
					frames, err = readAllFrames(t, s, 1000)
					n = len(frames)
					require.NotErrorIs(t, err, io.EOF)
					// The error is sticky.
					_, err2 := s.ReadFrame(context.Background())
					assert.Equal(t, err, err2)
				}
				require.Error(t, err)
				t.Log(err)
				assert.ErrorIs(t, err, ErrInvalidIVF)
				var fe *IVFFormatError
				assert.ErrorAs(t, err, &fe)
				assert.ErrorContains(t, err, want)
				assert.Equal(t, tc.good, n, "good frames before the error")
			})
		}
	}
}

func TestOpenIVFSourceErrors(t *testing.T) {
	_, err := OpenIVFSource(filepath.Join(t.TempDir(), "missing.ivf"), nil)
	assert.ErrorIs(t, err, os.ErrNotExist)

	p := filepath.Join(t.TempDir(), "vp9.ivf")
	require.NoError(t, os.WriteFile(p, ivfHeaderBytes(func(h []byte) { copy(h[8:], "VP90") }), 0o644))
	_, err = OpenIVFSource(p, nil)
	assert.ErrorIs(t, err, ErrInvalidIVF)
	assert.ErrorContains(t, err, p, "the error names the file")

	_, err = NewIVFSource(nil, nil)
	assert.Error(t, err)
}

func TestIVFSourceReadError(t *testing.T) {
	b, err := os.ReadFile(fixtureIVF)
	require.NoError(t, err)
	boom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(b[:1000]), iotestErrReader{boom})
	s := mustSource(t, r, nil)
	_, err = readAllFrames(t, s, 1000)
	assert.ErrorIs(t, err, boom)
	assert.NotErrorIs(t, err, ErrInvalidIVF, "an I/O error is not a format error")
}

type iotestErrReader struct{ err error }

func (e iotestErrReader) Read([]byte) (int, error) { return 0, e.err }
