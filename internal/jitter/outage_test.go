package jitter

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// After an outage (a link down for seconds while the sender went on), the
// frames sent meanwhile are lost: the buffer must ask for a key frame
// (NeedKeyFrame) instead of waiting for the sender's next scheduled one,
// whatever the PictureIDs say.
func TestOutageAsksForAKeyFrame(t *testing.T) {
	for _, bits := range []uint8{0, 7, 15} {
		rng := rand.New(rand.NewPCG(1, uint64(bits)))
		v := NewVideo(VideoConfig{})
		s := newSender(100, 0, bits)
		now := 0.0
		require.NotEmpty(t, pushAll(v, at(now), s.frame(vp8Frame(rng, 500, true))...))
		for range 10 {
			now += 33
			require.NotEmpty(t, pushAll(v, at(now), s.frame(vp8Frame(rng, 500, false))...))
		}
		require.False(t, v.NeedKeyFrame())
		// 300 frames (10 s at 30/s) are sent into a dead link.
		for range 300 {
			s.frame(vp8Frame(rng, 500, false))
		}
		now += 10_000
		// The link is back: delta frames arrive again.
		need := false
		for range 30 {
			now += 33
			pushAll(v, at(now), s.frame(vp8Frame(rng, 500, false))...)
			if dl, ok := v.NextDeadline(); ok && !dl.After(at(now)) {
				drain(v, at(now))
			}
			need = need || v.NeedKeyFrame()
		}
		drain(v, at(now+5000))
		need = need || v.NeedKeyFrame()
		require.True(t, need, "picture id bits %d: the buffer asked for a key frame", bits)
	}
}
