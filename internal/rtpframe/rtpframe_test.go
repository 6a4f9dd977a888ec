package rtpframe

import (
	"bytes"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/stretchr/testify/require"
)

// packetize splits a frame with pion's own VP8 payloader (the sender side).
func packetize(frame []byte, mtu uint16, seq uint16, ts uint32) []*rtp.Packet {
	p := &codecs.VP8Payloader{EnablePictureID: true}
	var out []*rtp.Packet
	payloads := p.Payload(mtu, frame)
	for i, pl := range payloads {
		out = append(out, &rtp.Packet{Header: rtp.Header{SequenceNumber: seq + uint16(i), Timestamp: ts, Marker: i == len(payloads)-1}, Payload: pl})
	}
	return out
}

func feed(t *testing.T, a *VP8, pkts []*rtp.Packet) (frames [][]byte, lost int) {
	for _, p := range pkts {
		r, err := a.Push(p)
		require.NoError(t, err)
		if r.Lost {
			lost++
		}
		if r.Frame != nil {
			frames = append(frames, bytes.Clone(r.Frame))
		}
	}
	return
}

func frameOf(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

func TestReassemblesAcrossPackets(t *testing.T) {
	var a VP8
	f1, f2 := frameOf(3000, 1), frameOf(100, 2)
	pkts := append(packetize(f1, 1200, 10, 1000), packetize(f2, 1200, 13, 4000)...)
	frames, lost := feed(t, &a, pkts)
	require.Zero(t, lost)
	require.Equal(t, [][]byte{f1, f2}, frames)
}

func TestPaddingDoesNotBreakFrames(t *testing.T) {
	var a VP8
	f1, f2 := frameOf(50, 1), frameOf(60, 2)
	pkts := packetize(f1, 1200, 100, 1)
	// Chrome's padding-only packets between frames take sequence numbers.
	for i := range 5 {
		pkts = append(pkts, &rtp.Packet{Header: rtp.Header{SequenceNumber: 101 + uint16(i), Timestamp: 1, Padding: true}})
	}
	pkts = append(pkts, packetize(f2, 1200, 106, 2)...)
	frames, lost := feed(t, &a, pkts)
	require.Zero(t, lost)
	require.Equal(t, [][]byte{f1, f2}, frames)
}

func TestGapDropsTheFrame(t *testing.T) {
	var a VP8
	f1, f2 := frameOf(3000, 1), frameOf(100, 2)
	p1 := packetize(f1, 1200, 10, 1000)
	pkts := append([]*rtp.Packet{p1[0], p1[2]}, packetize(f2, 1200, 13, 4000)...) // p1[1] lost
	frames, lost := feed(t, &a, pkts)
	require.Equal(t, 1, lost)
	require.Equal(t, [][]byte{f2}, frames)
}

func TestMissedStartIsLost(t *testing.T) {
	var a VP8
	p1 := packetize(frameOf(3000, 1), 1200, 10, 1000)
	frames, lost := feed(t, &a, p1[1:])
	require.Empty(t, frames)
	require.Equal(t, 2, lost)
}

func TestMalformedDescriptor(t *testing.T) {
	var a VP8
	_, err := a.Push(&rtp.Packet{Payload: []byte{0x80}}) // X bit set, nothing follows
	require.ErrorIs(t, err, ErrDescriptor)
}

func TestSequenceWraps(t *testing.T) {
	var a VP8
	f := frameOf(3000, 7)
	frames, lost := feed(t, &a, packetize(f, 1200, 65535, 9))
	require.Zero(t, lost)
	require.Equal(t, [][]byte{f}, frames)
}

func FuzzVP8Push(f *testing.F) {
	f.Add([]byte{0x90, 0x80, 0x01, 0x02}, uint16(1), uint32(5), true)
	f.Add([]byte{0x10, 0x9d, 0x01, 0x2a}, uint16(2), uint32(5), false)
	f.Add([]byte{}, uint16(3), uint32(5), false)
	var a VP8
	f.Fuzz(func(t *testing.T, payload []byte, seq uint16, ts uint32, marker bool) {
		r, _ := a.Push(&rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: ts, Marker: marker}, Payload: payload})
		require.LessOrEqual(t, len(r.Frame), MaxFrameSize)
	})
}
