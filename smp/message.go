package smp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/jsonfield"
)

// The chat protocol's call events (protocol §3).
const (
	EventInvitation = "x.call.inv"
	EventOffer      = "x.call.offer"
	EventAnswer     = "x.call.answer"
	EventExtra      = "x.call.extra"
	EventEnd        = "x.call.end"
)

// ChatVersion is the chat protocol version range this package announces in
// the "v" field: the range of the current SimpleX core (Protocol.hs
// currentChatVersion = 16).
const ChatVersion = "1-16"

// CallInvitation is the invitation inside x.call.inv (protocol §2.4).
type CallInvitation struct {
	// CallType is the caller's call type.
	CallType smpcall.CallType `json:"callType"`
	// CallDHPubKey is the caller's X25519 key, present iff it asked for encryption.
	CallDHPubKey *DHPublicKey `json:"callDhPubKey,omitempty"`
	// CallVRange is the caller's call version range (protocol §2.4, §5.4);
	// absent means version 1 only.
	CallVRange *CallVersionRange `json:"callVRange,omitempty"`
}

// CallOffer is the offer inside x.call.offer: the callee's own call type,
// its SDP offer and its key (protocol §2.4).
type CallOffer struct {
	// CallType is the callee's own call type.
	CallType smpcall.CallType `json:"callType"`
	// RTCSession is the callee's SDP offer with its first ICE candidates.
	RTCSession smpcall.WebRTCSession `json:"rtcSession"`
	// CallDHPubKey is the callee's X25519 key; absent when either side did
	// not ask for encryption.
	CallDHPubKey *DHPublicKey `json:"callDhPubKey,omitempty"`
	// CallVersion is the call version the callee chose from the
	// invitation's range (protocol §5.4); absent means version 1.
	CallVersion *uint16 `json:"callVersion,omitempty"`
}

// Call versions (Call.hs: "1 - DH secret is used as media key (also
// assumed when call messages have no version)", "2 - media key is derived
// from DH secret with HKDF (2026-10-01)"; protocol §5.4).
const (
	CallVersion1 uint16 = 1
	CallVersion2 uint16 = 2
)

// CallVersionRange is a range of call versions, in its wire form "1-2", or
// "2" for 2-2 (simplexmq Version.hs StrEncoding of VersionRange: decimal
// versions, the second omitted when equal; Min ≤ Max required).
type CallVersionRange struct {
	// Min and Max are the lowest and highest versions in the range.
	Min, Max uint16
}

// String returns the wire form.
func (r CallVersionRange) String() string {
	if r.Min == r.Max {
		return strconv.FormatUint(uint64(r.Min), 10)
	}
	return strconv.FormatUint(uint64(r.Min), 10) + "-" + strconv.FormatUint(uint64(r.Max), 10)
}

// MarshalText returns the wire form; a range with Min > Max is an error.
func (r CallVersionRange) MarshalText() ([]byte, error) {
	if r.Min > r.Max {
		return nil, fmt.Errorf("invalid call version range %d-%d", r.Min, r.Max)
	}
	return []byte(r.String()), nil
}

// UnmarshalText parses the wire form (ParseCallVersionRange).
func (r *CallVersionRange) UnmarshalText(b []byte) error {
	v, err := ParseCallVersionRange(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// ParseCallVersionRange parses "V" or "V1-V2": decimal digits (attoparsec's
// decimal: no sign, leading zeros allowed), each at most 65535 (a Word16;
// the Haskell parser would wrap larger numbers around, which only a broken
// or hostile peer sends), and V1 ≤ V2; nothing else around them.
func ParseCallVersionRange(s string) (CallVersionRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	a, err1 := parseWord16(lo)
	b, err2 := parseWord16(hi)
	if err1 != nil || err2 != nil {
		return CallVersionRange{}, fmt.Errorf("not a call version range: %s", jsonfield.Quote(s))
	}
	if a > b {
		return CallVersionRange{}, fmt.Errorf("invalid call version range: %s", jsonfield.Quote(s))
	}
	return CallVersionRange{a, b}, nil
}

func parseWord16(s string) (uint16, error) {
	if s == "" || len(s) > 16 {
		return 0, errors.New("bad version")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("bad version")
		}
	}
	v, err := strconv.ParseUint(s, 10, 16)
	return uint16(v), err
}

// Compatible returns the version two ranges agree on: the highest version
// in both (simplexmq compatibleVersion: min of the maxima, if the ranges
// overlap).
func (r CallVersionRange) Compatible(peer CallVersionRange) (uint16, bool) {
	if r.Min > peer.Max || peer.Min > r.Max {
		return 0, false
	}
	return min(r.Max, peer.Max), true
}

// CallAnswer is the answer inside x.call.answer.
type CallAnswer struct {
	// RTCSession is the caller's SDP answer with its first ICE candidates.
	RTCSession smpcall.WebRTCSession `json:"rtcSession"`
}

// CallExtraInfo is the payload of x.call.extra.
type CallExtraInfo struct {
	// RTCExtraInfo is a further batch of the sender's ICE candidates.
	RTCExtraInfo smpcall.WebRTCExtraInfo `json:"rtcExtraInfo"`
}

// Message is one x.call.* chat message (protocol §3.1). Exactly one of the
// payload pointers is set, matching Event (none for x.call.end).
//
// The call-version fields (callVRange in the invitation, callVersion in the
// offer, protocol §2.4/§5.4) are decoded and encoded; Core sends them only
// when CoreConfig.CallVersion2 is set.
type Message struct {
	// Version is the sender's chat version range ("v"); empty means absent.
	Version string
	// MsgID is the shared message id (12 random bytes); empty means absent.
	MsgID []byte
	// Event is the message's event, one of the Event constants.
	Event string
	// CallID is the id of the call the message is about.
	CallID smpcall.CallID

	// Invitation is the payload of x.call.inv.
	Invitation *CallInvitation
	// Offer is the payload of x.call.offer.
	Offer *CallOffer
	// Answer is the payload of x.call.answer.
	Answer *CallAnswer
	// Extra is the payload of x.call.extra.
	Extra *CallExtraInfo
}

// ErrNotCall is returned by DecodeMessage for a well-formed chat message
// that is not an x.call.* event; the call layer ignores those.
var ErrNotCall = errors.New("smp: not a call message")

// envelope fixes the key order of the Haskell encoder: v, msgId, event, params.
type envelope struct {
	V      string          `json:"v,omitempty"`
	MsgID  string          `json:"msgId,omitempty"`
	Event  string          `json:"event"`
	Params json.RawMessage `json:"params"`
}

// Encode returns the exact JSON bytes the SimpleX core produces for m:
// envelope keys in the order v, msgId, event, params; params keys in
// lexicographic order (the core builds params as a JSON object map); record
// fields in declaration order; absent optionals omitted.
func (m *Message) Encode() ([]byte, error) {
	if m.CallID == "" {
		return nil, errors.New("smp: encode: empty call id")
	}
	params := map[string]any{"callId": m.CallID}
	switch m.Event {
	case EventInvitation:
		if m.Invitation == nil {
			return nil, errors.New("smp: encode x.call.inv: no invitation")
		}
		params["invitation"] = m.Invitation
	case EventOffer:
		if m.Offer == nil {
			return nil, errors.New("smp: encode x.call.offer: no offer")
		}
		params["offer"] = m.Offer
	case EventAnswer:
		if m.Answer == nil {
			return nil, errors.New("smp: encode x.call.answer: no answer")
		}
		params["answer"] = m.Answer
	case EventExtra:
		if m.Extra == nil {
			return nil, errors.New("smp: encode x.call.extra: no extra")
		}
		params["extra"] = m.Extra
	case EventEnd:
	default:
		return nil, fmt.Errorf("smp: encode: unknown event %q", m.Event)
	}
	p, err := jsonfield.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("smp: encode %s: %w", m.Event, err)
	}
	env := envelope{V: m.Version, Event: m.Event, Params: p}
	if len(m.MsgID) > 0 {
		env.MsgID = smpcall.CallID(m.MsgID).String()
	}
	return jsonfield.Marshal(env)
}

var versionRange = regexp.MustCompile(`^[0-9]+(-[0-9]+)?$`)

// DecodeMessage parses the JSON of one chat message. It returns ErrNotCall
// for other chat events, and an error naming the field for a malformed call
// message (the core then drops it, protocol §3.1, §10.2). Unknown keys are
// ignored; null is accepted for optional keys.
func DecodeMessage(data []byte) (*Message, error) {
	o, err := jsonfield.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("smp: chat message: %w", err)
	}
	m := &Message{}
	if err := o.Required("event", &m.Event); err != nil {
		return nil, fmt.Errorf("smp: chat message: %w", err)
	}
	switch m.Event {
	case EventInvitation, EventOffer, EventAnswer, EventExtra, EventEnd:
	default:
		return nil, ErrNotCall
	}
	fail := func(err error) (*Message, error) { return nil, fmt.Errorf("smp: %s: %w", m.Event, err) }
	if ok, err := o.Optional("v", &m.Version); err != nil {
		return fail(err)
	} else if ok && !versionRange.MatchString(m.Version) {
		return fail(&jsonfield.Error{Path: "v", Err: fmt.Errorf("not a version range: %s", jsonfield.Quote(m.Version))})
	}
	var msgID smpcall.CallID // same encoding: base64url of random bytes
	if ok, err := o.Optional("msgId", &msgID); err != nil {
		return fail(err)
	} else if ok {
		m.MsgID = []byte(msgID)
	}
	if !o.Has("params") {
		return fail(&jsonfield.Error{Path: "params", Err: jsonfield.ErrMissing})
	}
	p, err := jsonfield.Decode(o["params"])
	if err != nil {
		return fail(jsonfield.Wrap("params", err))
	}
	if err := p.Required("callId", &m.CallID); err != nil {
		return fail(jsonfield.Wrap("params", err))
	}
	switch m.Event {
	case EventInvitation:
		m.Invitation = new(CallInvitation)
		err = decodeRecord(p, "invitation", func(o jsonfield.Object) error {
			if err := o.Required("callType", &m.Invitation.CallType); err != nil {
				return err
			}
			if err := optionalKey(o, &m.Invitation.CallDHPubKey); err != nil {
				return err
			}
			var r CallVersionRange
			if ok, err := o.Optional("callVRange", &r); err != nil {
				return err
			} else if ok {
				m.Invitation.CallVRange = &r
			}
			return nil
		})
	case EventOffer:
		m.Offer = new(CallOffer)
		err = decodeRecord(p, "offer", func(o jsonfield.Object) error {
			if err := o.Required("callType", &m.Offer.CallType); err != nil {
				return err
			}
			if err := o.Required("rtcSession", &m.Offer.RTCSession); err != nil {
				return err
			}
			if err := optionalKey(o, &m.Offer.CallDHPubKey); err != nil {
				return err
			}
			var v uint16
			if ok, err := o.Optional("callVersion", &v); err != nil {
				return err
			} else if ok {
				m.Offer.CallVersion = &v
			}
			return nil
		})
	case EventAnswer:
		m.Answer = new(CallAnswer)
		err = decodeRecord(p, "answer", func(o jsonfield.Object) error {
			return o.Required("rtcSession", &m.Answer.RTCSession)
		})
	case EventExtra:
		m.Extra = new(CallExtraInfo)
		err = decodeRecord(p, "extra", func(o jsonfield.Object) error {
			return o.Required("rtcExtraInfo", &m.Extra.RTCExtraInfo)
		})
	}
	if err != nil {
		return fail(jsonfield.Wrap("params", err))
	}
	return m, nil
}

func decodeRecord(p jsonfield.Object, key string, fields func(jsonfield.Object) error) error {
	if !p.Has(key) {
		return &jsonfield.Error{Path: key, Err: jsonfield.ErrMissing}
	}
	o, err := jsonfield.Decode(p[key])
	if err != nil {
		return jsonfield.Wrap(key, err)
	}
	return jsonfield.Wrap(key, fields(o))
}

func optionalKey(o jsonfield.Object, dst **DHPublicKey) error {
	var k DHPublicKey
	ok, err := o.Optional("callDhPubKey", &k)
	if ok && err == nil {
		*dst = &k
	}
	return err
}

// maxBatch bounds how many messages one received batch may hold, so that a
// hostile array cannot make the core spin.
const maxBatch = 64

// splitBatch returns the chat messages in the body of one agent message: a
// single JSON object, or a JSON array of them (batching, protocol §3.1).
// Compressed batches ('X' + zstd items) are an SMP-layer encoding that a
// Pipe must undo before handing messages over; they are reported as errors.
func splitBatch(data []byte) ([][]byte, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errors.New("smp: empty chat message")
	}
	switch trimmed[0] {
	case '{':
		return [][]byte{trimmed}, nil
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(trimmed, &items); err != nil {
			return nil, fmt.Errorf("smp: chat message batch: invalid JSON array")
		}
		if len(items) > maxBatch {
			return nil, fmt.Errorf("smp: chat message batch of %d messages (limit %d)", len(items), maxBatch)
		}
		out := make([][]byte, len(items))
		for i, it := range items {
			out[i] = it
		}
		return out, nil
	case 'X':
		return nil, errors.New("smp: compressed chat message batch: the pipe must decompress it")
	}
	return nil, errors.New("smp: not a chat message (expected a JSON object or array)")
}
