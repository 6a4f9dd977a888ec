package queue

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestInboxBoundAndOrder(t *testing.T) {
	b := NewInbox[int](3)
	for i := range 5 {
		ok := b.Push(i)
		require.Equal(t, i < 3, ok, "push %d", i)
	}
	require.Equal(t, uint64(2), b.Dropped())
	<-b.Ready()
	require.Equal(t, []int{0, 1, 2}, b.Take(nil))
	require.Zero(t, b.Len())
	require.True(t, b.Push(9), "room again after Take")
	b.Close()
	require.False(t, b.Push(10))
	require.Equal(t, uint64(2), b.Dropped(), "pushes after Close are not counted as drops")
	require.Empty(t, b.Take(nil))
}

func TestOutDropsOldestAndNeverBlocks(t *testing.T) {
	o := NewOut[int](4)
	for i := range 10 {
		require.True(t, o.Push(i))
	}
	require.Equal(t, uint64(6), o.Dropped())
	o.Close()
	o.Close()
	var got []int
	for v := range o.C() {
		got = append(got, v)
	}
	require.Equal(t, []int{6, 7, 8, 9}, got, "the newest survive, in order")
	require.False(t, o.Push(1))
}

// Many producers and a slow consumer: nothing blocks, nothing is
// delivered twice, and delivered + dropped = pushed.
func TestOutConcurrent(t *testing.T) {
	o := NewOut[int](8)
	var wg sync.WaitGroup
	const producers, each = 8, 2000
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				o.Push(p*each + i)
			}
		}()
	}
	seen := map[int]int{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for v := range o.C() {
			seen[v]++
		}
	}()
	wg.Wait()
	o.Close()
	<-done
	for v, n := range seen {
		require.Equal(t, 1, n, "item %d delivered %d times", v, n)
	}
	require.Equal(t, producers*each, len(seen)+int(o.Dropped()))
}
