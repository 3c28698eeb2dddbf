package actors

import (
	"maps"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/kernelgate/kernelgate/actors/admission"
	"github.com/kernelgate/kernelgate/actors/proxy"
)

// Warm pools: per kernelspec, kernels launched ahead of demand so that a
// start is a hand-over. The gateway actor owns every pool; a pooled kernel
// is an ordinary kernel actor that has not been claimed yet. It counts
// against MaxKernels, is not in the published registry (so it is neither
// listed nor culled), dies instead of restarting, and tells the gateway
// once it has answered kernel_info (*poolReady).

// pool is one kernelspec's warm kernels.
type pool struct {
	warm     []*kernelHandle // ready, oldest first
	starting int             // launched for the pool, not ready yet
	failures int             // pooled launches in a row that never got ready
	retryAt  time.Time       // no pooled launch before this
}

// PoolStats describes one kernelspec's pool for metrics.
type PoolStats struct {
	Kernelspec string
	Size       int // wanted
	Warm       int // ready to take
	Starting   int // launching
}

// Messages of the pool's life.
type (
	// poolReady: a pooled kernel answered kernel_info.
	poolReady struct{ id string }
	// poolTick: a refill delay or backoff is over.
	poolTick struct{ at time.Time }
	// claim hands a warm kernel to a start request; the kernel actor
	// answers its parent with *kernelUp, or *claimFailed when it is no
	// longer fit (it is dying), and the request is then served afresh.
	claim struct {
		user   string
		req    StartRequest
		waiter *actor.PID
		at     time.Time // admitted
	}
	claimFailed struct {
		id     string
		req    StartRequest
		waiter *actor.PID
	}
)

// poolBackoffMax caps the wait between pooled launches that keep failing.
const poolBackoffMax = time.Minute

// poolSize is how many warm kernels the spec named name should have: the
// gateway's setting, else the kernelspec's metadata; none when its kernels
// run as their user (proxy.UserBound), who is not known before the take.
func (g *gatewayActor) poolSize(name string) int {
	spec, ok := g.cfg.Specs.Snapshot().Get(name)
	if ok {
		if p, err := g.cfg.Proxies.For(spec); err == nil {
			if ub, bound := p.(proxy.UserBound); bound && ub.UserBound(spec) {
				return 0
			}
		}
	}
	if n, set := g.cfg.Pools[name]; set {
		return n
	}
	if ok {
		return spec.PoolSize
	}
	return 0
}

// poolable reports whether a request's env can be honoured by a kernel
// launched before the request came: nothing beyond KERNEL_USERNAME (which
// the gateway records; pooled kernels never see it) and the variables the
// operator declared ignorable.
func (g *gatewayActor) poolable(env map[string]string) bool {
	for name := range env {
		if name != "KERNEL_USERNAME" && !slices.Contains(g.cfg.PoolIgnoredEnv, name) {
			return false
		}
	}
	return true
}

// takeWarm removes and returns the oldest warm kernel of spec, or nil.
func (g *gatewayActor) takeWarm(spec string) *kernelHandle {
	p := g.pools[spec]
	if p == nil || len(p.warm) == 0 {
		return nil
	}
	h := p.warm[0]
	p.warm = p.warm[1:]
	delete(g.pooled, h.id)
	g.publishPools()
	return h
}

// retirePooled shuts one pooled kernel down to free its place for a kernel
// someone asked for: a warm one (the oldest of the fullest pool), else one
// still booting. False if there is none.
func (g *gatewayActor) retirePooled(ctx actor.Context) bool {
	var fullest string
	for name, p := range g.pools {
		if len(p.warm) > 0 && (fullest == "" || len(p.warm) > len(g.pools[fullest].warm)) {
			fullest = name
		}
	}
	if fullest != "" {
		h := g.takeWarm(fullest)
		ctx.Send(h.pid, &shutdownKernel{})
		return true
	}
	for id, h := range g.pooled {
		if !g.retired[id] {
			g.retired[id] = true
			ctx.Send(h.pid, &shutdownKernel{})
			return true
		}
	}
	return false
}

// refill launches pooled kernels where pools are short, at most
// PoolLaunches at a time across all pools, within MaxKernels, and not
// before a failing pool's backoff is over; it retires warm kernels beyond
// a pool's size (the size went down). Then it publishes the pool stats.
func (g *gatewayActor) refill(ctx actor.Context) {
	defer g.publishPools()
	if g.draining {
		return
	}
	names := make(map[string]bool)
	for name := range g.cfg.Pools {
		names[name] = true
	}
	snap := g.cfg.Specs.Snapshot()
	for name, spec := range snap.Specs {
		if spec.PoolSize > 0 {
			names[name] = true
		}
	}
	for name := range g.pools {
		names[name] = true
	}
	launching := 0
	for _, p := range g.pools {
		launching += p.starting
	}
	now := time.Now()
	for _, name := range slices.Sorted(maps.Keys(names)) {
		size := g.poolSize(name)
		p := g.pools[name]
		if p == nil {
			p = &pool{}
			g.pools[name] = p
		}
		for len(p.warm) > 0 && len(p.warm)+p.starting > size {
			ctx.Send(g.takeWarm(name).pid, &shutdownKernel{})
		}
		spec, ok := snap.Get(name)
		for ok && len(p.warm)+p.starting < size && launching < g.cfg.PoolLaunches &&
			(g.cfg.MaxKernels <= 0 || len(g.children) < g.cfg.MaxKernels) {
			if now.Before(p.retryAt) {
				g.scheduleRefill(ctx, p.retryAt)
				break
			}
			id := newKernelID()
			env := admission.KernelEnv(g.cfg.envConfig(), spec, nil, id, "")
			delete(env, "KERNEL_USERNAME") // not known until the kernel is taken
			h, err := g.spawn(ctx, kernelOpts{spec: spec, id: id, env: env, pooled: true})
			if err != nil {
				g.cfg.Logger.Warn().Err(err).Str("kernelspec", name).Msg("cannot launch a pooled kernel")
				p.retryAt = now.Add(poolBackoff(p.failures + 1))
				p.failures++
				continue
			}
			g.pooled[id] = h
			p.starting++
			launching++
		}
	}
}

// poolReadied moves a pooled kernel from starting to warm.
func (g *gatewayActor) poolReadied(ctx actor.Context, id string) {
	h, ok := g.pooled[id]
	if !ok {
		return
	}
	p := g.pools[h.name]
	p.starting--
	p.failures = 0
	p.warm = append(p.warm, h)
	g.refill(ctx)
}

// poolForget drops a pooled kernel that is gone. One that never got ready
// is a failed launch and backs its pool off, unless it was retired while
// booting; one that died warm is simply replaced.
func (g *gatewayActor) poolForget(id string) {
	h, ok := g.pooled[id]
	if !ok {
		return
	}
	delete(g.pooled, id)
	retired := g.retired[id]
	delete(g.retired, id)
	p := g.pools[h.name]
	if i := slices.Index(p.warm, h); i >= 0 {
		p.warm = slices.Delete(p.warm, i, i+1)
		return
	}
	p.starting--
	if !retired {
		p.failures++
		p.retryAt = time.Now().Add(poolBackoff(p.failures))
	}
}

func poolBackoff(failures int) time.Duration {
	return min(time.Second<<min(failures-1, 6), poolBackoffMax)
}

// scheduleRefill makes sure a refill runs at about time at: one timer
// covers every request for a later time.
func (g *gatewayActor) scheduleRefill(ctx actor.Context, at time.Time) {
	if !g.nextRefill.IsZero() && !g.nextRefill.After(at) {
		return
	}
	g.nextRefill = at
	sendLater(ctx.ActorSystem(), ctx.Self(), time.Until(at), &poolTick{at: at})
}

// onPoolTick refills when a scheduled time has come.
func (g *gatewayActor) onPoolTick(ctx actor.Context, at time.Time) {
	if at.Equal(g.nextRefill) {
		g.nextRefill = time.Time{}
	}
	g.refill(ctx)
}

func (g *gatewayActor) publishPools() {
	stats := make([]PoolStats, 0, len(g.pools))
	for _, name := range slices.Sorted(maps.Keys(g.pools)) {
		p := g.pools[name]
		stats = append(stats, PoolStats{Kernelspec: name, Size: g.poolSize(name), Warm: len(p.warm), Starting: p.starting})
	}
	g.reg.pools.Store(&stats)
}

// Pools returns every pool's size and contents.
func (g *Gateway) Pools() []PoolStats {
	if p := g.pools.Load(); p != nil {
		return *p
	}
	return nil
}
