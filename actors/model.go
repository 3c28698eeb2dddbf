package actors

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Execution states, as clients know them.
const (
	StateStarting   = "starting"
	StateIdle       = "idle"
	StateBusy       = "busy"
	StateRestarting = "restarting"
	StateDead       = "dead"
)

// LastActivityFormat is the only layout Jupyter Server's gateway client
// parses: always six fractional digits and a Z.
const LastActivityFormat = "2006-01-02T15:04:05.000000Z"

// Model is a kernel as the REST API shows it.
type Model struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	LastActivity   string `json:"last_activity"`
	ExecutionState string `json:"execution_state"`
	Connections    int    `json:"connections"`
	Reason         string `json:"reason,omitempty"`
	// User is the KERNEL_USERNAME the kernel was started for; not shown.
	User string `json:"-"`
}

// kernelHandle is what the rest of the gateway sees of one kernel. id,
// name, pid and toKernel never change; username is set once, before the
// handle is published (a pooled kernel learns it when it is claimed). The
// kernel actor is the only writer of the atomics, which anyone may read.
type kernelHandle struct {
	id, name, username string
	pid                *actor.PID
	// toKernel is the queue of the clients' messages to the kernel, for
	// its whole life: websocket readers put into it, the current launch
	// takes from it once the kernel is ready.
	toKernel *fifo[outbound]

	state        atomic.Pointer[string]
	lastActivity atomic.Int64 // unix nanoseconds
	connections  atomic.Int32
	// follower is set while another replica of the group owns the kernel
	// (see Replication); sessionIDs are the kernel's client sessions here,
	// for the group.
	follower   atomic.Bool
	sessionIDs atomic.Pointer[[]string]
	// forgotten is set once the kernel's record and lease are being
	// deleted: the replica stops renewing its lease, which would write the
	// lease again after the deletion.
	forgotten atomic.Bool

	// For operators (observe.go). provisioner is set at spawn and never
	// changes; the kernel actor sets the rest, but for the message
	// counters: those are added to once per batch by the writers and the
	// runner's send loop, each on a cache line of its own so that neither
	// slows the actor's atomics.
	provisioner string
	host        atomic.Pointer[string]
	startedAt   atomic.Int64 // unix nanoseconds; 0 before the first launch is up
	restarts    atomic.Int32
	events      eventLog
	_           [64]byte
	msgsOut     atomic.Uint64
	_           [56]byte
	msgsIn      atomic.Uint64
	_           [56]byte
}

func newKernelHandle(id, name, username string, queue int) *kernelHandle {
	h := &kernelHandle{id: id, name: name, username: username, toKernel: newFIFO[outbound](queue)}
	h.setState(StateStarting)
	h.touch()
	return h
}

func (h *kernelHandle) setState(s string) { h.state.Store(&s) }
func (h *kernelHandle) touch()            { h.lastActivity.Store(time.Now().UnixNano()) }

func (h *kernelHandle) model() Model {
	return Model{
		ID:             h.id,
		Name:           h.name,
		LastActivity:   time.Unix(0, h.lastActivity.Load()).UTC().Format(LastActivityFormat),
		ExecutionState: *h.state.Load(),
		Connections:    int(h.connections.Load()),
		User:           h.username,
	}
}

// registry is the live kernels as readers see them; only the gateway
// actor changes it. A lookup by id never waits (a sync.Map, written once
// at a kernel's start and once at its end). The list in start order is an
// immutable snapshot, published whole; an add appends in place to the
// array older snapshots share, as none of them reads past its own length,
// so N starts cost O(N) rather than a copy of everything per start.
type registry struct {
	byID  sync.Map // id → *kernelHandle
	order atomic.Pointer[[]*kernelHandle]
}

func (r *registry) get(id string) (*kernelHandle, bool) {
	h, ok := r.byID.Load(id)
	if !ok {
		return nil, false
	}
	return h.(*kernelHandle), true
}

// list is the live kernels, oldest first; the caller must not change it.
func (r *registry) list() []*kernelHandle {
	if l := r.order.Load(); l != nil {
		return *l
	}
	return nil
}

func (r *registry) add(h *kernelHandle) {
	r.byID.Store(h.id, h)
	l := append(r.list(), h)
	r.order.Store(&l)
}

func (r *registry) remove(id string) {
	if _, ok := r.byID.LoadAndDelete(id); !ok {
		return
	}
	old := r.list()
	// A new array: older snapshots keep theirs whole.
	l := make([]*kernelHandle, 0, len(old)+len(old)/4)
	for _, k := range old {
		if k.id != id {
			l = append(l, k)
		}
	}
	r.order.Store(&l)
}
