package jitter

import (
	"bytes"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"
)

// opus returns audio packet i of a stream starting at seq: 20 ms at 48 kHz.
func opus(seq uint16, i int) *rtp.Packet {
	return &rtp.Packet{
		Header:  rtp.Header{Version: 2, PayloadType: 111, SSRC: 77, SequenceNumber: seq + uint16(i), Timestamp: 0xffffff00 + uint32(960*i)},
		Payload: []byte{0xfc, byte(i), byte(i >> 8), 0xaa},
	}
}

type apkt struct {
	payload []byte
	seq     uint16
	missing int
}

func adrain(a *Audio, now time.Time) []apkt {
	var out []apkt
	for {
		p, ok := a.Pop(now)
		if !ok {
			return out
		}
		out = append(out, apkt{bytes.Clone(p.Payload), p.SequenceNumber, p.Missing})
	}
}

func apush(a *Audio, now time.Time, ps ...*rtp.Packet) []apkt {
	for _, p := range ps {
		a.Push(p, now)
	}
	return adrain(a, now)
}

func seqs(ps []apkt) []uint16 {
	var out []uint16
	for _, p := range ps {
		out = append(out, p.seq)
	}
	return out
}

func TestAudioInOrderAndWrap(t *testing.T) {
	a := NewAudio(AudioConfig{})
	var all []apkt
	for i := range 10 {
		all = append(all, apush(a, at(float64(20*i)), opus(65530, i))...)
	}
	require.Equal(t, []uint16{65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2, 3}, seqs(all))
	require.Equal(t, opus(65530, 7).Payload, all[7].payload)
	st := a.Stats()
	require.Equal(t, uint64(10), st.Released)
	require.Zero(t, st.Lost+st.Late+st.Reordered)
	_, ok := a.NextDeadline()
	require.False(t, ok)
}

func TestAudioReorderWithinHold(t *testing.T) {
	a := NewAudio(AudioConfig{})
	require.Equal(t, DefaultAudioHold, a.cfg.Hold)
	all := apush(a, at(0), opus(100, 0))
	all = append(all, apush(a, at(20), opus(100, 2))...)
	d, ok := a.NextDeadline()
	require.True(t, ok)
	require.Equal(t, at(20).Add(DefaultAudioHold), d)
	all = append(all, apush(a, at(25), opus(100, 3))...)
	all = append(all, apush(a, at(59), opus(100, 1))...)
	require.Equal(t, []uint16{100, 101, 102, 103}, seqs(all))
	require.Zero(t, all[1].missing)
	st := a.Stats()
	require.Equal(t, uint64(1), st.Reordered)
	require.Zero(t, st.Lost)
}

func TestAudioGapGivenUpThenLate(t *testing.T) {
	a := NewAudio(AudioConfig{Hold: 30 * time.Millisecond})
	all := apush(a, at(0), opus(7, 0))
	all = append(all, apush(a, at(60), opus(7, 3), opus(7, 4))...) // 1 and 2 missing
	require.Len(t, all, 1)
	d, ok := a.NextDeadline()
	require.True(t, ok)
	require.Equal(t, at(90), d)
	require.Empty(t, adrain(a, at(89.999)))
	all = append(all, adrain(a, d)...)
	require.Equal(t, []uint16{7, 10, 11}, seqs(all))
	require.Equal(t, 2, all[1].missing, "the decoder may conceal two packets")
	require.Zero(t, all[2].missing)
	require.Empty(t, apush(a, at(91), opus(7, 2), opus(7, 1))) // late: never out of order
	st := a.Stats()
	require.Equal(t, uint64(2), st.Lost)
	require.Equal(t, uint64(2), st.Late)
	require.Equal(t, uint64(3), st.Released)
}

func TestAudioDuplicatesAndPadding(t *testing.T) {
	a := NewAudio(AudioConfig{})
	pad := opus(0, 1)
	pad.Payload = nil
	all := apush(a, at(0), opus(0, 0), opus(0, 0), pad, opus(0, 2), opus(0, 2), opus(0, 0))
	require.Equal(t, []uint16{0, 2}, seqs(all))
	require.Zero(t, all[1].missing, "padding is not a loss")
	st := a.Stats()
	require.Equal(t, uint64(3), st.Duplicates)
	require.Equal(t, uint64(1), st.Padding)
}

func TestAudioBoundsAndResync(t *testing.T) {
	a := NewAudio(AudioConfig{MaxPackets: 64})
	apush(a, at(0), opus(0, 0))
	for i := 2; i < 1000; i++ { // packet 1 never comes; no Pop in between
		a.Push(opus(0, i), at(1))
		require.LessOrEqual(t, a.Stats().Held, 64)
	}
	require.Positive(t, a.Stats().Evicted)
	all := adrain(a, at(1))
	require.Len(t, all, 64)
	require.Equal(t, uint16(936), all[0].seq)
	require.Equal(t, 935, all[0].missing, "packet 1 and the 934 evicted")
	require.Equal(t, uint16(999), all[63].seq)

	b := NewAudio(AudioConfig{})
	apush(b, at(0), opus(0, 0))
	p := opus(0, 1)
	p.SSRC++
	require.Len(t, apush(b, at(20), p), 1)
	require.Equal(t, uint64(1), b.Stats().Resets)
	q := opus(30000, 2)
	q.SSRC = p.SSRC
	require.Len(t, apush(b, at(40), q), 1)
	require.Equal(t, uint64(2), b.Stats().Resets)
}

func TestAudioNoAllocs(t *testing.T) {
	a := NewAudio(AudioConfig{})
	pkts := make([]*rtp.Packet, 1000)
	for i := range pkts {
		pkts[i] = opus(0, i)
	}
	for i := 5; i+1 < len(pkts); i += 9 {
		pkts[i], pkts[i+1] = pkts[i+1], pkts[i]
	}
	i := 0
	step := func() {
		p := pkts[i%len(pkts)]
		if i > 0 && i%len(pkts) == 0 {
			for _, q := range pkts {
				q.SequenceNumber += uint16(len(pkts))
			}
		}
		a.Push(p, at(float64(20*i)))
		for {
			if _, ok := a.Pop(at(float64(20 * i))); !ok {
				break
			}
		}
		i++
	}
	for range len(pkts) {
		step()
	}
	require.Zero(t, testing.AllocsPerRun(3*len(pkts), step))
	require.Zero(t, a.Stats().Lost)
	require.Positive(t, a.Stats().Reordered)
}
