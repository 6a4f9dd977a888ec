package smp

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
)

func readJSON(t testing.TB, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", name))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, v))
}

type dhParty struct {
	PrivateKeyRawHex string `json:"privateKeyRawHex"`
	PublicKeyRawHex  string `json:"publicKeyRawHex"`
	SpkiHex          string `json:"publicKeySpkiDerHex"`
	CallDhPubKey     string `json:"callDhPubKey"`
}

type dhCase struct {
	Title  string  `json:"title"`
	Caller dhParty `json:"caller"`
	Callee dhParty `json:"callee"`
	DHHex  string  `json:"dhSecretHex"`
	V1     struct {
		SharedKeyHex string `json:"sharedKeyHex"`
		SharedKey    string `json:"sharedKey"`
	} `json:"callVersion1"`
	V2 struct {
		CallIDHex    string `json:"callIdHex"`
		CallID       string `json:"callId"`
		SharedKeyHex string `json:"sharedKeyHex"`
		SharedKey    string `json:"sharedKey"`
	} `json:"callVersion2Unconfirmed"`
}

// dhCases reads smp/testdata/dh-vectors.json, a copy of the repository's
// testdata/dh-vectors.json (vectors from the protocol research: Node's
// x25519 and hkdfSync).
func dhCases(t testing.TB) []dhCase {
	var f struct {
		Cases []dhCase `json:"cases"`
	}
	data, err := os.ReadFile(filepath.Join("testdata", "dh-vectors.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &f))
	require.NotEmpty(t, f.Cases)
	return f.Cases
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

func TestDHVectors(t *testing.T) {
	for _, tc := range dhCases(t) {
		t.Run(tc.Title, func(t *testing.T) {
			caller, err := keyPairFromPrivate(unhex(t, tc.Caller.PrivateKeyRawHex))
			require.NoError(t, err)
			callee, err := keyPairFromPrivate(unhex(t, tc.Callee.PrivateKeyRawHex))
			require.NoError(t, err)

			// Public keys: raw bytes and the exact callDhPubKey text.
			require.Equal(t, tc.Caller.PublicKeyRawHex, hex.EncodeToString(caller.pub[:]))
			require.Equal(t, tc.Callee.PublicKeyRawHex, hex.EncodeToString(callee.pub[:]))
			require.Equal(t, tc.Caller.CallDhPubKey, caller.pub.String())
			require.Equal(t, tc.Callee.CallDhPubKey, callee.pub.String())
			require.Len(t, caller.pub.String(), 60)
			require.True(t, strings.HasPrefix(caller.pub.String(), "MCowBQYDK2VuAyEA"))

			// Parsing the text gives the key back; padded and unpadded.
			for _, s := range []string{tc.Callee.CallDhPubKey, strings.TrimRight(tc.Callee.CallDhPubKey, "=")} {
				k, err := ParseDHPublicKey(s)
				require.NoError(t, err)
				require.Equal(t, callee.pub, k)
			}
			spki, err := ParseDHPublicKey(tc.Caller.CallDhPubKey)
			require.NoError(t, err)
			require.Equal(t, tc.Caller.SpkiHex, hex.EncodeToString(append(append([]byte{}, spkiPrefix...), spki[:]...)))

			// Both sides compute the same sharedKey: the raw DH output (call
			// version 1), whatever the call id.
			k1, err := caller.sharedKey(CallVersion1, smpcall.CallID("any call id"), callee.pub)
			require.NoError(t, err)
			k2, err := callee.sharedKey(CallVersion1, "", caller.pub)
			require.NoError(t, err)
			require.Equal(t, k1, k2)
			require.Equal(t, tc.DHHex, hex.EncodeToString(k1[:]))
			require.Equal(t, tc.V1.SharedKeyHex, hex.EncodeToString(k1[:]))
			require.Equal(t, tc.V1.SharedKey, k1.Encode())

			// Version 2: HKDF-SHA512 over the DH output, salt = the call
			// id's bytes, info "SimpleXCallMediaKey" (protocol §5.4).
			var callID smpcall.CallID
			require.NoError(t, callID.UnmarshalText([]byte(tc.V2.CallID)))
			require.Equal(t, tc.V2.CallIDHex, hex.EncodeToString([]byte(callID)))
			for _, kp := range [][2]*keyPair{{caller, callee}, {callee, caller}} {
				k, err := kp[0].sharedKey(CallVersion2, callID, kp[1].pub)
				require.NoError(t, err)
				require.Equal(t, tc.V2.SharedKeyHex, hex.EncodeToString(k[:]))
				require.Equal(t, tc.V2.SharedKey, k.Encode())
			}
			k3, err := mediaKey(3, callID, unhex(t, tc.DHHex))
			require.NoError(t, err)
			require.Equal(t, tc.V2.SharedKey, k3.Encode(), "later versions keep the HKDF key (Call.hs: v >= 2)")
			k0, err := mediaKey(0, callID, unhex(t, tc.DHHex))
			require.NoError(t, err)
			require.Equal(t, tc.V1.SharedKey, k0.Encode())
		})
	}
}

func TestParseDHPublicKeyRejects(t *testing.T) {
	cases := map[string]string{
		"empty":               "",
		"raw 32-byte key":     "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo=",
		"Ed25519 OID":         "MCowBQYDK2VwAyEAhSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo=",
		"trailing byte":       "MCowBQYDK2VuAyEAhSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmoA",
		"standard alphabet":   "MCowBQYDK2VuAyEAhSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=",
		"truncated":           "MCowBQYDK2VuAyEAhSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066Sp",
		"not base64 at all":   "not a key!",
		"only the DER prefix": "MCowBQYDK2VuAyEA",
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseDHPublicKey(s)
			require.Error(t, err)
			require.Contains(t, err.Error(), "callDhPubKey")
		})
	}
}

func callMessages(t testing.TB) map[string]string {
	var f struct {
		Messages map[string]struct {
			JSON string `json:"json"`
		} `json:"messages"`
	}
	readJSON(t, "call-messages.json", &f)
	out := make(map[string]string)
	for k, v := range f.Messages {
		out[k] = v.JSON
	}
	require.Len(t, out, 6)
	return out
}

// Every vector decodes and re-encodes to the same bytes: the encoder
// reproduces the Haskell key order and escaping exactly.
func TestCallMessageVectorsByteForByte(t *testing.T) {
	for name, js := range callMessages(t) {
		t.Run(name, func(t *testing.T) {
			m, err := DecodeMessage([]byte(js))
			require.NoError(t, err)
			require.Equal(t, "1-16", m.Version)
			require.Len(t, m.MsgID, 12)
			require.Equal(t, "AAECAwQFBgcICQoLDA0ODw==", m.CallID.String())
			out, err := m.Encode()
			require.NoError(t, err)
			require.Equal(t, js, string(out))
		})
	}
}

func TestCallMessageVectorContents(t *testing.T) {
	msgs := callMessages(t)
	m, err := DecodeMessage([]byte(msgs["x.call.inv"]))
	require.NoError(t, err)
	require.Equal(t, EventInvitation, m.Event)
	require.Equal(t, smpcall.DefaultCallType, m.Invitation.CallType)
	require.NotNil(t, m.Invitation.CallDHPubKey)
	require.Equal(t, "MCowBQYDK2VuAyEAhSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo=", m.Invitation.CallDHPubKey.String())

	m, err = DecodeMessage([]byte(msgs["x.call.inv (no encryption)"]))
	require.NoError(t, err)
	require.Nil(t, m.Invitation.CallDHPubKey)
	require.Equal(t, smpcall.MediaAudio, m.Invitation.CallType.Media)
	require.False(t, m.Invitation.CallType.Capabilities.Encryption)

	m, err = DecodeMessage([]byte(msgs["x.call.offer"]))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(m.Offer.RTCSession.RTCSession, "N4IgLgng"))
	require.Equal(t, "MCowBQYDK2VuAyEA3p7bfXt9wbTTW2HC7OQ1Nz-DQ8hbeGdNrfx-FG-IK08=", m.Offer.CallDHPubKey.String())

	m, err = DecodeMessage([]byte(msgs["x.call.answer"]))
	require.NoError(t, err)
	require.Equal(t, "NoXSA===", m.Answer.RTCSession.RTCIceCandidates)

	m, err = DecodeMessage([]byte(msgs["x.call.extra"]))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(m.Extra.RTCExtraInfo.RTCIceCandidates, "NobwRAzg"))

	m, err = DecodeMessage([]byte(msgs["x.call.end"]))
	require.NoError(t, err)
	require.Equal(t, EventEnd, m.Event)
}

// The call-version fields (protocol §2.4, §5.4) decode and re-encode byte
// for byte, in the Haskell field order (callVRange after callDhPubKey in
// the invitation, callVersion last in the offer).
func TestCallVersionFieldsRoundTrip(t *testing.T) {
	inv := `{"v":"1-16","msgId":"EBESExQVFhcYGRob","event":"x.call.inv","params":{"callId":"AAECAwQFBgcICQoLDA0ODw==","invitation":{"callType":{"media":"video","capabilities":{"encryption":true}},"callDhPubKey":"MCowBQYDK2VuAyEAhSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo=","callVRange":"1-2"}}}`
	m, err := DecodeMessage([]byte(inv))
	require.NoError(t, err)
	require.Equal(t, &CallVersionRange{1, 2}, m.Invitation.CallVRange)
	out, err := m.Encode()
	require.NoError(t, err)
	require.Equal(t, inv, string(out))
	m.Invitation.CallVRange = nil
	out, err = m.Encode()
	require.NoError(t, err)
	require.Equal(t, callMessages(t)["x.call.inv"], string(out), "without a range: the released form")

	plain := callMessages(t)["x.call.offer"]
	i := strings.Index(plain, `"callDhPubKey":"`)
	require.Positive(t, i)
	j := i + len(`"callDhPubKey":"`) + 60 + 1 // the key is 60 characters
	offer := plain[:j] + `,"callVersion":2` + plain[j:]
	m, err = DecodeMessage([]byte(offer))
	require.NoError(t, err)
	require.Equal(t, uint16(2), *m.Offer.CallVersion)
	out, err = m.Encode()
	require.NoError(t, err)
	require.Equal(t, offer, string(out))

	for _, bad := range []string{`"callVRange":"2-1"`, `"callVRange":"x"`, `"callVRange":2`, `"callVRange":"1-70000"`, `"callVRange":""`, `"callVRange":"1-2-3"`, `"callVRange":" 1"`} {
		_, err := DecodeMessage([]byte(strings.Replace(inv, `"callVRange":"1-2"`, bad, 1)))
		require.ErrorContains(t, err, "callVRange", bad)
	}
	for _, bad := range []string{`"callVersion":-1`, `"callVersion":1.5`, `"callVersion":"2"`, `"callVersion":65536`} {
		_, err := DecodeMessage([]byte(strings.Replace(offer, `"callVersion":2`, bad, 1)))
		require.ErrorContains(t, err, "callVersion", bad)
	}
}

func TestParseCallVersionRange(t *testing.T) {
	for s, want := range map[string]CallVersionRange{"1": {1, 1}, "1-2": {1, 2}, "02-3": {2, 3}, "0-65535": {0, 65535}} {
		got, err := ParseCallVersionRange(s)
		require.NoError(t, err, s)
		require.Equal(t, want, got, s)
	}
	require.Equal(t, "2", CallVersionRange{2, 2}.String())
	require.Equal(t, "1-2", CallVersionRange{1, 2}.String())
	_, err := CallVersionRange{3, 2}.MarshalText()
	require.Error(t, err)
	for _, s := range []string{"", "-", "1-", "-2", "2-1", "a", "1 - 2", "+1", "65536", "1-2-3", "1.0"} {
		_, err := ParseCallVersionRange(s)
		require.Error(t, err, "%q", s)
	}
	v, ok := CallVersionRange{1, 2}.Compatible(CallVersionRange{1, 1})
	require.True(t, ok)
	require.Equal(t, uint16(1), v)
	v, ok = CallVersionRange{1, 2}.Compatible(CallVersionRange{1, 5})
	require.True(t, ok)
	require.Equal(t, uint16(2), v)
	_, ok = CallVersionRange{1, 2}.Compatible(CallVersionRange{3, 4})
	require.False(t, ok)
}

func TestDecodeMessageTolerates(t *testing.T) {
	base := callMessages(t)["x.call.end"]
	cases := map[string]string{
		"no version":        `{"msgId":"YGFiY2RlZmdoaWpr","event":"x.call.end","params":{"callId":"AAECAwQFBgcICQoLDA0ODw=="}}`,
		"no msgId":          `{"event":"x.call.end","params":{"callId":"AAECAwQFBgcICQoLDA0ODw=="}}`,
		"null optionals":    `{"v":null,"msgId":null,"event":"x.call.end","params":{"callId":"AAECAwQFBgcICQoLDA0ODw=="}}`,
		"unknown keys":      `{"v":"1-16","x":[1,2],"event":"x.call.end","params":{"callId":"AAECAwQFBgcICQoLDA0ODw==","future":{"a":1}}}`,
		"unpadded callId":   `{"event":"x.call.end","params":{"callId":"AAECAwQFBgcICQoLDA0ODw"}}`,
		"single version":    `{"v":"16","event":"x.call.end","params":{"callId":"AAECAwQFBgcICQoLDA0ODw=="}}`,
		"reordered keys":    `{"params":{"callId":"AAECAwQFBgcICQoLDA0ODw=="},"event":"x.call.end","v":"1-16"}`,
		"null callDhPubKey": `{"event":"x.call.inv","params":{"callId":"AAECAwQFBgcICQoLDA0ODw==","invitation":{"callType":{"media":"audio","capabilities":{"encryption":false}},"callDhPubKey":null}}}`,
	}
	require.NotEmpty(t, base)
	for name, js := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := DecodeMessage([]byte(js))
			require.NoError(t, err)
			require.Equal(t, "AAECAwQFBgcICQoLDA0ODw==", m.CallID.String())
		})
	}
}

func TestDecodeMessageErrorsNameTheField(t *testing.T) {
	cases := []struct{ name, js, want string }{
		{"not JSON", `{"event":`, "invalid JSON"},
		{"array params", `{"event":"x.call.end","params":[]}`, "params: expected a JSON object"},
		{"missing params", `{"event":"x.call.end"}`, "params: required field missing"},
		{"missing callId", `{"event":"x.call.end","params":{}}`, "params.callId: required field missing"},
		{"empty callId", `{"event":"x.call.end","params":{"callId":""}}`, "params.callId: empty base64url"},
		{"bad callId", `{"event":"x.call.end","params":{"callId":"a+b/"}}`, "params.callId: not base64url"},
		{"number callId", `{"event":"x.call.end","params":{"callId":5}}`, "params.callId: unexpected JSON number"},
		{"bad version", `{"v":"1.16","event":"x.call.end","params":{"callId":"AAEC"}}`, "v: not a version range"},
		{"unknown media", `{"event":"x.call.inv","params":{"callId":"AAEC","invitation":{"callType":{"media":"hologram","capabilities":{"encryption":true}}}}}`, "params.invitation.callType.media: unknown call media \"hologram\""},
		{"missing capabilities", `{"event":"x.call.inv","params":{"callId":"AAEC","invitation":{"callType":{"media":"audio"}}}}`, "params.invitation.callType.capabilities: required field missing"},
		{"string encryption", `{"event":"x.call.inv","params":{"callId":"AAEC","invitation":{"callType":{"media":"audio","capabilities":{"encryption":"yes"}}}}}`, "params.invitation.callType.capabilities.encryption: unexpected JSON string"},
		{"raw key", `{"event":"x.call.inv","params":{"callId":"AAEC","invitation":{"callType":{"media":"audio","capabilities":{"encryption":true}},"callDhPubKey":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo="}}}`, "params.invitation.callDhPubKey: callDhPubKey: not an X.509 X25519 public key"},
		{"missing offer", `{"event":"x.call.offer","params":{"callId":"AAEC"}}`, "params.offer: required field missing"},
		{"offer without session", `{"event":"x.call.offer","params":{"callId":"AAEC","offer":{"callType":{"media":"audio","capabilities":{"encryption":true}}}}}`, "params.offer.rtcSession: required field missing"},
		{"answer session not string", `{"event":"x.call.answer","params":{"callId":"AAEC","answer":{"rtcSession":{"rtcSession":1,"rtcIceCandidates":""}}}}`, "params.answer.rtcSession.rtcSession: unexpected JSON number"},
		{"extra without candidates", `{"event":"x.call.extra","params":{"callId":"AAEC","extra":{"rtcExtraInfo":{}}}}`, "params.extra.rtcExtraInfo.rtcIceCandidates: required field missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeMessage([]byte(tc.js))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestDecodeMessageOtherEvents(t *testing.T) {
	_, err := DecodeMessage([]byte(`{"v":"1-16","event":"x.msg.new","params":{"content":{"type":"text","text":"hi"}}}`))
	require.ErrorIs(t, err, ErrNotCall)
	_, err = DecodeMessage([]byte(`{"params":{}}`))
	require.ErrorContains(t, err, "event: required field missing")
}

func TestSplitBatch(t *testing.T) {
	end := callMessages(t)["x.call.end"]
	msgs, err := splitBatch([]byte(end))
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	msgs, err = splitBatch([]byte("[" + end + "," + end + "]"))
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	require.JSONEq(t, end, string(msgs[1]))
	for _, bad := range []string{"", "X\x01\x00\x02{}", "hello", "[1,", "[" + strings.Repeat("{},", maxBatch) + "{}]"} {
		_, err := splitBatch([]byte(bad))
		require.Error(t, err, "%q", bad)
	}
}

func TestEncodeRefusesIncompleteMessages(t *testing.T) {
	for _, m := range []*Message{
		{Event: EventEnd},
		{Event: EventInvitation, CallID: "x"},
		{Event: EventOffer, CallID: "x"},
		{Event: EventAnswer, CallID: "x"},
		{Event: EventExtra, CallID: "x"},
		{Event: "x.call.what", CallID: "x"},
		{Event: EventInvitation, CallID: "x", Invitation: &CallInvitation{CallType: smpcall.CallType{Media: "radio"}}},
	} {
		_, err := m.Encode()
		require.Error(t, err, "%+v", m)
	}
}
