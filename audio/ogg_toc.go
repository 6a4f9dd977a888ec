package audio

import (
	"fmt"
	"time"
)

// Opus packet structure, RFC 6716 §3 (https://www.rfc-editor.org/rfc/rfc6716#section-3).
const (
	oggMaxFrameBytes   = 1275
	oggMaxPacketSample = 5760 // 120 ms at 48 kHz, the longest packet (§3.2.5)
)

// oggFrameSamples is the frame size, in 48 kHz samples, of each TOC
// configuration number (RFC 6716 §3.1, Table 2).
var oggFrameSamples = [32]int{
	480, 960, 1920, 2880, // SILK NB 10, 20, 40, 60 ms
	480, 960, 1920, 2880, // SILK MB
	480, 960, 1920, 2880, // SILK WB
	480, 960, // Hybrid SWB 10, 20 ms
	480, 960, // Hybrid FB
	120, 240, 480, 960, // CELT NB 2.5, 5, 10, 20 ms
	120, 240, 480, 960, // CELT WB
	120, 240, 480, 960, // CELT SWB
	120, 240, 480, 960, // CELT FB
}

// oggSamplesDuration converts a count of 48 kHz samples to a duration.
func oggSamplesDuration(n int) time.Duration {
	return time.Duration(n) * time.Second / oggOpusRate
}

// oggFrameLen reads one frame length (RFC 6716 §3.2.1) from p and returns
// the length and how many bytes it took.
func oggFrameLen(p []byte) (n, used int, err error) {
	if len(p) < 1 {
		return 0, 0, fmt.Errorf("%w: missing frame length", ErrOggBadPacket)
	}
	if p[0] < 252 {
		return int(p[0]), 1, nil
	}
	if len(p) < 2 {
		return 0, 0, fmt.Errorf("%w: truncated two-byte frame length", ErrOggBadPacket)
	}
	return int(p[1])*4 + int(p[0]), 2, nil
}

// oggPacketSamples validates an Opus packet against the requirements of
// RFC 6716 §3.4 (R1–R7) and returns its duration in 48 kHz samples: the
// frame size of the TOC byte's configuration times the frame count of its
// code (0: one frame, 1 and 2: two frames, 3: the count in the second byte).
func oggPacketSamples(p []byte) (int, error) {
	if len(p) < 1 { // R1
		return 0, fmt.Errorf("%w: empty packet", ErrOggBadPacket)
	}
	toc := p[0]
	fs := oggFrameSamples[toc>>3]
	body := p[1:]
	switch toc & 3 {
	case 0: // one frame
		if len(body) > oggMaxFrameBytes { // R2
			return 0, fmt.Errorf("%w: code 0 frame of %d bytes", ErrOggBadPacket, len(body))
		}
		return fs, nil
	case 1: // two frames of equal size
		if len(body)%2 != 0 || len(body)/2 > oggMaxFrameBytes { // R3
			return 0, fmt.Errorf("%w: code 1 packet with %d bytes of frames", ErrOggBadPacket, len(body))
		}
		return 2 * fs, nil
	case 2: // two frames, the first one's length given
		n1, used, err := oggFrameLen(body)
		if err != nil {
			return 0, fmt.Errorf("code 2 packet: %w", err)
		}
		rest := len(body) - used
		if n1 > rest || rest-n1 > oggMaxFrameBytes || n1 > oggMaxFrameBytes { // R4
			return 0, fmt.Errorf("%w: code 2 first frame of %d bytes, %d bytes remain", ErrOggBadPacket, n1, rest)
		}
		return 2 * fs, nil
	}
	// Code 3: a frame count byte, optional padding, CBR or VBR frames.
	if len(body) < 1 { // R6, R7
		return 0, fmt.Errorf("%w: code 3 packet without frame count byte", ErrOggBadPacket)
	}
	fc := body[0]
	body = body[1:]
	m := int(fc & 0x3f)
	if m == 0 {
		return 0, fmt.Errorf("%w: code 3 packet with a frame count of 0", ErrOggBadPacket)
	}
	if m*fs > oggMaxPacketSample { // R5
		return 0, fmt.Errorf("%w: code 3 packet of %d frames of %s, more than 120 ms", ErrOggBadPacket, m, oggSamplesDuration(fs))
	}
	if fc&0x40 != 0 { // padding
		pad := 0
		for {
			if len(body) < 1 {
				return 0, fmt.Errorf("%w: code 3 packet ends in its padding length", ErrOggBadPacket)
			}
			b := body[0]
			body = body[1:]
			if b == 255 {
				pad += 254
				continue
			}
			pad += int(b)
			break
		}
		if pad > len(body) {
			return 0, fmt.Errorf("%w: code 3 padding of %d bytes, only %d remain", ErrOggBadPacket, pad, len(body))
		}
		body = body[:len(body)-pad]
	}
	if fc&0x80 == 0 { // CBR: R equal frames
		if len(body)%m != 0 || len(body)/m > oggMaxFrameBytes {
			return 0, fmt.Errorf("%w: code 3 CBR packet with %d bytes for %d frames", ErrOggBadPacket, len(body), m)
		}
		return m * fs, nil
	}
	total := 0
	for range m - 1 { // VBR: M-1 lengths, the last frame takes the rest
		n, used, err := oggFrameLen(body)
		if err != nil {
			return 0, fmt.Errorf("code 3 VBR packet: %w", err)
		}
		body = body[used:]
		if n > oggMaxFrameBytes {
			return 0, fmt.Errorf("%w: code 3 VBR frame of %d bytes", ErrOggBadPacket, n)
		}
		total += n
	}
	if total > len(body) || len(body)-total > oggMaxFrameBytes {
		return 0, fmt.Errorf("%w: code 3 VBR frames of %d bytes, %d bytes remain", ErrOggBadPacket, total, len(body))
	}
	return m * fs, nil
}

// oggLostPacket returns an Opus packet of n 48 kHz samples whose frames are
// all empty, which a decoder treats as lost (RFC 6716 §3.2.1: a frame of
// length 0 means no data, to be concealed). It uses CELT fullband frames; n
// is rounded down to a multiple of 2.5 ms and capped at 120 ms. It returns
// nil if that leaves nothing.
func oggLostPacket(n int) []byte {
	n = min(n, oggMaxPacketSample)
	n -= n % 120
	if n == 0 {
		return nil
	}
	// CELT FB configurations 28..31: frames of 120, 240, 480, 960 samples.
	for cfg := 31; cfg >= 28; cfg-- {
		fs := oggFrameSamples[cfg]
		if n%fs != 0 {
			continue
		}
		if m := n / fs; m == 1 {
			return []byte{byte(cfg << 3)} // code 0, one empty frame
		} else if m <= 48 {
			return []byte{byte(cfg<<3 | 3), byte(m)} // code 3 CBR, m empty frames
		}
	}
	return nil // unreachable: 120 divides n and n/120 <= 48
}
