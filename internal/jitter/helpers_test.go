package jitter

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"
)

// t0 is the synthetic clock's origin; at(ms) is t0 + ms milliseconds.
var t0 = time.Unix(1_700_000_000, 0)

func at(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }

// sender packetizes VP8 frames the way a WebRTC sender does (RFC 7741 §4):
// a payload descriptor on every packet, S=1/PID=0 on the first, the marker
// on the last, one RTP timestamp per frame, and a PictureID that counts
// frames (picBits 0, 7 or 15).
type sender struct {
	ssrc    uint32
	seq     uint16
	ts      uint32
	pic     uint16
	picBits uint8
	mtu     int // payload bytes per packet, descriptor included
}

func newSender(seq uint16, ts uint32, picBits uint8) *sender {
	return &sender{ssrc: 0x1234, seq: seq, ts: ts, picBits: picBits, mtu: 1200, pic: 0x7ff0 & (1<<picBits - 1)}
}

func (s *sender) descriptor(first bool) []byte {
	d := []byte{0}
	if first {
		d[0] |= 0x10 // S=1, PID=0
	}
	switch s.picBits {
	case 7:
		d[0] |= 0x80
		d = append(d, 0x80, byte(s.pic&0x7f))
	case 15:
		d[0] |= 0x80
		d = append(d, 0x80, 0x80|byte(s.pic>>8&0x7f), byte(s.pic))
	}
	return d
}

// frame packetizes one frame and advances the sender (timestamp by 3000:
// 30 fps at 90 kHz).
func (s *sender) frame(data []byte) []*rtp.Packet {
	var out []*rtp.Packet
	for off := 0; off < len(data) || off == 0; {
		d := s.descriptor(off == 0)
		n := min(s.mtu-len(d), len(data)-off)
		pl := append(d, data[off:off+n]...)
		off += n
		out = append(out, &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: s.ssrc, SequenceNumber: s.seq, Timestamp: s.ts, Marker: off >= len(data)}, Payload: pl})
		s.seq++
	}
	s.ts += 3000
	s.pic = (s.pic + 1) & (1<<s.picBits - 1)
	return out
}

// padding returns n padding-only packets (empty payload), as Chrome sends
// on the video SSRC when RTX is not negotiated.
func (s *sender) padding(n int) []*rtp.Packet {
	var out []*rtp.Packet
	for range n {
		out = append(out, &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: s.ssrc, SequenceNumber: s.seq, Timestamp: s.ts, Padding: true}})
		s.seq++
	}
	return out
}

// vp8Frame returns n bytes of frame data: a key frame has bit 0 of the
// first byte clear (RFC 6386 §9.1).
func vp8Frame(rng *rand.Rand, n int, key bool) []byte {
	b := make([]byte, max(n, 1))
	for i := 0; i < len(b); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		copy(b[i:], w[:])
	}
	if key {
		b[0] &^= 1
	} else {
		b[0] |= 1
	}
	return b
}

type got struct {
	data []byte
	ts   uint32
	key  bool
}

// drain pops every frame releasable at now, copying the data.
func drain(v *Video, now time.Time) []got {
	var out []got
	for {
		f, ok := v.Pop(now)
		if !ok {
			return out
		}
		out = append(out, got{bytes.Clone(f.Data), f.Timestamp, f.KeyFrame})
	}
}

// pushAll pushes packets at now and drains.
func pushAll(v *Video, now time.Time, pkts ...*rtp.Packet) []got {
	for _, p := range pkts {
		v.Push(p, now)
	}
	return drain(v, now)
}

func requireFrames(t *testing.T, want [][]byte, have []got) {
	t.Helper()
	require.Len(t, have, len(want))
	for i := range want {
		require.Equal(t, want[i], have[i].data, "frame %d", i)
	}
}

func cat(ps ...[]*rtp.Packet) []*rtp.Packet {
	var out []*rtp.Packet
	for _, p := range ps {
		out = append(out, p...)
	}
	return out
}
