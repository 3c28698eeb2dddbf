package actors

import (
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/kernelgate/kernelgate/internal/lograte"
	"github.com/kernelgate/kernelgate/zmq"
	"github.com/rs/zerolog"
)

// Socket is one client websocket as the actor tree sees it; package http
// implements it over a hijacked connection with the negotiated framing.
type Socket interface {
	// Write encodes m for the connection and writes it. Only the websocket
	// actor's writer goroutine calls it.
	Write(ch zmq.Channel, m *zmq.Message) error
	// Close sends a close frame with code and reason (none when code is 0)
	// and closes the connection. It is safe from any goroutine.
	Close(code int, reason string)
}

// Close codes kernelgate uses. 1000 tells JupyterLab not to reconnect, so it
// is only for kernels that are really gone.
const (
	CloseNormal      = 1000 // the kernel was shut down or died
	CloseGoingAway   = 1001 // the gateway is stopping
	CloseReplaced    = 4000 // a newer connection took over this session
	CloseTryAgain    = 1013 // the client fell too far behind
	closeWithoutCode = 0
)

// queued is one kernel message on its way to a session's websocket. seq
// orders everything a session sends, so messages a websocket hands back
// when it closes fall into place before the ones buffered since.
type queued struct {
	seq  uint64
	ch   zmq.Channel
	m    *zmq.Message
	size int
	// reason of a close marker: an entry without a message closes the
	// connection with code seq.
	reason string
}

func (q queued) close() bool { return q.m == nil }

func messageSize(m *zmq.Message) int {
	n := len(m.Header) + len(m.ParentHeader) + len(m.Metadata) + len(m.Content)
	for _, b := range m.Buffers {
		n += len(b)
	}
	return n
}

// inline runs session and websocket actors on the goroutine of whoever
// sends to them, so a kernel message reaches a websocket's writer queue in
// one goroutine hand-off instead of three. It is safe because neither
// actor's Receive ever blocks; mailboxes still process one message at a
// time.
var inline = actor.NewSynchronizedDispatcher(300)

// wsActor is the only writer of one websocket: it feeds a writer goroutine
// through a bounded queue and disconnects a client that falls behind.
type wsActor struct {
	sock    Socket
	session *actor.PID
	maxMsgs int
	maxSize int64
	log     zerolog.Logger
	metrics *Metrics

	q      chan queued
	qBytes atomic.Int64
	// stop ends the writer before the queue is empty; it then closes the
	// connection with stopCode (none when 0), set before stop closes.
	stop       chan struct{}
	stopCode   int
	stopReason string
	done       chan struct{} // closed when the writer has exited
	stopping   chan struct{} // closed when the actor stops
	closing    bool          // a close is queued or done; nothing more is accepted
}

// Messages of the websocket actor.
type (
	wsOut struct{ q queued }
	// wsClose closes the connection after what is queued, or with now
	// before it (what is queued then goes back to the session).
	wsClose struct {
		code   int
		reason string
		now    bool
	}
	// writerExited reports what the writer did not write; returned is
	// closed once that is on its way to the session.
	writerExited struct {
		unsent   []queued
		returned chan struct{}
	}
	// wsSync is answered once everything sent to the actor before it has
	// been handled.
	wsSync struct{}
	// wsReturned hands a session back what its websocket did not write.
	// final marks the return after the writer exited: the websocket is
	// done and the session lets it go.
	wsReturned struct {
		ws     *actor.PID
		unsent []queued
		final  bool
	}
)

func (w *wsActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		w.q = make(chan queued, w.maxMsgs)
		w.stop = make(chan struct{})
		w.stopping = make(chan struct{})
		go w.write(ctx.ActorSystem(), ctx.Self())
	case *wsOut:
		w.enqueue(ctx, m.q)
	case *wsClose:
		if m.now {
			w.closeNow(m.code, m.reason)
		} else {
			w.close(m.code, m.reason)
		}
		if ctx.Sender() != nil {
			ctx.Respond(&done{})
		}
	case *wsSync:
		ctx.Respond(&done{})
	case *writerExited:
		unsent := m.unsent
		for drained := false; !drained; {
			select {
			case it := <-w.q:
				if !it.close() {
					unsent = append(unsent, it)
				}
			default:
				drained = true
			}
		}
		w.closing = true
		ctx.Send(w.session, &wsReturned{ws: ctx.Self(), unsent: unsent, final: true})
		close(m.returned)
	case *actor.Stopping:
		// Stopped from above with the writer still running (the kernel
		// actor is going away): end the connection.
		close(w.stopping)
		w.close(CloseGoingAway, "kernel gone")
	}
}

// close ends the connection: at once when code is 0 (the client is gone),
// else after the messages already queued, with a close frame.
func (w *wsActor) close(code int, reason string) {
	if w.closing {
		return
	}
	if code != closeWithoutCode {
		select {
		case w.q <- queued{seq: uint64(code), ch: 0, m: nil, size: 0, reason: reason}: // the writer closes when it gets here
			w.closing = true
			return
		default: // the queue is full: close now
		}
	}
	w.closeNow(code, reason)
}

// closeNow ends the connection after the write in progress: what is still
// queued goes back to the session, then the close frame is sent.
func (w *wsActor) closeNow(code int, reason string) {
	if w.closing {
		return
	}
	w.closing = true
	w.stopWriter(code, reason)
}

// writerGrace is how long a stopped writer may take to finish the write it
// is in before the connection is closed under it.
const writerGrace = 2 * time.Second

// stopWriter ends the writer after the write it is in, if any; the writer
// then closes the connection with code, so nothing is written after the
// close frame and everything unwritten goes back to the session. A writer
// stuck on a client that reads nothing has the connection closed under it
// after writerGrace (its message comes back as unsent).
func (w *wsActor) stopWriter(code int, reason string) {
	w.stopCode, w.stopReason = code, reason
	close(w.stop)
	if code == closeWithoutCode {
		return // the client is gone: the connection is closed already
	}
	done, sock := w.done, w.sock
	time.AfterFunc(writerGrace, func() {
		select {
		case <-done:
		default:
			sock.Close(code, reason)
		}
	})
}

func (w *wsActor) enqueue(ctx actor.Context, it queued) {
	if w.closing {
		ctx.Send(w.session, &wsReturned{ws: ctx.Self(), unsent: []queued{it}})
		return
	}
	if w.qBytes.Load()+int64(it.size) > w.maxSize && w.maxSize > 0 {
		w.slow(ctx, it)
		return
	}
	select {
	case w.q <- it:
		w.qBytes.Add(int64(it.size))
	default:
		w.slow(ctx, it)
	}
}

// slow disconnects a client whose backlog passed the bound; what it did
// not get goes back to its session, which buffers it (bounded) for a
// reconnect.
func (w *wsActor) slow(ctx actor.Context, it queued) {
	w.metrics.SlowConsumers.Add(1)
	w.log.Warn().Int("queued", len(w.q)).Int64("bytes", w.qBytes.Load()).Msg("websocket client too slow; disconnecting")
	w.closeNow(CloseTryAgain, "client too slow: backlog exceeded")
	ctx.Send(w.session, &wsReturned{ws: ctx.Self(), unsent: []queued{it}})
}

// write is the writer goroutine: it writes queued messages in order until
// told to stop, a close is queued, or a write fails. Then it hands what it
// did not write back to the session, and only after that sends the close
// frame: a client that reconnects on that frame finds its session whole.
func (w *wsActor) write(sys *actor.ActorSystem, self *actor.PID) {
	defer close(w.done)
	var unsent []queued
	code, reason := w.writeQueued(&unsent)
	returned := make(chan struct{})
	sys.Root.Send(self, &writerExited{unsent: unsent, returned: returned})
	if code == closeWithoutCode {
		return
	}
	select {
	case <-returned:
	case <-w.stopping: // the actor will not answer
	}
	w.sock.Close(code, reason)
}

// writeQueued writes until the writer must end, and says how the
// connection is to be closed.
func (w *wsActor) writeQueued(unsent *[]queued) (code int, reason string) {
	for {
		// A stop wins over a queued message: nothing may follow the close.
		select {
		case <-w.stop:
			return w.stopCode, w.stopReason
		default:
		}
		select {
		case <-w.stop:
			return w.stopCode, w.stopReason
		case it := <-w.q:
			if it.close() {
				return int(it.seq), it.reason
			}
			w.qBytes.Add(-int64(it.size))
			if err := w.sock.Write(it.ch, it.m); err != nil {
				*unsent = append(*unsent, it)
				return closeWithoutCode, ""
			}
			w.metrics.MessagesToClients.Add(1)
		}
	}
}

// sessionActor is one client session of a kernel: the session_id a
// websocket connects with. It holds at most one websocket (a newer one
// replaces the older, as in Jupyter Server) and, while none is attached,
// buffers what the kernel sends, bounded by count and bytes, replaying it in
// order on reattach.
type sessionActor struct {
	id     string
	kernel *kernelHandle
	cfg    *Config
	log    zerolog.Logger

	ws         *actor.PID
	replaced   *actor.PID      // an older websocket ws took over from, still handing back what it did not write
	live       map[string]bool // websockets attached and not yet gone, by actor id
	replayable bool            // the client chose the session id, so it can come back for the buffer
	attaches   uint64          // counts attaches, so a stale expiry timer is ignored
	seq        uint64
	buffer     []queued
	bufBytes   int
	dropped    uint64 // from the buffer, in all
	expiry     *time.Timer
	limiter    *iopubLimiter // nil when iopub rate limits are off
	ending     *actor.PID    // the kernel actor waiting for this session to end
}

// Messages of the session actor.
type (
	// attachWS attaches a websocket; answered with *attached.
	attachWS struct {
		sessionID  string
		replayable bool // the client sent this session id (else it is made up)
		sock       Socket
	}
	// sessionExpire ends a session that no websocket reattached to.
	sessionExpire struct{ attaches uint64 }
	attached      struct {
		session, ws *actor.PID
		done        <-chan struct{}
		err         error
	}
	kernelOut struct {
		ch zmq.Channel
		m  *zmq.Message
	}
	// kernelStatus asks sessions to tell their clients a status the kernel
	// itself never sends (restarting, dead).
	kernelStatus struct{ state string }
	// kernelEnded tells a session its kernel is gone; it closes its
	// websocket with code and answers *done once that is queued.
	kernelEnded struct {
		code   int
		reason string
	}
)

func (s *sessionActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *attachWS:
		s.attach(ctx, m)
	case *kernelOut:
		size := messageSize(m.m)
		if m.ch == zmq.IOPub && s.limiter != nil {
			pass, crossed := s.limiter.admit(time.Now(), m.m, size)
			if crossed {
				if w := s.limiter.rateWarning(s.id, m.m); w != nil {
					s.seq++
					s.deliver(ctx, queued{seq: s.seq, ch: zmq.IOPub, m: w, size: messageSize(w)})
				}
			}
			if !pass {
				s.cfg.Metrics.RateLimited.Add(1)
				return
			}
		}
		s.seq++
		s.deliver(ctx, queued{seq: s.seq, ch: m.ch, m: m.m, size: size})
	case *kernelStatus:
		st, err := zmq.NewMessage("status", s.id, "kernelgate", nil, map[string]string{"execution_state": m.state})
		if err == nil {
			s.seq++
			s.deliver(ctx, queued{seq: s.seq, ch: zmq.IOPub, m: st, size: messageSize(st)})
		}
	case *wsReturned:
		s.requeue(ctx, m.ws, m.unsent)
		if m.final {
			// Poison, not Stop: messages sent to it before now are still
			// in its mailbox and come back as returns first.
			ctx.Poison(m.ws)
			s.gone(ctx, m.ws)
		}
		s.maybeEnd(ctx)
	case *wsSync:
		ctx.Respond(&done{})
	case *kernelEnded:
		s.ending = ctx.Sender()
		if s.ws != nil {
			ctx.Send(s.ws, &wsClose{code: m.code, reason: m.reason})
		}
		s.maybeEnd(ctx)
	case *sessionExpire:
		if s.ws == nil && m.attaches == s.attaches && s.ending == nil {
			s.log.Debug().Str("session", s.id).Int("dropped", len(s.buffer)).Msg("session expired")
			s.cfg.Metrics.BufferDropped.Add(uint64(len(s.buffer)))
			ctx.Send(ctx.Parent(), &sessionGone{id: s.id})
			ctx.Stop(ctx.Self())
		}
	case *actor.Terminated: // normally after its final return; else it panicked too often
		s.gone(ctx, m.Who)
		s.maybeEnd(ctx)
	case *actor.Stopping:
		if s.expiry != nil {
			s.expiry.Stop() // a session that ends with its kernel leaves no timer behind
		}
	}
}

// gone accounts for a websocket that has stopped writing. Each one counts
// in the kernel's connections from its attach until here, once.
func (s *sessionActor) gone(ctx actor.Context, ws *actor.PID) {
	if !s.live[ws.Id] {
		return
	}
	delete(s.live, ws.Id)
	s.kernel.connections.Add(-1)
	if ws.Equal(s.replaced) {
		// Everything the older connection did not write is back: the
		// newer one gets it all, in order, then what came meanwhile.
		s.replaced = nil
		if s.ws != nil {
			s.replay(ctx)
		}
	}
	if ws.Equal(s.ws) {
		s.detached(ctx)
	}
}

// detached is called when the session's websocket is gone. A session whose
// id the client chose keeps buffering for a reconnect until it expires; one
// with a made-up id can never be reattached, so it ends now.
func (s *sessionActor) detached(ctx actor.Context) {
	s.ws = nil
	if s.ending != nil {
		return
	}
	if !s.replayable {
		ctx.Send(ctx.Parent(), &sessionGone{id: s.id})
		ctx.Stop(ctx.Self())
		return
	}
	s.expiry = sendLater(ctx.ActorSystem(), ctx.Self(), s.cfg.SessionExpiry, &sessionExpire{attaches: s.attaches})
}

// maybeEnd answers the kernel once the session's websocket is gone.
func (s *sessionActor) maybeEnd(ctx actor.Context) {
	if s.ending != nil && len(s.live) == 0 {
		ctx.Send(s.ending, &sessionEnded{})
		s.ending = nil
	}
}

func (s *sessionActor) attach(ctx actor.Context, m *attachWS) {
	if s.ws != nil {
		// Two live connections with one session id: the newer wins. The
		// older stops after its current write and hands back the rest,
		// which the newer gets first (it waits for that, at most a
		// writer's grace).
		ctx.Send(s.ws, &wsClose{code: CloseReplaced, reason: "replaced by a newer connection for this session", now: true})
		if s.replaced == nil {
			s.replaced = s.ws
		}
	}
	log := s.log.With().Str("session", s.id).Logger()
	// The replay comes on top of the usual backlog bound: a websocket
	// handed a full session buffer must not count as too slow at once (it
	// would be sent away, come back, get the replay again, and so on). A
	// replaced connection's backlog comes back on top of that.
	backlog, backlogBytes := len(s.buffer), int64(s.bufBytes)
	if s.replaced != nil {
		backlog, backlogBytes = backlog+s.cfg.WebsocketQueue, backlogBytes+s.cfg.WebsocketQueueBytes
	}
	w := &wsActor{sock: m.sock, session: ctx.Self(),
		maxMsgs: s.cfg.WebsocketQueue + backlog, maxSize: s.cfg.WebsocketQueueBytes + backlogBytes,
		log: log, metrics: s.cfg.Metrics, done: make(chan struct{})}
	s.ws = ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return w },
		actor.WithDispatcher(inline), actor.WithReceiverMiddleware(logPanics(log))))
	s.replayable = m.replayable
	s.attaches++
	if s.live == nil {
		s.live = make(map[string]bool)
	}
	s.live[s.ws.Id] = true
	s.kernel.connections.Add(1)
	ctx.Respond(&attached{session: ctx.Self(), ws: s.ws, done: w.done})
	if s.replaced == nil {
		s.replay(ctx)
	}
}

// replay hands the websocket what was buffered while none could take it.
func (s *sessionActor) replay(ctx actor.Context) {
	buffered := s.buffer
	s.buffer, s.bufBytes = nil, 0
	for _, it := range buffered {
		ctx.Send(s.ws, &wsOut{q: it})
	}
	if len(buffered) > 0 {
		s.log.Debug().Str("session", s.id).Int("messages", len(buffered)).Msg("replayed buffered messages")
	}
}

func (s *sessionActor) deliver(ctx actor.Context, it queued) {
	if s.ws != nil && s.replaced == nil {
		ctx.Send(s.ws, &wsOut{q: it})
		return
	}
	s.buffer = append(s.buffer, it)
	s.bufBytes += it.size
	s.trim()
}

// requeue takes back messages a websocket did not write. With no websocket
// attached they go into the buffer in sequence order, ahead of anything
// newer; a websocket that attached meanwhile gets them at once.
func (s *sessionActor) requeue(ctx actor.Context, from *actor.PID, items []queued) {
	if len(items) == 0 {
		return
	}
	if s.ws != nil && !s.ws.Equal(from) && !from.Equal(s.replaced) {
		for _, it := range items {
			ctx.Send(s.ws, &wsOut{q: it})
		}
		return
	}
	if n := len(s.buffer); n == 0 || items[0].seq > s.buffer[n-1].seq {
		// All newer than the buffer (a closing websocket bouncing what it
		// was sent one by one): no merge, or a flood would be quadratic.
		for _, it := range items {
			s.buffer = append(s.buffer, it)
			s.bufBytes += it.size
		}
		s.trim()
		return
	}
	merged := make([]queued, 0, len(items)+len(s.buffer))
	i, j := 0, 0
	for i < len(items) || j < len(s.buffer) {
		if j == len(s.buffer) || i < len(items) && items[i].seq < s.buffer[j].seq {
			merged = append(merged, items[i])
			s.bufBytes += items[i].size
			i++
		} else {
			merged = append(merged, s.buffer[j])
			j++
		}
	}
	s.buffer = merged
	s.trim()
}

// trim drops the oldest buffered messages beyond the bounds.
func (s *sessionActor) trim() {
	drop := 0
	for len(s.buffer)-drop > s.cfg.SessionBuffer || s.bufBytes > s.cfg.SessionBufferBytes && drop < len(s.buffer) {
		s.bufBytes -= s.buffer[drop].size
		drop++
	}
	if drop > 0 {
		s.cfg.Metrics.BufferDropped.Add(uint64(drop))
		// Reslice rather than copy: a full buffer drops one message per
		// message delivered, and copying it each time was quadratic.
		clear(s.buffer[:drop])
		s.buffer = s.buffer[drop:]
		if s.dropped += uint64(drop); lograte.Crossed(s.dropped-uint64(drop), s.dropped) {
			s.log.Warn().Str("session", s.id).Uint64("dropped", s.dropped).Msg("session buffer full; dropped the oldest messages")
		}
	}
}
