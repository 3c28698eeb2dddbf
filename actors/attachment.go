package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/kernelgate/kernelgate/zmq"
)

// Attachment is one websocket attached to a kernel session. Its reader
// (the connection's own goroutine) calls Send for every client message and
// Close when the connection ends.
type Attachment struct {
	g                   *Gateway
	h                   *kernelHandle
	kernel, session, ws *actor.PID
	done                <-chan struct{}

	// Used only by the reader goroutine that calls Send.
	direct  *zmq.Client         // the client this reader sends on itself, once caught up
	learned map[string]struct{} // header.session values the kernel actor routes for us
}

// Attach attaches sock to the session sessionID of a kernel. replayable says
// the client chose the session id, so a later connection with the same id
// gets what was buffered in between.
func (g *Gateway) Attach(kernelID, sessionID string, replayable bool, sock Socket) (*Attachment, error) {
	h, err := g.handle(kernelID)
	if err != nil {
		return nil, err
	}
	res, err := g.request(h.pid, &attachWS{sessionID: sessionID, replayable: replayable, sock: sock}, 10*time.Second)
	if err != nil {
		return nil, err
	}
	a := res.(*attached)
	if a.err != nil {
		return nil, a.err
	}
	return &Attachment{g: g, h: h, kernel: h.pid, session: a.session, ws: a.ws, done: a.done,
		learned: make(map[string]struct{})}, nil
}

// Send passes a client message to the kernel, in order. While the kernel
// is ready it sends on the kernel's client itself, on the caller's (the
// websocket reader's) goroutine, which spares two hand-offs per message; it
// goes through the kernel actor when the kernel is not ready, for a
// header.session the actor has not seen (replies are routed by it), and
// until everything sent that way has reached the kernel, so order holds.
// Blocking here only slows this client's reads.
func (a *Attachment) Send(ch zmq.Channel, m *zmq.Message) {
	c := a.h.direct.Load()
	_, known := a.learned[m.Head().Session]
	if c != nil && c == a.direct && known {
		if c.Send(ch, m) == nil {
			a.g.cfg.Metrics.MessagesToKernels.Add(1)
			return
		}
		a.direct = nil // the kernel is going away: back to the actor
	}
	a.learned[m.Head().Session] = struct{}{}
	a.g.sys.Root.Send(a.kernel, &clientMsg{session: a.session, ch: ch, m: m})
	if c != nil && len(a.learned) < 64 {
		// Catch up: once the kernel has everything sent so far, later
		// messages may go direct.
		flushed := make(chan struct{})
		a.g.sys.Root.Send(a.kernel, &clientMsg{flushed: flushed})
		select {
		case <-flushed:
			a.direct = c
		case <-time.After(5 * time.Second): // the kernel is stuck; stay on the actor path
		}
	}
}

// Close detaches after the connection ended: the writer stops, what it did
// not write goes back to the session, and Close returns only once the writer
// goroutine has exited, so the caller may release the connection.
func (a *Attachment) Close() {
	a.g.sys.Root.Send(a.ws, &wsClose{code: closeWithoutCode})
	<-a.done
	// The writer has reported its unsent messages to the websocket actor;
	// these round trips make sure the session has them back before a
	// reconnect can attach.
	a.g.request(a.ws, &wsSync{}, 5*time.Second)
	a.g.request(a.session, &wsSync{}, 5*time.Second)
}
