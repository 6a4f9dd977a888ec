package rtcpayload

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall/internal/lzstring"
)

func vectors(t testing.TB) (msgs map[string]string, decoded map[string]string) {
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "call-messages.json"))
	require.NoError(t, err)
	var f struct {
		Messages map[string]struct {
			JSON string `json:"json"`
		} `json:"messages"`
		Decoded map[string]string `json:"decodedPayloads"`
	}
	require.NoError(t, json.Unmarshal(data, &f))
	msgs = map[string]string{}
	for k, v := range f.Messages {
		msgs[k] = v.JSON
	}
	return msgs, f.Decoded
}

// The payloads inside the vector messages decode to the recorded JSON.
func TestVectorPayloads(t *testing.T) {
	msgs, decoded := vectors(t)
	var offer struct {
		Params struct {
			Offer struct {
				RTCSession struct{ RTCSession, RTCIceCandidates string } `json:"rtcSession"`
			} `json:"offer"`
		} `json:"params"`
	}
	require.NoError(t, json.Unmarshal([]byte(msgs["x.call.offer"]), &offer))
	sess, err := DecodeSession(offer.Params.Offer.RTCSession.RTCSession)
	require.NoError(t, err)
	var want Session
	require.NoError(t, json.Unmarshal([]byte(decoded["x.call.offer rtcSession (decompressed)"]), &want))
	require.Equal(t, want, sess)
	require.Equal(t, "offer", sess.Type)

	cands, err := DecodeCandidates(offer.Params.Offer.RTCSession.RTCIceCandidates)
	require.NoError(t, err)
	require.Len(t, cands, 3)
	require.Equal(t, "1", *cands[2].SDPMid)
	require.Equal(t, uint16(1), *cands[2].SDPMLineIndex)
	require.Equal(t, "F7gI", *cands[0].UsernameFragment)

	// The iOS shape: no usernameFragment, different key order.
	var extra struct {
		Params struct {
			Extra struct {
				Info struct{ RTCIceCandidates string } `json:"rtcExtraInfo"`
			} `json:"extra"`
		} `json:"params"`
	}
	require.NoError(t, json.Unmarshal([]byte(msgs["x.call.extra"]), &extra))
	cands, err = DecodeCandidates(extra.Params.Extra.Info.RTCIceCandidates)
	require.NoError(t, err)
	require.Len(t, cands, 1)
	require.Nil(t, cands[0].UsernameFragment)

	empty, err := EncodeCandidates(nil)
	require.NoError(t, err)
	require.Equal(t, "NoXSA===", empty)
	cands, err = DecodeCandidates(empty)
	require.NoError(t, err)
	require.Empty(t, cands)
}

func TestRoundTrip(t *testing.T) {
	s := Session{Type: "answer", SDP: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
	enc, err := EncodeSession(s)
	require.NoError(t, err)
	got, err := DecodeSession(enc)
	require.NoError(t, err)
	require.Equal(t, s, got)
	mid, idx := "0", uint16(0)
	cs := []Candidate{{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", SDPMid: &mid, SDPMLineIndex: &idx}}
	enc, err = EncodeCandidates(cs)
	require.NoError(t, err)
	back, err := DecodeCandidates(enc)
	require.NoError(t, err)
	require.Equal(t, cs, back)
	_, err = EncodeSession(Session{Type: "hello"})
	require.Error(t, err)
}

func lz(s string) string { return lzstring.CompressToBase64(s) }

func TestTolerated(t *testing.T) {
	// smpReconnect and other extra keys in the session (protocol §6.1).
	s, err := DecodeSession(lz(`{"type":"offer","sdp":"v=0\r\n","smpReconnect":1}`))
	require.NoError(t, err)
	require.Equal(t, "offer", s.Type)
	// Candidate objects with extra keys, null optionals.
	cs, err := DecodeCandidates(lz(`[{"candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host","sdpMid":null,"sdpMLineIndex":null,"candidateType":"host","protocol":"udp"}]`))
	require.NoError(t, err)
	require.Len(t, cs, 1)
	require.Nil(t, cs[0].SDPMid)
	// The ICE-restart object (protocol §6.8) is reported, to be ignored.
	_, err = DecodeCandidates(lz(`{"t":"restartOffer","gen":1,"sdp":"v=0","candidates":[]}`))
	require.ErrorIs(t, err, ErrNotCandidateList)
}

func TestRejected(t *testing.T) {
	for name, tc := range map[string]struct {
		session bool
		in      string
		want    string
	}{
		"session: not lz":             {true, "!!!!", "rtcSession: lzstring"},
		"session: array":              {true, lz(`[]`), "rtcSession: expected a JSON object"},
		"session: no type":            {true, lz(`{"sdp":"v=0"}`), "rtcSession: type: required field missing"},
		"session: bad type":           {true, lz(`{"type":"hello","sdp":"v=0"}`), `rtcSession: unknown type "hello"`},
		"session: number sdp":         {true, lz(`{"type":"offer","sdp":1}`), "rtcSession: sdp: unexpected JSON number"},
		"session: not SDP":            {true, lz(`{"type":"offer","sdp":"hello"}`), "sdp does not start with v=0"},
		"session: garbage text":       {true, "NPVAmU0C9d90QWvE", "rtcSession"},
		"candidates: not JSON":        {false, lz(`[{`), "rtcIceCandidates: invalid JSON array"},
		"candidates: string":          {false, lz(`"x"`), "rtcIceCandidates: not a JSON array"},
		"candidates: number item":     {false, lz(`[1]`), "rtcIceCandidates[0]: expected a JSON object"},
		"candidates: no candidate":    {false, lz(`[{"sdpMid":"0"}]`), "rtcIceCandidates[0]: candidate: required field missing"},
		"candidates: empty candidate": {false, lz(`[{"candidate":""}]`), "rtcIceCandidates[0]: candidate: empty"},
		"candidates: bad index":       {false, lz(`[{"candidate":"candidate:x","sdpMLineIndex":-1}]`), "sdpMLineIndex"},
		"candidates: NUL":             {false, "ABCDEFGH", "rtcIceCandidates"},
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			if tc.session {
				_, err = DecodeSession(tc.in)
			} else {
				_, err = DecodeCandidates(tc.in)
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// Every input lz-string itself mishandles is an error here (protocol §6.3).
func TestLZStringInvalidVectorsRejected(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "lzstring-invalid.json"))
	require.NoError(t, err)
	var f struct {
		Invalid []struct{ Name, Base64 string }
	}
	require.NoError(t, json.Unmarshal(data, &f))
	require.NotEmpty(t, f.Invalid)
	for _, c := range f.Invalid {
		_, err := DecodeSession(c.Base64)
		require.Error(t, err, c.Name)
		_, err = DecodeCandidates(c.Base64)
		require.Error(t, err, c.Name)
	}
}

func FuzzDecodeSession(f *testing.F) {
	f.Add(lz(`{"type":"offer","sdp":"v=0\r\n"}`))
	f.Add("NPVAmU0C9d90QWvE")
	f.Fuzz(func(t *testing.T, s string) {
		sess, err := DecodeSession(s)
		if err != nil {
			return
		}
		enc, err := EncodeSession(sess)
		require.NoError(t, err)
		back, err := DecodeSession(enc)
		require.NoError(t, err)
		require.Equal(t, sess, back)
	})
}

func FuzzDecodeCandidates(f *testing.F) {
	f.Add(lz(`[{"candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host","sdpMid":"0","sdpMLineIndex":0}]`))
	f.Add("NoXSA===")
	f.Add(lz(`{"t":"candidates","gen":1,"candidates":[]}`))
	f.Fuzz(func(t *testing.T, s string) {
		cs, err := DecodeCandidates(s)
		if err != nil {
			return
		}
		enc, err := EncodeCandidates(cs)
		require.NoError(t, err)
		back, err := DecodeCandidates(enc)
		require.NoError(t, err)
		require.Equal(t, len(cs), len(back))
	})
}
