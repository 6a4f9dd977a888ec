package smpcall

import "time"

// SetCrossingWait shortens the crossing wait for a test and returns a
// function that puts it back.
func SetCrossingWait(d time.Duration) (restore func()) {
	old := crossingWait
	crossingWait = d
	return func() { crossingWait = old }
}
