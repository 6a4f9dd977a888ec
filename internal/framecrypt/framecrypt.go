package framecrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
)

// Sizes of the trailer appended to every encrypted frame (protocol §7.1).
const (
	IVSize   = 12               // AES-GCM nonce, appended after the tag
	TagSize  = 16               // AES-GCM authentication tag
	Overhead = IVSize + TagSize // bytes added to every frame by Seal
)

// Clear prefix lengths n (protocol §7.2).
const (
	PrefixAudio      = 1  // Opus TOC byte (RFC 6716 §3.1); also the web page's "empty" frame type
	PrefixVideoKey   = 10 // VP8 key frame: 3-byte frame tag + start code + dimensions (RFC 6386 §9.1)
	PrefixVideoDelta = 3  // VP8 interframe: 3-byte frame tag
)

// KeySize is the length of the raw AES-256 key (the base64url-decoded sharedKey).
const KeySize = 32

var (
	// ErrShort is returned by Open for a frame too short to hold the clear
	// prefix plus a complete trailer (see the package documentation).
	ErrShort = errors.New("framecrypt: encrypted frame too short")
	// ErrAuth is returned by Open when AES-GCM authentication fails (wrong key,
	// tampered ciphertext, tag or IV, or a wrong prefix length).
	ErrAuth = errors.New("framecrypt: frame authentication failed")
	// ErrInvalidKey is wrapped by the errors of ParseKey and New. Their
	// messages say what is wrong but never contain key material.
	ErrInvalidKey = errors.New("framecrypt: invalid key")
)

// PrefixVP8 returns the clear prefix length for a VP8 frame: PrefixVideoKey
// (10) if bit 0 of the first byte, the inverted key-frame flag P of the VP8
// frame tag (RFC 6386 §9.1), is 0, and PrefixVideoDelta (3) otherwise. A
// zero-length frame gets 1, as the web page's frame type "empty" does.
//
// This is the rule of the iOS app; the web page uses the frame type reported
// by WebRTC, which agrees for VP8.
func PrefixVP8(frame []byte) int {
	if len(frame) == 0 {
		return 1
	}
	if frame[0]&1 == 0 {
		return PrefixVideoKey
	}
	return PrefixVideoDelta
}

// Cipher encrypts and decrypts media frames under one call key.
//
// A Cipher is safe for concurrent use by multiple goroutines (for example the
// audio and video send and receive loops of one call sharing it): the AES-GCM
// instance is built once by New and is immutable afterwards, and the IV
// source is guarded by a mutex. Concurrent calls must of course not share
// their dst buffers.
type Cipher struct {
	aead cipher.AEAD
	ivs  ivSource
}

// New returns a Cipher for the 32-byte raw AES-256 key (the result of
// ParseKey). Any other length is an error wrapping ErrInvalidKey; the error
// never contains key material. The AES key schedule and the GCM instance are
// built here once, so Seal and Open do no per-frame setup; New does not
// retain key, so the caller may wipe it afterwards.
func New(key []byte) (*Cipher, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: must be %d bytes, got %d", ErrInvalidKey, KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("framecrypt: aes: %w", err)
	}
	aead, err := cipher.NewGCM(block) // 12-byte nonce, 16-byte tag
	if err != nil {
		return nil, fmt.Errorf("framecrypt: gcm: %w", err)
	}
	return &Cipher{aead: aead}, nil
}

// Destroy makes the Cipher unusable and drops its AES key schedule so that
// it becomes garbage. Go's crypto/aes offers no way to overwrite its round
// keys in place; callers wipe their own copies of the raw key. Call it only
// when no Seal or Open runs or will run: both panic afterwards.
func (c *Cipher) Destroy() { c.aead = nil }

// clampPrefix limits n to [0, size].
func clampPrefix(n, size int) int {
	if n < 0 {
		return 0
	}
	if n > size {
		return size
	}
	return n
}

// Seal appends the encrypted form of frame to dst and returns the updated
// slice. The first prefix bytes of frame (clamped to [0, len(frame)]) stay in
// clear; the rest is encrypted with AES-256-GCM under a fresh random 12-byte
// IV, and tag and IV are appended. The result is always len(frame)+Overhead
// bytes longer than dst.
//
// When nothing follows the clear prefix, Seal still appends the tag of the
// empty plaintext (the iOS-native form frame||tag||IV), not the web page's
// frame||IV: both receivers accept the native form, but iOS rejects the
// short one.
//
// To encrypt in place, pass frame[:0] as dst (with Overhead bytes of spare
// capacity to avoid an allocation). Otherwise the spare capacity of dst must
// not overlap frame.
func (c *Cipher) Seal(dst, frame []byte, prefix int) []byte {
	return c.seal(dst, frame, prefix, nil)
}

// SealWithIV is Seal with a caller-chosen 12-byte IV. It exists for test
// vectors only: an IV must never repeat under one key (a repeated AES-GCM
// nonce reveals the XOR of the plaintexts and lets an attacker forge tags),
// so real senders must use Seal. It panics if len(iv) != IVSize.
func (c *Cipher) SealWithIV(dst, frame []byte, prefix int, iv []byte) []byte {
	if len(iv) != IVSize {
		panic("framecrypt: SealWithIV: IV must be 12 bytes")
	}
	return c.seal(dst, frame, prefix, iv)
}

func (c *Cipher) seal(dst, frame []byte, prefix int, iv []byte) []byte {
	n := clampPrefix(prefix, len(frame))
	base := len(dst)
	total := base + len(frame) + Overhead
	var out []byte
	if cap(dst) >= total {
		out = dst[:total]
	} else {
		out = make([]byte, total, total+total/4)
		copy(out, dst)
	}
	// Layout: out[base:] = prefix | ciphertext | tag | IV. The IV is written
	// first and read from its final place, so no temporary escapes.
	ivOut := out[total-IVSize:]
	if iv != nil {
		copy(ivOut, iv)
	} else {
		c.ivs.read(ivOut)
	}
	body := frame[n:] // read before the prefix copy (in-place: same bytes)
	copy(out[base:base+n], frame[:n])
	c.aead.Seal(out[base+n:base+n], ivOut, body, nil)
	return out
}

// Open decrypts an encrypted frame whose clear prefix is prefix bytes long
// and appends the plain frame (clear prefix followed by the decrypted rest)
// to dst. A negative prefix counts as 0.
//
//   - len(frame) == prefix+12: the web page's form for a frame with nothing
//     after the clear prefix (prefix||IV, no tag). The prefix bytes are
//     returned, as the page's decoder does; there is nothing to
//     authenticate, and they were sent in clear anyway. (Someone on the path
//     can thus cut a frame down to its clear prefix, which is no more than
//     dropping it; no encrypted content can be forged this way.)
//   - len(frame) < prefix+12 (including prefix > len(frame)), or
//     prefix+12 < len(frame) < prefix+28: ErrShort. The page would return
//     the first n bytes of a frame shorter than n+12 unchecked; we do not.
//   - otherwise the rest is authenticated and decrypted; failure is ErrAuth
//     and no plaintext is returned (the frame must be dropped).
//
// On error the returned slice is nil (the spare capacity of dst may hold the
// clear prefix); on success it is never nil. To decrypt in place, pass
// frame[:0] as dst; otherwise the spare capacity of dst must not overlap
// frame.
func (c *Cipher) Open(dst, frame []byte, prefix int) ([]byte, error) {
	n := prefix
	if n < 0 {
		n = 0
	}
	if n > len(frame) {
		return nil, ErrShort
	}
	rest := len(frame) - n
	if rest == IVSize {
		return nonNil(append(dst, frame[:n]...)), nil
	}
	if rest < Overhead {
		return nil, ErrShort
	}
	iv := frame[len(frame)-IVSize:]
	sealed := frame[n : len(frame)-IVSize]
	out, err := c.aead.Open(append(dst, frame[:n]...), iv, sealed, nil)
	if err != nil {
		return nil, ErrAuth
	}
	return nonNil(out), nil
}

// nonNil makes a successful empty result distinguishable from the nil of a
// failure; a zero-length composite literal does not allocate.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// ivReseed is how many IVs an ivSource hands out before it reseeds its
// ChaCha8 generator from crypto/rand.
//
// Why not crypto/rand per frame: on the reference machine (2-core amd64,
// Linux 6.18, Go 1.26) crypto/rand.Read of 12 bytes costs about 40 ns, which
// made Seal+Open of a 160-byte frame (a typical Opus packet) 1.29x the cost of
// raw AES-GCM seal+open (224 ns vs 173 ns). Buffering crypto/rand output does
// not remove the cost, which is throughput-bound (a 4 KiB buffer still cost
// about 30 ns per IV with its mutex, 1.24x). math/rand/v2's ChaCha8, which is
// documented as a cryptographically strong generator (and erases its key as
// it goes), costs about 19 ns per IV including the mutex (1.19x); see
// BenchmarkIVSource and BenchmarkFrame.
//
// Reseeding from crypto/rand every 256 IVs costs about 0.2 ns per IV and
// bounds what a cloned process image (for example a VM snapshot resumed more
// than once) can repeat: the clones share at most the IVs until the next
// reseed, after which each draws its own seed from the kernel. IVs are public
// (they travel in clear after every frame); GCM needs them unique, which 96
// random bits per frame give far beyond any call's frame count.
const ivReseed = 256

// ivSource hands out random IVs from a ChaCha8 generator seeded from
// crypto/rand. It is safe for concurrent use.
type ivSource struct {
	mu   sync.Mutex
	rng  mrand.ChaCha8
	left int // IVs to hand out before the next reseed; 0 = seed first
}

func (s *ivSource) read(p []byte) {
	s.mu.Lock()
	if s.left == 0 {
		var seed [32]byte
		rand.Read(seed[:]) // never fails (Go 1.24+: crashes the program instead)
		s.rng.Seed(seed)
		clear(seed[:])
		s.left = ivReseed
	}
	s.left--
	s.rng.Read(p) // always fills p
	s.mu.Unlock()
}
