package actors

import (
	"sync"
	"time"
)

// fifo is a bounded first-in first-out queue that holds memory only for
// what it holds. A kernel's queues are empty nearly all the time, and ten
// thousand kernels must not each reserve room for a thousand messages, as a
// buffered channel of the bound would.
//
// Any number of goroutines push; one takes (see ready).
type fifo[T any] struct {
	mu    sync.Mutex
	items []T // items[head:] are queued
	head  int
	max   int
	// ready has a token while items are queued (capacity 1: wakeups
	// coalesce); the taker waits on it, then takes until empty.
	ready chan struct{}
	// room is closed when a take makes room in a full queue; pushers
	// waiting for room wait on it. nil while nobody waits.
	room chan struct{}
}

func newFIFO[T any](max int) *fifo[T] {
	return &fifo[T]{max: max, ready: make(chan struct{}, 1)}
}

// fifoKeep is the capacity a drained queue keeps; a larger backing array
// (a burst) is let go so that an idle kernel holds little.
const fifoKeep = 16

// push queues v; false when the queue is full.
func (q *fifo[T]) push(v T) bool {
	q.mu.Lock()
	ok := q.put(v)
	q.mu.Unlock()
	if ok {
		q.wake()
	}
	return ok
}

// pushWait queues v, waiting up to wait for room; false when none came in
// time or gone was closed first.
func (q *fifo[T]) pushWait(v T, wait time.Duration, gone <-chan struct{}) bool {
	var t *time.Timer
	for {
		q.mu.Lock()
		if q.put(v) {
			q.mu.Unlock()
			q.wake()
			return true
		}
		if q.room == nil {
			q.room = make(chan struct{})
		}
		room := q.room
		q.mu.Unlock()
		if t == nil {
			t = time.NewTimer(wait)
			defer t.Stop()
		}
		select {
		case <-room:
		case <-gone:
			return false
		case <-t.C:
			return false
		}
	}
}

// put appends v if there is room; q.mu is held.
func (q *fifo[T]) put(v T) bool {
	if len(q.items)-q.head >= q.max {
		return false
	}
	if q.head > 0 && len(q.items) == cap(q.items) {
		// A queue that never quite drains must not grow its array
		// forever: move what is queued to the front first.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, v)
	return true
}

func (q *fifo[T]) wake() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take returns the oldest item; false when the queue is empty.
func (q *fifo[T]) take() (T, bool) {
	var zero T
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return zero, false
	}
	v := q.items[q.head]
	q.items[q.head] = zero
	q.head++
	if q.head == len(q.items) {
		if cap(q.items) > fifoKeep {
			q.items = nil
		} else {
			q.items = q.items[:0]
		}
		q.head = 0
	}
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
	return v, true
}

// len is how many items are queued.
func (q *fifo[T]) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}
