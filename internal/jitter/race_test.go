//go:build race

package jitter

// raceEnabled shortens the property test under the race detector, which
// makes it about ten times slower.
const raceEnabled = true
