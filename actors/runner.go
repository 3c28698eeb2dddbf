package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/store"
	"github.com/kernelgate/kernelgate/internal/lograte"
	"github.com/kernelgate/kernelgate/zmq"
	"github.com/rs/zerolog"
)

// runner does the I/O of one launch of a kernel, so that its kernel actor
// never waits on a process, a host, an API server or a disk. It owns the
// launch's proxy.Kernel, its zmq.Client and its record writes:
//
//   - the launch goroutine provisions the kernel and connects to it, then
//     becomes the sender: every message to the kernel, the actor's own
//     (probes, shutdown and interrupt requests) and, once the kernel is
//     ready, the clients' from the kernel's queue, on the one client (a
//     kernel that does not read holds up only this goroutine); it also
//     reports the kernel process's end. Heartbeats are the gateway's
//     wheel's (heartbeat.go), which pings the client itself;
//   - ops: the provisioner's and the store's calls in the order the actor
//     asked for them, on a goroutine that exists only while calls are
//     queued (a signal that hangs on a dead SSH host delays only the next
//     provisioner call). An idle kernel has one goroutine here, not three.
//
// Results come back to the actor as messages tagged with the launch's gen;
// the actor drops those of a launch that is over.
type runner struct {
	gen    uint64
	kernel *actor.PID
	sys    *actor.ActorSystem
	cfg    *Config
	log    zerolog.Logger

	ctl     *fifo[toKernel]
	clients *fifo[outbound] // the kernel's client queue, drained once ready
	counted *atomic.Uint64  // the kernel's own count of messages sent
	ready   chan struct{}   // closed: the kernel is ready for clients
	held    chan struct{}   // closed: the kernel is lost; clients' messages wait for the next launch
	heldMu  sync.Once
	done    chan struct{} // closed: the launch is over (release)
	cleaned chan struct{} // closed: the launch's kernel is cleaned up
	inbox   *inbox
	// prev is the kernel's launch before this one: its cleanup (the same
	// connection file, say) must be over before this launch begins.
	prev *runner
	// hb is the launch's place on the heartbeat wheel (nil: heartbeats
	// are off): on it from the launch's success, or a follower's
	// adoption, to its release. A follower's launch is never on it: its
	// kernel's owner watches the kernel, and a silent kernel is the
	// owner's to kill.
	hb      *hbEntry
	follows bool

	// Owned by the ops once the launch succeeded.
	proc   proxy.Kernel
	client *zmq.Client
	// watched is the process whose end the sender reports; rewatch tells
	// it watched changed (an adoption).
	watched atomic.Pointer[proxy.Kernel]
	rewatch chan struct{}

	// mu orders the end of the launch against a release (whichever comes
	// second does the cleanup) and guards the ops queue.
	mu       sync.Mutex
	serving  bool // the launch succeeded
	released bool
	keep     bool
	forget   func()
	ops      []func() // provisioner and store calls, in order
	opsGo    bool     // the ops may run (the actor knows of the launch)
	opsBusy  bool     // a goroutine is running them
	opsShut  bool     // the last op (cleanup) is queued: no more
}

// toKernel is a message the actor sends the kernel itself.
type toKernel struct {
	ch zmq.Channel
	m  *zmq.Message
}

// outbound is a client's message on its way to the kernel.
type outbound struct {
	ch zmq.Channel
	m  *zmq.Message
}

// Bounds of a runner's queues: the actor never blocks on them, and asks
// for little at a time (a state change, a tick), so a full queue means a
// provisioner or kernel that hangs; what does not fit is refused.
const (
	runnerOps = 64
	runnerCtl = 64
)

// launched is the outcome of a launch.
type launched struct {
	gen    uint64
	err    error
	ci     zmq.ConnectionInfo
	info   json.RawMessage // the provisioner's, for the record
	poller bool            // its end is learned only by polling (proxy.Poller)
}

// Results of a runner's work, for its kernel actor.
type (
	procExited struct {
		gen uint64
		err error // how it ended; nil for a clean exit
	}
	// adopted: the followed kernel's process is the launch's own now (or,
	// with err, could not be taken back).
	adopted struct {
		gen    uint64
		rec    store.Record
		err    error
		info   json.RawMessage
		poller bool
	}
	// cleanedUp: a launch's kernel is cleaned up (and its record forgotten,
	// if asked).
	cleanedUp struct{ r *runner }
	signaled  struct {
		gen uint64
		sig syscall.Signal
		err error
	}
)

func newRunner(k *kernelActor, prev *runner) *runner {
	r := &runner{gen: k.gen, kernel: k.self, sys: k.sys, cfg: k.cfg, log: k.log, prev: prev, follows: k.follower,
		ctl: newFIFO[toKernel](runnerCtl), clients: k.h.toKernel, counted: &k.h.msgsIn, rewatch: make(chan struct{}, 1),
		ready: make(chan struct{}), held: make(chan struct{}), done: make(chan struct{}), cleaned: make(chan struct{}), inbox: newInbox(k.cfg.KernelInbox)}
	if k.cfg.hb != nil {
		gen, self, sys := k.gen, k.self, k.sys
		r.hb = newHBEntry(func(d time.Duration) { sys.Root.Send(self, &hbSilent{gen: gen, silent: d}) },
			func() { sys.Root.Send(self, &hbStale{gen: gen}) })
	}
	return r
}

// start launches the kernel with start within timeout, connects its
// channels, reports *launched and serves the launch until release.
func (r *runner) start(start func(context.Context) (proxy.Kernel, error), timeout time.Duration) {
	go func() {
		proc, client, err := r.launch(start, timeout)
		_, poller := proc.(proxy.Poller)
		r.mu.Lock()
		released, forget := r.released, r.forget
		if err == nil && !released {
			r.proc, r.client, r.serving = proc, client, true
			if r.hb != nil && !r.follows {
				r.cfg.hb.add(r.hb, client, poller)
			}
		}
		r.mu.Unlock()
		switch {
		case err != nil:
			// The launch cleaned up after itself.
			r.sys.Root.Send(r.kernel, &launched{gen: r.gen, err: err})
			r.inbox.close()
			if released && forget != nil {
				forget()
			}
			r.markCleaned()
			return
		case released:
			// Released while launching: nobody wants this kernel.
			r.proc, r.client = proc, client
			r.final()
			return
		}
		r.sys.Root.Send(r.kernel, &launched{gen: r.gen, ci: proc.ConnectionInfo(), info: proc.ProcessInfo(), poller: poller})
		r.watch(proc)
		r.mu.Lock()
		r.opsGo = true
		r.runOpsLocked()
		r.mu.Unlock()
		r.send()
	}()
}

// watch has the sender report the end of proc as *procExited, until
// release.
func (r *runner) watch(proc proxy.Kernel) {
	r.watched.Store(&proc)
	select {
	case r.rewatch <- struct{}{}:
	default:
	}
}

// adopt makes rec's kernel, which this launch follows, this launch's own:
// recover takes its process back through the provisioner (this replica
// owns it now) while the channels stay as they are. It reports *adopted;
// false when the ops queue is full.
func (r *runner) adopt(recover func(context.Context) (proxy.Kernel, error), timeout time.Duration, rec store.Record) bool {
	return r.do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		proc, err := recover(ctx)
		if err != nil {
			r.sys.Root.Send(r.kernel, &adopted{gen: r.gen, rec: rec, err: err})
			return
		}
		r.proc = proc
		r.watch(proc)
		_, poller := proc.(proxy.Poller)
		if r.hb != nil {
			// After a release the entry stays off (see heartbeats.add).
			r.cfg.hb.add(r.hb, r.client, poller)
		}
		r.sys.Root.Send(r.kernel, &adopted{gen: r.gen, rec: rec, info: proc.ProcessInfo(), poller: poller})
	})
}

// launch provisions the kernel, then dials its channels while watching for
// it to die.
func (r *runner) launch(start func(context.Context) (proxy.Kernel, error), timeout time.Duration) (proxy.Kernel, *zmq.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if r.prev != nil {
		select {
		case <-r.prev.cleaned:
			r.prev = nil
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%w after %v: the kernel's previous launch is still being cleaned up", ErrLaunchTimeout, timeout)
		}
	}
	proc, err := start(ctx)
	if err != nil {
		return nil, nil, err
	}
	// A kernel that dies while we dial fails the launch at once; the
	// watcher ends with this function (deferred cancel).
	go func() {
		select {
		case <-proc.Exited():
			cancel()
		case <-ctx.Done():
		}
	}()
	gen, self, sys, in := r.gen, r.kernel, r.sys, r.inbox
	opts := zmq.Options{
		Deliver: func(rc zmq.Received) {
			if in.take() {
				sys.Root.Send(self, &zmqIn{gen: gen, Received: rc, inbox: in})
			}
		},
	}
	if r.hb != nil {
		opts.Echo = r.hb.echo
	}
	client, err := zmq.Connect(ctx, proc.ConnectionInfo(), opts)
	// A live kernel whose socket failed the ZMTP handshake gets another
	// dial while the launch has time: seen about once in 5,000 starts of
	// the synthetic (zmq4) kernel under heavy churn, the kernel's side
	// giving up on a greeting that was sent.
	for tries := 1; err != nil && tries < connectTries && ctx.Err() == nil && alive(proc); tries++ {
		r.log.Warn().Err(err).Int("try", tries).Msg("connecting to the kernel failed; dialling again")
		client, err = zmq.Connect(ctx, proc.ConnectionInfo(), opts)
	}
	if err == nil {
		return proc, client, nil
	}
	select {
	case <-proc.Exited():
		err = fmt.Errorf("%w during start-up: %s", ErrKernelDied, exitText(proc.ExitErr()))
	default:
		if ctx.Err() != nil {
			err = fmt.Errorf("%w after %v", ErrLaunchTimeout, timeout)
		} else {
			err = fmt.Errorf("%w: connecting to the kernel: %w", proxy.ErrLaunch, err)
		}
		proxy.Stop(proc, time.Second)
	}
	if cerr := proc.Cleanup(); cerr != nil {
		r.log.Warn().Err(cerr).Msg("kernel cleanup")
	}
	return nil, nil, err
}

// connectTries bounds the dials of one launch's channels.
const connectTries = 3

func alive(proc proxy.Kernel) bool { return !isClosed(proc.Exited()) }

// do queues op; false when the queue is full (a provisioner call hangs and
// many more were asked for) or the launch is released.
func (r *runner) do(op func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.opsShut {
		return false
	}
	if len(r.ops) >= runnerOps {
		if n := r.cfg.Metrics.RunnerRefused.Add(1); lograte.Crossed(n-1, n) {
			r.log.Warn().Uint64("refused", n).Msg("the kernel's provisioner is not answering; a call was refused")
		}
		return false
	}
	r.ops = append(r.ops, op)
	r.runOpsLocked()
	return true
}

// runOpsLocked starts a goroutine for the queued ops unless one runs or
// they may not run yet; r.mu is held.
func (r *runner) runOpsLocked() {
	if r.opsBusy || !r.opsGo || len(r.ops) == 0 {
		return
	}
	r.opsBusy = true
	go func() {
		for {
			r.mu.Lock()
			if len(r.ops) == 0 {
				r.ops, r.opsBusy = nil, false
				r.mu.Unlock()
				return
			}
			op := r.ops[0]
			r.ops[0] = nil
			r.ops = r.ops[1:]
			r.mu.Unlock()
			op()
		}
	}()
}

// signal delivers sig to the kernel process and reports the outcome as
// *signaled; answer, when set, also gets it as *result.
func (r *runner) signal(sig syscall.Signal, answer *actor.PID) {
	ok := r.do(func() {
		err := r.proc.Signal(sig)
		if err != nil {
			r.log.Warn().Err(err).Str("signal", sig.String()).Msg("signalling the kernel failed")
		}
		r.sys.Root.Send(r.kernel, &signaled{gen: r.gen, sig: sig, err: err})
		if answer != nil {
			r.sys.Root.Send(answer, &result{err: err})
		}
	})
	if !ok && answer != nil {
		r.sys.Root.Send(answer, &result{err: fmt.Errorf("%w: its provisioner is not answering", ErrKernelUnavailable)})
	}
}

// poll asks a kernel that cannot announce its end whether it lives, then
// schedules the next poll after (none when 0).
func (r *runner) poll(after time.Duration) {
	r.do(func() {
		if p, ok := r.proc.(proxy.Poller); ok {
			p.Poll()
		}
		if after > 0 {
			sendLater(r.sys, r.kernel, after, &pollTick{gen: r.gen})
		}
	})
}

// persist records the launch so that a restarted gateway can take the
// kernel back; in a replica group (repl set) it takes or renews the
// kernel's lease first.
func (r *runner) persist(s store.Store, rec store.Record, repl *Replication) {
	r.do(func() {
		if repl != nil {
			if ok, err := repl.Group.Acquire(rec.ID, repl.ID, repl.LeaseDuration); err != nil || !ok {
				r.log.Warn().Err(err).Bool("taken", !ok).Msg("cannot take the kernel's lease")
			}
		}
		if err := s.Save(rec); err != nil {
			r.log.Warn().Err(err).Msg("cannot record the kernel; it will not survive a gateway restart")
		}
	})
}

// send is the launch's only writer to the kernel but for the heartbeat
// wheel's pings, which have a connection of their own; it also reports the
// end of the watched process. A send is bounded (zmq.Options.SendTimeout)
// and a dead kernel's sockets fail at once, so that report is not held up
// long by a kernel that stopped reading.
func (r *runner) send() {
	var clients, exited <-chan struct{}
	ready, held := r.ready, r.held
	var proc proxy.Kernel
	for {
		select {
		case <-r.done:
			return
		case <-r.rewatch:
			proc = *r.watched.Load()
			exited = proc.Exited()
		case <-exited:
			r.sys.Root.Send(r.kernel, &procExited{gen: r.gen, err: proc.ExitErr()})
			exited = nil
		case <-ready:
			clients, ready = r.clients.ready, nil
		case <-held:
			clients, ready, held = nil, nil, nil
		case <-r.ctl.ready:
			for c, ok := r.ctl.take(); ok; c, ok = r.ctl.take() {
				if err := r.client.Send(c.ch, c.m); err != nil {
					r.log.Debug().Err(err).Msg("send to kernel failed")
				}
			}
		case <-clients:
			r.sendClients(exited)
		}
	}
}

// sendClients sends a batch of what the kernel's client queue holds,
// stopping early when the launch is over or lost or its process ended (what
// is left waits for the next launch). A batch is bounded so that clients
// that keep the queue full never keep the actor's own messages (an
// interrupt, a shutdown) or the report of the process's end waiting.
func (r *runner) sendClients(exited <-chan struct{}) {
	sent := uint64(0)
	for n := 0; n < sendBatch && !r.stopped() && !isClosed(exited); n++ {
		ob, ok := r.clients.take()
		if !ok {
			break
		}
		if err := r.client.Send(ob.ch, ob.m); err != nil {
			r.log.Debug().Err(err).Msg("send to kernel failed")
			continue
		}
		sent++
	}
	if sent > 0 {
		r.cfg.Metrics.MessagesToKernels.Add(sent)
		r.counted.Add(sent)
	}
	if r.clients.len() > 0 {
		// A full batch, or stopped, with messages left: whoever drains
		// next needs the token.
		r.clients.wake()
	}
}

// sendBatch is the most client messages sent between two looks at the
// sender's other work.
const sendBatch = 64

// stopped: the launch is released or its kernel lost.
func (r *runner) stopped() bool { return isClosed(r.done) || isClosed(r.held) }

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// toKernel queues the actor's own message for the kernel; it never blocks.
func (r *runner) sendKernel(t toKernel) {
	if !r.ctl.push(t) {
		if n := r.cfg.Metrics.KernelQueueDropped.Add(1); lograte.Crossed(n-1, n) {
			r.log.Warn().Uint64("dropped", n).Msg("kernel is not reading; dropped a message to it")
		}
	}
}

// hold stops taking clients' messages for this launch: its kernel is lost
// (a channel failed), and what clients send waits in the kernel's queue for
// the next launch instead of going to a dead socket.
func (r *runner) hold() { r.heldMu.Do(func() { close(r.held) }) }

// awaitRecord polls the group for kernel id's record until its connection
// is no longer old (its owner relaunched it: *recordNow) or the record is
// gone (*recordGone), within timeout: a follower whose kernel was lost.
func (r *runner) awaitRecord(g store.Group, id string, old zmq.ConnectionInfo, timeout time.Duration) {
	r.do(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
			rec, err := g.Get(id)
			switch {
			case errors.Is(err, store.ErrNotFound):
				if l, err := g.Holder(id); err == nil && time.Now().Before(l.Expires) {
					break // its owner holds it: between two pods (see syncRecords)
				}
				r.sys.Root.Send(r.kernel, &recordGone{})
				return
			case err == nil && !sameKernel(rec.Connection, old):
				r.sys.Root.Send(r.kernel, &recordNow{rec: rec})
				return
			}
			select {
			case <-tick.C:
			case <-r.done:
				return
			}
		}
	})
}

// markReady lets clients' messages through: the kernel has answered its
// handshake.
func (r *runner) markReady() {
	select {
	case <-r.ready:
	default:
		close(r.ready)
	}
}

// release ends the launch: the sender and the readers stop, then (in
// order after the calls already queued) the channels close and, unless
// keep is set (the kernel lives on for the next gateway), the provisioner
// cleans up; then forget runs (the kernel's record is deleted, say). A
// launch still in progress does the same when it ends.
func (r *runner) release(keep bool, forget func()) {
	r.inbox.close()
	r.cfg.hb.remove(r.hb)
	r.mu.Lock()
	r.released, r.keep, r.forget = true, keep, forget
	// A launch still in progress cleans up itself when it ends.
	beside := r.serving && len(r.ops) >= runnerOps
	if r.serving && !beside {
		// The last op: after the calls already asked for.
		r.ops = append(r.ops, r.final)
		r.runOpsLocked()
	}
	r.opsShut = true
	r.mu.Unlock()
	if beside {
		// The queue is full behind a hung call: clean up beside it.
		go r.final()
	}
	close(r.done)
}

// cleanedCh is closed once the launch is cleaned up; for no launch at all,
// it is closed already.
func (r *runner) cleanedCh() <-chan struct{} {
	if r == nil {
		return closedCh
	}
	return r.cleaned
}

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// markCleaned tells whoever waits that the launch is cleaned up: the next
// launch, and the kernel actor.
func (r *runner) markCleaned() {
	close(r.cleaned)
	r.sys.Root.Send(r.kernel, &cleanedUp{r: r})
}

// final closes the launch's channels and cleans up its kernel.
func (r *runner) final() {
	defer r.markCleaned()
	r.client.Close()
	if !r.keep {
		if err := r.proc.Cleanup(); err != nil {
			r.log.Warn().Err(err).Msg("kernel cleanup")
		}
	}
	if r.forget != nil {
		r.forget()
	}
}
