package audio

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// OggSinkOptions configures an OggSink. The zero value (or nil) gives the
// defaults below.
type OggSinkOptions struct {
	// Channels is the OpusHead output channel count, 1 or 2; 0 means 2.
	// (Channel mapping family 0, RFC 7845 §5.1.1.1: the packets of a call
	// are single Opus streams, mono or stereo.)
	Channels int
	// PreSkip is the number of 48 kHz samples a decoder drops at the start
	// (RFC 7845 §4.2); 0 means 312 (6.5 ms, libopus's encoder delay) and a
	// negative value means none.
	PreSkip int
	// InputSampleRate is written to OpusHead for information; 0 means 48000.
	InputSampleRate uint32
	// Serial is the Ogg logical stream serial number; 0 picks a random one
	// (RFC 3533 §6).
	Serial uint32
	// Vendor is the OpusTags vendor string; "" means "smpcall".
	Vendor string
	// Comments are OpusTags user comments, each "NAME=value" (RFC 7845 §5.2).
	Comments []string
}

// oggMaxLostFill caps the audio time one empty frame stands for.
const oggMaxLostFill = 10 * time.Second

// OggSink is a Sink that writes the frames it is given, each an Opus packet,
// as an Ogg Opus file (RFC 7845, https://www.rfc-editor.org/rfc/rfc7845;
// Ogg, RFC 3533, https://www.rfc-editor.org/rfc/rfc3533): an OpusHead page,
// an OpusTags page, then one page per packet (a packet larger than a page
// can hold continues on the next pages) with the granule position of its
// end in 48 kHz samples, counted from each packet's TOC duration (RFC 6716
// §3.1), or from Frame.Duration when the TOC cannot be parsed. A frame with
// empty Data is written as a packet of lost frames of its Duration, which
// decoders conceal, so the timeline stays intact (up to 10 s per frame). A
// sink closed without frames writes silence trimmed to a playback length of
// 0, as opusenc does, for decoders reject a stream without audio packets.
//
// The page of the latest packet is held back until the next WriteFrame or
// Close, so that Close can mark it end-of-stream.
//
// Concurrency: WriteFrame is meant to be called from one goroutine (frames
// are written in call order); all methods are safe to call concurrently, so
// Close may come from another goroutine. After Close, WriteFrame returns
// ErrOggClosed. A write error is final: it is returned by every later call.
type OggSink struct {
	mu      sync.Mutex
	w       io.Writer
	bw      *bufio.Writer // for CreateOggSink
	file    *os.File      // for CreateOggSink
	serial  uint32
	preSkip int
	seq     uint32
	granule uint64
	pending []byte // packet whose page is not written yet
	pendGr  uint64
	hasPend bool
	closed  bool
	err     error
	page    []byte // page buffer
}

// NewOggSink writes the Ogg Opus header pages to w and returns a sink that
// writes the audio pages to it. Close does not close w. opts may be nil.
func NewOggSink(w io.Writer, opts *OggSinkOptions) (*OggSink, error) {
	var o OggSinkOptions
	if opts != nil {
		o = *opts
	}
	switch o.Channels {
	case 0:
		o.Channels = 2
	case 1, 2:
	default:
		return nil, fmt.Errorf("audio: OggSink: %d channels (want 1 or 2)", o.Channels)
	}
	switch {
	case o.PreSkip == 0:
		o.PreSkip = 312
	case o.PreSkip < 0:
		o.PreSkip = 0
	case o.PreSkip > 0xffff:
		return nil, fmt.Errorf("audio: OggSink: pre-skip %d does not fit 16 bits", o.PreSkip)
	}
	if o.InputSampleRate == 0 {
		o.InputSampleRate = oggOpusRate
	}
	if o.Vendor == "" {
		o.Vendor = "smpcall"
	}
	if o.Serial == 0 {
		var b [4]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		o.Serial = binary.LittleEndian.Uint32(b[:])
	}
	s := &OggSink{w: w, serial: o.Serial, preSkip: o.PreSkip}

	// OpusHead, RFC 7845 §5.1.
	head := make([]byte, oggOpusHeadLen)
	copy(head, oggOpusHeadMagic)
	head[8] = 1 // version
	head[9] = byte(o.Channels)
	binary.LittleEndian.PutUint16(head[10:], uint16(o.PreSkip))
	binary.LittleEndian.PutUint32(head[12:], o.InputSampleRate)
	// output gain 0, channel mapping family 0
	if err := s.writePacket(head, 0, oggFlagBOS); err != nil {
		return nil, err
	}

	// OpusTags, RFC 7845 §5.2.
	tags := append([]byte(nil), oggOpusTagsMagic...)
	tags = binary.LittleEndian.AppendUint32(tags, uint32(len(o.Vendor)))
	tags = append(tags, o.Vendor...)
	tags = binary.LittleEndian.AppendUint32(tags, uint32(len(o.Comments)))
	for _, c := range o.Comments {
		tags = binary.LittleEndian.AppendUint32(tags, uint32(len(c)))
		tags = append(tags, c...)
	}
	if err := s.writePacket(tags, 0, 0); err != nil {
		return nil, err
	}
	return s, nil
}

// CreateOggSink creates (or truncates) the file at path and writes an Ogg
// Opus stream to it; see NewOggSink. Close flushes and closes the file.
func CreateOggSink(path string, opts *OggSinkOptions) (*OggSink, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(f, 32<<10)
	s, err := NewOggSink(bw, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	s.bw, s.file = bw, f
	return s, nil
}

// WriteFrame adds one Opus packet to the stream. Data is copied.
func (s *OggSink) WriteFrame(f Frame) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrOggClosed
	}
	if s.err != nil {
		return s.err
	}
	dur := f.Duration
	if dur <= 0 {
		dur = DefaultDuration
	}
	if len(f.Data) == 0 {
		dur = min(dur, oggMaxLostFill)
	}
	samples := int(min(dur, time.Hour) * oggOpusRate / time.Second)
	if len(f.Data) == 0 {
		// Lost frames, at most 120 ms a packet; under 2.5 ms is dropped.
		for samples >= 120 {
			p := oggLostPacket(samples)
			n, _ := oggPacketSamples(p)
			if err := s.add(p, n); err != nil {
				return err
			}
			samples -= n
		}
		return nil
	}
	if n, err := oggPacketSamples(f.Data); err == nil {
		samples = n
	}
	return s.add(f.Data, samples)
}

// add writes the held-back packet and holds back p, of n samples.
func (s *OggSink) add(p []byte, n int) error {
	if err := s.flushPending(0); err != nil {
		return err
	}
	s.granule += uint64(n)
	s.pending = append(s.pending[:0], p...)
	s.pendGr, s.hasPend = s.granule, true
	return nil
}

// Close writes the last page, marked end-of-stream, flushes, and closes the file of
// CreateOggSink. It returns the first error the sink met. Later calls
// return nil.
func (s *OggSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.err == nil {
		if s.hasPend {
			s.err = s.flushPending(oggFlagEOS)
		} else if s.seq == 2 { // no audio page yet
			s.err = s.writeEmptyEnd()
		}
	}
	if s.bw != nil && s.err == nil {
		s.err = s.bw.Flush()
	}
	if s.file != nil {
		if err := s.file.Close(); s.err == nil {
			s.err = err
		}
	}
	return s.err
}

// writeEmptyEnd ends a stream without audio the way opusenc does, since
// decoders reject a stream without audio packets: with silence packets
// covering the pre-skip, on a last page whose granule position trims the
// playback length to 0 (RFC 7845 §4.5).
func (s *OggSink) writeEmptyEnd() error {
	k := max(1, (s.preSkip+959)/960)
	lacing := bytes.Repeat([]byte{byte(len(silencePacket))}, k)
	body := bytes.Repeat(silencePacket[:], k)
	return s.writePage(oggFlagEOS, uint64(s.preSkip), lacing, body)
}

// flushPending writes the held-back packet, if any, with the given flags.
func (s *OggSink) flushPending(flags byte) error {
	if !s.hasPend {
		return nil
	}
	s.hasPend = false
	return s.writePacket(s.pending, s.pendGr, flags)
}

// writePacket writes packet p on as many pages as it needs (255 segments
// each); the page on which it ends gets granule and flags (BOS, EOS), the
// others no granule position (RFC 3533 §6) and the continuation flag.
func (s *OggSink) writePacket(p []byte, granule uint64, flags byte) error {
	var lacing [oggMaxSegments]byte
	cont := false
	for {
		nseg, size := 0, 0
		done := false
		for nseg < oggMaxSegments {
			l := min(len(p)-size, 255)
			lacing[nseg] = byte(l)
			nseg++
			size += l
			if l < 255 {
				done = true
				break
			}
		}
		f, g := byte(0), oggNoGranule
		if cont {
			f |= oggFlagContinued
		}
		if done {
			f |= flags
			g = granule
		} else {
			f |= flags & oggFlagBOS
		}
		if err := s.writePage(f, g, lacing[:nseg], p[:size]); err != nil {
			return err
		}
		if done {
			return nil
		}
		p, cont = p[size:], true
		flags &^= oggFlagBOS
	}
}

// writePage writes one page (RFC 3533 §6) with its CRC.
func (s *OggSink) writePage(flags byte, granule uint64, lacing, body []byte) error {
	b := s.page[:0]
	b = append(b, oggCapture...)
	b = append(b, 0, flags)
	b = binary.LittleEndian.AppendUint64(b, granule)
	b = binary.LittleEndian.AppendUint32(b, s.serial)
	b = binary.LittleEndian.AppendUint32(b, s.seq)
	b = append(b, 0, 0, 0, 0, byte(len(lacing)))
	b = append(b, lacing...)
	b = append(b, body...)
	binary.LittleEndian.PutUint32(b[22:], oggCRC(0, b))
	s.page = b
	s.seq++
	if _, err := s.w.Write(b); err != nil {
		s.err = fmt.Errorf("audio: writing Ogg page: %w", err)
		return s.err
	}
	return nil
}
