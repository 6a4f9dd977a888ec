package smpcall_test

import (
	"context"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/testnet"
	"github.com/smpcall/smpcall/smp"
)

// BenchmarkCallSetup measures one call from invitation to both sides
// connected, against the raw baseline in the same run: two plain pion peers
// on loopback exchanging offer and answer in memory until both connect.
func BenchmarkCallSetup(b *testing.B) {
	b.Run("raw-pion", func(b *testing.B) {
		for b.Loop() {
			rawPair(b, nil)
		}
	})
	b.Run("smpcall", func(b *testing.B) { benchSDKSetup(b, nil) })
	// Relay-only through a real coturn on 127.0.0.1, as default-configured
	// SimpleX apps connect: plain pion with its defaults waits 2 s before
	// it nominates a relayed pair (BENCHMARKS.md).
	b.Run("raw-pion-relay", func(b *testing.B) {
		turn := testnet.StartTURN(b)
		for b.Loop() {
			rawPair(b, &turn)
		}
	})
	b.Run("smpcall-relay", func(b *testing.B) {
		turn := testnet.StartTURN(b)
		benchSDKSetup(b, func(c *smpcall.Config) {
			c.ICEServers = []smpcall.ICEServer{{URLs: []string{turn.URL}, Username: turn.Username, Credential: turn.Credential}}
			c.RelayOnly = true
		})
	})
}

func benchSDKSetup(b *testing.B, mod func(*smpcall.Config)) {
	n := smp.NewNetwork(nil)
	defer n.Close()
	ac, _ := n.AddUser("alice", nil)
	bc, _ := n.AddUser("bob", nil)
	bobID, aliceID, _ := n.Connect("alice", "bob")
	alice, _ := smpcall.NewClient(ac, rtcConfig(mod))
	defer alice.Close()
	bob, _ := smpcall.NewClient(bc, rtcConfig(mod))
	defer bob.Close()
	ctx := context.Background()
	for b.Loop() {
		call, err := alice.PlaceCall(ctx, bobID, &smpcall.CallOptions{Media: smpcall.MediaAudio})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bob.NextInvitation(ctx); err != nil {
			b.Fatal(err)
		}
		answer, err := bob.AcceptCall(ctx, aliceID, nil)
		if err != nil {
			b.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if _, err := call.WaitConnected(wctx); err != nil {
			b.Fatal(err)
		}
		if _, err := answer.WaitConnected(wctx); err != nil {
			b.Fatal(err)
		}
		cancel()
		b.StopTimer()
		_ = call.End(ctx)
		<-answer.Done()
		drain(alice)
		drain(bob)
		b.StartTimer()
	}
}

func drain(c *smpcall.Client) {
	for {
		select {
		case <-c.Events():
		default:
			return
		}
	}
}

// rawPair connects two plain pion peers with pion's defaults; with turn,
// relay-only through it.
func rawPair(b *testing.B, turn *testnet.Server) {
	api := webrtc.NewAPI(webrtc.WithSettingEngine(*loopbackSettings()))
	var rc webrtc.Configuration
	if turn != nil {
		rc.ICEServers = []webrtc.ICEServer{{URLs: []string{turn.URL}, Username: turn.Username, Credential: turn.Credential}}
		rc.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	pa, err := api.NewPeerConnection(rc)
	if err != nil {
		b.Fatal(err)
	}
	defer pa.Close()
	pb, err := api.NewPeerConnection(rc)
	if err != nil {
		b.Fatal(err)
	}
	defer pb.Close()
	connected := func(pc *webrtc.PeerConnection) chan struct{} {
		ch := make(chan struct{})
		pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			if s == webrtc.PeerConnectionStateConnected {
				close(ch)
			}
		})
		return ch
	}
	ca, cb := connected(pa), connected(pb)
	if _, err := pa.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio); err != nil {
		b.Fatal(err)
	}
	offer, _ := pa.CreateOffer(nil)
	ga := webrtc.GatheringCompletePromise(pa)
	_ = pa.SetLocalDescription(offer)
	<-ga
	_ = pb.SetRemoteDescription(*pa.LocalDescription())
	answer, _ := pb.CreateAnswer(nil)
	gb := webrtc.GatheringCompletePromise(pb)
	_ = pb.SetLocalDescription(answer)
	<-gb
	_ = pa.SetRemoteDescription(*pb.LocalDescription())
	for _, ch := range []chan struct{}{ca, cb} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			b.Fatal("raw pair did not connect")
		}
	}
}
