// Command signaling runs the whole signaling of one SimpleX call between two
// clients on the in-memory SMP loopback and prints every x.call.* message as
// it crosses the wire, then the state each side ended in. No media flows:
// the SDP strings are placeholders, as in the core's own tests.
//
//	go run ./examples/signaling
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/smp"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "signaling:", err)
		os.Exit(1)
	}
}

func run(w io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var printMu sync.Mutex
	net := smp.NewNetwork(&smp.NetworkConfig{Trace: func(t smp.Trace) {
		printMu.Lock()
		defer printMu.Unlock()
		fmt.Fprintf(w, "%-5s → %-5s %s\n", t.From, t.To, summarize(t.Data))
	}})
	defer net.Close()
	aliceCore, err := net.AddUser("alice", nil)
	if err != nil {
		return err
	}
	bobCore, err := net.AddUser("bob", nil)
	if err != nil {
		return err
	}
	bobAtAlice, aliceAtBob, err := net.Connect("alice", "bob")
	if err != nil {
		return err
	}
	alice, err := smpcall.NewClient(aliceCore, nil)
	if err != nil {
		return err
	}
	defer alice.Close()
	bob, err := smpcall.NewClient(bobCore, nil)
	if err != nil {
		return err
	}
	defer bob.Close()

	// Alice invites Bob. Bob is the WebRTC offerer; Alice answers.
	if err := alice.SendInvitation(ctx, bobAtAlice, smpcall.DefaultCallType); err != nil {
		return err
	}
	inv, err := waitFor[*smpcall.RingingEvent](ctx, bob.Events())
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "bob: %s is calling (%s)\n", inv.Invitation.Contact.Name(), inv.Invitation.CallType.Media)
	placeholder := smpcall.WebRTCSession{RTCSession: "{}", RTCIceCandidates: "[]"}
	if err := bob.SendOffer(ctx, aliceAtBob, smpcall.WebRTCCallOffer{CallType: smpcall.DefaultCallType, RTCSession: placeholder}); err != nil {
		return err
	}
	offer, err := waitFor[*smpcall.CallOfferEvent](ctx, alice.Events())
	if err != nil {
		return err
	}
	if err := alice.SendAnswer(ctx, bobAtAlice, placeholder); err != nil {
		return err
	}
	if _, err := waitFor[*smpcall.CallAnswerEvent](ctx, bob.Events()); err != nil {
		return err
	}
	if err := bob.SendExtraInfo(ctx, aliceAtBob, smpcall.WebRTCExtraInfo{RTCIceCandidates: "[]"}); err != nil {
		return err
	}
	if _, err := waitFor[*smpcall.CallExtraInfoEvent](ctx, alice.Events()); err != nil {
		return err
	}
	for _, c := range []struct {
		cl *smpcall.Client
		id int64
	}{{alice, bobAtAlice}, {bob, aliceAtBob}} {
		if err := c.cl.SendCallStatus(ctx, c.id, smpcall.StatusConnected); err != nil {
			return err
		}
	}
	bobInfo, _ := bob.CallInfo(aliceAtBob)
	fmt.Fprintf(w, "shared key agreed: %v (equal on both sides: %v)\n",
		offer.SharedKey != nil, offer.SharedKey != nil && bobInfo.SharedKey != nil && *offer.SharedKey == *bobInfo.SharedKey)
	fmt.Fprintf(w, "before end: alice %s, bob %s\n", alice.CallState(bobAtAlice), bob.CallState(aliceAtBob))
	if err := alice.EndCall(ctx, bobAtAlice); err != nil {
		return err
	}
	ended, err := waitFor[*smpcall.CallStateEvent](ctx, bob.Events(), func(e *smpcall.CallStateEvent) bool { return e.To == smpcall.StateEnded })
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "bob: call ended (%s)\n", ended.Reason)
	for _, it := range aliceCore.CallItems(bobAtAlice) {
		fmt.Fprintf(w, "alice's chat item: %s\n", it.Text)
	}
	for _, it := range bobCore.CallItems(aliceAtBob) {
		fmt.Fprintf(w, "bob's chat item:   %s\n", it.Text)
	}
	fmt.Fprintf(w, "final: alice %s, bob %s\n", alice.CallState(bobAtAlice), bob.CallState(aliceAtBob))
	return nil
}

// waitFor returns the next event of type T (that matches, if match is given).
func waitFor[T smpcall.Event](ctx context.Context, ch <-chan smpcall.Event, match ...func(T) bool) (T, error) {
	var zero T
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return zero, fmt.Errorf("events closed while waiting for %T", zero)
			}
			if t, ok := ev.(T); ok && (len(match) == 0 || match[0](t)) {
				return t, nil
			}
		case <-ctx.Done():
			return zero, fmt.Errorf("waiting for %T: %w", zero, ctx.Err())
		}
	}
}

// longString matches JSON strings longer than 40 characters.
var longString = regexp.MustCompile(`"([^"]{36})[^"]{5,}"`)

// summarize shows the message bytes as sent, shortening long strings (keys, SDP).
func summarize(data []byte) string {
	return longString.ReplaceAllString(string(data), `"$1…"`)
}
