package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/kernelgate/kernelgate/actors/store"
	"github.com/kernelgate/kernelgate/kernelspecs"
)

// The gateway actor's part in a replica group (see Replication): it follows
// the group's kernels, and takes over those whose owner is gone.

// syncGroup serves *groupSync: kernels new to this replica are followed,
// known ones are told their record, and followed kernels whose record is
// gone and whose lease is not held (their owner shut them down) leave.
func (g *gatewayActor) syncGroup(ctx actor.Context, recs []store.Record, held map[string]bool) {
	seen := make(map[string]bool, len(recs))
	for _, rec := range recs {
		seen[rec.ID] = true
		if pid, ok := g.children[rec.ID]; ok {
			ctx.Send(pid, &recordNow{rec: rec})
			continue
		}
		if !g.draining {
			g.follow(ctx, rec, nil)
		}
	}
	for id, h := range g.kernels {
		if h.follower.Load() && !seen[id] && !held[id] {
			ctx.Send(h.pid, &recordGone{})
		}
	}
}

// follow spawns a follower of a kernel another replica owns; waiter, when
// set, is answered once it is listed here.
func (g *gatewayActor) follow(ctx actor.Context, rec store.Record, waiter *actor.PID) {
	spec, ok := g.cfg.Specs.Snapshot().Get(rec.KernelName)
	if !ok {
		spec = kernelspecs.Spec{Name: rec.KernelName} // enough to follow; a takeover needs the spec back
	}
	if _, err := g.spawn(ctx, kernelOpts{spec: spec, id: rec.ID, user: rec.Username, env: rec.Env, waiter: waiter, follow: &rec}); err != nil {
		g.cfg.Logger.Warn().Err(err).Str("kernel_id", rec.ID).Msg("cannot follow the group's kernel")
		if waiter != nil {
			ctx.Send(waiter, &started{err: err})
		}
		return
	}
	g.pending[rec.ID] = rec.Username
	g.byUser[rec.Username]++
}

// followNow serves *followKernel: the facade met a kernel of the group it
// has not listed yet.
func (g *gatewayActor) followNow(ctx actor.Context, rec store.Record) {
	if _, ok := g.kernels[rec.ID]; ok {
		ctx.Respond(&result{})
		return
	}
	if _, ok := g.children[rec.ID]; ok {
		g.followWaiters[rec.ID] = append(g.followWaiters[rec.ID], ctx.Sender())
		return
	}
	g.follow(ctx, rec, ctx.Sender())
}

// takeOver serves *takeOver: this replica got the lease of a kernel whose
// owner is gone; it becomes the owner (following the kernel first if it
// did not yet).
func (g *gatewayActor) takeOver(ctx actor.Context, rec store.Record) {
	if g.draining {
		return
	}
	if _, ok := g.children[rec.ID]; !ok {
		g.follow(ctx, rec, nil)
	}
	if pid, ok := g.children[rec.ID]; ok {
		ctx.Send(pid, &promote{rec: rec})
	}
}
