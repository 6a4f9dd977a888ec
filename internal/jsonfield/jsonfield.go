// Package jsonfield decodes JSON objects the way the SimpleX chat core's
// Haskell (aeson) parsers do — required keys must be present and non-null,
// optional keys may be absent or null, unknown keys are ignored — and reports
// every failure with the dotted path of the field that caused it, so that an
// error from a peer's message says which field was wrong (protocol §2).
package jsonfield

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Error is a decoding failure at Path (for example "params.invitation.callType.media").
type Error struct {
	Path string
	Err  error
}

// Error reads "path: problem", or just the problem when Path is empty.
func (e *Error) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

// Unwrap returns the underlying problem, so that errors.Is finds
// ErrMissing and the JSON decoder's errors.
func (e *Error) Unwrap() error { return e.Err }

// ErrMissing is wrapped by errors for required keys that are absent or null.
var ErrMissing = errors.New("required field missing")

// Wrap prefixes err with the field name, merging nested paths so that
// errors read "a.b.c: problem" instead of "a: b: c: problem".
func Wrap(name string, err error) error {
	if err == nil {
		return nil
	}
	var fe *Error
	if errors.As(err, &fe) && fe == err {
		p := name
		if fe.Path != "" {
			p = name + "." + fe.Path
		}
		return &Error{Path: p, Err: fe.Err}
	}
	return &Error{Path: name, Err: simplify(err)}
}

// simplify turns encoding/json's type errors, which name Go types, into
// messages that name JSON types.
func simplify(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("unexpected JSON %s", te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON: %v", se)
	}
	return err
}

// Object is a decoded JSON object whose values are still raw.
type Object map[string]json.RawMessage

// Decode parses data as a JSON object. null and non-objects are errors.
func Decode(data []byte) (Object, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return nil, fmt.Errorf("expected a JSON object, got %s", describe(data))
	}
	var o Object
	if err := json.Unmarshal(data, &o); err != nil {
		return nil, simplify(err)
	}
	return o, nil
}

// Required decodes key into v; absent or null is ErrMissing. Errors carry the key as path.
func (o Object) Required(key string, v any) error {
	raw, ok := o[key]
	if !ok || isNull(raw) {
		return &Error{Path: key, Err: ErrMissing}
	}
	return Wrap(key, json.Unmarshal(raw, v))
}

// Optional decodes key into v if it is present and not null, and reports whether it was.
func (o Object) Optional(key string, v any) (bool, error) {
	raw, ok := o[key]
	if !ok || isNull(raw) {
		return false, nil
	}
	return true, Wrap(key, json.Unmarshal(raw, v))
}

// Has reports whether key is present with a non-null value.
func (o Object) Has(key string) bool {
	raw, ok := o[key]
	return ok && !isNull(raw)
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// describe names the JSON type of data for an error message without echoing it.
func describe(data []byte) string {
	if len(data) == 0 {
		return "nothing"
	}
	switch c := data[0]; {
	case c == 'n':
		return "null"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	default:
		return "invalid JSON"
	}
}

// Marshal encodes v like aeson does: no HTML escaping of <, > and &, no
// trailing newline. Byte-compatibility with the Haskell encoder depends on it.
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}

// Quote returns s as a JSON string literal, for error messages that must
// show a short offending value safely.
func Quote(s string) string {
	const max = 40
	if len(s) > max {
		s = s[:max] + "…"
	}
	b, _ := json.Marshal(s)
	return strings.TrimSpace(string(b))
}
