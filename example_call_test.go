package smpcall_test

import (
	"context"
	"fmt"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/smp"
)

// A real WebRTC call on 127.0.0.1 between two clients on the SMP loopback:
// Alice places it, Bob accepts, both connect with frame encryption on.
func ExampleClient_PlaceCall() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	net := smp.NewNetwork(nil)
	defer net.Close()
	aliceCore, _ := net.AddUser("alice", nil)
	bobCore, _ := net.AddUser("bob", nil)
	bobAtAlice, _, _ := net.Connect("alice", "bob")

	// Stay on loopback, with no STUN/TURN servers (tests and examples only).
	se := &webrtc.SettingEngine{}
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	cfg := &smpcall.Config{ICEServers: []smpcall.ICEServer{}, SettingEngine: se}

	alice, _ := smpcall.NewClient(aliceCore, cfg)
	defer alice.Close()
	bob, _ := smpcall.NewClient(bobCore, cfg)
	defer bob.Close()

	call, err := alice.PlaceCall(ctx, bobAtAlice, &smpcall.CallOptions{Media: smpcall.MediaAudio})
	if err != nil {
		fmt.Println(err)
		return
	}
	inv, err := bob.NextInvitation(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("bob: incoming", inv.CallType.Media, "call from", inv.Contact.Name())
	answer, err := bob.AcceptCall(ctx, inv.Contact.ContactID, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	info, err := call.WaitConnected(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _ = answer.WaitConnected(ctx)
	fmt.Println("connected:", info.Protocol, info.LocalType, "relay:", info.Relay)
	fmt.Println("frame-encrypted:", call.Encrypted(), answer.Encrypted())
	_ = call.End(ctx)
	<-answer.Done()
	reason, _ := answer.Reason()
	fmt.Println("bob: call", reason)
	// Output:
	// bob: incoming audio call from alice
	// connected: udp host relay: false
	// frame-encrypted: true true
	// bob: call remote_hangup
}
