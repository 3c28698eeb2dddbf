package actors

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/kernelgate/kernelgate/actors/admission"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/store"
	"github.com/kernelgate/kernelgate/zmq"
)

// launch starts a launch: its runner provisions the kernel and dials its
// channels, and reports *launched.
func (k *kernelActor) launch() {
	k.gen++
	k.up, k.killed = false, false
	k.ready = zmq.Readiness{Session: "kernelgate-" + k.h.id, Username: "kernelgate"}
	k.run = newRunner(k, k.last)
	k.last = k.run
	k.run.start(k.starter(), admission.LaunchTimeout(k.env["KERNEL_LAUNCH_TIMEOUT"], k.cfg.LaunchTimeout))
}

// starter returns what the next launch runs: the provisioner's Launch, or,
// for the first launch of a recorded kernel, its Recover.
func (k *kernelActor) starter() func(context.Context) (proxy.Kernel, error) {
	if k.follower {
		return followStarter(*k.record)
	}
	if rec := k.recovering; rec != nil {
		k.recovering = nil
		return k.recoverer(*rec)
	}
	req := proxy.LaunchRequest{KernelID: k.h.id, Spec: k.spec, Env: k.env, Logger: k.log}
	return func(ctx context.Context) (proxy.Kernel, error) { return k.prov.Launch(ctx, req) }
}

// recoverer takes the recorded kernel back through its provisioner.
func (k *kernelActor) recoverer(rec store.Record) func(context.Context) (proxy.Kernel, error) {
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

func (k *kernelActor) onLaunched(ctx actor.Context, m *launched) {
	if m.err != nil {
		k.run = nil // the runner has ended with its launch
		switch {
		case k.follower:
			// The kernel is not answering its owner's record (it died, or
			// was restarted meanwhile): the group's next sync tries again.
			k.log.Debug().Err(m.err).Msg("cannot follow the kernel")
		default:
			k.log.Warn().Err(m.err).Msg("kernel launch failed")
			k.h.events.add("launch failed: %v", m.err)
		}
		switch {
		case k.phase == phaseStarting && !k.takingOver:
			if !k.follower {
				k.cfg.Metrics.StartFailures.Add(1)
			}
			k.answerStart(m.err)
			ctx.Send(k.parent, &kernelGone{id: k.h.id})
			ctx.Stop(k.self)
		case k.phase == phaseTerminating:
			k.finish(ctx, nil)
		case k.follower:
			k.refollow()
		default:
			// A relaunch that failed is one more restart in a row (a
			// kernel taken over that did not outlive its owner starts
			// again).
			k.relaunch(ctx, m.err)
		}
		return
	}
	k.up, k.conn, k.takingOver = true, *m, false
	k.upSince = time.Now()
	if k.started.IsZero() {
		k.started = k.upSince
	}
	k.h.startedAt.Store(k.started.UnixNano())
	k.h.host.Store(&m.ci.IP)
	k.h.events.add("up, channels on %s", m.ci.IP)
	if !k.pooled && !k.follower {
		k.persist()
	}
	if k.phase == phaseTerminating { // a shutdown arrived while launching
		k.requestShutdown(false)
		return
	}
	if k.phase == phaseStarting && !k.pooled {
		if !k.follower {
			k.cfg.Metrics.Starts.Add(1)
			k.cfg.Metrics.StartDurations.Observe(time.Since(k.created))
		}
		k.announce(ctx, k.startWaiter)
		k.startWaiter = nil
	}
	k.phase = phaseRunning
	k.readySince = time.Now()
	k.nudge()
	if m.poller && k.cfg.hb == nil {
		// Without heartbeats, polls are the only sign of life (with them,
		// the heartbeat wheel asks for one when echoes are late).
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
	k.persist() // on the runner: not on the start's path, outside a group
	k.h.touch()
	k.h.events.add("taken from its pool")
	k.cfg.Metrics.Starts.Add(1)
	k.cfg.Metrics.StartDurations.Observe(time.Since(m.at))
	k.announce(ctx, m.waiter)
	k.log.Info().Msg("kernel taken from its pool")
}

// announce has the gateway list the kernel and answer waiter: at once, or,
// in a replica group, once the kernel's record is written, so that every
// replica finds the kernel as soon as its client has its id.
func (k *kernelActor) announce(ctx actor.Context, waiter *actor.PID) {
	if k.cfg.Replication != nil && k.run != nil {
		k.announcing = append(k.announcing, waiter)
		k.run.do(func() { k.sys.Root.Send(k.self, &persisted{gen: k.gen}) }) // after the record's save
		return
	}
	ctx.Send(k.parent, &kernelUp{h: k.h, waiter: waiter})
}

// onPersisted serves *persisted: the record is written; the kernel is
// listed.
func (k *kernelActor) onPersisted(ctx actor.Context) {
	for _, w := range k.announcing {
		ctx.Send(k.parent, &kernelUp{h: k.h, waiter: w})
	}
	k.announcing = nil
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
	if k.ready.Ready() || !k.up {
		return
	}
	if time.Since(k.readySince) > k.cfg.KernelInfoTimeout {
		k.log.Warn().Dur("after", k.cfg.KernelInfoTimeout).Msg("kernel never answered kernel_info")
		k.answerRestarts(fmt.Errorf("%w: no kernel_info reply within %v", ErrLaunchTimeout, k.cfg.KernelInfoTimeout))
		return
	}
	probe, err := k.ready.Probe()
	if err != nil {
		k.log.Warn().Err(err).Msg("kernel_info probe failed")
	} else {
		k.run.sendKernel(toKernel{ch: zmq.Shell, m: probe})
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

// persist records the current launch (on its runner) so that a restarted
// gateway, or another replica, can take the kernel back; in a replica group
// it takes the kernel's lease first.
func (k *kernelActor) persist() {
	if k.cfg.Store == nil || k.run == nil {
		return
	}
	rec := store.Record{ID: k.h.id, KernelName: k.spec.Name, Username: k.h.username,
		Connection: k.conn.ci, Env: k.env, ProcessInfo: k.conn.info, Started: k.started}
	k.run.persist(k.cfg.Store, rec, k.cfg.Replication)
}
