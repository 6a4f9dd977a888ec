package smpcall_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/rtcpayload"
	"github.com/smpcall/smpcall/internal/testnet"
)

// Both sides relay-only through a real TURN server, as default-configured
// SimpleX apps are (protocol §6.7).
func TestRelayOnlyThroughTURN(t *testing.T) {
	turn := testnet.StartTURN(t)
	relay := func(c *smpcall.Config) {
		c.ICEServers = []smpcall.ICEServer{{URLs: []string{turn.URL}, Username: turn.Username, Credential: turn.Credential}}
		c.RelayOnly = true
	}
	var tp taps
	alice, bob, _ := newRTCPair(t, rtcConfig(relay), rtcConfig(relay), tp.wrap)
	sent := frames(40, 100, false)
	var got collector
	ac, err := alice.client.PlaceCall(ctx, alice.peerID, &smpcall.CallOptions{Media: smpcall.MediaAudio, Sinks: smpcall.Sinks{Mic: got.Audio()}})
	require.NoError(t, err)
	wait[*smpcall.RingingEvent](t, bob.client)
	bc, err := bob.client.AcceptCall(ctx, bob.peerID, &smpcall.CallOptions{Sources: smpcall.Sources{Mic: &audioList{listSource{frames: sent, every: 5 * time.Millisecond}}}})
	require.NoError(t, err)
	// Only relay candidates are offered.
	offer := waitTap[*smpcall.CallOfferEvent](t, &tp, "alice")
	cands, err := rtcpayload.DecodeCandidates(offer.Offer.RTCIceCandidates)
	require.NoError(t, err)
	for _, c := range cands {
		require.Contains(t, c.Candidate, "typ relay")
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ai, err := ac.WaitConnected(wctx)
	require.NoError(t, err)
	bi, err := bc.WaitConnected(wctx)
	require.NoError(t, err)
	require.True(t, ai.Relay, "alice: %s", ai)
	require.True(t, bi.Relay, "bob: %s", bi)
	require.Equal(t, "relay", ai.LocalType)
	require.Equal(t, "relay", bi.LocalType)
	requireDelivered(t, sent, &got)
}
