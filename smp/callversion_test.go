package smp

import (
	"bytes"
	"encoding/json"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
)

// vectorRand feeds a Core the bytes that make its call id and X25519 key
// those of the first dh-vectors case, then zeros. It relies on the order in
// which a Core reads its Rand: the caller's Invite reads the call id (16),
// the callUUID (16), then the private key (32); the callee, on the
// invitation, the callUUID (16) then its private key (32).
func vectorRand(t *testing.T, caller bool) io.Reader {
	tc := dhCases(t)[0]
	var b []byte
	if caller {
		b = append(b, unhex(t, tc.V2.CallIDHex)...)
		b = append(b, make([]byte, 16)...)
		b = append(b, unhex(t, tc.Caller.PrivateKeyRawHex)...)
	} else {
		b = append(b, make([]byte, 16)...)
		b = append(b, unhex(t, tc.Callee.PrivateKeyRawHex)...)
	}
	return io.MultiReader(bytes.NewReader(b), zeroReader{})
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// versionCall runs an encrypted call's invitation and offer between a
// caller and a callee with the given CallVersion2 settings and returns
// both sides' media keys and the two messages as they crossed the network.
func versionCall(t *testing.T, callerV2, calleeV2 bool) (callerKey, calleeKey string, inv, offer map[string]any) {
	t.Helper()
	var mu sync.Mutex
	wire := map[string]map[string]any{}
	n := NewNetwork(&NetworkConfig{Trace: func(tr Trace) {
		var m struct {
			Event  string         `json:"event"`
			Params map[string]any `json:"params"`
		}
		if json.Unmarshal(tr.Data, &m) == nil {
			mu.Lock()
			wire[m.Event] = m.Params
			mu.Unlock()
		}
	}})
	defer n.Close()
	alice, err := n.AddUser("alice", &CoreConfig{Rand: vectorRand(t, true), CallVersion2: callerV2})
	require.NoError(t, err)
	bob, err := n.AddUser("bob", &CoreConfig{Rand: vectorRand(t, false), CallVersion2: calleeV2})
	require.NoError(t, err)
	bobID, aliceID, err := n.Connect("alice", "bob")
	require.NoError(t, err)
	require.NoError(t, alice.Invite(ctx, bobID, smpcall.DefaultCallType))
	ring := nextEvent[*smpcall.CallInvitationEvent](t, bob)
	require.NotNil(t, ring.Invitation.SharedKey)
	require.NoError(t, bob.Offer(ctx, aliceID, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType,
		RTCSession: smpcall.WebRTCSession{RTCSession: "sdp", RTCIceCandidates: "ice"}}))
	off := nextEvent[*smpcall.CallOfferEvent](t, alice)
	require.NotNil(t, off.SharedKey)
	mu.Lock()
	defer mu.Unlock()
	return off.SharedKey.Encode(), ring.Invitation.SharedKey.Encode(), wire[EventInvitation]["invitation"].(map[string]any), wire[EventOffer]["offer"].(map[string]any)
}

func nextEvent[T smpcall.Event](t *testing.T, c *Core) T {
	t.Helper()
	timeout := time.After(waitTime)
	for {
		select {
		case ev := <-c.Events():
			if v, ok := ev.(T); ok {
				return v
			}
			if me, ok := ev.(*smpcall.MessageErrorEvent); ok {
				t.Fatalf("message error: %s", me.ErrorMessage)
			}
		case <-timeout:
			var zero T
			t.Fatalf("no %T", zero)
			return zero
		}
	}
}

// Two Cores with version 2 on agree on version 2 over the wire and on the
// HKDF media key, byte for byte the committed vector.
func TestCallVersion2PeersAgreeOnTheHKDFKey(t *testing.T) {
	tc := dhCases(t)[0]
	callerKey, calleeKey, inv, offer := versionCall(t, true, true)
	require.Equal(t, "1-2", inv["callVRange"])
	require.EqualValues(t, 2, offer["callVersion"])
	require.Equal(t, tc.V2.SharedKey, callerKey)
	require.Equal(t, tc.V2.SharedKey, calleeKey)
}

// A version-2 peer and a version-1 peer (in either role) fall back to
// version 1: the raw X25519 output. With versions off nothing is sent.
func TestCallVersionFallsBackToTheRawKey(t *testing.T) {
	tc := dhCases(t)[0]
	for _, c := range []struct {
		name             string
		callerV2, callee bool
		sendsRange       bool
	}{
		{"v2 caller, v1 callee", true, false, true},
		{"v1 caller, v2 callee", false, true, false},
		{"both v1", false, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			callerKey, calleeKey, inv, offer := versionCall(t, c.callerV2, c.callee)
			_, hasRange := inv["callVRange"]
			require.Equal(t, c.sendsRange, hasRange)
			require.NotContains(t, offer, "callVersion", "a v1 callee never sends callVersion")
			require.Equal(t, tc.V1.SharedKey, callerKey)
			require.Equal(t, tc.V1.SharedKey, calleeKey)
		})
	}
}

// What a broken or hostile peer sends about versions is refused with a
// message error, never with a key the other side does not have.
func TestCallVersionRefusesWhatCannotAgree(t *testing.T) {
	peer, err := keyPairFromPrivate(make([]byte, 32))
	require.NoError(t, err)
	callee := func(v2 bool) (*Core, *manualPipe) {
		core := NewCore(smpcall.User{UserID: 1}, &CoreConfig{CallVersion2: v2})
		p := newManualPipe()
		require.NoError(t, core.AddContact(smpcall.Contact{ContactID: 7}, p))
		t.Cleanup(func() { core.Close() })
		return core, p
	}
	// An invitation whose range has no version in common.
	core, p := callee(true)
	p.deliver(t, &Message{Event: EventInvitation, CallID: "call-id-01234567", Invitation: &CallInvitation{
		CallType: smpcall.DefaultCallType, CallDHPubKey: &peer.pub, CallVRange: &CallVersionRange{3, 4}}})
	require.Equal(t, "x.call.inv: no call version in common (peer 3-4, ours 1-2)", messageError(t, core))
	_, _, ok := core.CurrentCall(7)
	require.False(t, ok)
	// The same invitation to a core with versions off: it ignores the range.
	core, p = callee(false)
	p.deliver(t, &Message{Event: EventInvitation, CallID: "call-id-01234567", Invitation: &CallInvitation{
		CallType: smpcall.DefaultCallType, CallDHPubKey: &peer.pub, CallVRange: &CallVersionRange{3, 4}}})
	inv := next[*smpcall.CallInvitationEvent](t, core)
	require.NotNil(t, inv.Invitation.SharedKey)
	mustState(t, core, 7, smpcall.TagInvitationReceived)
	require.NoError(t, core.Offer(ctx, 7, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType}))
	require.Nil(t, p.sent(t).Offer.CallVersion, "versions off: no callVersion")

	// An offer naming a version the caller did not offer.
	for _, v2 := range []bool{false, true} {
		caller := NewCore(smpcall.User{UserID: 1}, &CoreConfig{CallVersion2: v2})
		cp := newManualPipe()
		require.NoError(t, caller.AddContact(smpcall.Contact{ContactID: 3}, cp))
		require.NoError(t, caller.Invite(ctx, 3, smpcall.DefaultCallType))
		sent := cp.sent(t)
		bad := uint16(3)
		if !v2 {
			bad = 2
		}
		cp.deliver(t, &Message{Event: EventOffer, CallID: sent.CallID, Offer: &CallOffer{CallType: smpcall.DefaultCallType,
			RTCSession: smpcall.WebRTCSession{RTCSession: "s", RTCIceCandidates: "c"}, CallDHPubKey: &peer.pub, CallVersion: &bad}})
		require.Contains(t, messageError(t, caller), "is not in the offered range")
		mustState(t, caller, 3, smpcall.TagInvitationSent)
		require.NoError(t, caller.Close())
	}
}
