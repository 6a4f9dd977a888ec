package smp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
)

// --- fixtures (smp/testdata/api, literal JSON from protocol §8/§10 and docs/chat-core-json.md) ---

func apiFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "api", name))
	require.NoError(t, err)
	return bytes.TrimSpace(data)
}

func apiLines(t testing.TB, name string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, l := range bytes.Split(apiFixture(t, name), []byte("\n")) {
		if l = bytes.TrimSpace(l); len(l) > 0 {
			out = append(out, l)
		}
	}
	return out
}

// compactJSON removes the line breaks of the pretty fixtures so they can be spliced into frames.
func compactJSON(t testing.TB, data []byte) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, json.Compact(&b, data))
	return b.String()
}

func frameResp(t testing.TB, data []byte) (Frame, json.RawMessage) {
	t.Helper()
	f, err := DecodeFrame(data)
	require.NoError(t, err)
	return f, f.Resp
}

func decodeOne(t testing.TB, resp string) smpcall.Event {
	t.Helper()
	evs, err := DecodeEvent(json.RawMessage(resp))
	require.NoError(t, err)
	require.Len(t, evs, 1)
	return evs[0]
}

var (
	videoEnc = smpcall.CallType{Media: smpcall.MediaVideo, Capabilities: smpcall.CallCapabilities{Encryption: true}}
	audioRaw = smpcall.CallType{Media: smpcall.MediaAudio}
)

func mustKey(t testing.TB, s string) *smpcall.SharedKey {
	t.Helper()
	k, err := smpcall.ParseSharedKey(s)
	require.NoError(t, err)
	return &k
}

// --- commands ------------------------------------------------------------------

func TestCommandBuildersExactText(t *testing.T) {
	s, err := CmdInvite(2, videoEnc)
	require.NoError(t, err)
	require.Equal(t, `/_call invite @2 {"media":"video","capabilities":{"encryption":true}}`, s)

	// The protocol §8.2 example request carries exactly this text.
	req, err := DecodeRequest(apiLines(t, "protocol-8.2-exchange.jsonl")[0])
	require.NoError(t, err)
	require.Equal(t, Request{CorrID: "7", Cmd: s}, req)

	s, err = CmdOffer(3, smpcall.WebRTCCallOffer{CallType: audioRaw, RTCSession: smpcall.WebRTCSession{RTCSession: "N4Ig", RTCIceCandidates: "Nobw"}})
	require.NoError(t, err)
	require.Equal(t, `/_call offer @3 {"callType":{"media":"audio","capabilities":{"encryption":false}},"rtcSession":{"rtcSession":"N4Ig","rtcIceCandidates":"Nobw"}}`, s)

	s, err = CmdAnswer(4, smpcall.WebRTCSession{RTCSession: "a<b>&", RTCIceCandidates: "c"})
	require.NoError(t, err)
	require.Equal(t, `/_call answer @4 {"rtcSession":"a<b>&","rtcIceCandidates":"c"}`, s, "no HTML escaping, as aeson")

	s, err = CmdExtra(5, smpcall.WebRTCExtraInfo{RTCIceCandidates: "NobwRAzg"})
	require.NoError(t, err)
	require.Equal(t, `/_call extra @5 {"rtcIceCandidates":"NobwRAzg"}`, s)

	require.Equal(t, "/_call end @6", CmdEnd(6))
	require.Equal(t, "/_call reject @7", CmdReject(7))
	for _, st := range []smpcall.WebRTCCallStatus{smpcall.StatusConnecting, smpcall.StatusConnected, smpcall.StatusDisconnected, smpcall.StatusFailed} {
		s, err = CmdStatus(8, st)
		require.NoError(t, err)
		require.Equal(t, "/_call status @8 "+string(st), s)
	}
	require.Equal(t, "/_call get", CmdGetCalls())
	require.Equal(t, "/user", CmdActiveUser())
	require.Equal(t, "/users", CmdUsers())
	require.Equal(t, "/_contacts 1", CmdContacts(1))
	s, err = CmdCall("bob")
	require.NoError(t, err)
	require.Equal(t, "/call @bob", s)
	s, err = CmdCall("bob smith")
	require.NoError(t, err)
	require.Equal(t, "/call @'bob smith'", s)
	require.Equal(t, "/_user 2", CmdSetActiveUser(2))
}

// Names are written the way the core's displayNameP_ reads them
// (Commands.hs): bare unless they contain white space (per Data.Char.isSpace
// on each byte, which includes 0xA0) or a comma, else quoted with '.
func TestQuoteNameLikeTheCoreParses(t *testing.T) {
	for name, want := range map[string]string{
		"bob":       "bob",
		"bob smith": "'bob smith'",
		"bob,jr":    "'bob,jr'",
		"o'brien":   "o'brien",
		"à":         "'à'", // C3 A0: the core's Char8 parser sees 0xA0 as a space
		"é":         "é",
		"tab\there": "'tab\there'",
		"trailing ": "'trailing '",
		"a#b":       "a#b",
		"日本":        "日本",
		"a\rb":      "'a\rb'",
	} {
		got, err := QuoteName(name)
		require.NoError(t, err, name)
		require.Equal(t, want, got, name)
		c, err := ParseCommand("/call @" + got)
		require.NoError(t, err, name)
		require.Equal(t, name, c.Name)
		c, err = ParseCommand("/user " + got)
		require.NoError(t, err, name)
		require.Equal(t, Command{Kind: CommandSetActiveUser, Name: name}, c)
	}
	for _, name := range []string{"", "#team", "@bob", "'bob", " bob", "o'brien smith", "\tx"} {
		_, err := QuoteName(name)
		require.Error(t, err, "%q", name)
		_, err = CmdCall(name)
		require.Error(t, err, "%q", name)
	}
}

func TestCommandBuildersRefuseInvalidValues(t *testing.T) {
	_, err := CmdStatus(1, "checking")
	require.ErrorContains(t, err, `unknown call status "checking"`)
	_, err = CmdStatus(1, "")
	require.Error(t, err)
	_, err = CmdInvite(1, smpcall.CallType{Media: "hologram"})
	require.ErrorContains(t, err, "hologram")
	_, err = CmdOffer(1, smpcall.WebRTCCallOffer{})
	require.Error(t, err, "empty media")
	_, err = CmdInvite(-1, videoEnc)
	require.ErrorContains(t, err, "negative contact id")
	_, err = CmdCall("")
	require.Error(t, err)
	_, err = CmdCall("o'brien smith")
	require.Error(t, err)
	_, err = Command{Kind: CommandEnd, ContactID: -3}.Text()
	require.Error(t, err)
	_, err = Command{Kind: CommandContacts, UserID: -3}.Text()
	require.Error(t, err)
	_, err = Command{Kind: "dance"}.Text()
	require.Error(t, err)
}

func TestParseCommandRoundTripsEveryBuilder(t *testing.T) {
	sess := smpcall.WebRTCSession{RTCSession: "N4IgLgng…", RTCIceCandidates: "NoXSA==="}
	cmds := []Command{
		{Kind: CommandInvite, ContactID: 2, CallType: videoEnc},
		{Kind: CommandInvite, ContactID: 0, CallType: audioRaw},
		{Kind: CommandOffer, ContactID: 3, Offer: smpcall.WebRTCCallOffer{CallType: videoEnc, RTCSession: sess}},
		{Kind: CommandAnswer, ContactID: 4, Session: sess},
		{Kind: CommandAnswer, ContactID: 4},
		{Kind: CommandExtra, ContactID: 1 << 62, Extra: smpcall.WebRTCExtraInfo{RTCIceCandidates: "x y\nz"}},
		{Kind: CommandEnd, ContactID: 6},
		{Kind: CommandReject, ContactID: 7},
		{Kind: CommandStatus, ContactID: 8, Status: smpcall.StatusConnecting},
		{Kind: CommandStatus, ContactID: 8, Status: smpcall.StatusConnected},
		{Kind: CommandStatus, ContactID: 8, Status: smpcall.StatusDisconnected},
		{Kind: CommandStatus, ContactID: 8, Status: smpcall.StatusFailed},
		{Kind: CommandGet},
		{Kind: CommandUser},
		{Kind: CommandUsers},
		{Kind: CommandContacts, UserID: 12},
		{Kind: CommandCall, Name: "bob", CallType: smpcall.DefaultCallType},
		{Kind: CommandCall, Name: "bob smith", CallType: smpcall.DefaultCallType},
		{Kind: CommandCall, Name: "o'brien", CallType: smpcall.DefaultCallType},
		{Kind: CommandSetActiveUser, UserID: 2},
		{Kind: CommandSetActiveUser, UserID: 3, ViewPwd: "secret pass"},
		{Kind: CommandSetActiveUser, Name: "bob, jr"},
	}
	for _, c := range cmds {
		text, err := c.Text()
		require.NoError(t, err, c.Kind)
		got, err := ParseCommand(text)
		require.NoError(t, err, text)
		require.Equal(t, c, got, text)
		// The core drops trailing white space before parsing.
		got, err = ParseCommand(text + " \t\n")
		require.NoError(t, err, text)
		require.Equal(t, c, got, text)
	}
	// The Cmd* functions directly.
	for text, want := range map[string]Command{
		CmdEnd(6):       {Kind: CommandEnd, ContactID: 6},
		CmdReject(7):    {Kind: CommandReject, ContactID: 7},
		CmdGetCalls():   {Kind: CommandGet},
		CmdActiveUser(): {Kind: CommandUser},
		CmdUsers():      {Kind: CommandUsers},
		CmdContacts(3):  {Kind: CommandContacts, UserID: 3},
	} {
		got, err := ParseCommand(text)
		require.NoError(t, err, text)
		require.Equal(t, want, got, text)
	}
}

func TestParseCommandAccepts(t *testing.T) {
	for text, want := range map[string]Command{
		"/u":        {Kind: CommandUser},
		"/call bob": {Kind: CommandCall, Name: "bob", CallType: smpcall.DefaultCallType},
		// aeson accepts white space around the JSON value.
		`/_call invite @2  {"media":"audio","capabilities":{"encryption":false}} `: {Kind: CommandInvite, ContactID: 2, CallType: audioRaw},
		// unknown keys are ignored, as by aeson
		`/_call extra @9 {"rtcIceCandidates":"c","other":1}`: {Kind: CommandExtra, ContactID: 9, Extra: smpcall.WebRTCExtraInfo{RTCIceCandidates: "c"}},
		"/_call end @007": {Kind: CommandEnd, ContactID: 7},
		"/call @'a\rb'":   {Kind: CommandCall, Name: "a\rb", CallType: smpcall.DefaultCallType},
		"/u bob":          {Kind: CommandSetActiveUser, Name: "bob"},
		`/_user 4 "pw"`:   {Kind: CommandSetActiveUser, UserID: 4, ViewPwd: "pw"},
	} {
		got, err := ParseCommand(text)
		require.NoError(t, err, text)
		require.Equal(t, want, got, text)
	}
}

func TestParseCommandRejectsLikeTheCore(t *testing.T) {
	for _, text := range []string{
		"", " ", "hello", "/user 'x", "/user x y", "/users2", "/_user", "/_user x", "/_user 1 pw", "/_user 1 null", "/_user -1", "/_call", "/_call get x", "/_call dance @2",
		"/_call end", "/_call end @", "/_call end @x", "/_call end @-1", "/_call end @+1", "/_call end @2 now",
		"/_call end  @2", " /_call end @2", "/_call end @99999999999999999999",
		"/_call reject @2 {}",
		"/_call status @2", "/_call status @2 checking", "/_call status @2 Connected", "/_call status @2  connected",
		"/_call status @2 connected x",
		"/_call invite @2", "/_call invite @2 ", `/_call invite @2 {"media":"video"}`,
		`/_call invite @2 {"media":"hologram","capabilities":{"encryption":true}}`,
		`/_call invite @2 {"media":"video","capabilities":{"encryption":true}} x`,
		`/_call invite @2 {"media":"video","capabilities":{"encryption":true}`,
		`/_call invite @2 null`, `/_call invite @2 []`, `/_call invite @2{"media":"video","capabilities":{"encryption":true}}`,
		`/_call offer @2 {"callType":{"media":"video","capabilities":{"encryption":true}}}`,
		`/_call answer @2 {"rtcSession":"a"}`, `/_call answer @2 {"rtcSession":1,"rtcIceCandidates":"b"}`,
		`/_call extra @2 {}`,
		"/_contacts", "/_contacts ", "/_contacts x", "/_contacts -1",
		"/call", "/call ", "/call @", "/call @'\n'", "/call @bob smith", "/call @bob,jr", "/call @#team", "/call @'#team'", "/call @'bob", "/call @''", "/call @'a'b'",
	} {
		c, err := ParseCommand(text)
		require.Error(t, err, "%q", text)
		require.Equal(t, Command{}, c, "%q", text)
		require.ErrorIs(t, err, smpcall.ErrCommand, "%q", text)
		var ce *smpcall.ChatError
		require.ErrorAs(t, err, &ce, "%q", text)
		require.Equal(t, CommandParseError, ce.Message, "%q", text)
		// A server sends it as the core does (notes §6).
		body, err := EncodeResponse(Response{Type: RespChatCmdError, Err: ce})
		require.NoError(t, err)
		require.JSONEq(t, `{"type":"chatCmdError","chatError":{"type":"error","errorType":{"type":"commandError","message":"Failed reading: empty"}}}`, string(body))
	}
	_, err := ParseCommand(`/_call answer @2 {"rtcSession":1,"rtcIceCandidates":"b"}`)
	require.ErrorContains(t, err, "rtcSession: unexpected JSON number", "the error also says what was wrong")
}

// --- framing --------------------------------------------------------------------

func TestDecodeRequest(t *testing.T) {
	r, err := DecodeRequest([]byte(`{"corrId":"abc","cmd":"/_call get","extra":[1]}`))
	require.NoError(t, err)
	require.Equal(t, Request{CorrID: "abc", Cmd: "/_call get"}, r)

	for in, want := range map[string]string{
		`{"corrId":7,"cmd":"/user"}`:  "smp: request: corrId: unexpected JSON number",
		`{"cmd":"/user"}`:             "smp: request: corrId: required field missing",
		`{"corrId":"1"}`:              "smp: request: cmd: required field missing",
		`{"corrId":"1","cmd":null}`:   "smp: request: cmd: required field missing",
		`{"corrId":"1","cmd":["/u"]}`: "smp: request: cmd: unexpected JSON array",
		`["/user"]`:                   "smp: request: expected a JSON object, got an array",
		`{"corrId":"1","cmd":"/user"`: "invalid JSON",
		``:                            "expected a JSON object, got nothing",
	} {
		_, err := DecodeRequest([]byte(in))
		require.ErrorContains(t, err, want, in)
	}
	_, err = DecodeRequest([]byte(`{"corrId":7,"cmd":"/user"}`))
	var fe *smpcall.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "corrId", fe.Path)
}

func TestDecodeFrame(t *testing.T) {
	lines := apiLines(t, "protocol-8.2-exchange.jsonl")
	f, resp := frameResp(t, lines[1])
	require.True(t, f.HasCorrID)
	require.Equal(t, "7", f.CorrID)
	require.JSONEq(t, `{"type":"cmdOk","user_":{"userId":1,"localDisplayName":"alice", "...": "..."}}`, string(resp))

	f, _ = frameResp(t, lines[2])
	require.False(t, f.HasCorrID)
	require.Equal(t, "", f.CorrID)

	f, _ = frameResp(t, []byte(`{"corrId":null,"resp":{"type":"x"}}`))
	require.False(t, f.HasCorrID, "null corrId counts as absent")
	f, _ = frameResp(t, []byte(`{"corrId":"","resp":{"type":"x"}}`))
	require.True(t, f.HasCorrID, "an empty corrId is still a corrId")

	for in, want := range map[string]string{
		``:                                "smp: frame: expected a JSON object, got nothing",
		`garbage`:                         "smp: frame: expected a JSON object, got invalid JSON",
		`{"resp":{"type":"cmdOk"}`:        "smp: frame: invalid JSON",
		`[]`:                              "smp: frame: expected a JSON object, got an array",
		`{"corrId":"1"}`:                  "smp: frame: resp: required field missing",
		`{"corrId":"1","resp":null}`:      "smp: frame: resp: required field missing",
		`{"corrId":1,"resp":{}}`:          "smp: frame: corrId: unexpected JSON number",
		`{"resp":[{"type":"cmdOk"}]}`:     "smp: frame: resp: expected a JSON object, got an array",
		`{"resp":"cmdOk"}`:                "smp: frame: resp: expected a JSON object, got a string",
		`{"resp":{"Right":[1]}}`:          "smp: frame: resp.Right: expected a JSON object, got an array",
		`{"resp":{"Left":null}}`:          "smp: frame: resp.Left: expected a JSON object, got null",
		"{\"resp\":{\"type\":\"x\"}}\n{}": "invalid JSON",
	} {
		_, err := DecodeFrame([]byte(in))
		require.ErrorContains(t, err, want, in)
	}
}

func TestDecodeFrameUnwrapsEither(t *testing.T) {
	// notes §7: Server.hs encodes resp with toJSON of a Haskell Either.
	f, resp := frameResp(t, []byte(`{"corrId":"3","resp":{"Right":{"type":"cmdOk","user_":{"userId":1}}}}`))
	require.Equal(t, "3", f.CorrID)
	require.JSONEq(t, `{"type":"cmdOk","user_":{"userId":1}}`, string(resp))
	r, err := DecodeResponse(resp)
	require.NoError(t, err)
	require.Equal(t, RespCmdOk, r.Type)

	_, resp = frameResp(t, []byte(`{"corrId":"4","resp":{"Left":{"type":"chatCmdError","chatError":{"type":"error","errorType":{"type":"noCurrentCall"}}}}}`))
	r, err = DecodeResponse(resp)
	require.NoError(t, err)
	require.ErrorIs(t, r.Err, smpcall.ErrNoCurrentCall)

	_, resp = frameResp(t, []byte(`{"resp":{"Left":{"type":"chatError","chatError":{"type":"error","errorType":{"type":"noActiveUser"}}}}}`))
	evs, err := DecodeEvent(resp)
	require.NoError(t, err)
	require.Len(t, evs, 1)

	// DecodeResponse and DecodeEvent unwrap too.
	r, err = DecodeResponse(json.RawMessage(`{"Right":{"type":"cmdOk"}}`))
	require.NoError(t, err)
	require.Equal(t, RespCmdOk, r.Type)
	require.JSONEq(t, `{"type":"cmdOk"}`, string(r.Raw))
	ev := decodeOne(t, `{"Right":{"type":"callEnded","user":{"userId":1},"contact":{"contactId":2}}}`)
	require.Equal(t, int64(2), ev.ContactID())

	// Only a single-key wrapper is one; only one level is removed.
	_, resp = frameResp(t, []byte(`{"resp":{"Right":{"type":"x"},"type":"y"}}`))
	require.JSONEq(t, `{"Right":{"type":"x"},"type":"y"}`, string(resp))
	_, resp = frameResp(t, []byte(`{"resp":{"Right":{"Left":{"type":"x"}}}}`))
	require.JSONEq(t, `{"Left":{"type":"x"}}`, string(resp))
	_, err = DecodeResponse(resp)
	require.NoError(t, err, "unwrapped once more by DecodeResponse")
	_, err = DecodeResponse(json.RawMessage(`{"Right":{"Left":{"type":"x"}}}`))
	require.ErrorContains(t, err, "type: required field missing")
}

func TestEncodeFrame(t *testing.T) {
	id := "7"
	b, err := EncodeFrame(&id, json.RawMessage(`{"type":"cmdOk"}`))
	require.NoError(t, err)
	require.Equal(t, `{"corrId":"7","resp":{"type":"cmdOk"}}`, string(b))
	b, err = EncodeFrame(nil, []byte(` {"type":"callEnded"} `))
	require.NoError(t, err)
	require.Equal(t, `{"resp":{"type":"callEnded"}}`, string(b))
	empty := ""
	b, err = EncodeFrame(&empty, map[string]string{"type": "a<b>"})
	require.NoError(t, err)
	require.Equal(t, `{"corrId":"","resp":{"type":"a<b>"}}`, string(b))

	_, err = EncodeFrame(nil, nil)
	require.Error(t, err)
	_, err = EncodeFrame(nil, json.RawMessage(nil))
	require.Error(t, err)
	_, err = EncodeFrame(nil, json.RawMessage(`{`))
	require.Error(t, err)

	// EncodeFrame → DecodeFrame.
	b, err = EncodeFrame(&id, json.RawMessage(`{"type":"cmdOk"}`))
	require.NoError(t, err)
	f, err := DecodeFrame(b)
	require.NoError(t, err)
	require.Equal(t, Frame{CorrID: "7", HasCorrID: true, Resp: json.RawMessage(`{"type":"cmdOk"}`)}, f)
}

// --- responses ------------------------------------------------------------------

func TestDecodeResponseCmdOkBothForms(t *testing.T) {
	user := compactJSON(t, apiFixture(t, "user.json"))
	r, err := DecodeResponse(json.RawMessage(`{"type":"cmdOk","user_":` + user + `}`))
	require.NoError(t, err)
	require.Equal(t, RespCmdOk, r.Type)
	require.NotNil(t, r.User)
	require.Equal(t, int64(1), r.User.UserID)
	require.Equal(t, "alice", r.User.LocalDisplayName)
	require.JSONEq(t, user, string(r.User.Raw()), "the whole user is kept")
	require.Nil(t, r.Err)

	r, err = DecodeResponse(json.RawMessage(`{"type":"cmdOk"}`)) // older cores
	require.NoError(t, err)
	require.Equal(t, Response{Type: RespCmdOk, Raw: json.RawMessage(`{"type":"cmdOk"}`)}, r)
	r, err = DecodeResponse(json.RawMessage(`{"type":"cmdOk","user_":null}`))
	require.NoError(t, err)
	require.Nil(t, r.User)
}

func TestDecodeResponseCallInvitations(t *testing.T) {
	inv := `{"user":{"userId":1},"contact":{"contactId":2},"callType":{"media":"video","capabilities":{"encryption":true}},"sharedKey":"Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I=","callUUID":"6d1f2a0c-6f8e-4c6b-9d0e-2f1b3c4d5e6f","callTs":"2025-01-31T12:00:00.123456Z"}`
	noKey := `{"user":{"userId":1},"contact":{"contactId":3},"callType":{"media":"audio","capabilities":{"encryption":false}},"callTs":"2025-01-31T12:00:01Z"}`
	r, err := DecodeResponse(json.RawMessage(`{"type":"callInvitations","callInvitations":[` + inv + `,` + noKey + `]}`))
	require.NoError(t, err)
	require.Len(t, r.Invitations, 2)
	a, b := r.Invitations[0], r.Invitations[1]
	require.Equal(t, int64(2), a.Contact.ContactID)
	require.Equal(t, videoEnc, a.CallType)
	require.Equal(t, mustKey(t, "Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I="), a.SharedKey)
	require.Equal(t, "6d1f2a0c-6f8e-4c6b-9d0e-2f1b3c4d5e6f", a.CallUUID)
	require.Equal(t, time.Date(2025, 1, 31, 12, 0, 0, 123456000, time.UTC), a.CallTs.Time)
	require.Nil(t, b.SharedKey)
	require.Equal(t, "", b.CallUUID)
	require.Equal(t, audioRaw, b.CallType)

	r, err = DecodeResponse(json.RawMessage(`{"type":"callInvitations","callInvitations":[]}`))
	require.NoError(t, err)
	require.Empty(t, r.Invitations)
}

func TestDecodeResponseLookUps(t *testing.T) {
	user := compactJSON(t, apiFixture(t, "user.json"))
	contact := compactJSON(t, apiFixture(t, "contact.json"))

	r, err := DecodeResponse(json.RawMessage(`{"type":"activeUser","user":` + user + `}`))
	require.NoError(t, err)
	require.Equal(t, RespActiveUser, r.Type)
	require.Equal(t, "alice", r.User.LocalDisplayName)

	r, err = DecodeResponse(json.RawMessage(`{"type":"usersList","users":[{"user":` + user + `,"unreadCount":3},{"user":{"userId":2,"localDisplayName":"work"},"unreadCount":0}]}`))
	require.NoError(t, err)
	require.Nil(t, r.User, "usersList has no user key")
	require.Len(t, r.Users, 2)
	require.Equal(t, "alice", r.Users[0].LocalDisplayName)
	require.Equal(t, int64(2), r.Users[1].UserID)

	r, err = DecodeResponse(json.RawMessage(`{"type":"contactsList","user":` + user + `,"contacts":[` + contact + `,{"contactId":5,"localDisplayName":"","profile":{"displayName":"carol","fullName":"Carol C"}}]}`))
	require.NoError(t, err)
	require.Equal(t, int64(1), r.User.UserID)
	require.Len(t, r.Contacts, 2)
	require.Equal(t, int64(2), r.Contacts[0].ContactID)
	require.Equal(t, "bob", r.Contacts[0].Name())
	require.Equal(t, "carol", r.Contacts[1].Name())
	require.JSONEq(t, contact, string(r.Contacts[0].Raw()))

	r, err = DecodeResponse(json.RawMessage(`{"type":"contactsList","user":{"userId":1},"contacts":[]}`))
	require.NoError(t, err)
	require.Empty(t, r.Contacts)
}

func TestDecodeResponseErrorsOf10_1(t *testing.T) {
	lines := apiLines(t, "errors-10.1.jsonl")
	type check func(t *testing.T, ce *smpcall.ChatError)
	checks := []check{
		func(t *testing.T, ce *smpcall.ChatError) {
			require.ErrorIs(t, ce, smpcall.ErrNoCurrentCall)
		},
		func(t *testing.T, ce *smpcall.ChatError) {
			require.ErrorIs(t, ce, smpcall.ErrCallContact)
			require.Equal(t, int64(3), ce.ContactID)
		},
		func(t *testing.T, ce *smpcall.ChatError) {
			require.ErrorIs(t, ce, smpcall.ErrCallState)
			require.Equal(t, smpcall.TagInvitationSent, ce.CurrentCallState)
		},
		func(t *testing.T, ce *smpcall.ChatError) {
			require.ErrorIs(t, ce, smpcall.ErrCommand)
			require.Equal(t, "feature not allowed Audio/video calls", ce.Message)
		},
		func(t *testing.T, ce *smpcall.ChatError) {
			require.Equal(t, smpcall.KindDirectMessagesProhibited, ce.Kind)
			require.NotErrorIs(t, ce, smpcall.ErrCommand)
		},
		func(t *testing.T, ce *smpcall.ChatError) {
			require.Equal(t, smpcall.KindStore, ce.Kind)
			require.Equal(t, "contactNotFound", ce.Message)
		},
		func(t *testing.T, ce *smpcall.ChatError) {
			require.ErrorIs(t, ce, smpcall.ErrCommand)
			require.Equal(t, CommandParseError, ce.Message)
		},
		func(t *testing.T, ce *smpcall.ChatError) {
			require.ErrorIs(t, ce, smpcall.ErrCommand)
			require.Equal(t, InvalidRequestMessage, ce.Message)
		},
		func(t *testing.T, ce *smpcall.ChatError) {
			require.Equal(t, smpcall.ChatErrorKind("noActiveUser"), ce.Kind)
		},
	}
	require.Len(t, lines, len(checks))
	for i, line := range lines {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			f, resp := frameResp(t, line)
			require.Equal(t, i < 7, f.HasCorrID)
			r, err := DecodeResponse(resp)
			require.NoError(t, err)
			require.Equal(t, RespChatCmdError, r.Type)
			require.NotNil(t, r.Err)
			var wrapped error = fmt.Errorf("invite: %w", r.Err)
			var ce *smpcall.ChatError
			require.ErrorAs(t, wrapped, &ce)
			require.Same(t, r.Err, ce)
			checks[i](t, ce)
			// The object as received is kept, so a proxy re-sends it unchanged.
			var o map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(resp, &o))
			require.JSONEq(t, string(o["chatError"]), string(ce.Raw))
			body, err := EncodeResponse(r)
			require.NoError(t, err)
			require.JSONEq(t, string(resp), string(body))
		})
	}
	// Older cores: chatCmdError with user_.
	r, err := DecodeResponse(json.RawMessage(`{"type":"chatCmdError","user_":{"userId":1},"chatError":{"type":"error","errorType":{"type":"noCurrentCall"}}}`))
	require.NoError(t, err)
	require.Equal(t, int64(1), r.User.UserID)
	require.ErrorIs(t, r.Err, smpcall.ErrNoCurrentCall)
}

func TestDecodeResponseUnknownTypesAreKept(t *testing.T) {
	for _, in := range []string{
		`{"type":"apiChats","user":{"userId":1},"chats":[]}`,
		`{"type":"chatItemsStatusesUpdated","user":7}`,
		`{"type":"","anything":[1,2]}`,
	} {
		r, err := DecodeResponse(json.RawMessage(in))
		require.NoError(t, err, in)
		var typ struct{ Type string }
		require.NoError(t, json.Unmarshal([]byte(in), &typ))
		require.Equal(t, Response{Type: typ.Type, Raw: json.RawMessage(in)}, r)
		out, err := EncodeResponse(r)
		require.NoError(t, err)
		require.Equal(t, in, string(out), "passed through unchanged")
	}
	_, err := EncodeResponse(Response{Type: "apiChats"})
	require.Error(t, err, "unknown type without Raw")
}

func TestDecodeResponseErrorsNameTheField(t *testing.T) {
	for in, want := range map[string]string{
		``:                            "smp: response: expected a JSON object, got nothing",
		`{`:                           "smp: response: invalid JSON",
		`"cmdOk"`:                     "smp: response: expected a JSON object, got a string",
		`[{"type":"cmdOk"}]`:          "smp: response: expected a JSON object, got an array",
		`null`:                        "smp: response: expected a JSON object, got null",
		`{}`:                          "smp: response: type: required field missing",
		`{"user_":{"userId":1}}`:      "smp: response: type: required field missing",
		`{"type":5}`:                  "smp: response: type: unexpected JSON number",
		`{"type":"cmdOk","user_":{}}`: "smp: cmdOk: user_.userId: required field missing",
		`{"type":"cmdOk","user_":{"userId":"1"}}`:         "smp: cmdOk: user_.userId: unexpected JSON string",
		`{"type":"cmdOk","user_":[]}`:                     "smp: cmdOk: user_: expected a JSON object, got an array",
		`{"type":"callInvitations"}`:                      "smp: callInvitations: callInvitations: required field missing",
		`{"type":"callInvitations","callInvitations":{}}`: "smp: callInvitations: callInvitations: unexpected JSON object",
		`{"type":"callInvitations","callInvitations":[{"user":{"userId":1},"contact":{"contactId":2},"callType":{"media":"video","capabilities":{"encryption":true}}}]}`:                                                    "callTs: required field missing",
		`{"type":"callInvitations","callInvitations":[{"user":{"userId":1},"contact":{"contactId":2},"callType":{"media":"video","capabilities":{"encryption":true}},"sharedKey":"AAAA","callTs":"2025-01-31T12:00:00Z"}]}`: "sharedKey: 3 bytes, want 32",
		`{"type":"callInvitations","callInvitations":[null]}`:                                                     "smp: callInvitations: callInvitations: expected a JSON object, got null",
		`{"type":"activeUser"}`:                                                                                   "smp: activeUser: user: required field missing",
		`{"type":"usersList","users":[{"unreadCount":1}]}`:                                                        "smp: usersList: users[0].user: required field missing",
		`{"type":"usersList","users":[{"user":{"userId":1},"unreadCount":"x"}]}`:                                  "smp: usersList: users[0].unreadCount: unexpected JSON string",
		`{"type":"usersList","users":[{"user":{"userId":1}},7]}`:                                                  "smp: usersList: users[1]: expected a JSON object, got a number",
		`{"type":"usersList","users":"all"}`:                                                                      "smp: usersList: users: unexpected JSON string",
		`{"type":"contactsList","user":{"userId":1}}`:                                                             "smp: contactsList: contacts: required field missing",
		`{"type":"contactsList","contacts":[]}`:                                                                   "smp: contactsList: user: required field missing",
		`{"type":"contactsList","user":{"userId":1},"contacts":[{"contactId":"2"}]}`:                              "contactId: unexpected JSON string",
		`{"type":"chatCmdError"}`:                                                                                 "smp: chatCmdError: chatError: required field missing",
		`{"type":"chatCmdError","chatError":{"type":"error"}}`:                                                    "smp: chatCmdError: chatError.errorType: expected a JSON object, got nothing",
		`{"type":"chatCmdError","chatError":{"type":"error","errorType":{}}}`:                                     "smp: chatCmdError: chatError.errorType.type: required field missing",
		`{"type":"chatCmdError","chatError":{"type":"error","errorType":{"type":"callContact","contactId":"3"}}}`: "smp: chatCmdError: chatError.errorType.contactId: unexpected JSON string",
		`{"type":"chatError","chatError":7}`:                                                                      "smp: chatError: chatError: expected a JSON object, got a number",
	} {
		r, err := DecodeResponse(json.RawMessage(in))
		require.ErrorContains(t, err, want, in)
		require.Equal(t, Response{}, r, in)
	}
	_, err := DecodeResponse(json.RawMessage(`{"type":"activeUser","user":{"userId":true}}`))
	var fe *smpcall.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "user.userId", fe.Path)
}

func TestEncodeResponseExactAndRoundTrip(t *testing.T) {
	user := smpcall.User{UserID: 1, LocalDisplayName: "alice"}
	contact := smpcall.Contact{ContactID: 2, LocalDisplayName: "bob", Profile: smpcall.Profile{DisplayName: "bob"}}
	key := mustKey(t, "Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I=")
	inv := smpcall.RcvCallInvitation{User: user, Contact: contact, CallType: videoEnc, SharedKey: key,
		CallUUID: "6d1f2a0c-6f8e-4c6b-9d0e-2f1b3c4d5e6f", CallTs: smpcall.CoreTime{Time: time.Date(2025, 1, 31, 12, 0, 0, 123456000, time.UTC)}}
	cases := []struct {
		r    Response
		want string
	}{
		{Response{Type: RespCmdOk, User: &user}, `{"type":"cmdOk","user_":{"userId":1,"localDisplayName":"alice"}}`},
		{Response{Type: RespCmdOk}, `{"type":"cmdOk"}`},
		{Response{Type: RespCallInvitations, Invitations: []smpcall.RcvCallInvitation{inv}},
			`{"type":"callInvitations","callInvitations":[{"user":{"userId":1,"localDisplayName":"alice"},"contact":{"contactId":2,"localDisplayName":"bob","profile":{"displayName":"bob","fullName":""}},"callType":{"media":"video","capabilities":{"encryption":true}},"sharedKey":"Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I=","callUUID":"6d1f2a0c-6f8e-4c6b-9d0e-2f1b3c4d5e6f","callTs":"2025-01-31T12:00:00.123456Z"}]}`},
		{Response{Type: RespCallInvitations}, `{"type":"callInvitations","callInvitations":[]}`},
		{Response{Type: RespActiveUser, User: &user}, `{"type":"activeUser","user":{"userId":1,"localDisplayName":"alice"}}`},
		{Response{Type: RespUsersList, Users: []smpcall.User{user}}, `{"type":"usersList","users":[{"user":{"userId":1,"localDisplayName":"alice"},"unreadCount":0}]}`},
		{Response{Type: RespContactsList, User: &user, Contacts: []smpcall.Contact{contact}},
			`{"type":"contactsList","user":{"userId":1,"localDisplayName":"alice"},"contacts":[{"contactId":2,"localDisplayName":"bob","profile":{"displayName":"bob","fullName":""}}]}`},
		{Response{Type: RespChatCmdError, Err: &smpcall.ChatError{Kind: smpcall.KindCallState, CurrentCallState: smpcall.TagOfferSent}},
			`{"type":"chatCmdError","chatError":{"type":"error","errorType":{"type":"callState","currentCallState":"offerSent"}}}`},
		{Response{Type: RespChatCmdError, Err: &smpcall.ChatError{Kind: smpcall.KindCallContact, ContactID: 4}},
			`{"type":"chatCmdError","chatError":{"type":"error","errorType":{"type":"callContact","contactId":4}}}`},
		{Response{Type: RespChatCmdError, User: &user, Err: &smpcall.ChatError{Kind: smpcall.KindNoCurrentCall}},
			`{"type":"chatCmdError","user_":{"userId":1,"localDisplayName":"alice"},"chatError":{"type":"error","errorType":{"type":"noCurrentCall"}}}`},
		{Response{Type: RespChatError, Err: &smpcall.ChatError{Kind: smpcall.KindCommandError, Message: "x"}},
			`{"type":"chatError","chatError":{"type":"error","errorType":{"type":"commandError","message":"x"}}}`},
	}
	for _, c := range cases {
		b, err := EncodeResponse(c.r)
		require.NoError(t, err, c.r.Type)
		require.Equal(t, c.want, string(b))
		got, err := DecodeResponse(b)
		require.NoError(t, err)
		require.Equal(t, c.r.Type, got.Type)
		require.Equal(t, c.r.User != nil, got.User != nil)
		if c.r.User != nil {
			require.Equal(t, c.r.User.UserID, got.User.UserID)
			require.Equal(t, c.r.User.LocalDisplayName, got.User.LocalDisplayName)
		}
		require.Len(t, got.Invitations, len(c.r.Invitations))
		for i := range got.Invitations {
			g, w := got.Invitations[i], c.r.Invitations[i]
			require.Equal(t, w.Contact.ContactID, g.Contact.ContactID)
			require.Equal(t, w.CallType, g.CallType)
			require.Equal(t, w.SharedKey, g.SharedKey)
			require.Equal(t, w.CallUUID, g.CallUUID)
			require.True(t, w.CallTs.Equal(g.CallTs.Time))
		}
		require.Len(t, got.Users, len(c.r.Users))
		require.Len(t, got.Contacts, len(c.r.Contacts))
		for i := range got.Contacts {
			require.Equal(t, c.r.Contacts[i].ContactID, got.Contacts[i].ContactID)
			require.Equal(t, c.r.Contacts[i].Profile, got.Contacts[i].Profile)
		}
		if c.r.Err != nil {
			require.Equal(t, c.r.Err.Kind, got.Err.Kind)
			require.Equal(t, c.r.Err.CurrentCallState, got.Err.CurrentCallState)
			require.Equal(t, c.r.Err.ContactID, got.Err.ContactID)
			require.Equal(t, c.r.Err.Message, got.Err.Message)
		}
		// Decoded objects re-encode byte for byte.
		again, err := EncodeResponse(got)
		require.NoError(t, err)
		require.Equal(t, c.want, string(again))
	}
	for _, r := range []Response{{Type: RespActiveUser}, {Type: RespContactsList}, {Type: RespChatCmdError}, {Type: RespChatError}} {
		_, err := EncodeResponse(r)
		require.Error(t, err, r.Type)
	}
}

// --- events ---------------------------------------------------------------------

func TestDecodeEventsOfProtocol8_3(t *testing.T) {
	lines := apiLines(t, "protocol-8.3-events.jsonl")
	require.Len(t, lines, 6)
	key := mustKey(t, "Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I=")
	var evs []smpcall.Event
	for _, l := range lines {
		f, resp := frameResp(t, l)
		require.False(t, f.HasCorrID)
		evs = append(evs, decodeOne(t, string(resp)))
	}

	inv := evs[0].(*smpcall.CallInvitationEvent)
	require.Equal(t, int64(1), inv.Invitation.User.UserID)
	require.Equal(t, int64(2), inv.ContactID())
	require.Equal(t, videoEnc, inv.Invitation.CallType)
	require.Equal(t, key, inv.Invitation.SharedKey)
	require.Equal(t, "6d1f2a0c-6f8e-4c6b-9d0e-2f1b3c4d5e6f", inv.Invitation.CallUUID)
	require.Equal(t, time.Date(2025, 1, 31, 12, 0, 0, 123456000, time.UTC), inv.Invitation.CallTs.Time)

	offer := evs[1].(*smpcall.CallOfferEvent)
	require.Equal(t, int64(1), offer.User.UserID)
	require.Equal(t, int64(3), offer.ContactID())
	require.Equal(t, videoEnc, offer.CallType)
	require.Equal(t, smpcall.WebRTCSession{RTCSession: "N4IgLgng…", RTCIceCandidates: "NobwRAxg…"}, offer.Offer)
	require.Equal(t, key, offer.SharedKey)
	require.False(t, offer.AskConfirmation)

	answer := evs[2].(*smpcall.CallAnswerEvent)
	require.Equal(t, int64(2), answer.ContactID())
	require.Equal(t, smpcall.WebRTCSession{RTCSession: "N4IgLgng…", RTCIceCandidates: "NoXSA==="}, answer.Answer)

	extra := evs[3].(*smpcall.CallExtraInfoEvent)
	require.Equal(t, int64(2), extra.ContactID())
	require.Equal(t, smpcall.WebRTCExtraInfo{RTCIceCandidates: "NobwRAzg…"}, extra.ExtraInfo)

	ended := evs[4].(*smpcall.CallEndedEvent)
	require.Equal(t, int64(1), ended.User.UserID)
	require.Equal(t, int64(2), ended.ContactID())

	me := evs[5].(*smpcall.MessageErrorEvent)
	require.Equal(t, int64(1), me.User.UserID)
	require.Nil(t, me.Contact, "the core's event does not name the contact")
	require.Zero(t, me.ContactID())
	require.Equal(t, "error", me.Severity)
	require.Equal(t, "x.call.answer: wrong call state CSTCallNegotiated", me.ErrorMessage)

	// Every event round-trips through EncodeEvent byte for byte (User and
	// Contact keep their raw objects; key order is the core's).
	for i, ev := range evs {
		b, err := EncodeEvent(ev, time.Time{})
		require.NoError(t, err)
		_, resp := frameResp(t, lines[i])
		require.Equal(t, string(resp), string(b), "event %d", i)
		require.Equal(t, ev, decodeOne(t, string(b)))
	}
}

func TestDecodeEventOfferVariants(t *testing.T) {
	base := `"type":"callOffer","user":{"userId":1},"contact":{"contactId":3},"callType":{"media":"audio","capabilities":{"encryption":false}},"offer":{"rtcSession":"s","rtcIceCandidates":"c"}`
	for _, tail := range []string{`,"askConfirmation":true`, `,"sharedKey":null,"askConfirmation":true`} {
		ev := decodeOne(t, "{"+base+tail+"}").(*smpcall.CallOfferEvent)
		require.Nil(t, ev.SharedKey)
		require.True(t, ev.AskConfirmation)
		require.Equal(t, audioRaw, ev.CallType)
	}
	// Unpadded key accepted (protocol §5.2).
	ev := decodeOne(t, "{"+base+`,"sharedKey":"Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I","askConfirmation":false}`).(*smpcall.CallOfferEvent)
	require.Equal(t, mustKey(t, "Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I="), ev.SharedKey)
}

func TestDecodeEventChatError(t *testing.T) {
	ev := decodeOne(t, `{"type":"chatError","chatError":{"type":"error","errorType":{"type":"noCurrentCall"}}}`).(*smpcall.MessageErrorEvent)
	require.Equal(t, "error", ev.Severity)
	require.Equal(t, smpcall.ErrNoCurrentCall.Error(), ev.ErrorMessage)
	require.Equal(t, smpcall.User{}, ev.User)
	require.Nil(t, ev.Contact)

	ev = decodeOne(t, `{"type":"chatError","user_":{"userId":4},"chatError":{"type":"errorAgent","agentError":{"type":"CONN","connErr":"NOT_FOUND"}}}`).(*smpcall.MessageErrorEvent)
	require.Equal(t, int64(4), ev.User.UserID)
	require.Equal(t, "chat core: errorAgent", ev.ErrorMessage)

	evs, err := DecodeEvent(json.RawMessage(`{"type":"chatErrors","chatErrors":[{"type":"error","errorType":{"type":"noCurrentCall"}},{"type":"errorStore","storeError":{"type":"contactNotFound","contactId":5}}]}`))
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, "chat core: errorStore: contactNotFound", evs[1].(*smpcall.MessageErrorEvent).ErrorMessage)
}

// callItemJSON builds an AChatItem as in the notes §4 example.
func callItemJSON(sent bool, status smpcall.CICallStatus, duration int, id int64) string {
	dir, ctype, istatus := "directRcv", "rcvCall", `{"type":"rcvNew"}`
	if sent {
		dir, ctype, istatus = "directSnd", "sndCall", `{"type":"sndSent","sndProgress":"complete"}`
	}
	return fmt.Sprintf(`{"chatInfo":{"type":"direct","contact":{"contactId":2,"localDisplayName":"bob"}},`+
		`"chatItem":{"chatDir":{"type":%q},"meta":{"itemId":%d,"itemTs":"2025-01-31T12:00:00.123456789Z","itemText":%q,`+
		`"itemStatus":%s,"itemEdited":false,"userMention":false,"deletable":false,"editable":false,"showGroupAsSender":false,`+
		`"createdAt":"2025-01-31T12:00:00.123456789Z","updatedAt":"2025-01-31T12:00:00.123456789Z"},`+
		`"content":{"type":%q,"status":%q,"duration":%d},"mentions":{},"reactions":[]}}`,
		dir, id, smpcall.ItemText(sent, status, duration), istatus, ctype, status, duration)
}

var allCIStatuses = []smpcall.CICallStatus{smpcall.CIStatusPending, smpcall.CIStatusMissed, smpcall.CIStatusRejected,
	smpcall.CIStatusAccepted, smpcall.CIStatusNegotiated, smpcall.CIStatusProgress, smpcall.CIStatusEnded, smpcall.CIStatusError}

func TestDecodeEventCallItems(t *testing.T) {
	user := `{"userId":1,"localDisplayName":"alice"}`
	for _, sent := range []bool{true, false} {
		for i, st := range allCIStatuses {
			dur := 0
			if st == smpcall.CIStatusEnded || st == smpcall.CIStatusProgress {
				dur = 65
			}
			item := callItemJSON(sent, st, dur, int64(100+i))
			want := smpcall.CallItem{ItemID: int64(100 + i), Sent: sent, Status: st, Duration: dur, Text: smpcall.ItemText(sent, st, dur)}
			for typ, body := range map[string]string{
				EvNewChatItems:    `"chatItems":[` + item + `]`,
				EvNewChatItem:     `"chatItem":` + item,
				EvChatItemUpdated: `"chatItem":` + item,
			} {
				ev := decodeOne(t, `{"type":"`+typ+`","user":`+user+`,`+body+`}`).(*smpcall.CallItemEvent)
				require.Equal(t, want, ev.Item, "%s %v %s", typ, sent, st)
				require.Equal(t, typ != EvChatItemUpdated, ev.New, typ)
				require.Equal(t, int64(1), ev.User.UserID)
				require.Equal(t, "alice", ev.User.LocalDisplayName)
				require.Equal(t, int64(2), ev.ContactID())
				require.Equal(t, "bob", ev.Contact.LocalDisplayName)
			}
		}
	}
	require.Equal(t, "outgoing call: ended (01:05)", smpcall.ItemText(true, smpcall.CIStatusEnded, 65))
}

func TestDecodeEventCallItemFixtures(t *testing.T) {
	user := compactJSON(t, apiFixture(t, "user.json"))
	callItem := compactJSON(t, apiFixture(t, "chat-item-snd-pending.json"))
	textItem := compactJSON(t, apiFixture(t, "chat-item-text.json"))

	// The notes' caller-side example, in a frame.
	_, resp := frameResp(t, []byte(`{"resp":{"type":"newChatItems","user":`+user+`,"chatItems":[`+callItem+`]}}`))
	ev := decodeOne(t, string(resp)).(*smpcall.CallItemEvent)
	require.Equal(t, smpcall.CallItem{ItemID: 17, Sent: true, Status: smpcall.CIStatusPending, Text: "outgoing call: calling..."}, ev.Item)
	require.True(t, ev.New)
	require.Equal(t, "alice", ev.User.LocalDisplayName)
	require.Equal(t, int64(2), ev.Contact.ContactID)

	// Non-call items are skipped, call items among them kept, in order.
	rcv := callItemJSON(false, smpcall.CIStatusMissed, 0, 19)
	evs, err := DecodeEvent(json.RawMessage(`{"type":"newChatItems","user":` + user + `,"chatItems":[` + textItem + `,` + callItem + `,` + textItem + `,` + rcv + `]}`))
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, int64(17), evs[0].(*smpcall.CallItemEvent).Item.ItemID)
	require.Equal(t, int64(19), evs[1].(*smpcall.CallItemEvent).Item.ItemID)

	for _, in := range []string{
		`{"type":"newChatItems","user":` + user + `,"chatItems":[` + textItem + `]}`,
		`{"type":"chatItemUpdated","user":` + user + `,"chatItem":` + textItem + `}`,
		`{"type":"newChatItems","user":` + user + `,"chatItems":[]}`,
		// A call content outside a direct chat is not a call item.
		`{"type":"newChatItems","user":` + user + `,"chatItems":[{"chatInfo":{"type":"group","groupInfo":{}},"chatItem":{"content":{"type":"sndCall","status":"pending","duration":0}}}]}`,
		// Without call items the user is not needed.
		`{"type":"newChatItems","chatItems":[` + textItem + `]}`,
	} {
		evs, err := DecodeEvent(json.RawMessage(in))
		require.NoError(t, err, in)
		require.Empty(t, evs, in)
	}

	// The protocol §8.2 example is abbreviated ("...") and lacks meta.itemId:
	// strict decoding names the first missing field.
	_, resp = frameResp(t, apiLines(t, "protocol-8.2-exchange.jsonl")[2])
	_, err = DecodeEvent(resp)
	require.EqualError(t, err, "smp: newChatItems: chatItems[0].chatItem.meta.itemId: required field missing")
}

func TestDecodeEventIgnoresOtherTypes(t *testing.T) {
	for _, in := range []string{
		`{"type":"contactConnected","user":{"userId":1},"contact":{"contactId":2}}`,
		`{"type":"chatItemsStatusesUpdated","user":{"userId":1},"chatItems":[]}`,
		`{"type":"cmdOk"}`,
		`{"type":"callInvitations","callInvitations":[]}`,
		`{"type":"futureEvent","x":[{},null,1]}`,
		`{"type":""}`,
	} {
		evs, err := DecodeEvent(json.RawMessage(in))
		require.NoError(t, err, in)
		require.Nil(t, evs, in)
	}
}

func TestDecodeEventErrorsNameTheField(t *testing.T) {
	uc := `"user":{"userId":1},"contact":{"contactId":2}`
	ct := `"callType":{"media":"video","capabilities":{"encryption":true}}`
	meta := `"meta":{"itemId":1,"itemText":"t"}`
	direct := `"chatInfo":{"type":"direct","contact":{"contactId":2}}`
	for in, want := range map[string]string{
		``:                       "smp: event: expected a JSON object, got nothing",
		`{"type":"callEnded"`:    "smp: event: invalid JSON: unexpected end of JSON input",
		`[{"type":"callEnded"}]`: "smp: event: expected a JSON object, got an array",
		`true`:                   "smp: event: expected a JSON object, got a boolean",
		`{"user":{"userId":1}}`:  "smp: event: type: required field missing",
		`{"type":null}`:          "smp: event: type: required field missing",
		`{"type":["callEnded"]}`: "smp: event: type: unexpected JSON array",
		`{"type":"callOffer",` + uc + `,` + ct + `,"offer":{"rtcIceCandidates":"c"},"askConfirmation":false}`:                                   "smp: callOffer: offer.rtcSession: required field missing",
		`{"type":"callOffer",` + uc + `,` + ct + `,"offer":{"rtcSession":"s","rtcIceCandidates":"c"}}`:                                          "smp: callOffer: askConfirmation: required field missing",
		`{"type":"callOffer",` + uc + `,` + ct + `,"offer":{"rtcSession":"s","rtcIceCandidates":"c"},"askConfirmation":"no"}`:                   "smp: callOffer: askConfirmation: unexpected JSON string",
		`{"type":"callOffer",` + uc + `,` + ct + `,"offer":{"rtcSession":"s","rtcIceCandidates":"c"},"sharedKey":"!!","askConfirmation":false}`: "smp: callOffer: sharedKey: not base64url",
		`{"type":"callOffer",` + uc + `,"callType":{"media":"hologram","capabilities":{"encryption":true}}}`:                                    `smp: callOffer: callType.media: unknown call media "hologram"`,
		`{"type":"callOffer","user":{"userId":1}}`:                                                                                                      "smp: callOffer: contact: required field missing",
		`{"type":"callOffer","contact":{"contactId":2}}`:                                                                                                "smp: callOffer: user: required field missing",
		`{"type":"callAnswer",` + uc + `}`:                                                                                                              "smp: callAnswer: answer: required field missing",
		`{"type":"callAnswer",` + uc + `,"answer":"sdp"}`:                                                                                               "smp: callAnswer: answer: expected a JSON object, got a string",
		`{"type":"callExtraInfo",` + uc + `,"extra":{"rtcIceCandidates":"c"}}`:                                                                          "smp: callExtraInfo: extraInfo: required field missing",
		`{"type":"callExtraInfo",` + uc + `,"extraInfo":{"rtcIceCandidates":5}}`:                                                                        "smp: callExtraInfo: extraInfo.rtcIceCandidates: unexpected JSON number",
		`{"type":"callEnded","user":{"userId":1},"contact":{"contactId":2.5}}`:                                                                          "smp: callEnded: contact.contactId: unexpected JSON number 2.5",
		`{"type":"callEnded","user":{"userId":1},"contact":[]}`:                                                                                         "smp: callEnded: contact: expected a JSON object, got an array",
		`{"type":"callInvitation"}`:                                                                                                                     "smp: callInvitation: callInvitation: required field missing",
		`{"type":"callInvitation","callInvitation":{` + uc + `,` + ct + `,"callTs":"yesterday"}}`:                                                       `smp: callInvitation: callInvitation.callTs: not an ISO 8601 time: "yesterday"`,
		`{"type":"messageError","user":{"userId":1},"severity":"error"}`:                                                                                "smp: messageError: errorMessage: required field missing",
		`{"type":"messageError","user":{"userId":1},"errorMessage":"e"}`:                                                                                "smp: messageError: severity: required field missing",
		`{"type":"chatError"}`:                                                                                                                          "smp: chatError: chatError: required field missing",
		`{"type":"chatError","chatError":{}}`:                                                                                                           "smp: chatError: chatError.type: required field missing",
		`{"type":"chatErrors","chatErrors":[null]}`:                                                                                                     "smp: chatErrors: chatErrors[0]: required field missing",
		`{"type":"chatErrors","chatErrors":{}}`:                                                                                                         "smp: chatErrors: chatErrors: unexpected JSON object",
		`{"type":"newChatItems","user":{"userId":1}}`:                                                                                                   "smp: newChatItems: chatItems: required field missing",
		`{"type":"newChatItems","chatItems":{}}`:                                                                                                        "smp: newChatItems: chatItems: unexpected JSON object",
		`{"type":"newChatItems","chatItems":[7]}`:                                                                                                       "smp: newChatItems: chatItems[0]: expected a JSON object, got a number",
		`{"type":"newChatItems","chatItems":[{}]}`:                                                                                                      "smp: newChatItems: chatItems[0].chatItem: required field missing",
		`{"type":"newChatItems","chatItems":[{"chatItem":{}}]}`:                                                                                         "smp: newChatItems: chatItems[0].chatItem.content: required field missing",
		`{"type":"newChatItems","chatItems":[{"chatItem":{"content":"call"}}]}`:                                                                         "smp: newChatItems: chatItems[0].chatItem.content: expected a JSON object, got a string",
		`{"type":"newChatItems","chatItems":[{"chatItem":{"content":{}}}]}`:                                                                             "smp: newChatItems: chatItems[0].chatItem.content.type: required field missing",
		`{"type":"newChatItems","chatItems":[{"chatItem":{"content":{"type":"sndCall"}}}]}`:                                                             "smp: newChatItems: chatItems[0].chatInfo: required field missing",
		`{"type":"newChatItems","chatItems":[{"chatInfo":{},"chatItem":{"content":{"type":"sndCall"}}}]}`:                                               "smp: newChatItems: chatItems[0].chatInfo.type: required field missing",
		`{"type":"newChatItems","chatItems":[{"chatInfo":{"type":"direct"},"chatItem":{"content":{"type":"sndCall"}}}]}`:                                "smp: newChatItems: chatItems[0].chatInfo.contact: required field missing",
		`{"type":"newChatItems","chatItems":[{` + direct + `,"chatItem":{"content":{"type":"sndCall"}}}]}`:                                              "smp: newChatItems: chatItems[0].chatItem.meta: required field missing",
		`{"type":"newChatItems","chatItems":[{` + direct + `,"chatItem":{"meta":{"itemId":"1"},"content":{"type":"sndCall"}}}]}`:                        "smp: newChatItems: chatItems[0].chatItem.meta.itemId: unexpected JSON string",
		`{"type":"newChatItems","chatItems":[{` + direct + `,"chatItem":{"meta":{"itemId":1},"content":{"type":"sndCall"}}}]}`:                          "smp: newChatItems: chatItems[0].chatItem.meta.itemText: required field missing",
		`{"type":"newChatItems","chatItems":[{` + direct + `,"chatItem":{` + meta + `,"content":{"type":"sndCall"}}}]}`:                                 "smp: newChatItems: chatItems[0].chatItem.content.status: required field missing",
		`{"type":"newChatItems","chatItems":[{` + direct + `,"chatItem":{` + meta + `,"content":{"type":"rcvCall","status":"ringing","duration":0}}}]}`: `smp: newChatItems: chatItems[0].chatItem.content.status: unknown call item status "ringing"`,
		`{"type":"newChatItems","chatItems":[{` + direct + `,"chatItem":{` + meta + `,"content":{"type":"rcvCall","status":"ended"}}}]}`:                "smp: newChatItems: chatItems[0].chatItem.content.duration: required field missing",
		`{"type":"newChatItems","chatItems":[{` + direct + `,"chatItem":{` + meta + `,"content":{"type":"rcvCall","status":"ended","duration":1.5}}}]}`: "smp: newChatItems: chatItems[0].chatItem.content.duration: unexpected JSON number 1.5",
		`{"type":"newChatItems","chatItems":[{` + direct + `,"chatItem":{` + meta + `,"content":{"type":"rcvCall","status":"ended","duration":1}}}]}`:   "smp: newChatItems: user: required field missing",
		`{"type":"chatItemUpdated","user":{"userId":1}}`:                                                                                                "smp: chatItemUpdated: chatItem: required field missing",
		`{"type":"chatItemUpdated","user":{"userId":1},"chatItem":[]}`:                                                                                  "smp: chatItemUpdated: chatItem: expected a JSON object, got an array",
		`{"type":"newChatItem","user":{"userId":1},"chatItem":{"chatItem":{"content":{"type":5}}}}`:                                                     "smp: newChatItem: chatItem.chatItem.content.type: unexpected JSON number",
	} {
		evs, err := DecodeEvent(json.RawMessage(in))
		require.EqualError(t, err, want, in)
		require.Nil(t, evs, in)
	}
	_, err := DecodeEvent(json.RawMessage(`{"type":"callOffer","user":{"userId":1},"contact":{"contactId":2},"callType":{"media":"video","capabilities":{"encryption":true}},"offer":{}}`))
	var fe *smpcall.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "offer.rtcSession", fe.Path)
	require.ErrorIs(t, err, smpcall.ErrMissingField)
}

func TestEncodeEventExactShapes(t *testing.T) {
	user := smpcall.User{UserID: 1, LocalDisplayName: "alice"}
	contact := smpcall.Contact{ContactID: 2, LocalDisplayName: "bob", Profile: smpcall.Profile{DisplayName: "bob"}}
	at := time.Date(2025, 1, 31, 12, 0, 0, 123456789, time.UTC)
	const u = `{"userId":1,"localDisplayName":"alice"}`
	const c = `{"contactId":2,"localDisplayName":"bob","profile":{"displayName":"bob","fullName":""}}`
	sess := smpcall.WebRTCSession{RTCSession: "s", RTCIceCandidates: "c"}
	cases := []struct {
		ev   smpcall.Event
		want string
	}{
		{&smpcall.CallOfferEvent{User: user, Contact: contact, CallType: audioRaw, Offer: sess},
			`{"type":"callOffer","user":` + u + `,"contact":` + c + `,"callType":{"media":"audio","capabilities":{"encryption":false}},"offer":{"rtcSession":"s","rtcIceCandidates":"c"},"askConfirmation":false}`},
		{&smpcall.CallAnswerEvent{User: user, Contact: contact, Answer: sess},
			`{"type":"callAnswer","user":` + u + `,"contact":` + c + `,"answer":{"rtcSession":"s","rtcIceCandidates":"c"}}`},
		{&smpcall.CallExtraInfoEvent{User: user, Contact: contact, ExtraInfo: smpcall.WebRTCExtraInfo{RTCIceCandidates: "c"}},
			`{"type":"callExtraInfo","user":` + u + `,"contact":` + c + `,"extraInfo":{"rtcIceCandidates":"c"}}`},
		{&smpcall.CallEndedEvent{User: user, Contact: contact}, `{"type":"callEnded","user":` + u + `,"contact":` + c + `}`},
		{&smpcall.MessageErrorEvent{User: user, Contact: &contact, Severity: "error", ErrorMessage: "x.call.end: no current call"},
			`{"type":"messageError","user":` + u + `,"severity":"error","errorMessage":"x.call.end: no current call"}`},
		{&smpcall.CallItemEvent{User: user, Contact: contact, New: true, Item: smpcall.CallItem{ItemID: 17, Sent: true, Status: smpcall.CIStatusPending, Text: "outgoing call: calling..."}},
			`{"type":"newChatItems","user":` + u + `,"chatItems":[{"chatInfo":{"type":"direct","contact":` + c + `},"chatItem":{"chatDir":{"type":"directSnd"},` +
				`"meta":{"itemId":17,"itemTs":"2025-01-31T12:00:00.123456789Z","itemText":"outgoing call: calling...","itemStatus":{"type":"sndNew"},` +
				`"itemEdited":false,"userMention":false,"deletable":false,"editable":false,"showGroupAsSender":false,` +
				`"createdAt":"2025-01-31T12:00:00.123456789Z","updatedAt":"2025-01-31T12:00:00.123456789Z"},` +
				`"content":{"type":"sndCall","status":"pending","duration":0},"mentions":{},"reactions":[]}}]}`},
		{&smpcall.CallItemEvent{User: user, Contact: contact, Item: smpcall.CallItem{ItemID: 18, Status: smpcall.CIStatusEnded, Duration: 5, Text: "incoming call: ended (00:05)"}},
			`{"type":"chatItemUpdated","user":` + u + `,"chatItem":{"chatInfo":{"type":"direct","contact":` + c + `},"chatItem":{"chatDir":{"type":"directRcv"},` +
				`"meta":{"itemId":18,"itemTs":"2025-01-31T12:00:00.123456789Z","itemText":"incoming call: ended (00:05)","itemStatus":{"type":"rcvRead"},` +
				`"itemEdited":false,"userMention":false,"deletable":false,"editable":false,"showGroupAsSender":false,` +
				`"createdAt":"2025-01-31T12:00:00.123456789Z","updatedAt":"2025-01-31T12:00:00.123456789Z"},` +
				`"content":{"type":"rcvCall","status":"ended","duration":5},"mentions":{},"reactions":[]}}}`},
	}
	for _, tc := range cases {
		b, err := EncodeEvent(tc.ev, at.In(time.FixedZone("X", 3600)))
		require.NoError(t, err)
		require.Equal(t, tc.want, string(b))
	}
	// The notes' realistic item and the encoder's agree on every key.
	var gotItem, noteItem map[string]any
	b, err := EncodeEvent(cases[5].ev, at)
	require.NoError(t, err)
	var wrapper struct{ ChatItems []json.RawMessage }
	require.NoError(t, json.Unmarshal(b, &wrapper))
	require.NoError(t, json.Unmarshal(wrapper.ChatItems[0], &gotItem))
	require.NoError(t, json.Unmarshal(apiFixture(t, "chat-item-snd-pending.json"), &noteItem))
	gm := gotItem["chatItem"].(map[string]any)["meta"].(map[string]any)
	nm := noteItem["chatItem"].(map[string]any)["meta"].(map[string]any)
	delete(nm, "itemSharedMsgId") // optional; the encoder has no message id
	require.Equal(t, nm, gm)
	require.Equal(t, noteItem["chatItem"].(map[string]any)["content"], gotItem["chatItem"].(map[string]any)["content"])
}

func TestEncodeEventRoundTrip(t *testing.T) {
	// Compacted, as the encoder compacts the raw objects it re-sends.
	var user smpcall.User
	require.NoError(t, json.Unmarshal([]byte(compactJSON(t, apiFixture(t, "user.json"))), &user))
	var contact smpcall.Contact
	require.NoError(t, json.Unmarshal([]byte(compactJSON(t, apiFixture(t, "contact.json"))), &contact))
	plainUser := smpcall.User{UserID: 3, LocalDisplayName: "carol"}
	plainContact := smpcall.Contact{ContactID: 9, Profile: smpcall.Profile{DisplayName: "dave", FullName: "Dave D"}}
	key := mustKey(t, "Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I=")
	sess := smpcall.WebRTCSession{RTCSession: "N4IgLgng…", RTCIceCandidates: "NoXSA==="}
	ts := smpcall.CoreTime{Time: time.Date(2025, 1, 31, 12, 0, 0, 123456000, time.UTC)}
	evs := []smpcall.Event{
		&smpcall.CallInvitationEvent{Invitation: smpcall.RcvCallInvitation{User: user, Contact: contact, CallType: videoEnc, SharedKey: key, CallUUID: "u", CallTs: ts}},
		&smpcall.CallInvitationEvent{Invitation: smpcall.RcvCallInvitation{User: plainUser, Contact: plainContact, CallType: audioRaw, CallTs: ts}},
		&smpcall.CallOfferEvent{User: user, Contact: contact, CallType: videoEnc, Offer: sess, SharedKey: key},
		&smpcall.CallOfferEvent{User: plainUser, Contact: plainContact, CallType: audioRaw, Offer: sess, AskConfirmation: true},
		&smpcall.CallAnswerEvent{User: user, Contact: contact, Answer: sess},
		&smpcall.CallExtraInfoEvent{User: plainUser, Contact: contact, ExtraInfo: smpcall.WebRTCExtraInfo{RTCIceCandidates: "c"}},
		&smpcall.CallEndedEvent{User: user, Contact: plainContact},
		&smpcall.MessageErrorEvent{User: user, Severity: "error", ErrorMessage: "x.call.answer: wrong call state CSTCallNegotiated"},
	}
	for _, sent := range []bool{true, false} {
		for _, st := range allCIStatuses {
			for _, isNew := range []bool{true, false} {
				evs = append(evs, &smpcall.CallItemEvent{User: user, Contact: contact, New: isNew,
					Item: smpcall.CallItem{ItemID: 42, Sent: sent, Status: st, Duration: 61, Text: smpcall.ItemText(sent, st, 61)}})
			}
		}
	}
	at := time.Date(2025, 1, 31, 12, 0, 0, 0, time.UTC)
	for _, ev := range evs {
		b, err := EncodeEvent(ev, at)
		require.NoError(t, err, "%T", ev)
		got := decodeOne(t, string(b))
		// Values built in Go come back with their encoded object kept as raw;
		// apart from that they are the same event.
		require.Equal(t, normalizeEvent(ev), normalizeEvent(got), "%T %s", ev, b)
		again, err := EncodeEvent(got, at)
		require.NoError(t, err)
		require.Equal(t, string(b), string(again), "stable encoding")
		// In a frame, as the simulated core sends it.
		frame, err := EncodeFrame(nil, b)
		require.NoError(t, err)
		f, err := DecodeFrame(frame)
		require.NoError(t, err)
		require.False(t, f.HasCorrID)
		require.Equal(t, string(b), string(f.Resp))
	}
	// Raw-carrying values come back identical, raw included.
	for _, ev := range evs[:1] {
		b, err := EncodeEvent(ev, at)
		require.NoError(t, err)
		require.Equal(t, ev, decodeOne(t, string(b)))
	}
}

// normalizeEvent drops the raw JSON kept in User and Contact values.
func normalizeEvent(ev smpcall.Event) smpcall.Event {
	u := func(x smpcall.User) smpcall.User { return x.WithRaw(nil) }
	c := func(x smpcall.Contact) smpcall.Contact { return x.WithRaw(nil) }
	switch e := ev.(type) {
	case *smpcall.CallInvitationEvent:
		v := *e
		v.Invitation.User, v.Invitation.Contact = u(v.Invitation.User), c(v.Invitation.Contact)
		return &v
	case *smpcall.CallOfferEvent:
		v := *e
		v.User, v.Contact = u(v.User), c(v.Contact)
		return &v
	case *smpcall.CallAnswerEvent:
		v := *e
		v.User, v.Contact = u(v.User), c(v.Contact)
		return &v
	case *smpcall.CallExtraInfoEvent:
		v := *e
		v.User, v.Contact = u(v.User), c(v.Contact)
		return &v
	case *smpcall.CallEndedEvent:
		v := *e
		v.User, v.Contact = u(v.User), c(v.Contact)
		return &v
	case *smpcall.MessageErrorEvent:
		v := *e
		v.User = u(v.User)
		return &v
	case *smpcall.CallItemEvent:
		v := *e
		v.User, v.Contact = u(v.User), c(v.Contact)
		return &v
	}
	return ev
}

func TestEncodeEventRefusesNonCoreEvents(t *testing.T) {
	_, err := EncodeEvent(&smpcall.TransportErrorEvent{Err: errors.New("gone")}, time.Time{})
	require.ErrorContains(t, err, "not a chat core event")
	_, err = EncodeEvent(nil, time.Time{})
	require.Error(t, err)
	_, err = EncodeEvent((*smpcall.CallOfferEvent)(nil), time.Time{})
	require.Error(t, err)
	_, err = EncodeEvent(&smpcall.CallOfferEvent{CallType: smpcall.CallType{Media: "hologram"}}, time.Time{})
	require.ErrorContains(t, err, "hologram")
}

// A full client/server exchange over the codec: the server parses the
// request, answers with a frame, the client decodes it.
func TestServerClientExchange(t *testing.T) {
	lines := apiLines(t, "protocol-8.2-exchange.jsonl")
	req, err := DecodeRequest(lines[0])
	require.NoError(t, err)
	cmd, err := ParseCommand(req.Cmd)
	require.NoError(t, err)
	require.Equal(t, Command{Kind: CommandInvite, ContactID: 2, CallType: videoEnc}, cmd)

	user := smpcall.User{UserID: 1, LocalDisplayName: "alice"}
	body, err := EncodeResponse(Response{Type: RespCmdOk, User: &user})
	require.NoError(t, err)
	frame, err := EncodeFrame(&req.CorrID, body)
	require.NoError(t, err)
	require.Equal(t, `{"corrId":"7","resp":{"type":"cmdOk","user_":{"userId":1,"localDisplayName":"alice"}}}`, string(frame))
	f, err := DecodeFrame(frame)
	require.NoError(t, err)
	r, err := DecodeResponse(f.Resp)
	require.NoError(t, err)
	require.Equal(t, "alice", r.User.LocalDisplayName)

	// Unparseable command → chatCmdError with the request's corrId.
	_, err = ParseCommand("/_call status @2 checking")
	var ce *smpcall.ChatError
	require.ErrorAs(t, err, &ce)
	body, err = EncodeResponse(Response{Type: RespChatCmdError, Err: ce})
	require.NoError(t, err)
	frame, err = EncodeFrame(&req.CorrID, body)
	require.NoError(t, err)
	require.Equal(t, `{"corrId":"7","resp":{"type":"chatCmdError","chatError":{"type":"error","errorType":{"type":"commandError","message":"Failed reading: empty"}}}}`, string(frame))
	require.True(t, strings.Contains(string(frame), CommandParseError))
}
