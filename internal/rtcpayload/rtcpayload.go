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
	b, err := jsonfield.Marshal(s)
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
