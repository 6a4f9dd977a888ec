package smp

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
)

// smpcall.MessageOverhead must bound what the chat message adds around each
// payload the Client hands to the core, so that the Client's size limit
// holds for the bytes that actually go on the wire.
func TestMessageOverheadBoundsTheEnvelope(t *testing.T) {
	long := strings.Repeat("A", 9000)
	key := DHPublicKey{}
	id := smpcall.CallID(strings.Repeat("\xff", 16))
	msgID := make([]byte, 12)
	ct := smpcall.CallType{Media: smpcall.MediaVideo, Capabilities: smpcall.CallCapabilities{Encryption: true}}
	session := smpcall.WebRTCSession{RTCSession: long, RTCIceCandidates: long[:3000]}
	cases := []struct {
		payload any
		msg     *Message
	}{
		{smpcall.WebRTCCallOffer{CallType: ct, RTCSession: session},
			&Message{Event: EventOffer, Offer: &CallOffer{CallType: ct, RTCSession: session, CallDHPubKey: &key}}},
		{session, &Message{Event: EventAnswer, Answer: &CallAnswer{RTCSession: session}}},
		{smpcall.WebRTCExtraInfo{RTCIceCandidates: long}, &Message{Event: EventExtra, Extra: &CallExtraInfo{RTCExtraInfo: smpcall.WebRTCExtraInfo{RTCIceCandidates: long}}}},
	}
	for _, tc := range cases {
		p, err := json.Marshal(tc.payload)
		require.NoError(t, err)
		tc.msg.Version, tc.msg.MsgID, tc.msg.CallID = "65535-65535", msgID, id
		b, err := tc.msg.Encode()
		require.NoError(t, err)
		require.LessOrEqual(t, len(b), len(p)+smpcall.MessageOverhead, tc.msg.Event)
	}
}
