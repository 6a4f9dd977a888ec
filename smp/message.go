package smp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

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
	CallType smpcall.CallType `json:"callType"`
	// CallDHPubKey is the caller's X25519 key, present iff it asked for encryption.
	CallDHPubKey *DHPublicKey `json:"callDhPubKey,omitempty"`
}

// CallOffer is the offer inside x.call.offer: the callee's own call type,
// its SDP offer and its key (protocol §2.4).
type CallOffer struct {
	CallType     smpcall.CallType      `json:"callType"`
	RTCSession   smpcall.WebRTCSession `json:"rtcSession"`
	CallDHPubKey *DHPublicKey          `json:"callDhPubKey,omitempty"`
}

// CallAnswer is the answer inside x.call.answer.
type CallAnswer struct {
	RTCSession smpcall.WebRTCSession `json:"rtcSession"`
}

// CallExtraInfo is the payload of x.call.extra.
type CallExtraInfo struct {
	RTCExtraInfo smpcall.WebRTCExtraInfo `json:"rtcExtraInfo"`
}

// Message is one x.call.* chat message (protocol §3.1). Exactly one of the
// payload pointers is set, matching Event (none for x.call.end).
//
// Fields of the unconfirmed call-version extension (callVRange in the
// invitation, callVersion in the offer, protocol §2.4/§5.4) are ignored on
// receipt and never sent.
type Message struct {
	// Version is the sender's chat version range ("v"); empty means absent.
	Version string
	// MsgID is the shared message id (12 random bytes); empty means absent.
	MsgID  []byte
	Event  string
	CallID smpcall.CallID

	Invitation *CallInvitation
	Offer      *CallOffer
	Answer     *CallAnswer
	Extra      *CallExtraInfo
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
			return optionalKey(o, &m.Invitation.CallDHPubKey)
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
			return optionalKey(o, &m.Offer.CallDHPubKey)
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
