package jitter

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"
)

// stream builds a sender and n frames (the first a key frame, the rest
// delta frames) of the given sizes, cycling.
func stream(seed uint64, seq uint16, ts uint32, picBits uint8, sizes ...int) (*sender, [][]byte, [][]*rtp.Packet) {
	rng := rand.New(rand.NewPCG(seed, 1))
	s := newSender(seq, ts, picBits)
	var frames [][]byte
	var pkts [][]*rtp.Packet
	for i, n := range sizes {
		f := vp8Frame(rng, n, i == 0)
		frames = append(frames, f)
		pkts = append(pkts, s.frame(f))
	}
	return s, frames, pkts
}

func TestVideoInOrder(t *testing.T) {
	_, frames, pkts := stream(1, 100, 1000, 15, 3000, 100, 1200, 5000)
	v := NewVideo(VideoConfig{})
	require.True(t, v.NeedKeyFrame(), "no key frame yet")
	var all []got
	for i, p := range pkts {
		all = append(all, pushAll(v, at(float64(33*i)), p...)...)
	}
	requireFrames(t, frames, all)
	require.True(t, all[0].key)
	require.False(t, all[1].key)
	require.Equal(t, uint32(1000), all[0].ts)
	require.Equal(t, uint32(4000), all[1].ts)
	require.False(t, v.NeedKeyFrame())
	st := v.Stats()
	require.Equal(t, uint64(4), st.FramesReleased)
	require.Equal(t, uint64(1), st.KeyFrames)
	require.Zero(t, st.FramesLost+st.Late+st.Reordered+st.Duplicates+st.DeltaDropped)
	require.Zero(t, st.Held)
	require.Zero(t, st.HeldBytes)
	_, ok := v.NextDeadline()
	require.False(t, ok)
}

// Packets reordered inside a frame and across frames, all in time: every
// frame comes out, in order, and nothing counts as lost.
func TestVideoReorderedInTime(t *testing.T) {
	tests := []struct {
		name  string
		order []int // indices into the flattened packet list
	}{
		{"within a frame", []int{0, 2, 1, 3, 4, 5, 6}},
		{"frame 2 before frame 1", []int{0, 1, 2, 5, 6, 3, 4}},
		{"reverse", []int{6, 5, 4, 3, 2, 1, 0}},
		{"last first", []int{6, 0, 1, 2, 3, 4, 5}},
		{"key frame start last", []int{1, 2, 0, 3, 4, 5, 6}},
		{"delta before key", []int{3, 4, 0, 1, 2, 5, 6}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// frames of 3, 2 and 2 packets
			_, frames, pkts := stream(2, 65533, 0xffffffff-3000, 15, 3000, 2000, 2000)
			flat := cat(pkts...)
			require.Len(t, flat, 7)
			v := NewVideo(VideoConfig{})
			var all []got
			for i, k := range tc.order {
				all = append(all, pushAll(v, at(float64(5*i)), flat[k])...)
			}
			requireFrames(t, frames, all)
			st := v.Stats()
			require.Zero(t, st.FramesLost+st.Late+st.DeltaDropped)
		})
	}
}

func TestVideoDuplicates(t *testing.T) {
	_, frames, pkts := stream(3, 7, 0, 15, 2500, 100)
	v := NewVideo(VideoConfig{})
	f0 := pkts[0]
	var all []got
	all = append(all, pushAll(v, at(0), f0[0], f0[0], f0[1])...)
	all = append(all, pushAll(v, at(1), f0[1], f0[2], f0[2])...)
	all = append(all, pushAll(v, at(2), f0[0])...) // after release: a duplicate, not late
	all = append(all, pushAll(v, at(3), pkts[1]...)...)
	requireFrames(t, frames, all)
	st := v.Stats()
	require.Equal(t, uint64(4), st.Duplicates)
	require.Zero(t, st.Late)
	require.Zero(t, st.FramesLost)
}

// A packet missing inside a frame is waited for; a retransmission within
// the wait completes the frame with no loss.
func TestVideoRetransmissionInTime(t *testing.T) {
	_, frames, pkts := stream(4, 10, 0, 15, 100, 3000, 100)
	v := NewVideo(VideoConfig{})
	v.SetRTT(50 * time.Millisecond)
	wait := v.Wait()
	require.Equal(t, 2*(50+20)*time.Millisecond+30*time.Millisecond, wait)

	all := pushAll(v, at(0), pkts[0]...)
	f1 := pkts[1]
	all = append(all, pushAll(v, at(33), f1[0], f1[2])...) // f1[1] lost
	all = append(all, pushAll(v, at(66), pkts[2]...)...)
	require.Len(t, all, 1, "frame 2 waits behind the incomplete frame 1")
	d, ok := v.NextDeadline()
	require.True(t, ok)
	require.Equal(t, at(33).Add(wait), d, "the gap was noticed at 33 ms")
	require.False(t, v.NeedKeyFrame())

	require.Empty(t, drain(v, d.Add(-time.Nanosecond)))
	all = append(all, pushAll(v, d.Add(-time.Millisecond), f1[1])...) // the NACKed packet
	requireFrames(t, frames, all)
	st := v.Stats()
	require.Equal(t, uint64(1), st.Reordered)
	require.Zero(t, st.FramesLost)
	require.False(t, v.NeedKeyFrame())
}

// After the wait the incomplete frame is lost, a key frame is needed, delta
// frames are dropped until one comes, and the retransmission that comes
// after that is late.
func TestVideoLossWaitsForKeyFrame(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	s := newSender(500, 90000, 15)
	k0 := vp8Frame(rng, 200, true)
	d1 := vp8Frame(rng, 3000, false)
	d2 := vp8Frame(rng, 300, false)
	d3 := vp8Frame(rng, 300, false)
	k4 := vp8Frame(rng, 4000, true)
	d5 := vp8Frame(rng, 300, false)
	p0, p1, p2, p3, p4, p5 := s.frame(k0), s.frame(d1), s.frame(d2), s.frame(d3), s.frame(k4), s.frame(d5)

	v := NewVideo(VideoConfig{})
	wait := v.Wait()
	require.Equal(t, 270*time.Millisecond, wait, "default wait with unknown RTT")
	all := pushAll(v, at(0), p0...)
	all = append(all, pushAll(v, at(33), p1[0], p1[2])...)
	all = append(all, pushAll(v, at(66), p2...)...)
	requireFrames(t, [][]byte{k0}, all)
	d, ok := v.NextDeadline()
	require.True(t, ok)
	require.Equal(t, at(33).Add(wait), d)

	// The deadline passes: frame 1 is lost, frame 2 is an undecodable delta.
	require.Empty(t, drain(v, d))
	require.True(t, v.NeedKeyFrame())
	st := v.Stats()
	require.Equal(t, uint64(1), st.FramesLost)
	require.Equal(t, uint64(1), st.DeltaDropped)

	require.Empty(t, pushAll(v, d.Add(time.Millisecond), p1[1])) // too late
	require.Equal(t, uint64(1), v.Stats().Late)
	require.Empty(t, pushAll(v, d.Add(2*time.Millisecond), p3...))
	require.True(t, v.NeedKeyFrame())
	got := pushAll(v, d.Add(3*time.Millisecond), p4...)
	got = append(got, pushAll(v, d.Add(4*time.Millisecond), p5...)...)
	requireFrames(t, [][]byte{k4, d5}, got)
	require.True(t, got[0].key)
	require.False(t, v.NeedKeyFrame())
	st = v.Stats()
	require.Equal(t, uint64(2), st.DeltaDropped)
	require.Equal(t, uint64(1), st.FramesLost)
	require.Equal(t, uint64(2), st.KeyFrames)
	require.Equal(t, uint64(3), st.FramesReleased)
}

// A frame the caller could not use (decryption failed) breaks the chain
// of delta frames just like a lost one.
func TestVideoDropUntilKeyFrame(t *testing.T) {
	_, frames, pkts := stream(23, 0, 0, 15, 100, 100, 100, 100)
	v := NewVideo(VideoConfig{})
	all := pushAll(v, at(0), pkts[0]...)
	all = append(all, pushAll(v, at(1), pkts[1]...)...)
	require.False(t, v.NeedKeyFrame())
	v.DropUntilKeyFrame()
	require.True(t, v.NeedKeyFrame())
	all = append(all, pushAll(v, at(2), pkts[2]...)...)
	requireFrames(t, frames[:2], all)
	require.Equal(t, uint64(1), v.Stats().DeltaDropped)
	k := vp8Frame(rand.New(rand.NewPCG(1, 1)), 100, true)
	s := newSender(pkts[3][0].SequenceNumber, pkts[3][0].Timestamp, 15)
	s.pic = 0x7ff0 + 3
	requireFrames(t, [][]byte{k}, pushAll(v, at(3), s.frame(k)...))
	require.False(t, v.NeedKeyFrame())
}

// Frames that vanish whole are counted from the PictureIDs; without
// PictureIDs the run counts as one.
func TestVideoFramesLostCount(t *testing.T) {
	for _, bits := range []uint8{15, 7, 0} {
		_, _, pkts := stream(6, 65530, 0, bits, 100, 1500, 100, 100, 100, 2000)
		v := NewVideo(VideoConfig{})
		pushAll(v, at(0), pkts[0]...)
		pushAll(v, at(10), pkts[1][1]) // the end of frame 1; frames 2, 3 and 4 vanish
		pushAll(v, at(20), pkts[5]...)
		drain(v, at(1000))
		st := v.Stats()
		want := uint64(4)
		if bits == 0 {
			want = 1
		}
		require.Equal(t, want, st.FramesLost, "picBits %d", bits)
		require.Equal(t, uint64(0), st.FramesReleased-1, "frame 5 is a delta after a loss")
		require.Equal(t, uint64(1), st.DeltaDropped)
	}
}

// Chrome's padding-only packets take sequence numbers between (and even
// inside) frames; a lost one is never retransmitted. With PictureIDs the
// gap is recognised as padding at once; without them it costs the wait.
func TestVideoPadding(t *testing.T) {
	t.Run("received", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 7))
		s := newSender(65500, 0, 15)
		k, d := vp8Frame(rng, 2500, true), vp8Frame(rng, 100, false)
		pk := s.frame(k)
		pad := s.padding(40)
		pd := s.frame(d)
		// a padding packet inside frame k
		mid := &rtp.Packet{Header: pk[1].Header, Payload: nil}
		v := NewVideo(VideoConfig{})
		var all []got
		all = append(all, pushAll(v, at(0), pk[0], pk[1])...)
		all = append(all, pushAll(v, at(1), pad...)...)
		all = append(all, pushAll(v, at(2), pk[2])...)
		all = append(all, pushAll(v, at(3), pd...)...)
		all = append(all, pushAll(v, at(4), mid)...) // a duplicate sequence number: ignored
		requireFrames(t, [][]byte{k, d}, all)
		require.Equal(t, uint64(40), v.Stats().Padding)
		require.Zero(t, v.Stats().FramesLost)
	})
	for _, bits := range []uint8{15, 7, 0} {
		rng := rand.New(rand.NewPCG(8, 8))
		s := newSender(100, 0, bits)
		k, d := vp8Frame(rng, 100, true), vp8Frame(rng, 100, false)
		pk := s.frame(k)
		pad := s.padding(5)
		pd := s.frame(d)
		v := NewVideo(VideoConfig{})
		all := pushAll(v, at(0), pk...)
		all = append(all, pushAll(v, at(1), pad[0], pad[4])...) // 3 padding packets lost
		all = append(all, pushAll(v, at(2), pd...)...)
		if bits != 0 {
			requireFrames(t, [][]byte{k, d}, all)
			require.Equal(t, uint64(3), v.Stats().PaddingSkipped)
			require.False(t, v.NeedKeyFrame())
			continue
		}
		requireFrames(t, [][]byte{k}, all)
		dl, ok := v.NextDeadline()
		require.True(t, ok)
		require.Equal(t, at(1).Add(v.Wait()), dl)
		require.Empty(t, drain(v, dl))
		require.True(t, v.NeedKeyFrame(), "without PictureIDs the gap may have held a frame")
	}
}

// A gap at the end, with nothing but padding after it, is not given up:
// nothing waits behind it, and the next frame may still show it was padding.
func TestVideoGapBeforeSlowFrame(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	s := newSender(1, 0, 15)
	k, d := vp8Frame(rng, 100, true), vp8Frame(rng, 100, false)
	pk := s.frame(k)
	pad := s.padding(3)
	pd := s.frame(d)
	v := NewVideo(VideoConfig{})
	all := pushAll(v, at(0), pk...)
	all = append(all, pushAll(v, at(1), pad[2])...)
	_, ok := v.NextDeadline()
	require.False(t, ok)
	all = append(all, pushAll(v, at(5000), pd...)...) // a screen share at 0.2 fps
	requireFrames(t, [][]byte{k, d}, all)
	require.Zero(t, v.Stats().FramesLost)
}

// While waiting for a key frame, an incomplete delta frame is not waited
// for, and a gap in front of a key frame is skipped.
func TestVideoWaitingForKeyFrameSkips(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	s := newSender(1000, 0, 15)
	frames := [][]byte{vp8Frame(rng, 100, true), vp8Frame(rng, 2500, false), vp8Frame(rng, 2500, false), vp8Frame(rng, 2500, false), vp8Frame(rng, 2500, true)}
	var p [][]*rtp.Packet
	for _, f := range frames {
		p = append(p, s.frame(f))
	}
	v := NewVideo(VideoConfig{})
	all := pushAll(v, at(0), p[0]...)
	all = append(all, pushAll(v, at(10), p[1][0], p[1][2])...) // frame 1 loses a packet
	all = append(all, pushAll(v, at(20), p[2][0], p[2][2])...) // so does frame 2
	require.Empty(t, drain(v, at(10).Add(v.Wait())))           // frame 1 lost; frame 2 dropped at once
	st := v.Stats()
	require.Equal(t, uint64(1), st.FramesLost)
	require.Equal(t, uint64(1), st.DeltaDropped)
	require.True(t, v.NeedKeyFrame())
	// Frame 3 vanishes entirely; the key frame after it is released
	// without waiting for frame 2's missing packet or frame 3.
	now := at(10).Add(v.Wait() + time.Millisecond)
	all = append(all, pushAll(v, now, p[4]...)...)
	requireFrames(t, [][]byte{frames[0], frames[4]}, all)
	require.Equal(t, uint64(2), v.Stats().FramesLost, "frame 3 counted from the PictureIDs")
}

func TestVideoMalformed(t *testing.T) {
	_, frames, pkts := stream(11, 50, 0, 15, 100, 2500, 100)
	v := NewVideo(VideoConfig{})
	bad := *pkts[1][1]
	bad.Payload = []byte{0x80} // X set, extension octet missing
	all := pushAll(v, at(0), pkts[0]...)
	all = append(all, pushAll(v, at(1), pkts[1][0], &bad, pkts[1][2])...)
	all = append(all, pushAll(v, at(2), pkts[2]...)...)
	requireFrames(t, [][]byte{frames[0]}, all)
	st := v.Stats()
	require.Equal(t, uint64(1), st.Malformed)
	require.Equal(t, uint64(1), st.FramesLost)
	require.Equal(t, uint64(1), st.DeltaDropped)
	require.True(t, v.NeedKeyFrame())
	for _, pl := range [][]byte{{0x90}, {0x90, 0x80}, {0x90, 0x80, 0x80}, {0x90, 0x80, 0x80, 1}, {0x90, 0x40, 1}, {0x90, 0x20}} {
		_, ok := parseVP8(pl)
		require.False(t, ok, "%x", pl)
	}
}

func TestVideoBrokenFrames(t *testing.T) {
	t.Run("timestamp changes without a marker", func(t *testing.T) {
		_, frames, pkts := stream(12, 50, 0, 15, 100, 2500, 100)
		p := *pkts[1][1]
		p.Timestamp++
		v := NewVideo(VideoConfig{})
		all := pushAll(v, at(0), pkts[0]...)
		all = append(all, pushAll(v, at(1), pkts[1][0], &p, pkts[1][2])...)
		requireFrames(t, [][]byte{frames[0]}, all)
		// The stray packet looks like a frame whose start was lost.
		require.Equal(t, uint64(2), v.Stats().FramesLost)
		require.True(t, v.NeedKeyFrame())
	})
	t.Run("continuation without a start", func(t *testing.T) {
		_, frames, pkts := stream(13, 50, 0, 15, 100, 2500)
		p := *pkts[0][0]
		p.Payload = append([]byte{0x80, 0x80, 0x80, 0x01}, p.Payload[4:]...) // S cleared
		v := NewVideo(VideoConfig{})
		require.Empty(t, pushAll(v, at(0), &p))
		require.Empty(t, drain(v, at(0).Add(v.Wait())), "held until the window is one wait old, then dropped")
		require.Equal(t, uint64(1), v.Stats().FramesLost)
		_ = frames
	})
}

// A start packet larger than MaxFrameSize on its own is dropped too.
func TestVideoOversizedPacket(t *testing.T) {
	_, frames, pkts := stream(22, 50, 0, 15, 100, 1000, 50)
	v := NewVideo(VideoConfig{MaxFrameSize: 500})
	var all []got
	for i, p := range pkts {
		all = append(all, pushAll(v, at(float64(i)), p...)...)
	}
	requireFrames(t, [][]byte{frames[0]}, all)
	st := v.Stats()
	require.Equal(t, uint64(1), st.Oversized)
	require.Equal(t, uint64(1), st.DeltaDropped)
	require.Zero(t, st.Held)
}

func TestVideoOversized(t *testing.T) {
	_, frames, pkts := stream(14, 50, 0, 15, 100, 20000, 100, 300)
	v := NewVideo(VideoConfig{MaxFrameSize: 10000})
	var all []got
	for i, p := range pkts {
		all = append(all, pushAll(v, at(float64(i)), p...)...)
	}
	requireFrames(t, [][]byte{frames[0]}, all)
	st := v.Stats()
	require.Equal(t, uint64(1), st.Oversized)
	require.Equal(t, uint64(1), st.FramesLost)
	require.Equal(t, uint64(2), st.DeltaDropped)
	require.Zero(t, st.Held)
}

// A remote peer cannot grow the buffer past its bounds: packets far ahead
// of a gap that never fills evict the oldest, counted.
func TestVideoBounds(t *testing.T) {
	t.Run("packets", func(t *testing.T) {
		v := NewVideo(VideoConfig{MaxPackets: 100}) // rounded to 128
		rng := rand.New(rand.NewPCG(15, 15))
		s := newSender(0, 0, 15)
		pushAll(v, at(0), s.frame(vp8Frame(rng, 100, true))...)
		pushAll(v, at(0), s.frame(vp8Frame(rng, 2000, false))[1]) // a gap that never fills
		for i := range 1000 {
			pushAll(v, at(float64(i)/10), s.frame(vp8Frame(rng, 100, false))...)
			st := v.Stats()
			require.LessOrEqual(t, st.Held, 128)
		}
		st := v.Stats()
		require.Positive(t, st.Evicted)
		require.LessOrEqual(t, st.Held, 128)
	})
	t.Run("bytes", func(t *testing.T) {
		v := NewVideo(VideoConfig{MaxBytes: 100_000})
		rng := rand.New(rand.NewPCG(16, 16))
		s := newSender(0, 0, 15)
		pushAll(v, at(0), s.frame(vp8Frame(rng, 100, true))...)
		pushAll(v, at(0), s.frame(vp8Frame(rng, 2000, false))[1])
		for i := range 300 {
			pushAll(v, at(float64(i)/10), s.frame(vp8Frame(rng, 1190, false))...)
			require.LessOrEqual(t, v.Stats().HeldBytes, 100_000)
		}
		require.Positive(t, v.Stats().Evicted)
		// A packet larger than the bound on its own is dropped.
		big := s.frame(vp8Frame(rng, 70_000, false))
		for _, p := range big {
			p.Payload = append(p.Payload, make([]byte, 70_000)...)
			v.Push(p, at(100))
			require.LessOrEqual(t, v.Stats().HeldBytes, 100_000)
		}
	})
	t.Run("frame larger than the window", func(t *testing.T) {
		v := NewVideo(VideoConfig{MaxPackets: 64})
		rng := rand.New(rand.NewPCG(17, 17))
		s := newSender(0, 0, 15)
		f := vp8Frame(rng, 100*1190, true)
		all := pushAll(v, at(0), s.frame(f)...)
		require.Empty(t, all)
		require.LessOrEqual(t, v.Stats().Held, 64)
		k := vp8Frame(rng, 1000, true)
		requireFrames(t, [][]byte{k}, pushAll(v, at(1000), s.frame(k)...))
	})
}

// An SSRC change or a sequence jump beyond the window starts over.
func TestVideoResync(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(s *sender)
	}{
		{"ssrc", func(s *sender) { s.ssrc++ }},
		{"jump forward", func(s *sender) { s.seq += 20000 }},
		{"jump back", func(s *sender) { s.seq -= 20000 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(18, 18))
			s := newSender(0, 0, 15)
			k := vp8Frame(rng, 100, true)
			v := NewVideo(VideoConfig{})
			all := pushAll(v, at(0), s.frame(k)...)
			pushAll(v, at(1), s.frame(vp8Frame(rng, 2500, false))[0]) // an incomplete frame is pending
			tc.change(s)
			// A lower restart is believed after resyncAfter packets in sequence.
			pushAll(v, at(1.5), s.padding(resyncAfter)...)
			var want [][]byte
			want = append(want, k)
			for i := range 20 {
				f := vp8Frame(rng, 100, i == 0)
				want = append(want, f)
				all = append(all, pushAll(v, at(float64(2+i)), s.frame(f)...)...)
			}
			requireFrames(t, want, all)
			st := v.Stats()
			require.Equal(t, uint64(1), st.Resets)
			require.Equal(t, uint64(1), st.Evicted)
			require.Equal(t, uint64(1), st.FramesLost)
		})
	}
	t.Run("stale packets do not resync", func(t *testing.T) {
		_, frames, pkts := stream(19, 0, 0, 15, 100, 100, 100)
		v := NewVideo(VideoConfig{})
		all := pushAll(v, at(0), pkts[0]...)
		for i := range 30 { // stale, not in sequence
			p := *pkts[0][0]
			p.SequenceNumber -= uint16(5000 + 7*i)
			all = append(all, pushAll(v, at(1), &p)...)
		}
		all = append(all, pushAll(v, at(2), pkts[1]...)...)
		all = append(all, pushAll(v, at(3), pkts[2]...)...)
		requireFrames(t, frames, all)
		require.Zero(t, v.Stats().Resets)
		require.Equal(t, uint64(30), v.Stats().Late)
	})
}

// Push copies: the caller may reuse the packet and its buffer.
func TestVideoPushCopies(t *testing.T) {
	_, frames, pkts := stream(20, 0, 0, 15, 3000)
	v := NewVideo(VideoConfig{})
	for _, p := range pkts[0] {
		q := &rtp.Packet{Header: p.Header, Payload: append([]byte(nil), p.Payload...)}
		v.Push(q, at(0))
		for i := range q.Payload {
			q.Payload[i] = 0xee
		}
	}
	requireFrames(t, frames, drain(v, at(0)))
}

func TestVideoSetRTTClamps(t *testing.T) {
	v := NewVideo(VideoConfig{})
	v.SetRTT(time.Millisecond)
	require.Equal(t, 72*time.Millisecond, v.Wait())
	v.SetRTT(10 * time.Second)
	require.Equal(t, DefaultMaxWait, v.Wait())
	v.SetRTT(0)
	require.Equal(t, 270*time.Millisecond, v.Wait())
	v = NewVideo(VideoConfig{NACKInterval: time.Millisecond, NACKRounds: 1, JitterMargin: time.Millisecond, MinWait: 40 * time.Millisecond, MaxWait: 10 * time.Millisecond})
	v.SetRTT(time.Millisecond)
	require.Equal(t, 40*time.Millisecond, v.Wait(), "MaxWait below MinWait is raised to it")
}

// In steady state Push and Pop allocate nothing.
func TestVideoNoAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 21))
	s := newSender(0, 0, 15)
	var pkts []*rtp.Packet
	pkts = append(pkts, s.frame(vp8Frame(rng, 5000, true))...)
	for range 200 {
		pkts = append(pkts, s.frame(vp8Frame(rng, 2000+rng.IntN(3000), false))...)
	}
	// swap neighbours so that every other frame waits for a reordered packet
	for i := 10; i+1 < len(pkts); i += 7 {
		pkts[i], pkts[i+1] = pkts[i+1], pkts[i]
	}
	v := NewVideo(VideoConfig{})
	i := 0
	step := func() {
		p := pkts[i%len(pkts)]
		if i > 0 && i%len(pkts) == 0 {
			// continue the stream: shift numbers past the last round
			for _, q := range pkts {
				q.SequenceNumber += uint16(len(pkts))
				q.Timestamp += 3000 * 201
			}
		}
		v.Push(p, at(float64(i)))
		for {
			if _, ok := v.Pop(at(float64(i))); !ok {
				break
			}
		}
		i++
	}
	for range 3 * len(pkts) { // warm up the free list and the frame buffer
		step()
	}
	allocs := testing.AllocsPerRun(5*len(pkts), step)
	require.Zero(t, allocs)
	st := v.Stats()
	require.Zero(t, st.FramesLost)
	require.Positive(t, st.Reordered)
}
