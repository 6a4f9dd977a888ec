package framecrypt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// fuzzKey is the §5.2 sharedKey, the key of frame-vectors-fixed-iv.json, so
// that the vector seeds authenticate and the fuzzer mutates genuine frames
// (mutations of them must fail, except in the unauthenticated clear prefix).
var fuzzKey = mustHex(sharedKey52Hex)

var fuzzPrefixes = [...]int{PrefixAudio, PrefixVideoDelta, PrefixVideoKey}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzOpen feeds arbitrary bytes to Open with a prefix from {1, 3, 10}: it
// must never panic or modify its input, must return nil with an error
// (ErrShort below n+28 bytes except the web-empty length n+12, ErrAuth at or
// above), and may succeed only for the unauthenticated web-empty form
// (exactly n+12 bytes) or a genuinely sealed frame (the seeds and their
// prefix mutations). Whatever it returns must survive Seal then Open.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{}, uint8(0))
	f.Add([]byte{0x78}, uint8(0))
	// frame-vectors-fixed-iv.json (key = fuzzKey): the 1-byte frame in the
	// web and native empty forms, the VP8 delta, key and Opus frames.
	f.Add(mustHex("78000000000000000000000000"), uint8(0))
	f.Add(mustHex("78742985dd0d95d4cc8dfa66860d78144c000000000000000000000000"), uint8(0))
	f.Add(mustHex("7107005186c9f2a99e6b3e0a9665ac1eac802d747bd647cd373770e1d24231f6a0a1a2a3a4a5a6a7a8a9aaab"), uint8(1))
	f.Add(mustHex("5019009d012a8002e00180f488ed3970fbae896eee9e99806f175637c1e76b50768001e568b1ec8c581856ac7472b1a01e18db12b9edc2fba00c0d0e0f1011121314151617"), uint8(2))
	f.Add(mustHex("785855a877f4f39c1d09f572d3e3f460028043933d7e3cc7c49c91232457f46207002bffffffffffffffffffffffff"), uint8(0))
	// The page's 12-byte encrypted "empty" frame (frame-vectors.json).
	f.Add(mustHex("c7f05d7df2eafd3f812b2a47"), uint8(0))
	// Lengths around the boundaries for n = 10.
	f.Add(make([]byte, 38), uint8(2))
	f.Add(make([]byte, 37), uint8(2))
	f.Add(make([]byte, 22), uint8(2))

	c, err := New(fuzzKey)
	if err != nil {
		f.Fatal(err)
	}
	// Genuinely sealed frames under the fuzz key, one per prefix.
	iv := mustHex("0c0d0e0f1011121314151617")
	f.Add(c.SealWithIV(nil, []byte{0x78, 1, 2, 3}, PrefixAudio, iv), uint8(0))
	f.Add(c.SealWithIV(nil, mustHex("71070048656c6c6f"), PrefixVideoDelta, iv), uint8(1))
	f.Add(c.SealWithIV(nil, mustHex("5019009d012a8002e001"), PrefixVideoKey, iv), uint8(2))
	f.Fuzz(func(t *testing.T, frame []byte, sel uint8) {
		n := fuzzPrefixes[int(sel)%len(fuzzPrefixes)]
		orig := bytes.Clone(frame)
		out, err := c.Open(nil, frame, n)
		if !bytes.Equal(orig, frame) {
			t.Fatal("Open modified its input")
		}
		if err != nil {
			if out != nil {
				t.Fatal("non-nil output with error")
			}
			if len(frame) < n+Overhead && err != ErrShort {
				t.Fatalf("len %d n %d: %v, want ErrShort", len(frame), n, err)
			}
			if len(frame) >= n+Overhead && err != ErrAuth {
				t.Fatalf("len %d n %d: %v, want ErrAuth", len(frame), n, err)
			}
			return
		}
		switch {
		case len(frame) == n+IVSize:
			if !bytes.Equal(out, frame[:n]) {
				t.Fatal("web-empty form did not return the clear prefix")
			}
		case len(frame) >= n+Overhead:
			// Only possible for genuinely sealed input (e.g. the seeds).
			if len(out) != len(frame)-Overhead || !bytes.Equal(out[:n], frame[:n]) {
				t.Fatal("bad plaintext length or prefix")
			}
		default:
			t.Fatalf("len %d n %d accepted", len(frame), n)
		}
		if out == nil {
			t.Fatal("nil output without error")
		}
		// The result is a frame that Seal then Open round trips.
		resealed := c.Seal(nil, out, n)
		if len(resealed) != len(out)+Overhead {
			t.Fatalf("resealed len %d for %d", len(resealed), len(out))
		}
		back, err := c.Open(nil, resealed, n)
		if err != nil || !bytes.Equal(back, out) {
			t.Fatalf("Seal/Open of the result: %v", err)
		}
	})
}

// FuzzSealOpen checks that Open(Seal(frame)) gives frame back for arbitrary
// frames and prefixes, with the output always len(frame)+Overhead long.
func FuzzSealOpen(f *testing.F) {
	f.Add([]byte{}, 1)
	f.Add([]byte{0x78}, 1)
	f.Add(mustHex("5019009d012a8002e0010102030405060708090a0b0c0d0e0f"), 10)
	f.Add(mustHex("71070048656c6c6f2c20564038206465"), 3)
	f.Add([]byte("short"), 10)
	f.Add([]byte("negative"), -4)

	c, err := New(fuzzKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, frame []byte, prefix int) {
		sealed := c.Seal(nil, frame, prefix)
		if len(sealed) != len(frame)+Overhead {
			t.Fatalf("sealed len %d, frame len %d", len(sealed), len(frame))
		}
		n := min(max(prefix, 0), len(frame))
		if !bytes.Equal(sealed[:n], frame[:n]) {
			t.Fatal("clear prefix changed")
		}
		out, err := c.Open(nil, sealed, n)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(out, frame) {
			t.Fatal("round trip mismatch")
		}
		if len(sealed) > n {
			bad := bytes.Clone(sealed)
			bad[len(bad)-1] ^= 1 // IV bit
			if _, err := c.Open(nil, bad, n); err != ErrAuth {
				t.Fatalf("tampered IV: %v", err)
			}
		}
	})
}

// FuzzParseKey: the text form of a sharedKey (protocol §5.2) parses to 32
// bytes that print back to a text that parses the same, or fails with an
// error wrapping ErrInvalidKey that never quotes the input.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{
		"Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I=", "Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I",
		"Sl2dW6TOLeFyjjv0gDUPJeB+IclH0Z4zdvCbPB4WF0I=", "Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I==", "=", "",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("error does not wrap ErrInvalidKey: %v", err)
			}
			if len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("error quotes the input: %v", err)
			}
			return
		}
		if len(k) != KeySize {
			t.Fatalf("%d bytes", len(k))
		}
		back, err := ParseKey(EncodeKey(k))
		if err != nil || !bytes.Equal(k, back) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
