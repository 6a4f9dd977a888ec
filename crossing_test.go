package smpcall_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/smp"
)

var crossingRuns = flag.Int("crossing.runs", 250, "seeded runs of TestCrossingInvitations (RELIABILITY.md records a 1,000-run result)")

// One seeded run: Alice and Bob place calls to each other at random
// moments over links with random delay and jitter. Whatever the timing,
// exactly one call proceeds: both PlaceCall Calls connect to each other
// (one of them turned into the callee), every other invitation is absorbed,
// and the call ends cleanly.
func crossingRun(seed uint64) (invitations int, err error) {
	rng := rand.New(rand.NewPCG(seed, 0))
	var wire []string
	var wireMu sync.Mutex
	n := smp.NewNetwork(&smp.NetworkConfig{Seed: seed, Trace: func(tr smp.Trace) {
		ev := "?"
		if m, err := smp.DecodeMessage(tr.Data); err == nil {
			ev = m.Event + " " + string(m.CallID)[:4]
		}
		wireMu.Lock()
		wire = append(wire, tr.From+">"+tr.To+" "+ev)
		wireMu.Unlock()
	}})
	defer n.Close()
	ac, _ := n.AddUser("alice", nil)
	bc, _ := n.AddUser("bob", nil)
	bobID, aliceID, err := n.Connect("alice", "bob")
	if err != nil {
		return 0, err
	}
	// A random one-way delay per direction. No jitter: the loopback's
	// jitter reorders messages, which SMP never does (protocol §4.5).
	for _, dir := range [][2]string{{"alice", "bob"}, {"bob", "alice"}} {
		d := time.Duration(rng.IntN(40)) * time.Millisecond
		if err := n.SetFaults(dir[0], dir[1], smp.Faults{Delay: d}); err != nil {
			return 0, err
		}
	}
	cfg := rtcConfig(nil)
	acfg, bcfg := *cfg, *cfg
	if *crossingDebug {
		acfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("side", "alice")
		bcfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("side", "bob")
	}
	alice, err := smpcall.NewClient(ac, &acfg)
	if err != nil {
		return 0, err
	}
	defer alice.Close()
	bob, err := smpcall.NewClient(bc, &bcfg)
	if err != nil {
		return 0, err
	}
	defer bob.Close()

	delays := [2]time.Duration{time.Duration(rng.IntN(60)) * time.Millisecond, time.Duration(rng.IntN(60)) * time.Millisecond}
	var calls [2]*smpcall.Call
	var errs [2]error
	var wg sync.WaitGroup
	for i, side := range []struct {
		c  *smpcall.Client
		id int64
	}{{alice, bobID}, {bob, aliceID}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(delays[i])
			calls[i], errs[i] = side.c.PlaceCall(context.Background(), side.id, &smpcall.CallOptions{Media: smpcall.MediaAudio})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return 0, fmt.Errorf("side %d: place call: %w", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, k := range calls {
		if _, err := k.WaitConnected(ctx); err != nil {
			r0, e0 := calls[0].Reason()
			r1, e1 := calls[1].Reason()
			wireMu.Lock()
			defer wireMu.Unlock()
			st, cid, _ := ac.CurrentCall(bobID)
			wire = append(wire, fmt.Sprintf("alice core now: %s %q", st, string(cid)[:4]))
			for _, c := range []*smpcall.Client{alice, bob} {
				for len(c.Events()) > 0 {
					if me, ok := (<-c.Events()).(*smpcall.MessageErrorEvent); ok {
						wire = append(wire, "messageError: "+me.ErrorMessage)
					}
				}
			}
			return 0, fmt.Errorf("side %d did not connect: %w (alice: %s %v incoming=%v, bob: %s %v incoming=%v; states alice %s, bob %s; delays %v; wire %q)",
				i, err, r0, e0, calls[0].Incoming(), r1, e1, calls[1].Incoming(), alice.CallState(bobID), bob.CallState(aliceID), delays, wire)
		}
	}
	if calls[0].Incoming() == calls[1].Incoming() {
		return 0, fmt.Errorf("both calls are incoming=%v: they cannot be the two ends of one call", calls[0].Incoming())
	}
	_, id, ok := ac.CurrentCall(bobID)
	_, id2, ok2 := bc.CurrentCall(aliceID)
	if !ok || !ok2 || id != id2 {
		return 0, fmt.Errorf("the cores disagree on the call: %v %q / %v %q", ok, id, ok2, id2)
	}
	if err := calls[0].End(ctx); err != nil {
		return 0, err
	}
	select {
	case <-calls[1].Done():
	case <-ctx.Done():
		return 0, fmt.Errorf("the other side did not end")
	}
	if r, _ := calls[1].Reason(); r != smpcall.ReasonRemoteHangup {
		return 0, fmt.Errorf("the other side ended with %s", r)
	}
	wireMu.Lock()
	defer wireMu.Unlock()
	for _, w := range wire {
		if strings.Contains(w, "x.call.inv") {
			invitations++
		}
	}
	return invitations, nil
}

func TestCrossingInvitations(t *testing.T) {
	runs := *crossingRuns
	const parallel = 4
	var mu sync.Mutex
	var failed []string
	byInvitations := map[int]int{}
	seeds := make(chan uint64)
	var wg sync.WaitGroup
	start := time.Now()
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range seeds {
				invs, err := crossingRun(seed)
				mu.Lock()
				if err != nil {
					failed = append(failed, fmt.Sprintf("seed %d: %v (replay: go test -run TestCrossingInvitations -crossing.runs=1 -crossing.seed=%d)", seed, err, seed))
				} else {
					byInvitations[invs]++
				}
				mu.Unlock()
			}
		}()
	}
	first := uint64(1)
	if *crossingSeed != 0 {
		first = *crossingSeed
	}
	for s := range uint64(runs) {
		seeds <- first + s
	}
	close(seeds)
	wg.Wait()
	t.Logf("%d crossing runs in %v, %d failed; runs by x.call.inv messages sent (1: the second caller answered the ringing call; 3+: the invitations crossed): %v",
		runs, time.Since(start).Round(time.Millisecond), len(failed), byInvitations)
	for _, f := range failed {
		t.Error(f)
	}
}

var crossingDebug = flag.Bool("crossing.debug", false, "log both Clients of TestCrossingInvitations to stderr")

var crossingSeed = flag.Uint64("crossing.seed", 0, "first seed of TestCrossingInvitations (to replay one)")

// A SimpleX app does not know the crossing rule: its core simply replaces
// its own invitation with ours, and its user answers whatever rings. Whether
// the SDK re-invites at once (its name sorts first) or waits for a new
// invitation that never comes and then re-invites, the app ends up ringing
// the SDK's live invitation, and answering it connects.
func TestCrossingWithAnApp(t *testing.T) {
	defer smpcall.SetCrossingWait(time.Second)()
	for _, sdkName := range []string{"alice", "zed"} { // before and after "bob"
		t.Run(sdkName, func(t *testing.T) {
			n := smp.NewNetwork(nil)
			t.Cleanup(func() { _ = n.Close() })
			sc, _ := n.AddUser(sdkName, nil)
			ac, _ := n.AddUser("bob", nil)
			appAtSDK, sdkAtApp, err := n.Connect(sdkName, "bob")
			require.NoError(t, err)
			for _, dir := range [][2]string{{sdkName, "bob"}, {"bob", sdkName}} {
				require.NoError(t, n.SetFaults(dir[0], dir[1], smp.Faults{Delay: 20 * time.Millisecond}))
			}
			sdk, err := smpcall.NewClient(sc, rtcConfig(nil))
			require.NoError(t, err)
			t.Cleanup(func() { _ = sdk.Close() })
			app, err := smpcall.NewClient(ac, rtcConfig(nil))
			require.NoError(t, err)
			t.Cleanup(func() { _ = app.Close() })

			// Both call at once; the app's own invitation is low-level (no
			// crossing rule), as the apps' is.
			var wg sync.WaitGroup
			var sdkCall *smpcall.Call
			wg.Add(2)
			go func() {
				defer wg.Done()
				sdkCall, err = sdk.PlaceCall(ctx, appAtSDK, &smpcall.CallOptions{Media: smpcall.MediaAudio})
			}()
			go func() {
				defer wg.Done()
				_ = app.SendInvitation(ctx, sdkAtApp, smpcall.CallType{Media: smpcall.MediaAudio, Capabilities: smpcall.CallCapabilities{Encryption: true}})
			}()
			wg.Wait()
			require.NoError(t, err)

			// The app's user answers what rings, 300 ms after it rings,
			// again whenever a newer invitation replaces it.
			deadline := time.After(20 * time.Second)
			var appCall *smpcall.Call
			for appCall == nil || !connected(appCall) {
				select {
				case ev := <-app.Events():
					if _, ok := ev.(*smpcall.RingingEvent); ok {
						time.Sleep(300 * time.Millisecond)
						if k, err := app.AcceptCall(ctx, sdkAtApp, nil); err == nil {
							appCall = k
						}
					}
				case <-time.After(50 * time.Millisecond):
				case <-deadline:
					t.Fatalf("no connected call: sdk %s, app %s", sdk.CallState(appAtSDK), app.CallState(sdkAtApp))
				}
			}
			_, err = sdkCall.WaitConnected(ctxWithin(t, 10*time.Second))
			require.NoError(t, err)
			require.NoError(t, sdkCall.End(ctx))
			<-appCall.Done()
		})
	}
}

func connected(k *smpcall.Call) bool {
	select {
	case <-k.Connected():
		return true
	default:
		return false
	}
}
