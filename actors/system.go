package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/kernelgate/kernelgate/actors/admission"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/rs/zerolog"
)

// Gateway is the actor tree as the rest of kernelgate uses it. Its methods
// block the calling goroutine (an HTTP handler) until the actor answers;
// reads of the kernel list come from the registry and never wait.
type Gateway struct {
	cfg   *Config
	sys   *actor.ActorSystem
	pid   *actor.PID
	live  registry
	pools atomic.Pointer[[]PoolStats]

	closeOnce sync.Once
	closeErr  error
	draining  atomic.Bool
	drained   atomic.Bool // Drain: no new kernels, the running ones stay
	replica   *replica    // nil outside a replica group

	// sweeps are the provisioners' Sweep calls, cancelled and waited for
	// by Close.
	sweeps     sync.WaitGroup
	stopSweeps context.CancelFunc
}

// Accepting reports whether the gateway takes new kernels (false once Close
// has begun, or while drained).
func (g *Gateway) Accepting() bool { return !g.draining.Load() && !g.drained.Load() }

// New checks cfg, starts the actor system and the gateway actor, and takes
// back the recorded kernels that still run.
func New(cfg Config) (*Gateway, error) {
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	actorLog := cfg.Logger.With().Str("component", "protoactor").Logger().Level(zerolog.WarnLevel)
	sys := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return slog.New(zerolog.NewSlogHandler(actorLog))
		}),
		actor.WithDeadLetterThrottleCount(0))
	if cfg.HeartbeatInterval > 0 {
		// A remote kernel whose echoes are late by half an interval beyond
		// a liveness interval has its launcher asked whether it lives. A
		// live kernel's launcher is then never asked, and one that died
		// with its host (no connection breaks) is found within about two
		// intervals of its last echo: 3 to 6 s after its death by default,
		// where a poll every liveness interval found it within 3 s.
		cfg.hb = newHeartbeats(cfg.HeartbeatInterval, cfg.HeartbeatTimeout,
			max(cfg.LivenessInterval, cfg.HeartbeatInterval)+cfg.HeartbeatInterval/2)
	}
	g := &Gateway{cfg: &cfg, sys: sys}
	props := actor.PropsFromProducer(func() actor.Actor {
		return panicLogged{log: cfg.Logger, Actor: &gatewayActor{
			cfg: g.cfg, reg: g,
			kernels:  make(map[string]*kernelHandle),
			pending:  make(map[string]string),
			byUser:   make(map[string]int),
			children: make(map[string]*actor.PID),
			byPID:    make(map[string]string),
			pools:    make(map[string]*pool),
			pooled:   make(map[string]*kernelHandle),
			retired:  make(map[string]bool),

			followWaiters: make(map[string][]*actor.PID),
		}}
	},
		actor.WithSupervisor(resumeSupervisor{maxFailures: 10, window: time.Minute}))
	pid, err := sys.Root.SpawnNamed(props, "gateway")
	if err != nil {
		cfg.hb.close()
		sys.Shutdown()
		return nil, fmt.Errorf("actors: spawn gateway: %w", err)
	}
	g.pid = pid
	g.recoverAll()
	if cfg.Replication != nil {
		g.startReplica()
	}
	g.sweep()
	return g, nil
}

// recoverAll takes back every recorded kernel that is still running, in
// parallel, before New returns (so the first request already finds them),
// and forgets the others.
func (g *Gateway) recoverAll() {
	if g.cfg.Store == nil || g.cfg.Replication != nil {
		return // a replica takes its kernels back as it joins its group
	}
	recs, err := g.cfg.Store.Load()
	if err != nil {
		g.cfg.Logger.Warn().Err(err).Msg("some kernel records are unreadable; skipped")
	}
	var wg sync.WaitGroup
	for _, rec := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := g.request(g.pid, &recoverKernel{rec: rec}, g.cfg.LaunchTimeout+10*time.Second)
			if err == nil {
				err = res.(*started).err
			}
			log := g.cfg.Logger.With().Str("kernel_id", rec.ID).Str("kernelspec", rec.KernelName).Logger()
			if err != nil {
				log.Info().Err(err).Msg("recorded kernel not recovered; forgotten")
				g.cfg.Store.Delete(rec.ID)
				return
			}
			log.Info().Msg("kernel recovered")
		}()
	}
	wg.Wait()
}

// sweep hands each provisioner that can clear what an earlier gateway
// process left (proxy.Sweeper) the ids of the kernels taken back; the
// sweeps run in the background, so a resource manager that does not answer
// holds up nothing.
func (g *Gateway) sweep() {
	ctx, cancel := context.WithCancel(context.Background())
	g.stopSweeps = cancel
	var recovered []string
	for _, m := range g.Kernels() {
		recovered = append(recovered, m.ID)
	}
	if g.cfg.Replication != nil {
		// In a group, what this replica launched may be another's now.
		recs, err := g.cfg.Replication.Group.Load()
		if err != nil {
			g.cfg.Logger.Warn().Err(err).Msg("cannot read the group's records; nothing left by an earlier process is cleared")
			cancel()
			return
		}
		for _, r := range recs {
			recovered = append(recovered, r.ID)
		}
	}
	for _, p := range g.cfg.Proxies.Provisioners() {
		s, ok := p.(proxy.Sweeper)
		if !ok {
			continue
		}
		g.sweeps.Go(func() {
			if err := s.Sweep(ctx, recovered); err != nil {
				g.cfg.Logger.Warn().Err(err).Msg("clearing what an earlier gateway process left")
			}
		})
	}
}

// request sends msg to pid and waits up to timeout for the answer.
func (g *Gateway) request(pid *actor.PID, msg any, timeout time.Duration) (any, error) {
	res, err := g.sys.Root.RequestFuture(pid, msg, timeout).Result()
	switch {
	case errors.Is(err, actor.ErrTimeout):
		return nil, fmt.Errorf("%w: none within %v", ErrTimeout, timeout)
	case errors.Is(err, actor.ErrDeadLetter):
		return nil, fmt.Errorf("%w: the kernel is gone", ErrNoSuchKernel)
	case err != nil:
		return nil, err
	}
	return res, nil
}

// StartKernel admits req and waits until the kernel is launched and its
// channels are connected.
func (g *Gateway) StartKernel(req StartRequest) (Model, error) {
	if g.drained.Load() {
		return Model{}, fmt.Errorf("%w: draining, no new kernels", ErrShuttingDown)
	}
	s, _ := req.Env["KERNEL_LAUNCH_TIMEOUT"].(string)
	timeout := max(g.cfg.LaunchTimeout, admission.LaunchTimeout(s, g.cfg.LaunchTimeout))
	admitted := false
	if g.replica != nil {
		forget, err := g.replica.admitInGroup(req)
		if err != nil {
			return Model{}, err
		}
		defer forget()
		admitted = true
	}
	return launchOutcome(g.request(g.pid, &startKernel{req: req, admitted: admitted}, timeout+10*time.Second))
}

// launchOutcome is the answer to a start or a restart: the kernel's model,
// or why it did not come up (no answer in time is a launch timeout: EG's
// answer).
func launchOutcome(res any, err error) (Model, error) {
	if errors.Is(err, ErrTimeout) {
		err = fmt.Errorf("%w: %w", ErrLaunchTimeout, err)
	}
	if err != nil {
		return Model{}, err
	}
	r := res.(*started)
	return r.model, r.err
}

// Kernels returns the models of all live kernels, oldest first.
func (g *Gateway) Kernels() []Model {
	live := g.live.list()
	out := make([]Model, len(live))
	for i, h := range live {
		out[i] = h.model()
	}
	return out
}

// Kernel returns one kernel's model.
func (g *Gateway) Kernel(id string) (Model, error) {
	h, err := g.handle(id)
	if err != nil {
		return Model{}, err
	}
	return h.model(), nil
}

func (g *Gateway) handle(id string) (*kernelHandle, error) {
	h, ok := g.live.get(id)
	if !ok && g.replica != nil {
		h, ok = g.follow(id)
	}
	if !ok {
		return nil, fmt.Errorf("%w: Kernel does not exist: %s", ErrNoSuchKernel, id)
	}
	return h, nil
}

// follow follows a kernel of the group this replica has not seen yet
// (started elsewhere a moment ago) and returns it once it is listed here.
func (g *Gateway) follow(id string) (*kernelHandle, bool) {
	rec, err := g.replica.cfg.Group.Get(id)
	if err != nil || rec.Pending {
		return nil, false
	}
	if _, err := g.request(g.pid, &followKernel{rec: rec}, 10*time.Second); err != nil {
		return nil, false
	}
	return g.live.get(id)
}

// Interrupt interrupts the kernel as its kernelspec says (signal or
// interrupt_request); it does not wait for the kernel to react.
func (g *Gateway) Interrupt(id string) error {
	h, err := g.handle(id)
	if err != nil {
		return err
	}
	_, _, err = g.onOwner(h, "interrupt", 10*time.Second, func() (Model, error) {
		res, err := g.request(h.pid, &interruptKernel{}, 10*time.Second)
		if err != nil {
			return Model{}, err
		}
		return Model{}, res.(*result).err
	})
	return err
}

// Restart restarts the kernel under the same id and returns its model once
// the new process has answered kernel_info.
func (g *Gateway) Restart(id string) (Model, error) {
	h, err := g.handle(id)
	if err != nil {
		return Model{}, err
	}
	timeout := g.cfg.ShutdownWait + g.cfg.LaunchTimeout + g.cfg.KernelInfoTimeout + 10*time.Second
	m, _, err := g.onOwner(h, "restart", timeout, func() (Model, error) {
		return launchOutcome(g.request(h.pid, &restartKernel{}, timeout))
	})
	return m, err
}

// Shutdown stops the kernel and waits until it is gone.
func (g *Gateway) Shutdown(id string) error {
	h, err := g.handle(id)
	if err != nil {
		return err
	}
	_, forwarded, err := g.onOwner(h, "shutdown", g.cfg.ShutdownWait+15*time.Second, func() (Model, error) {
		res, err := g.request(h.pid, &shutdownKernel{}, g.cfg.ShutdownWait+15*time.Second)
		if err != nil {
			return Model{}, err
		}
		return Model{}, res.(*result).err
	})
	if err != nil || !forwarded {
		return err
	}
	// The owner's record is gone: so goes the follower here, before the
	// answer (a GET here must not find the kernel any more).
	_, err = g.request(h.pid, &recordGone{}, 10*time.Second)
	if errors.Is(err, ErrNoSuchKernel) {
		err = nil
	}
	return err
}

// onOwner runs here on kernel h when this replica owns it and forwards
// action to its owner otherwise. While the kernel's owner is gone (it died
// and its lease has not lapsed yet) it waits for a replica (perhaps this
// one) to take the kernel over, up to one lease and a sync, then asks
// again: a client of a dead replica's kernel gets its restart done, late,
// rather than an error.
func (g *Gateway) onOwner(h *kernelHandle, action string, timeout time.Duration, here func() (Model, error)) (m Model, forwarded bool, err error) {
	var deadline time.Time
	for {
		if !h.follower.Load() {
			m, err = here()
			return m, false, err
		}
		holder := g.replica.holder(h.id)
		m, err = g.replica.act(h.id, action, timeout)
		if !errors.Is(err, ErrOwnerGone) {
			return m, true, err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(g.replica.cfg.LeaseDuration + 2*g.replica.cfg.Sync)
		}
		if !g.replica.awaitNewOwner(h, holder, deadline) {
			return m, true, err
		}
	}
}

// Act interrupts, restarts or shuts down kernel id here, for another
// replica that forwards it (this one owns the kernel); it never forwards
// again.
func (g *Gateway) Act(id, action string) (Model, error) {
	h, err := g.handle(id)
	if err != nil {
		return Model{}, err
	}
	if h.follower.Load() {
		return Model{}, fmt.Errorf("%w: %w", ErrKernelUnavailable, ErrNotOwner)
	}
	switch action {
	case "interrupt":
		return Model{}, g.Interrupt(id)
	case "restart":
		return g.Restart(id)
	case "shutdown":
		return Model{}, g.Shutdown(id)
	}
	return Model{}, fmt.Errorf("%w: unknown action %q", ErrBadRequest, action)
}

// Close refuses new kernels, shuts every kernel down (waiting up to
// timeout), then stops the actor system. Later calls return the first
// call's result.
func (g *Gateway) Close(timeout time.Duration) error {
	g.closeOnce.Do(func() {
		g.draining.Store(true)
		_, g.closeErr = g.request(g.pid, &drain{keep: g.cfg.KeepKernelsOnStop}, timeout)
		if g.replica != nil {
			g.replica.close()
		}
		g.stopSweeps()
		g.sweeps.Wait()
		// The wheel stops before the actors it reports to.
		g.cfg.hb.close()
		g.sys.Shutdown()
	})
	return g.closeErr
}
