package smpcall_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/audio"
)

type audioFrame = audio.Frame

func audioSinkFunc(f func([]byte)) audio.Sink {
	return audio.SinkFunc(func(fr audio.Frame) error { f(fr.Data); return nil })
}

// waitCall returns the next event of type T from the call's own events
// that matches.
func waitCall[T smpcall.Event](t *testing.T, k *smpcall.Call, match ...func(T) bool) T {
	t.Helper()
	timeout := time.After(waitTime)
	for {
		select {
		case ev, ok := <-k.Events():
			require.True(t, ok, "call events closed")
			if v, ok := ev.(T); ok && (len(match) == 0 || match[0](v)) {
				return v
			}
		case <-timeout:
			var zero T
			t.Fatalf("no %T on the call", zero)
			return zero
		}
	}
}

// taps records the transport events each side's Client receives, for
// tests that look at the signaling of high-level calls (whose events go to
// the Call, not to the Client's stream).
type taps struct {
	mu  sync.Mutex
	evs map[string][]smpcall.Event
}

func (tp *taps) wrap(name string, tr smpcall.Transport) smpcall.Transport {
	return mapEvents(tr, func(ev smpcall.Event) smpcall.Event {
		tp.mu.Lock()
		defer tp.mu.Unlock()
		if tp.evs == nil {
			tp.evs = map[string][]smpcall.Event{}
		}
		tp.evs[name] = append(tp.evs[name], ev)
		return ev
	})
}

// waitTap returns the first event of type T that side name received.
func waitTap[T smpcall.Event](t *testing.T, tp *taps, name string) T {
	t.Helper()
	var found T
	require.Eventually(t, func() bool {
		tp.mu.Lock()
		defer tp.mu.Unlock()
		for _, ev := range tp.evs[name] {
			if v, ok := ev.(T); ok {
				found = v
				return true
			}
		}
		return false
	}, waitTime, time.Millisecond, "no %T at %s", found, name)
	return found
}
