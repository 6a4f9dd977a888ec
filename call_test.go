package smpcall_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/smp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitTime = 5 * time.Second

var ctx = context.Background()

type pair struct {
	net            *smp.Network
	alice, bob     *smpcall.Client
	aliceCore      *smp.Core
	bobCore        *smp.Core
	bobID, aliceID int64 // bob's id at alice, alice's id at bob
	mu             sync.Mutex
	wire           []string
}

func (p *pair) trace(t smp.Trace) {
	m, err := smp.DecodeMessage(t.Data)
	ev := "garbage"
	if err == nil {
		ev = m.Event
	}
	p.mu.Lock()
	p.wire = append(p.wire, t.From+">"+t.To+" "+ev+" "+string(t.Fate))
	p.mu.Unlock()
}

func (p *pair) wireLog() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.wire...)
}

func newPair(t *testing.T, aliceCfg, bobCfg *smpcall.Config, wrap ...func(name string, tr smpcall.Transport) smpcall.Transport) *pair {
	p := &pair{}
	p.net = smp.NewNetwork(&smp.NetworkConfig{Trace: p.trace})
	var err error
	p.aliceCore, err = p.net.AddUser("alice", nil)
	require.NoError(t, err)
	p.bobCore, err = p.net.AddUser("bob", nil)
	require.NoError(t, err)
	p.bobID, p.aliceID, err = p.net.Connect("alice", "bob")
	require.NoError(t, err)
	var at, bt smpcall.Transport = p.aliceCore, p.bobCore
	for _, w := range wrap {
		at, bt = w("alice", at), w("bob", bt)
	}
	p.alice, err = smpcall.NewClient(at, aliceCfg)
	require.NoError(t, err)
	p.bob, err = smpcall.NewClient(bt, bobCfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, p.alice.Close())
		require.NoError(t, p.bob.Close())
		require.NoError(t, p.net.Close())
	})
	return p
}

// wait returns the next event of type T from c that matches.
func wait[T smpcall.Event](t *testing.T, c *smpcall.Client, match ...func(T) bool) T {
	t.Helper()
	return waitWithin(t, c, waitTime, match...)
}

// waitWithin is wait with its own time limit (tests in virtual time use long ones).
func waitWithin[T smpcall.Event](t *testing.T, c *smpcall.Client, limit time.Duration, match ...func(T) bool) T {
	t.Helper()
	timeout := time.After(limit)
	for {
		select {
		case ev, ok := <-c.Events():
			require.True(t, ok, "events closed")
			if v, ok := ev.(T); ok && (len(match) == 0 || match[0](v)) {
				return v
			}
		case <-timeout:
			var zero T
			t.Fatalf("no %T", zero)
			return zero
		}
	}
}

func waitState(t *testing.T, c *smpcall.Client, to smpcall.CallState) *smpcall.CallStateEvent {
	t.Helper()
	return wait(t, c, func(e *smpcall.CallStateEvent) bool { return e.To == to })
}

// The Client's view must settle on want (events are asynchronous).
func requireState(t *testing.T, c *smpcall.Client, id int64, want smpcall.CallState) {
	t.Helper()
	require.Eventually(t, func() bool { return c.CallState(id) == want }, waitTime, time.Millisecond, "want %s, have %s", want, c.CallState(id))
}

var session = smpcall.WebRTCSession{RTCSession: "sdp", RTCIceCandidates: "[]"}

func TestClientWholeCall(t *testing.T) {
	p := newPair(t, nil, nil)
	require.NoError(t, p.alice.SendInvitation(ctx, p.bobID, smpcall.DefaultCallType))
	require.Equal(t, smpcall.StateInvitationSent, p.alice.CallState(p.bobID))

	ring := wait[*smpcall.RingingEvent](t, p.bob)
	require.Equal(t, "alice", ring.Invitation.Contact.Name())
	require.Equal(t, smpcall.StateInvitationReceived, p.bob.CallState(p.aliceID))
	require.NoError(t, p.bob.SendOffer(ctx, p.aliceID, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType, RTCSession: session}))
	require.Equal(t, smpcall.StateOfferSent, p.bob.CallState(p.aliceID))

	offer := wait[*smpcall.CallOfferEvent](t, p.alice)
	require.False(t, offer.AskConfirmation)
	require.Equal(t, smpcall.StateOfferReceived, p.alice.CallState(p.bobID))
	require.NoError(t, p.alice.SendAnswer(ctx, p.bobID, session))
	require.Equal(t, smpcall.StateNegotiated, p.alice.CallState(p.bobID))
	wait[*smpcall.CallAnswerEvent](t, p.bob)
	require.Equal(t, smpcall.StateAnswerReceived, p.bob.CallState(p.aliceID))

	// Extras both ways.
	require.NoError(t, p.bob.SendExtraInfo(ctx, p.aliceID, smpcall.WebRTCExtraInfo{RTCIceCandidates: "from bob"}))
	require.Equal(t, "from bob", wait[*smpcall.CallExtraInfoEvent](t, p.alice).ExtraInfo.RTCIceCandidates)
	require.NoError(t, p.alice.SendExtraInfo(ctx, p.bobID, smpcall.WebRTCExtraInfo{RTCIceCandidates: "from alice"}))
	require.Equal(t, "from alice", wait[*smpcall.CallExtraInfoEvent](t, p.bob).ExtraInfo.RTCIceCandidates)

	// The shared key is equal on both sides.
	ai, ok := p.alice.CallInfo(p.bobID)
	require.True(t, ok)
	bi, ok := p.bob.CallInfo(p.aliceID)
	require.True(t, ok)
	require.NotNil(t, ai.SharedKey)
	require.NotNil(t, bi.SharedKey)
	require.Equal(t, *ai.SharedKey, *bi.SharedKey)
	require.Equal(t, *offer.SharedKey, *ai.SharedKey)
	require.True(t, bi.Incoming)
	require.False(t, ai.Incoming)

	require.NoError(t, p.alice.SendCallStatus(ctx, p.bobID, smpcall.StatusConnected))
	require.NoError(t, p.bob.SendCallStatus(ctx, p.aliceID, smpcall.StatusConnected))
	require.Equal(t, smpcall.StateConnected, p.alice.CallState(p.bobID))
	require.Equal(t, smpcall.StateConnected, p.bob.CallState(p.aliceID))

	require.NoError(t, p.bob.EndCall(ctx, p.aliceID))
	require.Equal(t, smpcall.StateNone, p.bob.CallState(p.aliceID))
	ended := waitState(t, p.alice, smpcall.StateEnded)
	require.Equal(t, smpcall.ReasonRemoteHangup, ended.Reason)
	require.Equal(t, smpcall.StateConnected, ended.From)
	requireState(t, p.alice, p.bobID, smpcall.StateNone)

	require.Equal(t, []string{
		"alice>bob x.call.inv delivered", "bob>alice x.call.offer delivered", "alice>bob x.call.answer delivered",
		"bob>alice x.call.extra delivered", "alice>bob x.call.extra delivered", "bob>alice x.call.end delivered",
	}, p.wireLog())
	require.Equal(t, "outgoing call: ended (00:00)", p.aliceCore.CallItems(p.bobID)[0].Text)
}

func TestClientStateEventsSequence(t *testing.T) {
	p := newPair(t, nil, nil)
	var aseq, bseq []string
	record := func(seq *[]string, c *smpcall.Client) {
		ev := wait[*smpcall.CallStateEvent](t, c)
		*seq = append(*seq, ev.From.String()+">"+ev.To.String())
	}
	audio := smpcall.CallType{Media: smpcall.MediaAudio}
	require.NoError(t, p.alice.SendInvitation(ctx, p.bobID, audio))
	record(&aseq, p.alice)
	record(&bseq, p.bob)
	require.NoError(t, p.bob.SendOffer(ctx, p.aliceID, smpcall.WebRTCCallOffer{CallType: audio, RTCSession: session}))
	record(&bseq, p.bob)
	record(&aseq, p.alice)
	require.NoError(t, p.alice.SendAnswer(ctx, p.bobID, session))
	record(&aseq, p.alice)
	record(&bseq, p.bob)
	require.NoError(t, p.alice.SendCallStatus(ctx, p.bobID, smpcall.StatusConnected))
	record(&aseq, p.alice)
	require.NoError(t, p.alice.EndCall(ctx, p.bobID))
	record(&aseq, p.alice)
	record(&bseq, p.bob)
	require.Equal(t, []string{"none>invitationSent", "invitationSent>offerReceived", "offerReceived>negotiated", "negotiated>connected", "connected>ended"}, aseq)
	require.Equal(t, []string{"none>invitationReceived", "invitationReceived>offerSent", "offerSent>answerReceived", "answerReceived>ended"}, bseq)
}

// Reject sends nothing; the caller keeps ringing until it ends the call.
func TestClientRejectSendsNothing(t *testing.T) {
	p := newPair(t, nil, nil)
	require.NoError(t, p.alice.SendInvitation(ctx, p.bobID, smpcall.DefaultCallType))
	wait[*smpcall.RingingEvent](t, p.bob)
	require.NoError(t, p.bob.Reject(ctx, p.aliceID))
	require.Equal(t, smpcall.ReasonDeclined, waitState(t, p.bob, smpcall.StateEnded).Reason)
	require.Equal(t, smpcall.StateNone, p.bob.CallState(p.aliceID))

	time.Sleep(50 * time.Millisecond)
	require.Equal(t, []string{"alice>bob x.call.inv delivered"}, p.wireLog())
	require.Equal(t, smpcall.StateInvitationSent, p.alice.CallState(p.bobID), "the caller keeps ringing")

	require.NoError(t, p.alice.EndCall(ctx, p.bobID))
	me := wait[*smpcall.MessageErrorEvent](t, p.bob)
	require.Equal(t, "x.call.end: no current call", me.ErrorMessage)
	require.Equal(t, smpcall.StateNone, p.alice.CallState(p.bobID))
	require.Equal(t, "incoming call: rejected", p.bobCore.CallItems(p.aliceID)[0].Text)
	require.Equal(t, "outgoing call: missed", p.aliceCore.CallItems(p.bobID)[0].Text)
}

func TestClientEndBeforeOffer(t *testing.T) {
	p := newPair(t, nil, nil)
	require.NoError(t, p.alice.SendInvitation(ctx, p.bobID, smpcall.DefaultCallType))
	wait[*smpcall.RingingEvent](t, p.bob)
	require.NoError(t, p.alice.EndCall(ctx, p.bobID))
	ended := waitState(t, p.bob, smpcall.StateEnded)
	require.Equal(t, smpcall.ReasonMissed, ended.Reason, "the caller gave up before bob accepted")
	require.Equal(t, smpcall.StateInvitationReceived, ended.From)
	err := p.bob.SendOffer(ctx, p.aliceID, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType, RTCSession: session})
	require.ErrorIs(t, err, smpcall.ErrNoCall)
	require.Equal(t, "incoming call: missed", p.bobCore.CallItems(p.aliceID)[0].Text)
}

func TestClientIgnoresMessagesThatDoNotFit(t *testing.T) {
	p := newPair(t, nil, nil)
	require.NoError(t, p.alice.SendInvitation(ctx, p.bobID, smpcall.DefaultCallType))
	wait[*smpcall.RingingEvent](t, p.bob)
	_, callID, _ := p.aliceCore.CurrentCall(p.bobID)

	inject := func(from, to string, m *smp.Message) {
		m.Version = smp.ChatVersion
		b, err := m.Encode()
		require.NoError(t, err)
		require.NoError(t, p.net.Inject(from, to, b))
	}

	// Extra before the offer.
	inject("bob", "alice", &smp.Message{Event: smp.EventExtra, CallID: callID, Extra: &smp.CallExtraInfo{}})
	require.Equal(t, "x.call.extra: wrong call state CSTCallInvitationSent", wait[*smpcall.MessageErrorEvent](t, p.alice).ErrorMessage)
	// An offer for an old call id.
	inject("bob", "alice", &smp.Message{Event: smp.EventOffer, CallID: "an-old-call-id-1", Offer: &smp.CallOffer{CallType: smpcall.DefaultCallType, RTCSession: session}})
	me := wait[*smpcall.MessageErrorEvent](t, p.alice)
	require.Equal(t, "x.call.offer: wrong contact or callId", me.ErrorMessage)
	require.Equal(t, p.bobID, me.ContactID())
	// Malformed bytes.
	require.NoError(t, p.net.Inject("bob", "alice", []byte(`{"event":"x.call.offer","params":{"callId":"AAEC","offer":{"callType":"video"}}}`)))
	require.Contains(t, wait[*smpcall.MessageErrorEvent](t, p.alice).ErrorMessage, "params.offer.callType: expected a JSON object")
	require.NoError(t, p.net.Inject("bob", "alice", []byte{0xff, 0x00, '{'}))
	wait[*smpcall.MessageErrorEvent](t, p.alice)
	require.Equal(t, smpcall.StateInvitationSent, p.alice.CallState(p.bobID), "no state change")

	// A second answer (the link duplicates it).
	require.NoError(t, p.bob.SendOffer(ctx, p.aliceID, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType, RTCSession: session}))
	wait[*smpcall.CallOfferEvent](t, p.alice)
	require.NoError(t, p.net.SetFaults("alice", "bob", smp.Faults{Duplicate: 1}))
	require.NoError(t, p.alice.SendAnswer(ctx, p.bobID, session))
	wait[*smpcall.CallAnswerEvent](t, p.bob)
	require.Equal(t, "x.call.answer: wrong call state CSTCallNegotiated", wait[*smpcall.MessageErrorEvent](t, p.bob).ErrorMessage)
	require.Equal(t, smpcall.StateAnswerReceived, p.bob.CallState(p.aliceID), "no state change")
}

func TestClientRefusesCommandsOutOfState(t *testing.T) {
	p := newPair(t, nil, nil)
	var se *smpcall.StateError

	require.ErrorIs(t, p.alice.SendAnswer(ctx, p.bobID, session), smpcall.ErrNoCall)
	require.ErrorIs(t, p.alice.EndCall(ctx, p.bobID), smpcall.ErrNoCall)
	require.ErrorIs(t, p.alice.Reject(ctx, p.bobID), smpcall.ErrNoCall)
	require.ErrorIs(t, p.alice.SendCallStatus(ctx, p.bobID, smpcall.StatusConnected), smpcall.ErrNoCall)
	require.Error(t, p.alice.SendCallStatus(ctx, p.bobID, "checking"))
	require.Error(t, p.alice.SendInvitation(ctx, p.bobID, smpcall.CallType{Media: "radio"}))

	require.NoError(t, p.alice.SendInvitation(ctx, p.bobID, smpcall.DefaultCallType))
	err := p.alice.SendInvitation(ctx, p.bobID, smpcall.DefaultCallType)
	require.ErrorIs(t, err, smpcall.ErrInvalidState)
	require.ErrorAs(t, err, &se)
	require.Equal(t, smpcall.StateInvitationSent, se.State)
	require.ErrorIs(t, p.alice.SendExtraInfo(ctx, p.bobID, smpcall.WebRTCExtraInfo{}), smpcall.ErrInvalidState)
	require.ErrorIs(t, p.alice.SendAnswer(ctx, p.bobID, session), smpcall.ErrInvalidState)
	require.ErrorIs(t, p.alice.Reject(ctx, p.bobID), smpcall.ErrInvalidState)

	wait[*smpcall.RingingEvent](t, p.bob)
	require.ErrorIs(t, p.bob.SendAnswer(ctx, p.aliceID, session), smpcall.ErrInvalidState)
	require.ErrorIs(t, p.bob.SendExtraInfo(ctx, p.aliceID, smpcall.WebRTCExtraInfo{}), smpcall.ErrInvalidState)
	require.ErrorIs(t, p.bob.SendInvitation(ctx, p.aliceID, smpcall.DefaultCallType), smpcall.ErrInvalidState)
	// Nothing of the refused commands reached the wire.
	require.Equal(t, []string{"alice>bob x.call.inv delivered"}, p.wireLog())
}

// failingTransport makes one command fail as a core would refuse it.
type failingTransport struct {
	smpcall.Transport
	err error
}

func (f *failingTransport) Offer(context.Context, int64, smpcall.WebRTCCallOffer) error { return f.err }

func TestClientRollsBackOnTransportError(t *testing.T) {
	n := smp.NewNetwork(nil)
	defer n.Close()
	a, err := n.AddUser("alice", nil)
	require.NoError(t, err)
	b, err := n.AddUser("bob", nil)
	require.NoError(t, err)
	bobID, aliceID, err := n.Connect("alice", "bob")
	require.NoError(t, err)
	refusal := &smpcall.ChatError{Kind: smpcall.KindCallState, CurrentCallState: smpcall.TagOfferSent}
	bob, err := smpcall.NewClient(&failingTransport{Transport: b, err: refusal}, nil)
	require.NoError(t, err)
	defer bob.Close()
	require.NoError(t, a.Invite(ctx, bobID, smpcall.DefaultCallType))
	wait[*smpcall.RingingEvent](t, bob)

	err = bob.SendOffer(ctx, aliceID, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType, RTCSession: session})
	require.ErrorIs(t, err, smpcall.ErrCallState)
	var ce *smpcall.ChatError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, smpcall.TagOfferSent, ce.CurrentCallState)
	require.Equal(t, smpcall.StateInvitationReceived, bob.CallState(aliceID), "state put back")
}

func TestClientStaleInvitationDoesNotRing(t *testing.T) {
	// Bob's Client sees the invitation as received 181 s ago.
	p := newPair(t, nil, nil, func(name string, tr smpcall.Transport) smpcall.Transport {
		if name != "bob" {
			return tr
		}
		return mapEvents(tr, func(ev smpcall.Event) smpcall.Event {
			if inv, ok := ev.(*smpcall.CallInvitationEvent); ok {
				inv.Invitation.CallTs.Time = time.Now().Add(-181 * time.Second)
			}
			return ev
		})
	})
	require.NoError(t, p.alice.SendInvitation(ctx, p.bobID, smpcall.DefaultCallType))
	inv := wait[*smpcall.CallInvitationEvent](t, p.bob)
	// The state event and the invitation come; a RingingEvent must not.
	select {
	case ev := <-p.bob.Events():
		_, rings := ev.(*smpcall.RingingEvent)
		require.False(t, rings, "stale invitation must not ring")
	case <-time.After(50 * time.Millisecond):
	}
	pending, err := p.bob.PendingInvitations(ctx)
	require.NoError(t, err)
	require.Len(t, pending, 1)
	require.Equal(t, inv.Invitation.CallUUID, pending[0].CallUUID)
	require.Equal(t, smpcall.StateInvitationReceived, p.bob.CallState(p.aliceID))
}

// A Client started after an invitation arrived learns it from the pending list.
func TestClientPendingInvitationsAfterRestart(t *testing.T) {
	n := smp.NewNetwork(nil)
	defer n.Close()
	a, _ := n.AddUser("alice", nil)
	b, _ := n.AddUser("bob", nil)
	bobID, aliceID, err := n.Connect("alice", "bob")
	require.NoError(t, err)
	require.NoError(t, a.Invite(ctx, bobID, smpcall.DefaultCallType))
	require.Eventually(t, func() bool { invs, _ := b.Invitations(ctx); return len(invs) == 1 }, waitTime, time.Millisecond)
	// Drain what the core announced before the Client existed.
	for len(b.Events()) > 0 {
		<-b.Events()
	}
	bob, err := smpcall.NewClient(&eventless{b}, nil)
	require.NoError(t, err)
	defer bob.Close()
	require.Equal(t, smpcall.StateNone, bob.CallState(aliceID))
	invs, err := bob.PendingInvitations(ctx)
	require.NoError(t, err)
	require.Len(t, invs, 1)
	require.Equal(t, smpcall.StateInvitationReceived, bob.CallState(aliceID))
	info, _ := bob.CallInfo(aliceID)
	require.NotNil(t, info.SharedKey)
	require.NoError(t, bob.SendOffer(ctx, aliceID, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType, RTCSession: session}))
}

// eventless hides the events the core queued before the Client started, as a
// restarted process would not see them.
type eventless struct{ *smp.Core }

func (e *eventless) Events() <-chan smpcall.Event { return nil }

func TestClientCloseEndsCalls(t *testing.T) {
	p := newPair(t, nil, nil)
	require.NoError(t, p.alice.SendInvitation(ctx, p.bobID, smpcall.DefaultCallType))
	wait[*smpcall.RingingEvent](t, p.bob)
	require.NoError(t, p.alice.Close())
	require.NoError(t, p.alice.Close(), "second Close")
	waitState(t, p.bob, smpcall.StateEnded)
	for range p.alice.Events() { // closed: the loop ends
	}
	require.ErrorIs(t, p.alice.SendInvitation(ctx, p.bobID, smpcall.DefaultCallType), smpcall.ErrClosed)
	_, err := p.alice.PendingInvitations(ctx)
	require.ErrorIs(t, err, smpcall.ErrClosed)
}

func TestClientTransportGoneEndsCalls(t *testing.T) {
	p := newPair(t, nil, nil)
	require.NoError(t, p.alice.SendInvitation(ctx, p.bobID, smpcall.DefaultCallType))
	waitState(t, p.alice, smpcall.StateInvitationSent)
	require.NoError(t, p.aliceCore.Close())
	ended := waitState(t, p.alice, smpcall.StateEnded)
	require.Equal(t, smpcall.ReasonTransportLost, ended.Reason)
}

func TestNewClientNilTransport(t *testing.T) {
	_, err := smpcall.NewClient(nil, nil)
	require.Error(t, err)
}

// Many concurrent commands on different contacts are safe; on one contact
// they serialize and exactly one invitation wins.
func TestClientConcurrentCommands(t *testing.T) {
	p := newPair(t, nil, nil)
	var wg sync.WaitGroup
	var okCount, refused int
	var mu sync.Mutex
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.alice.SendInvitation(ctx, p.bobID, smpcall.DefaultCallType)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				okCount++
			} else if errors.Is(err, smpcall.ErrInvalidState) {
				refused++
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, okCount)
	require.Equal(t, 7, refused)
}
