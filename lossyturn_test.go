package smpcall_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/testnet"
)

// Video over a real coturn on 127.0.0.1, relay-only on both sides, through
// a UDP proxy that impairs what each side sends to the TURN server: with
// 50 ± 10 ms and 5 % loss (100 ms RTT) at least 95 % of the frames reach
// the sink, with reordering alone all of them, every one byte-identical, in
// order and decrypted (issue 8; TestNetworkMatrix does the same over
// simulated networks).
func TestVideoOverLossyTURN(t *testing.T) {
	turn := testnet.StartTURN(t)
	for _, tc := range []struct {
		name string
		imp  testnet.Impairment
		min  float64
	}{
		{"50ms-5pct-loss", testnet.Impairment{Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond, Loss: 0.05}, 95},
		{"50ms-reorder-only", testnet.Impairment{Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond, Reorder: 0.05}, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := testnet.NewLossyProxy(t, strings.TrimSuffix(strings.TrimPrefix(turn.URL, "turn:"), "?transport=udp"), tc.imp, 1)
			relay := func(c *smpcall.Config) {
				c.ICEServers = []smpcall.ICEServer{{URLs: []string{"turn:" + proxy.Addr + "?transport=udp"}, Username: turn.Username, Credential: turn.Credential}}
				c.RelayOnly = true
			}
			alice, bob, _ := newRTCPair(t, rtcConfig(relay), rtcConfig(relay), nil)
			const n = 180 // 6 s at 30 frames/s
			aVideo, bVideo := frames(n, 2500, true), frames(n, 2500, true)
			var aliceGot, bobGot collector
			ac, err := alice.client.PlaceCall(ctx, alice.peerID, &smpcall.CallOptions{Media: smpcall.MediaVideo,
				Sources: smpcall.Sources{Camera: &videoList{listSource{frames: aVideo, every: 33 * time.Millisecond}}},
				Sinks:   smpcall.Sinks{Camera: aliceGot.Video()}})
			require.NoError(t, err)
			inv, err := bob.client.NextInvitation(ctxWithin(t, waitTime))
			require.NoError(t, err)
			bc, err := bob.client.AcceptCall(ctx, inv.Contact.ContactID, &smpcall.CallOptions{
				Sources: smpcall.Sources{Camera: &videoList{listSource{frames: bVideo, every: 33 * time.Millisecond}}},
				Sinks:   smpcall.Sinks{Camera: bobGot.Video()}})
			require.NoError(t, err)
			info, err := ac.WaitConnected(ctxWithin(t, 30*time.Second))
			require.NoError(t, err)
			require.True(t, info.Relay)
			_, err = bc.WaitConnected(ctxWithin(t, 30*time.Second))
			require.NoError(t, err)
			time.Sleep(n*33*time.Millisecond + 2*time.Second)
			got := [2]int{delivered(t, aVideo, &bobGot), delivered(t, bVideo, &aliceGot)}
			for i, k := range []*smpcall.Call{bc, ac} {
				st := k.Stats().Streams[1]
				require.Zero(t, st.DecryptFailed)
				pct := 100 * float64(got[i]) / n
				t.Logf("%s: %d/%d video frames (%.1f %%), %d packets recovered, %d late, %d frames given up; proxy %+v",
					[]string{"alice→bob", "bob→alice"}[i], got[i], n, pct, st.PacketsRecovered, st.PacketsLate, st.FramesLost, proxy.Stats())
				require.GreaterOrEqual(t, pct, tc.min, fmt.Sprintf("%s direction %d", tc.name, i))
			}
			require.NoError(t, ac.End(ctx))
			<-bc.Done()
		})
	}
}
