package audio

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
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Fixtures made as testdata/media/README.md says.
const (
	oggToneFixture  = "../testdata/media/tone.opus"       // 3 s, one packet per page
	oggMultiFixture = "../testdata/media/tone-multi.opus" // 2 s, many packets per page
)

func oggReadFixture(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// oggReadAll reads s until io.EOF and fails on any other error.
func oggReadAll(t testing.TB, s Source) []Frame {
	t.Helper()
	var out []Frame
	for {
		f, err := s.ReadFrame(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		out = append(out, f)
	}
}

func oggTotal(fs []Frame) time.Duration {
	var d time.Duration
	for _, f := range fs {
		d += f.Duration
	}
	return d
}

// oggTestPage encodes one Ogg page.
func oggTestPage(flags byte, granule uint64, serial, seq uint32, lacing, body []byte) []byte {
	b := []byte(oggCapture)
	b = append(b, 0, flags)
	b = binary.LittleEndian.AppendUint64(b, granule)
	b = binary.LittleEndian.AppendUint32(b, serial)
	b = binary.LittleEndian.AppendUint32(b, seq)
	b = append(b, 0, 0, 0, 0, byte(len(lacing)))
	b = append(b, lacing...)
	b = append(b, body...)
	binary.LittleEndian.PutUint32(b[22:], oggCRC(0, b))
	return b
}

// oggLacing returns the lacing values of one whole packet.
func oggLacing(p []byte) []byte {
	l := bytes.Repeat([]byte{255}, len(p)/255)
	return append(l, byte(len(p)%255))
}

// oggTestHead returns an OpusHead packet.
func oggTestHead(version, channels byte) []byte {
	h := []byte(oggOpusHeadMagic)
	h = append(h, version, channels)
	h = binary.LittleEndian.AppendUint16(h, 312)
	h = binary.LittleEndian.AppendUint32(h, 48000)
	return append(h, 0, 0, 0)
}

// oggTestTags returns an OpusTags packet.
func oggTestTags(vendor string, comments ...string) []byte {
	b := []byte(oggOpusTagsMagic)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(vendor)))
	b = append(b, vendor...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(comments)))
	for _, c := range comments {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(c)))
		b = append(b, c...)
	}
	return b
}

// oggPack builds an Ogg Opus stream with the given header packets and audio
// packets packed into pages of at most maxSegs segments each (packets span
// pages, pages hold several packets), independently of OggSink.
func oggPack(head, tags []byte, packets [][]byte, maxSegs int, serial uint32) []byte {
	var out []byte
	seq := uint32(0)
	out = append(out, oggTestPage(oggFlagBOS, 0, serial, seq, oggLacing(head), head)...)
	seq++
	out = oggPackPages(out, &seq, [][]byte{tags}, maxSegs, serial, false)
	return oggPackPages(out, &seq, packets, maxSegs, serial, true)
}

// oggPackPages appends pages of at most maxSegs segments holding packets.
func oggPackPages(out []byte, seq *uint32, packets [][]byte, maxSegs int, serial uint32, audio bool) []byte {
	type seg struct {
		data []byte
		end  bool // last segment of its packet
		gr   uint64
	}
	var segs []seg
	var granule uint64
	for _, p := range packets {
		if audio {
			n, err := oggPacketSamples(p)
			if err != nil {
				n = 960
			}
			granule += uint64(n)
		}
		l := oggLacing(p)
		off := 0
		for i, v := range l {
			segs = append(segs, seg{data: p[off : off+int(v)], end: i == len(l)-1, gr: granule})
			off += int(v)
		}
	}
	cont := false
	for len(segs) > 0 {
		n := min(maxSegs, len(segs))
		var lacing, body []byte
		gr := oggNoGranule
		for _, s := range segs[:n] {
			lacing = append(lacing, byte(len(s.data)))
			body = append(body, s.data...)
			if s.end {
				gr = s.gr
			}
		}
		flags := byte(0)
		if cont {
			flags |= oggFlagContinued
		}
		if audio && n == len(segs) {
			flags |= oggFlagEOS
		}
		out = append(out, oggTestPage(flags, gr, serial, *seq, lacing, body)...)
		*seq++
		cont = !segs[n-1].end
		segs = segs[n:]
	}
	return out
}

// oggPageInfo is a page as oggScanPages sees it.
type oggPageInfo struct {
	flags   byte
	granule uint64
	serial  uint32
	seq     uint32
	lacing  []byte
	body    []byte
}

// oggScanPages splits a well-formed Ogg stream into pages.
func oggScanPages(t testing.TB, b []byte) []oggPageInfo {
	t.Helper()
	var out []oggPageInfo
	for len(b) > 0 {
		require.GreaterOrEqual(t, len(b), oggHeaderLen)
		require.Equal(t, oggCapture, string(b[:4]))
		nseg := int(b[26])
		lacing := b[27 : 27+nseg]
		size := 0
		for _, l := range lacing {
			size += int(l)
		}
		end := 27 + nseg + size
		require.LessOrEqual(t, end, len(b))
		pg := append([]byte(nil), b[:end]...)
		crc := binary.LittleEndian.Uint32(pg[22:])
		binary.LittleEndian.PutUint32(pg[22:], 0)
		require.Equal(t, oggCRC(0, pg), crc, "page %d CRC", len(out))
		out = append(out, oggPageInfo{
			flags:   b[5],
			granule: binary.LittleEndian.Uint64(b[6:]),
			serial:  binary.LittleEndian.Uint32(b[14:]),
			seq:     binary.LittleEndian.Uint32(b[18:]),
			lacing:  lacing,
			body:    b[27+nseg : end],
		})
		b = b[end:]
	}
	return out
}

// oggNeedOpusdec returns the path of opusdec; without it the test is
// skipped, or fails in CI (CI set).
func oggNeedOpusdec(t *testing.T) string {
	return testtool.Need(t, "opusdec", "opus-tools")
}

// oggWAV is decoded audio.
type oggWAV struct {
	channels, rate int
	samples        []int16 // interleaved
}

func (w oggWAV) duration() time.Duration {
	return time.Duration(len(w.samples)/w.channels) * time.Second / time.Duration(w.rate)
}

// oggOpusdec decodes the Ogg Opus data with opusdec and parses the WAV.
func oggOpusdec(t *testing.T, data []byte, extra ...string) oggWAV {
	t.Helper()
	bin := oggNeedOpusdec(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.opus"), filepath.Join(dir, "out.wav")
	require.NoError(t, os.WriteFile(in, data, 0o644))
	args := append([]string{"--quiet"}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	msg, err := exec.CommandContext(ctx, bin, append(args, in, out)...).CombinedOutput()
	require.NoError(t, err, "opusdec: %s", msg)
	wav, err := os.ReadFile(out)
	require.NoError(t, err)
	return oggParseWAV(t, wav)
}

func oggParseWAV(t *testing.T, b []byte) oggWAV {
	t.Helper()
	require.GreaterOrEqual(t, len(b), 12)
	require.Equal(t, "RIFF", string(b[:4]))
	require.Equal(t, "WAVE", string(b[8:12]))
	var w oggWAV
	b = b[12:]
	for len(b) >= 8 {
		id, size := string(b[:4]), int(binary.LittleEndian.Uint32(b[4:]))
		b = b[8:]
		switch id {
		case "fmt ":
			require.GreaterOrEqual(t, len(b), 16)
			w.channels = int(binary.LittleEndian.Uint16(b[2:]))
			w.rate = int(binary.LittleEndian.Uint32(b[4:]))
			require.Equal(t, 16, int(binary.LittleEndian.Uint16(b[14:])), "bits per sample")
		case "data":
			size = min(size, len(b))
			for i := 0; i+1 < size; i += 2 {
				w.samples = append(w.samples, int16(binary.LittleEndian.Uint16(b[i:])))
			}
			require.NotZero(t, w.channels, "fmt chunk before data")
			return w
		}
		if size > len(b) {
			break
		}
		b = b[size+size%2:]
	}
	t.Fatal("no data chunk in WAV")
	return w
}
