package netsim

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"testing/cryptotest"
	"testing/synctest"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
)

// setupVariants are the ICE settings RawCall's setup is measured with.
var setupVariants = []struct {
	name      string
	configure func(Side, *webrtc.SettingEngine)
}{
	{"pion-defaults", nil},
	{"no-accept-wait", noAcceptWait},
	{"no-accept-wait-dtls250", func(s Side, se *webrtc.SettingEngine) {
		noAcceptWait(s, se)
		se.SetDTLSRetransmissionInterval(250 * time.Millisecond)
	}},
}

// BenchmarkRawSetup measures, in wall-clock time, how long plain pion takes
// from A's offer to both sides connected on each profile (custom metrics
// setup-ms and ice-ms, the mean per call). Run it with
//
//	go test -run XXX -bench RawSetup ./internal/netsim/
//
// TestRawSetupVirtual gives the same figures in virtual time, free of CPU
// contention.
func BenchmarkRawSetup(b *testing.B) {
	for _, p := range Profiles() {
		for _, v := range setupVariants {
			b.Run(p.Name+"/"+v.name, func(b *testing.B) {
				var setup, ice time.Duration
				seed := int64(0)
				for b.Loop() {
					seed++
					n, err := New(b, p, seed)
					require.NoError(b, err)
					// See callCtx: under heavy loss pion's DTLS can take minutes.
					ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
					res, err := RawCall(ctx, n, RawOptions{RelayOnly: p.RelayOnly, Configure: v.configure})
					cancel()
					require.NoError(b, err)
					require.NoError(b, n.Close())
					setup += res.Setup
					ice += res.ICEConnected
				}
				b.ReportMetric(float64(setup.Microseconds())/1000/float64(b.N), "setup-ms")
				b.ReportMetric(float64(ice.Microseconds())/1000/float64(b.N), "ice-ms")
			})
		}
	}
}

// TestRawSetupVirtual measures RawCall's setup on every profile, with
// pion's defaults and without acceptance waits, in virtual time: NETSIM_RUNS
// calls (default 3) per case, each with its own seed for the network and
// for crypto/rand. It logs min/median/max and checks what pion's
// acceptance wait does: as the controlling agent pion accepts a relayed
// pair only 2 s after it started checking (RelayAcceptanceMinWait), so a
// relay-only call never connects sooner, and does without the wait.
func TestRawSetupVirtual(t *testing.T) {
	runs := 3
	if s := os.Getenv("NETSIM_RUNS"); s != "" {
		var err error
		runs, err = strconv.Atoi(s)
		require.NoError(t, err)
	}
	for _, p := range Profiles() {
		for _, v := range setupVariants {
			t.Run(p.Name+"/"+v.name, func(t *testing.T) {
				var setups, ices []time.Duration
				for seed := range runs {
					synctest.Test(t, func(t *testing.T) {
						cryptotest.SetGlobalRandom(t, uint64(seed))
						n := newNet(t, p, int64(seed))
						res, err := RawCall(callCtx(t), n, RawOptions{RelayOnly: p.RelayOnly, Configure: v.configure})
						require.NoError(t, err)
						setups = append(setups, res.Setup)
						ices = append(ices, res.ICEConnected)
					})
				}
				t.Logf("setup %s, ICE %s (min/median/max of %d)", spread(setups), spread(ices), runs)
				if p.RelayOnly {
					if v.name == "pion-defaults" {
						require.GreaterOrEqual(t, slices.Min(ices), 2*time.Second, "pion waits 2 s before accepting a relayed pair")
					} else {
						require.Less(t, slices.Max(ices), 2*time.Second, "without the wait a relay-only call connects sooner")
					}
				}
			})
		}
	}
}

func spread(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 0, 64) }
	return fmt.Sprintf("%s/%s/%s ms", ms(s[0]), ms(s[len(s)/2]), ms(s[len(s)-1]))
}
