package eventq

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOrderAndNoBlocking(t *testing.T) {
	q := New[int]()
	defer q.Close()
	// Pushing never blocks, even with nobody reading.
	for i := range 1000 {
		q.Push(i)
	}
	for i := range 1000 {
		require.Equal(t, i, <-q.C())
	}
	require.Equal(t, 0, q.Len())
}

func TestConcurrentPushersKeepPerProducerOrder(t *testing.T) {
	q := New[[2]int]()
	defer q.Close()
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				q.Push([2]int{p, i})
			}
		}()
	}
	last := map[int]int{0: -1, 1: -1, 2: -1, 3: -1}
	for range 800 {
		v := <-q.C()
		require.Equal(t, last[v[0]]+1, v[1])
		last[v[0]] = v[1]
	}
	wg.Wait()
}

func TestCloseClosesChannelAndIsIdempotent(t *testing.T) {
	q := New[string]()
	q.Push("dropped")
	q.Close()
	q.Close()
	for range q.C() { // at most the one item, then closed
	}
	q.Push("after close is harmless")
	require.Zero(t, q.Len(), "nothing is kept after Close")
}
