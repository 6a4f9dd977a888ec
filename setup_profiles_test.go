package smpcall_test

import (
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall/internal/netsim"
)

// setupRuns is how many seeds TestSetupAgainstRawPion measures per
// profile: with loss, one lost DTLS flight costs a second, so fewer runs
// make the median noisy.
const setupRuns = 15

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestSetupAgainstRawPion measures call setup on every network profile in
// virtual time (no CPU contention: only the network's delays count), the
// SDK — invitation to both connected, the x.call.* messages through the smp
// loopback (instant), the SimpleX four-m-line session, ICE batching and
// frame encryption — against plain pion peers with pion's defaults on the
// same network and policy, offer to both connected, with in-process trickle
// (netsim.RawCall). It logs the medians; BENCHMARKS.md records them. It
// asserts every profile within 1.3x of pion's defaults (the target, 1.2x,
// is met by the recorded medians), and relay-only calls at least 5 times
// faster (pion's controlling agent waits 2 s before it accepts a relayed
// pair).
func TestSetupAgainstRawPion(t *testing.T) {
	type result struct {
		name     string
		sdk, raw time.Duration
	}
	var results []result
	for _, p := range netsim.Profiles() {
		t.Run(p.Name, func(t *testing.T) {
			var sdk, raw []time.Duration
			for seed := range int64(setupRuns) {
				synctest.Test(t, func(t *testing.T) {
					sc := startSimCall(t, p, simOptions{seed: seed + 1, media: "audio"})
					sdk = append(sdk, sc.setup)
					sc.end(t)
				})
				synctest.Test(t, func(t *testing.T) {
					n, err := netsim.New(t, p, seed+1)
					require.NoError(t, err)
					res, err := netsim.RawCall(ctxWithin(t, 10*time.Minute), n, netsim.RawOptions{RelayOnly: p.RelayOnly}) // plain pion has no DTLS deadline: at 20 % loss a handshake can take minutes
					require.NoError(t, err)
					raw = append(raw, res.Setup)
				})
			}
			r := result{p.Name, median(sdk), median(raw)}
			results = append(results, r)
			t.Logf("sdk %v, raw pion %v (medians of %d)", r.sdk, r.raw, setupRuns)
			if p.RelayOnly {
				require.LessOrEqual(t, 5*r.sdk, r.raw, "relay-only: at least 5x faster than pion's defaults")
			}
			// Medians of 15 seeds in virtual time. The target is 1.2x
			// (BENCHMARKS.md); the interleaving of goroutines still moves a
			// median (wan-100ms-5pct: 0.94-1.16x in eight runs), so the guard
			// against a regression is 1.3x.
			require.LessOrEqual(t, float64(r.sdk), 1.3*float64(r.raw), "within 1.3x of pion's defaults")
		})
	}
	t.Log("| profile | smpcall setup (median) | raw pion, defaults (median) | ratio |")
	t.Log("| --- | --- | --- | --- |")
	for _, r := range results {
		ratio := "— (no delay: 0 ms of virtual time)"
		if r.raw > 0 {
			ratio = fmt.Sprintf("%.2f×", float64(r.sdk)/float64(r.raw))
		}
		t.Logf("| %s | %d ms | %d ms | %s |", r.name, r.sdk.Milliseconds(), r.raw.Milliseconds(), ratio)
	}
}
