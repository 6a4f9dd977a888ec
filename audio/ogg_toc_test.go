package audio

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestOggPacketSamples(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	// Frame sizes by configuration, RFC 6716 §3.1 Table 2.
	sizes := []float64{
		10, 20, 40, 60, 10, 20, 40, 60, 10, 20, 40, 60, // SILK NB, MB, WB
		10, 20, 10, 20, // Hybrid SWB, FB
		2.5, 5, 10, 20, 2.5, 5, 10, 20, 2.5, 5, 10, 20, 2.5, 5, 10, 20, // CELT
	}
	for cfg, size := range sizes {
		for _, stereo := range []byte{0, 4} {
			toc := byte(cfg<<3) | stereo
			for _, tc := range []struct {
				p      []byte
				frames int
			}{
				{[]byte{toc}, 1},                           // code 0, empty frame
				{[]byte{toc, 1, 2, 3}, 1},                  // code 0
				{[]byte{toc | 1, 1, 2}, 2},                 // code 1, two 1-byte frames
				{[]byte{toc | 1}, 2},                       // code 1, two empty frames
				{[]byte{toc | 2, 1, 7, 8, 9}, 2},           // code 2: 1 + 2 bytes
				{[]byte{toc | 2, 0}, 2},                    // code 2: two empty frames
				{[]byte{toc | 3, 1, 5}, 1},                 // code 3 CBR, one frame
				{[]byte{toc | 3, 0x80 | 2, 1, 5, 6}, 2},    // code 3 VBR
				{[]byte{toc | 3, 0x40 | 1, 2, 5, 0, 0}, 1}, // code 3 padding
			} {
				if tc.frames*int(size*10) > 1200 {
					continue // over 120 ms
				}
				n, err := oggPacketSamples(tc.p)
				require.NoError(t, err, "packet % x", tc.p)
				require.Equal(t, ms(size*float64(tc.frames)), oggSamplesDuration(n), "packet % x", tc.p)
			}
		}
		// Code 3: as many frames as fit 120 ms.
		m := int(120 / size)
		n, err := oggPacketSamples([]byte{byte(cfg<<3) | 3, byte(m)})
		require.NoError(t, err)
		require.Equal(t, 120*time.Millisecond, oggSamplesDuration(n))
		_, err = oggPacketSamples([]byte{byte(cfg<<3) | 3, byte(m + 1)})
		require.ErrorIs(t, err, ErrOggBadPacket, "config %d, %d frames", cfg, m+1)
	}

	big := bytes.Repeat([]byte{1}, 1276)
	for name, p := range map[string][]byte{
		"empty":                             {},
		"code 0 frame over 1275":            append([]byte{0xf8}, big...),
		"code 1 odd":                        {0xf9, 1, 2, 3},
		"code 1 frames over 1275":           append([]byte{0xf9}, append(big, big...)...),
		"code 2 no length":                  {0xfa},
		"code 2 short 2-byte len":           {0xfa, 253},
		"code 2 first frame too big":        {0xfa, 5, 1, 2},
		"code 2 second over 1275":           append([]byte{0xfa, 0}, big...),
		"code 3 no count":                   {0xfb},
		"code 3 zero frames":                {0xfb, 0},
		"code 3 zero frames padded":         {0xfb, 0x40, 0},
		"code 3 over 120 ms":                {0xfb, 7},
		"code 3 63 frames":                  {0x83, 63},
		"code 3 CBR uneven":                 {0xfb, 2, 1, 2, 3},
		"code 3 padding past end":           {0xfb, 0x41, 5, 1},
		"code 3 padding len cut":            {0xfb, 0x41, 255},
		"code 3 VBR lengths cut":            {0xfb, 0x83, 1},
		"code 3 VBR frames past end":        {0xfb, 0x82, 9, 1},
		"code 3 VBR 2-byte length past end": {0x83, 0x82, 255, 255},
	} {
		_, err := oggPacketSamples(p)
		require.ErrorIs(t, err, ErrOggBadPacket, name)
	}
}

func TestOggLostPacket(t *testing.T) {
	for _, tc := range []struct {
		in, want int // samples
	}{
		{0, 0}, {119, 0}, {120, 120}, {121, 120}, {240, 240}, {480, 480},
		{960, 960}, {1440, 1440}, {2880, 2880}, {5760, 5760}, {9999, 5760}, {600, 600},
	} {
		p := oggLostPacket(tc.in)
		if tc.want == 0 {
			require.Nil(t, p)
			continue
		}
		n, err := oggPacketSamples(p)
		require.NoError(t, err)
		require.Equal(t, tc.want, n, "in %d", tc.in)
	}
}
