package actors

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/internal/lograte"
	"github.com/kernelgate/kernelgate/kernelspecs"
	"github.com/kernelgate/kernelgate/zmq"
	"github.com/rs/zerolog"
)

// phase is where a kernel actor is in its life; execution_state (idle,
// busy, …) is tracked separately from iopub.
type phase uint8

const (
	phaseStarting    phase = iota // first launch, the POST waits for it
	phaseRunning                  // launched and connected
	phaseRestarting               // relaunching after a death or a restart request
	phaseTerminating              // shutting down for good
)

// kernelActor owns one kernel: its process (through a provisioner), its
// channels, its published state, restarts and shutdown.
type kernelActor struct {
	cfg  *Config
	prov proxy.Provisioner
	spec kernelspecs.Spec
	env  map[string]string
	h    *kernelHandle
	log  zerolog.Logger

	self   *actor.PID
	parent *actor.PID
	sys    *actor.ActorSystem
	// pooled is true until the kernel is claimed from its warm pool: it
	// tells the gateway when it is ready, and dies rather than restarts.
	pooled bool
	// recovering is the record of a kernel an earlier gateway process
	// launched: the first launch takes it back instead of starting one.
	recovering *Record
	// kept is set when the gateway stops and leaves the kernel running
	// for the next gateway process: its process and files stay.
	kept    bool
	started time.Time
	created time.Time // the actor, i.e. when the start was admitted
	// stopping is when a shutdown was asked for, for its duration.
	stopping time.Time

	phase    phase
	gen      uint64 // current launch; bumped by every launch
	proc     proxy.Kernel
	client   *zmq.Client
	upSince  time.Time
	restarts int // automatic restarts in a row

	inbox      *inbox // bounds what the current launch's readers have queued for this actor
	ready      zmq.Readiness
	readySince time.Time // when the current handshake began
	hbOK       time.Time // last heartbeat echo
	badSigs    uint64

	startWaiter    *actor.PID   // the POST, until the first launch ends
	restartWaiters []*actor.PID // REST restarts, answered when ready
	stopWaiters    []*actor.PID // shutdowns, answered when gone

	sessions map[string]*actor.PID // session id → session actor
	routes   map[string]*actor.PID // header.session of client requests → session actor
	out      chan outbound         // to the kernel writer of the current launch
	held     []outbound            // client messages waiting for the kernel to be ready
	ending   int                   // sessions still closing before the actor stops
	// endReason tells clients why the kernel is going (a cull); empty for
	// an ordinary shutdown.
	endReason   string
	closeReason string // what the websockets' close frames say
}

// outbound is a client message on its way to the kernel, or, with m nil,
// a marker: the writer closes flushed once everything before it is sent.
type outbound struct {
	ch      zmq.Channel
	m       *zmq.Message
	flushed chan struct{}
}

func (k *kernelActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		k.self, k.parent, k.sys = ctx.Self(), ctx.Parent(), ctx.ActorSystem()
		k.created = time.Now()
		k.launch()
	case *claim:
		k.claim(ctx, m)
	case *launched:
		k.onLaunched(ctx, m)
	case *zmqIn:
		m.inbox.release()
		if m.gen == k.gen {
			k.onMessage(m.Received)
		}
	case *procExited:
		if m.gen == k.gen {
			k.onExit(ctx)
		}
	case *nudgeTick:
		if m.gen == k.gen {
			k.nudge()
		}
	case *hbTick:
		if m.gen == k.gen {
			k.probeHeartbeat()
		}
	case *pollTick:
		if m.gen == k.gen {
			k.poll()
		}
	case *hbResult:
		if m.gen == k.gen {
			k.onHeartbeat(m.err)
		}
	case *shutdownStage:
		if m.gen == k.gen && k.proc != nil {
			k.escalate(m.stage)
		}
	case *interruptKernel:
		ctx.Respond(&done{err: k.interrupt()})
	case *restartKernel:
		k.restart(ctx)
	case *shutdownKernel:
		k.shutdown(ctx, m.reason)
	case *detachKernel:
		k.detach(ctx)
	case *attachWS:
		k.attach(ctx, m)
	case *clientMsg:
		k.fromClient(m)
	case *sessionGone:
		k.dropSession(m.id)
	case *goneAck:
		k.endSessions(ctx)
	case *sessionEnded:
		if k.ending--; k.ending == 0 {
			k.stop(ctx)
		}
	case *endTimeout:
		if k.ending > 0 {
			k.log.Warn().Int("sessions", k.ending).Msg("sessions did not close in time")
			k.ending = 0
			k.stop(ctx)
		}
	case inspect:
		m(k)
	case *actor.Stopping:
		k.release()
	}
}

// launch starts the kernel in a goroutine: provision, then dial its channels
// while watching for it to die. The outcome comes back as *launched.
func (k *kernelActor) launch() {
	k.gen++
	gen, self, sys := k.gen, k.self, k.sys
	k.ready = zmq.Readiness{Session: "kernelgate-" + k.h.id, Username: "kernelgate"}
	timeout := launchTimeout(k.env["KERNEL_LAUNCH_TIMEOUT"], k.cfg.LaunchTimeout)
	k.inbox.close() // the previous launch's readers stop waiting
	k.inbox = newInbox(k.cfg.KernelInbox)
	in := k.inbox
	start := k.starter()
	log := k.log
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		proc, err := start(ctx)
		if err != nil {
			sys.Root.Send(self, &launched{gen: gen, err: err})
			return
		}
		// A kernel that dies while we dial fails the launch at once; the
		// watcher ends with this goroutine (deferred cancel).
		go func() {
			select {
			case <-proc.Exited():
				cancel()
			case <-ctx.Done():
			}
		}()
		opts := zmq.Options{
			Deliver: func(r zmq.Received) {
				if in.take() {
					sys.Root.Send(self, &zmqIn{gen: gen, Received: r, inbox: in})
				}
			},
		}
		client, err := zmq.Connect(ctx, proc.ConnectionInfo(), opts)
		// A live kernel whose socket failed the ZMTP handshake gets another
		// dial while the launch has time: seen about once in 5,000 starts
		// of the synthetic (zmq4) kernel under heavy churn, the kernel's
		// side giving up on a greeting that was sent.
		for tries := 1; err != nil && tries < connectTries && ctx.Err() == nil && alive(proc); tries++ {
			log.Warn().Err(err).Int("try", tries).Msg("connecting to the kernel failed; dialling again")
			client, err = zmq.Connect(ctx, proc.ConnectionInfo(), opts)
		}
		if err != nil {
			select {
			case <-proc.Exited():
				err = fmt.Errorf("%w during start-up: %v", ErrKernelDied, exitText(proc.ExitErr()))
			default:
				if ctx.Err() != nil {
					err = fmt.Errorf("%w after %v", ErrLaunchTimeout, timeout)
				} else {
					err = fmt.Errorf("%w: connecting to the kernel: %w", proxy.ErrLaunch, err)
				}
				proxy.Stop(proc, time.Second)
			}
			proc.Cleanup()
			sys.Root.Send(self, &launched{gen: gen, err: err})
			return
		}
		sys.Root.Send(self, &launched{gen: gen, proc: proc, client: client})
	}()
}

func (k *kernelActor) onLaunched(ctx actor.Context, m *launched) {
	if m.gen != k.gen {
		return
	}
	if m.err != nil {
		k.log.Warn().Err(m.err).Msg("kernel launch failed")
		if k.phase == phaseStarting {
			k.cfg.Metrics.StartFailures.Add(1)
			k.answerStart(m.err)
			ctx.Send(ctx.Parent(), &kernelGone{id: k.h.id})
			ctx.Stop(k.self)
			return
		}
		if k.phase == phaseTerminating {
			k.finish(ctx, nil)
			return
		}
		k.die(ctx, m.err)
		return
	}
	k.proc, k.client = m.proc, m.client
	k.upSince, k.hbOK = time.Now(), time.Now()
	if k.started.IsZero() {
		k.started = k.upSince
	}
	k.out = make(chan outbound, k.cfg.KernelQueue)
	go writeToKernel(m.client, k.out, k.cfg.Metrics, k.log)
	gen, self, sys, in := k.gen, k.self, k.sys, k.inbox
	go func() {
		select {
		case <-m.proc.Exited():
			sys.Root.Send(self, &procExited{gen: gen})
		case <-in.done: // the launch was released (or kept running for the next gateway)
		}
	}()
	if !k.pooled {
		k.persist()
	}
	if k.phase == phaseTerminating { // a shutdown arrived while launching
		k.requestShutdown(false)
		return
	}
	if k.phase == phaseStarting && !k.pooled {
		k.cfg.Metrics.Starts.Add(1)
		k.cfg.Metrics.StartDurations.Observe(time.Since(k.created))
		// The gateway answers the POST once the kernel is in the published
		// registry, so the client can use it as soon as it has its id.
		ctx.Send(ctx.Parent(), &kernelUp{h: k.h, waiter: k.startWaiter})
		k.startWaiter = nil
	}
	k.phase = phaseRunning
	k.readySince = time.Now()
	k.nudge()
	k.schedule(k.cfg.HeartbeatInterval, &hbTick{gen: k.gen})
	if _, ok := m.proc.(proxy.Poller); ok {
		k.schedule(k.cfg.LivenessInterval, &pollTick{gen: k.gen})
	}
	k.log.Info().Msg("kernel up")
}

// claim hands this warm pooled kernel to a start request: the gateway
// lists it and answers the request on *kernelUp. A kernel that is no
// longer fit (it is dying) sends the request back to be served afresh.
func (k *kernelActor) claim(ctx actor.Context, m *claim) {
	if !k.pooled || k.phase != phaseRunning || !k.ready.Ready() {
		ctx.Send(k.parent, &claimFailed{id: k.h.id, req: m.req, waiter: m.waiter})
		return
	}
	k.pooled = false
	k.log = k.log.With().Str("username", m.user).Logger()
	k.persist()
	k.h.touch()
	k.cfg.Metrics.Starts.Add(1)
	k.cfg.Metrics.StartDurations.Observe(time.Since(m.at))
	ctx.Send(k.parent, &kernelUp{h: k.h, waiter: m.waiter})
	k.log.Info().Msg("kernel taken from its pool")
}

// answerStart fails the POST still waiting for this kernel, if any.
func (k *kernelActor) answerStart(err error) {
	if k.startWaiter != nil {
		k.sys.Root.Send(k.startWaiter, &started{err: err})
		k.startWaiter = nil
	}
}

// nudge sends a kernel_info_request until the kernel has answered one and
// iopub has delivered something (see zmq.Readiness), then answers waiting
// restarts.
func (k *kernelActor) nudge() {
	if k.ready.Ready() || k.client == nil {
		return
	}
	if time.Since(k.readySince) > k.cfg.KernelInfoTimeout {
		k.log.Warn().Dur("after", k.cfg.KernelInfoTimeout).Msg("kernel never answered kernel_info")
		k.answerRestarts(fmt.Errorf("%w: no kernel_info reply within %v", ErrLaunchTimeout, k.cfg.KernelInfoTimeout))
		return
	}
	probe, err := k.ready.Probe()
	if err == nil {
		err = k.client.Send(zmq.Shell, probe)
	}
	if err != nil {
		k.log.Warn().Err(err).Msg("kernel_info probe failed")
	}
	k.schedule(zmq.NudgeInterval, &nudgeTick{gen: k.gen})
}

func (k *kernelActor) answerRestarts(err error) {
	for _, w := range k.restartWaiters {
		res := &started{err: err}
		if err == nil {
			res.model = k.h.model()
		}
		k.sys.Root.Send(w, res)
	}
	k.restartWaiters = nil
}

// untracked are the requests whose busy/idle brackets do not change a
// kernel's execution_state (Jupyter Server 2.x's rule), so probes and
// housekeeping never make a kernel look busy.
var untracked = map[string]bool{
	"comm_info_request": true, "kernel_info_request": true, "shutdown_request": true,
	"interrupt_request": true, "debug_request": true, "input_reply": true,
}

func (k *kernelActor) onMessage(r zmq.Received) {
	if r.Err != nil {
		switch {
		case errors.Is(r.Err, zmq.ErrSocket):
			if k.phase == phaseRunning {
				// The kernel closed a channel: it is of no use any more.
				k.log.Warn().Err(r.Err).Msg("kernel channel lost; killing the kernel")
				k.proc.Signal(syscall.SIGKILL)
			}
		default:
			k.cfg.Metrics.BadKernelMessages.Add(1)
			if k.badSigs++; lograte.Crossed(k.badSigs-1, k.badSigs) {
				k.log.Warn().Err(r.Err).Uint64("dropped", k.badSigs).Msg("dropped a malformed kernel message")
			}
		}
		return
	}
	wasReady := k.ready.Ready()
	if k.ready.Observe(r) && !wasReady {
		k.log.Debug().Msg("kernel ready")
		if *k.h.state.Load() == StateStarting || *k.h.state.Load() == StateRestarting {
			k.h.setState(StateIdle)
		}
		k.answerRestarts(nil)
		if k.pooled {
			k.sys.Root.Send(k.parent, &poolReady{id: k.h.id})
		}
		held := k.held
		k.held = nil
		for _, ob := range held {
			k.toKernel(ob)
		}
		k.h.direct.Store(k.client)
	}
	if r.Channel != zmq.IOPub {
		if !k.ready.IsProbeReply(r.Msg) {
			k.route(r)
		}
		return
	}
	k.h.touch()
	if r.Msg.MsgType() == "status" && !k.onStatus(r.Msg) {
		return // the bracket of one of our own probes
	}
	k.broadcast(&kernelOut{ch: r.Channel, m: r.Msg})
}

// onStatus tracks execution_state from an iopub status and reports whether
// the status should reach clients (not when it brackets our own probe).
func (k *kernelActor) onStatus(m *zmq.Message) bool {
	var c struct {
		ExecutionState string `json:"execution_state"`
	}
	parent, _ := m.Parent()
	if parent.Session == k.ready.Session {
		return false
	}
	if m.DecodeContent(&c) != nil || c.ExecutionState == "" || c.ExecutionState == StateStarting {
		return true
	}
	cur := *k.h.state.Load()
	if cur == StateRestarting || cur == StateDead {
		return true
	}
	if untracked[parent.MsgType] {
		if cur == StateStarting {
			k.h.setState(StateIdle)
		}
		return true
	}
	k.h.setState(c.ExecutionState)
	return true
}

func (k *kernelActor) interrupt() error {
	if k.phase != phaseRunning {
		return fmt.Errorf("%w: kernel %s is %s", ErrKernelUnavailable, k.h.id, *k.h.state.Load())
	}
	if k.spec.InterruptMode == "message" {
		m, err := zmq.NewMessage("interrupt_request", k.ready.Session, "kernelgate", nil, nil)
		if err != nil {
			return err
		}
		return k.client.Send(zmq.Control, m)
	}
	sig := syscall.SIGINT
	if name := k.env["EG_ALTERNATE_SIGINT"]; name != "" {
		s, ok := signalByName(name)
		if !ok {
			return fmt.Errorf("%w: EG_ALTERNATE_SIGINT %q is not a signal", ErrBadRequest, name)
		}
		sig = s
	}
	return k.proc.Signal(sig)
}

func (k *kernelActor) restart(ctx actor.Context) {
	switch k.phase {
	case phaseTerminating, phaseStarting:
		ctx.Respond(&started{err: fmt.Errorf("%w: kernel %s is %s", ErrKernelUnavailable, k.h.id, *k.h.state.Load())})
		return
	case phaseRestarting:
		k.restartWaiters = append(k.restartWaiters, ctx.Sender())
		return
	}
	k.restartWaiters = append(k.restartWaiters, ctx.Sender())
	k.phase = phaseRestarting
	k.h.setState(StateRestarting)
	k.broadcast(&kernelStatus{state: StateRestarting})
	k.log.Info().Msg("kernel restarting on request")
	k.requestShutdown(true)
}

func (k *kernelActor) shutdown(ctx actor.Context, reason string) {
	if ctx.Sender() != nil {
		k.stopWaiters = append(k.stopWaiters, ctx.Sender())
	}
	if k.phase == phaseTerminating {
		return
	}
	k.endReason = reason
	k.stopping = time.Now()
	prev := k.phase
	k.phase = phaseTerminating
	k.answerRestarts(fmt.Errorf("%w: kernel %s is shutting down", ErrKernelUnavailable, k.h.id))
	k.answerStart(fmt.Errorf("%w: kernel %s was shut down while starting", ErrKernelUnavailable, k.h.id))
	if k.proc != nil && prev != phaseStarting {
		k.requestShutdown(false)
	}
	// Otherwise the launch in flight ends in onLaunched, which finishes.
}

// requestShutdown asks the kernel to exit, then escalates to SIGTERM and
// SIGKILL on a timer; the exit arrives as *procExited.
func (k *kernelActor) requestShutdown(restart bool) {
	if k.client != nil {
		if m, err := zmq.NewMessage("shutdown_request", k.ready.Session, "kernelgate", nil,
			map[string]bool{"restart": restart}); err == nil {
			k.client.Send(zmq.Control, m)
		}
	}
	k.schedule(k.cfg.ShutdownWait/2, &shutdownStage{gen: k.gen, stage: 1})
	k.schedule(k.cfg.ShutdownWait, &shutdownStage{gen: k.gen, stage: 2})
	if _, ok := k.proc.(proxy.Poller); ok {
		// Polls now come quickly to notice the exit; this second chain of
		// polls ends with the launch, as the first does.
		k.schedule(k.cfg.PollInterval, &pollTick{gen: k.gen})
	}
}

func (k *kernelActor) escalate(stage int) {
	select {
	case <-k.proc.Exited():
		return
	default:
	}
	sig := syscall.SIGTERM
	if stage > 1 {
		sig = syscall.SIGKILL
	}
	k.log.Info().Str("signal", sig.String()).Msg("kernel did not exit; signalling")
	k.proc.Signal(sig)
}

// onExit handles the end of the kernel process: expected (shutdown,
// restart) or not (auto-restart, or death after too many).
func (k *kernelActor) onExit(ctx actor.Context) {
	exitErr := k.proc.ExitErr()
	k.release()
	switch k.phase {
	case phaseTerminating:
		k.finish(ctx, nil)
	case phaseRestarting:
		k.cfg.Metrics.Restarts.Add(1)
		k.launch()
	default:
		if time.Since(k.upSince) > k.cfg.StableAfter {
			k.restarts = 0
		}
		if k.pooled {
			k.die(ctx, fmt.Errorf("%w while waiting in its pool: %s", ErrKernelDied, exitText(exitErr)))
			return
		}
		if k.restarts >= k.cfg.RestartLimit {
			k.die(ctx, fmt.Errorf("%w: restarted %d times in a row, last exit: %s", ErrKernelDied, k.restarts, exitText(exitErr)))
			return
		}
		k.restarts++
		k.cfg.Metrics.Restarts.Add(1)
		k.phase = phaseRestarting
		k.h.setState(StateRestarting)
		k.broadcast(&kernelStatus{state: StateRestarting})
		k.log.Warn().Str("exit", exitText(exitErr)).Int("restart", k.restarts).Msg("kernel died; restarting")
		k.launch()
	}
}

// release closes the channels and cleans up the process of this launch.
func (k *kernelActor) release() {
	k.h.direct.Store(nil) // readers fall back to the actor before the client goes
	k.inbox.close()
	if k.out != nil {
		close(k.out)
		k.out = nil
	}
	if k.client != nil {
		go k.client.Close() // waits for its readers; not on the actor's goroutine
		k.client = nil
	}
	if k.proc != nil && !k.kept {
		if err := k.proc.Cleanup(); err != nil {
			k.log.Warn().Err(err).Msg("kernel cleanup")
		}
	}
	k.proc = nil
}

func (k *kernelActor) die(ctx actor.Context, err error) {
	k.h.setState(StateDead)
	k.broadcast(&kernelStatus{state: StateDead})
	k.answerRestarts(err)
	k.finish(ctx, err)
}

// finish answers everyone still waiting, closes the sessions' websockets
// (after what they have queued), then leaves the registry and stops.
func (k *kernelActor) finish(ctx actor.Context, err error) {
	k.release()
	k.answerStart(fmt.Errorf("%w: kernel %s stopped", ErrKernelUnavailable, k.h.id))
	k.answerRestarts(fmt.Errorf("%w: kernel %s stopped", ErrKernelUnavailable, k.h.id))
	k.gen++ // anything still in flight is stale now
	k.phase = phaseTerminating
	reason := "kernel shut down"
	switch {
	case k.kept:
		reason = "gateway restarting; the kernel keeps running"
		k.log.Info().Msg("kernel left running for the next gateway process")
	case err != nil:
		reason = "kernel died"
		k.log.Error().Err(err).Msg("kernel dead")
	case k.endReason != "":
		reason = k.endReason
		// Culled clients learn it the way they learn of a death.
		k.broadcast(&kernelStatus{state: StateDead})
		k.log.Info().Str("reason", reason).Msg("kernel shut down")
	default:
		k.log.Info().Msg("kernel shut down")
	}
	// Out of the registry first: once a client sees its websocket close, the
	// kernel is already gone from the REST API. The sessions are ended when
	// the gateway confirms (*goneAck).
	k.closeReason = reason
	if !k.stopping.IsZero() {
		k.cfg.Metrics.ShutdownDurations.Observe(time.Since(k.stopping))
	}
	if k.cfg.Store != nil && !k.kept && !k.pooled {
		if err := k.cfg.Store.Delete(k.h.id); err != nil {
			k.log.Warn().Err(err).Msg("cannot delete the kernel's record")
		}
	}
	ctx.Request(ctx.Parent(), &kernelGone{id: k.h.id, waiters: k.stopWaiters})
	k.stopWaiters = nil
}

// endSessions closes every session's websocket after what it has queued,
// then the actor stops.
func (k *kernelActor) endSessions(ctx actor.Context) {
	if len(k.sessions) == 0 {
		k.stop(ctx)
		return
	}
	k.ending = len(k.sessions)
	for _, pid := range k.sessions {
		ctx.Request(pid, &kernelEnded{code: k.closeCode(), reason: k.closeReason})
	}
	k.schedule(5*time.Second, &endTimeout{})
}

// stop ends the actor once its sessions have closed their websockets.
func (k *kernelActor) stop(ctx actor.Context) { ctx.Stop(k.self) }

func (k *kernelActor) probeHeartbeat() {
	if k.client == nil || k.phase != phaseRunning || k.cfg.HeartbeatInterval < 0 {
		return
	}
	c, gen, self, sys, d := k.client, k.gen, k.self, k.sys, k.cfg.HeartbeatInterval
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		sys.Root.Send(self, &hbResult{gen: gen, err: c.Heartbeat(ctx)})
	}()
}

func (k *kernelActor) onHeartbeat(err error) {
	if k.phase != phaseRunning {
		return
	}
	if err == nil {
		k.hbOK = time.Now()
	} else if time.Since(k.hbOK) > k.cfg.HeartbeatTimeout {
		k.log.Warn().Dur("silent_for", time.Since(k.hbOK)).Msg("kernel heartbeat lost; killing the kernel")
		k.proc.Signal(syscall.SIGKILL)
		return
	}
	k.schedule(k.cfg.HeartbeatInterval, &hbTick{gen: k.gen})
}

// poll asks a kernel that cannot announce its own end whether it lives (a
// remote kernel's launcher, through its comm port), off the actor's
// goroutine; a kernel found gone closes its Exited, which arrives as
// *procExited. The next poll is scheduled when this one has answered, sooner
// while the kernel is being stopped.
func (k *kernelActor) poll() {
	p, ok := k.proc.(proxy.Poller)
	if !ok {
		return
	}
	gen, self, sys := k.gen, k.self, k.sys
	next := k.cfg.LivenessInterval
	if k.phase == phaseTerminating || k.phase == phaseRestarting {
		next = k.cfg.PollInterval
	}
	go func() {
		p.Poll()
		sendLater(sys, self, next, &pollTick{gen: gen})
	}()
}

// schedule delivers msg to this actor after d, from a timer (no goroutine
// waits meanwhile).
func (k *kernelActor) schedule(d time.Duration, msg any) {
	if d <= 0 {
		return
	}
	sendLater(k.sys, k.self, d, msg)
}

// exitText is how a kernel ended, for the log: "signal: killed", "exit
// status 1", or "exited" when its provisioner knows no more.
func exitText(err error) string {
	if err == nil {
		return "exited"
	}
	return err.Error()
}

// connectTries bounds the dials of one launch's channels.
const connectTries = 3

func alive(proc proxy.Kernel) bool {
	select {
	case <-proc.Exited():
		return false
	default:
		return true
	}
}

// starter returns what the next launch runs: the provisioner's Launch, or,
// for the first launch of a recorded kernel, its Recover.
func (k *kernelActor) starter() func(context.Context) (proxy.Kernel, error) {
	if rec := k.recovering; rec != nil {
		k.recovering = nil
		r, ok := k.prov.(proxy.Recoverer)
		if !ok {
			return func(context.Context) (proxy.Kernel, error) {
				return nil, fmt.Errorf("%w: its process proxy cannot recover kernels", proxy.ErrGone)
			}
		}
		req := proxy.RecoverRequest{KernelID: rec.ID, Spec: k.spec, Connection: rec.Connection,
			ProcessInfo: rec.ProcessInfo, Logger: k.log}
		return func(ctx context.Context) (proxy.Kernel, error) { return r.Recover(ctx, req) }
	}
	req := proxy.LaunchRequest{KernelID: k.h.id, Spec: k.spec, Env: k.env, Logger: k.log}
	return func(ctx context.Context) (proxy.Kernel, error) { return k.prov.Launch(ctx, req) }
}

// persist records the current launch so that a restarted gateway can take
// the kernel back.
func (k *kernelActor) persist() {
	if k.cfg.Store == nil || k.proc == nil {
		return
	}
	rec := Record{ID: k.h.id, KernelName: k.spec.Name, Username: k.h.username, Connection: k.proc.ConnectionInfo(),
		Env: k.env, ProcessInfo: k.proc.ProcessInfo(), Started: k.started}
	if err := k.cfg.Store.Save(rec); err != nil {
		k.log.Warn().Err(err).Msg("cannot record the kernel; it will not survive a gateway restart")
	}
}

// detach lets the kernel go on running without this gateway process: its
// websockets close with 1001 (clients come back to the next gateway), its
// channels close, and its process, files and record stay.
func (k *kernelActor) detach(ctx actor.Context) {
	if ctx.Sender() != nil {
		k.stopWaiters = append(k.stopWaiters, ctx.Sender())
	}
	if k.phase == phaseTerminating {
		return
	}
	if k.phase != phaseRunning || k.pooled {
		k.shutdown(ctx, "") // nothing worth keeping
		return
	}
	k.kept = true
	k.finish(ctx, nil)
}

// closeCode is what the websockets' close frames say: 1001 when the kernel
// lives on for the next gateway (JupyterLab reconnects), else 1000.
func (k *kernelActor) closeCode() int {
	if k.kept {
		return CloseGoingAway
	}
	return CloseNormal
}
