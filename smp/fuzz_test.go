package smp

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
)

// FuzzDecodeMessage: any bytes give a message or an error, never a panic;
// a decoded message re-encodes to bytes that decode to the same message.
func FuzzDecodeMessage(f *testing.F) {
	for _, js := range callMessages(f) {
		f.Add([]byte(js))
	}
	f.Add([]byte(`{"event":"x.call.end","params":{"callId":"AAEC"}}`))
	f.Add([]byte(`{"event":"x.call.inv","params":{"callId":"AAEC","invitation":{"callType":{"media":"audio","capabilities":{"encryption":false}},"callDhPubKey":null}}}`))
	f.Add([]byte(`{"event":"x.call.inv","params":{"callId":"AAEC","invitation":{"callType":{"media":"audio","capabilities":{"encryption":false}},"callVRange":"1-2"}}}`))
	f.Add([]byte(`{"event":"x.call.offer","params":{"callId":"AAEC","offer":{"callType":{"media":"audio","capabilities":{"encryption":false}},"rtcSession":{"rtcSession":"a","rtcIceCandidates":"b"},"callVersion":2}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMessage(data)
		if err != nil {
			require.Nil(t, m)
			return
		}
		out, err := m.Encode()
		require.NoError(t, err)
		m2, err := DecodeMessage(out)
		require.NoError(t, err)
		require.Equal(t, m, m2)
		out2, err := m2.Encode()
		require.NoError(t, err)
		require.Equal(t, out, out2)
	})
}

// FuzzCoreReceive feeds arbitrary bytes to a core in each of its states:
// it must neither panic nor block, whatever arrives.
func FuzzCoreReceive(f *testing.F) {
	for _, js := range callMessages(f) {
		f.Add([]byte(js), uint8(0))
	}
	f.Add([]byte(`[{"event":"x.call.end","params":{"callId":"AAEC"}},{"event":"x.call.end","params":{"callId":"AAEC"}}]`), uint8(1))
	f.Add([]byte(`{"event":"x.call.inv","params":{"callId":"AAEC","invitation":{"callType":{"media":"audio","capabilities":{"encryption":true}},"callDhPubKey":"MCowBQYDK2VuAyEAhSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo=","callVRange":"2-9"}}}`), uint8(0x80))
	f.Add([]byte(`{"event":"x.call.offer","params":{"callId":"AAECAwQFBgcICQoLDA0ODw","offer":{"callType":{"media":"audio","capabilities":{"encryption":true}},"rtcSession":{"rtcSession":"a","rtcIceCandidates":"b"},"callDhPubKey":"MCowBQYDK2VuAyEAhSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo=","callVersion":2}}}`), uint8(0x81))
	f.Fuzz(func(t *testing.T, data []byte, state uint8) {
		// The high bit turns call versions on.
		core := NewCore(smpcall.User{UserID: 1}, &CoreConfig{CallVersion2: state&0x80 != 0})
		defer core.Close()
		cc := &coreContact{contact: smpcall.Contact{ContactID: 1}, pipe: newManualPipe()}
		core.contacts[1] = cc
		call := &coreCall{id: "AAECAwQFBgcICQoLDA0ODw", localType: &smpcall.DefaultCallType, offered: core.callVRange()}
		switch (state & 0x7f) % 6 {
		case 1:
			call.state = smpcall.TagInvitationSent
			kp, err := keyPairFromPrivate(make([]byte, 32))
			require.NoError(t, err)
			call.keys = kp
		case 2:
			call.state = smpcall.TagInvitationReceived
		case 3:
			call.state = smpcall.TagOfferSent
		case 4:
			call.state = smpcall.TagOfferReceived
		case 5:
			call.state = smpcall.TagNegotiated
		}
		if (state&0x7f)%6 != 0 {
			cc.call = call
		}
		core.receive(cc, data)
	})
}

// FuzzCallVersionRange: any text parses to a valid range (Min ≤ Max) or an
// error; a parsed range prints to text that parses back to it.
func FuzzCallVersionRange(f *testing.F) {
	for _, s := range []string{"1", "1-2", "2-1", "0-65535", "65536", "01-002", "1-", "-", "", "1-2-3", " 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseCallVersionRange(s)
		if err != nil {
			require.Equal(t, CallVersionRange{}, r)
			return
		}
		require.LessOrEqual(t, r.Min, r.Max)
		text, err := r.MarshalText()
		require.NoError(t, err)
		r2, err := ParseCallVersionRange(string(text))
		require.NoError(t, err)
		require.Equal(t, r, r2)
	})
}
