package smpcall_test

import (
	"context"
	"fmt"
	"time"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/smp"
)

// Two users on the in-memory SMP loopback run the signaling of a call: Alice
// invites, Bob (the WebRTC offerer) accepts with an offer, Alice answers, and
// both agree on the media key.
func Example() {
	ctx := context.Background()
	net := smp.NewNetwork(nil)
	defer net.Close()
	aliceCore, _ := net.AddUser("alice", nil)
	bobCore, _ := net.AddUser("bob", nil)
	bobAtAlice, aliceAtBob, _ := net.Connect("alice", "bob")

	alice, _ := smpcall.NewClient(aliceCore, nil)
	defer alice.Close()
	bob, _ := smpcall.NewClient(bobCore, nil)
	defer bob.Close()

	// The SDP strings are placeholders here; Client.Call/Accept make real ones.
	session := smpcall.WebRTCSession{RTCSession: "offer", RTCIceCandidates: "[]"}

	_ = alice.SendInvitation(ctx, bobAtAlice, smpcall.DefaultCallType)
	ring := next[*smpcall.RingingEvent](bob)
	fmt.Println("bob: incoming", ring.Invitation.CallType.Media, "call from", ring.Invitation.Contact.Name())

	_ = bob.SendOffer(ctx, aliceAtBob, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType, RTCSession: session})
	offer := next[*smpcall.CallOfferEvent](alice)
	fmt.Println("alice: offer received, frame encryption:", offer.SharedKey != nil)

	_ = alice.SendAnswer(ctx, bobAtAlice, session)
	next[*smpcall.CallAnswerEvent](bob)
	bobCall, _ := bob.CallInfo(aliceAtBob)
	fmt.Println("same key on both sides:", *bobCall.SharedKey == *offer.SharedKey)
	fmt.Println("alice:", alice.CallState(bobAtAlice), "bob:", bob.CallState(aliceAtBob))

	_ = bob.EndCall(ctx, aliceAtBob)
	ended := next[*smpcall.CallStateEvent](alice, func(e *smpcall.CallStateEvent) bool { return e.To == smpcall.StateEnded })
	fmt.Println("alice: call", ended.Reason)
	// Output:
	// bob: incoming video call from alice
	// alice: offer received, frame encryption: true
	// same key on both sides: true
	// alice: negotiated bob: answerReceived
	// alice: call remote_hangup
}

// Declining a call sends nothing to the caller, as in the SimpleX apps: the
// caller keeps ringing until it hangs up.
func ExampleClient_Reject() {
	ctx := context.Background()
	net := smp.NewNetwork(nil)
	defer net.Close()
	aliceCore, _ := net.AddUser("alice", nil)
	bobCore, _ := net.AddUser("bob", nil)
	bobAtAlice, aliceAtBob, _ := net.Connect("alice", "bob")
	alice, _ := smpcall.NewClient(aliceCore, nil)
	defer alice.Close()
	bob, _ := smpcall.NewClient(bobCore, nil)
	defer bob.Close()

	_ = alice.SendInvitation(ctx, bobAtAlice, smpcall.CallType{Media: smpcall.MediaAudio})
	next[*smpcall.RingingEvent](bob)
	_ = bob.Reject(ctx, aliceAtBob)
	fmt.Println("bob:", bob.CallState(aliceAtBob), "alice:", alice.CallState(bobAtAlice))
	_ = alice.EndCall(ctx, bobAtAlice)
	fmt.Println("bob's core:", next[*smpcall.MessageErrorEvent](bob).ErrorMessage)
	fmt.Println(bobCore.CallItems(aliceAtBob)[0].Text)
	fmt.Println(aliceCore.CallItems(bobAtAlice)[0].Text)
	// Output:
	// bob: none alice: invitationSent
	// bob's core: x.call.end: no current call
	// incoming call: rejected
	// outgoing call: missed
}

// next returns the next event of type T from the client (that matches),
// giving up after five seconds.
func next[T smpcall.Event](c *smpcall.Client, match ...func(T) bool) T {
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-c.Events():
			if v, ok := ev.(T); ok && (len(match) == 0 || match[0](v)) {
				return v
			}
		case <-timeout:
			var zero T
			return zero
		}
	}
}
