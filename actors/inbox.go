package actors

import (
	"sync"
	"sync/atomic"
)

// inbox bounds the kernel messages a launch's ZMQ readers have handed to
// the kernel actor and it has not yet taken. A kernel that publishes faster
// than the actor forwards then meets TCP back-pressure (libzmq kernels drop
// at their own send high-water mark, as ZMQ's PUB does by design) instead
// of growing the gateway's heap without bound.
//
// Every kernel message passes it twice, so room is an atomic count: a
// channel used as a semaphore took a lock shared by the readers and the
// actor on every take and release. Only a reader that finds no room
// waits, on a token the actor's releases hand out.
type inbox struct {
	size    int64
	held    atomic.Int64
	waiters atomic.Int64
	room    chan struct{} // a token: a release happened while readers waited
	done    chan struct{}
	closed  atomic.Bool
	once    sync.Once
}

func newInbox(size int) *inbox {
	return &inbox{size: int64(max(size, 1)), room: make(chan struct{}, 1), done: make(chan struct{})}
}

// take waits for room; false once the launch is over (the reader then
// drops the message: nobody will take it).
func (in *inbox) take() bool {
	waited := false
	for !in.closed.Load() {
		if n := in.held.Load(); n < in.size {
			if !in.held.CompareAndSwap(n, n+1) {
				continue
			}
			if waited && n+1 < in.size && in.waiters.Load() > 0 {
				// Releases while the token was out collapsed into it:
				// pass it on to the next waiter, for the room left.
				in.wake()
			}
			return true
		}
		// Full. Say so before looking again: a release after the look
		// then sees the waiter and hands out a token.
		in.waiters.Add(1)
		if in.held.Load() >= in.size {
			select {
			case <-in.room:
			case <-in.done:
			}
			waited = true
		}
		in.waiters.Add(-1)
	}
	return false
}

// release gives back the room of one message taken.
func (in *inbox) release() {
	in.held.Add(-1)
	if in.waiters.Load() > 0 {
		in.wake()
	}
}

// wake hands out the token, unless it is out already: its taker looks
// again.
func (in *inbox) wake() {
	select {
	case in.room <- struct{}{}:
	default:
	}
}

// close ends the waits of the readers; nil-safe and idempotent.
func (in *inbox) close() {
	if in != nil {
		in.once.Do(func() {
			in.closed.Store(true)
			close(in.done)
		})
	}
}
