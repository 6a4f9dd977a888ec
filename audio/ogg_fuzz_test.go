package audio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// oggSentinels are the errors every failure of OggSource must wrap.
var oggSentinels = []error{ErrNotOgg, ErrOggTruncated, ErrOggCRC, ErrOggCorrupt, ErrOggNotOpus, ErrOggBadHeader, ErrOggBadPacket}

// FuzzOggSource reads arbitrary bytes as Ogg Opus: it must end, with io.EOF
// or a classified error, never panic or hang; what reads cleanly must
// survive a trip through OggSink and loop identically.
func FuzzOggSource(f *testing.F) {
	// The seed corpus in testdata/fuzz/FuzzOggSource holds pieces of the
	// fixtures (see TestOggWriteFuzzCorpus); the whole fixtures are left
	// out, as minimizing inputs that large stalls the fuzzer.
	f.Fuzz(func(t *testing.T, data []byte) {
		oggFuzzOne(t, data)
		// Random mutations nearly always break a page CRC; check the same
		// bytes with the CRCs made right too, to reach the parsing past it.
		if fixed := oggFixCRCs(data); !bytes.Equal(fixed, data) {
			oggFuzzOne(t, fixed)
		}
	})
}

// oggFixCRCs returns data with the CRC of each whole page it can find,
// walking from the start, recomputed.
func oggFixCRCs(data []byte) []byte {
	b := bytes.Clone(data)
	for off := 0; len(b)-off >= oggHeaderLen && string(b[off:off+4]) == oggCapture; {
		nseg := int(b[off+26])
		if len(b)-off < oggHeaderLen+nseg {
			break
		}
		size := 0
		for _, l := range b[off+27 : off+27+nseg] {
			size += int(l)
		}
		end := off + oggHeaderLen + nseg + size
		if end > len(b) {
			break
		}
		clear(b[off+22 : off+26])
		binary.LittleEndian.PutUint32(b[off+22:], oggCRC(0, b[off:end]))
		off = end
	}
	return b
}

// oggFuzzOne checks one input. It avoids testify: rendering a diff of
// large values can take longer than the fuzzer waits for a worker.
func oggFuzzOne(t *testing.T, data []byte) {
	ctx := context.Background()
	s, err := NewOggSource(bytes.NewReader(data), nil)
	if err != nil {
		oggRequireClassified(t, err)
		return
	}
	var frames []Frame
	for {
		// Every packet takes at least one byte of input.
		if len(frames) > len(data) {
			t.Fatalf("%d frames from %d bytes", len(frames), len(data))
		}
		fr, err := s.ReadFrame(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			oggRequireClassified(t, err)
			return
		}
		if len(fr.Data) == 0 || fr.Duration <= 0 || fr.Duration > 120*time.Millisecond {
			t.Fatalf("frame %d: %d bytes, %v", len(frames), len(fr.Data), fr.Duration)
		}
		frames = append(frames, fr)
	}
	if len(frames) == 0 {
		return
	}

	// Round trip through the sink.
	var buf bytes.Buffer
	sink, err := NewOggSink(&buf, &OggSinkOptions{Serial: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, fr := range frames {
		if err := sink.WriteFrame(fr); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	back, err := NewOggSource(bytes.NewReader(buf.Bytes()), nil)
	if err != nil {
		t.Fatalf("reading the sink's output: %v", err)
	}
	for i := range len(frames) + 1 {
		fr, err := back.ReadFrame(ctx)
		if i == len(frames) {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after the round trip: %d frames, then %v", len(frames), err)
			}
			break
		}
		if err != nil || !oggFrameEqual(fr, frames[i]) {
			t.Fatalf("round trip frame %d: %v", i, err)
		}
	}

	// Loop, seekable and not: the same frames, over and over.
	for _, r := range []io.Reader{bytes.NewReader(data), struct{ io.Reader }{bytes.NewReader(data)}} {
		loop, err := NewOggSource(r, &OggSourceOptions{Loop: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2*len(frames) + 1 {
			fr, err := loop.ReadFrame(ctx)
			if err != nil || !oggFrameEqual(fr, frames[i%len(frames)]) {
				t.Fatalf("looped frame %d: %v", i, err)
			}
		}
	}
}

func oggFrameEqual(a, b Frame) bool {
	return a.Duration == b.Duration && bytes.Equal(a.Data, b.Data)
}

func oggRequireClassified(t *testing.T, err error) {
	t.Helper()
	for _, s := range oggSentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("unclassified error: %v", err)
}

// TestOggWriteFuzzCorpus regenerates the committed seed corpus of
// FuzzOggSource (testdata/fuzz/FuzzOggSource) from the fixtures when
// OGG_WRITE_FUZZ_CORPUS=1; otherwise it checks the corpus is there.
func TestOggWriteFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzOggSource")
	if os.Getenv("OGG_WRITE_FUZZ_CORPUS") != "1" {
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.NotEmpty(t, entries)
		return
	}
	tone := oggReadFixture(t, oggToneFixture)
	tonePages := oggScanPages(t, tone)
	prefix := func(b []byte, pages []oggPageInfo, n int) []byte {
		end := 0
		for _, p := range pages[:n] {
			end += 27 + len(p.lacing) + len(p.body)
		}
		return bytes.Clone(b[:end])
	}
	short := prefix(tone, tonePages, 4) // OpusHead, OpusTags, two audio pages
	lastPage := len(short) - (27 + len(tonePages[3].lacing) + len(tonePages[3].body))

	src, err := OpenOggSource(oggMultiFixture, nil)
	require.NoError(t, err)
	var packets [][]byte
	for range 8 {
		fr, err := src.ReadFrame(context.Background())
		require.NoError(t, err)
		packets = append(packets, fr.Data)
	}
	require.NoError(t, src.Close())
	head, tags := oggTestHead(1, 2), oggTestTags("fuzz", "A=b")

	mutate := func(b []byte, off int, x byte) []byte {
		b = bytes.Clone(b)
		b[off] ^= x
		return b
	}
	seeds := map[string][]byte{
		"empty":                nil,
		"capture-only":         []byte("OggS"),
		"tone-4-pages":         short,
		"tone-truncated-body":  short[:len(short)-5],
		"tone-truncated-head":  short[:lastPage+10],
		"tone-truncated-table": short[:lastPage+27],
		"tone-bad-crc":         mutate(short, lastPage+22, 1),
		"tone-lacing-past-end": mutate(short, lastPage+27, 0x80),
		"tone-bad-toc":         oggFixCRCs(mutate(short, len(short)-int(tonePages[3].lacing[0]), 0x03)),
		"tone-no-bos":          oggFixCRCs(mutate(short, 5, oggFlagBOS)),
		"tone-tags-page-only":  prefix(tone, tonePages, 2),
		"spanning-pages":       oggPack(head, tags, packets, 2, 3),
		"many-per-page":        oggPack(head, tags, packets, 255, 4),
		"chained": append(oggPack(head, tags, packets[:2], 255, 5),
			oggPack(oggTestHead(1, 1), tags, packets[2:3], 1, 6)...),
		"toc-code3-zero": oggPack(head, tags, [][]byte{{0xfb, 0}}, 255, 7),
		"toc-code3-vbr":  oggPack(head, tags, [][]byte{{0xfb, 0xc2, 1, 2, 0xaa, 0xbb, 0xcc, 0}}, 255, 8),
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for name, b := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
}
