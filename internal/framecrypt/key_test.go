package framecrypt

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// sharedKey52 is the §5.2 vector (RFC 7748 §6.1 keys), also the key of
// frame-vectors-fixed-iv.json.
const (
	sharedKey52    = "Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I="
	sharedKey52Hex = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
)

func TestParseKeyValid(t *testing.T) {
	for _, s := range []string{
		sharedKey52,
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", // frame-vectors.json key
		"__79_Pv6-fj39vX08_Lx8O_u7ezr6uno5-bl5OPi4eA=", // its wrong-key case: uses '-' and '_'
	} {
		require.Len(t, s, 44)
		padded, err := ParseKey(s)
		require.NoError(t, err, s)
		require.Len(t, padded, KeySize)
		unpadded, err := ParseKey(strings.TrimSuffix(s, "="))
		require.NoError(t, err, s)
		require.Equal(t, padded, unpadded, "padded and unpadded forms give the same key")
		require.Equal(t, s, EncodeKey(padded), "EncodeKey emits the padded form")

		want, err := base64.URLEncoding.DecodeString(s)
		require.NoError(t, err)
		require.Equal(t, want, padded)
	}
	k, err := ParseKey(sharedKey52)
	require.NoError(t, err)
	require.Equal(t, sharedKey52Hex, hex.EncodeToString(k))

	// Random keys round trip through both forms.
	for i := range 50 {
		k := bytes.Repeat([]byte{byte(i * 37)}, KeySize)
		k[i%KeySize] ^= 0xff
		s := EncodeKey(k)
		require.Len(t, s, 44)
		require.True(t, strings.HasSuffix(s, "="))
		got, err := ParseKey(s)
		require.NoError(t, err)
		require.Equal(t, k, got)
		got, err = ParseKey(s[:43])
		require.NoError(t, err)
		require.Equal(t, k, got)
	}
}

func TestParseKeyInvalid(t *testing.T) {
	key32 := make([]byte, 32)
	for i := range key32 {
		key32[i] = byte(0xf8 + i) // encodes with '-' / '_' in base64url, '+' / '/' in std
	}
	std := base64.StdEncoding.EncodeToString(key32)
	require.True(t, strings.ContainsAny(std, "+/"))
	std2 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xef, 0xbe}, 11)[:32])

	cases := []struct {
		name, in, want string
	}{
		{"empty", "", "empty"},
		{"31 bytes padded", base64.URLEncoding.EncodeToString(key32[:31]), "decodes to 31 bytes, want 32"},
		{"31 bytes unpadded", base64.RawURLEncoding.EncodeToString(key32[:31]), "decodes to 31 bytes, want 32"},
		{"33 bytes padded", base64.URLEncoding.EncodeToString(append(key32, 7)), "decodes to 33 bytes, want 32"},
		{"33 bytes unpadded", base64.RawURLEncoding.EncodeToString(append(key32, 7)), "decodes to 33 bytes, want 32"},
		{"16 bytes", base64.URLEncoding.EncodeToString(key32[:16]), "decodes to 16 bytes"},
		{"standard alphabet", std, "standard base64 alphabet"},
		{"standard alphabet 2", std2, "standard base64 alphabet"},
		{"garbage", "this is not a key at all, not even close!!!", "not base64url"},
		{"non-ASCII", "Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0é", "not base64url"},
		{"newline", "Sl2dW6TOLeFyjjv0gDUPJeB-\nIclH0Z4zdvCbPB4WF0I=", "not base64url"},
		{"space", " Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I=", "not base64url"},
		{"padding only", "====", "padding only"},
		{"padding in the middle", "Sl2dW6TOLeFyjjv0gDUPJeB=IclH0Z4zdvCbPB4WF0I=", "in the middle"},
		{"too much padding", "Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4W====", "bad base64 padding"},
		{"padding not matching the length", "Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I==", "bad base64 padding"},
		{"42 characters plus two pads", "Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0==", "decodes to 31 bytes"},
		{"impossible length", "Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF", "not valid base64url"},
		{"hex instead", sharedKey52Hex, "decodes to 48 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseKey(tc.in)
			require.Error(t, err)
			require.Nil(t, k)
			require.ErrorIs(t, err, ErrInvalidKey)
			msg := err.Error()
			require.Contains(t, msg, tc.want)
			// Never the key material: neither the input nor any 8-character
			// piece of it.
			for i := 0; i+8 <= len(tc.in); i++ {
				require.NotContains(t, msg, tc.in[i:i+8], "error quotes the input")
			}
		})
	}
}

func TestNewRejectsKeyLengthsWithErrInvalidKey(t *testing.T) {
	_, err := New(make([]byte, 31))
	require.ErrorIs(t, err, ErrInvalidKey)
	require.Contains(t, err.Error(), "got 31")
}
