package actors

import "sync"

// inbox bounds the kernel messages a launch's ZMQ readers have handed to
// the kernel actor and it has not yet taken. A kernel that publishes faster
// than the actor forwards then meets TCP back-pressure (libzmq kernels drop
// at their own send high-water mark, as ZMQ's PUB does by design) instead
// of growing the gateway's heap without bound.
type inbox struct {
	credits chan struct{}
	done    chan struct{}
	once    sync.Once
}

func newInbox(size int) *inbox {
	return &inbox{credits: make(chan struct{}, size), done: make(chan struct{})}
}

// take waits for room; false once the launch is over (the reader then
// drops the message: nobody will take it).
func (in *inbox) take() bool {
	select {
	case in.credits <- struct{}{}:
		return true
	case <-in.done:
		return false
	}
}

// release gives back the room of one message taken.
func (in *inbox) release() {
	select {
	case <-in.credits:
	default:
	}
}

// close ends the waits of the readers; nil-safe and idempotent.
func (in *inbox) close() {
	if in != nil {
		in.once.Do(func() { close(in.done) })
	}
}
