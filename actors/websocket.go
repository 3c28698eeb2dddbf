package actors

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kernelgate/kernelgate/internal/lograte"
	"github.com/kernelgate/kernelgate/zmq"
	"github.com/rs/zerolog"
)

// Socket is one client websocket as the actor tree sees it; package http
// implements it over a hijacked connection with the negotiated framing.
// Its reader (the connection's own goroutine) drives the Attachment.
//
// The writer writes in batches, as NATS's flushOutbound does: it queues
// every message it has, then flushes them with one write deadline and one
// write.
type Socket interface {
	// Queue encodes m for the connection, as one data frame behind those
	// queued already; nothing is written before Flush. It does not keep m.
	// Only the connection's writer calls it.
	Queue(ch zmq.Channel, m *zmq.Message)
	// Queued is how many bytes wait for Flush.
	Queued() int
	// Flush writes what is queued. Only the connection's writer calls it.
	Flush() error
	// Ping writes a ping control frame carrying data, which the client
	// echoes in its pong. Only the connection's writer calls it, with
	// nothing queued.
	Ping(data []byte) error
	// Close sends a close frame with code and reason (none when code is 0)
	// and has the connection closed: at once without a frame, else once the
	// client has answered it or within a bound. It is safe from any
	// goroutine; a client that reads nothing does not hold it.
	Close(code int, reason string)
}

// Close codes kernelgate uses. 1000 tells JupyterLab not to reconnect, so it
// is only for kernels that are really gone.
const (
	CloseNormal      = 1000 // the kernel was shut down or died
	CloseGoingAway   = 1001 // the gateway is stopping
	CloseTryAgain    = 1013 // the client fell too far behind, or too many sessions
	CloseReplaced    = 4000 // a newer connection took over this session
	closeWithoutCode = 0    // the client is gone: no close frame
)

// ackInterval is how soon after writing the writer asks the client, with a
// ping, to confirm what it has received: the pong's echo tells which
// messages a reconnecting client surely has (see writer.resume).
const ackInterval = 250 * time.Millisecond

// Ending is how a websocket connection ended, as its reader saw it; it
// decides what the client's next connection with the same session id is
// given again.
type Ending uint8

const (
	// EndBroken: no close frame came (a reset, a timeout, the server closed
	// it under a client that did not answer). Messages written but not
	// confirmed by a pong may be lost in flight: they are written again.
	EndBroken Ending = iota
	// EndClientClosed: the client closed the connection (its close frame
	// came first). It stopped reading by its own choice; what was written
	// is not written again.
	EndClientClosed
	// EndHandshake: the client answered kernelgate's close frame, so it
	// read everything written before it; the rest comes next time, once.
	EndHandshake
)

// writerGrace is how long a writer told to stop may take to finish the
// write it is in before its connection is closed under it.
const writerGrace = 2 * time.Second

// writer is the only writer of one websocket. It reads its session's
// messages from the kernel's log, from its own position, and writes them;
// the kernel actor only appends to the log and kicks it. A client that
// falls too far behind is sent away (1013) and comes back for the rest.
//
// Besides data it writes pings: to keep the connection alive, and to learn
// what the client has read. A websocket delivers frames in order, so the
// echo of a ping that carries the seq of the last message written before it
// proves the client has every message up to that one.
type writer struct {
	sock     Socket
	log      *outLog
	session  sessionNum
	limiter  *iopubLimiter // nil: no iopub rate limits
	maxMsgs  uint64        // backlog bounds
	maxBytes uint64
	pingGap  time.Duration // keep-alive pings; 0 is off
	metrics  *Metrics
	counted  *atomic.Uint64 // the kernel's own count of messages written
	logger   zerolog.Logger
	start    uint64 // the first seq this connection was to get
	// replay is the log's tally when the connection came: what it held
	// for this connection then does not count against the backlog bounds,
	// or a client coming back for a large backlog would be sent away again
	// at once, forever. Owned by the kernel actor.
	replay tally

	// prelude is written first: messages for this client that the log here
	// does not have (a session moved from another replica).
	prelude []Routed

	kick  chan struct{} // the log has grown (capacity 1: kicks coalesce)
	stop  chan stopWriter
	begun chan struct{} // closed by begin
	done  chan struct{} // closed when run has returned
	once  sync.Once     // one stop request wins

	cur     cursor
	merge   coalescer
	written atomic.Uint64 // seq of the last message written
	acked   atomic.Uint64 // seq of the last message the client confirmed
	sent    atomic.Int32  // the close code sent to the client, once sent
	// reached is the log's tally where the writer stands (all before it
	// written or skipped), for the kernel actor to tell a client that
	// falls behind, even one stuck in a write. It points into the log's
	// entries, which never change.
	reached atomic.Pointer[tally]
	// merges are the last merged messages written (a ring; next is where
	// the next goes), for the session once the writer is done (see
	// session.merges); made at the first merge, as most connections never
	// merge.
	merges []mergeMark
	next   int
}

// mergeMarks is how many of its last merged messages a connection
// remembers for its client's return with ?last_msg_id=.
const mergeMarks = 64

// stopWriter ends a writer: when drain is set after writing what the log
// holds for it (a kernel that is gone says goodbye), else after the write it
// is in; then the connection is closed with code (none when 0).
type stopWriter struct {
	code   int
	reason string
	drain  bool
}

// newWriter makes the writer of a connection to session s; it writes
// nothing before begin.
func newWriter(k *kernelActor, sock Socket, s *session, log zerolog.Logger) *writer {
	cfg := k.cfg
	return &writer{sock: sock, log: k.output, session: s.num, limiter: s.limiter,
		maxMsgs: uint64(cfg.WebsocketQueue), maxBytes: uint64(cfg.WebsocketQueueBytes), pingGap: cfg.PingInterval,
		metrics: cfg.Metrics, counted: &k.h.msgsOut, logger: log,
		kick: make(chan struct{}, 1), stop: make(chan stopWriter, 1), begun: make(chan struct{}), done: make(chan struct{})}
}

// begin positions the writer at from (or the oldest message kept, if from
// is older: lost says how many are gone) and lets it write. The kernel
// actor calls it once; the writer reads the fields it sets only after.
func (w *writer) begin(from uint64) (lost uint64) {
	l := w.log
	w.cur, lost = l.at(from)
	w.start = w.cur.seq
	w.replay = l.last
	w.acked.Store(w.start - 1)
	w.written.Store(w.start - 1)
	t := l.before(w.cur)
	w.reached.Store(&t)
	close(w.begun)
	return lost
}

// poke tells the writer the log has grown; it never blocks.
func (w *writer) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// requestStop asks the writer to end (the first request wins). A writer
// stuck on a client that reads nothing has its connection closed under it
// after the grace (longer when it was to drain), which ends the write.
func (w *writer) requestStop(req stopWriter) {
	w.once.Do(func() {
		w.stop <- req
		grace := writerGrace
		if req.drain {
			grace += endGrace
		}
		time.AfterFunc(grace, func() {
			select {
			case <-w.done:
			default:
				w.closeWith(req.code, req.reason)
			}
		})
	})
}

// ack records the client's confirmation that it has every message up to the
// seq in a pong's data.
func (w *writer) ack(data []byte) {
	if len(data) != 8 {
		return // not one of our pings
	}
	seq := binary.BigEndian.Uint64(data)
	if seq > w.written.Load() {
		return // forged: the client cannot have what was not written
	}
	for {
		old := w.acked.Load()
		if seq <= old || w.acked.CompareAndSwap(old, seq) {
			return
		}
	}
}

// resume is the first seq a reconnecting client may not have, given how the
// connection ended (see Ending); a live connection counts as broken. Only
// for a writer that began.
func (w *writer) resume(e Ending) uint64 {
	if e == EndBroken {
		return max(w.acked.Load()+1, w.start)
	}
	return w.written.Load() + 1
}

// closeWith sends the close frame (none when code is 0) and has the
// connection closed.
func (w *writer) closeWith(code int, reason string) {
	if code != closeWithoutCode {
		w.sent.Store(int32(code))
	}
	w.sock.Close(code, reason)
}

// run writes until told to stop or a write fails; then it closes the
// connection.
func (w *writer) run() {
	defer close(w.done)
	var pingTimer *time.Timer
	var pinged uint64 // seq carried by the last ping
	lastPing := time.Now()
	nextPing := func() (time.Duration, bool) {
		switch {
		case w.written.Load() > pinged:
			return max(0, ackInterval-time.Since(lastPing)), true
		case w.pingGap > 0:
			return max(0, w.pingGap-time.Since(lastPing)), true
		}
		return 0, false
	}
	timer := func() <-chan time.Time {
		d, ok := nextPing()
		if !ok {
			return nil
		}
		if pingTimer == nil {
			pingTimer = time.NewTimer(d)
		} else {
			pingTimer.Reset(d)
		}
		return pingTimer.C
	}
	defer func() {
		if pingTimer != nil {
			pingTimer.Stop()
		}
	}()
	select {
	case <-w.begun:
	case req := <-w.stop: // replaced or gone before it began
		w.closeWith(req.code, req.reason)
		return
	}
	for _, r := range w.prelude {
		if r.Msg != nil {
			w.sock.Queue(r.Channel, r.Msg)
		}
	}
	w.prelude = nil
	if w.sock.Flush() != nil {
		w.closeWith(closeWithoutCode, "")
		return
	}
	w.poke()
	for {
		code, reason, end := w.flush(false)
		if end {
			w.closeWith(code, reason)
			return
		}
		select {
		case <-w.kick:
		case req := <-w.stop:
			if req.drain {
				w.flush(true)
			}
			w.closeWith(req.code, req.reason)
			return
		case <-timer():
			pinged, lastPing = w.written.Load(), time.Now()
			if w.sock.Ping(binary.BigEndian.AppendUint64(nil, pinged)) != nil {
				w.closeWith(closeWithoutCode, "")
				return
			}
		}
	}
}

// batchBytes is how much a writer queues before it flushes: large enough
// that a flood costs few writes, small enough that a stop or a ping waits
// for little.
const batchBytes = 64 << 10

// flush writes what the log holds for this connection, batch by batch. It
// reports how to end the connection when it must end: the client is gone.
// A stop that comes meanwhile is left in its channel for run, unless drain
// is set: then flush writes everything and ignores stops.
func (w *writer) flush(drain bool) (code int, reason string, end bool) {
	for {
		if !drain && len(w.stop) > 0 {
			return 0, "", false // run takes the stop
		}
		n, ok := w.fill()
		if !ok {
			return 0, "", false
		}
		if err := w.sock.Flush(); err != nil {
			// The client is gone: what it did not get stays in the log for
			// its session's next connection.
			w.logger.Debug().Err(err).Msg("websocket write failed")
			return closeWithoutCode, "", true
		}
		w.written.Store(w.cur.seq - 1)
		merged, saved, marks := w.merge.take()
		if n -= merged; n > 0 {
			w.metrics.MessagesToClients.Add(n)
			w.counted.Add(n)
		}
		if merged > 0 {
			w.metrics.MessagesMerged.Add(merged)
			w.metrics.MergeBytesSaved.Add(saved)
			if w.merges == nil {
				w.merges = make([]mergeMark, mergeMarks)
			}
			for _, mk := range marks {
				w.merges[w.next] = mk
				w.next = (w.next + 1) % mergeMarks
			}
		}
	}
}

// fill queues the next batch: the messages for this connection from the
// writer's position on, merged if the client has fallen behind, up to
// batchBytes. It returns how many messages it took (the coalescer knows
// how many of them it merged), and false when the log had nothing new.
func (w *writer) fill() (queued uint64, ok bool) {
	l := w.log
	merging := l.head.Load()-w.cur.seq > mergeBehind
	var now time.Time // for the rate limits: once per batch
	var last *logEntry
	for w.sock.Queued() < batchBytes {
		e, more := l.next(&w.cur)
		if !more {
			break
		}
		last = e
		if e.to != 0 && e.to != w.session {
			continue
		}
		m := e.m
		if e.ch == zmq.IOPub && w.limiter != nil {
			if now.IsZero() {
				now = time.Now()
			}
			pass, crossed := w.limiter.admit(now, m, int(e.size))
			if crossed {
				if warn := rateWarning(m); warn != nil {
					w.merge.flush(w.sock)
					w.sock.Queue(zmq.IOPub, warn)
				}
			}
			if !pass {
				w.metrics.RateLimited.Add(1)
				continue
			}
		}
		if merging {
			w.merge.add(w.sock, e, w.cur.seq-1)
		} else {
			w.sock.Queue(e.ch, m)
		}
		queued++
	}
	if last == nil {
		return 0, false
	}
	w.merge.flush(w.sock)
	w.reached.Store(&last.at)
	return queued, true
}

// mergeMarks returns the merged messages the writer wrote last, oldest
// first; nil when it merged none. Only once the writer is done.
func (w *writer) mergeMarks() []mergeMark {
	var out []mergeMark
	for i := range w.merges {
		if mk := w.merges[(w.next+i)%mergeMarks]; mk.last > 0 {
			out = append(out, mk)
		}
	}
	return out
}

// tooFarBehind reports whether the client lags the log by more than the
// bounds, its replay aside: more messages that cannot be merged than
// KERNELGATE_WS_QUEUE, more bytes once merged than
// KERNELGATE_WS_QUEUE_BYTES, or, as a guard on the memory its backlog
// holds, rawFactor times that many bytes unmerged. The kernel actor asks
// as the log grows: a writer stuck in a write to a client that reads
// nothing cannot tell.
func (w *writer) tooFarBehind() (lag tally, over bool) {
	from := *w.reached.Load()
	if from.seq < w.replay.seq {
		from = w.replay
	}
	lag = w.log.last.minus(from)
	return lag, lag.hard > w.maxMsgs || lag.merged > w.maxBytes || lag.bytes+entryOverhead*lag.seq > rawFactor*w.maxBytes
}

// rawFactor and entryOverhead bound the memory a client's backlog holds
// (see tooFarBehind): entryOverhead is roughly what a message costs beyond
// its parts (its entry, its frames' and decoded header's allocations).
const (
	rawFactor     = 4
	entryOverhead = 256
)

// lostWarning logs, rate-limited per kernel, messages a reconnecting client
// can no longer get.
func lostWarning(log zerolog.Logger, total *uint64, lost uint64, session string) {
	before := *total
	*total += lost
	if lograte.Crossed(before, *total) {
		log.Warn().Str("session", session).Uint64("lost", lost).Uint64("total", *total).
			Msg("a reconnecting client missed output that is no longer kept")
	}
}
