package smpcall

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCallTypeJSON(t *testing.T) {
	b, err := json.Marshal(DefaultCallType)
	require.NoError(t, err)
	require.Equal(t, `{"media":"video","capabilities":{"encryption":true}}`, string(b))

	var ct CallType
	require.NoError(t, json.Unmarshal([]byte(`{"capabilities":{"encryption":false,"future":1},"media":"audio","x":null}`), &ct))
	require.Equal(t, CallType{Media: MediaAudio}, ct)

	for js, want := range map[string]string{
		`{"media":"vid","capabilities":{"encryption":true}}`: `media: unknown call media "vid"`,
		`{"media":"audio"}`: "capabilities: required field missing",
		`{"media":null,"capabilities":{"encryption":true}}`: "media: required field missing",
		`{"media":"audio","capabilities":{}}`:               "capabilities.encryption: required field missing",
		`{"media":"audio","capabilities":{"encryption":1}}`: "capabilities.encryption: unexpected JSON number",
		`{"media":"audio","capabilities":"yes"}`:            "capabilities: expected a JSON object, got a string",
		`null`:                                              "expected a JSON object, got null",
		`[]`:                                                "expected a JSON object, got an array",
	} {
		err := json.Unmarshal([]byte(js), &ct)
		require.ErrorContains(t, err, want, js)
		var fe *FieldError
		if strings.Contains(want, ":") && !strings.HasPrefix(want, "expected") {
			require.True(t, errors.As(err, &fe), js)
		}
	}
	_, err = json.Marshal(CallType{Media: "hologram"})
	require.ErrorContains(t, err, `unknown call media "hologram"`)
}

func TestWebRTCTypesJSON(t *testing.T) {
	offer := WebRTCCallOffer{CallType: DefaultCallType, RTCSession: WebRTCSession{RTCSession: "s", RTCIceCandidates: "c"}}
	b, err := json.Marshal(offer)
	require.NoError(t, err)
	require.Equal(t, `{"callType":{"media":"video","capabilities":{"encryption":true}},"rtcSession":{"rtcSession":"s","rtcIceCandidates":"c"}}`, string(b))
	var back WebRTCCallOffer
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, offer, back)
	require.ErrorContains(t, json.Unmarshal([]byte(`{"callType":{"media":"video","capabilities":{"encryption":true}},"rtcSession":{"rtcSession":"s"}}`), &back),
		"rtcSession.rtcIceCandidates: required field missing")

	b, err = json.Marshal(WebRTCExtraInfo{RTCIceCandidates: "x"})
	require.NoError(t, err)
	require.Equal(t, `{"rtcIceCandidates":"x"}`, string(b))
	var ex WebRTCExtraInfo
	require.ErrorContains(t, json.Unmarshal([]byte(`{}`), &ex), "rtcIceCandidates: required field missing")
}

func TestEnums(t *testing.T) {
	for _, s := range []WebRTCCallStatus{StatusConnecting, StatusConnected, StatusDisconnected, StatusFailed} {
		var v WebRTCCallStatus
		require.NoError(t, v.UnmarshalText([]byte(s)))
		require.Equal(t, s, v)
	}
	for _, bad := range []string{"new", "checking", "closed", "Connected", ""} {
		var v WebRTCCallStatus
		require.Error(t, v.UnmarshalText([]byte(bad)), bad)
		_, err := WebRTCCallStatus(bad).MarshalText()
		require.Error(t, err)
	}
	for i, s := range MediaSources {
		require.Equal(t, string(rune('0'+i)), s.Mid())
		var v CallMediaSource
		require.NoError(t, json.Unmarshal([]byte(`"`+string(s)+`"`), &v))
	}
	require.Equal(t, []string{"mic", "camera", "screenAudio", "screenVideo"},
		[]string{string(MediaSources[0]), string(MediaSources[1]), string(MediaSources[2]), string(MediaSources[3])})
	var src CallMediaSource
	require.ErrorContains(t, json.Unmarshal([]byte(`"speaker"`), &src), `unknown media source "speaker"`)
	require.Equal(t, "", CallMediaSource("speaker").Mid())
	var cam VideoCamera
	require.NoError(t, json.Unmarshal([]byte(`"environment"`), &cam))
	require.Equal(t, CameraEnvironment, cam)
	require.Error(t, json.Unmarshal([]byte(`"back"`), &cam))
	var st CICallStatus
	require.NoError(t, json.Unmarshal([]byte(`"progress"`), &st))
	require.Error(t, json.Unmarshal([]byte(`"ringing"`), &st))
}

func TestCallID(t *testing.T) {
	id, err := ParseCallID("AAECAwQFBgcICQoLDA0ODw==")
	require.NoError(t, err)
	require.Len(t, []byte(id), 16)
	require.Equal(t, "AAECAwQFBgcICQoLDA0ODw==", id.String())
	unpadded, err := ParseCallID("AAECAwQFBgcICQoLDA0ODw")
	require.NoError(t, err)
	require.Equal(t, id, unpadded)
	b, err := json.Marshal(id)
	require.NoError(t, err)
	require.Equal(t, `"AAECAwQFBgcICQoLDA0ODw=="`, string(b))
	for _, bad := range []string{"", "====", "AAECAwQFBgcICQoLDA0ODw=", "AAEC+/", "AA=A", "AAECAwQFBgcICQoLDA0ODw==="} {
		_, err := ParseCallID(bad)
		require.Error(t, err, bad)
	}
	_, err = json.Marshal(CallID(""))
	require.Error(t, err)
}

func TestSharedKey(t *testing.T) {
	const s = "Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I="
	k, err := ParseSharedKey(s)
	require.NoError(t, err)
	require.Equal(t, s, k.Encode())
	k2, err := ParseSharedKey(strings.TrimRight(s, "="))
	require.NoError(t, err)
	require.Equal(t, k, k2)
	b, err := json.Marshal(&k)
	require.NoError(t, err)
	require.Equal(t, `"`+s+`"`, string(b))
	// Never printed.
	require.NotContains(t, k.String(), "Sl2d")
	require.NotContains(t, strings.Join([]string{fmtV(k), fmtV(&k)}, " "), "Sl2d")
	for bad, want := range map[string]string{
		"": "empty",
		"Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0":       "31 bytes",
		"Sl2dW6TOLeFyjjv0gDUPJeB+IclH0Z4zdvCbPB4WF0I=":     "not base64url",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ==": "34 bytes",
	} {
		_, err := ParseSharedKey(bad)
		require.ErrorContains(t, err, want, bad)
		if bad != "" {
			require.NotContains(t, err.Error(), bad)
		}
	}
	var kk SharedKey
	require.ErrorContains(t, json.Unmarshal([]byte(`"AAAA"`), &kk), "3 bytes")
}

func fmtV(v any) string { return strings.TrimSpace(strings.ReplaceAll(sprint(v), "\n", " ")) }

func TestRcvCallInvitationJSON(t *testing.T) {
	js := `{"user":{"userId":1,"agentUserId":"1","localDisplayName":"alice","activeUser":true},"contact":{"contactId":2,"localDisplayName":"bob","profile":{"profileId":3,"displayName":"bob","fullName":"Bob B"},"activeConn":null},"callType":{"media":"video","capabilities":{"encryption":true}},"sharedKey":"Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I=","callUUID":"6d1f2a0c-6f8e-4c6b-9d0e-2f1b3c4d5e6f","callTs":"2025-01-31T12:00:00.123456Z"}`
	var inv RcvCallInvitation
	require.NoError(t, json.Unmarshal([]byte(js), &inv))
	require.Equal(t, int64(1), inv.User.UserID)
	require.Equal(t, "alice", inv.User.LocalDisplayName)
	require.Equal(t, int64(2), inv.Contact.ContactID)
	require.Equal(t, "bob", inv.Contact.Name())
	require.Equal(t, "Bob B", inv.Contact.Profile.FullName)
	require.NotNil(t, inv.SharedKey)
	require.Equal(t, time.Date(2025, 1, 31, 12, 0, 0, 123456000, time.UTC), inv.CallTs.Time)
	// Re-encoding keeps every field the core sent.
	b, err := json.Marshal(inv)
	require.NoError(t, err)
	require.JSONEq(t, js, string(b))

	// sharedKey absent or null; callUUID absent (older cores).
	noKey := `{"user":{"userId":1},"contact":{"contactId":2},"callType":{"media":"audio","capabilities":{"encryption":false}},"sharedKey":null,"callTs":"2025-01-31T12:00:00Z"}`
	require.NoError(t, json.Unmarshal([]byte(noKey), &inv))
	require.Nil(t, inv.SharedKey)
	require.Empty(t, inv.CallUUID)

	for js, want := range map[string]string{
		`{"contact":{"contactId":2},"callType":{"media":"audio","capabilities":{"encryption":false}},"callTs":"2025-01-31T12:00:00Z"}`:                                        "user: required field missing",
		`{"user":{"userId":1},"contact":{},"callType":{"media":"audio","capabilities":{"encryption":false}},"callTs":"2025-01-31T12:00:00Z"}`:                                 "contact.contactId: required field missing",
		`{"user":{"userId":1},"contact":{"contactId":2},"callType":{"media":"audio","capabilities":{"encryption":false}},"callTs":"yesterday"}`:                               "callTs: not an ISO 8601 time",
		`{"user":{"userId":1},"contact":{"contactId":2},"callType":{"media":"audio","capabilities":{"encryption":false}},"sharedKey":"AAAA","callTs":"2025-01-31T12:00:00Z"}`: "sharedKey: 3 bytes, want 32",
	} {
		require.ErrorContains(t, json.Unmarshal([]byte(js), &inv), want)
	}
}

func TestBuiltObjectsEncode(t *testing.T) {
	inv := RcvCallInvitation{
		User:     User{UserID: 1, LocalDisplayName: "alice"},
		Contact:  Contact{ContactID: 2, LocalDisplayName: "bob", Profile: Profile{DisplayName: "bob"}},
		CallType: CallType{Media: MediaAudio},
		CallUUID: "u",
		CallTs:   CoreTime{time.Date(2025, 1, 31, 12, 0, 0, 0, time.UTC)},
	}
	b, err := json.Marshal(inv)
	require.NoError(t, err)
	require.Equal(t, `{"user":{"userId":1,"localDisplayName":"alice"},"contact":{"contactId":2,"localDisplayName":"bob","profile":{"displayName":"bob","fullName":""}},"callType":{"media":"audio","capabilities":{"encryption":false}},"callUUID":"u","callTs":"2025-01-31T12:00:00Z"}`, string(b))
}

func TestCoreTime(t *testing.T) {
	for in, out := range map[string]string{
		"2025-01-31T12:00:00Z":           "2025-01-31T12:00:00Z",
		"2025-01-31T12:00:00.5Z":         "2025-01-31T12:00:00.5Z",
		"2025-01-31T12:00:00.123456Z":    "2025-01-31T12:00:00.123456Z",
		"2025-01-31T12:00:00.123456789Z": "2025-01-31T12:00:00.123456789Z",
		"2025-01-31T14:00:00.100+02:00":  "2025-01-31T12:00:00.1Z",
	} {
		var ct CoreTime
		require.NoError(t, ct.UnmarshalText([]byte(in)))
		b, err := ct.MarshalText()
		require.NoError(t, err)
		require.Equal(t, out, string(b))
	}
}

func TestChatErrorJSON(t *testing.T) {
	cases := []struct {
		js   string
		is   error
		kind ChatErrorKind
	}{
		{`{"type":"error","errorType":{"type":"noCurrentCall"}}`, ErrNoCurrentCall, KindNoCurrentCall},
		{`{"type":"error","errorType":{"type":"callContact","contactId":5}}`, ErrCallContact, KindCallContact},
		{`{"type":"error","errorType":{"type":"callState","currentCallState":"invitationSent"}}`, ErrCallState, KindCallState},
		{`{"type":"error","errorType":{"type":"commandError","message":"feature not allowed Audio/video calls"}}`, ErrCommand, KindCommandError},
		{`{"type":"errorStore","storeError":{"type":"contactNotFound","contactId":9}}`, nil, KindStore},
		{`{"type":"error","errorType":{"type":"directMessagesProhibited","direction":"snd","contact":{"contactId":1}}}`, nil, KindDirectMessagesProhibited},
		{`{"type":"errorAgent","agentError":{"type":"CMD"}}`, nil, "errorAgent"},
	}
	for _, tc := range cases {
		var ce ChatError
		require.NoError(t, json.Unmarshal([]byte(tc.js), &ce), tc.js)
		require.Equal(t, tc.kind, ce.Kind)
		if tc.is != nil {
			require.ErrorIs(t, &ce, tc.is)
		}
		require.NotEmpty(t, ce.Error())
		b, err := json.Marshal(&ce)
		require.NoError(t, err)
		require.JSONEq(t, tc.js, string(b))
	}
	var ce ChatError
	require.NoError(t, json.Unmarshal([]byte(cases[1].js), &ce))
	require.Equal(t, int64(5), ce.ContactID)
	require.NoError(t, json.Unmarshal([]byte(cases[2].js), &ce))
	require.Equal(t, TagInvitationSent, ce.CurrentCallState)
	require.NoError(t, json.Unmarshal([]byte(cases[4].js), &ce))
	require.Equal(t, "contactNotFound", ce.Message)
	require.Error(t, json.Unmarshal([]byte(`{"errorType":{}}`), &ce))
	require.Error(t, json.Unmarshal([]byte(`{"type":"error","errorType":5}`), &ce))

	// Built errors encode like the core's.
	b, err := json.Marshal(&ChatError{Kind: KindCallState, CurrentCallState: TagOfferSent})
	require.NoError(t, err)
	require.Equal(t, `{"errorType":{"currentCallState":"offerSent","type":"callState"},"type":"error"}`, string(b))
	require.False(t, errors.Is(&ChatError{Kind: KindCallState}, ErrNoCurrentCall))
}
