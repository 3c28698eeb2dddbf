package actors

import (
	"fmt"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// onExit handles the end of the kernel process: expected (shutdown,
// restart) or not (auto-restart, or death after too many).
func (k *kernelActor) onExit(ctx actor.Context, exitErr error) {
	k.releaseRun(false, nil)
	switch k.phase {
	case phaseTerminating:
		k.finish(ctx, nil)
	case phaseRestarting:
		k.cfg.Metrics.Restarts.Add(1)
		k.h.restarts.Add(1)
		k.h.events.add("exited for its restart")
		k.launch()
	default:
		if time.Since(k.upSince) > k.cfg.StableAfter {
			k.restarts = 0
		}
		if k.pooled {
			k.die(ctx, fmt.Errorf("%w while waiting in its pool: %s", ErrKernelDied, exitText(exitErr)))
			return
		}
		k.phase = phaseRestarting
		k.h.setState(StateRestarting)
		k.broadcastStatus(StateRestarting)
		k.relaunch(ctx, exitErr)
	}
}

// relaunch restarts a kernel that died (or whose relaunch failed), unless
// it has been restarted RestartLimit times in a row: then it is dead.
func (k *kernelActor) relaunch(ctx actor.Context, cause error) {
	if k.restarts >= k.cfg.RestartLimit {
		k.die(ctx, fmt.Errorf("%w: restarted %d times in a row, last: %s", ErrKernelDied, k.restarts, exitText(cause)))
		return
	}
	k.restarts++
	k.cfg.Metrics.Restarts.Add(1)
	k.h.restarts.Add(1)
	k.h.events.add("exited (%s); restarting, %d in a row", exitText(cause), k.restarts)
	k.log.Warn().Str("exit", exitText(cause)).Int("restart", k.restarts).Msg("kernel died; restarting")
	k.launch()
}

// kill ends a kernel that is of no use any more (it restarts): once per
// launch, whatever the number of reasons.
func (k *kernelActor) kill() {
	if !k.killed {
		k.killed = true
		k.run.signal(syscall.SIGKILL, nil)
	}
}

// probeHeartbeat pings the heartbeat channel every interval; a kernel whose
// echoes stopped for HeartbeatTimeout is hung: it is killed, and restarts.
func (k *kernelActor) probeHeartbeat() {
	if !k.up || k.phase != phaseRunning || k.cfg.HeartbeatInterval < 0 || k.follower {
		return
	}
	if silent := time.Since(k.hbOK); silent > k.cfg.HeartbeatTimeout {
		k.log.Warn().Dur("silent_for", silent).Msg("kernel heartbeat lost; killing the kernel")
		k.h.events.add("heartbeat lost for %v; killed", silent.Round(time.Second))
		k.kill()
		return
	}
	k.hbSeq++
	k.run.sendKernel(toKernel{seq: k.hbSeq})
	k.schedule(k.cfg.HeartbeatInterval, &hbTick{gen: k.gen})
}

// poll asks a kernel that cannot announce its own end whether it lives (a
// remote kernel's launcher, through its comm port), on its runner; a kernel
// found gone arrives as *procExited. The next poll is scheduled when this
// one has answered, sooner while the kernel is being stopped.
func (k *kernelActor) poll() {
	if !k.up || !k.conn.poller {
		return
	}
	next := k.cfg.LivenessInterval
	if k.phase == phaseTerminating || k.phase == phaseRestarting {
		next = k.cfg.PollInterval
	}
	k.run.poll(next)
}

// releaseRun ends the current launch, if any (see runner.release), whose
// cleanup then runs forget; with none, forget runs off the actor (it may do
// I/O) once the last launch is cleaned up, and reports *forgotten.
func (k *kernelActor) releaseRun(keep bool, forget func()) {
	if k.run == nil {
		if forget != nil {
			k.forgetting = true
			last, self, sys := k.last, k.self, k.sys
			go func() {
				<-last.cleanedCh()
				forget()
				sys.Root.Send(self, &forgotten{})
			}()
		}
		return
	}
	k.run.release(keep, forget)
	k.run, k.up = nil, false
}
