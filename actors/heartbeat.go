package actors

import (
	"sync"
	"sync/atomic"
	"time"
)

// heartbeats is the gateway's one heartbeat wheel: a goroutine that pings
// the heartbeat channel of every kernel this gateway owns once per
// interval, the kernels spread over the interval in slots, and reads the
// times of their echoes, which the channels' readers store. A kernel costs
// no goroutine, timer or actor message while it echoes: 10,000 kernels at
// the default 3 s cost one ticker and 3,333 small writes a second, where a
// timer and two actor messages per kernel and interval (a tick, an echo)
// cost 3,333 timers and 6,667 messages a second besides.
//
// It tells a kernel actor only when something is wrong: its kernel has
// not echoed for the heartbeat timeout (hbSilent: the actor kills a hung
// kernel), or, for a kernel whose end is learned only by polling, for
// longer than a liveness interval (hbStale: the actor asks the kernel's
// launcher whether it lives, which it need not while echoes come). Each
// report repeats at most once per its period, for as long as it holds.
type heartbeats struct {
	timeout, stale, tick time.Duration

	mu    sync.Mutex
	slots [][]*hbEntry // one a tick, each pinged once an interval

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// hbSlots is how many slots an interval is cut into (fewer for an
// interval under 64 ms: a tick is a millisecond at least): each tick
// pings one slot's kernels, so the writes of 10,000 kernels come in small
// batches.
const hbSlots = 64

// hbWrite bounds one ping's write. A kernel whose heartbeat connection does
// not take a few bytes in this time holds up the others' pings no longer;
// its echoes stop and it is reported.
const hbWrite = 100 * time.Millisecond

// pinger is the heartbeat channel of a kernel's connection (zmq.Client).
type pinger interface {
	PingWithin(seq uint64, timeout time.Duration) error
}

// hbEntry is one launch's place on the wheel. A launch has one entry for
// its life and, once removed, it never comes back: a relaunch makes a new
// one, so a report can always be tied to its launch (the actor drops those
// of a launch that is over by its gen).
type hbEntry struct {
	// silent and stale report to the kernel actor; they must not block.
	silent func(d time.Duration)
	stale  func()
	echoed atomic.Int64 // unix nanoseconds of the last echo (or of add)
	// gone is set by remove; the wheel checks it before each entry, so an
	// entry removed while its slot's batch is being pinged is skipped.
	gone atomic.Bool

	// Written by add before the entry is in a slot; the wheel reads them
	// after taking the slot's entries under heartbeats.mu.
	client pinger
	polled bool

	// Under heartbeats.mu.
	on           bool
	slot, offset int

	// Owned by the wheel's goroutine.
	toldSilent, toldStale int64
}

// newHeartbeats starts a wheel that pings every interval, reports silence
// after timeout and staleness after stale. An echo comes back a moment
// after its ping and the next check is an interval later, so stale must
// be more than an interval.
func newHeartbeats(interval, timeout, stale time.Duration) *heartbeats {
	n := int(min(max(interval/time.Millisecond, 1), hbSlots))
	h := &heartbeats{timeout: timeout, stale: stale, tick: interval / time.Duration(n),
		slots: make([][]*hbEntry, n), stop: make(chan struct{}), done: make(chan struct{})}
	go h.run()
	return h
}

// newHBEntry makes a launch's entry. Its echo method goes into the
// launch's zmq.Options before the channels are dialled, so it exists
// before the launch is known to succeed.
func newHBEntry(silent func(time.Duration), stale func()) *hbEntry {
	e := &hbEntry{silent: silent, stale: stale}
	e.echoed.Store(time.Now().UnixNano())
	return e
}

// echo is zmq.Options.Echo: any echo proves the kernel alive, whichever
// ping it answers.
func (e *hbEntry) echo(uint64) { e.echoed.Store(time.Now().UnixNano()) }

// add puts e, whose kernel c is connected, on the wheel, in its least
// loaded slot (removals leave holes); polled: the kernel's end is learned
// only by polling, and late echoes are reported as stale. An entry that
// is on the wheel already, or was removed, stays as it is.
func (h *heartbeats) add(e *hbEntry, c pinger, polled bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e.on || e.gone.Load() {
		return
	}
	e.client, e.polled, e.on = c, polled, true
	e.echoed.Store(time.Now().UnixNano()) // the silence counts from now
	slot := 0
	for i := range h.slots {
		if len(h.slots[i]) < len(h.slots[slot]) {
			slot = i
		}
	}
	e.slot, e.offset = slot, len(h.slots[slot])
	h.slots[slot] = append(h.slots[slot], e)
}

// remove takes e off the wheel for good. Once it returns the wheel begins
// nothing more for e; a check and ping it is in the middle of may finish (a
// report the actor ignores, its launch being over; a ping to a client
// about to close). Nil-safe (heartbeats off, or no entry) and idempotent.
func (h *heartbeats) remove(e *hbEntry) {
	if h == nil || e == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e.gone.Store(true)
	if !e.on {
		return
	}
	e.on = false
	s := h.slots[e.slot]
	last := len(s) - 1
	s[e.offset] = s[last]
	s[e.offset].offset = e.offset
	s[last] = nil
	h.slots[e.slot] = s[:last]
}

// close stops the wheel and waits for its goroutine; nothing is reported
// after it returns. Nil-safe and idempotent.
func (h *heartbeats) close() {
	if h == nil {
		return
	}
	h.closeOnce.Do(func() { close(h.stop) })
	<-h.done
}

func (h *heartbeats) run() {
	defer close(h.done)
	t := time.NewTicker(h.tick)
	defer t.Stop()
	n := int64(len(h.slots))
	start, served := time.Now(), int64(0) // ticks served
	var batch []*hbEntry
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		// A ticker drops the ticks of a receiver that falls behind (a busy
		// machine): their slots are served now, so that each kernel is
		// still pinged once an interval, and not more than once at once.
		due := int64(time.Since(start) / h.tick)
		for served = max(served, due-n); served < due; served++ {
			batch = h.ping(batch, int(served%n), uint64(served/n))
		}
	}
}

// ping checks, then pings, the kernels of one slot; seq is the round's.
// batch is the slot's entries, reused: the lock is not held over writes.
func (h *heartbeats) ping(batch []*hbEntry, slot int, seq uint64) []*hbEntry {
	h.mu.Lock()
	batch = append(batch[:0], h.slots[slot]...)
	h.mu.Unlock()
	now := time.Now().UnixNano()
	for _, e := range batch {
		if e.gone.Load() {
			continue
		}
		h.check(e, now)
		// A ping that cannot be written is an echo that will not come:
		// the silence check reports it.
		e.client.PingWithin(seq, hbWrite)
	}
	clear(batch) // holds no launch past its removal
	return batch
}

// check reports e's silence or staleness, each at most once per its period.
func (h *heartbeats) check(e *hbEntry, now int64) {
	age := now - e.echoed.Load()
	switch {
	case age > int64(h.timeout):
		if now-e.toldSilent > int64(h.timeout) {
			e.toldSilent = now
			e.silent(time.Duration(age))
		}
	case e.polled && age > int64(h.stale):
		if now-e.toldStale > int64(h.stale) {
			e.toldStale = now
			e.stale()
		}
	}
}
