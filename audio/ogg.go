package audio

// This file holds what the Ogg Opus source and sink share: the Ogg page
// format (RFC 3533, https://www.rfc-editor.org/rfc/rfc3533), its CRC, the
// Ogg Opus header packets (RFC 7845, https://www.rfc-editor.org/rfc/rfc7845)
// and the errors of both.

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors returned (wrapped, with the details of what is wrong and where) by
// OggSource, OggSink and SilenceSource. Test them with errors.Is.
var (
	// ErrNotOgg: the input does not start with an Ogg page (it is empty or
	// has no "OggS" capture pattern at offset 0).
	ErrNotOgg = errors.New("audio: not an Ogg stream")
	// ErrOggTruncated: the input ends inside a page header, a segment table,
	// a page body (a page or segment length larger than what remains), or
	// inside a packet.
	ErrOggTruncated = errors.New("audio: truncated Ogg stream")
	// ErrOggCRC: a page's CRC-32 does not match its contents.
	ErrOggCRC = errors.New("audio: Ogg page CRC mismatch")
	// ErrOggCorrupt: the page structure is inconsistent: lost capture
	// pattern, unknown Ogg version, bad continuation flags, a gap in page
	// sequence numbers, a packet too large.
	ErrOggCorrupt = errors.New("audio: corrupt Ogg stream")
	// ErrOggNotOpus: the Ogg stream holds no Opus logical stream (no
	// beginning-of-stream page starting with an OpusHead packet).
	ErrOggNotOpus = errors.New("audio: no Opus stream in Ogg input")
	// ErrOggBadHeader: an OpusHead or OpusTags packet is invalid (version,
	// channel count, channel mapping, lengths) or unsupported (multistream).
	ErrOggBadHeader = errors.New("audio: invalid Ogg Opus header")
	// ErrOggBadPacket: an Opus packet is malformed (RFC 6716 §3.4): empty,
	// a TOC frame count of 0, more than 120 ms, inconsistent frame lengths.
	ErrOggBadPacket = errors.New("audio: malformed Opus packet")
	// ErrOggClosed: the source or sink was closed.
	ErrOggClosed = errors.New("audio: closed")
)

// Ogg page layout (RFC 3533 §6).
const (
	oggCapture        = "OggS"
	oggHeaderLen      = 27
	oggMaxSegments    = 255
	oggFlagContinued  = 0x01
	oggFlagBOS        = 0x02
	oggFlagEOS        = 0x04
	oggNoGranule      = ^uint64(0) // granule position of a page on which no packet ends
	oggOpusHeadMagic  = "OpusHead"
	oggOpusTagsMagic  = "OpusTags"
	oggOpusHeadLen    = 19
	oggOpusRate       = 48000 // granule positions count 48 kHz samples (RFC 7845 §4)
	oggMaxAudioPacket = 1 << 17
	oggMaxTagsPacket  = 1 << 24
)

// oggCRCTable is the table of the Ogg CRC-32: polynomial 0x04c11db7, initial
// value 0, no reflection, no final XOR (RFC 3533 §6, "CRC checksum").
var oggCRCTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

// oggCRC continues the Ogg CRC crc over b.
func oggCRC(crc uint32, b []byte) uint32 {
	for _, c := range b {
		crc = crc<<8 ^ oggCRCTable[byte(crc>>24)^c]
	}
	return crc
}

// OggHeader is what the header packets of an Ogg Opus stream say: the
// OpusHead identification header (RFC 7845 §5.1,
// https://www.rfc-editor.org/rfc/rfc7845#section-5.1) and the OpusTags
// comment header (§5.2).
type OggHeader struct {
	Version         uint8    // OpusHead version, 1 to 15 (1 is the current one)
	Channels        int      // output channel count, at least 1
	PreSkip         int      // 48 kHz samples to drop at the start when decoding
	InputSampleRate uint32   // informational only; Opus always runs at 48 kHz here
	OutputGain      int16    // Q7.8 dB
	MappingFamily   uint8    // channel mapping family; 0 is mono or stereo, no table
	Vendor          string   // OpusTags vendor string: the encoder that wrote the file
	Comments        []string // "NAME=value" user comments
}

// oggParseHead parses and validates an OpusHead packet into h.
func oggParseHead(p []byte, h *OggHeader) error {
	if len(p) < oggOpusHeadLen || string(p[:8]) != oggOpusHeadMagic {
		return fmt.Errorf("%w: OpusHead packet is %d bytes, want at least %d", ErrOggBadHeader, len(p), oggOpusHeadLen)
	}
	// RFC 7845 §5.1: the version MUST be 1; versions whose upper four bits
	// are 0 are backwards compatible and SHOULD be accepted.
	v := p[8]
	if v == 0 || v > 15 {
		return fmt.Errorf("%w: unsupported OpusHead version %d (want 1)", ErrOggBadHeader, v)
	}
	ch := int(p[9])
	if ch < 1 {
		return fmt.Errorf("%w: OpusHead channel count is 0", ErrOggBadHeader)
	}
	*h = OggHeader{
		Version:         v,
		Channels:        ch,
		PreSkip:         int(binary.LittleEndian.Uint16(p[10:])),
		InputSampleRate: binary.LittleEndian.Uint32(p[12:]),
		OutputGain:      int16(binary.LittleEndian.Uint16(p[16:])),
		MappingFamily:   p[18],
	}
	if h.MappingFamily == 0 {
		if ch > 2 {
			return fmt.Errorf("%w: channel mapping family 0 with %d channels (at most 2)", ErrOggBadHeader, ch)
		}
		return nil
	}
	if len(p) < 21+ch {
		return fmt.Errorf("%w: OpusHead with mapping family %d is %d bytes, want %d", ErrOggBadHeader, h.MappingFamily, len(p), 21+ch)
	}
	streams, coupled := int(p[19]), int(p[20])
	if streams < 1 || coupled > streams || streams+coupled > 255 {
		return fmt.Errorf("%w: OpusHead stream count %d, coupled count %d", ErrOggBadHeader, streams, coupled)
	}
	if h.MappingFamily == 1 && ch > 8 {
		return fmt.Errorf("%w: channel mapping family 1 with %d channels (at most 8)", ErrOggBadHeader, ch)
	}
	for i, m := range p[21 : 21+ch] {
		if m != 255 && int(m) >= streams+coupled {
			return fmt.Errorf("%w: channel %d maps to stream channel %d of %d", ErrOggBadHeader, i, m, streams+coupled)
		}
	}
	if streams != 1 {
		// Each packet would then hold several Opus streams (RFC 7845 §5.1.1),
		// which is not an Opus packet a call can send.
		return fmt.Errorf("%w: multistream Ogg Opus (%d streams) is not supported", ErrOggBadHeader, streams)
	}
	return nil
}

// oggParseTags parses and validates an OpusTags packet (RFC 7845 §5.2) into h.
func oggParseTags(p []byte, h *OggHeader) error {
	if len(p) < 8 || string(p[:8]) != oggOpusTagsMagic {
		return fmt.Errorf("%w: second packet is not OpusTags", ErrOggBadHeader)
	}
	rest := p[8:]
	str := func(what string) (string, error) {
		if len(rest) < 4 {
			return "", fmt.Errorf("%w: OpusTags ends before the %s length", ErrOggBadHeader, what)
		}
		n := uint64(binary.LittleEndian.Uint32(rest))
		rest = rest[4:]
		if n > uint64(len(rest)) {
			return "", fmt.Errorf("%w: OpusTags %s length %d, only %d bytes remain", ErrOggBadHeader, what, n, len(rest))
		}
		s := string(rest[:n])
		rest = rest[n:]
		return s, nil
	}
	vendor, err := str("vendor string")
	if err != nil {
		return err
	}
	h.Vendor = vendor
	if len(rest) < 4 {
		return fmt.Errorf("%w: OpusTags ends before the comment count", ErrOggBadHeader)
	}
	count := uint64(binary.LittleEndian.Uint32(rest))
	rest = rest[4:]
	if count > uint64(len(rest))/4 {
		return fmt.Errorf("%w: OpusTags comment count %d, only %d bytes remain", ErrOggBadHeader, count, len(rest))
	}
	h.Comments = make([]string, 0, count)
	for range count {
		c, err := str("comment")
		if err != nil {
			return err
		}
		h.Comments = append(h.Comments, c)
	}
	return nil
}
