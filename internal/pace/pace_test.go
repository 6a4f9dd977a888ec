package pace

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestUntil(t *testing.T) {
	closed := errors.New("closed")
	require.NoError(t, Until(context.Background(), time.Now().Add(-time.Second), nil, closed))
	start := time.Now()
	require.NoError(t, Until(context.Background(), start.Add(20*time.Millisecond), nil, closed))
	require.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, Until(ctx, time.Now().Add(time.Hour), nil, closed), context.Canceled)
	done := make(chan struct{})
	close(done)
	require.ErrorIs(t, Until(context.Background(), time.Now().Add(time.Hour), done, closed), closed)
}
