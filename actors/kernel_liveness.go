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

// heartbeatLost serves *hbSilent: the heartbeat wheel has had no echo from
// the kernel for HeartbeatTimeout. A running kernel in that state is hung:
// it is killed, and restarts.
func (k *kernelActor) heartbeatLost(silent time.Duration) {
	if !k.up || k.phase != phaseRunning || k.follower {
		return
	}
	k.log.Warn().Dur("silent_for", silent).Msg("kernel heartbeat lost; killing the kernel")
	k.h.events.add("heartbeat lost for %v; killed", silent.Round(time.Second))
	k.kill()
}

// poll serves *pollTick: it asks a kernel that cannot announce its own end
// whether it lives (a remote kernel's launcher, through its comm port), on
// its runner; a kernel found gone arrives as *procExited. While the kernel
// is being stopped or restarted polls come every PollInterval. While it
// runs they come every LivenessInterval only with heartbeats off: a kernel
// that echoes lives, and the wheel asks for a poll (pollNow) when its
// echoes are late.
func (k *kernelActor) poll() {
	if !k.up || !k.conn.poller {
		return
	}
	next := k.cfg.LivenessInterval
	switch {
	case k.phase == phaseTerminating || k.phase == phaseRestarting:
		next = k.cfg.PollInterval
	case k.cfg.hb != nil:
		next = 0
	}
	k.run.poll(next)
}

// pollNow serves *hbStale: the kernel's echoes are late; its launcher is
// asked once whether it lives (a stopping kernel is polled anyway).
func (k *kernelActor) pollNow() {
	if k.up && k.conn.poller && k.phase == phaseRunning {
		k.run.poll(0)
	}
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
