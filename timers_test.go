package smpcall_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
)

// The caller's ring timeout ends an unanswered call as missed and tells the
// peer with x.call.end, so its phone stops ringing too. Virtual time: the
// 60 s cost nothing.
func TestRingTimeoutEndsAsMissed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil, nil)
		require.NoError(t, p.alice.SendInvitation(ctx, p.bobID, smpcall.DefaultCallType))
		start := time.Now()
		wait[*smpcall.RingingEvent](t, p.bob)
		ended := waitWithin(t, p.alice, time.Hour, isEnd)
		require.Equal(t, smpcall.ReasonMissed, ended.Reason)
		require.Equal(t, 60*time.Second, time.Since(start).Round(time.Second))
		bobEnded := waitWithin(t, p.bob, time.Hour, isEnd)
		require.Equal(t, smpcall.ReasonMissed, bobEnded.Reason, "the caller gave up")
		synctest.Wait()
		require.Equal(t, []string{"alice>bob x.call.inv delivered", "alice>bob x.call.end delivered"}, p.wireLog())
	})
}

func isEnd(e *smpcall.CallStateEvent) bool { return e.To == smpcall.StateEnded }
