package netsim

import (
	"context"
	"testing"
	"testing/cryptotest"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRawCallClean(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cryptotest.SetGlobalRandom(t, 7)
		p, _ := ProfileByName("wan-50ms-5pct")
		n, err := New(t, p, 1)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		res, err := RawCall(ctx, n, RawOptions{Media: 2 * time.Second, Audio: true, VideoFrameSize: 3000, BothWays: true})
		require.NoError(t, err)
		t.Logf("%+v", res)
		t.Logf("%+v", n.Stats())
	})
}
