package framecrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
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
// A Cipher is safe for concurrent use by multiple goroutines: the AES-GCM
// instance is immutable after New, and the IV source is guarded by a mutex.
type Cipher struct {
	aead cipher.AEAD
	ivs  ivSource
}

// New returns a Cipher for the 32-byte raw AES-256 key. The error never
// contains key material.
func New(key []byte) (*Cipher, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("framecrypt: key must be %d bytes, got %d", KeySize, len(key))
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
//     returned; there is nothing to authenticate, and they are clear anyway.
//   - len(frame) < prefix+12, or prefix+12 < len(frame) < prefix+28: ErrShort.
//   - otherwise the rest is authenticated and decrypted; failure is ErrAuth
//     and nothing is returned (the frame must be dropped).
//
// On error the returned slice is nil; on success it is never nil. To decrypt in place, pass frame[:0] as
// dst; otherwise the spare capacity of dst must not overlap frame.
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

// ivBufSize is the size of the per-Cipher buffer of random bytes that IVs
// are taken from.
//
// Why a buffer: on the reference machine crypto/rand.Read of 12 bytes cost
// about 40 ns per call, which made Seal+Open of a 160-byte frame (a typical
// Opus packet) about 1.28x the cost of raw AES-GCM seal+open. Reading 4 KiB at
// a time amortises the system call to about 17 ns per IV (plus an uncontended
// mutex), which brings it under 1.25x; see BenchmarkIVSource and
// BenchmarkFrame. The bytes still come straight from crypto/rand (the
// operating system CSPRNG), each byte is handed out once, and handed-out bytes
// are wiped from the buffer. IVs are public (they travel in clear at the end
// of each frame), so holding upcoming ones in memory reveals nothing secret.
// The one cost: if a process snapshot (for example a VM snapshot) is resumed
// more than once, the clones would hand out the same buffered IVs (at most
// 341), whereas the kernel's generator reseeds on VM fork.
const ivBufSize = 4096

// ivSource hands out random IVs from a buffer filled by crypto/rand.
type ivSource struct {
	mu  sync.Mutex
	buf [ivBufSize]byte
	off int  // next unused byte of buf
	ok  bool // buf has been filled at least once
}

func (s *ivSource) read(p []byte) {
	s.mu.Lock()
	if !s.ok || s.off+len(p) > len(s.buf) {
		rand.Read(s.buf[:]) // never fails (Go 1.24+: crashes the program instead)
		s.off = 0
		s.ok = true
	}
	copy(p, s.buf[s.off:s.off+len(p)])
	clear(s.buf[s.off : s.off+len(p)])
	s.off += len(p)
	s.mu.Unlock()
}
