// Package pace waits for media frames to become due, for the file and
// silence sources that play in real time.
package pace

import (
	"context"
	"time"
)

// Until blocks until due, and returns nil then; or ctx.Err() if ctx ends
// first, or closedErr if done is closed first. A due time in the past
// returns at once.
func Until(ctx context.Context, due time.Time, done <-chan struct{}, closedErr error) error {
	d := time.Until(due)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
		return closedErr
	}
}
