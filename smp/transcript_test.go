package smp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/smp"
)

type transcriptLine struct {
	From  string          `json:"from"`
	Frame json.RawMessage `json:"frame"`
	Raw   string          `json:"raw"`
}

// replayCore plays a transcript of a chat-core WebSocket session: it checks
// each frame the client sends against the transcript and sends the core's
// frames as recorded, bad ones included. With wrap, the core's well-formed
// frames are sent as the current Server.hs sends them: resp inside
// {"Right":…}, or {"Left":…} for chatCmdError and chatError.
func replayCore(t *testing.T, path string, wrap bool) (url string, done <-chan error) {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var lines []transcriptLine
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l transcriptLine
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l))
		lines = append(lines, l)
	}
	require.NoError(t, sc.Err())
	result := make(chan error, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			result <- err
			return
		}
		defer ws.CloseNow()
		ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
		defer cancel()
		for i, l := range lines {
			switch l.From {
			case "client":
				_, got, err := ws.Read(ctx)
				if err != nil {
					result <- err
					return
				}
				if !jsonEqual(got, l.Frame) {
					result <- &mismatch{line: i + 1, want: string(l.Frame), got: string(got)}
					return
				}
			case "core":
				msg := []byte(l.Raw)
				if l.Raw == "" {
					msg = l.Frame
					if wrap {
						msg = wrapFrame(t, l.Frame)
					}
				}
				if err := ws.Write(ctx, websocket.MessageText, msg); err != nil {
					result <- err
					return
				}
			}
		}
		result <- nil
		// Keep the socket open until the client closes it.
		_, _, _ = ws.Read(ctx)
	}))
	t.Cleanup(hs.Close)
	return "ws" + strings.TrimPrefix(hs.URL, "http"), result
}

// wrapFrame wraps a frame's resp as a CSRBody (an Either) is encoded.
func wrapFrame(t *testing.T, frame json.RawMessage) []byte {
	var f struct {
		CorrID *string         `json:"corrId"`
		Resp   json.RawMessage `json:"resp"`
	}
	require.NoError(t, json.Unmarshal(frame, &f))
	var typed struct {
		Type string `json:"type"`
	}
	require.NoError(t, json.Unmarshal(f.Resp, &typed))
	left := typed.Type == smp.RespChatCmdError || typed.Type == smp.RespChatError
	out, err := smp.EncodeFrame(f.CorrID, smp.WrapEither(f.Resp, left))
	require.NoError(t, err)
	return out
}

type mismatch struct {
	line      int
	want, got string
}

func (m *mismatch) Error() string {
	return "transcript line " + itoa(m.line) + ": want " + m.want + "\n got " + m.got
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && jsonString(x) == jsonString(y)
}

func jsonString(v any) string { b, _ := json.Marshal(v); return string(b) }

// A chat-core session in the core's literal shapes (protocol §8, §9,
// §10.1; docs/chat-core-json.md), replayed against the ChatClient under a
// Client: an incoming call answered at the signaling level, with an
// unknown event, a response for an unknown corrId, a frame that is not
// JSON and a refused command along the way.
//
// Both framings: the bare resp of older cores and the Either-wrapped resp
// of the current Server.hs.
func TestTranscriptIncomingCall(t *testing.T) {
	for _, wrap := range []bool{false, true} {
		name := "bare"
		if wrap {
			name = "wrapped"
		}
		t.Run(name, func(t *testing.T) { transcriptIncomingCall(t, wrap) })
	}
}

func transcriptIncomingCall(t *testing.T, wrap bool) {
	url, done := replayCore(t, filepath.Join("testdata", "api", "transcript-incoming-call.jsonl"), wrap)
	ctx := context.Background()
	tr, err := smp.DialChatCore(ctx, url, nil)
	require.NoError(t, err)
	require.Equal(t, int64(1), tr.User().UserID)
	c, err := smpcall.NewClient(tr, nil)
	require.NoError(t, err)
	defer c.Close()

	inv := waitEv[*smpcall.CallInvitationEvent](t, c)
	require.Equal(t, "bob", inv.Invitation.Contact.Name())
	require.Equal(t, "Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I=", inv.Invitation.SharedKey.Encode())
	item := waitEv[*smpcall.CallItemEvent](t, c)
	require.True(t, item.New)
	require.Equal(t, smpcall.CIStatusPending, item.Item.Status)

	var msgs struct {
		Messages map[string]struct{ JSON string } `json:"messages"`
	}
	data, err := os.ReadFile(filepath.Join("..", "testdata", "call-messages.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &msgs))
	offerMsg, err := smp.DecodeMessage([]byte(msgs.Messages["x.call.offer"].JSON))
	require.NoError(t, err)
	session := smpcall.WebRTCSession{RTCSession: offerMsg.Offer.RTCSession.RTCSession, RTCIceCandidates: "NoXSA==="}
	require.NoError(t, c.SendOffer(ctx, 2, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType, RTCSession: session}))

	waitEv[*smpcall.CallAnswerEvent](t, c)
	require.Equal(t, smpcall.StateAnswerReceived, c.CallState(2))
	waitEv[*smpcall.CallExtraInfoEvent](t, c)
	require.NoError(t, c.SendCallStatus(ctx, 2, smpcall.StatusConnected))
	require.Equal(t, smpcall.StateConnected, c.CallState(2))

	err = c.SendExtraInfo(ctx, 2, smpcall.WebRTCExtraInfo{RTCIceCandidates: "NoXSA==="})
	var ce *smpcall.ChatError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, smpcall.TagOfferSent, ce.CurrentCallState)
	// (The core's callEnded follows at once, so the state is not checked here;
	// TestClientRollsBackOnTransportError covers the rollback.)

	me := waitEv[*smpcall.MessageErrorEvent](t, c)
	require.Equal(t, "x.call.answer: wrong call state CSTCallNegotiated", me.ErrorMessage)
	ended := waitEv[*smpcall.CallStateEvent](t, c, func(e *smpcall.CallStateEvent) bool { return e.To == smpcall.StateEnded })
	require.Equal(t, smpcall.ReasonRemoteHangup, ended.Reason)
	final := waitEv[*smpcall.CallItemEvent](t, c, func(e *smpcall.CallItemEvent) bool { return e.Item.Status == smpcall.CIStatusEnded })
	require.Equal(t, "incoming call: ended (00:07)", final.Item.Text)
	require.Equal(t, 7, final.Item.Duration)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("transcript not finished")
	}
}

// A command whose response never comes because the socket closes fails
// with ErrDisconnected, and the transport reports the loss as an event.
func TestPendingCommandFailsWhenTheSocketCloses(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		_, _, _ = ws.Read(ctx) // /user
		_ = ws.Write(ctx, websocket.MessageText, []byte(`{"corrId":"1","resp":{"type":"activeUser","user":{"userId":3,"localDisplayName":"bot"}}}`))
		_, _, _ = ws.Read(ctx) // the command that will never be answered
	}))
	defer hs.Close()
	ctx := context.Background()
	tr, err := smp.DialChatCore(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	require.NoError(t, err)
	defer tr.Close()
	require.Equal(t, int64(3), tr.User().UserID)
	err = tr.End(ctx, 5)
	require.ErrorIs(t, err, smp.ErrDisconnected)
	require.Contains(t, err.Error(), "/_call end @5")
	select {
	case ev := <-tr.Events():
		te, ok := ev.(*smpcall.TransportErrorEvent)
		require.True(t, ok, "%T", ev)
		require.ErrorIs(t, te.Err, smp.ErrDisconnected)
	case <-time.After(10 * time.Second):
		t.Fatal("no transport error event")
	}
}
