package smpcall

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/smpcall/smpcall/internal/jsonfield"
)

// Sentinel errors. Each method documents which of them it can return; test
// with errors.Is.
var (
	// ErrClosed is returned by methods of a closed Client or Transport.
	ErrClosed = errors.New("smpcall: closed")
	// ErrInvalidState is wrapped by StateError: the operation is not allowed
	// in the call's current app-level state (protocol §4.6).
	ErrInvalidState = errors.New("smpcall: operation not allowed in this call state")
	// ErrNoCall is returned when there is no call with the contact.
	ErrNoCall = errors.New("smpcall: no call with this contact")
	// ErrTransportDown is wrapped by the errors of commands that failed
	// while the transport reported a temporary outage
	// (TransportErrorEvent with Temporary set).
	ErrTransportDown = errors.New("smpcall: transport temporarily down")
)

// StateError says which operation was refused in which app-level state.
// errors.Is(err, ErrInvalidState) is true for it.
type StateError struct {
	// Op names the refused operation in words, such as "send offer" or
	// "place call".
	Op string
	// ContactID is the contact of the call the operation was for.
	ContactID int64
	// State is the app-level state the call was in when it was refused.
	State CallState
}

// Error says which operation was refused in which state.
func (e *StateError) Error() string {
	return fmt.Sprintf("smpcall: %s with contact %d not allowed in state %s", e.Op, e.ContactID, e.State)
}

// Is makes errors.Is(err, ErrInvalidState) work.
func (e *StateError) Is(target error) bool { return target == ErrInvalidState }

// ChatErrorKind is the "type" of a chat core error (ChatErrorType, prefix CE
// dropped; or the ChatError constructor for store and other errors), protocol §10.1.
type ChatErrorKind string

// The kinds the call commands produce. Others are kept as they come.
const (
	KindNoCurrentCall            ChatErrorKind = "noCurrentCall"
	KindCallState                ChatErrorKind = "callState"
	KindCallContact              ChatErrorKind = "callContact"
	KindCommandError             ChatErrorKind = "commandError"
	KindDirectMessagesProhibited ChatErrorKind = "directMessagesProhibited"
	KindStore                    ChatErrorKind = "errorStore"
)

// ChatError is an error returned by the chat core for a command (or raised
// by package smp's core, which behaves the same). Inspect it with errors.As;
// errors.Is works against the sentinels ErrNoCurrentCall, ErrCallState,
// ErrCallContact and ErrCommand.
type ChatError struct {
	// Kind is the error's type as the core names it, one of the Kind
	// constants or another kind kept as it came.
	Kind ChatErrorKind
	// CurrentCallState is set for KindCallState.
	CurrentCallState CallStateTag
	// ContactID is set for KindCallContact.
	ContactID int64
	// Message is set for KindCommandError (the core's parser or feature message).
	Message string
	// Raw is the chatError object as received from a core, if it came from one.
	Raw json.RawMessage
}

// Sentinels matched by ChatError.Is on Kind.
var (
	ErrNoCurrentCall = &ChatError{Kind: KindNoCurrentCall}
	ErrCallState     = &ChatError{Kind: KindCallState}
	ErrCallContact   = &ChatError{Kind: KindCallContact}
	ErrCommand       = &ChatError{Kind: KindCommandError}
)

// Error describes the core's refusal in words.
func (e *ChatError) Error() string {
	switch e.Kind {
	case KindNoCurrentCall:
		return "chat core: no current call"
	case KindCallState:
		if e.CurrentCallState == "" {
			return "chat core: call state error"
		}
		return "chat core: command not allowed in call state " + string(e.CurrentCallState)
	case KindCallContact:
		return fmt.Sprintf("chat core: current call is with contact %d", e.ContactID)
	case KindCommandError:
		return "chat core: command error: " + e.Message
	}
	if e.Message != "" {
		return fmt.Sprintf("chat core: %s: %s", e.Kind, e.Message)
	}
	return "chat core: " + string(e.Kind)
}

// Is matches another *ChatError with the same Kind (the sentinels).
func (e *ChatError) Is(target error) bool {
	t, ok := target.(*ChatError)
	return ok && t.Kind == e.Kind
}

// MarshalJSON encodes the chatError object as the core does (protocol §10.1):
// {"type":"error","errorType":{...}}, or the raw object it was decoded from.
func (e *ChatError) MarshalJSON() ([]byte, error) {
	if e.Raw != nil {
		return e.Raw, nil
	}
	et := map[string]any{"type": string(e.Kind)}
	switch e.Kind {
	case KindCallState:
		et["currentCallState"] = e.CurrentCallState
	case KindCallContact:
		et["contactId"] = e.ContactID
	case KindCommandError:
		et["message"] = e.Message
	case KindStore:
		return jsonfield.Marshal(map[string]any{"type": "errorStore", "storeError": map[string]any{"type": "error", "message": e.Message}})
	}
	return jsonfield.Marshal(map[string]any{"type": "error", "errorType": et})
}

// UnmarshalJSON decodes a chatError object; unknown kinds are kept with their raw JSON.
func (e *ChatError) UnmarshalJSON(data []byte) error {
	o, err := jsonfield.Decode(data)
	if err != nil {
		return err
	}
	var typ string
	if err := o.Required("type", &typ); err != nil {
		return err
	}
	v := ChatError{Raw: append(json.RawMessage(nil), data...)}
	switch typ {
	case "error":
		eo, err := jsonfield.Decode(o["errorType"])
		if err != nil {
			return jsonfield.Wrap("errorType", err)
		}
		var kind string
		if err := eo.Required("type", &kind); err != nil {
			return jsonfield.Wrap("errorType", err)
		}
		v.Kind = ChatErrorKind(kind)
		var ferr error
		switch v.Kind {
		case KindCallState:
			_, ferr = eo.Optional("currentCallState", (*string)(&v.CurrentCallState))
		case KindCallContact:
			_, ferr = eo.Optional("contactId", &v.ContactID)
		default:
			_, ferr = eo.Optional("message", &v.Message)
		}
		if ferr != nil {
			return jsonfield.Wrap("errorType", ferr)
		}
	case "errorStore":
		v.Kind = KindStore
		if so, err := jsonfield.Decode(o["storeError"]); err == nil {
			var st string
			_, _ = so.Optional("type", &st)
			v.Message = st
		}
	default:
		v.Kind = ChatErrorKind(typ)
	}
	*e = v
	return nil
}
