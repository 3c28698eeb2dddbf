package actors

import (
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/kernelgate/kernelgate/internal/lograte"
	"github.com/kernelgate/kernelgate/zmq"
)

// Attachment is one websocket attached to a kernel session, as its reader
// (the connection's own goroutine) uses it: Send for every client message,
// Ack for every pong, Close when the connection ends.
type Attachment struct {
	g         *Gateway
	kernel    *actor.PID
	sessionID string
	num       sessionNum
	w         *writer
	toKernel  *fifo[outbound]

	// learned holds the header.session values of this client's requests
	// that the kernel actor routes replies by; used by the reader only.
	learned map[string]struct{}
	closed  sync.Once
}

// maxLearned bounds the header.session values one connection teaches the
// kernel: a client sending a new one with every message must not grow
// memory. Beyond it, replies to its other values reach every session of the
// kernel, as replies to unknown requests do.
const maxLearned = 64

// sendWait bounds how long a reader waits for room in a kernel's queue
// (the kernel is not reading, or restarting) before dropping a message;
// meanwhile the client's own reads stall, which slows it down.
const sendWait = 5 * time.Second

// Attach attaches sock to the session sessionID of a kernel. replayable says
// the client chose the session id, so a later connection with the same id
// gets what was written in between; lastMsgID, when set, is the last
// message the client has, and it gets exactly what followed.
func (g *Gateway) Attach(kernelID, sessionID string, replayable bool, lastMsgID string, sock Socket) (*Attachment, error) {
	h, err := g.handle(kernelID)
	if err != nil {
		return nil, err
	}
	req := &attachWS{sessionID: sessionID, replayable: replayable, lastMsgID: lastMsgID, sock: sock, probe: g.replica != nil}
	res, err := g.request(h.pid, req, 10*time.Second)
	if err != nil {
		return nil, err
	}
	a := res.(*attached)
	if a.needHandover {
		// New here, maybe not new to the group: ask the other replicas
		// where it stood (blocking here, on the connection's goroutine).
		req.probe = false
		place := g.replica.handoverFrom(kernelID, sessionID)
		req.handover = &place
		if res, err = g.request(h.pid, req, 10*time.Second); err != nil {
			return nil, err
		}
		a = res.(*attached)
	}
	if a.err != nil {
		return nil, a.err
	}
	return &Attachment{g: g, kernel: h.pid, sessionID: sessionID, num: a.num, w: a.w, toKernel: h.toKernel,
		learned: make(map[string]struct{})}, nil
}

// Send passes a client message to the kernel, in order. Its header.session
// is taught to the kernel actor first (replies are routed by it), so the
// route is in place before any reply can come back.
func (a *Attachment) Send(ch zmq.Channel, m *zmq.Message) {
	if hs := m.Head().Session; hs != "" {
		if _, ok := a.learned[hs]; !ok && len(a.learned) < maxLearned {
			// Kept for the connection's life (and by the kernel actor's
			// routes): a copy of its own, not a substring of the header.
			hs = strings.Clone(hs)
			a.learned[hs] = struct{}{}
			a.g.sys.Root.Send(a.kernel, &learnRoute{header: hs, to: a.num})
		}
	}
	ob := outbound{ch: ch, m: m}
	if !a.toKernel.pushWait(ob, sendWait, a.w.done) && !isClosed(a.w.done) {
		m := a.g.cfg.Metrics
		if n := m.KernelQueueDropped.Add(1); lograte.Crossed(n-1, n) {
			a.g.cfg.Logger.Warn().Str("session", a.sessionID).Uint64("dropped", n).Msg("kernel is not reading; dropped a client message")
		}
	}
}

// Ack takes the data of a pong: the client confirms it has every message
// written before the ping.
func (a *Attachment) Ack(data []byte) { a.w.ack(data) }

// SentClose is the code of the close frame sent to the client, or 0 while
// none was: once one was, what the client still sends is not for the
// kernel, and a close frame back with the same code is its answer.
func (a *Attachment) SentClose() int { return int(a.w.sent.Load()) }

// Close detaches after the connection ended as e says: the writer stops,
// and Close returns once the kernel actor has recorded where the client
// stands, so that a reconnect finds its session in place.
// Later calls do nothing.
func (a *Attachment) Close(e Ending) {
	a.closed.Do(func() {
		a.w.requestStop(stopWriter{code: closeWithoutCode})
		<-a.w.done
		a.g.request(a.kernel, &detachWS{sessionID: a.sessionID, w: a.w, ending: e}, 5*time.Second)
	})
}
