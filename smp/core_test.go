package smp

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/smpcall/smpcall"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitTime = 5 * time.Second

// manualPipe lets a test play the contact's side byte by byte.
type manualPipe struct {
	toCore   chan []byte
	fromCore chan []byte
	done     chan struct{}
	once     sync.Once
}

func newManualPipe() *manualPipe {
	return &manualPipe{toCore: make(chan []byte, 64), fromCore: make(chan []byte, 64), done: make(chan struct{})}
}

func (p *manualPipe) Send(ctx context.Context, msg []byte) error {
	select {
	case p.fromCore <- append([]byte(nil), msg...):
		return nil
	case <-p.done:
		return ErrPipeClosed
	}
}

func (p *manualPipe) Receive(ctx context.Context) ([]byte, error) {
	select {
	case m := <-p.toCore:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.done:
		return nil, ErrPipeClosed
	}
}

func (p *manualPipe) Close() error { p.once.Do(func() { close(p.done) }); return nil }

// sent returns the next message the core sent, decoded.
func (p *manualPipe) sent(t *testing.T) *Message {
	t.Helper()
	select {
	case b := <-p.fromCore:
		m, err := DecodeMessage(b)
		require.NoError(t, err)
		return m
	case <-time.After(waitTime):
		t.Fatal("core sent nothing")
		return nil
	}
}

func (p *manualPipe) nothingSent(t *testing.T) {
	t.Helper()
	select {
	case b := <-p.fromCore:
		t.Fatalf("core sent %s", b)
	case <-time.After(50 * time.Millisecond):
	}
}

func (p *manualPipe) deliver(t *testing.T, m *Message) {
	t.Helper()
	b, err := m.Encode()
	require.NoError(t, err)
	p.toCore <- b
}

type coreHarness struct {
	core *Core
	pipe *manualPipe
	peer smpcall.Contact
}

func newHarness(t *testing.T, cfg *CoreConfig) *coreHarness {
	core := NewCore(smpcall.User{UserID: 1, LocalDisplayName: "alice"}, cfg)
	t.Cleanup(func() { core.Close() })
	h := &coreHarness{core: core, pipe: newManualPipe(), peer: smpcall.Contact{ContactID: 7, LocalDisplayName: "bob"}}
	require.NoError(t, core.AddContact(h.peer, h.pipe))
	return h
}

// next returns the next core event of type T, skipping others.
func next[T smpcall.Event](t *testing.T, c *Core) T {
	t.Helper()
	timeout := time.After(waitTime)
	for {
		select {
		case ev := <-c.Events():
			if v, ok := ev.(T); ok {
				return v
			}
		case <-timeout:
			var zero T
			t.Fatalf("no %T event", zero)
			return zero
		}
	}
}

// messageError returns the next message error text.
func messageError(t *testing.T, c *Core) string {
	t.Helper()
	return next[*smpcall.MessageErrorEvent](t, c).ErrorMessage
}

var ctx = context.Background()

func mustState(t *testing.T, c *Core, id int64, want smpcall.CallStateTag) {
	t.Helper()
	st, _, ok := c.CurrentCall(id)
	if want == "" {
		require.False(t, ok, "expected no call, have %s", st)
		return
	}
	require.True(t, ok)
	require.Equal(t, want, st)
}

func TestCoreCommandErrors(t *testing.T) {
	h := newHarness(t, nil)
	var ce *smpcall.ChatError

	err := h.core.Answer(ctx, 7, smpcall.WebRTCSession{})
	require.ErrorIs(t, err, smpcall.ErrNoCurrentCall)
	for _, f := range []func() error{
		func() error { return h.core.Offer(ctx, 7, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType}) },
		func() error { return h.core.Extra(ctx, 7, smpcall.WebRTCExtraInfo{}) },
		func() error { return h.core.End(ctx, 7) },
		func() error { return h.core.Reject(ctx, 7) },
		func() error { return h.core.Status(ctx, 7, smpcall.StatusConnected) },
	} {
		require.ErrorIs(t, f(), smpcall.ErrNoCurrentCall)
	}

	err = h.core.Invite(ctx, 99, smpcall.DefaultCallType)
	require.ErrorAs(t, err, &ce)
	require.Equal(t, smpcall.KindStore, ce.Kind)

	require.NoError(t, h.core.Invite(ctx, 7, smpcall.DefaultCallType))
	h.pipe.sent(t)
	for name, f := range map[string]func() error{
		"offer":  func() error { return h.core.Offer(ctx, 7, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType}) },
		"answer": func() error { return h.core.Answer(ctx, 7, smpcall.WebRTCSession{}) },
		"extra":  func() error { return h.core.Extra(ctx, 7, smpcall.WebRTCExtraInfo{}) },
		"reject": func() error { return h.core.Reject(ctx, 7) },
	} {
		err := f()
		require.ErrorIs(t, err, smpcall.ErrCallState, name)
		require.ErrorAs(t, err, &ce)
		require.Equal(t, smpcall.TagInvitationSent, ce.CurrentCallState, name)
	}
	mustState(t, h.core, 7, smpcall.TagInvitationSent)

	err = h.core.Status(ctx, 7, "checking")
	require.ErrorIs(t, err, smpcall.ErrCommand)
	err = h.core.Invite(ctx, 7, smpcall.CallType{Media: "hologram"})
	require.ErrorIs(t, err, smpcall.ErrCommand)
	h.pipe.nothingSent(t)
}

func TestCoreCallerFlowWithManualPeer(t *testing.T) {
	h := newHarness(t, nil)
	callee, err := keyPairFromPrivate(bytes.Repeat([]byte{2}, 32))
	require.NoError(t, err)

	require.NoError(t, h.core.Invite(ctx, 7, smpcall.DefaultCallType))
	item := next[*smpcall.CallItemEvent](t, h.core)
	require.True(t, item.New)
	require.Equal(t, "outgoing call: calling...", item.Item.Text)
	inv := h.pipe.sent(t)
	require.Equal(t, EventInvitation, inv.Event)
	require.Len(t, []byte(inv.CallID), 16)
	require.Len(t, inv.MsgID, 12)
	require.Equal(t, ChatVersion, inv.Version)
	require.NotNil(t, inv.Invitation.CallDHPubKey)

	// Extra before the offer: ignored with the core's message error.
	h.pipe.deliver(t, &Message{Event: EventExtra, CallID: inv.CallID, Extra: &CallExtraInfo{}})
	require.Equal(t, "x.call.extra: wrong call state CSTCallInvitationSent", messageError(t, h.core))
	// Answer for this side is impossible too.
	h.pipe.deliver(t, &Message{Event: EventAnswer, CallID: inv.CallID, Answer: &CallAnswer{}})
	require.Equal(t, "x.call.answer: wrong call state CSTCallInvitationSent", messageError(t, h.core))
	// An offer for an old call id.
	h.pipe.deliver(t, &Message{Event: EventOffer, CallID: "old-call-id-0000", Offer: &CallOffer{CallType: smpcall.DefaultCallType}})
	require.Equal(t, "x.call.offer: wrong contact or callId", messageError(t, h.core))
	mustState(t, h.core, 7, smpcall.TagInvitationSent)

	// The real offer: sharedKey agreed with the callee's key.
	session := smpcall.WebRTCSession{RTCSession: "offer", RTCIceCandidates: "cands"}
	h.pipe.deliver(t, &Message{Event: EventOffer, CallID: inv.CallID, Offer: &CallOffer{CallType: smpcall.DefaultCallType, RTCSession: session, CallDHPubKey: &callee.pub}})
	offer := next[*smpcall.CallOfferEvent](t, h.core)
	require.Equal(t, session, offer.Offer)
	require.False(t, offer.AskConfirmation)
	require.NotNil(t, offer.SharedKey)
	want, err := callee.sharedKey(CallVersion1, inv.CallID, *inv.Invitation.CallDHPubKey)
	require.NoError(t, err)
	require.Equal(t, want, *offer.SharedKey)
	mustState(t, h.core, 7, smpcall.TagOfferReceived)

	// A second offer: wrong state, nothing changes.
	h.pipe.deliver(t, &Message{Event: EventOffer, CallID: inv.CallID, Offer: &CallOffer{CallType: smpcall.DefaultCallType, RTCSession: session}})
	require.Equal(t, "x.call.offer: wrong call state CSTCallOfferReceived", messageError(t, h.core))
	mustState(t, h.core, 7, smpcall.TagOfferReceived)

	// The caller cannot send extras before its answer (protocol §4.2).
	require.ErrorIs(t, h.core.Extra(ctx, 7, smpcall.WebRTCExtraInfo{}), smpcall.ErrCallState)
	require.NoError(t, h.core.Answer(ctx, 7, smpcall.WebRTCSession{RTCSession: "answer", RTCIceCandidates: "[]"}))
	ans := h.pipe.sent(t)
	require.Equal(t, EventAnswer, ans.Event)
	require.Equal(t, "answer", ans.Answer.RTCSession.RTCSession)
	require.NoError(t, h.core.Extra(ctx, 7, smpcall.WebRTCExtraInfo{RTCIceCandidates: "more"}))
	require.Equal(t, "more", h.pipe.sent(t).Extra.RTCExtraInfo.RTCIceCandidates)

	// Extras from the peer are delivered in negotiated.
	h.pipe.deliver(t, &Message{Event: EventExtra, CallID: inv.CallID, Extra: &CallExtraInfo{RTCExtraInfo: smpcall.WebRTCExtraInfo{RTCIceCandidates: "theirs"}}})
	require.Equal(t, "theirs", next[*smpcall.CallExtraInfoEvent](t, h.core).ExtraInfo.RTCIceCandidates)

	// A second answer to nobody: the peer is not in offerSent; no change.
	h.pipe.deliver(t, &Message{Event: EventAnswer, CallID: inv.CallID, Answer: &CallAnswer{}})
	require.Equal(t, "x.call.answer: wrong call state CSTCallNegotiated", messageError(t, h.core))
	mustState(t, h.core, 7, smpcall.TagNegotiated)

	h.pipe.deliver(t, &Message{Event: EventEnd, CallID: inv.CallID})
	next[*smpcall.CallEndedEvent](t, h.core)
	mustState(t, h.core, 7, "")
	h.pipe.deliver(t, &Message{Event: EventEnd, CallID: inv.CallID})
	require.Equal(t, "x.call.end: no current call", messageError(t, h.core))
}

// askConfirmation is set when the caller asked for encryption and the
// callee's offer does not have it; then there is no key (protocol §5.1).
func TestCoreAskConfirmation(t *testing.T) {
	for _, tc := range []struct {
		callerEnc, calleeEnc, ask, key bool
	}{
		{true, true, false, true},
		{true, false, true, false},
		{false, true, false, false},
		{false, false, false, false},
	} {
		h := newHarness(t, nil)
		require.NoError(t, h.core.Invite(ctx, 7, smpcall.CallType{Media: smpcall.MediaAudio, Capabilities: smpcall.CallCapabilities{Encryption: tc.callerEnc}}))
		inv := h.pipe.sent(t)
		require.Equal(t, tc.callerEnc, inv.Invitation.CallDHPubKey != nil)
		co := &CallOffer{CallType: smpcall.CallType{Media: smpcall.MediaAudio, Capabilities: smpcall.CallCapabilities{Encryption: tc.calleeEnc}}}
		if tc.calleeEnc {
			kp, err := keyPairFromPrivate(bytes.Repeat([]byte{9}, 32))
			require.NoError(t, err)
			co.CallDHPubKey = &kp.pub
		}
		h.pipe.deliver(t, &Message{Event: EventOffer, CallID: inv.CallID, Offer: co})
		ev := next[*smpcall.CallOfferEvent](t, h.core)
		require.Equal(t, tc.ask, ev.AskConfirmation, "%+v", tc)
		require.Equal(t, tc.key, ev.SharedKey != nil, "%+v", tc)
	}
}

// The callee side: the key is agreed at invitation time; the offer carries
// our public key only if our own call type asks for encryption.
func TestCoreCalleeFlowWithManualPeer(t *testing.T) {
	h := newHarness(t, nil)
	caller, err := keyPairFromPrivate(bytes.Repeat([]byte{1}, 32))
	require.NoError(t, err)
	id := smpcall.CallID("0123456789abcdef")
	h.pipe.deliver(t, &Message{Event: EventInvitation, CallID: id, Invitation: &CallInvitation{CallType: smpcall.DefaultCallType, CallDHPubKey: &caller.pub}})
	ev := next[*smpcall.CallInvitationEvent](t, h.core)
	require.Equal(t, int64(7), ev.Invitation.Contact.ContactID)
	require.NotNil(t, ev.Invitation.SharedKey)
	require.Len(t, ev.Invitation.CallUUID, 36)
	item := next[*smpcall.CallItemEvent](t, h.core)
	require.Equal(t, "incoming call: calling...", item.Item.Text)

	invs, err := h.core.Invitations(ctx)
	require.NoError(t, err)
	require.Len(t, invs, 1)
	require.Equal(t, ev.Invitation.SharedKey, invs[0].SharedKey)

	// An answer or end for another call id is ignored.
	h.pipe.deliver(t, &Message{Event: EventEnd, CallID: "another-call-id!"})
	require.Equal(t, "x.call.end: wrong contact or callId", messageError(t, h.core))
	mustState(t, h.core, 7, smpcall.TagInvitationReceived)
	require.ErrorIs(t, h.core.Extra(ctx, 7, smpcall.WebRTCExtraInfo{}), smpcall.ErrCallState)

	require.NoError(t, h.core.Offer(ctx, 7, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType, RTCSession: smpcall.WebRTCSession{RTCSession: "o", RTCIceCandidates: "c"}}))
	offer := h.pipe.sent(t)
	require.NotNil(t, offer.Offer.CallDHPubKey)
	k, err := caller.sharedKey(CallVersion1, offer.CallID, *offer.Offer.CallDHPubKey)
	require.NoError(t, err)
	require.Equal(t, *ev.Invitation.SharedKey, k, "both sides agree on the key")
	invs, err = h.core.Invitations(ctx)
	require.NoError(t, err)
	require.Empty(t, invs)

	// The callee may send extras right after its offer.
	require.NoError(t, h.core.Extra(ctx, 7, smpcall.WebRTCExtraInfo{RTCIceCandidates: "x"}))
	require.Equal(t, EventExtra, h.pipe.sent(t).Event)
	h.pipe.deliver(t, &Message{Event: EventAnswer, CallID: id, Answer: &CallAnswer{RTCSession: smpcall.WebRTCSession{RTCSession: "a", RTCIceCandidates: "[]"}}})
	require.Equal(t, "a", next[*smpcall.CallAnswerEvent](t, h.core).Answer.RTCSession)
	mustState(t, h.core, 7, smpcall.TagNegotiated)
}

// A callee whose own call type has no encryption sends no key.
func TestCoreOfferWithoutEncryptionSendsNoKey(t *testing.T) {
	h := newHarness(t, nil)
	caller, err := keyPairFromPrivate(bytes.Repeat([]byte{1}, 32))
	require.NoError(t, err)
	h.pipe.deliver(t, &Message{Event: EventInvitation, CallID: "0123456789abcdef", Invitation: &CallInvitation{CallType: smpcall.DefaultCallType, CallDHPubKey: &caller.pub}})
	next[*smpcall.CallInvitationEvent](t, h.core)
	require.NoError(t, h.core.Offer(ctx, 7, smpcall.WebRTCCallOffer{CallType: smpcall.CallType{Media: smpcall.MediaVideo}}))
	require.Nil(t, h.pipe.sent(t).Offer.CallDHPubKey)
}

// By default (CallVersion2 off) the call-version fields are ignored: the
// key stays the raw DH output, as in the released apps.
func TestCoreIgnoresCallVersionByDefault(t *testing.T) {
	tc := dhCases(t)[0]
	// The callee's core draws a UUID (16 bytes) then its private key (32 bytes).
	rnd := bytes.NewReader(append(make([]byte, 16), unhex(t, tc.Callee.PrivateKeyRawHex)...))
	h := newHarness(t, &CoreConfig{Rand: rnd})
	inv := `{"v":"1-16","msgId":"EBESExQVFhcYGRob","event":"x.call.inv","params":{"callId":"` + tc.V2.CallID +
		`","invitation":{"callType":{"media":"video","capabilities":{"encryption":true}},"callDhPubKey":"` + tc.Caller.CallDhPubKey + `","callVRange":"1-2"}}}`
	h.pipe.toCore <- []byte(inv)
	ev := next[*smpcall.CallInvitationEvent](t, h.core)
	require.NotNil(t, ev.Invitation.SharedKey)
	require.Equal(t, tc.V1.SharedKey, ev.Invitation.SharedKey.Encode())
	require.NotEqual(t, tc.V2.SharedKey, ev.Invitation.SharedKey.Encode())
}

// Malformed input from the peer becomes a message error, never a panic or
// a state change.
func TestCoreMalformedMessages(t *testing.T) {
	h := newHarness(t, nil)
	require.NoError(t, h.core.Invite(ctx, 7, smpcall.DefaultCallType))
	h.pipe.sent(t)
	bad := []string{
		"", "null", "[]", "[1]", "{", `{"event":5}`, "X\x02", "\x00\xff",
		`{"event":"x.call.offer","params":{"callId":"AAEC","offer":{"callType":{"media":"video","capabilities":{"encryption":true}},"rtcSession":{"rtcSession":"a","rtcIceCandidates":"b"},"callDhPubKey":"MCowBQYDK2VuAyEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}}`,
	}
	for _, b := range bad {
		h.pipe.toCore <- []byte(b)
	}
	// Every input but the empty batch "[]" yields exactly one message error.
	for range len(bad) - 1 {
		require.NotEmpty(t, messageError(t, h.core))
	}
	mustState(t, h.core, 7, smpcall.TagInvitationSent)

	// An all-zero (low-order) key for the current call is refused.
	_, id, _ := h.core.CurrentCall(7)
	zero := DHPublicKey{}
	h.pipe.deliver(t, &Message{Event: EventOffer, CallID: id, Offer: &CallOffer{CallType: smpcall.DefaultCallType, CallDHPubKey: &zero}})
	require.Contains(t, messageError(t, h.core), "x.call.offer: callDhPubKey")
	mustState(t, h.core, 7, smpcall.TagInvitationSent)
}

func TestItemStatusAfterTable(t *testing.T) {
	type row struct {
		cur  smpcall.CICallStatus
		st   smpcall.WebRTCCallStatus
		want smpcall.CICallStatus
		dur  int
		ok   bool
	}
	rows := []row{
		{smpcall.CIStatusProgress, smpcall.StatusConnected, smpcall.CIStatusProgress, 0, false},
		{smpcall.CIStatusProgress, smpcall.StatusDisconnected, smpcall.CIStatusEnded, 65, true},
		{smpcall.CIStatusProgress, smpcall.StatusFailed, smpcall.CIStatusEnded, 65, true},
		{smpcall.CIStatusProgress, smpcall.StatusConnecting, smpcall.CIStatusNegotiated, 0, true},
		{smpcall.CIStatusPending, smpcall.StatusDisconnected, smpcall.CIStatusMissed, 0, true},
		{smpcall.CIStatusEnded, smpcall.StatusConnected, smpcall.CIStatusEnded, 0, false},
		{smpcall.CIStatusError, smpcall.StatusDisconnected, smpcall.CIStatusError, 0, false},
		{smpcall.CIStatusPending, smpcall.StatusConnecting, smpcall.CIStatusNegotiated, 0, true},
		{smpcall.CIStatusAccepted, smpcall.StatusConnected, smpcall.CIStatusProgress, 0, true},
		{smpcall.CIStatusNegotiated, smpcall.StatusDisconnected, smpcall.CIStatusEnded, 0, true},
		{smpcall.CIStatusNegotiated, smpcall.StatusFailed, smpcall.CIStatusError, 0, true},
		{smpcall.CIStatusMissed, smpcall.StatusConnected, smpcall.CIStatusProgress, 0, true},
	}
	for _, r := range rows {
		got, dur, ok := ItemStatusAfter(r.cur, r.st, 65*time.Second+300*time.Millisecond)
		require.Equal(t, r.ok, ok, "%+v", r)
		if ok {
			require.Equal(t, r.want, got, "%+v", r)
			require.Equal(t, r.dur, dur, "%+v", r)
		}
	}
	require.Equal(t, "outgoing call: in progress (01:05)", smpcall.ItemText(true, smpcall.CIStatusProgress, 65))
	require.Equal(t, "incoming call: connecting...", smpcall.ItemText(false, smpcall.CIStatusNegotiated, 0))
	require.Equal(t, "incoming call: rejected", smpcall.ItemText(false, smpcall.CIStatusRejected, 0))
}

func TestCoreClosed(t *testing.T) {
	core := NewCore(smpcall.User{UserID: 1}, nil)
	p := newManualPipe()
	require.NoError(t, core.AddContact(smpcall.Contact{ContactID: 1}, p))
	require.Error(t, core.AddContact(smpcall.Contact{ContactID: 1}, newManualPipe()))
	require.NoError(t, core.Close())
	require.NoError(t, core.Close())
	require.ErrorIs(t, core.Invite(ctx, 1, smpcall.DefaultCallType), smpcall.ErrClosed)
	_, err := core.Invitations(ctx)
	require.ErrorIs(t, err, smpcall.ErrClosed)
	require.ErrorIs(t, core.AddContact(smpcall.Contact{ContactID: 2}, newManualPipe()), smpcall.ErrClosed)
	_, ok := <-core.Events()
	require.False(t, ok)
	require.True(t, errors.Is(p.Close(), nil))
}

// A peer that keeps sending while nobody reads the core's events cannot
// grow its memory: the queue stops at EventQueueSize, the rest is counted.
func TestCoreBoundsItsEventQueue(t *testing.T) {
	h := newHarness(t, &CoreConfig{EventQueueSize: 100})
	const flood = 3000
	for range flood {
		h.pipe.toCore <- []byte(`{"event":"x.call.end","params":{"callId":"AAEC"}}`)
	}
	require.Eventually(t, func() bool { return h.core.DroppedEvents() == flood-100 }, waitTime, time.Millisecond)
	require.Len(t, h.core.Events(), 100)
	require.Equal(t, "x.call.end: no current call", messageError(t, h.core))
}
