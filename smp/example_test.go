package smp_test

import (
	"context"
	"fmt"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/smp"
)

// Two users on the in-memory SMP network: Alice's core invites Bob, and the
// x.call.inv crosses as the exact chat message the SimpleX core sends.
func ExampleNetwork() {
	ctx := context.Background()
	n := smp.NewNetwork(&smp.NetworkConfig{Trace: func(t smp.Trace) {
		m, err := smp.DecodeMessage(t.Data)
		if err == nil {
			fmt.Println(t.From, "→", t.To, m.Event, t.Fate)
		}
	}})
	defer n.Close()
	alice, _ := n.AddUser("alice", nil)
	bob, _ := n.AddUser("bob", nil)
	bobAtAlice, _, _ := n.Connect("alice", "bob")

	if err := alice.Invite(ctx, bobAtAlice, smpcall.DefaultCallType); err != nil {
		fmt.Println(err)
		return
	}
	for ev := range bob.Events() {
		if inv, ok := ev.(*smpcall.CallInvitationEvent); ok {
			fmt.Println("bob's core: invitation from", inv.Invitation.Contact.Name(), "with a key:", inv.Invitation.SharedKey != nil)
			break
		}
	}
	// Output:
	// alice → bob x.call.inv delivered
	// bob's core: invitation from alice with a key: true
}
