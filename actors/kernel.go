package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/store"
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

// kernelActor owns one kernel: its launches, its published state, its
// sessions, restarts and shutdown. It is a state machine: every wait on the
// kernel's process, host or channels is done by the launch's runner, which
// reports back as messages, and every message for clients goes into the
// kernel's output log, which the clients' writers read themselves.
//
// Its concerns are in files of their own: kernel_launch.go (launches and
// the handshake), kernel_liveness.go (exits, heartbeats, polls, restarts),
// kernel_stop.go (interrupt, restart and shutdown requests, the end),
// kernel_messages.go (the kernel's messages to clients) and session.go.
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
	recovering *store.Record
	// kept is set when the gateway stops and leaves the kernel running
	// for the next gateway process: its process and files stay.
	kept bool
	// follower is set while another replica owns the kernel (see
	// kernel_follow.go); record is then what it follows.
	follower bool
	record   *store.Record
	// replica is this replica's part in its group, nil without
	// replication.
	replica *replica
	// takingOver is set from a promotion until the kernel is up: a kernel
	// that did not outlive its old owner is started again.
	takingOver bool
	started    time.Time // the kernel's first launch came up
	created    time.Time // the actor, i.e. when the start was admitted
	// stopAsked is when a shutdown was asked for, for its duration.
	stopAsked time.Time

	phase    phase
	gen      uint64  // current launch; bumped by every launch
	run      *runner // the current launch's I/O; nil between launches
	last     *runner // the latest launch, current or not
	up       bool    // the current launch came up (its runner serves it)
	killed   bool    // the current launch was killed for being of no use
	conn     launched
	upSince  time.Time
	restarts int // automatic restarts in a row

	ready      zmq.Readiness
	readySince time.Time // when the current handshake began
	badSigs    uint64

	startWaiter    *actor.PID   // the POST, until the first launch ends
	announcing     []*actor.PID // starts answered once the record is written (a group)
	restartWaiters []*actor.PID // REST restarts, answered when ready
	stopWaiters    []*actor.PID // shutdowns, answered when gone

	// Clients: what they send the kernel waits in h.toKernel (drained by
	// the current launch once the kernel is ready); what the kernel sends
	// them goes into output.
	output      *outLog
	sessions    map[string]*session
	attached    []*writer             // writers of connected sessions, told when the log grows
	routes      map[string]sessionNum // header.session of client requests → session
	lastSession sessionNum
	// waitingAnchors counts sessions waiting for a message (see beginFrom).
	waitingAnchors int
	// orphans are requests of clients whose replica died, by msg_id, until
	// their reply is rebuilt (kernel_orphans.go).
	orphans map[string]*orphan
	appends uint64 // messages logged, to trim the log now and then
	lost    uint64 // messages reconnecting clients missed, for the log
	left    bool   // out of the registry (see leave)
	// forgetting: the kernel has ended and is being forgotten off the
	// actor (see forget); it leaves the registry once that is done.
	forgetting bool
	// farewells counts connected clients still reading the last messages
	// of a finished kernel; the actor stops when it reaches 0.
	farewells     int
	farewellsFrom []*writer
	// endReason tells clients why the kernel is going (a cull); empty for
	// an ordinary shutdown. closeReason is what their close frames say.
	endReason   string
	closeReason string
}

func (k *kernelActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		k.self, k.parent, k.sys = ctx.Self(), ctx.Parent(), ctx.ActorSystem()
		k.created = time.Now()
		k.h.events.add("%s", k.startEvent())
		k.launch()
	case *claim:
		k.claim(ctx, m)
	case *launched:
		if m.gen == k.gen {
			k.onLaunched(ctx, m)
		}
	case *zmqIn:
		m.inbox.release()
		if m.gen == k.gen {
			k.onMessage(m.Received)
		}
	case *procExited:
		if m.gen == k.gen {
			k.onExit(ctx, m.err)
		}
	case *nudgeTick:
		if m.gen == k.gen {
			k.nudge()
		}
	case *hbSilent:
		if m.gen == k.gen {
			k.heartbeatLost(m.silent)
		}
	case *hbStale:
		if m.gen == k.gen {
			k.pollNow()
		}
	case *pollTick:
		if m.gen == k.gen {
			k.poll()
		}
	case *shutdownStage:
		if m.gen == k.gen {
			k.escalate(m.stage)
		}
	case *signaled: // the runner logged a failure; nothing waits on it here
	case *persisted:
		if m.gen == k.gen {
			k.onPersisted(ctx)
		}
	case *cleanedUp:
		if k.phase == phaseTerminating && m.r == k.last && !k.forgetting {
			k.leave(ctx)
		}
	case *forgotten:
		k.forgetting = false
		if k.phase == phaseTerminating {
			k.leave(ctx)
		}
	case *cleanupTimeout:
		if k.phase == phaseTerminating {
			k.log.Warn().Msg("the kernel's cleanup is taking long; it goes on in the background")
			k.leave(ctx)
		}
	case *interruptKernel:
		k.interrupt(ctx)
	case *restartKernel:
		k.restart(ctx)
	case *shutdownKernel:
		k.shutdown(ctx, m.reason)
	case *keepKernel:
		k.keep(ctx)
	case *attachWS:
		k.attach(ctx, m)
	case *detachWS:
		k.detach(ctx, m)
	case *takeoverTimeout:
		k.takeover(m)
	case *learnRoute:
		k.learn(m)
	case *recordNow:
		k.onRecord(m.rec)
	case *recordGone:
		k.onRecordGone(ctx)
	case *promote:
		k.promote(m.rec)
	case *adopted:
		if m.gen == k.gen {
			k.onAdopted(m)
		}
	case *demote:
		k.demote()
	case *handoverReq:
		k.handover(ctx, m)
	case *handoverTimeout:
		k.onHandoverTimeout(m)
	case *anchorTimeout:
		k.onAnchorTimeout(m)
	case *sessionExpire:
		k.expire(m)
	case *goneAck:
		k.endSessions(ctx)
	case *endTimeout:
		if k.farewells > 0 {
			k.log.Warn().Int("clients", k.farewells).Msg("clients did not read the kernel's last messages in time")
			k.farewells = 0
			k.stopping(ctx)
		}
	case inspect:
		m(k)
	case *actor.Stopping:
		// Normally after the end; else (it kept panicking) nothing may be
		// left running behind it.
		k.releaseRun(k.kept, nil)
		for _, w := range k.attached {
			w.requestStop(stopWriter{code: CloseGoingAway, reason: "kernel gone"})
		}
	}
}

// startEvent names the kernel actor's beginning in the kernel's history.
func (k *kernelActor) startEvent() string {
	switch {
	case k.follower:
		return "following (another replica of the group owns it)"
	case k.recovering != nil:
		return "recovering (launched by an earlier gateway process)"
	case k.pooled:
		return "starting for its pool"
	}
	return "starting"
}

// schedule delivers msg to this actor after d, from a timer (no goroutine
// waits meanwhile).
func (k *kernelActor) schedule(d time.Duration, msg any) {
	if d > 0 {
		sendLater(k.sys, k.self, d, msg)
	}
}

// exitText is how a kernel ended, for logs and errors: "signal: killed",
// "exit status 1", or "exited" when its provisioner knows no more.
func exitText(err error) string {
	if err == nil {
		return "exited"
	}
	return err.Error()
}
