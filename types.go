package smpcall

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/smpcall/smpcall/internal/jsonfield"
)

// This file holds the wire types of the SimpleX call protocol with JSON that
// is identical to the chat core's (protocol §2): absent optional fields are
// omitted, null is accepted for them, unknown keys are ignored, enums are the
// exact strings, binary values are padded base64url. Decoding errors name the
// field that was wrong (see FieldError).

// FieldError reports a JSON value that could not be decoded; Path names the
// field, e.g. "callType.media". It is returned (wrapped) by every UnmarshalJSON
// in this package and by the decoders in package smp.
type FieldError = jsonfield.Error

// ErrMissingField is wrapped by decoding errors for required fields that are absent or null.
var ErrMissingField = jsonfield.ErrMissing

// CallMediaType is the media of a call: audio only, or audio and video
// (Call.hs CallMedia; protocol §2.2).
type CallMediaType string

// The two media types the protocol knows.
const (
	MediaAudio CallMediaType = "audio"
	MediaVideo CallMediaType = "video"
)

// Valid reports whether m is one of the protocol's values.
func (m CallMediaType) Valid() bool { return m == MediaAudio || m == MediaVideo }

// MarshalText rejects unknown values so that nothing invalid goes on the wire.
func (m CallMediaType) MarshalText() ([]byte, error) {
	if !m.Valid() {
		return nil, fmt.Errorf("unknown call media %s", jsonfield.Quote(string(m)))
	}
	return []byte(m), nil
}

// UnmarshalText accepts exactly "audio" or "video".
func (m *CallMediaType) UnmarshalText(b []byte) error {
	v := CallMediaType(b)
	if !v.Valid() {
		return fmt.Errorf("unknown call media %s", jsonfield.Quote(string(b)))
	}
	*m = v
	return nil
}

// CallCapabilities says what the sender's WebRTC layer can do (protocol §2.2).
type CallCapabilities struct {
	// Encryption is true if the sender can encrypt media frames with the
	// shared key (protocol §7).
	Encryption bool `json:"encryption"`
}

// UnmarshalJSON requires "encryption" to be present, as the core does.
func (c *CallCapabilities) UnmarshalJSON(data []byte) error {
	o, err := jsonfield.Decode(data)
	if err != nil {
		return err
	}
	var v CallCapabilities
	if err := o.Required("encryption", &v.Encryption); err != nil {
		return err
	}
	*c = v
	return nil
}

// CallType is the media and capabilities of one party (protocol §2.2).
type CallType struct {
	// Media is the kind of call the party wants: audio or video.
	Media CallMediaType `json:"media"`
	// Capabilities says what the party supports: whether it encrypts media.
	Capabilities CallCapabilities `json:"capabilities"`
}

// DefaultCallType is what the CLI's "/call @name" uses: video with encryption (Call.hs defaultCallType).
var DefaultCallType = CallType{Media: MediaVideo, Capabilities: CallCapabilities{Encryption: true}}

// UnmarshalJSON requires both fields.
func (t *CallType) UnmarshalJSON(data []byte) error {
	o, err := jsonfield.Decode(data)
	if err != nil {
		return err
	}
	var v CallType
	if err := o.Required("media", &v.Media); err != nil {
		return err
	}
	if err := o.Required("capabilities", &v.Capabilities); err != nil {
		return err
	}
	*t = v
	return nil
}

// WebRTCSession is an SDP offer or answer with the first batch of ICE
// candidates, both LZString-compressed JSON that the chat layers carry
// opaquely (protocol §2.3, §6.1–§6.2).
type WebRTCSession struct {
	// RTCSession is the SDP offer or answer: its type and SDP text as JSON,
	// LZString-compressed to base64.
	RTCSession string `json:"rtcSession"`
	// RTCIceCandidates is the sender's first ICE candidates: a JSON array,
	// LZString-compressed to base64.
	RTCIceCandidates string `json:"rtcIceCandidates"`
}

// UnmarshalJSON requires both strings.
func (s *WebRTCSession) UnmarshalJSON(data []byte) error {
	o, err := jsonfield.Decode(data)
	if err != nil {
		return err
	}
	var v WebRTCSession
	if err := o.Required("rtcSession", &v.RTCSession); err != nil {
		return err
	}
	if err := o.Required("rtcIceCandidates", &v.RTCIceCandidates); err != nil {
		return err
	}
	*s = v
	return nil
}

// WebRTCExtraInfo carries a later batch of ICE candidates (protocol §2.3).
type WebRTCExtraInfo struct {
	// RTCIceCandidates is the batch of ICE candidates, encoded as in
	// WebRTCSession.
	RTCIceCandidates string `json:"rtcIceCandidates"`
}

// UnmarshalJSON requires the candidates string.
func (e *WebRTCExtraInfo) UnmarshalJSON(data []byte) error {
	o, err := jsonfield.Decode(data)
	if err != nil {
		return err
	}
	var v WebRTCExtraInfo
	if err := o.Required("rtcIceCandidates", &v.RTCIceCandidates); err != nil {
		return err
	}
	*e = v
	return nil
}

// WebRTCCallOffer is the argument of the offer command: the callee's own call
// type and its SDP offer (protocol §2.5).
type WebRTCCallOffer struct {
	// CallType is the callee's own call type.
	CallType CallType `json:"callType"`
	// RTCSession is the callee's SDP offer with its first ICE candidates.
	RTCSession WebRTCSession `json:"rtcSession"`
}

// UnmarshalJSON requires both fields.
func (w *WebRTCCallOffer) UnmarshalJSON(data []byte) error {
	o, err := jsonfield.Decode(data)
	if err != nil {
		return err
	}
	var v WebRTCCallOffer
	if err := o.Required("callType", &v.CallType); err != nil {
		return err
	}
	if err := o.Required("rtcSession", &v.RTCSession); err != nil {
		return err
	}
	*w = v
	return nil
}

// WebRTCCallStatus is the WebRTC connection state reported to the core with
// the status command. The core accepts exactly these four words (protocol §2.5).
type WebRTCCallStatus string

// The four statuses the core accepts.
const (
	StatusConnecting   WebRTCCallStatus = "connecting"
	StatusConnected    WebRTCCallStatus = "connected"
	StatusDisconnected WebRTCCallStatus = "disconnected"
	StatusFailed       WebRTCCallStatus = "failed"
)

// Valid reports whether s is one of the four words.
func (s WebRTCCallStatus) Valid() bool {
	switch s {
	case StatusConnecting, StatusConnected, StatusDisconnected, StatusFailed:
		return true
	}
	return false
}

// MarshalText rejects unknown statuses.
func (s WebRTCCallStatus) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("unknown call status %s", jsonfield.Quote(string(s)))
	}
	return []byte(s), nil
}

// UnmarshalText accepts exactly the four words.
func (s *WebRTCCallStatus) UnmarshalText(b []byte) error {
	v := WebRTCCallStatus(b)
	if !v.Valid() {
		return fmt.Errorf("unknown call status %s", jsonfield.Quote(string(b)))
	}
	*s = v
	return nil
}

// CallMediaSource identifies one of the four media streams of a call; it
// matches the transceiver mids 0–3 of protocol §6.4 and the web page's names.
type CallMediaSource string

// The four sources, in mid order.
const (
	SourceMic         CallMediaSource = "mic"
	SourceCamera      CallMediaSource = "camera"
	SourceScreenAudio CallMediaSource = "screenAudio"
	SourceScreenVideo CallMediaSource = "screenVideo"
)

// MediaSources lists the sources in transceiver (mid) order.
var MediaSources = [...]CallMediaSource{SourceMic, SourceCamera, SourceScreenAudio, SourceScreenVideo}

// Valid reports whether s is one of the four sources.
func (s CallMediaSource) Valid() bool {
	for _, v := range MediaSources {
		if s == v {
			return true
		}
	}
	return false
}

// Mid returns the transceiver mid of the source ("0"–"3"), or "" if unknown.
func (s CallMediaSource) Mid() string {
	for i, v := range MediaSources {
		if s == v {
			return string(rune('0' + i))
		}
	}
	return ""
}

// UnmarshalText accepts exactly the four names.
func (s *CallMediaSource) UnmarshalText(b []byte) error {
	v := CallMediaSource(b)
	if !v.Valid() {
		return fmt.Errorf("unknown media source %s", jsonfield.Quote(string(b)))
	}
	*s = v
	return nil
}

// VideoCamera is the camera facing of the web page and apps.
type VideoCamera string

// Camera facings.
const (
	CameraUser        VideoCamera = "user"
	CameraEnvironment VideoCamera = "environment"
)

// Valid reports whether c is "user" or "environment".
func (c VideoCamera) Valid() bool { return c == CameraUser || c == CameraEnvironment }

// UnmarshalText accepts exactly "user" or "environment".
func (c *VideoCamera) UnmarshalText(b []byte) error {
	v := VideoCamera(b)
	if !v.Valid() {
		return fmt.Errorf("unknown camera %s", jsonfield.Quote(string(b)))
	}
	*c = v
	return nil
}

// CallStateTag is the core's name of a call state, as it appears in
// "callState" command errors (protocol §2.5).
type CallStateTag string

// The core's call state tags.
const (
	TagInvitationSent     CallStateTag = "invitationSent"
	TagInvitationReceived CallStateTag = "invitationReceived"
	TagOfferSent          CallStateTag = "offerSent"
	TagOfferReceived      CallStateTag = "offerReceived"
	TagNegotiated         CallStateTag = "negotiated"
)

// CICallStatus is the status of a call's chat item (protocol §2.5, §9).
type CICallStatus string

// Call item statuses.
const (
	CIStatusPending    CICallStatus = "pending"
	CIStatusMissed     CICallStatus = "missed"
	CIStatusRejected   CICallStatus = "rejected"
	CIStatusAccepted   CICallStatus = "accepted"
	CIStatusNegotiated CICallStatus = "negotiated"
	CIStatusProgress   CICallStatus = "progress"
	CIStatusEnded      CICallStatus = "ended"
	CIStatusError      CICallStatus = "error"
)

// Valid reports whether s is one of the core's item statuses.
func (s CICallStatus) Valid() bool {
	switch s {
	case CIStatusPending, CIStatusMissed, CIStatusRejected, CIStatusAccepted,
		CIStatusNegotiated, CIStatusProgress, CIStatusEnded, CIStatusError:
		return true
	}
	return false
}

// UnmarshalText accepts exactly the core's statuses.
func (s *CICallStatus) UnmarshalText(b []byte) error {
	v := CICallStatus(b)
	if !v.Valid() {
		return fmt.Errorf("unknown call item status %s", jsonfield.Quote(string(b)))
	}
	*s = v
	return nil
}

// --- binary values -------------------------------------------------------

// decodeBase64URL accepts base64url with or without '=' padding (protocol
// §5.2: always emit padded, accept both) and rejects the standard alphabet.
func decodeBase64URL(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("empty base64url string")
	}
	// encoding/base64 skips '\r' and '\n': "\n" would decode to an empty
	// (invalid) call id and a key could carry line breaks.
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("not base64url")
	}
	trimmed := strings.TrimRight(s, "=")
	if pad := len(s) - len(trimmed); pad > 0 && (len(s)%4 != 0 || pad > 2) {
		return nil, errors.New("bad base64url padding")
	}
	b, err := base64.RawURLEncoding.DecodeString(trimmed)
	if err != nil {
		return nil, errors.New("not base64url")
	}
	return b, nil
}

func encodeBase64URL(b []byte) string { return base64.URLEncoding.EncodeToString(b) }

// CallID identifies a call: 16 random bytes chosen by the caller's core,
// padded base64url in JSON (protocol §2.1). The zero value is not a valid id.
// CallID is a string of raw bytes so that it can be compared and used as a map key.
type CallID string

// ParseCallID decodes the text form (padded or unpadded base64url, non-empty).
func ParseCallID(s string) (CallID, error) {
	b, err := decodeBase64URL(s)
	if err != nil {
		return "", fmt.Errorf("call id: %w", err)
	}
	return CallID(b), nil
}

// String returns the padded base64url form, as on the wire.
func (id CallID) String() string { return encodeBase64URL([]byte(id)) }

// MarshalText encodes the padded base64url form; the empty id is an error.
func (id CallID) MarshalText() ([]byte, error) {
	if id == "" {
		return nil, errors.New("empty call id")
	}
	return []byte(id.String()), nil
}

// UnmarshalText decodes padded or unpadded base64url.
func (id *CallID) UnmarshalText(b []byte) error {
	v, err := decodeBase64URL(string(b))
	if err != nil {
		return err
	}
	*id = CallID(v)
	return nil
}

// KeySize is the size of X25519 keys and of the media key.
const KeySize = 32

// SharedKey is the 32-byte media key agreed with X25519 over the chat
// connection, in JSON the 44-character padded base64url string that the apps
// hand to their WebRTC layer as aesKey (protocol §5.2). Unpadded input is
// accepted; any other length is an error.
//
// String and LogValue never reveal the key; use Encode for the wire form.
type SharedKey [KeySize]byte

// ParseSharedKey decodes the text form of a shared key.
func ParseSharedKey(s string) (SharedKey, error) {
	k, err := parseKey(s)
	if err != nil {
		return k, fmt.Errorf("shared key: %w", err)
	}
	return k, nil
}

func parseKey(s string) (SharedKey, error) {
	var k SharedKey
	b, err := decodeBase64URL(s)
	if err != nil {
		return k, err
	}
	if len(b) != KeySize {
		return k, fmt.Errorf("%d bytes, want %d", len(b), KeySize)
	}
	copy(k[:], b)
	return k, nil
}

// Encode returns the wire form: padded base64url, 44 characters.
func (k SharedKey) Encode() string { return encodeBase64URL(k[:]) }

// String hides the key so that it cannot end up in logs by accident (see
// also Format and LogValue in redact.go).
func (k SharedKey) String() string { return "SharedKey(redacted)" }

// GoString hides the key from %#v too.
func (k SharedKey) GoString() string { return k.String() }

// MarshalText encodes the wire form.
func (k SharedKey) MarshalText() ([]byte, error) { return []byte(k.Encode()), nil }

// UnmarshalText decodes padded or unpadded base64url of exactly 32 bytes.
func (k *SharedKey) UnmarshalText(b []byte) error {
	v, err := parseKey(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// --- chat core objects ---------------------------------------------------

// User is the chat core's user (bots/api TYPES.md). Only the fields the call
// layer needs are decoded; the whole object as received is kept and sent
// back unchanged when re-encoded, so nothing the core sent is lost.
type User struct {
	// UserID is the core's number for the user.
	UserID int64 `json:"userId"`
	// LocalDisplayName is the user's name in the core; empty if the core
	// did not send it.
	LocalDisplayName string `json:"localDisplayName,omitempty"`
	// Profile is the user's own profile, as its contacts see it.
	Profile Profile `json:"profile,omitzero"`

	raw json.RawMessage
}

// Raw returns the object as it was received, or nil if it was built in Go.
func (u User) Raw() json.RawMessage { return u.raw }

// WithRaw returns u that re-encodes as raw (for transports that build users from JSON).
func (u User) WithRaw(raw json.RawMessage) User {
	u.raw = append(json.RawMessage(nil), raw...)
	return u
}

// MarshalJSON re-encodes the received object, or the known fields.
func (u User) MarshalJSON() ([]byte, error) {
	if u.raw != nil {
		return u.raw, nil
	}
	type plain User
	return jsonfield.Marshal(plain(u))
}

// UnmarshalJSON requires userId and keeps the whole object.
func (u *User) UnmarshalJSON(data []byte) error {
	o, err := jsonfield.Decode(data)
	if err != nil {
		return err
	}
	var v User
	if err := o.Required("userId", &v.UserID); err != nil {
		return err
	}
	if _, err := o.Optional("localDisplayName", &v.LocalDisplayName); err != nil {
		return err
	}
	if err := decodeProfile(o, &v.Profile); err != nil {
		return err
	}
	v.raw = append(json.RawMessage(nil), data...)
	*u = v
	return nil
}

// Profile is the part of a contact's profile the call layer shows.
type Profile struct {
	// DisplayName is the short name the person chose to be shown by.
	DisplayName string `json:"displayName"`
	// FullName is the person's longer name; it is often empty.
	FullName string `json:"fullName"`
}

// Contact is the chat core's contact. ContactID is the number used in the
// "@<contactId>" of the call commands (protocol §8.2). As with User, the
// object as received is kept and re-encoded unchanged.
type Contact struct {
	// ContactID is the core's number for the contact.
	ContactID int64 `json:"contactId"`
	// LocalDisplayName is the name the user's core knows the contact by;
	// empty if the core did not send it.
	LocalDisplayName string `json:"localDisplayName"`
	// Profile is the profile the contact shares.
	Profile Profile `json:"profile"`

	raw json.RawMessage
}

// Raw returns the object as it was received, or nil if it was built in Go.
func (c Contact) Raw() json.RawMessage { return c.raw }

// WithRaw returns c that re-encodes as raw.
func (c Contact) WithRaw(raw json.RawMessage) Contact {
	c.raw = append(json.RawMessage(nil), raw...)
	return c
}

// Name returns the best name to show: the local display name, else the profile's.
func (c Contact) Name() string {
	if c.LocalDisplayName != "" {
		return c.LocalDisplayName
	}
	return c.Profile.DisplayName
}

// MarshalJSON re-encodes the received object, or the known fields.
func (c Contact) MarshalJSON() ([]byte, error) {
	if c.raw != nil {
		return c.raw, nil
	}
	type plain Contact
	return jsonfield.Marshal(plain(c))
}

// UnmarshalJSON requires contactId and keeps the whole object.
func (c *Contact) UnmarshalJSON(data []byte) error {
	o, err := jsonfield.Decode(data)
	if err != nil {
		return err
	}
	var v Contact
	if err := o.Required("contactId", &v.ContactID); err != nil {
		return err
	}
	if _, err := o.Optional("localDisplayName", &v.LocalDisplayName); err != nil {
		return err
	}
	if err := decodeProfile(o, &v.Profile); err != nil {
		return err
	}
	v.raw = append(json.RawMessage(nil), data...)
	*c = v
	return nil
}

// decodeProfile reads the optional "profile" of a user or contact.
func decodeProfile(o jsonfield.Object, p *Profile) error {
	if !o.Has("profile") {
		return nil
	}
	po, err := jsonfield.Decode(o["profile"])
	if err != nil {
		return jsonfield.Wrap("profile", err)
	}
	for key, dst := range map[string]*string{"displayName": &p.DisplayName, "fullName": &p.FullName} {
		if _, err := po.Optional(key, dst); err != nil {
			return jsonfield.Wrap("profile", err)
		}
	}
	return nil
}

// RcvCallInvitation is a received invitation as the core reports it in the
// callInvitation event and in the pending-invitations list (protocol §2.5).
type RcvCallInvitation struct {
	// User is the chat core's user the invitation is for.
	User User `json:"user"`
	// Contact is the contact who invites.
	Contact Contact `json:"contact"`
	// CallType is the caller's call type.
	CallType CallType `json:"callType"`
	// SharedKey is the media key, absent when either side has no key (protocol §5.1).
	SharedKey *SharedKey `json:"sharedKey,omitempty"`
	// CallUUID is generated by the receiving core (used by iOS CallKit); older cores omit it.
	CallUUID string `json:"callUUID,omitempty"`
	// CallTs is when the invitation was received; see CoreTime for its JSON form.
	CallTs CoreTime `json:"callTs"`
}

// UnmarshalJSON requires user, contact, callType and callTs.
func (r *RcvCallInvitation) UnmarshalJSON(data []byte) error {
	o, err := jsonfield.Decode(data)
	if err != nil {
		return err
	}
	var v RcvCallInvitation
	if err := o.Required("user", &v.User); err != nil {
		return err
	}
	if err := o.Required("contact", &v.Contact); err != nil {
		return err
	}
	if err := o.Required("callType", &v.CallType); err != nil {
		return err
	}
	var k SharedKey
	if ok, err := o.Optional("sharedKey", &k); err != nil {
		return err
	} else if ok {
		v.SharedKey = &k
	}
	if _, err := o.Optional("callUUID", &v.CallUUID); err != nil {
		return err
	}
	if err := o.Required("callTs", &v.CallTs); err != nil {
		return err
	}
	*r = v
	return nil
}

// CoreTime is a UTC time as the Haskell core writes it in JSON (aeson's
// UTCTime encoding): ISO 8601 with a 'Z', fractional seconds only when
// non-zero, trailing zeros trimmed. Any RFC 3339 time is accepted on input.
type CoreTime struct{ time.Time }

// MarshalText writes the aeson form.
func (t CoreTime) MarshalText() ([]byte, error) {
	return []byte(t.UTC().Format("2006-01-02T15:04:05.999999999Z")), nil
}

// MarshalJSON writes the aeson form as a JSON string (it overrides the
// method promoted from time.Time).
func (t CoreTime) MarshalJSON() ([]byte, error) {
	b, _ := t.MarshalText()
	return json.Marshal(string(b))
}

// UnmarshalText accepts RFC 3339 with any number of fractional digits.
func (t *CoreTime) UnmarshalText(b []byte) error {
	v, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return fmt.Errorf("not an ISO 8601 time: %s", jsonfield.Quote(string(b)))
	}
	t.Time = v.UTC()
	return nil
}

// UnmarshalJSON reads a JSON string with UnmarshalText.
func (t *CoreTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("not an ISO 8601 time string")
	}
	return t.UnmarshalText([]byte(s))
}
