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
	f.Fuzz(func(t *testing.T, data []byte, state uint8) {
		core := NewCore(smpcall.User{UserID: 1}, nil)
		defer core.Close()
		cc := &coreContact{contact: smpcall.Contact{ContactID: 1}, pipe: newManualPipe()}
		core.contacts[1] = cc
		call := &coreCall{id: "AAECAwQFBgcICQoLDA0ODw", localType: &smpcall.DefaultCallType}
		switch state % 6 {
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
		if state%6 != 0 {
			cc.call = call
		}
		core.receive(cc, data)
	})
}
