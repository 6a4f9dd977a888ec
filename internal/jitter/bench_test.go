package jitter

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/smpcall/smpcall/internal/rtpframe"
)

// benchStream is a VP8 stream as a camera sends it: a 30 KB key frame
// every 60 frames and delta frames of 500 to 6000 bytes, in 1200-byte
// packets with 15-bit PictureIDs, with a few padding packets.
func benchStream() []*rtp.Packet {
	rng := rand.New(rand.NewPCG(42, 42))
	s := newSender(0, 0, 15)
	var pkts []*rtp.Packet
	for i := range 600 {
		size := 500 + rng.IntN(5500)
		if i%60 == 0 {
			size = 30000
		}
		pkts = append(pkts, s.frame(vp8Frame(rng, size, i%60 == 0))...)
		if i%50 == 25 {
			pkts = append(pkts, s.padding(5)...)
		}
	}
	return pkts
}

// feeder replays a stream forever: each round shifts the sequence numbers
// and timestamps past the previous one, so the receiver sees one long stream.
type feeder struct {
	pkts []*rtp.Packet
	i    int
}

func (f *feeder) next() *rtp.Packet {
	if f.i == len(f.pkts) {
		f.i = 0
		last := f.pkts[len(f.pkts)-1]
		seqAdd, tsAdd := last.SequenceNumber-f.pkts[0].SequenceNumber+1, last.Timestamp-f.pkts[0].Timestamp+3000
		for _, p := range f.pkts {
			p.SequenceNumber += seqAdd
			p.Timestamp += tsAdd
		}
	}
	p := f.pkts[f.i]
	f.i++
	return p
}

// BenchmarkVP8 measures one packet per op: Push and the Pops it allows,
// against internal/rtpframe (the strict assembler it replaces) on the same
// in-order stream.
func BenchmarkVP8(b *testing.B) {
	b.Run("rtpframe/in-order", func(b *testing.B) {
		f := &feeder{pkts: benchStream()}
		var a rtpframe.VP8
		bytes := 0
		b.ReportAllocs()
		for b.Loop() {
			r, _ := a.Push(f.next())
			bytes += len(r.Frame)
		}
		b.SetBytes(int64(bytes / max(b.N, 1)))
	})
	b.Run("jitter/in-order", func(b *testing.B) {
		benchJitter(b, benchStream())
	})
	b.Run("jitter/reordered", func(b *testing.B) {
		// every seventh packet swapped with its neighbour: each such frame
		// waits for the late packet
		pkts := benchStream()
		for i := 3; i+1 < len(pkts); i += 7 {
			pkts[i], pkts[i+1] = pkts[i+1], pkts[i]
		}
		benchJitter(b, pkts)
	})
}

func benchJitter(b *testing.B, pkts []*rtp.Packet) {
	f := &feeder{pkts: pkts}
	v := NewVideo(VideoConfig{})
	now := time.Now() // with a monotonic reading, like the times a receiver passes
	bytes := 0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(100 * time.Microsecond)
		v.Push(f.next(), now)
		for {
			fr, ok := v.Pop(now)
			if !ok {
				break
			}
			bytes += len(fr.Data)
		}
	}
	b.SetBytes(int64(bytes / max(b.N, 1)))
	if st := v.Stats(); st.FramesLost != 0 || st.Held > 100 {
		b.Fatalf("unexpected: %+v", st)
	}
}

// BenchmarkAudio measures one Opus packet per op: Push and Pop.
func BenchmarkAudio(b *testing.B) {
	pkts := make([]*rtp.Packet, 1000)
	for i := range pkts {
		pkts[i] = opus(0, i)
		pkts[i].Payload = make([]byte, 80)
	}
	f := &feeder{pkts: pkts}
	a := NewAudio(AudioConfig{})
	now := time.Now() // with a monotonic reading, like the times a receiver passes
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(20 * time.Millisecond)
		a.Push(f.next(), now)
		for {
			if _, ok := a.Pop(now); !ok {
				break
			}
		}
	}
}
