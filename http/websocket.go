package http

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/google/uuid"
	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/http/framing"
	"github.com/kernelgate/kernelgate/internal/lograte"
	"github.com/kernelgate/kernelgate/zmq"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// WebsocketConfig tunes kernel websockets.
type WebsocketConfig struct {
	// PingInterval between server pings; 0 turns them off.
	PingInterval time.Duration
	// PongTimeout is how long a pinged connection may send nothing (no
	// pong, no message) before it is closed as dead, e.g. half-open after
	// its client vanished without a FIN. 0 means max(3 pings, 30 s).
	PongTimeout time.Duration
	// ReadLimit is the largest message a client may send.
	ReadLimit int64
}

// channels serves GET /api/kernels/{id}/channels: the websocket.
func (s *Server) channels(ctx *fasthttp.RequestCtx, p []string) error {
	if !ctx.IsGet() {
		return errMethod
	}
	// Everything the connection needs is copied now: ctx is recycled when
	// this handler returns, before the hijacked connection is served.
	kernelID := p[0]
	if _, err := s.kernelFor(ctx, kernelID); err != nil {
		return err
	}
	sessionID := string(ctx.QueryArgs().Peek("session_id"))
	replayable := sessionID != ""
	if !replayable {
		sessionID = uuid.NewString()
	}
	// kernelgate's extension: the last message the client has, so that it
	// gets exactly what followed (see actors.Gateway.Attach).
	lastMsgID := string(ctx.QueryArgs().Peek("last_msg_id"))
	upgrader := websocket.FastHTTPUpgrader{
		Subprotocols: []string{framing.SubprotocolV1},
		CheckOrigin:  func(*fasthttp.RequestCtx) bool { return true }, // dispatch checked it
		// Clients send little (an execute request is a few hundred
		// bytes), and a buffer stays with every websocket for its life:
		// a larger message is read past it.
		ReadBufferSize:  1 << 10,
		WriteBufferSize: 16 << 10,
		WriteBufferPool: &s.wsWriteBuffers,
	}
	log := s.cfg.Logger.With().Str("kernel_id", kernelID).Str("session", sessionID).Logger()
	err := s.upgrade(ctx, upgrader, func(c *websocket.Conn) {
		conn := newWSConn(c)
		if !s.track(conn) {
			conn.Close(1001, "gateway shutting down")
			return
		}
		defer s.untrack(conn)
		a, err := s.gw.Attach(kernelID, sessionID, replayable, lastMsgID, conn)
		if err != nil {
			log.Info().Err(err).Msg("websocket refused")
			code := actors.CloseNormal
			if errors.Is(err, actors.ErrLimit) {
				code = actors.CloseTryAgain
			}
			conn.Close(code, err.Error())
			return
		}
		log.Debug().Str("protocol", c.Subprotocol()).Msg("websocket open")
		ending := s.serveWebsocket(conn, a, log)
		a.Close(ending)
		conn.Close(0, "")
		log.Debug().Msg("websocket closed")
	})
	if err != nil {
		log.Debug().Err(err).Msg("websocket upgrade failed") // the upgrader answered 4xx
	}
	return nil
}

// serveWebsocket is the connection's read loop: decode each frame and pass
// it on, until the client goes or the connection fails; it says how the
// connection ended. (Its writer, which also pings, is the attachment's.)
// Once kernelgate has sent its close frame, the loop only waits (bounded)
// for the client's answer: what the client still sends is dropped.
func (s *Server) serveWebsocket(conn *wsConn, a *actors.Attachment, log zerolog.Logger) actors.Ending {
	c := conn.c
	c.SetReadLimit(s.cfg.Websocket.ReadLimit)
	wait := s.cfg.Websocket.PongTimeout
	if wait <= 0 {
		wait = max(3*s.cfg.Websocket.PingInterval, 30*time.Second)
	}
	pinged := s.cfg.Websocket.PingInterval > 0
	extend := func() {
		if pinged && a.SentClose() == 0 {
			c.SetReadDeadline(time.Now().Add(wait))
		}
	}
	extend()
	c.SetPongHandler(func(data string) error {
		a.Ack([]byte(data))
		extend()
		return nil
	})
	for {
		typ, data, err := c.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			switch {
			case errors.As(err, &ce) && ce.Code == a.SentClose():
				return actors.EndHandshake
			case errors.As(err, &ce):
				return actors.EndClientClosed
			case errors.Is(err, websocket.ErrReadLimit):
				log.Warn().Int64("limit", s.cfg.Websocket.ReadLimit).Msg("client message over the size limit; closing")
				conn.Close(websocket.CloseMessageTooBig, "message too big")
			default:
				log.Debug().Err(err).Msg("websocket read ended")
			}
			return actors.EndBroken
		}
		if a.SentClose() != 0 {
			continue // the connection is closing: nothing more reaches the kernel
		}
		extend()
		ch, m, err := conn.f.Decode(data, typ == websocket.TextMessage)
		if err == nil && ch == zmq.IOPub {
			err = fmt.Errorf("%w: clients may not send on iopub", framing.ErrChannel)
		}
		if err != nil {
			// One bad frame does not end the connection: report and go on.
			if n := s.badFrames.Add(1); lograte.Crossed(n-1, n) {
				log.Warn().Err(err).Uint64("total", n).Msg("dropped a malformed client frame")
			}
			continue
		}
		a.Send(ch, m)
	}
}

// wsConn is a websocket as actors.Socket. The attachment's writer
// goroutine queues data frames, encoded straight into one buffer, and
// flushes them with one write deadline and one write to the connection
// (fasthttp/websocket would make a write, and a syscall, of every frame).
// One Write call to a net.Conn is never interleaved with another, so the
// frames the websocket library writes itself (a close frame) cannot tear a
// batch; pongs and pings, which would move the write deadline under a
// batch, take turns with batches on wmu.
type wsConn struct {
	c         *websocket.Conn
	nc        net.Conn
	f         framing.Codec
	out       *[]byte       // queued frames; from outBuffers, returned by Flush
	wmu       chan struct{} // held while a batch, a ping or a pong is written
	closeOnce sync.Once
}

var _ actors.Socket = (*wsConn)(nil)

func newWSConn(c *websocket.Conn) *wsConn {
	w := &wsConn{c: c, nc: c.NetConn(), f: framing.For(c.Subprotocol()), wmu: make(chan struct{}, 1)}
	c.SetPingHandler(w.pong)
	return w
}

// outBuffers holds the batch buffers of connections between flushes: an
// idle connection keeps none.
var outBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxKeptBuffer: a buffer grown larger by a big message is not kept.
const maxKeptBuffer = 1 << 20

// writeTimeout bounds one batch's write to a client.
const writeTimeout = 30 * time.Second

// frameReserve is room for the longest frame header (2 + 8 bytes, a
// server's frames are not masked), written once the payload's length is
// known.
const frameReserve = 10

func (w *wsConn) Queue(ch zmq.Channel, m *zmq.Message) {
	if w.out == nil {
		w.out = outBuffers.Get().(*[]byte)
	}
	b := *w.out
	start := len(b)
	b, bin := w.f.Encode(append(b, make([]byte, frameReserve)...), ch, m)
	op := byte(websocket.TextMessage)
	if bin {
		op = websocket.BinaryMessage
	}
	*w.out = closeGap(b, start, putFrameHeader(b[start:start+frameReserve], op, len(b)-start-frameReserve))
}

// putFrameHeader writes a final frame's header for op and a payload of n
// bytes at the end of dst and returns its length.
func putFrameHeader(dst []byte, op byte, n int) int {
	e := len(dst)
	switch {
	case n < 126:
		dst[e-2], dst[e-1] = 0x80|op, byte(n)
		return 2
	case n <= 0xFFFF:
		dst[e-4], dst[e-3] = 0x80|op, 126
		binary.BigEndian.PutUint16(dst[e-2:], uint16(n))
		return 4
	default:
		dst[e-10], dst[e-9] = 0x80|op, 127
		binary.BigEndian.PutUint64(dst[e-8:], uint64(n))
		return 10
	}
}

// closeGap moves the frame at b[start:] (frameReserve bytes of room whose
// last hl hold its header, then the payload) down over the unused room.
func closeGap(b []byte, start, hl int) []byte {
	gap := frameReserve - hl
	if gap == 0 {
		return b
	}
	copy(b[start:], b[start+gap:])
	return b[:len(b)-gap]
}

func (w *wsConn) Queued() int {
	if w.out == nil {
		return 0
	}
	return len(*w.out)
}

func (w *wsConn) Flush() error {
	if w.out == nil {
		return nil
	}
	out := w.out
	w.out = nil
	w.wmu <- struct{}{}
	w.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := w.nc.Write(*out)
	<-w.wmu
	if cap(*out) <= maxKeptBuffer {
		*out = (*out)[:0]
		outBuffers.Put(out)
	}
	if err != nil {
		return fmt.Errorf("websocket write: %w", err)
	}
	return nil
}

// closeFrameTimeout bounds the write of a close frame; closeWait, how long
// the client then has to answer it before the connection is closed.
const (
	closeFrameTimeout = 5 * time.Second
	closeWait         = 2 * time.Second
)

// Close sends a close frame (none when code is 0) and closes the
// connection: without a frame at once, else when the reader has the
// client's answer (the handler then closes it), within closeWait.
func (w *wsConn) Close(code int, reason string) {
	if code == 0 {
		w.c.NetConn().Close()
		return
	}
	w.closeOnce.Do(func() {
		if len(reason) > 120 {
			reason = reason[:120]
		}
		// A client sent away for being slow has a full receive window:
		// give its close frame time to get through, or it sees 1006 and
		// does not know to come back for its buffer.
		w.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(closeFrameTimeout))
		w.c.SetReadDeadline(time.Now().Add(closeWait))
		conn := w.c.NetConn()
		time.AfterFunc(closeWait, func() { conn.Close() })
	})
}

// Ping writes a ping; the writer is its only caller, as for Flush.
func (w *wsConn) Ping(data []byte) error {
	w.wmu <- struct{}{}
	defer func() { <-w.wmu }()
	return w.c.WriteControl(websocket.PingMessage, data, time.Now().Add(5*time.Second))
}

// pongWait bounds how long a pong waits for a batch being written, as the
// websocket library's own pong does for its writes; then it is dropped.
const pongWait = time.Second

// pong answers a client's ping, on the reader's goroutine, between the
// writer's batches.
func (w *wsConn) pong(data string) error {
	t := time.NewTimer(pongWait)
	defer t.Stop()
	select {
	case w.wmu <- struct{}{}:
	case <-t.C:
		return nil
	}
	defer func() { <-w.wmu }()
	err := w.c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(pongWait))
	if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return err
		}
	}
	return nil
}
