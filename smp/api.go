package smp

// This file is the JSON codec of the chat core's WebSocket API for calls
// (protocol §8): the command texts of §8.2 and their parser, the request and
// response framing of §8.1, the responses (cmdOk, callInvitations, the
// look-up responses, chatCmdError of §10.1) and the events of §8.3/§9.
// Exact shapes follow docs/chat-core-json.md ("the notes"). Both directions
// are here: a client builds commands and decodes frames; the simulated core
// that serves this API parses commands and encodes frames.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/jsonfield"
)

// --- commands (protocol §8.2) ---------------------------------------------

// Command kinds returned by ParseCommand in Command.Kind.
const (
	CommandInvite   = "invite"   // /_call invite @<contactId> <json CallType>
	CommandOffer    = "offer"    // /_call offer @<contactId> <json WebRTCCallOffer>
	CommandAnswer   = "answer"   // /_call answer @<contactId> <json WebRTCSession>
	CommandExtra    = "extra"    // /_call extra @<contactId> <json WebRTCExtraInfo>
	CommandEnd      = "end"      // /_call end @<contactId>
	CommandReject   = "reject"   // /_call reject @<contactId>
	CommandStatus   = "status"   // /_call status @<contactId> <word>
	CommandGet      = "get"      // /_call get
	CommandUser     = "user"     // /user (or /u)
	CommandUsers    = "users"    // /users
	CommandContacts = "contacts" // /_contacts <userId>
	CommandCall     = "call"     // /call @<name> (default call type)
	// CommandSetActiveUser: /_user <userId>[ <json viewPwd>] (APISetActiveUser)
	// or /user <name> (SetActiveUser), answered with activeUser.
	CommandSetActiveUser = "setActiveUser"
)

// CommandParseError is the message of the commandError that the real core
// returns for command text it cannot parse — unknown command, bad JSON
// argument, unknown status word alike: attoparsec's failure of the last
// alternative (notes §6; SC issue #2024 "bad chat command: Failed reading: empty").
const CommandParseError = "Failed reading: empty"

// Command is a parsed command text (protocol §8.2, notes §5). Only the
// fields of its Kind are set.
type Command struct {
	// Kind is one of the Command constants: which command the text is.
	Kind string
	// ContactID is the "@<contactId>" of the /_call commands.
	ContactID int64
	// UserID is the argument of /_contacts and /_user.
	UserID int64
	// Name is the contact name of "/call @<name>", or the user name of
	// "/user <name>".
	Name string
	// ViewPwd is the optional JSON string after "/_user <userId>" (the
	// password of a hidden user); empty when absent.
	ViewPwd string
	// CallType is the argument of invite; for "/call @name" it is
	// smpcall.DefaultCallType (Call.hs defaultCallType, protocol §2.2).
	CallType smpcall.CallType
	// Offer is the argument of offer: the callee's call type and SDP offer.
	Offer smpcall.WebRTCCallOffer
	// Session is the argument of answer: the caller's SDP answer.
	Session smpcall.WebRTCSession
	// Extra is the argument of extra: more ICE candidates.
	Extra smpcall.WebRTCExtraInfo
	// Status is the status word of the status command.
	Status smpcall.WebRTCCallStatus
}

func contactCmd(verb string, contactID int64, arg any) (string, error) {
	if contactID < 0 {
		return "", fmt.Errorf("smp: /_call %s: negative contact id %d", verb, contactID)
	}
	s := "/_call " + verb + " @" + strconv.FormatInt(contactID, 10)
	if arg == nil {
		return s, nil
	}
	b, err := jsonfield.Marshal(arg)
	if err != nil {
		return "", fmt.Errorf("smp: /_call %s: %w", verb, err)
	}
	return s + " " + string(b), nil
}

// CmdInvite returns "/_call invite @<contactId> <json CallType>" (protocol
// §8.2), e.g. `/_call invite @2 {"media":"video","capabilities":{"encryption":true}}`.
// An invalid media is an error, and so is a negative contact id, which the
// core's decimal parser cannot read.
func CmdInvite(contactID int64, ct smpcall.CallType) (string, error) {
	return contactCmd(CommandInvite, contactID, ct)
}

// CmdOffer returns "/_call offer @<contactId> <json WebRTCCallOffer>" (protocol §8.2).
func CmdOffer(contactID int64, offer smpcall.WebRTCCallOffer) (string, error) {
	return contactCmd(CommandOffer, contactID, offer)
}

// CmdAnswer returns "/_call answer @<contactId> <json WebRTCSession>" (protocol §8.2).
func CmdAnswer(contactID int64, answer smpcall.WebRTCSession) (string, error) {
	return contactCmd(CommandAnswer, contactID, answer)
}

// CmdExtra returns "/_call extra @<contactId> <json WebRTCExtraInfo>" (protocol §8.2).
func CmdExtra(contactID int64, extra smpcall.WebRTCExtraInfo) (string, error) {
	return contactCmd(CommandExtra, contactID, extra)
}

// CmdEnd returns "/_call end @<contactId>" (protocol §8.2). Unlike the
// builders with an argument it cannot fail; a negative id (which the core
// cannot parse) is written as it is and refused by the core.
func CmdEnd(contactID int64) string { return bareCmd(CommandEnd, contactID) }

// CmdReject returns "/_call reject @<contactId>" (protocol §8.2); see CmdEnd on negative ids.
func CmdReject(contactID int64) string { return bareCmd(CommandReject, contactID) }

func bareCmd(verb string, contactID int64) string {
	return "/_call " + verb + " @" + strconv.FormatInt(contactID, 10)
}

// CmdStatus returns "/_call status @<contactId> <status>" with the status as
// a bare word; only the four words of protocol §2.5 are accepted.
func CmdStatus(contactID int64, status smpcall.WebRTCCallStatus) (string, error) {
	if !status.Valid() {
		return "", fmt.Errorf("smp: /_call status: unknown call status %s", jsonfield.Quote(string(status)))
	}
	s, err := contactCmd(CommandStatus, contactID, nil)
	if err != nil {
		return "", err
	}
	return s + " " + string(status), nil
}

// CmdGetCalls returns "/_call get", answered with callInvitations (protocol §8.2).
func CmdGetCalls() string { return "/_call get" }

// CmdActiveUser returns "/user", answered with activeUser (notes §5).
func CmdActiveUser() string { return "/user" }

// CmdUsers returns "/users", answered with usersList (notes §5).
func CmdUsers() string { return "/users" }

// CmdContacts returns "/_contacts <userId>", answered with contactsList
// (notes §5); see CmdEnd on negative ids.
func CmdContacts(userID int64) string { return "/_contacts " + strconv.FormatInt(userID, 10) }

// CmdSetActiveUser returns "/_user <userId>" (APISetActiveUser), which
// makes the user the core's active user and is answered with activeUser
// (Commands.hs chatCommandP). The apps send it when the person switches
// profiles; "/_call invite" works only for the active user.
func CmdSetActiveUser(userID int64) string { return "/_user " + strconv.FormatInt(userID, 10) }

// CmdCall returns "/call @<name>" (protocol §8.2): an invitation with the
// default call type to the active user's contact with that local display
// name. The name is written the way the core's displayNameP reads it
// (QuoteName); a name it cannot read is an error.
func CmdCall(name string) (string, error) {
	q, err := QuoteName(name)
	if err != nil {
		return "", fmt.Errorf("smp: /call: %w", err)
	}
	return "/call @" + q, nil
}

// nameStop reports the bytes at which the core's unquoted display-name
// parser stops: displayNameP_ takes bytes until isSpace or ','
// (Commands.hs). The parser is attoparsec's Char8, so each byte is seen as
// the Latin-1 character of its value and Data.Char.isSpace applies to it:
// besides ASCII white space that includes 0xA0, which occurs inside UTF-8
// sequences (e.g. "à" is C3 A0).
func nameStop(b byte) bool {
	return b == ' ' || (b >= '\t' && b <= '\r') || b == 0xA0 || b == ','
}

// nameFirstOK is the core's refChar for a name's first byte, quoted or not:
// above the space and not '#', '@' or a single quote.
func nameFirstOK(b byte) bool { return b > ' ' && b != '#' && b != '@' && b != '\'' }

// QuoteName writes a display name for a command argument the way the
// core's displayNameP_ (Commands.hs) reads it: as it is when it has no
// space (ASCII white space or the byte 0xA0) and no comma, else between
// single quotes. Either way the first byte must be above the space and
// not '#', '@' or a single quote, and a quoted name cannot contain a
// single quote; such names cannot be written and are errors. A trailing space would also be lost (the core
// trims the command), so it is quoted.
func QuoteName(name string) (string, error) {
	if name == "" || !nameFirstOK(name[0]) {
		return "", fmt.Errorf("cannot write name %s: the core's name parser refuses its first character", jsonfield.Quote(name))
	}
	for i := 0; i < len(name); i++ {
		if nameStop(name[i]) {
			if strings.Contains(name, "'") {
				return "", fmt.Errorf("cannot write name %s: it needs quotes and contains a quote", jsonfield.Quote(name))
			}
			return "'" + name + "'", nil
		}
	}
	return name, nil
}

// parseName reads a display name at the start of s as displayNameP_ does
// and returns it and the rest of s.
func parseName(s string) (name, rest string, ok bool) {
	if s != "" && s[0] == '\'' {
		end := strings.IndexByte(s[1:], '\'')
		if end <= 0 || !nameFirstOK(s[1]) {
			return "", "", false
		}
		return s[1 : 1+end], s[2+end:], true
	}
	if s == "" || !nameFirstOK(s[0]) {
		return "", "", false
	}
	i := 0
	for i < len(s) && !nameStop(s[i]) {
		i++
	}
	return s[:i], s[i:], true
}

// Text returns the command text of c, built with the Cmd* function of its
// Kind; unlike CmdEnd, CmdReject and CmdContacts it refuses negative ids,
// so that its output always parses back to c.
func (c Command) Text() (string, error) {
	switch c.Kind {
	case CommandInvite:
		return CmdInvite(c.ContactID, c.CallType)
	case CommandOffer:
		return CmdOffer(c.ContactID, c.Offer)
	case CommandAnswer:
		return CmdAnswer(c.ContactID, c.Session)
	case CommandExtra:
		return CmdExtra(c.ContactID, c.Extra)
	case CommandEnd, CommandReject:
		return contactCmd(c.Kind, c.ContactID, nil)
	case CommandStatus:
		return CmdStatus(c.ContactID, c.Status)
	case CommandGet:
		return CmdGetCalls(), nil
	case CommandUser:
		return CmdActiveUser(), nil
	case CommandUsers:
		return CmdUsers(), nil
	case CommandContacts:
		if c.UserID < 0 {
			return "", fmt.Errorf("smp: /_contacts: negative user id %d", c.UserID)
		}
		return CmdContacts(c.UserID), nil
	case CommandCall:
		return CmdCall(c.Name)
	case CommandSetActiveUser:
		if c.Name != "" {
			if c.UserID != 0 || c.ViewPwd != "" {
				return "", errors.New("smp: /user <name> takes neither a user id nor a password here")
			}
			q, err := QuoteName(c.Name)
			if err != nil {
				return "", fmt.Errorf("smp: /user: %w", err)
			}
			return "/user " + q, nil
		}
		if c.UserID < 0 {
			return "", fmt.Errorf("smp: /_user: negative user id %d", c.UserID)
		}
		s := CmdSetActiveUser(c.UserID)
		if c.ViewPwd != "" {
			b, err := jsonfield.Marshal(c.ViewPwd)
			if err != nil {
				return "", err
			}
			s += " " + string(b)
		}
		return s, nil
	}
	return "", fmt.Errorf("smp: unknown command kind %s", jsonfield.Quote(c.Kind))
}

// parseFailure is what ParseCommand returns for text the core would not
// parse. It wraps a *smpcall.ChatError of kind commandError with the core's
// message (CommandParseError), so a server can errors.As it and send it as
// chatCmdError; its Error text also says what was wrong.
func parseFailure(format string, args ...any) error {
	ce := &smpcall.ChatError{Kind: smpcall.KindCommandError, Message: CommandParseError}
	return fmt.Errorf("smp: parse command: %s: %w", fmt.Sprintf(format, args...), ce)
}

// parseDecimal reads attoparsec's A.decimal: one or more ASCII digits, no sign.
func parseDecimal(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// ParseCommand parses command text as the chat core does (Commands.hs
// chatCommandP, notes §5): trailing white space is dropped, each command
// must match exactly, "@<contactId>" and "<userId>" are unsigned decimals,
// a JSON argument follows one space after the id and must decode to the
// argument's type with its required fields, the status is one of the four
// words. Anything else is an error wrapping
// *smpcall.ChatError{Kind: commandError, Message: CommandParseError}, which
// a server answers with chatCmdError (protocol §10.1).
func ParseCommand(text string) (Command, error) {
	s := strings.TrimRightFunc(text, unicode.IsSpace)
	switch s {
	case "/_call get":
		return Command{Kind: CommandGet}, nil
	case "/user", "/u":
		return Command{Kind: CommandUser}, nil
	case "/users":
		return Command{Kind: CommandUsers}, nil
	}
	if rest, ok := strings.CutPrefix(s, "/_contacts "); ok {
		id, ok := parseDecimal(rest)
		if !ok {
			return Command{}, parseFailure("/_contacts: bad user id")
		}
		return Command{Kind: CommandContacts, UserID: id}, nil
	}
	if rest, ok := strings.CutPrefix(s, "/call "); ok {
		return parseCall(rest)
	}
	if rest, ok := strings.CutPrefix(s, "/_user "); ok {
		return parseSetUser(rest)
	}
	for _, p := range [...]string{"/user ", "/u "} {
		if rest, ok := strings.CutPrefix(s, p); ok {
			name, tail, ok := parseName(rest)
			if !ok || strings.TrimLeft(tail, " ") != "" {
				return Command{}, parseFailure("/user: bad name")
			}
			return Command{Kind: CommandSetActiveUser, Name: name}, nil
		}
	}
	rest, ok := strings.CutPrefix(s, "/_call ")
	if !ok {
		return Command{}, parseFailure("unknown command")
	}
	verb, rest, _ := strings.Cut(rest, " @")
	switch verb {
	case CommandInvite, CommandOffer, CommandAnswer, CommandExtra, CommandEnd, CommandReject, CommandStatus:
	default:
		return Command{}, parseFailure("unknown /_call command")
	}
	idText, arg, hasArg := strings.Cut(rest, " ")
	id, ok := parseDecimal(idText)
	if !ok {
		return Command{}, parseFailure("/_call %s: bad contact id", verb)
	}
	c := Command{Kind: verb, ContactID: id}
	switch verb {
	case CommandEnd, CommandReject:
		if hasArg {
			return Command{}, parseFailure("/_call %s: unexpected argument", verb)
		}
		return c, nil
	}
	if !hasArg {
		return Command{}, parseFailure("/_call %s: missing argument", verb)
	}
	var err error
	switch verb {
	case CommandStatus:
		err = c.Status.UnmarshalText([]byte(arg))
	case CommandInvite:
		err = json.Unmarshal([]byte(arg), &c.CallType)
	case CommandOffer:
		err = json.Unmarshal([]byte(arg), &c.Offer)
	case CommandAnswer:
		err = json.Unmarshal([]byte(arg), &c.Session)
	case CommandExtra:
		err = json.Unmarshal([]byte(arg), &c.Extra)
	}
	if err != nil {
		var fe *jsonfield.Error
		if !errors.As(err, &fe) {
			err = jsonfield.Wrap("", err) // name JSON types, not Go types
		}
		return Command{}, parseFailure("/_call %s: %v", verb, err)
	}
	return c, nil
}

// parseCall parses the rest of "/call @<name>": Commands.hs
// `"/call " *> char_ '@' *> (SendCallInvitation <$> displayNameP <*> pure
// defaultCallType)`, then only spaces may follow (the choice wrapper).
func parseCall(rest string) (Command, error) {
	rest = strings.TrimPrefix(rest, "@")
	name, tail, ok := parseName(rest)
	if !ok || strings.TrimLeft(tail, " ") != "" {
		return Command{}, parseFailure("/call: bad name")
	}
	return Command{Kind: CommandCall, Name: name, CallType: smpcall.DefaultCallType}, nil
}

// parseSetUser parses the rest of "/_user <userId>[ <json viewPwd>]"
// (Commands.hs APISetActiveUser: A.decimal, then optionally a space and a
// JSON UserPwd, which is a string).
func parseSetUser(rest string) (Command, error) {
	idText, arg, hasArg := strings.Cut(rest, " ")
	id, ok := parseDecimal(idText)
	if !ok {
		return Command{}, parseFailure("/_user: bad user id")
	}
	c := Command{Kind: CommandSetActiveUser, UserID: id}
	if hasArg {
		if !strings.HasPrefix(arg, `"`) {
			return Command{}, parseFailure("/_user: the password must be a JSON string")
		}
		if err := json.Unmarshal([]byte(arg), &c.ViewPwd); err != nil {
			return Command{}, parseFailure("/_user: bad password: %v", jsonfield.Wrap("", err))
		}
	}
	return c, nil
}

// --- framing (protocol §8.1, notes §7) ----------------------------------------

// Request is one client→server WebSocket text frame (Server.hs ChatSrvRequest).
type Request struct {
	// CorrID is the client's correlation id, repeated in the reply.
	CorrID string `json:"corrId"`
	// Cmd is the command text, such as "/_call get".
	Cmd string `json:"cmd"`
}

// DecodeRequest decodes a request frame: an object with the string keys
// corrId and cmd, both required (a numeric corrId is an error, as in the
// core); other keys are ignored. The server answers a failure with
// chatCmdError "invalid request" without corrId (notes §7).
func DecodeRequest(data []byte) (Request, error) {
	o, err := jsonfield.Decode(data)
	if err != nil {
		return Request{}, fmt.Errorf("smp: request: %w", err)
	}
	var r Request
	if err := o.Required("corrId", &r.CorrID); err != nil {
		return Request{}, fmt.Errorf("smp: request: %w", err)
	}
	if err := o.Required("cmd", &r.Cmd); err != nil {
		return Request{}, fmt.Errorf("smp: request: %w", err)
	}
	return r, nil
}

// InvalidRequestMessage is the commandError message the server sends for a
// frame that is not a valid Request (Server.hs sendError, notes §7).
const InvalidRequestMessage = "invalid request"

// Frame is one server→client WebSocket text frame (protocol §8.1):
// {"corrId":"…","resp":…} replies to a request, {"resp":…} is an event.
type Frame struct {
	// CorrID is the id of the request this frame replies to.
	CorrID string
	// HasCorrID is true for a reply, false for an event (no corrId).
	HasCorrID bool
	// Resp is the tagged response or event object, with any Left/Right
	// wrapper removed.
	Resp json.RawMessage
}

// unwrapEither removes a {"Left":X} or {"Right":X} wrapper (exactly one key).
//
// Why: the current Server.hs encodes resp as toJSON of a Haskell Either
// (CSRBody), which aeson writes as {"Left":…}/{"Right":…}; older servers
// sent the bare tagged object (notes §7, §8). A tagged object always has
// "type", so a single-key Left/Right object cannot be a real response, and
// unwrapping is safe. Left holds ObjChatCmdError / ObjChatError, which
// encode as the same tagged chatCmdError / chatError objects, so nothing
// else changes.
func unwrapEither(o jsonfield.Object) (key string, inner json.RawMessage) {
	if len(o) != 1 {
		return "", nil
	}
	for _, k := range [...]string{"Right", "Left"} {
		if v, ok := o[k]; ok {
			return k, v
		}
	}
	return "", nil
}

// decodeResp decodes a resp object, first removing one Left/Right wrapper.
func decodeResp(resp []byte) (jsonfield.Object, json.RawMessage, error) {
	o, err := jsonfield.Decode(resp)
	if err != nil {
		return nil, nil, err
	}
	if key, inner := unwrapEither(o); key != "" {
		resp = inner
		if o, err = jsonfield.Decode(inner); err != nil {
			return nil, nil, jsonfield.Wrap(key, err)
		}
	}
	return o, bytes.TrimSpace(resp), nil
}

// DecodeFrame decodes a frame from the server: resp is required and must be
// an object; corrId is optional (null counts as absent) and must be a
// string. A {"Left":X}/{"Right":X} resp is unwrapped to X (see unwrapEither).
func DecodeFrame(data []byte) (Frame, error) {
	o, err := jsonfield.Decode(data)
	if err != nil {
		return Frame{}, fmt.Errorf("smp: frame: %w", err)
	}
	var f Frame
	if f.HasCorrID, err = o.Optional("corrId", &f.CorrID); err != nil {
		return Frame{}, fmt.Errorf("smp: frame: %w", err)
	}
	if !o.Has("resp") {
		return Frame{}, fmt.Errorf("smp: frame: %w", &jsonfield.Error{Path: "resp", Err: jsonfield.ErrMissing})
	}
	_, resp, err := decodeResp(o["resp"])
	if err != nil {
		return Frame{}, fmt.Errorf("smp: frame: %w", jsonfield.Wrap("resp", err))
	}
	f.Resp = append(json.RawMessage(nil), resp...)
	return f, nil
}

// WrapEither wraps a resp object the way the current Server.hs sends it:
// there resp is a CSRBody, a Haskell Either ChatError r, which aeson
// encodes as {"Left":…} for an error (the chatCmdError or chatError object)
// and {"Right":…} for a response or event. Older servers sent the object
// bare; DecodeFrame accepts both.
func WrapEither(resp json.RawMessage, left bool) json.RawMessage {
	key := `{"Right":`
	if left {
		key = `{"Left":`
	}
	out := make(json.RawMessage, 0, len(key)+len(resp)+1)
	out = append(out, key...)
	out = append(out, resp...)
	return append(out, '}')
}

// EncodeFrame encodes a server frame, keys in the order corrId, resp
// (Server.hs ChatSrvResponse, defaultJSON); corrId is omitted when nil, as
// for events. resp is typically the output of EncodeResponse or EncodeEvent.
func EncodeFrame(corrID *string, resp any) ([]byte, error) {
	switch r := resp.(type) {
	case nil:
		return nil, errors.New("smp: encode frame: nil resp")
	case []byte: // JSON bytes, not a byte string to base64-encode
		resp = json.RawMessage(r)
	}
	if r, ok := resp.(json.RawMessage); ok && len(bytes.TrimSpace(r)) == 0 {
		return nil, errors.New("smp: encode frame: empty resp")
	}
	b, err := jsonfield.Marshal(struct {
		CorrID *string `json:"corrId,omitempty"`
		Resp   any     `json:"resp"`
	}{corrID, resp})
	if err != nil {
		return nil, fmt.Errorf("smp: encode frame: %w", err)
	}
	return b, nil
}

// --- responses (protocol §8.2, §10.1; notes §5, §6) ----------------------------

// Response types DecodeResponse knows.
const (
	RespCmdOk           = "cmdOk"
	RespCallInvitations = "callInvitations"
	RespActiveUser      = "activeUser"
	RespUsersList       = "usersList"
	RespContactsList    = "contactsList"
	RespChatCmdError    = "chatCmdError"
	RespChatError       = "chatError"
)

// Response is a decoded reply to a command. Only the fields of its Type are
// set; Raw is always the whole object.
type Response struct {
	// Type is the reply's "type", such as cmdOk or chatCmdError.
	Type string
	// User is "user" of activeUser and contactsList, or "user_" of cmdOk
	// (absent in older cores) and of older cores' chatCmdError.
	User *smpcall.User
	// Invitations of callInvitations (protocol §8.2).
	Invitations []smpcall.RcvCallInvitation
	// Users of usersList (each item is {"user":User,"unreadCount":N}).
	Users []smpcall.User
	// Contacts of contactsList.
	Contacts []smpcall.Contact
	// Err of chatCmdError and chatError (protocol §10.1).
	Err *smpcall.ChatError
	// Raw is the whole reply object as received.
	Raw json.RawMessage
}

// DecodeResponse decodes the resp of a reply (a Left/Right wrapper is
// removed). The known types are checked field by field with errors naming
// the field; any other type gives a Response with only Type and Raw and no
// error. A missing "type" is an error.
func DecodeResponse(resp json.RawMessage) (Response, error) {
	o, raw, err := decodeResp(resp)
	if err != nil {
		return Response{}, fmt.Errorf("smp: response: %w", err)
	}
	var r Response
	if err := o.Required("type", &r.Type); err != nil {
		return Response{}, fmt.Errorf("smp: response: %w", err)
	}
	r.Raw = append(json.RawMessage(nil), raw...)
	fail := func(err error) (Response, error) { return Response{}, fmt.Errorf("smp: %s: %w", r.Type, err) }
	optUser := func(key string) error {
		var u smpcall.User
		ok, err := o.Optional(key, &u)
		if ok && err == nil {
			r.User = &u
		}
		return err
	}
	reqUser := func() error {
		r.User = new(smpcall.User)
		return o.Required("user", r.User)
	}
	switch r.Type {
	case RespCmdOk:
		err = optUser("user_")
	case RespCallInvitations:
		err = o.Required("callInvitations", &r.Invitations)
	case RespActiveUser:
		err = reqUser()
	case RespUsersList:
		var items []json.RawMessage
		if err = o.Required("users", &items); err != nil {
			break
		}
		r.Users = make([]smpcall.User, len(items))
		for i, it := range items {
			if err = decodeUserInfo(it, &r.Users[i]); err != nil {
				err = jsonfield.Wrap(fmt.Sprintf("users[%d]", i), err)
				break
			}
		}
	case RespContactsList:
		if err = reqUser(); err == nil {
			err = o.Required("contacts", &r.Contacts)
		}
	case RespChatCmdError, RespChatError:
		if err = optUser("user_"); err == nil {
			r.Err = new(smpcall.ChatError)
			err = o.Required("chatError", r.Err)
		}
	}
	if err != nil {
		return fail(err)
	}
	return r, nil
}

// decodeUserInfo decodes a UserInfo {"user":User,"unreadCount":N} (notes §1).
func decodeUserInfo(data []byte, u *smpcall.User) error {
	o, err := jsonfield.Decode(data)
	if err != nil {
		return err
	}
	var unread int64
	if _, err := o.Optional("unreadCount", &unread); err != nil {
		return err
	}
	return o.Required("user", u)
}

type userInfo struct {
	User        smpcall.User `json:"user"`
	UnreadCount int          `json:"unreadCount"`
}

// EncodeResponse encodes r as the core does (keys in Haskell field order,
// absent optionals omitted, notes §0): cmdOk (with "user_" when User is
// set), callInvitations, activeUser, usersList (unreadCount 0), contactsList,
// chatCmdError and chatError (with "user_" when User is set, as older cores
// did; the current core sends none; the error as described at coreChatError). For other types r.Raw is returned as
// it is, and without Raw they are errors.
func EncodeResponse(r Response) (json.RawMessage, error) {
	var v any
	needUser := func() error {
		if r.User == nil {
			return fmt.Errorf("smp: encode %s: no user", r.Type)
		}
		return nil
	}
	switch r.Type {
	case RespCmdOk:
		v = struct {
			Type string        `json:"type"`
			User *smpcall.User `json:"user_,omitempty"`
		}{r.Type, r.User}
	case RespCallInvitations:
		invs := r.Invitations
		if invs == nil {
			invs = []smpcall.RcvCallInvitation{}
		}
		v = struct {
			Type        string                      `json:"type"`
			Invitations []smpcall.RcvCallInvitation `json:"callInvitations"`
		}{r.Type, invs}
	case RespActiveUser:
		if err := needUser(); err != nil {
			return nil, err
		}
		v = struct {
			Type string       `json:"type"`
			User smpcall.User `json:"user"`
		}{r.Type, *r.User}
	case RespUsersList:
		users := make([]userInfo, len(r.Users))
		for i, u := range r.Users {
			users[i].User = u
		}
		v = struct {
			Type  string     `json:"type"`
			Users []userInfo `json:"users"`
		}{r.Type, users}
	case RespContactsList:
		if err := needUser(); err != nil {
			return nil, err
		}
		contacts := r.Contacts
		if contacts == nil {
			contacts = []smpcall.Contact{}
		}
		v = struct {
			Type     string            `json:"type"`
			User     smpcall.User      `json:"user"`
			Contacts []smpcall.Contact `json:"contacts"`
		}{r.Type, *r.User, contacts}
	case RespChatCmdError, RespChatError:
		if r.Err == nil {
			return nil, fmt.Errorf("smp: encode %s: no error", r.Type)
		}
		v = struct {
			Type string        `json:"type"`
			User *smpcall.User `json:"user_,omitempty"`
			Err  coreChatError `json:"chatError"`
		}{r.Type, r.User, coreChatError{r.Err}}
	default:
		if r.Raw == nil {
			return nil, fmt.Errorf("smp: encode response %s: unknown type without Raw", jsonfield.Quote(r.Type))
		}
		return r.Raw, nil
	}
	b, err := jsonfield.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("smp: encode %s: %w", r.Type, err)
	}
	return b, nil
}

// coreChatError encodes a ChatError with the core's key order ("type"
// first, then the fields in declaration order, notes §0/§6), where
// smpcall.ChatError.MarshalJSON sorts keys. The object a ChatError was
// decoded from (Raw) is sent unchanged. Kinds named after ChatError
// constructors (errorStore, errorAgent, …) are top-level types; the others
// are ChatErrorType values inside {"type":"error","errorType":…}. A store
// error's Message is its storeError type (as smpcall.ChatError decodes it).
type coreChatError struct{ e *smpcall.ChatError }

func (c coreChatError) MarshalJSON() ([]byte, error) {
	e := c.e
	if e.Raw != nil {
		return jsonfield.Marshal(e.Raw)
	}
	type typed struct {
		Type string `json:"type"`
	}
	var et any
	switch k := string(e.Kind); {
	case e.Kind == smpcall.KindStore:
		st := e.Message
		if st == "" {
			st = "error"
		}
		return jsonfield.Marshal(struct {
			Type       string `json:"type"`
			StoreError typed  `json:"storeError"`
		}{k, typed{st}})
	case strings.HasPrefix(k, "error"):
		return jsonfield.Marshal(typed{k})
	case e.Kind == smpcall.KindCallState:
		et = struct {
			Type  string               `json:"type"`
			State smpcall.CallStateTag `json:"currentCallState"`
		}{k, e.CurrentCallState}
	case e.Kind == smpcall.KindCallContact:
		et = struct {
			Type      string `json:"type"`
			ContactID int64  `json:"contactId"`
		}{k, e.ContactID}
	case e.Kind == smpcall.KindCommandError || e.Message != "":
		et = struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		}{k, e.Message}
	default:
		et = typed{k}
	}
	return jsonfield.Marshal(struct {
		Type      string `json:"type"`
		ErrorType any    `json:"errorType"`
	}{"error", et})
}

// --- events (protocol §8.3, §9; notes §4, §6) -----------------------------------

// Event types DecodeEvent knows.
const (
	EvCallInvitation  = "callInvitation"
	EvCallOffer       = "callOffer"
	EvCallAnswer      = "callAnswer"
	EvCallExtraInfo   = "callExtraInfo"
	EvCallEnded       = "callEnded"
	EvMessageError    = "messageError"
	EvChatError       = "chatError"
	EvChatErrors      = "chatErrors"
	EvNewChatItems    = "newChatItems"
	EvNewChatItem     = "newChatItem"
	EvChatItemUpdated = "chatItemUpdated"
)

// DecodeEvent decodes the resp of an event frame (a Left/Right wrapper is
// removed) into the SDK's events:
//
//   - callInvitation, callOffer, callAnswer, callExtraInfo, callEnded →
//     one event of the matching type (protocol §8.3);
//   - messageError → *smpcall.MessageErrorEvent with Contact nil (the
//     core's event does not name the contact);
//   - chatError (the WebSocket server's event-side error, notes §6) → a
//     *smpcall.MessageErrorEvent with Severity "error" and ErrorMessage the
//     ChatError's text, User from "user_" when present (older cores);
//     chatErrors → one such event per error;
//   - newChatItems, newChatItem (older cores), chatItemUpdated → one
//     *smpcall.CallItemEvent per call item (content sndCall/rcvCall) of a
//     direct chat, New true for the first two (protocol §9); other items
//     are skipped;
//   - any other type → nil, nil.
//
// A known event that does not have the core's shape is an error naming the
// field, e.g. "smp: callOffer: offer.rtcSession: required field missing".
// For the chat-item events the structure down to each item's content type
// is checked; chatInfo, meta, the call content and the event's "user" only
// when there is a call item.
func DecodeEvent(resp json.RawMessage) ([]smpcall.Event, error) {
	o, _, err := decodeResp(resp)
	if err != nil {
		return nil, fmt.Errorf("smp: event: %w", err)
	}
	var typ string
	if err := o.Required("type", &typ); err != nil {
		return nil, fmt.Errorf("smp: event: %w", err)
	}
	evs, err := decodeEvent(typ, o)
	if err != nil {
		return nil, fmt.Errorf("smp: %s: %w", typ, err)
	}
	return evs, nil
}

// userContact decodes the "user" and "contact" keys shared by the call events.
func userContact(o jsonfield.Object, u *smpcall.User, c *smpcall.Contact) error {
	if err := o.Required("user", u); err != nil {
		return err
	}
	return o.Required("contact", c)
}

func one(ev smpcall.Event, err error) ([]smpcall.Event, error) {
	if err != nil {
		return nil, err
	}
	return []smpcall.Event{ev}, nil
}

func decodeEvent(typ string, o jsonfield.Object) ([]smpcall.Event, error) {
	switch typ {
	case EvCallInvitation:
		ev := &smpcall.CallInvitationEvent{}
		return one(ev, o.Required("callInvitation", &ev.Invitation))
	case EvCallOffer:
		ev := &smpcall.CallOfferEvent{}
		if err := userContact(o, &ev.User, &ev.Contact); err != nil {
			return nil, err
		}
		if err := o.Required("callType", &ev.CallType); err != nil {
			return nil, err
		}
		if err := o.Required("offer", &ev.Offer); err != nil {
			return nil, err
		}
		var k smpcall.SharedKey
		if ok, err := o.Optional("sharedKey", &k); err != nil {
			return nil, err
		} else if ok {
			ev.SharedKey = &k
		}
		return one(ev, o.Required("askConfirmation", &ev.AskConfirmation))
	case EvCallAnswer:
		ev := &smpcall.CallAnswerEvent{}
		if err := userContact(o, &ev.User, &ev.Contact); err != nil {
			return nil, err
		}
		return one(ev, o.Required("answer", &ev.Answer))
	case EvCallExtraInfo:
		ev := &smpcall.CallExtraInfoEvent{}
		if err := userContact(o, &ev.User, &ev.Contact); err != nil {
			return nil, err
		}
		return one(ev, o.Required("extraInfo", &ev.ExtraInfo))
	case EvCallEnded:
		ev := &smpcall.CallEndedEvent{}
		return one(ev, userContact(o, &ev.User, &ev.Contact))
	case EvMessageError:
		ev := &smpcall.MessageErrorEvent{}
		if err := o.Required("user", &ev.User); err != nil {
			return nil, err
		}
		if err := o.Required("severity", &ev.Severity); err != nil {
			return nil, err
		}
		return one(ev, o.Required("errorMessage", &ev.ErrorMessage))
	case EvChatError, EvChatErrors:
		var user smpcall.User
		if _, err := o.Optional("user_", &user); err != nil {
			return nil, err
		}
		var errs []*smpcall.ChatError
		if typ == EvChatError {
			errs = []*smpcall.ChatError{new(smpcall.ChatError)}
			if err := o.Required("chatError", errs[0]); err != nil {
				return nil, err
			}
		} else if err := o.Required("chatErrors", &errs); err != nil {
			return nil, err
		}
		evs := make([]smpcall.Event, 0, len(errs))
		for i, ce := range errs {
			if ce == nil { // null element
				return nil, &jsonfield.Error{Path: fmt.Sprintf("chatErrors[%d]", i), Err: jsonfield.ErrMissing}
			}
			evs = append(evs, &smpcall.MessageErrorEvent{User: user, Severity: "error", ErrorMessage: ce.Error()})
		}
		return evs, nil
	case EvNewChatItems, EvNewChatItem, EvChatItemUpdated:
		var items []json.RawMessage
		var names []string
		if typ == EvNewChatItems {
			if err := o.Required("chatItems", &items); err != nil {
				return nil, err
			}
			for i := range items {
				names = append(names, fmt.Sprintf("chatItems[%d]", i))
			}
		} else {
			if !o.Has("chatItem") {
				return nil, &jsonfield.Error{Path: "chatItem", Err: jsonfield.ErrMissing}
			}
			items, names = []json.RawMessage{o["chatItem"]}, []string{"chatItem"}
		}
		var evs []smpcall.Event
		var user *smpcall.User
		for i, raw := range items {
			ev, err := decodeAChatItem(raw)
			if err != nil {
				return nil, jsonfield.Wrap(names[i], err)
			}
			if ev == nil {
				continue
			}
			if user == nil { // only needed, and so only checked, when there is a call item
				user = new(smpcall.User)
				if err := o.Required("user", user); err != nil {
					return nil, err
				}
			}
			ev.User, ev.New = *user, typ != EvChatItemUpdated
			evs = append(evs, ev)
		}
		return evs, nil
	}
	return nil, nil
}

// decodeAChatItem decodes an AChatItem {"chatInfo","chatItem"} (notes §4);
// nil, nil for items that are not call items of a direct chat.
func decodeAChatItem(data []byte) (*smpcall.CallItemEvent, error) {
	o, err := jsonfield.Decode(data)
	if err != nil {
		return nil, err
	}
	if !o.Has("chatItem") {
		return nil, &jsonfield.Error{Path: "chatItem", Err: jsonfield.ErrMissing}
	}
	ci, err := jsonfield.Decode(o["chatItem"])
	if err != nil {
		return nil, jsonfield.Wrap("chatItem", err)
	}
	if !ci.Has("content") {
		return nil, &jsonfield.Error{Path: "chatItem.content", Err: jsonfield.ErrMissing}
	}
	content, err := jsonfield.Decode(ci["content"])
	if err != nil {
		return nil, jsonfield.Wrap("chatItem.content", err)
	}
	var ctype string
	if err := content.Required("type", &ctype); err != nil {
		return nil, jsonfield.Wrap("chatItem.content", err)
	}
	if ctype != "sndCall" && ctype != "rcvCall" {
		return nil, nil
	}
	if !o.Has("chatInfo") {
		return nil, &jsonfield.Error{Path: "chatInfo", Err: jsonfield.ErrMissing}
	}
	info, err := jsonfield.Decode(o["chatInfo"])
	if err != nil {
		return nil, jsonfield.Wrap("chatInfo", err)
	}
	var itype string
	if err := info.Required("type", &itype); err != nil {
		return nil, jsonfield.Wrap("chatInfo", err)
	}
	if itype != "direct" { // calls exist only in direct chats
		return nil, nil
	}
	ev := &smpcall.CallItemEvent{Item: smpcall.CallItem{Sent: ctype == "sndCall"}}
	if err := info.Required("contact", &ev.Contact); err != nil {
		return nil, jsonfield.Wrap("chatInfo", err)
	}
	if !ci.Has("meta") {
		return nil, &jsonfield.Error{Path: "chatItem.meta", Err: jsonfield.ErrMissing}
	}
	meta, err := jsonfield.Decode(ci["meta"])
	if err != nil {
		return nil, jsonfield.Wrap("chatItem.meta", err)
	}
	if err := meta.Required("itemId", &ev.Item.ItemID); err != nil {
		return nil, jsonfield.Wrap("chatItem.meta", err)
	}
	if err := meta.Required("itemText", &ev.Item.Text); err != nil {
		return nil, jsonfield.Wrap("chatItem.meta", err)
	}
	if err := content.Required("status", &ev.Item.Status); err != nil {
		return nil, jsonfield.Wrap("chatItem.content", err)
	}
	if err := content.Required("duration", &ev.Item.Duration); err != nil {
		return nil, jsonfield.Wrap("chatItem.content", err)
	}
	return ev, nil
}

// aChatItem and its parts fix the key order of the core's AChatItem for call
// items (notes §4: TYPES.md field order).
type aChatItem struct {
	ChatInfo struct {
		Type    string          `json:"type"`
		Contact smpcall.Contact `json:"contact"`
	} `json:"chatInfo"`
	ChatItem struct {
		ChatDir struct {
			Type string `json:"type"`
		} `json:"chatDir"`
		Meta struct {
			ItemID            int64            `json:"itemId"`
			ItemTs            smpcall.CoreTime `json:"itemTs"`
			ItemText          string           `json:"itemText"`
			ItemStatus        map[string]any   `json:"itemStatus"`
			ItemEdited        bool             `json:"itemEdited"`
			UserMention       bool             `json:"userMention"`
			Deletable         bool             `json:"deletable"`
			Editable          bool             `json:"editable"`
			ShowGroupAsSender bool             `json:"showGroupAsSender"`
			CreatedAt         smpcall.CoreTime `json:"createdAt"`
			UpdatedAt         smpcall.CoreTime `json:"updatedAt"`
		} `json:"meta"`
		Content struct {
			Type     string               `json:"type"`
			Status   smpcall.CICallStatus `json:"status"`
			Duration int                  `json:"duration"`
		} `json:"content"`
		Mentions  struct{} `json:"mentions"`
		Reactions []any    `json:"reactions"`
	} `json:"chatItem"`
}

func encodeAChatItem(ev *smpcall.CallItemEvent, at time.Time) aChatItem {
	var a aChatItem
	a.ChatInfo.Type, a.ChatInfo.Contact = "direct", ev.Contact
	it := &a.ChatItem
	ts := smpcall.CoreTime{Time: at.UTC()}
	it.Meta.ItemID, it.Meta.ItemTs, it.Meta.ItemText = ev.Item.ItemID, ts, ev.Item.Text
	it.Meta.CreatedAt, it.Meta.UpdatedAt = ts, ts
	// Item (delivery) status: a new sent item is sndNew, later sndSent; a
	// received one rcvNew, later rcvRead (notes §4). Clients ignore it.
	switch {
	case ev.Item.Sent && ev.New:
		it.Meta.ItemStatus = map[string]any{"type": "sndNew"}
	case ev.Item.Sent:
		it.Meta.ItemStatus = map[string]any{"type": "sndSent", "sndProgress": "complete"}
	case ev.New:
		it.Meta.ItemStatus = map[string]any{"type": "rcvNew"}
	default:
		it.Meta.ItemStatus = map[string]any{"type": "rcvRead"}
	}
	it.ChatDir.Type, it.Content.Type = "directRcv", "rcvCall"
	if ev.Item.Sent {
		it.ChatDir.Type, it.Content.Type = "directSnd", "sndCall"
	}
	it.Content.Status, it.Content.Duration = ev.Item.Status, ev.Item.Duration
	it.Reactions = []any{}
	return a
}

// EncodeEvent encodes ev as the core's event object (the resp of an event
// frame), keys in Haskell field order, absent optionals omitted (protocol
// §8.3, notes §0/§4/§6):
//
//   - *CallInvitationEvent → callInvitation; *CallOfferEvent → callOffer
//     with askConfirmation always present and sharedKey omitted when nil;
//     *CallAnswerEvent → callAnswer; *CallExtraInfoEvent → callExtraInfo;
//     *CallEndedEvent → callEnded;
//   - *MessageErrorEvent → messageError (its Contact is dropped: the core's
//     event has none);
//   - *CallItemEvent → newChatItems with one item when New, else
//     chatItemUpdated, with a minimal but realistic AChatItem whose
//     timestamps (itemTs, createdAt, updatedAt) are at.
//
// Other events (e.g. TransportErrorEvent) are not core events and are errors.
func EncodeEvent(ev smpcall.Event, at time.Time) (json.RawMessage, error) {
	type uc struct {
		Type    string          `json:"type"`
		User    smpcall.User    `json:"user"`
		Contact smpcall.Contact `json:"contact"`
	}
	if rv := reflect.ValueOf(ev); !rv.IsValid() || (rv.Kind() == reflect.Pointer && rv.IsNil()) {
		return nil, errors.New("smp: encode event: nil event")
	}
	var v any
	var typ string
	switch e := ev.(type) {
	case *smpcall.CallInvitationEvent:
		typ = EvCallInvitation
		v = struct {
			Type       string                    `json:"type"`
			Invitation smpcall.RcvCallInvitation `json:"callInvitation"`
		}{typ, e.Invitation}
	case *smpcall.CallOfferEvent:
		typ = EvCallOffer
		v = struct {
			uc
			CallType        smpcall.CallType      `json:"callType"`
			Offer           smpcall.WebRTCSession `json:"offer"`
			SharedKey       *smpcall.SharedKey    `json:"sharedKey,omitempty"`
			AskConfirmation bool                  `json:"askConfirmation"`
		}{uc{typ, e.User, e.Contact}, e.CallType, e.Offer, e.SharedKey, e.AskConfirmation}
	case *smpcall.CallAnswerEvent:
		typ = EvCallAnswer
		v = struct {
			uc
			Answer smpcall.WebRTCSession `json:"answer"`
		}{uc{typ, e.User, e.Contact}, e.Answer}
	case *smpcall.CallExtraInfoEvent:
		typ = EvCallExtraInfo
		v = struct {
			uc
			ExtraInfo smpcall.WebRTCExtraInfo `json:"extraInfo"`
		}{uc{typ, e.User, e.Contact}, e.ExtraInfo}
	case *smpcall.CallEndedEvent:
		typ = EvCallEnded
		v = uc{typ, e.User, e.Contact}
	case *smpcall.MessageErrorEvent:
		typ = EvMessageError
		v = struct {
			Type         string       `json:"type"`
			User         smpcall.User `json:"user"`
			Severity     string       `json:"severity"`
			ErrorMessage string       `json:"errorMessage"`
		}{typ, e.User, e.Severity, e.ErrorMessage}
	case *smpcall.CallItemEvent:
		item := encodeAChatItem(e, at)
		if e.New {
			typ = EvNewChatItems
			v = struct {
				Type      string       `json:"type"`
				User      smpcall.User `json:"user"`
				ChatItems []aChatItem  `json:"chatItems"`
			}{typ, e.User, []aChatItem{item}}
		} else {
			typ = EvChatItemUpdated
			v = struct {
				Type     string       `json:"type"`
				User     smpcall.User `json:"user"`
				ChatItem aChatItem    `json:"chatItem"`
			}{typ, e.User, item}
		}
	default:
		return nil, fmt.Errorf("smp: encode event: %T is not a chat core event", ev)
	}
	b, err := jsonfield.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("smp: encode %s: %w", typ, err)
	}
	return b, nil
}
