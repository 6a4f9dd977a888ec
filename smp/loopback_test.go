package smp

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
)

type traceLog struct {
	mu sync.Mutex
	ts []Trace
}

func (l *traceLog) add(t Trace) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ts = append(l.ts, t)
}

func (l *traceLog) snapshot() []Trace {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Trace(nil), l.ts...)
}

func (l *traceLog) events(fate Fate) []string {
	var out []string
	for _, t := range l.snapshot() {
		if t.Fate == fate {
			m, err := DecodeMessage(t.Data)
			if err != nil {
				out = append(out, "?")
				continue
			}
			out = append(out, t.From+">"+t.To+" "+m.Event)
		}
	}
	return out
}

func newNet(t *testing.T, seed uint64) (*Network, *traceLog, *Core, *Core) {
	log := &traceLog{}
	n := NewNetwork(&NetworkConfig{Seed: seed, Trace: log.add})
	t.Cleanup(func() { require.NoError(t, n.Close()) })
	a, err := n.AddUser("alice", nil)
	require.NoError(t, err)
	b, err := n.AddUser("bob", nil)
	require.NoError(t, err)
	ida, idb, err := n.Connect("alice", "bob")
	require.NoError(t, err)
	require.Equal(t, int64(1), ida)
	require.Equal(t, int64(1), idb)
	return n, log, a, b
}

func TestNetworkSetup(t *testing.T) {
	n, _, a, _ := newNet(t, 1)
	require.Equal(t, []string{"alice", "bob"}, n.Users())
	require.Same(t, a, n.Core("alice"))
	require.Nil(t, n.Core("carol"))
	_, err := n.AddUser("alice", nil)
	require.Error(t, err)
	_, err = n.AddUser("", nil)
	require.Error(t, err)
	_, _, err = n.Connect("alice", "bob")
	require.Error(t, err)
	_, _, err = n.Connect("alice", "alice")
	require.Error(t, err)
	_, err = n.AddUser("carol", nil)
	require.NoError(t, err)
	ida, idc, err := n.Connect("alice", "carol")
	require.NoError(t, err)
	require.Equal(t, int64(2), ida)
	require.Equal(t, int64(1), idc)
	require.Equal(t, int64(2), n.ContactID("alice", "carol"))
	require.Equal(t, int64(0), n.ContactID("bob", "carol"))
	require.Len(t, a.Contacts(), 2)
	require.Error(t, n.SetFaults("bob", "carol", Faults{}))
	require.Error(t, n.SetOnline("dave", false))
	require.Error(t, n.Inject("bob", "carol", nil))
}

// A whole call between two cores: every message crosses as bytes; items go
// through the statuses of protocol §9.
func TestNetworkCall(t *testing.T) {
	_, log, a, b := newNet(t, 1)
	require.NoError(t, a.Invite(ctx, 1, smpcall.DefaultCallType))
	inv := next[*smpcall.CallInvitationEvent](t, b)
	require.NoError(t, b.Offer(ctx, 1, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType, RTCSession: smpcall.WebRTCSession{RTCSession: "o", RTCIceCandidates: "[]"}}))
	offer := next[*smpcall.CallOfferEvent](t, a)
	require.Equal(t, *inv.Invitation.SharedKey, *offer.SharedKey)
	require.NoError(t, a.Answer(ctx, 1, smpcall.WebRTCSession{RTCSession: "a", RTCIceCandidates: "[]"}))
	next[*smpcall.CallAnswerEvent](t, b)
	require.NoError(t, b.Extra(ctx, 1, smpcall.WebRTCExtraInfo{RTCIceCandidates: "x"}))
	next[*smpcall.CallExtraInfoEvent](t, a)
	require.NoError(t, a.Status(ctx, 1, smpcall.StatusConnected))
	require.NoError(t, b.Status(ctx, 1, smpcall.StatusConnected))
	require.NoError(t, b.End(ctx, 1))
	next[*smpcall.CallEndedEvent](t, a)
	require.Equal(t, []string{"alice>bob x.call.inv", "bob>alice x.call.offer", "alice>bob x.call.answer", "bob>alice x.call.extra", "bob>alice x.call.end"}, log.events(Delivered))

	require.Equal(t, []smpcall.CICallStatus{smpcall.CIStatusEnded}, statuses(a.CallItems(1)))
	require.Equal(t, "outgoing call: ended (00:00)", a.CallItems(1)[0].Text)
	require.Equal(t, "incoming call: ended (00:00)", b.CallItems(1)[0].Text)
}

func statuses(items []smpcall.CallItem) []smpcall.CICallStatus {
	var out []smpcall.CICallStatus
	for _, it := range items {
		out = append(out, it.Status)
	}
	return out
}

// Reject sends nothing; the caller keeps ringing until it ends, and the
// callee's core then reports "no current call" (protocol §4.4).
func TestNetworkRejectSendsNothing(t *testing.T) {
	_, log, a, b := newNet(t, 1)
	require.NoError(t, a.Invite(ctx, 1, smpcall.DefaultCallType))
	next[*smpcall.CallInvitationEvent](t, b)
	require.NoError(t, b.Reject(ctx, 1))
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, []string{"alice>bob x.call.inv"}, log.events(Delivered))
	mustState(t, a, 1, smpcall.TagInvitationSent)
	mustState(t, b, 1, "")
	require.Equal(t, "incoming call: rejected", b.CallItems(1)[0].Text)
	require.NoError(t, a.End(ctx, 1))
	require.Equal(t, "x.call.end: no current call", messageError(t, b))
	require.Equal(t, "outgoing call: missed", a.CallItems(1)[0].Text)
}

func TestNetworkEndBeforeOffer(t *testing.T) {
	_, _, a, b := newNet(t, 1)
	require.NoError(t, a.Invite(ctx, 1, smpcall.DefaultCallType))
	next[*smpcall.CallInvitationEvent](t, b)
	require.NoError(t, a.End(ctx, 1))
	next[*smpcall.CallEndedEvent](t, b)
	mustState(t, b, 1, "")
	require.Equal(t, "incoming call: missed", b.CallItems(1)[0].Text)
	require.Equal(t, "outgoing call: missed", a.CallItems(1)[0].Text)
	require.ErrorIs(t, b.Offer(ctx, 1, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType}), smpcall.ErrNoCurrentCall)
}

// A new invitation replaces the call: the old item is closed as if
// disconnected and nothing is sent for it.
func TestNetworkReinviteReplaces(t *testing.T) {
	_, log, a, b := newNet(t, 1)
	require.NoError(t, a.Invite(ctx, 1, smpcall.DefaultCallType))
	first := next[*smpcall.CallInvitationEvent](t, b)
	require.NoError(t, a.Invite(ctx, 1, smpcall.CallType{Media: smpcall.MediaAudio}))
	second := next[*smpcall.CallInvitationEvent](t, b)
	require.NotEqual(t, first.Invitation.CallUUID, second.Invitation.CallUUID)
	require.Nil(t, second.Invitation.SharedKey)
	require.Equal(t, []smpcall.CICallStatus{smpcall.CIStatusMissed, smpcall.CIStatusPending}, statuses(a.CallItems(1)))
	require.Equal(t, []smpcall.CICallStatus{smpcall.CIStatusMissed, smpcall.CIStatusPending}, statuses(b.CallItems(1)))
	require.Equal(t, []string{"alice>bob x.call.inv", "alice>bob x.call.inv"}, log.events(Delivered))
}

func TestFaultDrop(t *testing.T) {
	n, log, a, b := newNet(t, 1)
	require.NoError(t, n.SetFaults("alice", "bob", Faults{Drop: 1}))
	require.NoError(t, a.Invite(ctx, 1, smpcall.DefaultCallType))
	require.Eventually(t, func() bool { return len(log.events(Dropped)) == 1 }, waitTime, time.Millisecond)
	mustState(t, b, 1, "")
	require.Empty(t, log.events(Delivered))
}

func TestFaultDuplicate(t *testing.T) {
	n, log, a, b := newNet(t, 1)
	require.NoError(t, a.Invite(ctx, 1, smpcall.DefaultCallType))
	next[*smpcall.CallInvitationEvent](t, b)
	require.NoError(t, b.Offer(ctx, 1, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType}))
	next[*smpcall.CallOfferEvent](t, a)
	require.NoError(t, n.SetFaults("alice", "bob", Faults{Duplicate: 1}))
	require.NoError(t, a.Answer(ctx, 1, smpcall.WebRTCSession{}))
	next[*smpcall.CallAnswerEvent](t, b)
	// The duplicate is refused by the core's state check and changes nothing.
	require.Equal(t, "x.call.answer: wrong call state CSTCallNegotiated", messageError(t, b))
	mustState(t, b, 1, smpcall.TagNegotiated)
	require.Equal(t, []string{"alice>bob x.call.answer"}, log.events(Duplicated))
}

func TestFaultDelay(t *testing.T) {
	n, _, a, b := newNet(t, 1)
	const delay = 80 * time.Millisecond
	require.NoError(t, n.SetFaults("alice", "bob", Faults{Delay: delay, Jitter: 10 * time.Millisecond}))
	start := time.Now()
	require.NoError(t, a.Invite(ctx, 1, smpcall.DefaultCallType))
	next[*smpcall.CallInvitationEvent](t, b)
	require.GreaterOrEqual(t, time.Since(start), delay) // a lower bound only: never flaky
}

func TestFaultReorder(t *testing.T) {
	n, log, a, b := newNet(t, 1)
	require.NoError(t, a.Invite(ctx, 1, smpcall.DefaultCallType))
	next[*smpcall.CallInvitationEvent](t, b)
	// Hold the offer back; the extra that follows overtakes it.
	require.NoError(t, n.SetFaults("bob", "alice", Faults{Reorder: 1, HoldTimeout: time.Minute}))
	require.NoError(t, b.Offer(ctx, 1, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType}))
	require.NoError(t, n.SetFaults("bob", "alice", Faults{}))
	require.NoError(t, b.Extra(ctx, 1, smpcall.WebRTCExtraInfo{RTCIceCandidates: "early"}))
	require.Equal(t, "x.call.extra: wrong call state CSTCallInvitationSent", messageError(t, a))
	next[*smpcall.CallOfferEvent](t, a)
	require.Equal(t, []string{"alice>bob x.call.inv", "bob>alice x.call.extra", "bob>alice x.call.offer"}, log.events(Delivered))
}

func TestFaultReorderHoldTimeout(t *testing.T) {
	n, _, a, b := newNet(t, 1)
	require.NoError(t, n.SetFaults("alice", "bob", Faults{Reorder: 1, HoldTimeout: 20 * time.Millisecond}))
	require.NoError(t, a.Invite(ctx, 1, smpcall.DefaultCallType))
	// No successor comes: the held message is delivered after the timeout.
	next[*smpcall.CallInvitationEvent](t, b)
}

func TestOfflinePeerGetsMessagesLater(t *testing.T) {
	n, log, a, b := newNet(t, 1)
	require.NoError(t, n.SetOnline("bob", false))
	require.NoError(t, a.Invite(ctx, 1, smpcall.DefaultCallType))
	time.Sleep(50 * time.Millisecond)
	require.Empty(t, log.events(Delivered))
	mustState(t, b, 1, "")
	require.NoError(t, n.SetOnline("bob", true))
	next[*smpcall.CallInvitationEvent](t, b)
	// An offline sender's messages wait too.
	require.NoError(t, n.SetOnline("bob", false))
	require.NoError(t, b.Offer(ctx, 1, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType}))
	time.Sleep(50 * time.Millisecond)
	mustState(t, a, 1, smpcall.TagInvitationSent)
	require.NoError(t, n.SetOnline("bob", true))
	next[*smpcall.CallOfferEvent](t, a)
}

// Faults are seeded: the same seed gives the same fates.
func TestFaultsSeeded(t *testing.T) {
	run := func(seed uint64) []Fate {
		n, log, a, _ := newNet(t, seed)
		require.NoError(t, n.SetFaults("alice", "bob", Faults{Drop: 0.5}))
		for range 20 {
			require.NoError(t, a.Invite(ctx, 1, smpcall.DefaultCallType))
		}
		require.Eventually(t, func() bool { return len(log.snapshot()) == 20 }, waitTime, time.Millisecond)
		fates := make([]Fate, 20)
		for _, tr := range log.snapshot() {
			fates[tr.Seq-1] = tr.Fate
		}
		return fates
	}
	first := run(42)
	require.Equal(t, first, run(42))
	require.Contains(t, first, Dropped)
	require.Contains(t, first, Delivered)
}

func TestInjectGarbage(t *testing.T) {
	n, _, _, b := newNet(t, 1)
	require.NoError(t, n.Inject("alice", "bob", []byte(`{"event":"x.call.end","params":{}}`)))
	require.Equal(t, "smp: x.call.end: params.callId: required field missing", messageError(t, b))
}
