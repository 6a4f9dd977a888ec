package smpcall

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzUnmarshalInvitation: the chat-core objects decode or fail with an
// error, never panic; what decodes re-encodes to JSON that decodes the same.
func FuzzUnmarshalInvitation(f *testing.F) {
	f.Add([]byte(`{"user":{"userId":1},"contact":{"contactId":2,"profile":{"displayName":"bob"}},"callType":{"media":"video","capabilities":{"encryption":true}},"sharedKey":"Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I=","callUUID":"u","callTs":"2025-01-31T12:00:00.123456Z"}`))
	f.Add([]byte(`{"user":{"userId":1},"contact":{"contactId":2},"callType":{"media":"audio","capabilities":{"encryption":false}},"sharedKey":null,"callTs":"2025-01-31T12:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var inv RcvCallInvitation
		if err := json.Unmarshal(data, &inv); err != nil {
			return
		}
		out, err := json.Marshal(inv)
		require.NoError(t, err)
		var back RcvCallInvitation
		require.NoError(t, json.Unmarshal(out, &back))
		require.Equal(t, inv.CallType, back.CallType)
		require.Equal(t, inv.SharedKey, back.SharedKey)
		require.True(t, inv.CallTs.Equal(back.CallTs.Time))
	})
}

// FuzzUnmarshalChatError: any chatError object decodes or fails cleanly.
func FuzzUnmarshalChatError(f *testing.F) {
	f.Add([]byte(`{"type":"error","errorType":{"type":"callState","currentCallState":"offerSent"}}`))
	f.Add([]byte(`{"type":"errorStore","storeError":{"type":"contactNotFound"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var ce ChatError
		if err := json.Unmarshal(data, &ce); err != nil {
			return
		}
		require.NotEmpty(t, ce.Error())
		_, err := json.Marshal(&ce)
		require.NoError(t, err)
	})
}
