// Package queue holds the two bounded queues the SDK uses between its
// goroutines and toward the embedder. Neither starts a goroutine, and
// neither lets a producer block on a slow consumer: when full, Inbox drops
// what arrives (the producer learns it) and Out drops its oldest item.
// Both count what they drop, so a flood shows up in the counters instead
// of in memory (the rule that every queue remote input can grow is bounded).
package queue

import (
	"sync"
	"sync/atomic"
)

// Inbox is a bounded FIFO read by one consumer that waits on Ready and then
// takes everything with Take. Push never blocks.
//
// Concurrency: Push, Len, Dropped and Close are safe from any goroutine;
// Ready and Take belong to the one consumer.
type Inbox[T any] struct {
	mu      sync.Mutex
	items   []T
	limit   int
	closed  bool
	ready   chan struct{}
	dropped atomic.Uint64
}

// NewInbox returns an inbox that holds at most limit items (at least 1).
func NewInbox[T any](limit int) *Inbox[T] {
	return &Inbox[T]{limit: max(limit, 1), ready: make(chan struct{}, 1)}
}

// Push appends v and reports whether it was kept: false when the inbox is
// full (v is dropped and counted) or closed.
func (b *Inbox[T]) Push(v T) bool {
	b.mu.Lock()
	if b.closed || len(b.items) >= b.limit {
		closed := b.closed
		b.mu.Unlock()
		if !closed {
			b.dropped.Add(1)
		}
		return false
	}
	b.items = append(b.items, v)
	b.mu.Unlock()
	select {
	case b.ready <- struct{}{}:
	default:
	}
	return true
}

// Ready is signalled after a Push; the consumer then calls Take.
func (b *Inbox[T]) Ready() <-chan struct{} { return b.ready }

// Take moves every queued item to dst (which it returns, appended to).
func (b *Inbox[T]) Take(dst []T) []T {
	b.mu.Lock()
	defer b.mu.Unlock()
	dst = append(dst, b.items...)
	clear(b.items)
	b.items = b.items[:0]
	return dst
}

// Len returns the number of queued items.
func (b *Inbox[T]) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.items)
}

// Dropped returns how many pushes were refused because the inbox was full.
func (b *Inbox[T]) Dropped() uint64 { return b.dropped.Load() }

// Close refuses later pushes and forgets what is queued.
func (b *Inbox[T]) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	clear(b.items)
	b.items = nil
}

// Out is a bounded channel for a consumer we do not control (the
// embedder): Push never blocks; when the channel is full the oldest item is
// dropped to make room, since the newest events say the most about now.
//
// Concurrency: Push, Close and Dropped are safe from any goroutine; the
// channel from C may be read by any number of goroutines.
type Out[T any] struct {
	mu      sync.Mutex
	ch      chan T
	closed  bool
	dropped atomic.Uint64
}

// NewOut returns a queue whose channel buffers up to size items (at least 1).
func NewOut[T any](size int) *Out[T] { return &Out[T]{ch: make(chan T, max(size, 1))} }

// C returns the channel; it is closed by Close.
func (o *Out[T]) C() <-chan T { return o.ch }

// Push queues v, dropping the oldest queued item if the channel is full.
// After Close it does nothing and returns false.
func (o *Out[T]) Push(v T) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	for {
		select {
		case o.ch <- v:
			return true
		default:
		}
		// Full. Only consumers take from the channel while we hold mu, so
		// after one item leaves (ours or theirs) the send above succeeds.
		select {
		case <-o.ch:
			o.dropped.Add(1)
		default:
		}
	}
}

// Dropped returns how many items were dropped because nobody read them in time.
func (o *Out[T]) Dropped() uint64 { return o.dropped.Load() }

// Close closes the channel after what is queued; later pushes are ignored.
// It may be called more than once.
func (o *Out[T]) Close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.closed {
		o.closed = true
		close(o.ch)
	}
}
