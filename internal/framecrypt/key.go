package framecrypt

import (
	"encoding/base64"
	"fmt"
)

// The text form of a sharedKey (protocol §5.2): 32 bytes in base64url (RFC
// 4648 §5, alphabet A-Z a-z 0-9 - _) with '=' padding, 44 characters.
const (
	keyTextPadded   = 44 // base64.URLEncoding.EncodedLen(KeySize)
	keyTextUnpadded = 43 // base64.RawURLEncoding.EncodedLen(KeySize)
)

// ParseKey decodes the text form of a call's sharedKey (protocol §5.2) into
// the 32-byte raw AES-256 key for New.
//
// The chat core emits base64url with '=' padding (44 characters), which the
// web page requires; ParseKey also accepts the unpadded form (43 characters),
// as the Haskell decoder used on iOS is believed to. Everything else is an
// error wrapping ErrInvalidKey that names the problem (empty, standard base64
// alphabet, a character outside base64url, bad padding, or a length that is
// not 32 bytes) without ever quoting the input.
func ParseKey(s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	// Find the end of the data characters and validate the alphabet
	// ourselves: encoding/base64 silently skips '\r' and '\n', and its errors
	// would not tell the standard alphabet apart from garbage.
	data := len(s)
	for data > 0 && s[data-1] == '=' {
		data--
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case 'A' <= ch && ch <= 'Z', 'a' <= ch && ch <= 'z', '0' <= ch && ch <= '9', ch == '-', ch == '_':
			// base64url data character (never at i >= data)
		case ch == '=' && i >= data:
			// trailing padding
		case ch == '+' || ch == '/':
			return nil, fmt.Errorf("%w: standard base64 alphabet ('+' or '/' at offset %d); want base64url ('-' and '_')", ErrInvalidKey, i)
		case ch == '=':
			return nil, fmt.Errorf("%w: '=' padding in the middle (offset %d)", ErrInvalidKey, i)
		default:
			return nil, fmt.Errorf("%w: not base64url (invalid character at offset %d)", ErrInvalidKey, i)
		}
	}
	if data == 0 {
		return nil, fmt.Errorf("%w: padding only", ErrInvalidKey)
	}
	enc := base64.RawURLEncoding
	if data < len(s) {
		if len(s)%4 != 0 || len(s)-data > 2 {
			return nil, fmt.Errorf("%w: bad base64 padding (%d characters with %d '=')", ErrInvalidKey, len(s), len(s)-data)
		}
		enc = base64.URLEncoding
	}
	key, err := enc.DecodeString(s)
	if err != nil {
		// Only the length can be wrong at this point (e.g. 4k+1 data
		// characters, or padding that does not match the data length).
		// CorruptInputError holds an offset, never input bytes.
		return nil, fmt.Errorf("%w: not valid base64url (%d characters): %v", ErrInvalidKey, len(s), err)
	}
	if len(key) != KeySize {
		n := len(key)
		clear(key)
		return nil, fmt.Errorf("%w: decodes to %d bytes, want %d (%d or %d characters)", ErrInvalidKey, n, KeySize, keyTextPadded, keyTextUnpadded)
	}
	return key, nil
}

// EncodeKey returns the text form of a 32-byte key as the chat core sends it
// (protocol §5.2): base64url with '=' padding, 44 characters for a 32-byte
// key. It is the inverse of ParseKey.
func EncodeKey(k []byte) string {
	return base64.URLEncoding.EncodeToString(k)
}
