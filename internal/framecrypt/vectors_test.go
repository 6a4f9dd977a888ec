package framecrypt

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

type fixedIVFile struct {
	KeyHex    string `json:"keyHex"`
	SharedKey string `json:"sharedKey"`
	Frames    []struct {
		Name                    string `json:"name"`
		UnencryptedPrefixBytes  int    `json:"unencryptedPrefixBytes"`
		PlainFrameHex           string `json:"plainFrameHex"`
		IVHex                   string `json:"ivHex"`
		EncryptedFrameHex       string `json:"encryptedFrameHex"`
		EncryptedFrameNativeHex string `json:"encryptedFrameNativeHex"`
	} `json:"frames"`
}

type pageVector struct {
	Name         string `json:"name"`
	FrameType    string `json:"frameType"`
	AESKey       string `json:"aesKey"`
	PlainHex     string `json:"plainHex"`
	EncryptedHex string `json:"encryptedHex"`
	HeaderBytes  int    `json:"headerBytes"`
	IVHex        string `json:"ivHex"`
	DecryptedHex string `json:"decryptedHex"`
	RoundTrips   bool   `json:"roundTrips"`
	Expect       string `json:"expect"`
}

type pageFile struct {
	Key struct {
		AESKey string `json:"aesKey"`
		KeyHex string `json:"keyHex"`
	} `json:"key"`
	Data                   []pageVector `json:"data"`
	Tampered               []pageVector `json:"tampered"`
	HeaderNotAuthenticated []pageVector `json:"headerNotAuthenticated"`
}

func loadJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// keyFromB64 decodes a padded base64url aesKey as the page and the chat core
// produce it (protocol §5.2), with ParseKey.
func keyFromB64(t *testing.T, s string) *Cipher {
	t.Helper()
	key, err := ParseKey(s)
	require.NoError(t, err)
	require.Equal(t, s, EncodeKey(key))
	c, err := New(key)
	require.NoError(t, err)
	return c
}

// prefixForType is the web page's rule (call.ts initialPlainTextRequired).
func prefixForType(t *testing.T, frameType string) int {
	t.Helper()
	switch frameType {
	case "key":
		return PrefixVideoKey
	case "delta":
		return PrefixVideoDelta
	case "empty", "audio":
		return PrefixAudio
	}
	t.Fatalf("unknown frameType %q", frameType)
	return 0
}

func TestFixedIVVectors(t *testing.T) {
	var f fixedIVFile
	loadJSON(t, "../../testdata/frame-vectors-fixed-iv.json", &f)
	require.Len(t, f.Frames, 4)
	c := keyFromB64(t, f.SharedKey)
	keyHex, _ := base64.URLEncoding.DecodeString(f.SharedKey)
	require.Equal(t, f.KeyHex, hex.EncodeToString(keyHex))

	for i, v := range f.Frames {
		t.Run(v.Name, func(t *testing.T) {
			plain := unhex(t, v.PlainFrameHex)
			iv := unhex(t, v.IVHex)
			n := v.UnencryptedPrefixBytes
			if i < 3 {
				// Real VP8/Opus frames: PrefixVP8 agrees with the vector's n.
				if n != PrefixAudio {
					require.Equal(t, n, PrefixVP8(plain))
				}
			}

			got := c.SealWithIV(nil, plain, n, iv)
			want := v.EncryptedFrameHex
			if v.EncryptedFrameNativeHex != "" {
				// Case 4: nothing after the prefix. Seal emits the iOS-native
				// form prefix||tag||IV, not the page's prefix||IV.
				require.Equal(t, 3, i)
				want = v.EncryptedFrameNativeHex
			}
			require.Equal(t, want, hex.EncodeToString(got))
			require.Len(t, got, len(plain)+Overhead)

			out, err := c.Open(nil, unhex(t, v.EncryptedFrameHex), n)
			require.NoError(t, err)
			require.Equal(t, v.PlainFrameHex, hex.EncodeToString(out))

			if v.EncryptedFrameNativeHex != "" {
				// Both empty forms decode to the 1-byte frame.
				web := unhex(t, v.EncryptedFrameHex)
				require.Len(t, web, n+IVSize)
				out, err := c.Open(nil, unhex(t, v.EncryptedFrameNativeHex), n)
				require.NoError(t, err)
				require.Equal(t, v.PlainFrameHex, hex.EncodeToString(out))

				// The native form's tag is checked: flip a tag bit.
				bad := unhex(t, v.EncryptedFrameNativeHex)
				bad[n] ^= 1
				_, err = c.Open(nil, bad, n)
				require.ErrorIs(t, err, ErrAuth)
			}
		})
	}
}

func TestPageVectorsData(t *testing.T) {
	var f pageFile
	loadJSON(t, "../../testdata/frame-vectors.json", &f)
	key, err := base64.URLEncoding.DecodeString(f.Key.AESKey)
	require.NoError(t, err)
	require.Equal(t, f.Key.KeyHex, hex.EncodeToString(key))

	names := map[string]bool{}
	for _, v := range f.Data {
		names[v.Name] = true
		t.Run(v.Name, func(t *testing.T) {
			c := keyFromB64(t, v.AESKey)
			n := prefixForType(t, v.FrameType)
			enc := unhex(t, v.EncryptedHex)
			out, err := c.Open(nil, enc, n)

			if v.Name == "empty" {
				// The page encrypts a zero-length 'empty' frame to its 12-byte
				// IV alone, and its decoder "decrypts" that to 1 byte (the first
				// IV byte, decryptedHex "c7") without any check. We use prefix 1
				// for 'empty', so 12 < 1+12: ErrShort, and the frame is dropped
				// (dropping an empty frame is harmless).
				require.Len(t, enc, IVSize)
				require.Equal(t, "c7", v.DecryptedHex)
				require.False(t, v.RoundTrips)
				require.ErrorIs(t, err, ErrShort)
				require.Nil(t, out)

				// What we send for the same frame instead: tag||IV (28 bytes),
				// the native form with an empty prefix. It opens with the
				// clamped prefix 0 (the sender's effective n) to the empty frame.
				sealed := c.Seal(nil, nil, n)
				require.Len(t, sealed, Overhead)
				back, err := c.Open(nil, sealed, 0)
				require.NoError(t, err)
				require.Empty(t, back)
				// With the receiver's prefix 1 it is 28 bytes, between 1+12
				// and 1+28: ErrShort, dropped like the page's form.
				_, err = c.Open(nil, sealed, n)
				require.ErrorIs(t, err, ErrShort)
				return
			}

			// Every other entry: decrypting with the frameType's prefix gives
			// decryptedHex, which equals plainHex.
			require.NoError(t, err)
			require.Equal(t, v.DecryptedHex, hex.EncodeToString(out))
			require.Equal(t, v.PlainHex, v.DecryptedHex)
			require.True(t, v.RoundTrips)
			require.Equal(t, v.IVHex, hex.EncodeToString(enc[len(enc)-IVSize:]))
			plain := unhex(t, v.PlainHex)
			if v.FrameType == "key" || v.FrameType == "delta" {
				require.Equal(t, n, PrefixVP8(plain))
			}

			if len(plain) <= n {
				// vp8-key-header-only and audio-toc-only: the page's web-empty
				// form prefix||IV (exactly n+12 bytes) returns the clear bytes.
				require.Len(t, enc, n+IVSize)
			}

			// Re-encrypting with the page's IV: if there is something to
			// encrypt, our output is byte-identical to the page's; otherwise
			// ours is the native form (page's prefix, tag, same IV).
			iv := unhex(t, v.IVHex)
			ours := c.SealWithIV(nil, plain, n, iv)
			require.Len(t, ours, len(plain)+Overhead)
			if len(plain) > n {
				require.Equal(t, v.EncryptedHex, hex.EncodeToString(ours))
			} else {
				require.Equal(t, plain, ours[:len(plain)])
				require.Equal(t, iv, ours[len(ours)-IVSize:])
			}
			back, err := c.Open(nil, ours, n)
			require.NoError(t, err)
			require.Equal(t, plain, back)
		})
	}
	require.Equal(t, map[string]bool{
		"audio-opus": true, "vp8-key": true, "vp8-delta": true, "empty": true,
		"vp8-key-header-only": true, "audio-toc-only": true,
	}, names, "every data entry is covered above")
}

func TestPageVectorsTampered(t *testing.T) {
	var f pageFile
	loadJSON(t, "../../testdata/frame-vectors.json", &f)
	require.Len(t, f.Tampered, 5)
	for _, v := range f.Tampered {
		t.Run(v.Name, func(t *testing.T) {
			require.Equal(t, "decrypt-fails", v.Expect)
			// The wrong-key case carries its own (wrong) aesKey.
			c := keyFromB64(t, v.AESKey)
			out, err := c.Open(nil, unhex(t, v.EncryptedHex), prefixForType(t, v.FrameType))
			require.ErrorIs(t, err, ErrAuth)
			require.Nil(t, out)
			// The same with PrefixVP8 (iOS rule) where it applies.
			if v.FrameType != "audio" {
				_, err = c.Open(nil, unhex(t, v.EncryptedHex), PrefixVP8(unhex(t, v.EncryptedHex)))
				require.Error(t, err)
			}
		})
	}
}

func TestPageVectorsHeaderNotAuthenticated(t *testing.T) {
	var f pageFile
	loadJSON(t, "../../testdata/frame-vectors.json", &f)
	require.Len(t, f.HeaderNotAuthenticated, 1)
	v := f.HeaderNotAuthenticated[0]
	c := keyFromB64(t, v.AESKey)
	enc := unhex(t, v.EncryptedHex)
	require.Equal(t, "decrypt-succeeds", v.Expect)

	// The clear prefix is NOT authenticated (no AAD): that is the SimpleX
	// frame format, shared by the web page and iOS. With the prefix taken from
	// the frame type ("key" -> 10), the flipped header byte passes through.
	out, err := c.Open(nil, enc, prefixForType(t, v.FrameType))
	require.NoError(t, err)
	require.Equal(t, v.DecryptedHex, hex.EncodeToString(out))

	// Choosing n from the received bytes (PrefixVP8, the iOS rule), the
	// flipped P bit makes it a delta frame: n = 3, so 7 clear header bytes are
	// fed to AES-GCM as ciphertext and authentication fails.
	require.Equal(t, PrefixVideoDelta, PrefixVP8(enc))
	_, err = c.Open(nil, enc, PrefixVP8(enc))
	require.ErrorIs(t, err, ErrAuth)
}
