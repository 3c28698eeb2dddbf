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
	kernel, session, ws *actor.PID
	done                <-chan struct{}
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
	return &Attachment{g: g, kernel: h.pid, session: a.session, ws: a.ws, done: a.done}, nil
}

// Send passes a client message to the kernel; it never blocks.
func (a *Attachment) Send(ch zmq.Channel, m *zmq.Message) {
	a.g.sys.Root.Send(a.kernel, &clientMsg{session: a.session, ch: ch, m: m})
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
