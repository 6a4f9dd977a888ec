package audio

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/stretchr/testify/require"
)

// oggWriteAll writes frames through a new OggSink and returns the file.
func oggWriteAll(t *testing.T, frames []Frame, opts *OggSinkOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	s, err := NewOggSink(&buf, opts)
	require.NoError(t, err)
	for _, f := range frames {
		require.NoError(t, s.WriteFrame(f))
	}
	require.NoError(t, s.Close())
	return buf.Bytes()
}

func TestOggSinkRoundTrip(t *testing.T) {
	for _, path := range []string{oggToneFixture, oggMultiFixture} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			src, err := OpenOggSource(path, nil)
			require.NoError(t, err)
			frames := oggReadAll(t, src)
			require.NoError(t, src.Close())

			out := oggWriteAll(t, frames, &OggSinkOptions{Serial: 0xabcdef})

			// Page structure: headers, then one packet per page.
			pages := oggScanPages(t, out)
			require.Len(t, pages, 2+len(frames))
			for i, p := range pages {
				require.Equal(t, uint32(0xabcdef), p.serial)
				require.Equal(t, uint32(i), p.seq)
				var want byte
				if i == 0 {
					want = oggFlagBOS
				}
				if i == len(pages)-1 {
					want = oggFlagEOS
				}
				require.Equal(t, want, p.flags, "page %d flags", i)
				if i >= 2 {
					require.Equal(t, uint64(960*(i-1)), p.granule, "page %d granule", i)
					require.Equal(t, frames[i-2].Data, p.body)
				} else {
					require.Zero(t, p.granule)
				}
			}
			h := OggHeader{}
			require.NoError(t, oggParseHead(pages[0].body, &h))
			require.Equal(t, OggHeader{Version: 1, Channels: 2, PreSkip: 312, InputSampleRate: 48000}, h)

			// Read back: identical packets.
			back, err := NewOggSource(bytes.NewReader(out), nil)
			require.NoError(t, err)
			require.Equal(t, "smpcall", back.Head().Vendor)
			require.Equal(t, frames, oggReadAll(t, back))

			// pion's oggreader (which checks CRCs independently) agrees.
			r, _, err := oggreader.NewWith(bytes.NewReader(out))
			require.NoError(t, err)
			n := 0
			for {
				payload, _, err := r.ParseNextPage()
				if errors.Is(err, io.EOF) {
					break
				}
				require.NoError(t, err)
				if n > 0 {
					require.Equal(t, frames[n-1].Data, payload)
				}
				n++
			}
			require.Equal(t, 1+len(frames), n)

			// opusdec decodes it: the whole length, stereo, not silent.
			wav := oggOpusdec(t, out)
			require.Equal(t, 2, wav.channels)
			require.Equal(t, 48000, wav.rate)
			want := oggTotal(frames) - oggSamplesDuration(312)
			require.InDelta(t, want, wav.duration(), float64(40*time.Millisecond))
			var peak int16
			for _, v := range wav.samples {
				peak = max(peak, v, -v)
			}
			require.Greater(t, peak, int16(3000))
		})
	}
}

func TestOggSinkFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.opus")
	s, err := CreateOggSink(path, &OggSinkOptions{Channels: 1, PreSkip: -1, Comments: []string{"TITLE=silence"}})
	require.NoError(t, err)
	for range 50 {
		require.NoError(t, s.WriteFrame(Frame{Data: SilencePacket()}))
	}
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.WriteFrame(Frame{Data: SilencePacket()}), ErrOggClosed)

	src, err := OpenOggSource(path, nil)
	require.NoError(t, err)
	defer src.Close()
	h := src.Head()
	require.Equal(t, 1, h.Channels)
	require.Equal(t, 0, h.PreSkip)
	require.Equal(t, []string{"TITLE=silence"}, h.Comments)
	frames := oggReadAll(t, src)
	require.Len(t, frames, 50)
	require.Equal(t, time.Second, oggTotal(frames))

	_, err = CreateOggSink(filepath.Join(t.TempDir(), "no", "such", "dir.opus"), nil)
	require.Error(t, err)
}

func TestOggSinkEmpty(t *testing.T) {
	for _, preSkip := range []int{0, -1, 2000} {
		out := oggWriteAll(t, nil, &OggSinkOptions{PreSkip: preSkip})
		pages := oggScanPages(t, out)
		require.Len(t, pages, 3)
		require.Equal(t, byte(oggFlagEOS), pages[2].flags)

		s, err := NewOggSource(bytes.NewReader(out), nil)
		require.NoError(t, err)
		want := max(1, (s.Head().PreSkip+959)/960)
		require.Equal(t, uint64(s.Head().PreSkip), pages[2].granule)
		frames := oggReadAll(t, s)
		require.Len(t, frames, want)
		require.Equal(t, SilencePacket(), frames[0].Data)

		wav := oggOpusdec(t, out)
		require.Empty(t, wav.samples, "pre-skip %d", preSkip)
	}
}

// TestOggSinkLostFrames: empty frames become concealed packets of their
// duration; decoders accept them.
func TestOggSinkLostFrames(t *testing.T) {
	frames := []Frame{
		{Data: SilencePacket()},
		{}, // 20 ms
		{Duration: 60 * time.Millisecond},
		{Duration: 2500 * time.Microsecond},
		{Duration: time.Millisecond}, // dropped
		{Duration: 250 * time.Millisecond},
		{Data: SilencePacket()},
	}
	out := oggWriteAll(t, frames, &OggSinkOptions{Channels: 1})
	s, err := NewOggSource(bytes.NewReader(out), nil)
	require.NoError(t, err)
	got := oggReadAll(t, s)
	var durs []time.Duration
	for _, f := range got {
		durs = append(durs, f.Duration)
	}
	ms := time.Millisecond
	require.Equal(t, []time.Duration{20 * ms, 20 * ms, 60 * ms, 2500 * time.Microsecond, 120 * ms, 120 * ms, 10 * ms, 20 * ms}, durs)
	wav := oggOpusdec(t, out)
	require.InDelta(t, oggTotal(got)-oggSamplesDuration(312), wav.duration(), float64(time.Millisecond))
}

// TestOggSinkUnparseableTOC: Frame.Duration counts when the TOC is bad.
func TestOggSinkUnparseableTOC(t *testing.T) {
	out := oggWriteAll(t, []Frame{
		{Data: []byte{0xfb, 0x00}, Duration: 40 * time.Millisecond},
		{Data: []byte{0xfb, 0x00}},
		{Data: SilencePacket()},
	}, nil)
	pages := oggScanPages(t, out)
	require.Len(t, pages, 5)
	require.Equal(t, uint64(1920), pages[2].granule)
	require.Equal(t, uint64(1920+960), pages[3].granule)
	require.Equal(t, uint64(1920+960+960), pages[4].granule)
}

// TestOggSinkLargePacket: a packet larger than a page spans pages.
func TestOggSinkLargePacket(t *testing.T) {
	big := make([]byte, 255*255+1000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	exact := bytes.Repeat([]byte{9}, 255*255) // needs a page with one 0 segment
	out := oggWriteAll(t, []Frame{{Data: big}, {Data: exact}, {Data: SilencePacket()}}, nil)
	pages := oggScanPages(t, out)
	require.Len(t, pages, 2+2+2+1)
	require.Equal(t, oggNoGranule, pages[2].granule)
	require.Equal(t, byte(0), pages[2].flags)
	require.Equal(t, byte(oggFlagContinued), pages[3].flags)
	require.Equal(t, uint64(960), pages[3].granule)
	require.Equal(t, []byte{0}, pages[5].lacing)
	require.Equal(t, byte(oggFlagContinued), pages[5].flags)
	require.Equal(t, byte(oggFlagEOS), pages[6].flags)

	var d oggDemuxer
	d.reset(bytes.NewReader(out))
	require.NoError(t, d.startLink(nil))
	for _, want := range [][]byte{big, exact, SilencePacket()} {
		got, err := d.audioPacket()
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := d.audioPacket()
	require.ErrorIs(t, err, io.EOF)
}

func TestOggSinkOptions(t *testing.T) {
	_, err := NewOggSink(io.Discard, &OggSinkOptions{Channels: 3})
	require.Error(t, err)
	_, err = NewOggSink(io.Discard, &OggSinkOptions{PreSkip: 70000})
	require.Error(t, err)

	out := oggWriteAll(t, nil, &OggSinkOptions{PreSkip: 1000, InputSampleRate: 16000, Vendor: "me", Comments: []string{"A=1", "B=2"}})
	s, err := NewOggSource(bytes.NewReader(out), nil)
	require.NoError(t, err)
	require.Equal(t, OggHeader{
		Version: 1, Channels: 2, PreSkip: 1000, InputSampleRate: 16000,
		Vendor: "me", Comments: []string{"A=1", "B=2"},
	}, s.Head())

	// Serial 0 picks a random serial.
	a, b := oggScanPages(t, oggWriteAll(t, nil, nil)), oggScanPages(t, oggWriteAll(t, nil, nil))
	require.NotEqual(t, a[0].serial, b[0].serial)
}

// oggFailWriter fails from the n-th write on.
type oggFailWriter struct{ n int }

func (w *oggFailWriter) Write(p []byte) (int, error) {
	if w.n <= 0 {
		return 0, errors.New("disk full")
	}
	w.n--
	return len(p), nil
}

func TestOggSinkWriteError(t *testing.T) {
	_, err := NewOggSink(&oggFailWriter{n: 0}, nil)
	require.ErrorContains(t, err, "disk full")

	s, err := NewOggSink(&oggFailWriter{n: 3}, nil) // headers and one page
	require.NoError(t, err)
	require.NoError(t, s.WriteFrame(Frame{Data: SilencePacket()}))
	require.NoError(t, s.WriteFrame(Frame{Data: SilencePacket()}))
	err = s.WriteFrame(Frame{Data: SilencePacket()})
	require.ErrorContains(t, err, "disk full")
	require.Equal(t, err, s.WriteFrame(Frame{Data: SilencePacket()}))
	require.Equal(t, err, s.Close())
}

// TestOggSinkConcurrentClose: Close from another goroutine while frames
// are written (run with -race).
func TestOggSinkConcurrentClose(t *testing.T) {
	s, err := NewOggSink(io.Discard, nil)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if err := s.WriteFrame(Frame{Data: SilencePacket()}); err != nil {
				require.ErrorIs(t, err, ErrOggClosed)
				return
			}
		}
	})
	time.Sleep(5 * time.Millisecond)
	require.NoError(t, s.Close())
	wg.Wait()
}
