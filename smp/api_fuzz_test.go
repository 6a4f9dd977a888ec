package smp

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzDecodeAPI feeds arbitrary bytes to every decoder of the WebSocket API
// codec (api.go): as a server frame (then its resp as a response and as an
// event), directly as a resp, as a request, and as command text. None may
// panic; whatever decodes must re-encode, decode again and re-encode to the
// same bytes, and a parsed command's text must parse back to it.
func FuzzDecodeAPI(f *testing.F) {
	for _, name := range []string{"protocol-8.2-exchange.jsonl", "protocol-8.3-events.jsonl", "errors-10.1.jsonl"} {
		for _, l := range apiLines(f, name) {
			f.Add(l)
		}
	}
	f.Add([]byte(`{"resp":{"type":"newChatItems","user":{"userId":1},"chatItems":[` + callItemJSON(true, "ended", 5, 3) + `]}}`))
	f.Add([]byte(`{"corrId":"1","resp":{"Right":{"type":"usersList","users":[{"user":{"userId":1},"unreadCount":0}]}}}`))
	f.Add([]byte(`{"corrId":"1","resp":{"Left":{"type":"chatCmdError","chatError":{"type":"errorStore","storeError":{"type":"contactNotFound"}}}}}`))
	f.Add([]byte(`/_call invite @2 {"media":"video","capabilities":{"encryption":true}}`))
	f.Add([]byte(`/_call status @2 connected`))
	f.Add([]byte(`/call @'bob smith'`))
	f.Add([]byte(`/_user 2 "pwd"`))
	f.Add([]byte(`/user 'bob, jr'`))
	f.Add([]byte(`{"resp":{"Right":{"type":"newChatItems","user":{"userId":1},"chatItems":[]}}}`))
	f.Add([]byte(`{"corrId":"12","resp":{"Left":{"type":"chatCmdError","chatError":{"type":"error","errorType":{"type":"noActiveUser"}}}}}`))
	at := time.Date(2025, 1, 31, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkResponse := func(resp json.RawMessage) {
			r, err := DecodeResponse(resp)
			if err != nil {
				require.Equal(t, Response{}, r)
				return
			}
			b, err := EncodeResponse(r)
			require.NoError(t, err)
			r2, err := DecodeResponse(b)
			require.NoError(t, err, "%s", b)
			b2, err := EncodeResponse(r2)
			require.NoError(t, err)
			require.Equal(t, string(b), string(b2))
		}
		checkEvent := func(resp json.RawMessage) {
			evs, err := DecodeEvent(resp)
			if err != nil {
				require.Nil(t, evs)
				return
			}
			for _, ev := range evs {
				require.NotNil(t, ev)
				b, err := EncodeEvent(ev, at)
				require.NoError(t, err)
				// The client's cheap pre-filter never skips a real call event.
				for _, wrapped := range []json.RawMessage{b, WrapEither(b, false), WrapEither(b, true)} {
					fr, err := EncodeFrame(nil, wrapped)
					require.NoError(t, err)
					require.False(t, uninteresting(fr), "%s", fr)
				}
				evs2, err := DecodeEvent(b)
				require.NoError(t, err, "%s", b)
				require.Len(t, evs2, 1)
				b2, err := EncodeEvent(evs2[0], at)
				require.NoError(t, err)
				require.Equal(t, string(b), string(b2))
			}
		}
		if fr, err := DecodeFrame(data); err == nil {
			checkResponse(fr.Resp)
			checkEvent(fr.Resp)
			var id *string
			if fr.HasCorrID {
				id = &fr.CorrID
			}
			out, err := EncodeFrame(id, fr.Resp)
			require.NoError(t, err)
			fr2, err := DecodeFrame(out)
			require.NoError(t, err)
			require.Equal(t, fr.HasCorrID, fr2.HasCorrID)
			require.Equal(t, fr.CorrID, fr2.CorrID)
		}
		checkResponse(data)
		checkEvent(data)
		_ = uninteresting(data)
		if id := frameCorrID(data); id != "" {
			require.Contains(t, string(data), id)
		}
		_, _ = DecodeRequest(data)
		if c, err := ParseCommand(string(data)); err == nil {
			text, err := c.Text()
			require.NoError(t, err, "%+v", c)
			c2, err := ParseCommand(text)
			require.NoError(t, err, text)
			require.Equal(t, c, c2)
		}
	})
}
