package actors

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/zmq"
)

// interrupt serves *interruptKernel: as the kernelspec says, an
// interrupt_request on control (answered at once) or a signal (answered by
// the runner once delivered).
func (k *kernelActor) interrupt(ctx actor.Context) {
	if k.follower {
		ctx.Respond(&result{err: ErrNotOwner})
		return
	}
	if k.phase != phaseRunning || !k.up {
		ctx.Respond(&result{err: k.unavailable()})
		return
	}
	k.h.events.add("interrupt requested")
	if k.spec.InterruptMode == "message" {
		m, err := zmq.NewMessage("interrupt_request", k.ready.Session, "kernelgate", nil, nil)
		if err == nil {
			k.run.sendKernel(toKernel{ch: zmq.Control, m: m})
		}
		ctx.Respond(&result{err: err})
		return
	}
	sig := syscall.SIGINT
	if name := k.env["EG_ALTERNATE_SIGINT"]; name != "" {
		s, ok := signalByName(name)
		if !ok {
			ctx.Respond(&result{err: fmt.Errorf("%w: EG_ALTERNATE_SIGINT %q is not a signal", ErrBadRequest, name)})
			return
		}
		sig = s
	}
	k.run.signal(sig, ctx.Sender())
}

// unavailable is the error of a request the kernel cannot serve in its
// present state.
func (k *kernelActor) unavailable() error {
	return fmt.Errorf("%w: kernel %s is %s", ErrKernelUnavailable, k.h.id, *k.h.state.Load())
}

// restart serves *restartKernel: the kernel is asked to exit, and the next
// launch answers the request once it is ready.
func (k *kernelActor) restart(ctx actor.Context) {
	if k.follower {
		ctx.Respond(&started{err: ErrNotOwner})
		return
	}
	switch k.phase {
	case phaseTerminating, phaseStarting:
		ctx.Respond(&started{err: k.unavailable()})
		return
	case phaseRestarting:
		k.restartWaiters = append(k.restartWaiters, ctx.Sender())
		return
	}
	k.restartWaiters = append(k.restartWaiters, ctx.Sender())
	k.phase = phaseRestarting
	k.h.setState(StateRestarting)
	k.broadcastStatus(StateRestarting)
	k.log.Info().Msg("kernel restarting on request")
	k.h.events.add("restart requested")
	k.requestShutdown(true)
}

// shutdown serves *shutdownKernel; reason, when set, is what clients are
// told (a cull).
func (k *kernelActor) shutdown(ctx actor.Context, reason string) {
	k.awaitGone(ctx)
	if k.phase == phaseTerminating {
		return
	}
	if k.follower {
		// Only its owner shuts the kernel down: this replica just lets go.
		k.finish(ctx, nil)
		return
	}
	k.endReason = reason
	k.stopAsked = time.Now()
	k.h.events.add("shutdown requested%s", suffix(reason))
	k.phase = phaseTerminating
	k.answerRestarts(fmt.Errorf("%w: kernel %s is shutting down", ErrKernelUnavailable, k.h.id))
	k.answerStart(fmt.Errorf("%w: kernel %s was shut down while starting", ErrKernelUnavailable, k.h.id))
	if k.up {
		k.requestShutdown(false)
	}
	// Otherwise the launch in flight ends in onLaunched, which goes on.
}

// requestShutdown asks the kernel to exit, then escalates to SIGTERM and
// SIGKILL on timers; the exit arrives as *procExited.
func (k *kernelActor) requestShutdown(restart bool) {
	if m, err := zmq.NewMessage("shutdown_request", k.ready.Session, "kernelgate", nil,
		map[string]bool{"restart": restart}); err == nil {
		k.run.sendKernel(toKernel{ch: zmq.Control, m: m})
	}
	k.schedule(k.cfg.ShutdownWait/2, &shutdownStage{gen: k.gen, stage: 1})
	k.schedule(k.cfg.ShutdownWait, &shutdownStage{gen: k.gen, stage: 2})
	if k.conn.poller {
		// Polls now come quickly to notice the exit (a chain running
		// already speeds up too); every chain ends with the launch.
		k.schedule(k.cfg.PollInterval, &pollTick{gen: k.gen})
	}
}

// escalate signals a kernel that has not exited in time.
func (k *kernelActor) escalate(stage int) {
	if !k.up {
		return
	}
	sig := syscall.SIGTERM
	if stage > 1 {
		sig = syscall.SIGKILL
	}
	k.log.Info().Str("signal", sig.String()).Msg("kernel did not exit; signalling")
	k.run.signal(sig, nil)
}

// keep serves *keepKernel: the kernel goes on running without this gateway
// process. Its websockets close with 1001 (clients come back to the next
// gateway), its channels close, and its process, files and record stay.
func (k *kernelActor) keep(ctx actor.Context) {
	if k.phase != phaseTerminating && (k.phase != phaseRunning || k.pooled) && !k.follower {
		k.shutdown(ctx, "") // nothing worth keeping
		return
	}
	k.awaitGone(ctx)
	if k.phase == phaseTerminating {
		return
	}
	k.kept = true
	k.finish(ctx, nil)
}

func (k *kernelActor) die(ctx actor.Context, err error) {
	k.h.events.add("dead: %v", err)
	k.h.setState(StateDead)
	k.broadcastStatus(StateDead)
	k.answerRestarts(err)
	k.finish(ctx, err)
}

// finish answers everyone still waiting, ends the launch, then (see leave)
// leaves the registry.
func (k *kernelActor) finish(ctx actor.Context, err error) {
	k.releaseRun(k.kept, k.forget())
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
		k.broadcastStatus(StateDead)
		k.log.Info().Str("reason", reason).Msg("kernel shut down")
	default:
		k.log.Info().Msg("kernel shut down")
	}
	k.closeReason = reason
	// Its last launch is cleaned up, and the kernel forgotten, before it is
	// said to be gone (a DELETE answered means no process, no files and no
	// record left, and its provisioner told), unless that hangs: then after
	// ShutdownWait.
	if !k.forgetting {
		select {
		case <-k.last.cleanedCh():
			k.leave(ctx)
			return
		default:
		}
	}
	k.schedule(k.cfg.ShutdownWait, &cleanupTimeout{})
}

// retireTimeout bounds a provisioner's Retire.
const retireTimeout = 30 * time.Second

// forget returns what is done, off the actor and after the last launch's
// cleanup, for a kernel that ends for good: its record deleted and its
// provisioner told (proxy.Retirer). A kernel kept for the next gateway
// process (or by another replica) is not forgotten.
func (k *kernelActor) forget() func() {
	if k.kept || k.follower { // a follower's kernel is its owner's to forget
		return nil
	}
	s := k.cfg.Store
	if k.pooled {
		s = nil // never recorded
	}
	r, _ := k.prov.(proxy.Retirer)
	if s == nil && r == nil {
		return nil
	}
	h, id, log := k.h, k.h.id, k.log
	return func() {
		h.forgotten.Store(true)
		if s != nil {
			if err := s.Delete(id); err != nil {
				log.Warn().Err(err).Msg("cannot delete the kernel's record")
			}
		}
		if r != nil {
			ctx, cancel := context.WithTimeout(context.Background(), retireTimeout)
			defer cancel()
			if err := r.Retire(ctx, id); err != nil {
				log.Warn().Err(err).Msg("the process proxy could not release what it held for the kernel")
			}
		}
	}
}

// suffix is ": s", or nothing for an empty s.
func suffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// awaitGone has the sender of ctx's message answered once the kernel is
// out of the registry: with its shutdowns, or, when it has left already
// (a second shutdown, the record's end seen twice), by the gateway after
// the kernelGone this actor sent it, which it handles first.
func (k *kernelActor) awaitGone(ctx actor.Context) {
	switch {
	case ctx.Sender() == nil:
	case k.left:
		ctx.Send(k.parent, &goneWaiters{waiters: []*actor.PID{ctx.Sender()}})
	default:
		k.stopWaiters = append(k.stopWaiters, ctx.Sender())
	}
}

// leave takes the kernel out of the registry and answers its shutdowns;
// the gateway's *goneAck then has its clients told (endSessions). Out of
// the registry first: once a client sees its websocket close, the kernel is
// already gone from the REST API.
func (k *kernelActor) leave(ctx actor.Context) {
	if k.left {
		return
	}
	k.left = true
	if !k.stopAsked.IsZero() {
		k.cfg.Metrics.ShutdownDurations.Observe(time.Since(k.stopAsked))
	}
	ctx.Request(k.parent, &kernelGone{id: k.h.id, waiters: k.stopWaiters})
	k.stopWaiters = nil
}
