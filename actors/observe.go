package actors

import (
	"fmt"
	"sync"
	"time"
)

// What an operator sees of the gateway beyond the REST API (kernelgate's
// dashboard reads it): per kernel, counters and a short history kept on its
// handle; for the gateway, its limits and whether it drains. Everything is
// read from atomics or a small locked ring written on lifecycle events only,
// so looking never waits on an actor and costs the message path nothing.

// KernelStats is a kernel as an operator sees it.
type KernelStats struct {
	Model
	// Provisioner is the kernelspec's process-proxy class name; empty for
	// the registry's default (the local proxy in kernelgate serve).
	Provisioner string
	// Host is where the current launch's channels listen (an IP: the host,
	// or the pod); empty before the first launch is up.
	Host string
	// Started is when the kernel's first launch came up; zero before.
	Started time.Time
	// Active is the kernel's last activity (Model.LastActivity as a time).
	Active time.Time
	// Restarts counts its restarts, automatic and requested.
	Restarts int
	// MessagesIn counts client messages sent to the kernel; MessagesOut
	// counts kernel messages written to websockets (each websocket of a
	// kernel counts its own).
	MessagesIn, MessagesOut uint64
}

// Event is one step of a kernel's life: started, up, restarted, …
type Event struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`
}

// maxEvents bounds each kernel's history: enough to tell why it restarted.
const maxEvents = 16

// eventLog is a kernel's recent lifecycle events, oldest first. The kernel
// actor adds to it on lifecycle events (never per message); readers copy.
type eventLog struct {
	mu     sync.Mutex
	events []Event // a ring once full: next is the oldest
	next   int
}

func (l *eventLog) add(format string, args ...any) {
	e := Event{At: time.Now(), What: fmt.Sprintf(format, args...)}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.events) < maxEvents {
		l.events = append(l.events, e)
		return
	}
	l.events[l.next] = e
	l.next = (l.next + 1) % maxEvents
}

func (l *eventLog) list() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append(append([]Event(nil), l.events[l.next:]...), l.events[:l.next]...)
}

func (h *kernelHandle) stats() KernelStats {
	s := KernelStats{
		Model:       h.model(),
		Provisioner: h.provisioner,
		Active:      time.Unix(0, h.lastActivity.Load()),
		Restarts:    int(h.restarts.Load()),
		MessagesIn:  h.msgsIn.Load(),
		MessagesOut: h.msgsOut.Load(),
	}
	if host := h.host.Load(); host != nil {
		s.Host = *host
	}
	if t := h.startedAt.Load(); t != 0 {
		s.Started = time.Unix(0, t)
	}
	return s
}

// KernelStats returns every live kernel's stats, oldest first.
func (g *Gateway) KernelStats() []KernelStats {
	live := g.live.list()
	out := make([]KernelStats, len(live))
	for i, h := range live {
		out[i] = h.stats()
	}
	return out
}

// KernelEvents returns a kernel's recent lifecycle events, oldest first.
func (g *Gateway) KernelEvents(id string) ([]Event, error) {
	h, err := g.handle(id)
	if err != nil {
		return nil, err
	}
	return h.events.list(), nil
}

// Limits are the gateway's admission bounds.
type Limits struct {
	MaxKernels        int // 0: none
	MaxKernelsPerUser int // negative: none
}

// Limits returns the gateway's admission bounds.
func (g *Gateway) Limits() Limits {
	return Limits{MaxKernels: g.cfg.MaxKernels, MaxKernelsPerUser: g.cfg.MaxKernelsPerUser}
}

// Drain makes the gateway refuse new kernels (ErrShuttingDown) while the
// running ones go on serving, and Accepting report false, so that readiness
// takes this replica out of its load balancer before it is stopped. Resume
// undoes it.
func (g *Gateway) Drain() { g.drained.Store(true) }

// Resume takes new kernels again after Drain.
func (g *Gateway) Resume() { g.drained.Store(false) }

// Draining reports whether Drain is in force.
func (g *Gateway) Draining() bool { return g.drained.Load() }
