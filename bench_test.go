package smpcall_test

import (
	"context"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/smp"
)

// BenchmarkCallSetup measures one call from invitation to both sides
// connected, against the raw baseline in the same run: two plain pion peers
// on loopback exchanging offer and answer in memory until both connect.
func BenchmarkCallSetup(b *testing.B) {
	b.Run("raw-pion", func(b *testing.B) {
		for b.Loop() {
			rawPair(b)
		}
	})
	b.Run("smpcall", func(b *testing.B) {
		n := smp.NewNetwork(nil)
		defer n.Close()
		ac, _ := n.AddUser("alice", nil)
		bc, _ := n.AddUser("bob", nil)
		bobID, aliceID, _ := n.Connect("alice", "bob")
		alice, _ := smpcall.NewClient(ac, rtcConfig(nil))
		defer alice.Close()
		bob, _ := smpcall.NewClient(bc, rtcConfig(nil))
		defer bob.Close()
		ctx := context.Background()
		for b.Loop() {
			call, err := alice.PlaceCall(ctx, bobID, &smpcall.CallOptions{Media: smpcall.MediaAudio})
			if err != nil {
				b.Fatal(err)
			}
			for ev := range bob.Events() {
				if _, ok := ev.(*smpcall.RingingEvent); ok {
					break
				}
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
	})
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

func rawPair(b *testing.B) {
	api := webrtc.NewAPI(webrtc.WithSettingEngine(*loopbackSettings()))
	pa, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	defer pa.Close()
	pb, err := api.NewPeerConnection(webrtc.Configuration{})
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
