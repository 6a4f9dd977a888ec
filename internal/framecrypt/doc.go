// Package framecrypt implements the end-to-end media frame encryption of
// SimpleX Chat calls (protocol §7): each encoded media frame (an Opus packet
// or a whole VP8 frame) is encrypted before RTP packetization and decrypted
// after depacketization, on top of WebRTC's own DTLS-SRTP.
//
// # Format
//
//	encrypted = clear prefix (n bytes) || AES-256-GCM ciphertext of the rest || 16-byte tag || 12-byte IV
//
// AES-256-GCM with a 96-bit IV and a 128-bit tag, no additional authenticated
// data; the key is the 32 raw bytes of the call's sharedKey (protocol §5.2,
// base64url-decoded). Every frame gets 12 fresh random IV bytes, so the
// output is always Overhead (28) bytes longer than the input.
//
// # Clear prefix
//
// The first n bytes stay in clear so that depacketizers and jitter buffers
// can still parse them (protocol §7.2):
//
//   - VP8 key frame: n = 10, the 3-byte frame tag, the 3-byte start code and
//     4 bytes of dimensions (RFC 6386 §9.1);
//   - VP8 delta (inter) frame: n = 3, the frame tag;
//   - Opus audio: n = 1, the TOC byte (RFC 6716 §3.1);
//   - anything else, including the web page's zero-length "empty" video
//     frames: n = 1.
//
// PrefixVP8 derives 10 or 3 from the frame itself, from the inverted
// key-frame bit P (bit 0 of the first byte), as the iOS app does; the web
// page uses the frame type WebRTC reports, which agrees for VP8. The sender
// and the receiver must pick n the same way. The prefix is not authenticated:
// a changed prefix byte passes Open unnoticed when n is fixed by the caller,
// which is the SimpleX format, not a choice of this package (choosing n with
// PrefixVP8 on the received bytes turns a flipped P bit into an
// authentication failure). Only VP8 and Opus have a prefix rule; H.264 and
// other codecs cannot be used with frame encryption (protocol §7.3).
//
// # The two empty forms
//
// When nothing follows the clear prefix (len(frame) <= n), the two SimpleX
// clients differ: the web page skips AES-GCM and sends prefix||IV (n+12
// bytes, no tag), while iOS (chat_encrypt_media) sends prefix||tag||IV with
// the tag of the empty plaintext. iOS's decoder (chat_decrypt_media) rejects
// anything shorter than 28 bytes after the prefix, while the page accepts
// both, so Seal always produces the native form prefix||tag||IV. Open accepts
// both: exactly n+12 bytes is the web form and returns the n clear bytes
// (there is nothing to authenticate, and those bytes were sent in clear
// anyway); n+28 bytes or more is authenticated and decrypted.
//
// A frame shorter than the prefix is sealed with its whole length as the
// prefix; the receiver must use that same effective n. In particular the
// page's zero-length "empty" frame (its 12-byte IV alone) and our own
// zero-length frame (tag||IV, 28 bytes) both fail to Open with n = 1 with
// ErrShort; dropping an empty frame loses nothing.
//
// # Failures
//
// Open returns ErrShort for frames that cannot hold the prefix and a
// complete trailer (shorter than n+12, or between n+12 and n+28 bytes), and
// ErrAuth when AES-GCM authentication fails; it never returns
// unauthenticated plaintext beyond the web-empty case above. The web page's
// decoder "decrypts" a frame shorter than n+12 to its first n bytes without
// any check, and iOS passes on undecryptable frames trimmed by 28 bytes for
// the video decoder to discard; this package instead reports an error and
// the caller must drop the frame. Passing such a frame on would hand bytes
// an attacker (for example a TURN relay) controls to the codec's decoder,
// which the end-to-end encryption exists to prevent.
//
// # Keys
//
// The key is the call's sharedKey (protocol §5.2): the raw 32-byte X25519
// output, sent by the chat core as base64url with '=' padding (44
// characters). ParseKey decodes it (and also accepts the unpadded form);
// EncodeKey produces the padded form, which the web page requires. Errors
// about keys never contain key material.
//
// # Random IVs
//
// GCM security breaks down completely if an IV repeats under one key, and
// both directions of a call share the key, so every frame gets 96 fresh
// random bits (the birthday bound is far beyond any call's frame count).
// A crypto/rand call per frame made small frames about 1.29x as expensive as
// raw AES-GCM, so each Cipher draws its IVs from a math/rand/v2 ChaCha8
// generator (a cryptographically strong generator with key erasure) that is
// seeded from crypto/rand and reseeded from it every 256 IVs; see ivReseed
// for the measurements. SealWithIV exists only for test vectors.
//
// # Concurrency and allocation
//
// A Cipher is safe for concurrent use. Seal and Open append to dst and
// allocate nothing when dst has enough spare capacity (len(frame)+Overhead
// for Seal, len(frame) for Open); both can work in place.
//
// # References
//
//   - protocol §7 ("Media frame encryption") and §5.2 in docs/protocol.md
//     (sources: simplex-chat packages/simplex-chat-webrtc/src/call.ts,
//     apps/ios/Shared/Views/Call/WebRTCClient.swift,
//     src/Simplex/Chat/Mobile/WebRTC.hs)
//   - RFC 6386 §9.1, VP8 uncompressed data chunk (frame tag, start code,
//     dimensions): https://www.rfc-editor.org/rfc/rfc6386#section-9.1
//   - RFC 6716 §3.1, Opus TOC byte:
//     https://www.rfc-editor.org/rfc/rfc6716#section-3.1
//   - NIST SP 800-38D, AES-GCM and its IV uniqueness requirement
package framecrypt
