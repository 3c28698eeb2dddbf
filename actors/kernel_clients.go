package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/kernelgate/kernelgate/internal/lograte"
	"github.com/kernelgate/kernelgate/zmq"
	"github.com/rs/zerolog"
)

// Messages between a kernel actor, its sessions and the websockets' readers.
type (
	// clientMsg is a message a client sent on its websocket; with m nil it
	// is a marker whose flushed channel closes once everything the client
	// sent before has gone to the kernel.
	clientMsg struct {
		session *actor.PID
		ch      zmq.Channel
		m       *zmq.Message
		flushed chan struct{}
	}
	// sessionGone: a session without a websocket expired.
	sessionGone struct{ id string }
	// sessionEnded answers kernelEnded.
	sessionEnded struct{}
	// endTimeout bounds how long a finishing kernel waits for its sessions.
	endTimeout struct{}
)

// attach routes a websocket to its session actor, creating the session on
// first use; the session answers the caller.
func (k *kernelActor) attach(ctx actor.Context, m *attachWS) {
	if k.phase == phaseTerminating {
		ctx.Respond(&attached{err: ErrNoSuchKernel})
		return
	}
	pid, ok := k.sessions[m.sessionID]
	if !ok {
		s := &sessionActor{id: m.sessionID, kernel: k.h, cfg: k.cfg, log: k.log, limiter: newIOPubLimiter(k.cfg)}
		pid = ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return s },
			actor.WithDispatcher(inline), actor.WithReceiverMiddleware(logPanics(k.log))))
		k.sessions[m.sessionID] = pid
	}
	ctx.Forward(pid)
}

func (k *kernelActor) dropSession(id string) {
	pid, ok := k.sessions[id]
	if !ok {
		return
	}
	delete(k.sessions, id)
	for key, p := range k.routes {
		if p.Equal(pid) {
			delete(k.routes, key)
		}
	}
}

// fromClient learns which session a client's header.session belongs to
// (replies are routed back by it) and sends the message on, or holds it
// until the kernel is ready.
func (k *kernelActor) fromClient(m *clientMsg) {
	if m.m == nil { // a marker keeps its place in line
		if k.out == nil || !k.ready.Ready() {
			k.held = append(k.held, outbound{flushed: m.flushed})
			return
		}
		select {
		case k.out <- outbound{flushed: m.flushed}:
		default: // the kernel is not reading: the reader gives up waiting and stays on this path
		}
		return
	}
	if sess := m.m.Head().Session; sess != "" && m.session != nil {
		if len(k.routes) < 4*len(k.sessions)+64 { // bounded: a client cannot grow it at will
			k.routes[sess] = m.session
		}
	}
	ob := outbound{ch: m.ch, m: m.m}
	if k.out == nil || !k.ready.Ready() {
		if len(k.held) >= k.cfg.KernelQueue {
			k.cfg.Metrics.KernelQueueDropped.Add(1)
			return
		}
		k.held = append(k.held, ob)
		return
	}
	k.toKernel(ob)
}

func (k *kernelActor) toKernel(ob outbound) {
	select {
	case k.out <- ob:
	default:
		if n := k.cfg.Metrics.KernelQueueDropped.Add(1); lograte.Crossed(n-1, n) {
			k.log.Warn().Uint64("dropped", n).Msg("kernel is not reading; dropped a client message")
		}
	}
}

// writeToKernel signs and sends client messages for one launch; it ends
// when the launch's queue is closed.
func writeToKernel(c *zmq.Client, out <-chan outbound, metrics *Metrics, log zerolog.Logger) {
	for ob := range out {
		if ob.m == nil {
			close(ob.flushed)
			continue
		}
		if err := c.Send(ob.ch, ob.m); err != nil {
			log.Debug().Err(err).Msg("send to kernel failed")
			continue
		}
		metrics.MessagesToKernels.Add(1)
	}
}

// route sends a shell, control or stdin message to the session whose
// request it answers, or to every session when that is not known.
func (k *kernelActor) route(r zmq.Received) {
	if parent, err := r.Msg.Parent(); err == nil {
		if pid, ok := k.routes[parent.Session]; ok {
			k.sys.Root.Send(pid, &kernelOut{ch: r.Channel, m: r.Msg})
			return
		}
	}
	k.broadcast(&kernelOut{ch: r.Channel, m: r.Msg})
}

func (k *kernelActor) broadcast(msg any) {
	for _, pid := range k.sessions {
		k.sys.Root.Send(pid, msg)
	}
}
