// Package lzstring implements the base64 variant of the JavaScript library
// lz-string 1.5.0 (https://github.com/pieroxy/lz-string, functions
// compressToBase64 and decompressFromBase64). SimpleX Chat calls carry the
// WebRTC session description and the ICE candidates as
// compressToBase64(JSON.stringify(x)) (protocol §6.3), so both directions must
// be byte-compatible with that library and with its Swift port used on iOS.
//
// # Algorithm
//
// lz-string is an LZW variant. The dictionary starts with three reserved
// codes (0: a new character that fits in 8 bits follows, 1: a new character
// of 16 bits follows, 2: end of stream); every other code names a phrase.
// Codes are written least significant bit first with a width that grows as
// the dictionary grows, and the bit stream is cut into 6-bit groups written
// with the standard base64 alphabet (A–Z a–z 0–9 + /, not base64url), padded
// with '=' to a multiple of four characters. An empty string compresses to
// "Q===".
//
// # UTF-16
//
// lz-string works on JavaScript strings, that is on UTF-16 code units, not
// on bytes or code points. CompressToBase64 therefore converts its UTF-8
// argument to UTF-16 first (a character outside the Basic Multilingual Plane
// becomes a surrogate pair, i.e. two units), and DecompressFromBase64
// converts the decoded units back to UTF-8. Invalid UTF-8 passed to
// CompressToBase64 is converted lossily (each bad byte becomes U+FFFD), as
// Go's string-to-rune conversion does.
//
// # Strict decoding
//
// The compressed text comes from a remote peer, so DecompressFromBase64 is
// stricter than lz-string, which silently maps unknown characters to zero
// bits, returns "" or null for broken streams, or throws a TypeError. Here
// every such case is an error (see the Err variables): empty input,
// characters outside the alphabet, '=' anywhere but in a trailing run of at
// most three, a reference to a dictionary entry that does not exist, a
// stream that ends before its end marker, an empty result, a result longer
// than MaxDecompressedUnits code units (checked while decoding, because a
// few kilobytes of LZ data can expand quadratically), and a result that is
// not valid UTF-16 (an unpaired surrogate). Missing '=' padding is accepted,
// as lz-string accepts it.
//
// A well-formed stream can still decode to garbage such as a single NUL
// character; rejecting text that is not the expected JSON is the job of the
// caller.
package lzstring
