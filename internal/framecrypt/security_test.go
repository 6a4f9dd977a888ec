package framecrypt

// Security properties of the frame layer at scale (RELIABILITY.md,
// "Security"): random tampering is rejected and counted, the IVs of a
// million frames never repeat, and a destroyed Cipher cannot be used.

import (
	"bytes"
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// tamperTrials is the number of tampered frames TestRandomTamperingRejected tries.
const tamperTrials = 100_000

// randomFrame makes an encoded frame of one of the three kinds with its
// clear prefix length (protocol §7.2).
func randomFrame(rng *mrand.Rand) (frame []byte, video bool) {
	frame = make([]byte, rng.IntN(1200))
	for i := range frame {
		frame[i] = byte(rng.Uint32())
	}
	switch rng.IntN(3) {
	case 0: // Opus: the TOC byte
	case 1: // VP8 key frame: P bit clear
		video = true
		if len(frame) > 0 {
			frame[0] &^= 1
		}
	default: // VP8 delta frame
		video = true
		if len(frame) > 0 {
			frame[0] |= 1
		}
	}
	return frame, video
}

// prefixOf is the clear prefix length the receiver takes from the frame it
// got, as the SDK does: 1 for audio, the VP8 P bit for video.
func prefixOf(frame []byte, video bool) int {
	if video {
		return PrefixVP8(frame)
	}
	return PrefixAudio
}

// tamperOnce changes sealed in one of several ways an attacker on the path
// could (one who has broken DTLS-SRTP, SECURITY.md).
func tamperOnce(rng *mrand.Rand, sealed []byte) []byte {
	t := bytes.Clone(sealed)
	switch rng.IntN(8) {
	case 0, 1: // one bit anywhere
		i := rng.IntN(len(t))
		t[i] ^= 1 << rng.IntN(8)
	case 2: // several random bytes
		for range 1 + rng.IntN(8) {
			t[rng.IntN(len(t))] = byte(rng.Uint32())
		}
	case 3: // cut short
		t = t[:rng.IntN(len(t))]
	case 4: // bytes appended
		extra := make([]byte, 1+rng.IntN(40))
		for i := range extra {
			extra[i] = byte(rng.Uint32())
		}
		t = append(t, extra...)
	case 5: // a new IV
		for i := len(t) - IVSize; i < len(t); i++ {
			t[i] = byte(rng.Uint32())
		}
	case 6: // the tag zeroed
		if len(t) >= Overhead {
			clear(t[len(t)-Overhead : len(t)-IVSize])
		}
	default: // all of it replaced, same length
		for i := range t {
			t[i] = byte(rng.Uint32())
		}
	}
	return t
}

// TestRandomTamperingRejected seals 100,000 random frames (Opus, VP8 key
// and delta frames of 0 to 1,199 bytes) and changes each in a random way
// (bit flips, random bytes, truncation, extension, a new IV, a zeroed tag,
// all bytes replaced). Every frame changed beyond its clear prefix is
// rejected. The clear prefix is not authenticated in the SimpleX format
// (protocol §7.1, no AAD; SECURITY.md): a frame changed only there is
// accepted with the changed prefix and the original rest, unless the
// change flips the VP8 key-frame bit, which changes the prefix length and
// so fails. A frame cut down to exactly its clear prefix and IV is the web
// page's form of an empty frame (protocol §7.4) and yields only the clear
// prefix. No accepted frame ever carries content that was not sealed.
func TestRandomTamperingRejected(t *testing.T) {
	key := make([]byte, KeySize)
	rand.Read(key)
	c, err := New(key)
	require.NoError(t, err)
	rng := mrand.New(mrand.NewPCG(1, 2))
	var rejectedAuth, rejectedShort, prefixOnly, cutToPrefix int
	for trial := range tamperTrials {
		frame, video := randomFrame(rng)
		n := prefixOf(frame, video)
		sealed := c.Seal(nil, frame, n)
		tampered := tamperOnce(rng, sealed)
		for bytes.Equal(tampered, sealed) {
			tampered = tamperOnce(rng, sealed)
		}
		got, err := c.Open(nil, tampered, prefixOf(tampered, video))
		nClear := min(n, len(frame))
		onlyPrefix := len(tampered) == len(sealed) && bytes.Equal(tampered[nClear:], sealed[nClear:])
		switch {
		case errors.Is(err, ErrAuth):
			rejectedAuth++
		case errors.Is(err, ErrShort):
			rejectedShort++
		case err != nil:
			t.Fatalf("trial %d: unexpected error %v", trial, err)
		case onlyPrefix:
			prefixOnly++
			require.Equal(t, frame[nClear:], got[nClear:], "trial %d: the authenticated part is the sealed one", trial)
			require.Equal(t, tampered[:nClear], got[:nClear], "trial %d", trial)
		case len(tampered) == prefixOf(tampered, video)+IVSize:
			cutToPrefix++
			require.Equal(t, tampered[:len(tampered)-IVSize], got, "trial %d: only the clear bytes", trial)
		default:
			t.Fatalf("trial %d: a frame changed beyond its clear prefix was accepted (%d → %d bytes)", trial, len(sealed), len(tampered))
		}
	}
	rejected := rejectedAuth + rejectedShort
	t.Logf("%d tampered frames: %d rejected (%d failed authentication, %d too short), %d accepted with only the unauthenticated clear prefix changed, %d cut down to their clear prefix",
		tamperTrials, rejected, rejectedAuth, rejectedShort, prefixOnly, cutToPrefix)
	require.Equal(t, tamperTrials, rejected+prefixOnly+cutToPrefix)
	require.Greater(t, rejected, tamperTrials*9/10)
	require.Positive(t, prefixOnly, "the campaign did change prefixes alone")
}

// TestIVsUniqueOverAMillionFrames: a call's frames share one key in both
// directions (protocol §7.4), so AES-GCM needs every IV unique. A million
// frames sealed by four goroutines on one Cipher, and 100,000 more by a
// second Cipher (another call, or the other direction's sender), give a
// million and a hundred thousand distinct, non-zero IVs.
func TestIVsUniqueOverAMillionFrames(t *testing.T) {
	const perCipher, workers, other = 1_000_000, 4, 100_000
	key := make([]byte, KeySize)
	rand.Read(key)
	a, err := New(key)
	require.NoError(t, err)
	b, err := New(key)
	require.NoError(t, err)
	ivs := make([][IVSize]byte, perCipher+other)
	var wg sync.WaitGroup
	seal := func(c *Cipher, out [][IVSize]byte) {
		defer wg.Done()
		buf := make([]byte, 0, 1+Overhead)
		for i := range out {
			s := c.Seal(buf[:0], []byte{0x78}, PrefixAudio)
			copy(out[i][:], s[len(s)-IVSize:])
		}
	}
	per := perCipher / workers
	for w := range workers {
		wg.Add(1)
		go seal(a, ivs[w*per:(w+1)*per])
	}
	wg.Add(1)
	go seal(b, ivs[perCipher:])
	wg.Wait()
	slices.SortFunc(ivs, func(x, y [IVSize]byte) int { return bytes.Compare(x[:], y[:]) })
	var zero [IVSize]byte
	require.NotEqual(t, zero, ivs[0], "no all-zero IV")
	for i := 1; i < len(ivs); i++ {
		if ivs[i] == ivs[i-1] {
			t.Fatalf("IV %x repeated", ivs[i])
		}
	}
	t.Logf("%d IVs, all distinct", len(ivs))
}

// TestDestroyedCipherIsUnusable: after Destroy (the call ended) neither
// Seal nor Open can run, so no frame is sealed or opened with a key the
// call has given up. New keeps no reference to the key it was given: the
// caller's copy can be wiped at once and the Cipher still works. (Go's
// crypto/aes keeps the expanded round keys in its own memory, which Go
// offers no way to overwrite; Destroy drops the Cipher's reference so that
// they become garbage.)
func TestDestroyedCipherIsUnusable(t *testing.T) {
	key := make([]byte, KeySize)
	rand.Read(key)
	c, err := New(key)
	require.NoError(t, err)
	clear(key)
	sealed := c.Seal(nil, []byte{0x78, 1, 2, 3}, PrefixAudio)
	plain, err := c.Open(nil, sealed, PrefixAudio)
	require.NoError(t, err, "the wiped slice was not the Cipher's")
	require.Equal(t, []byte{0x78, 1, 2, 3}, plain)
	other, err := New(key) // the all-zero key
	require.NoError(t, err)
	_, err = other.Open(nil, sealed, PrefixAudio)
	require.ErrorIs(t, err, ErrAuth)

	c.Destroy()
	require.Panics(t, func() { c.Seal(nil, []byte{0x78}, PrefixAudio) })
	require.Panics(t, func() { _, _ = c.Open(nil, sealed, PrefixAudio) })
}
