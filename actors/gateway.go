package actors

import (
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/google/uuid"
	"github.com/kernelgate/kernelgate/actors/admission"
	"github.com/kernelgate/kernelgate/actors/store"
	"github.com/kernelgate/kernelgate/kernelspecs"
)

// gatewayActor is the registry of kernels and the admission point: limits
// (counting starts in flight), user authorization, env rules. It alone
// changes the registry readers see (Gateway.live).
type gatewayActor struct {
	cfg *Config
	reg *Gateway // where the registry is published

	kernels  map[string]*kernelHandle
	pending  map[string]string     // kernel id → user, for starts in flight
	byUser   map[string]int        // live + pending kernels per user
	children map[string]*actor.PID // kernel id → kernel actor
	byPID    map[string]string     // kernel actor id → kernel id, until the actor stops
	draining bool
	drainers []*actor.PID

	pools   map[string]*pool         // kernelspec → its warm pool
	pooled  map[string]*kernelHandle // kernel id → unclaimed pooled kernel
	retired map[string]bool          // pooled kernels shut down to make room, until gone

	followWaiters map[string][]*actor.PID // facade calls waiting for a follower to be listed
	nextRefill    time.Time               // when the earliest refill timer fires; zero if none
}

func (g *gatewayActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if g.cfg.CullIdleTimeout > 0 {
			ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return &cullerActor{cfg: g.cfg, reg: g.reg} }))
		}
		g.refill(ctx)
	case *startKernel:
		if err := g.start(ctx, m.req, ctx.Sender(), m.admitted); err != nil {
			ctx.Respond(&started{err: err})
		}
	case *claimFailed:
		if user, ok := g.pending[m.id]; ok {
			delete(g.pending, m.id)
			g.byUser[user]--
		}
		if err := g.start(ctx, m.req, m.waiter, g.cfg.Replication != nil); err != nil {
			ctx.Send(m.waiter, &started{err: err})
		}
	case *poolReady:
		g.poolReadied(ctx, m.id)
	case *poolTick:
		g.onPoolTick(ctx, m.at)
	case *kernelUp:
		if _, ok := g.pending[m.h.id]; ok {
			delete(g.pending, m.h.id)
			g.kernels[m.h.id] = m.h
			g.reg.live.add(m.h)
		}
		if m.waiter != nil {
			ctx.Send(m.waiter, &started{model: m.h.model()})
		}
		for _, w := range g.followWaiters[m.h.id] {
			ctx.Send(w, &result{})
		}
		delete(g.followWaiters, m.h.id)
	case *kernelGone:
		g.forget(ctx, m.id)
		for _, w := range m.waiters {
			ctx.Send(w, &result{})
		}
		if ctx.Sender() != nil {
			ctx.Respond(&goneAck{})
		}
	case *goneWaiters:
		for _, w := range m.waiters {
			ctx.Send(w, &result{})
		}
	case *actor.Terminated:
		// A kernel actor that stopped without saying goodbye (it kept
		// panicking) must not stay in the registry.
		if id, ok := g.byPID[m.Who.Id]; ok {
			delete(g.byPID, m.Who.Id)
			if _, listed := g.children[id]; listed {
				g.forget(ctx, id)
			}
			g.checkDrained()
		}
	case *drain:
		g.draining = true
		g.publishPools()
		g.drainers = append(g.drainers, ctx.Sender())
		for _, pid := range g.children {
			if m.keep {
				ctx.Request(pid, &keepKernel{})
			} else {
				ctx.Request(pid, &shutdownKernel{})
			}
		}
		g.checkDrained()
	case *recoverKernel:
		if err := g.takeBack(ctx, m.rec); err != nil {
			ctx.Respond(&started{err: err})
		}
	case *result: // a child's answer to the drain's shutdownKernel
	case *groupSync:
		g.syncGroup(ctx, m.recs, m.held)
	case *followKernel:
		g.followNow(ctx, m.rec)
	case *takeOver:
		g.takeOver(ctx, m.rec)
	case gatewayInspect:
		m(g)
	}
}

func (g *gatewayActor) forget(ctx actor.Context, id string) {
	if user, ok := g.pending[id]; ok {
		delete(g.pending, id)
		g.byUser[user]--
	}
	if h, ok := g.kernels[id]; ok {
		delete(g.kernels, id)
		g.byUser[h.username]--
		g.reg.live.remove(id)
	}
	delete(g.children, id) // byPID keeps it until the actor has stopped
	g.poolForget(id)
	g.checkDrained()
	g.refill(ctx)
}

// checkDrained answers the drains once every kernel actor has stopped: a
// kernel leaves the registry before it says goodbye to its clients (and,
// kept by a replica, hands their sessions over), and a drain waits for
// that too.
func (g *gatewayActor) checkDrained() {
	if !g.draining || len(g.byPID) > 0 {
		return
	}
	for _, d := range g.drainers {
		g.reg.sys.Root.Send(d, &result{})
	}
	g.drainers = nil
}

// start admits a request and hands it a warm kernel when one fits, else
// spawns a kernel actor for it; the kernel actor answers waiter itself once
// the kernel is up (or failed).
// admitted says the group's admission has checked the limits already.
func (g *gatewayActor) start(ctx actor.Context, req StartRequest, waiter *actor.PID, admitted bool) error {
	if g.draining {
		return fmt.Errorf("%w: no new kernels", ErrShuttingDown)
	}
	snap := g.cfg.Specs.Snapshot()
	name := strings.ToLower(req.Name)
	if name == "" {
		name = snap.Default
	}
	spec, ok := snap.Get(name)
	if !ok && name == "python" { // jupyter_client's alias
		spec, ok = snap.Get("python3")
	}
	if !ok {
		return fmt.Errorf("%w: no kernelspec named '%s'", ErrNoSuchKernelSpec, name)
	}
	env, err := admission.ClientEnv(req.Env, g.cfg.ClientEnvs)
	if err != nil {
		return err
	}
	user := env["KERNEL_USERNAME"]
	if user == "" {
		user = g.cfg.DefaultUsername
	}
	if err := admission.Authorize(g.cfg.Access, spec, user); err != nil {
		return err
	}
	if err := admission.UserLimit(g.cfg.MaxKernelsPerUser, g.byUser[user], user); err != nil && !admitted {
		return err
	}
	if g.poolable(env) {
		if h := g.takeWarm(spec.Name); h != nil {
			h.username = user // before it is published: no reader yet
			g.pending[h.id] = user
			g.byUser[user]++
			g.cfg.Metrics.PoolTakes.Add(1)
			ctx.Send(h.pid, &claim{user: user, req: req, waiter: waiter, at: time.Now()})
			// The refill waits a moment: on a small host a booting kernel
			// would slow the taker's first round trips.
			g.scheduleRefill(ctx, time.Now().Add(g.cfg.PoolRefillDelay))
			return nil
		}
	}
	id := env["KERNEL_ID"]
	if id == "" {
		id = newKernelID()
	}
	if _, dup := g.children[id]; dup {
		return fmt.Errorf("%w: a kernel with id %s already exists", ErrConflict, id)
	}
	// A pooled kernel yields its place to a kernel someone asked for.
	if err := admission.GatewayLimit(g.cfg.MaxKernels, len(g.children)); err != nil && !admitted && !g.retirePooled(ctx) {
		return err
	}
	if _, err := g.spawn(ctx, kernelOpts{spec: spec, id: id, user: user, env: admission.KernelEnv(g.cfg.envConfig(), spec, env, id, user), waiter: waiter}); err != nil {
		return err
	}
	g.pending[id] = user
	g.byUser[user]++
	return nil
}

// takeBack takes back a kernel an earlier gateway process recorded; its
// kernel actor answers the requester once the kernel's channels are up.
func (g *gatewayActor) takeBack(ctx actor.Context, rec store.Record) error {
	spec, ok := g.cfg.Specs.Snapshot().Get(rec.KernelName)
	if !ok {
		return fmt.Errorf("%w: no kernelspec named '%s' any more", ErrNoSuchKernelSpec, rec.KernelName)
	}
	if _, dup := g.children[rec.ID]; dup {
		return fmt.Errorf("%w: a kernel with id %s already exists", ErrConflict, rec.ID)
	}
	if _, err := g.spawn(ctx, kernelOpts{spec: spec, id: rec.ID, user: rec.Username, env: rec.Env, waiter: ctx.Sender(), recovering: &rec}); err != nil {
		return err
	}
	g.pending[rec.ID] = rec.Username
	g.byUser[rec.Username]++
	return nil
}

// kernelOpts describe a kernel actor to spawn.
type kernelOpts struct {
	spec     kernelspecs.Spec
	id, user string
	env      map[string]string
	waiter   *actor.PID // answered once the kernel is up, if set
	pooled   bool
	// recovering is set to take back a recorded kernel.
	recovering *store.Record
	// follow is set to follow a kernel another replica owns.
	follow *store.Record
}

// spawn starts a kernel actor.
func (g *gatewayActor) spawn(ctx actor.Context, o kernelOpts) (*kernelHandle, error) {
	spec, id, user, pooled := o.spec, o.id, o.user, o.pooled
	prov, err := g.cfg.Proxies.For(spec)
	if err != nil {
		return nil, err
	}
	log := g.cfg.Logger.With().Str("kernel_id", id).Str("kernelspec", spec.Name).Logger()
	if !pooled {
		log = log.With().Str("username", user).Logger()
	}
	h := newKernelHandle(id, spec.Name, user, g.cfg.KernelQueue)
	h.provisioner = spec.ProcessProxy.ClassName
	k := &kernelActor{
		cfg: g.cfg, prov: prov, spec: spec, h: h, log: log, env: o.env, replica: g.reg.replica,
		pooled:      pooled,
		recovering:  o.recovering,
		startWaiter: o.waiter,
		started:     startedAt(o.recovering),
		follower:    o.follow != nil,
		record:      o.follow,
		output:      newOutLog(g.cfg.SessionBuffer, int64(g.cfg.SessionBufferBytes)),
		sessions:    make(map[string]*session),
		routes:      make(map[string]sessionNum),
	}
	props := actor.PropsFromProducer(func() actor.Actor { return panicLogged{k, log} })
	pid, err := ctx.SpawnNamed(props, "kernel-"+id)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConflict, err)
	}
	h.pid = pid
	h.follower.Store(o.follow != nil)
	g.children[id] = pid
	g.byPID[pid.Id] = id
	switch {
	case o.follow != nil:
		log.Info().Msg("following a kernel of the group")
	case pooled:
		log.Info().Msg("pooled kernel starting")
	case o.recovering != nil:
		log.Info().Msg("recovering kernel")
	default:
		log.Info().Msg("kernel starting")
	}
	return h, nil
}

func newKernelID() string { return uuid.NewString() }

// startedAt is when a recorded kernel first started; zero for a new one.
func startedAt(rec *store.Record) time.Time {
	if rec == nil {
		return time.Time{}
	}
	return rec.Started
}
