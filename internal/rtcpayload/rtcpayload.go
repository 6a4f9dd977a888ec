// Package rtcpayload encodes and decodes the WebRTC payloads that SimpleX
// call messages carry as opaque strings (protocol §6.1–§6.3):
//
//   - rtcSession: LZString.compressToBase64(JSON of {"type","sdp"});
//   - rtcIceCandidates: LZString.compressToBase64(JSON array of candidates).
//
// Decoding accepts what the web page and the iOS app send (their candidate
// shapes differ), ignores unknown keys (e.g. smpReconnect), reports a JSON
// object in place of a candidate array as ErrNotCandidateList (the
// unconfirmed ICE-restart extension of §6.8, to be ignored, not to fail the
// call), and rejects everything else with an error that says what was wrong.
package rtcpayload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/smpcall/smpcall/internal/jsonfield"
	"github.com/smpcall/smpcall/internal/lzstring"
)

// Session is an SDP offer or answer (RTCSessionDescriptionInit).
type Session struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
	// Reconnect announces the ICE-restart extension ("smpReconnect": 1,
	// protocol §6.8). Every known parser ignores the key, so it is safe to
	// send to peers that do not know it.
	Reconnect bool `json:"-"`
}

// wireSession is Session as JSON, smpReconnect written as the number 1.
type wireSession struct {
	Type         string `json:"type"`
	SDP          string `json:"sdp"`
	SMPReconnect int    `json:"smpReconnect,omitempty"`
}

// Candidate is one ICE candidate (RTCIceCandidateInit). Candidate is the SDP
// attribute value without "a=", e.g. "candidate:1 1 udp 2122260223 …".
type Candidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// ErrNotCandidateList is returned by DecodeCandidates when the payload is a
// JSON object: the ICE-restart extension (protocol §6.8), which callers
// ignore.
var ErrNotCandidateList = errors.New("rtcIceCandidates: a JSON object, not a candidate list (ICE-restart extension, ignored)")

// maxCandidates bounds a received list; real lists hold a handful.
const maxCandidates = 256

// EncodeSession returns the rtcSession string for an SDP.
func EncodeSession(s Session) (string, error) {
	if err := checkType(s.Type); err != nil {
		return "", err
	}
	w := wireSession{Type: s.Type, SDP: s.SDP}
	if s.Reconnect {
		w.SMPReconnect = 1
	}
	b, err := jsonfield.Marshal(w)
	if err != nil {
		return "", err
	}
	return lzstring.CompressToBase64(string(b)), nil
}

// DecodeSession decodes an rtcSession string.
func DecodeSession(s string) (Session, error) {
	var out Session
	text, err := lzstring.DecompressFromBase64(s)
	if err != nil {
		return out, fmt.Errorf("rtcSession: %w", err)
	}
	o, err := jsonfield.Decode([]byte(text))
	if err != nil {
		return out, fmt.Errorf("rtcSession: %w", err)
	}
	if err := o.Required("type", &out.Type); err != nil {
		return out, fmt.Errorf("rtcSession: %w", err)
	}
	if err := checkType(out.Type); err != nil {
		return out, err
	}
	if err := o.Required("sdp", &out.SDP); err != nil {
		return out, fmt.Errorf("rtcSession: %w", err)
	}
	if !strings.HasPrefix(out.SDP, "v=0") {
		return out, errors.New("rtcSession: sdp does not start with v=0")
	}
	// A peer that announces the extension sends 1; anything else (absent,
	// 0, a string) means it does not.
	var announce json.Number
	if ok, err := o.Optional("smpReconnect", &announce); err == nil && ok {
		if n, err := announce.Int64(); err == nil && n >= 1 {
			out.Reconnect = true
		}
	}
	return out, nil
}

func checkType(t string) error {
	switch t {
	case "offer", "answer", "pranswer", "rollback":
		return nil
	}
	return fmt.Errorf("rtcSession: unknown type %s", jsonfield.Quote(t))
}

// EncodeCandidates returns the rtcIceCandidates string for a list (an empty
// list is "[]", which encodes as "NoXSA===").
func EncodeCandidates(cs []Candidate) (string, error) {
	if cs == nil {
		cs = []Candidate{}
	}
	b, err := jsonfield.Marshal(cs)
	if err != nil {
		return "", err
	}
	return lzstring.CompressToBase64(string(b)), nil
}

// DecodeCandidates decodes an rtcIceCandidates string: a JSON array of
// candidate objects in the web shape {"candidate","sdpMid","sdpMLineIndex",
// "usernameFragment"} or the iOS shape {"sdpMid","sdpMLineIndex","candidate"}
// with optional extra keys. A JSON object gives ErrNotCandidateList.
func DecodeCandidates(s string) ([]Candidate, error) {
	text, err := lzstring.DecompressFromBase64(s)
	if err != nil {
		return nil, fmt.Errorf("rtcIceCandidates: %w", err)
	}
	data := bytes.TrimSpace([]byte(text))
	if len(data) > 0 && data[0] == '{' && json.Valid(data) {
		return nil, ErrNotCandidateList
	}
	if len(data) == 0 || data[0] != '[' {
		return nil, errors.New("rtcIceCandidates: not a JSON array")
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, errors.New("rtcIceCandidates: invalid JSON array")
	}
	if len(raw) > maxCandidates {
		return nil, fmt.Errorf("rtcIceCandidates: %d candidates (limit %d)", len(raw), maxCandidates)
	}
	out := make([]Candidate, 0, len(raw))
	for i, r := range raw {
		c, err := decodeCandidate(r)
		if err != nil {
			return nil, fmt.Errorf("rtcIceCandidates[%d]: %w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func decodeCandidate(r json.RawMessage) (Candidate, error) {
	var c Candidate
	o, err := jsonfield.Decode(r)
	if err != nil {
		return c, err
	}
	if err := o.Required("candidate", &c.Candidate); err != nil {
		return c, err
	}
	// The attribute value, with or without the "candidate:" prefix the
	// browsers use; an empty value (end of candidates) is not sent by the
	// apps and is refused here.
	if strings.TrimPrefix(c.Candidate, "candidate:") == "" {
		return c, errors.New("candidate: empty")
	}
	var mid string
	if ok, err := o.Optional("sdpMid", &mid); err != nil {
		return c, err
	} else if ok {
		c.SDPMid = &mid
	}
	var idx uint16
	if ok, err := o.Optional("sdpMLineIndex", &idx); err != nil {
		return c, err
	} else if ok {
		c.SDPMLineIndex = &idx
	}
	var uf string
	if ok, err := o.Optional("usernameFragment", &uf); err != nil {
		return c, err
	} else if ok {
		c.UsernameFragment = &uf
	}
	return c, nil
}

// Kinds of ICE-restart messages (protocol §6.8).
const (
	RestartOffer  = "restartOffer"
	RestartAnswer = "restartAnswer"
	RestartCands  = "candidates"
)

// maxGeneration bounds a restart generation; a call restarts a few times.
const maxGeneration = 1 << 30

// Restart is a message of the ICE-restart extension (protocol §6.8),
// carried in x.call.extra where a candidate list usually is:
// {"t":"restartOffer"|"restartAnswer","gen":N,"sdp":"…","candidates":[…]}
// or {"t":"candidates","gen":N,"candidates":[…]}.
type Restart struct {
	T          string      `json:"t"`
	Gen        int         `json:"gen"`
	SDP        string      `json:"sdp,omitempty"`
	Candidates []Candidate `json:"candidates"`
}

// EncodeRestart returns the rtcIceCandidates string for a restart message.
func EncodeRestart(r Restart) (string, error) {
	if err := r.check(); err != nil {
		return "", err
	}
	if r.Candidates == nil {
		r.Candidates = []Candidate{}
	}
	b, err := jsonfield.Marshal(r)
	if err != nil {
		return "", err
	}
	return lzstring.CompressToBase64(string(b)), nil
}

// DecodeRestart decodes a restart message from an rtcIceCandidates string
// (one for which DecodeCandidates returned ErrNotCandidateList).
func DecodeRestart(s string) (Restart, error) {
	var r Restart
	text, err := lzstring.DecompressFromBase64(s)
	if err != nil {
		return r, fmt.Errorf("restart: %w", err)
	}
	o, err := jsonfield.Decode([]byte(text))
	if err != nil {
		return r, fmt.Errorf("restart: %w", err)
	}
	if err := o.Required("t", &r.T); err != nil {
		return r, fmt.Errorf("restart: %w", err)
	}
	if err := o.Required("gen", &r.Gen); err != nil {
		return r, fmt.Errorf("restart: %w", err)
	}
	if _, err := o.Optional("sdp", &r.SDP); err != nil {
		return r, fmt.Errorf("restart: %w", err)
	}
	if o.Has("candidates") {
		var raw []json.RawMessage
		if err := json.Unmarshal(o["candidates"], &raw); err != nil {
			return r, errors.New("restart: candidates: not a JSON array")
		}
		if len(raw) > maxCandidates {
			return r, fmt.Errorf("restart: %d candidates (limit %d)", len(raw), maxCandidates)
		}
		for i, c := range raw {
			cand, err := decodeCandidate(c)
			if err != nil {
				return r, fmt.Errorf("restart: candidates[%d]: %w", i, err)
			}
			r.Candidates = append(r.Candidates, cand)
		}
	}
	return r, r.check()
}

func (r Restart) check() error {
	switch r.T {
	case RestartOffer, RestartAnswer:
		if !strings.HasPrefix(r.SDP, "v=0") {
			return fmt.Errorf("restart %s: sdp does not start with v=0", r.T)
		}
	case RestartCands:
	default:
		return fmt.Errorf("restart: unknown t %s", jsonfield.Quote(r.T))
	}
	if r.Gen < 0 || r.Gen > maxGeneration {
		return fmt.Errorf("restart: generation %d out of range", r.Gen)
	}
	return nil
}
