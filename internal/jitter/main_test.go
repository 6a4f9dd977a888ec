package jitter

import (
	"testing"

	"go.uber.org/goleak"
)

// TestPionNACK starts goroutines (pion's NACK generator, the simulated
// link's timers); none may outlive the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
