package audio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/stretchr/testify/require"
)

func TestOggSourceFixtures(t *testing.T) {
	for _, tc := range []struct {
		path    string
		length  time.Duration
		packets int
	}{
		// opusenc encodes the pre-skip too: ceil((3 s + 312)/20 ms) packets.
		{oggToneFixture, 3 * time.Second, 151},
		{oggMultiFixture, 2 * time.Second, 101},
	} {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			s, err := OpenOggSource(tc.path, nil)
			require.NoError(t, err)
			defer s.Close()
			h := s.Head()
			require.Equal(t, uint8(1), h.Version)
			require.Equal(t, 2, h.Channels)
			require.Equal(t, 312, h.PreSkip)
			require.Equal(t, uint32(48000), h.InputSampleRate)
			require.Contains(t, h.Vendor, "libopus")
			require.NotEmpty(t, h.Comments)

			frames := oggReadAll(t, s)
			require.Len(t, frames, tc.packets)
			require.InDelta(t, tc.length, oggTotal(frames), float64(40*time.Millisecond))
			for i, f := range frames {
				require.Equal(t, 20*time.Millisecond, f.Duration, "frame %d", i)
				require.NotEmpty(t, f.Data)
			}
			// EOF is final.
			_, err = s.ReadFrame(context.Background())
			require.ErrorIs(t, err, io.EOF)
		})
	}
}

// TestOggSourceMultiFixtureLayout proves the second fixture needs packet
// reassembly: its audio pages hold many packets each.
func TestOggSourceMultiFixtureLayout(t *testing.T) {
	pages := oggScanPages(t, oggReadFixture(t, oggMultiFixture))
	most := 0
	for _, p := range pages[2:] {
		n := 0
		for _, l := range p.lacing {
			if l < 255 {
				n++
			}
		}
		most = max(most, n)
	}
	require.Greater(t, most, 10, "packets on the fullest page")
	require.Less(t, len(pages), 20)
}

// TestOggSourceMatchesPion compares the one-packet-per-page fixture with
// what pion's oggreader (an independent parser, pages only) returns.
func TestOggSourceMatchesPion(t *testing.T) {
	data := oggReadFixture(t, oggToneFixture)
	r, _, err := oggreader.NewWith(bytes.NewReader(data))
	require.NoError(t, err)
	var want [][]byte
	for {
		payload, _, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if bytes.HasPrefix(payload, []byte(oggOpusTagsMagic)) {
			continue
		}
		want = append(want, payload)
	}
	s, err := NewOggSource(bytes.NewReader(data), nil)
	require.NoError(t, err)
	frames := oggReadAll(t, s)
	require.Len(t, frames, len(want))
	for i := range want {
		require.Equal(t, want[i], frames[i].Data, "packet %d", i)
	}
}

// TestOggSourceReassembly repacks the fixture's packets into pages of many
// sizes (packets spanning pages, several per page, 255-byte multiples) and
// checks the same packets come out.
func TestOggSourceReassembly(t *testing.T) {
	s, err := OpenOggSource(oggMultiFixture, nil)
	require.NoError(t, err)
	frames := oggReadAll(t, s)
	require.NoError(t, s.Close())
	var packets [][]byte
	for _, f := range frames {
		packets = append(packets, f.Data)
	}
	// Packets whose lengths sit on lacing boundaries.
	for _, n := range []int{254, 255, 256, 510, 765, 1021} {
		p := make([]byte, n+1)
		p[0] = 0xf8 // CELT FB 20 ms, code 0
		for i := range p[1:] {
			p[1+i] = byte(i)
		}
		packets = append(packets, p[:min(len(p), 1276)])
	}
	head, tags := oggTestHead(1, 2), oggTestTags("test", "A=b")
	for _, maxSegs := range []int{1, 2, 3, 7, 64, 254, 255} {
		data := oggPack(head, tags, packets, maxSegs, 0x1234)
		src, err := NewOggSource(bytes.NewReader(data), nil)
		require.NoError(t, err, "maxSegs %d", maxSegs)
		require.Equal(t, []string{"A=b"}, src.Head().Comments)
		got := oggReadAll(t, src)
		require.Len(t, got, len(packets), "maxSegs %d", maxSegs)
		for i := range packets {
			require.Equal(t, packets[i], got[i].Data, "maxSegs %d packet %d", maxSegs, i)
		}
	}
}

// TestOggSourceTagsSpanPages: an OpusTags packet larger than a page.
func TestOggSourceTagsSpanPages(t *testing.T) {
	big := "COVER=" + strings.Repeat("x", 100000)
	data := oggPack(oggTestHead(1, 1), oggTestTags("v", big), [][]byte{SilencePacket()}, 255, 7)
	s, err := NewOggSource(bytes.NewReader(data), nil)
	require.NoError(t, err)
	require.Equal(t, []string{big}, s.Head().Comments)
	require.Len(t, oggReadAll(t, s), 1)
}

// TestOggSourceChainedAndMultiplexed: a chained file plays through, and
// pages of another multiplexed logical stream are skipped.
func TestOggSourceChainedAndMultiplexed(t *testing.T) {
	a := oggPack(oggTestHead(1, 2), oggTestTags("a"), [][]byte{{0xf8, 1}, {0xf8, 2}}, 255, 1)
	b := oggPack(oggTestHead(1, 1), oggTestTags("b"), [][]byte{{0xf8, 3}}, 255, 2)

	// A foreign stream: its BOS page beside ours, a data page in between.
	foreignBOS := oggTestPage(oggFlagBOS, 0, 99, 0, []byte{8}, []byte("fishead\x00"))
	foreignData := oggTestPage(oggFlagEOS, 0, 99, 1, []byte{3}, []byte("xyz"))
	pagesA := oggScanPages(t, a)
	var mux []byte
	mux = append(mux, a[:27+len(pagesA[0].lacing)+len(pagesA[0].body)]...)
	mux = append(mux, foreignBOS...)
	rest := a[len(mux)-len(foreignBOS):]
	mux = append(mux, foreignData...)
	mux = append(mux, rest...)

	s, err := NewOggSource(bytes.NewReader(append(mux, b...)), nil)
	require.NoError(t, err)
	require.Equal(t, "a", s.Head().Vendor)
	frames := oggReadAll(t, s)
	require.Len(t, frames, 3)
	for i, f := range frames {
		require.Equal(t, []byte{0xf8, byte(i + 1)}, f.Data)
	}
	require.Equal(t, "b", s.Head().Vendor)
	require.Equal(t, 1, s.Head().Channels)
}

func TestOggSourcePaced(t *testing.T) {
	s, err := OpenOggSource(oggToneFixture, &OggSourceOptions{Paced: true})
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	start := time.Now()
	const n = 10
	var sum time.Duration
	for i := range n {
		f, err := s.ReadFrame(ctx)
		require.NoError(t, err)
		if i < n-1 {
			sum += f.Duration
		}
	}
	// Lower bound only: frame n-1 is due after the first n-1 durations.
	require.GreaterOrEqual(t, time.Since(start), sum-time.Millisecond)
}

func TestOggSourceLoop(t *testing.T) {
	data := oggReadFixture(t, oggMultiFixture)
	once, err := NewOggSource(bytes.NewReader(data), nil)
	require.NoError(t, err)
	want := oggReadAll(t, once)

	for name, r := range map[string]func() io.Reader{
		"seekable":     func() io.Reader { return bytes.NewReader(data) },
		"not seekable": func() io.Reader { return struct{ io.Reader }{bytes.NewReader(data)} },
		"seekable at offset": func() io.Reader {
			r := bytes.NewReader(append([]byte("junk"), data...))
			_, _ = r.Seek(4, io.SeekStart)
			return r
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := NewOggSource(r(), &OggSourceOptions{Loop: true})
			require.NoError(t, err)
			for i := range 5*len(want)/2 + 1 {
				f, err := s.ReadFrame(context.Background())
				require.NoError(t, err, "frame %d", i)
				require.Equal(t, want[i%len(want)], f, "frame %d", i)
			}
		})
	}
}

// TestOggSourceLoopPaced: paced time runs on across the restart.
func TestOggSourceLoopPaced(t *testing.T) {
	packets := [][]byte{{0xf8, 1}, {0xf8, 2}, {0xf8, 3}} // 20 ms each
	data := oggPack(oggTestHead(1, 1), oggTestTags("v"), packets, 255, 1)
	s, err := NewOggSource(bytes.NewReader(data), &OggSourceOptions{Loop: true, Paced: true})
	require.NoError(t, err)
	start := time.Now()
	for i := range 8 {
		f, err := s.ReadFrame(context.Background())
		require.NoError(t, err)
		require.Equal(t, packets[i%3], f.Data)
	}
	require.GreaterOrEqual(t, time.Since(start), 7*20*time.Millisecond-time.Millisecond)
}

// TestOggSourceLoopEmpty: looping a file without audio packets ends.
func TestOggSourceLoopEmpty(t *testing.T) {
	data := oggPack(oggTestHead(1, 1), oggTestTags("v"), nil, 255, 1)
	s, err := NewOggSource(bytes.NewReader(data), &OggSourceOptions{Loop: true})
	require.NoError(t, err)
	_, err = s.ReadFrame(context.Background())
	require.ErrorIs(t, err, io.EOF)
}

func TestOggSourceContextCancel(t *testing.T) {
	s, err := OpenOggSource(oggToneFixture, &OggSourceOptions{Paced: true})
	require.NoError(t, err)
	defer s.Close()

	// An ended ctx returns at once, before reading.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.ReadFrame(ctx)
	require.ErrorIs(t, err, context.Canceled)

	first, err := s.ReadFrame(context.Background())
	require.NoError(t, err)
	s.pace.next = time.Hour // the next frame is due in an hour

	ctx, cancel = context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := s.ReadFrame(ctx)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second): // hang guard, not a timing check
		t.Fatal("ReadFrame did not return after cancel")
	}

	// Cancellation is not final: the frame is still there, and comes when due.
	s.pace.next = 0
	f, err := s.ReadFrame(context.Background())
	require.NoError(t, err)
	require.NotEqual(t, first.Data, f.Data)
}

func TestOggSourceCloseWhileWaiting(t *testing.T) {
	s, err := OpenOggSource(oggToneFixture, &OggSourceOptions{Paced: true})
	require.NoError(t, err)
	_, err = s.ReadFrame(context.Background())
	require.NoError(t, err)
	s.pace.next = time.Hour
	errc := make(chan error, 1)
	go func() {
		_, err := s.ReadFrame(context.Background())
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, s.Close())
	select {
	case err := <-errc:
		require.ErrorIs(t, err, ErrOggClosed)
	case <-time.After(10 * time.Second): // hang guard
		t.Fatal("ReadFrame did not return after Close")
	}
	require.NoError(t, s.Close())
	_, err = s.ReadFrame(context.Background())
	require.ErrorIs(t, err, ErrOggClosed)
}

func TestOggSourceOpenErrors(t *testing.T) {
	_, err := OpenOggSource(filepath.Join(t.TempDir(), "missing.opus"), nil)
	require.ErrorIs(t, err, os.ErrNotExist)

	p := filepath.Join(t.TempDir(), "bad.opus")
	require.NoError(t, os.WriteFile(p, []byte("RIFF....WAVE"), 0o644))
	_, err = OpenOggSource(p, nil)
	require.ErrorIs(t, err, ErrNotOgg)
	require.Contains(t, err.Error(), p)
}

// oggBadInput builds a stream from its parts for TestOggSourceBadInput.
func oggBadInput(head, tags []byte, audio ...[]byte) []byte {
	return oggPack(head, tags, audio, 255, 5)
}

func TestOggSourceBadInput(t *testing.T) {
	good := oggBadInput(oggTestHead(1, 2), oggTestTags("v"), []byte{0xf8, 1}, []byte{0xf8, 2})
	pages := oggScanPages(t, good)
	pageLen := func(i int) int { return 27 + len(pages[i].lacing) + len(pages[i].body) }
	firstTwo := pageLen(0) + pageLen(1)
	flip := func(off int) []byte {
		b := bytes.Clone(good)
		b[off] ^= 0x40
		return b
	}
	withPage := func(p []byte) []byte { return append(bytes.Clone(good[:firstTwo]), p...) }
	multistream := append(oggTestHead(1, 2)[:18], 1, 2, 1, 0, 1) // family 1, 2 streams
	family1 := append(oggTestHead(1, 2)[:18], 1, 1, 1, 0, 1)     // family 1, 1 coupled stream
	tooManyFamily1 := append(oggTestHead(1, 9)[:18], 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	fishead := oggTestPage(oggFlagBOS, 0, 9, 0, []byte{8}, []byte("fishead\x00"))

	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty file", nil, ErrNotOgg},
		{"not Ogg", []byte("RIFF\x24\x00\x00\x00WAVEfmt "), ErrNotOgg},
		{"short not Ogg", []byte("Ox"), ErrNotOgg},
		{"only a capture pattern", []byte("Og"), ErrOggTruncated},
		{"truncated page header", good[:10], ErrOggTruncated},
		{"truncated segment table", good[:27], ErrOggTruncated},
		{"truncated page body", good[:pageLen(0)-3], ErrOggTruncated},
		{"truncated last page", good[:len(good)-1], ErrOggTruncated},
		{"lacing sum larger than the data", withPage(oggTestPage(0, 0, 5, 2, []byte{200}, []byte{0xf8, 1, 2})), ErrOggTruncated},
		{"bad CRC in header page", flip(22), ErrOggCRC},
		{"bad CRC from body byte", flip(pageLen(0) - 1), ErrOggCRC},
		{"bad CRC in audio page", flip(len(good) - 1), ErrOggCRC},
		{"lost capture pattern", append(bytes.Clone(good[:firstTwo]), []byte("XggS and more bytes than a page header.....")...), ErrOggCorrupt},
		{"Ogg version 1", func() []byte { b := bytes.Clone(good); b[4] = 1; return b }(), ErrOggCorrupt},
		{"OpusHead missing", oggTestPage(oggFlagBOS, 0, 9, 0, []byte{8}, []byte("fishead\x00")), ErrOggNotOpus},
		{"OpusHead missing, data page", append(bytes.Clone(fishead), oggTestPage(0, 0, 9, 1, []byte{1}, []byte{1})...), ErrOggNotOpus},
		{"first page not BOS", oggTestPage(0, 0, 5, 0, oggLacing(oggTestHead(1, 2)), oggTestHead(1, 2)), ErrOggNotOpus},
		{"OpusHead bad version 0", oggBadInput(oggTestHead(0, 2), oggTestTags("v")), ErrOggBadHeader},
		{"OpusHead bad version 16", oggBadInput(oggTestHead(16, 2), oggTestTags("v")), ErrOggBadHeader},
		{"OpusHead 0 channels", oggBadInput(oggTestHead(1, 0), oggTestTags("v")), ErrOggBadHeader},
		{"OpusHead family 0 with 3 channels", oggBadInput(oggTestHead(1, 3), oggTestTags("v")), ErrOggBadHeader},
		{"OpusHead short", oggBadInput(oggTestHead(1, 2)[:18], oggTestTags("v")), ErrOggBadHeader},
		{"OpusHead family 1 short", oggBadInput(append(oggTestHead(1, 2)[:18], 1, 1), oggTestTags("v")), ErrOggBadHeader},
		{"OpusHead family 1 with 9 channels", oggBadInput(tooManyFamily1, oggTestTags("v")), ErrOggBadHeader},
		{"OpusHead bad mapping", oggBadInput(append(oggTestHead(1, 2)[:18], 1, 1, 1, 0, 7), oggTestTags("v")), ErrOggBadHeader},
		{"multistream", oggBadInput(multistream, oggTestTags("v")), ErrOggBadHeader},
		{"OpusHead with a second packet", append(oggTestPage(oggFlagBOS, 0, 5, 0, []byte{19, 1}, append(oggTestHead(1, 2), 0)), good[pageLen(0):]...), ErrOggBadHeader},
		{"OpusHead page ends the stream", oggTestPage(oggFlagBOS|oggFlagEOS, 0, 5, 0, []byte{19}, oggTestHead(1, 2)), ErrOggBadHeader},
		{"OpusTags missing", good[:pageLen(0)], ErrOggBadHeader},
		{"OpusTags wrong magic", oggBadInput(oggTestHead(1, 2), []byte("OpusTagz\x00\x00\x00\x00\x00\x00\x00\x00")), ErrOggBadHeader},
		{"OpusTags vendor length past end", oggBadInput(oggTestHead(1, 2), []byte("OpusTags\xff\x00\x00\x00v")), ErrOggBadHeader},
		{"OpusTags no comment count", oggBadInput(oggTestHead(1, 2), []byte("OpusTags\x01\x00\x00\x00v")), ErrOggBadHeader},
		{"OpusTags comment count past end", oggBadInput(oggTestHead(1, 2), []byte("OpusTags\x01\x00\x00\x00v\xff\xff\xff\xff")), ErrOggBadHeader},
		{"OpusTags comment length past end", oggBadInput(oggTestHead(1, 2), []byte("OpusTags\x01\x00\x00\x00v\x01\x00\x00\x00\x09\x00\x00\x00ab")), ErrOggBadHeader},
		{"TOC code 3 with zero frames", oggBadInput(oggTestHead(1, 2), oggTestTags("v"), []byte{0xfb, 0x00}), ErrOggBadPacket},
		{"TOC code 3 over 120 ms", oggBadInput(oggTestHead(1, 2), oggTestTags("v"), []byte{0xfb, 0x07}), ErrOggBadPacket},
		{"TOC code 3 without count byte", oggBadInput(oggTestHead(1, 2), oggTestTags("v"), []byte{0xfb}), ErrOggBadPacket},
		{"TOC code 1 odd length", oggBadInput(oggTestHead(1, 2), oggTestTags("v"), []byte{0xf9, 1, 2, 3}), ErrOggBadPacket},
		{"TOC code 2 first frame too long", oggBadInput(oggTestHead(1, 2), oggTestTags("v"), []byte{0xfa, 9, 1}), ErrOggBadPacket},
		{"empty audio packet", oggBadInput(oggTestHead(1, 2), oggTestTags("v"), []byte{}), ErrOggBadPacket},
		{"continuation without open packet", withPage(oggTestPage(oggFlagContinued, 0, 5, 2, []byte{2}, []byte{0xf8, 1})), ErrOggCorrupt},
		{"open packet not continued", withPage(append(oggTestPage(0, oggNoGranule, 5, 2, []byte{255}, make([]byte, 255)), oggTestPage(0, 0, 5, 3, []byte{1}, []byte{1})...)), ErrOggCorrupt},
		{"input ends inside a packet", withPage(oggTestPage(0, oggNoGranule, 5, 2, []byte{255}, make([]byte, 255))), ErrOggTruncated},
		{"stream ends inside a packet", withPage(oggTestPage(oggFlagEOS, oggNoGranule, 5, 2, []byte{255}, make([]byte, 255))), ErrOggTruncated},
		{"page sequence gap", withPage(oggTestPage(0, 960, 5, 3, []byte{2}, []byte{0xf8, 1})), ErrOggCorrupt},
		{"second BOS page for the stream", withPage(oggTestPage(oggFlagBOS, 960, 5, 2, []byte{2}, []byte{0xf8, 1})), ErrOggCorrupt},
		{"page after end of stream", append(bytes.Clone(good), oggTestPage(0, 0, 5, 5, []byte{2}, []byte{0xf8, 1})...), ErrOggCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := oggReadToError(tc.data)
			require.ErrorIs(t, err, tc.want)
			t.Log(err)
		})
	}

	t.Run("family 1 single stream is fine", func(t *testing.T) {
		s, err := NewOggSource(bytes.NewReader(oggBadInput(family1, oggTestTags("v"), []byte{0xf8, 1})), nil)
		require.NoError(t, err)
		require.Len(t, oggReadAll(t, s), 1)
	})
	t.Run("packet too large", func(t *testing.T) {
		var b []byte
		seq := uint32(2)
		for range oggMaxAudioPacket/(255*255) + 1 {
			lacing := bytes.Repeat([]byte{255}, 255)
			flags := byte(0)
			if seq > 2 {
				flags = oggFlagContinued
			}
			b = append(b, oggTestPage(flags, oggNoGranule, 5, seq, lacing, make([]byte, 255*255))...)
			seq++
		}
		require.ErrorIs(t, oggReadToError(withPage(b)), ErrOggCorrupt)
	})
}

// oggReadToError reads data as an Ogg Opus stream until an error and
// returns it (io.EOF included), giving up after a bound.
func oggReadToError(data []byte) error {
	s, err := NewOggSource(bytes.NewReader(data), nil)
	if err != nil {
		return err
	}
	for range 100000 {
		if _, err := s.ReadFrame(context.Background()); err != nil {
			return err
		}
	}
	return errors.New("no error after 100000 frames")
}

func TestOggSourceErrorsAreFinal(t *testing.T) {
	data := oggBadInput(oggTestHead(1, 2), oggTestTags("v"), []byte{0xf8, 1}, []byte{0xfb, 0}, []byte{0xf8, 2})
	s, err := NewOggSource(bytes.NewReader(data), nil)
	require.NoError(t, err)
	_, err = s.ReadFrame(context.Background())
	require.NoError(t, err)
	_, err = s.ReadFrame(context.Background())
	require.ErrorIs(t, err, ErrOggBadPacket)
	_, err2 := s.ReadFrame(context.Background())
	require.Equal(t, err, err2)
}

// oggFailReader fails after n bytes.
type oggFailReader struct {
	r io.Reader
	n int
}

func (f *oggFailReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestOggSourceReadError(t *testing.T) {
	data := oggReadFixture(t, oggToneFixture)
	s, err := NewOggSource(&oggFailReader{r: bytes.NewReader(data), n: 2000}, nil)
	require.NoError(t, err)
	for {
		_, err = s.ReadFrame(context.Background())
		if err != nil {
			break
		}
	}
	require.ErrorContains(t, err, "disk on fire")
	require.NotErrorIs(t, err, io.EOF)
}
