package actors

import (
	"errors"

	"github.com/kernelgate/kernelgate/internal/lograte"
	"github.com/kernelgate/kernelgate/zmq"
)

// untracked are the requests whose busy/idle brackets do not change a
// kernel's execution_state (Jupyter Server 2.x's rule), so probes and
// housekeeping never make a kernel look busy.
var untracked = map[string]bool{
	"comm_info_request": true, "kernel_info_request": true, "shutdown_request": true,
	"interrupt_request": true, "debug_request": true, "input_reply": true,
}

// onMessage takes one message (or failure) from the kernel's channels.
func (k *kernelActor) onMessage(r zmq.Received) {
	if r.Err != nil {
		switch {
		case errors.Is(r.Err, zmq.ErrSocket):
			if !k.up || k.killed {
				break
			}
			// The kernel closed a channel: this launch is of no use any
			// more. Clients' messages wait for the next one.
			k.run.hold()
			switch {
			case k.follower:
				// Its owner restarted it, or it died (its owner will): find
				// out from the record at once.
				k.killed = true
				k.run.awaitRecord(k.cfg.Replication.Group, k.h.id, k.conn.ci, k.cfg.LaunchTimeout)
			case k.phase == phaseRunning:
				k.log.Warn().Err(r.Err).Msg("kernel channel lost; killing the kernel")
				k.h.events.add("a channel closed; killed")
				k.kill()
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
		if st := *k.h.state.Load(); st == StateStarting || st == StateRestarting {
			k.h.setState(StateIdle)
		}
		k.answerRestarts(nil)
		if k.pooled {
			k.sys.Root.Send(k.parent, &poolReady{id: k.h.id})
		}
		k.run.markReady()
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
	k.publish(zmq.IOPub, r.Msg, 0)
	if len(k.orphans) > 0 {
		k.watchOrphans(r.Msg)
	}
}

// route logs a shell, control or stdin message for the session whose
// request it answers, or for every session when that is not known.
func (k *kernelActor) route(r zmq.Received) {
	to := sessionNum(0)
	if parent, err := r.Msg.Parent(); err == nil {
		to = k.routes[parent.Session]
	}
	k.publish(r.Channel, r.Msg, to)
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
