// Package rtpframe reassembles whole VP8 frames from RTP packets (RFC 7741)
// so that the SimpleX frame encryption layer, which works on whole encoded
// frames (protocol §7), can decrypt them.
//
// It is deliberately simple and strict, because a frame that is assembled
// wrong cannot be decrypted anyway: a frame is the payloads of consecutive
// sequence numbers with one RTP timestamp, from the packet that starts
// partition 0 (S=1, PID=0) to the packet with the marker bit. A gap in the
// middle of a frame drops that frame and reports a loss, so the receiver can
// ask for a key frame. Packets with an empty payload are padding (Chrome
// sends them on the video SSRC when RTX is not negotiated); they are skipped
// but still advance the sequence, so they neither break a frame nor count as
// a gap. This is what pion's samplebuilder gets wrong after a padding burst:
// it drops a whole one-packet frame, and video stays corrupt until the next
// key frame (seen in calls with SimpleX's call page in Chromium).
package rtpframe

import (
	"errors"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// MaxFrameSize bounds an assembled frame; a larger one is dropped as lost.
const MaxFrameSize = 4 << 20

// ErrDescriptor is returned for a packet whose VP8 payload descriptor is malformed.
var ErrDescriptor = errors.New("rtpframe: malformed VP8 payload descriptor")

// VP8 assembles VP8 frames. Not safe for concurrent use: one per track,
// fed by the track's reading goroutine.
type VP8 struct {
	buf      []byte
	inFrame  bool
	ts       uint32
	nextSeq  uint16
	haveSeq  bool
	depacket codecs.VP8Packet
}

// Result of one Push.
type Result struct {
	// Frame is a complete frame when non-nil. It aliases the assembler's
	// buffer and is valid until the next Push.
	Frame []byte
	// Lost is true when a frame was dropped because packets were missing
	// or the frame was too large.
	Lost bool
}

// Push adds one packet. It returns a complete frame when p ends one.
func (a *VP8) Push(p *rtp.Packet) (Result, error) {
	var res Result
	gap := a.haveSeq && p.SequenceNumber != a.nextSeq
	a.nextSeq, a.haveSeq = p.SequenceNumber+1, true
	if len(p.Payload) == 0 {
		return res, nil // padding
	}
	payload, err := a.depacket.Unmarshal(p.Payload)
	if err != nil {
		if a.inFrame {
			a.inFrame, res.Lost = false, true
		}
		return res, ErrDescriptor
	}
	start := a.depacket.S == 1 && a.depacket.PID == 0
	if a.inFrame && (gap || p.Timestamp != a.ts || start) {
		// The frame in progress lost its end.
		a.inFrame, res.Lost = false, true
	}
	if !a.inFrame {
		if !start {
			// A continuation whose start we missed.
			res.Lost = true
			return res, nil
		}
		a.inFrame, a.ts, a.buf = true, p.Timestamp, a.buf[:0]
	}
	if len(a.buf)+len(payload) > MaxFrameSize {
		a.inFrame, res.Lost = false, true
		return res, nil
	}
	a.buf = append(a.buf, payload...)
	if p.Marker {
		a.inFrame = false
		res.Frame = a.buf
	}
	return res, nil
}
