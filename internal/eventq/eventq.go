// Package eventq is an unbounded FIFO drained into a channel by one
// goroutine. Producers that hold locks push without ever blocking on a slow
// consumer; the consumer reads the channel in order. Signaling events are
// few (tens per call), so unbounded is the right trade against dropping.
package eventq

import "sync"

// Queue is safe for concurrent Push from many goroutines; C is read by one consumer.
type Queue[T any] struct {
	mu     sync.Mutex
	items  []T
	wake   chan struct{}
	ch     chan T
	stop   chan struct{}
	exited chan struct{}
	once   sync.Once
	closed bool // guarded by mu
}

// New starts a queue's pump goroutine; Close stops it.
func New[T any]() *Queue[T] {
	q := &Queue[T]{wake: make(chan struct{}, 1), ch: make(chan T), stop: make(chan struct{}), exited: make(chan struct{})}
	go q.pump()
	return q
}

// C returns the channel the items are delivered on; it is closed by Close.
func (q *Queue[T]) C() <-chan T { return q.ch }

// Push appends v. After Close it is a no-op.
func (q *Queue[T]) Push(v T) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Len returns the number of items not yet handed to the consumer.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

func (q *Queue[T]) pump() {
	defer close(q.exited)
	defer close(q.ch)
	var zero T
	for {
		q.mu.Lock()
		n := len(q.items)
		var v T
		if n > 0 {
			v = q.items[0]
			q.items[0] = zero
			q.items = q.items[1:]
		}
		q.mu.Unlock()
		if n == 0 {
			select {
			case <-q.wake:
				continue
			case <-q.stop:
				return
			}
		}
		select {
		case q.ch <- v:
		case <-q.stop:
			return
		}
	}
}

// Close stops the pump and closes C; items not yet read are dropped. It
// waits for the pump to exit and may be called more than once.
func (q *Queue[T]) Close() {
	q.once.Do(func() {
		q.mu.Lock()
		q.closed = true
		q.items = nil
		q.mu.Unlock()
		close(q.stop)
	})
	<-q.exited
}
