package framecrypt

import (
	"bytes"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func newTestCipher(t testing.TB) *Cipher {
	t.Helper()
	key := make([]byte, KeySize)
	rand.Read(key)
	c, err := New(key)
	require.NoError(t, err)
	return c
}

func TestConstants(t *testing.T) {
	require.Equal(t, 12, IVSize)
	require.Equal(t, 16, TagSize)
	require.Equal(t, 28, Overhead)
	require.Equal(t, 1, PrefixAudio)
	require.Equal(t, 10, PrefixVideoKey)
	require.Equal(t, 3, PrefixVideoDelta)
}

func TestNewKeySize(t *testing.T) {
	for _, n := range []int{0, 1, 16, 24, 31, 33, 64} {
		key := bytes.Repeat([]byte{0xA7}, n)
		c, err := New(key)
		require.Error(t, err, "len %d", n)
		require.Nil(t, c)
		// The error names the length, never key bytes.
		require.NotContains(t, err.Error(), "a7")
		require.NotContains(t, err.Error(), "A7")
		require.NotContains(t, err.Error(), "\xa7")
	}
	_, err := New(nil)
	require.Error(t, err)
	c, err := New(make([]byte, 32))
	require.NoError(t, err)
	require.NotNil(t, c)
}

func TestPrefixVP8(t *testing.T) {
	require.Equal(t, 1, PrefixVP8(nil))
	require.Equal(t, 1, PrefixVP8([]byte{}))
	require.Equal(t, 10, PrefixVP8([]byte{0x00}))
	require.Equal(t, 10, PrefixVP8([]byte{0x50, 0x19, 0x00}))
	require.Equal(t, 3, PrefixVP8([]byte{0x01}))
	require.Equal(t, 3, PrefixVP8([]byte{0x71, 0x07, 0x00}))
	require.Equal(t, 10, PrefixVP8([]byte{0xfe}))
	require.Equal(t, 3, PrefixVP8([]byte{0xff}))
}

func TestRoundTrip(t *testing.T) {
	c := newTestCipher(t)
	sizes := []int{0, 1, 2, 3, 4, 9, 10, 11, 12, 13, 27, 28, 29, 40, 100, 160, 1199, 1200, 4096, 30000, 65537}
	prefixes := []int{-5, 0, 1, 3, 10, 12, 100}
	for _, size := range sizes {
		for _, p := range prefixes {
			frame := make([]byte, size)
			rand.Read(frame)
			sealed := c.Seal(nil, frame, p)
			require.Len(t, sealed, size+Overhead)
			n := min(max(p, 0), size) // the sender's effective prefix
			require.Equal(t, frame[:n], sealed[:n], "prefix stays in clear")

			out, err := c.Open(nil, sealed, n)
			require.NoError(t, err, "size %d prefix %d", size, p)
			require.Equal(t, frame, out)
			if size == 0 {
				require.NotNil(t, out)
			}

			// Two Seals of the same frame differ (fresh IV).
			sealed2 := c.Seal(nil, frame, p)
			require.NotEqual(t, sealed, sealed2)
			require.NotEqual(t, sealed[len(sealed)-IVSize:], sealed2[len(sealed2)-IVSize:])
		}
	}
}

func TestSealAppendsToDst(t *testing.T) {
	c := newTestCipher(t)
	frame := []byte("\x71\x07\x00hello frame")
	head := []byte("HEAD")
	for _, dst := range [][]byte{
		append([]byte(nil), head...),
		append(make([]byte, 0, 200), head...),
	} {
		out := c.Seal(dst, frame, PrefixVideoDelta)
		require.Equal(t, head, out[:len(head)])
		require.Len(t, out, len(head)+len(frame)+Overhead)
		pt, err := c.Open(append([]byte(nil), "XY"...), out[len(head):], PrefixVideoDelta)
		require.NoError(t, err)
		require.Equal(t, append([]byte("XY"), frame...), pt)
	}
}

func TestInPlace(t *testing.T) {
	c := newTestCipher(t)
	for _, size := range []int{0, 1, 3, 10, 50, 1500} {
		frame := make([]byte, size, size+Overhead)
		rand.Read(frame)
		orig := bytes.Clone(frame)
		sealed := c.Seal(frame[:0], frame, PrefixVideoKey)
		if size > 0 {
			require.Same(t, &frame[0], &sealed[0], "no reallocation with enough capacity")
		}
		n := min(PrefixVideoKey, size)
		out, err := c.Open(sealed[:0], sealed, n)
		require.NoError(t, err)
		require.Equal(t, orig, out)
	}
}

func TestOpenLengths(t *testing.T) {
	c := newTestCipher(t)
	for _, n := range []int{0, 1, 3, 10} {
		for l := 0; l <= n+Overhead+2; l++ {
			frame := make([]byte, l)
			rand.Read(frame)
			out, err := c.Open(nil, frame, n)
			switch {
			case l == n+IVSize:
				// Web empty form: the n clear bytes, unauthenticated.
				require.NoError(t, err)
				require.Equal(t, frame[:n], out)
			case l < n+Overhead:
				require.ErrorIs(t, err, ErrShort, "n %d len %d", n, l)
				require.Nil(t, out)
			default:
				// Random bytes do not authenticate.
				require.ErrorIs(t, err, ErrAuth, "n %d len %d", n, l)
				require.Nil(t, out)
			}
		}
	}
	// Prefix larger than the frame, negative prefix, huge prefix.
	_, err := c.Open(nil, make([]byte, 5), 10)
	require.ErrorIs(t, err, ErrShort)
	_, err = c.Open(nil, make([]byte, 40), int(^uint(0)>>1))
	require.ErrorIs(t, err, ErrShort)
	sealed := c.Seal(nil, []byte("abc"), -1)
	out, err := c.Open(nil, sealed, -7)
	require.NoError(t, err)
	require.Equal(t, []byte("abc"), out)
}

func TestOpenWrongPrefixFails(t *testing.T) {
	c := newTestCipher(t)
	frame := make([]byte, 200)
	rand.Read(frame)
	sealed := c.Seal(nil, frame, PrefixVideoKey)
	for _, n := range []int{0, 1, 3, 9, 11} {
		_, err := c.Open(nil, sealed, n)
		require.ErrorIs(t, err, ErrAuth)
	}
}

func TestTamperEveryByte(t *testing.T) {
	c := newTestCipher(t)
	frame := make([]byte, 40)
	rand.Read(frame)
	sealed := c.Seal(nil, frame, PrefixVideoDelta)
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x80
		out, err := c.Open(nil, bad, PrefixVideoDelta)
		if i < PrefixVideoDelta {
			// The clear prefix is not authenticated (protocol §7.1: no AAD).
			require.NoError(t, err)
			require.Equal(t, bad[:PrefixVideoDelta], out[:PrefixVideoDelta])
			continue
		}
		require.ErrorIs(t, err, ErrAuth, "byte %d", i)
		require.Nil(t, out)
	}
	other := newTestCipher(t)
	_, err := other.Open(nil, sealed, PrefixVideoDelta)
	require.ErrorIs(t, err, ErrAuth)
}

func TestSealWithIVPanicsOnBadIV(t *testing.T) {
	c := newTestCipher(t)
	require.Panics(t, func() { c.SealWithIV(nil, []byte{1}, 1, make([]byte, 11)) })
	require.Panics(t, func() { c.SealWithIV(nil, []byte{1}, 1, nil) })
}

func TestZeroAllocs(t *testing.T) {
	c := newTestCipher(t)
	frame := make([]byte, 1200)
	rand.Read(frame)
	sealed := make([]byte, 0, len(frame)+Overhead)
	opened := make([]byte, 0, len(frame))
	allocs := testing.AllocsPerRun(200, func() {
		sealed = c.Seal(sealed[:0], frame, PrefixVideoDelta)
		var err error
		opened, err = c.Open(opened[:0], sealed, PrefixVideoDelta)
		if err != nil {
			panic(err)
		}
	})
	require.Zero(t, allocs)
	require.Equal(t, frame, opened)
	// Failure and empty paths do not allocate either.
	bad := bytes.Clone(sealed)
	bad[5] ^= 1
	allocs = testing.AllocsPerRun(100, func() {
		_, _ = c.Open(opened[:0], bad, PrefixVideoDelta)
		_, _ = c.Open(opened[:0], bad[:15], PrefixVideoDelta)
		_, _ = c.Open(opened[:0], bad[:10], PrefixVideoDelta)
	})
	require.Zero(t, allocs)
}

func TestIVsDistinct(t *testing.T) {
	// Enough Seals to cross several reseeds of the IV generator.
	c := newTestCipher(t)
	seen := map[string]bool{}
	var zero [IVSize]byte
	for range 5 * ivReseed {
		s := c.Seal(nil, []byte{0x78, 1, 2}, PrefixAudio)
		iv := string(s[len(s)-IVSize:])
		require.NotEqual(t, string(zero[:]), iv)
		require.False(t, seen[iv])
		seen[iv] = true
	}
}

func TestIVSourceReseeds(t *testing.T) {
	var s ivSource
	iv := make([]byte, IVSize)
	s.read(iv) // first use seeds
	require.Equal(t, ivReseed-1, s.left)
	for range ivReseed - 1 {
		s.read(iv)
	}
	require.Zero(t, s.left)
	s.read(iv) // reseeds from crypto/rand
	require.Equal(t, ivReseed-1, s.left)

	// Two sources never start with the same IVs (independent seeds).
	var a, b ivSource
	ia, ib := make([]byte, IVSize), make([]byte, IVSize)
	a.read(ia)
	b.read(ib)
	require.NotEqual(t, ia, ib)
}

func TestConcurrent(t *testing.T) {
	c := newTestCipher(t)
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(uint64(w), 1))
			var sealed, opened []byte
			for i := range 500 {
				frame := make([]byte, r.IntN(2000))
				for j := range frame {
					frame[j] = byte(r.Uint32())
				}
				p := []int{PrefixAudio, PrefixVideoDelta, PrefixVideoKey}[i%3]
				sealed = c.Seal(sealed[:0], frame, p)
				var err error
				opened, err = c.Open(opened[:0], sealed, min(p, len(frame)))
				if err == nil && !bytes.Equal(opened, frame) {
					err = fmt.Errorf("worker %d frame %d: mismatch", w, i)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
