package lzstring

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDecompressedUnits bounds the length, in UTF-16 code units, of what
// DecompressFromBase64 produces. A session description is a few kilobytes;
// the bound only stops a hostile peer from making us allocate without limit.
const MaxDecompressedUnits = 1 << 20

// Errors returned by DecompressFromBase64. The returned error wraps one of
// them (use errors.Is) and adds where the problem was found.
var (
	ErrEmpty       = errors.New("lzstring: empty input")
	ErrAlphabet    = errors.New("lzstring: input is not standard base64 (A-Z a-z 0-9 + / and at most three trailing '=')")
	ErrCorrupt     = errors.New("lzstring: corrupt compressed stream")
	ErrEmptyResult = errors.New("lzstring: compressed stream decodes to an empty string")
	ErrTooLarge    = fmt.Errorf("lzstring: decompressed output exceeds %d UTF-16 code units", MaxDecompressedUnits)
	ErrUTF16       = errors.New("lzstring: decompressed output is not valid UTF-16")
)

// alphabet is lz-string's keyStrBase64 without its final '=', which lz-string
// only ever writes as padding.
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// sixBits maps an input byte to its 6-bit value, or to -1 for any byte
// outside the alphabet (including '=' and every non-ASCII byte).
var sixBits = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()

// CompressToBase64 returns what lz-string 1.5.0 compressToBase64 returns for
// s (s is UTF-8; it is converted to UTF-16 code units first).
// CompressToBase64("") == "Q===".
func CompressToBase64(s string) string {
	return compress(toUTF16(s))
}

// DecompressFromBase64 decodes what CompressToBase64 (or lz-string's
// compressToBase64) produced. Unlike lz-string it reports every malformed,
// empty, oversized or non-UTF-16 result as an error; see the package
// documentation.
func DecompressFromBase64(s string) (string, error) {
	data, err := stripAndCheck(s)
	if err != nil {
		return "", err
	}
	units, err := decompress(data)
	if err != nil {
		return "", err
	}
	return fromUTF16(units)
}

// stripAndCheck removes the optional '=' padding and checks that what is left
// is non-empty and entirely in the alphabet, so that the decoder never has to
// guess what a foreign character means.
func stripAndCheck(s string) (string, error) {
	if s == "" {
		return "", ErrEmpty
	}
	data := strings.TrimRight(s, "=")
	// lz-string pads to a multiple of four, so more than three '=' were
	// not produced by it. Fewer (or none) are fine: lz-string ignores them.
	if pad := len(s) - len(data); pad > 3 {
		return "", fmt.Errorf("%w: %d trailing '='", ErrAlphabet, pad)
	}
	if data == "" {
		return "", fmt.Errorf("%w: nothing but '=' padding", ErrEmpty)
	}
	for i := 0; i < len(data); i++ {
		if sixBits[data[i]] < 0 {
			r, _ := utf8.DecodeRuneInString(data[i:])
			return "", fmt.Errorf("%w: %q at byte offset %d", ErrAlphabet, r, i)
		}
	}
	return data, nil
}

// toUTF16 converts s to the code units a JavaScript string holding the same
// text would have.
func toUTF16(s string) []uint16 {
	units := make([]uint16, 0, len(s)) // never more units than bytes
	for _, r := range s {
		units = utf16.AppendRune(units, r)
	}
	return units
}

// fromUTF16 converts decoded code units to UTF-8. An unpaired surrogate is an
// error rather than U+FFFD, so that garbage is never silently "repaired" into
// text that looks valid.
func fromUTF16(units []uint16) (string, error) {
	var b strings.Builder
	b.Grow(len(units)) // exact for ASCII, the usual case
	for i := 0; i < len(units); i++ {
		r := rune(units[i])
		if utf16.IsSurrogate(r) {
			r = utf8.RuneError
			if i+1 < len(units) {
				r = utf16.DecodeRune(rune(units[i]), rune(units[i+1]))
			}
			// A valid pair always decodes to a character above U+FFFF,
			// so RuneError here means the pair was invalid.
			if r == utf8.RuneError {
				return "", fmt.Errorf("%w: unpaired surrogate 0x%04X at code unit %d", ErrUTF16, units[i], i)
			}
			i++
		}
		b.WriteRune(r)
	}
	return b.String(), nil
}
