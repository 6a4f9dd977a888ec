package smpcall_test

// Fuzz targets for the decoders that had none (RELIABILITY.md, "Fuzzing"):
// the text forms of the root package's values, its JSON objects, the
// ICE-restart message (internal/rtcpayload) and callDhPubKey (smp). None
// may panic; whatever decodes must encode back to what decodes the same.
// Seeds: testdata/fuzz/<target>; scripts/fuzz.sh runs them all.

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/rtcpayload"
	"github.com/smpcall/smpcall/smp"
)

// textValue is a value with a text form that round-trips.
type textValue interface {
	UnmarshalText([]byte) error
	MarshalText() ([]byte, error)
}

// FuzzParseText: SharedKey, CallID, ICE server strings and the enums'
// text forms. A key or call id that parses prints back to a string that
// parses to the same value; an ICE server string's error never holds its
// password.
func FuzzParseText(f *testing.F) {
	for _, s := range []string{
		"Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I=", "Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I",
		"AAECAwQFBgcICQoLDA0ODw==", "turn:user:pass@turn.example.com:3478?transport=udp", "stuns:stun.simplex.im:443",
		"TURN:user:secret@host", "remote_hangup", "video", "connected", "progress", "screenVideo", "environment", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if k, err := smpcall.ParseSharedKey(s); err == nil {
			back, err := smpcall.ParseSharedKey(k.Encode())
			require.NoError(t, err)
			require.True(t, k == back)
		}
		if id, err := smpcall.ParseCallID(s); err == nil {
			back, err := smpcall.ParseCallID(id.String())
			require.NoError(t, err)
			require.Equal(t, id, back)
		}
		if srv, err := smpcall.ParseICEServer(s); err != nil {
			// (Unless the password also appears in what may be shown.)
			if pass := icePassword(s); len(pass) >= 4 && !strings.Contains(strings.Replace(s, ":"+pass+"@", "@", 1), pass) &&
				!strings.Contains("smpcall: ICE server : unknown scheme credentials must be user:password bad host unsupported query TURN needs user:password@ no scheme", pass) {
				require.NotContains(t, err.Error(), pass, "the error quotes the password")
			}
		} else {
			require.Len(t, srv.URLs, 1)
		}
		for _, v := range []textValue{new(smpcall.EndReason), new(smpcall.CallMediaType), new(smpcall.WebRTCCallStatus)} {
			if v.UnmarshalText([]byte(s)) != nil {
				continue
			}
			b, err := v.MarshalText()
			require.NoError(t, err)
			require.Equal(t, s, string(b), "%T", v)
		}
		var st smpcall.CICallStatus
		if st.UnmarshalText([]byte(s)) == nil {
			require.True(t, st.Valid())
			require.Equal(t, s, string(st))
		}
		var src smpcall.CallMediaSource
		if src.UnmarshalText([]byte(s)) == nil {
			require.True(t, src.Valid())
			require.Equal(t, s, string(src))
		}
		var cam smpcall.VideoCamera
		if cam.UnmarshalText([]byte(s)) == nil {
			require.True(t, cam.Valid())
			require.Equal(t, s, string(cam))
		}
	})
}

// icePassword is what ParseICEServer would take as the password of s.
func icePassword(s string) string {
	at := strings.LastIndex(s, "@")
	if at < 0 {
		return ""
	}
	_, rest, ok := strings.Cut(s[:at], ":")
	if !ok {
		return ""
	}
	_, pass, _ := strings.Cut(strings.TrimPrefix(rest, "//"), ":")
	return pass
}

// FuzzUnmarshalCallObjects: the chat core's JSON objects of a call decode
// or fail cleanly; what decodes encodes to JSON that decodes the same.
func FuzzUnmarshalCallObjects(f *testing.F) {
	for _, s := range []string{
		`{"callType":{"media":"video","capabilities":{"encryption":true}},"rtcSession":{"rtcSession":"a","rtcIceCandidates":"b"}}`,
		`{"media":"audio","capabilities":{"encryption":false}}`,
		`{"rtcSession":"x","rtcIceCandidates":"y"}`, `{"rtcIceCandidates":"y"}`,
		`{"userId":1,"agentUserId":"1","localDisplayName":"alice","profile":{"displayName":"alice","fullName":""},"activeUser":true}`,
		`{"contactId":2,"localDisplayName":"bob","profile":{"displayName":"bob"}}`,
		`"2025-01-31T12:00:00.123456Z"`, `null`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(v, back any) {
			if json.Unmarshal(data, v) != nil {
				return
			}
			b, err := json.Marshal(v)
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(b, back), "%s", b)
			b2, err := json.Marshal(back)
			require.NoError(t, err)
			require.JSONEq(t, string(b), string(b2))
		}
		check(new(smpcall.WebRTCCallOffer), new(smpcall.WebRTCCallOffer))
		check(new(smpcall.CallType), new(smpcall.CallType))
		check(new(smpcall.WebRTCSession), new(smpcall.WebRTCSession))
		check(new(smpcall.WebRTCExtraInfo), new(smpcall.WebRTCExtraInfo))
		check(new(smpcall.User), new(smpcall.User))
		check(new(smpcall.Contact), new(smpcall.Contact))
		check(new(smpcall.CoreTime), new(smpcall.CoreTime))
	})
}

// FuzzDecodeRestart: the ICE-restart message of x.call.extra (protocol
// §6.8), which a peer controls.
func FuzzDecodeRestart(f *testing.F) {
	for _, r := range []rtcpayload.Restart{
		{T: rtcpayload.RestartOffer, Gen: 1, SDP: "v=0\r\n", Candidates: []rtcpayload.Candidate{{Candidate: "candidate:1 1 udp 1 10.0.0.1 9 typ host"}}},
		{T: rtcpayload.RestartAnswer, Gen: 2, SDP: "v=0\r\n"},
		{T: rtcpayload.RestartCands, Gen: 3},
	} {
		s, err := rtcpayload.EncodeRestart(r)
		require.NoError(f, err)
		f.Add(s)
	}
	f.Add("NoXSA===")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := rtcpayload.DecodeRestart(s)
		if err != nil {
			return
		}
		enc, err := rtcpayload.EncodeRestart(r)
		require.NoError(t, err)
		back, err := rtcpayload.DecodeRestart(enc)
		require.NoError(t, err)
		require.Equal(t, r.T, back.T)
		require.Equal(t, r.Gen, back.Gen)
		require.Equal(t, r.SDP, back.SDP)
		require.Len(t, back.Candidates, len(r.Candidates))
	})
}

// FuzzParseDHPublicKey: callDhPubKey (protocol §5.2), which a peer
// controls; it parses only as the exact X.509 form and prints back to it.
func FuzzParseDHPublicKey(f *testing.F) {
	f.Add("MCowBQYDK2VuAyEAhSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo=")
	f.Add("MCowBQYDK2VuAyEAhSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo")
	f.Add("MCowBQYDK2VuAyEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := smp.ParseDHPublicKey(s)
		if err != nil {
			return
		}
		back, err := smp.ParseDHPublicKey(k.String())
		require.NoError(t, err)
		require.Equal(t, k, back)
		require.Len(t, k.String(), 60)
	})
}
