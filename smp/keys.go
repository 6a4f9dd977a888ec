package smp

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/smpcall/smpcall"
)

// spkiPrefix is the DER of an X.509 SubjectPublicKeyInfo for X25519 up to the
// key bytes: SEQUENCE { SEQUENCE { OID 1.3.101.110 } BIT STRING (0 unused) }.
// The core encodes callDhPubKey as this prefix plus the 32 key bytes (protocol §5.2).
var spkiPrefix = []byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00}

// DHPublicKey is an X25519 public key in its callDhPubKey form: padded
// base64url of the 44-byte DER SubjectPublicKeyInfo, always 60 characters
// starting "MCowBQYDK2VuAyEA" (protocol §5.2). Decoding requires exactly that
// structure, as the core does; a raw 32-byte key or another algorithm's key
// is an error.
type DHPublicKey [smpcall.KeySize]byte

// String returns the callDhPubKey text.
func (k DHPublicKey) String() string {
	der := make([]byte, 0, len(spkiPrefix)+len(k))
	der = append(der, spkiPrefix...)
	der = append(der, k[:]...)
	return base64.URLEncoding.EncodeToString(der)
}

// MarshalText returns the callDhPubKey text.
func (k DHPublicKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText parses the callDhPubKey text, padded or not.
func (k *DHPublicKey) UnmarshalText(b []byte) error {
	v, err := ParseDHPublicKey(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// ParseDHPublicKey decodes a callDhPubKey string.
func ParseDHPublicKey(s string) (DHPublicKey, error) {
	var k DHPublicKey
	der, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || s == "" {
		return k, errors.New("callDhPubKey: not base64url")
	}
	if len(der) != len(spkiPrefix)+len(k) || !bytes.Equal(der[:len(spkiPrefix)], spkiPrefix) {
		return k, fmt.Errorf("callDhPubKey: not an X.509 X25519 public key (%d bytes)", len(der))
	}
	copy(k[:], der[len(spkiPrefix):])
	return k, nil
}

// keyPair is an X25519 key pair made from 32 bytes of the core's random source.
type keyPair struct {
	priv *ecdh.PrivateKey
	pub  DHPublicKey
}

// newKeyPair reads the private scalar from r rather than letting crypto/ecdh
// pick it, so that a seeded Config.Rand gives reproducible keys in tests.
// X25519 clamps the scalar itself (RFC 7748 §5).
func newKeyPair(r io.Reader) (*keyPair, error) {
	var seed [smpcall.KeySize]byte
	if _, err := io.ReadFull(r, seed[:]); err != nil {
		return nil, fmt.Errorf("random: %w", err)
	}
	return keyPairFromPrivate(seed[:])
}

func keyPairFromPrivate(raw []byte) (*keyPair, error) {
	priv, err := ecdh.X25519().NewPrivateKey(raw)
	if err != nil {
		return nil, err
	}
	kp := &keyPair{priv: priv}
	copy(kp.pub[:], priv.PublicKey().Bytes())
	return kp, nil
}

// dh computes the raw X25519 output with the peer's key (protocol §5.2).
// crypto/ecdh refuses a peer key of low order (all-zero output); the
// Haskell core would accept it, but such a key can only come from a broken
// or hostile peer, and a known media key would defeat the frame
// encryption, so the message is rejected instead.
func (kp *keyPair) dh(peer DHPublicKey) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(peer[:])
	if err != nil {
		return nil, err
	}
	secret, err := kp.priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("callDhPubKey: %w", err)
	}
	return secret, nil
}

// sharedKey computes the media key of a call of this version with the
// peer's key (mediaKey).
func (kp *keyPair) sharedKey(version uint16, callID smpcall.CallID, peer DHPublicKey) (smpcall.SharedKey, error) {
	secret, err := kp.dh(peer)
	if err != nil {
		return smpcall.SharedKey{}, err
	}
	return mediaKey(version, callID, secret)
}

// mediaKeyInfo is the HKDF info of the version-2 media key (Call.hs callMediaKey).
const mediaKeyInfo = "SimpleXCallMediaKey"

// mediaKey derives the media key from the X25519 output as Call.hs
// callMediaKey does: from call version 2 on, HKDF-SHA512 (RFC 5869,
// extract then expand, as simplexmq Crypto.hs hkdf) with the call id's
// bytes as salt, the DH output as input key material and
// "SimpleXCallMediaKey" as info, 32 bytes; for version 1 (and a call
// without versions) the raw DH output (protocol §5.2, §5.4).
func mediaKey(version uint16, callID smpcall.CallID, secret []byte) (smpcall.SharedKey, error) {
	var k smpcall.SharedKey
	if version < CallVersion2 {
		copy(k[:], secret)
		return k, nil
	}
	out, err := hkdf.Key(sha512.New, secret, []byte(callID), mediaKeyInfo, smpcall.KeySize)
	if err != nil {
		return k, fmt.Errorf("media key: %w", err)
	}
	copy(k[:], out)
	return k, nil
}
