package http

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// upgrade does the websocket handshake of ctx as u.Upgrade does and runs
// handler with the connection, on a goroutine of its own — but over the
// connection itself, not through fasthttp's hijacked one. fasthttp hands a
// hijacked connection the buffer it read the request with (the server's
// ReadBufferSize: 64 KiB, for large headers), and that buffer would stay
// with every websocket for its whole life: 640 MB for 10,000 notebooks.
// Here the handshake is answered from the request handler by the net/http
// flavour of the same upgrader (fasthttp/websocket.Upgrader) over
// ctx.Conn(), fasthttp is told to hand the connection off without a
// response of its own, and its hijack handler only starts handler and
// returns, which lets its buffer go. A client must not send before the
// 101 (RFC 6455 4.1), so that buffer holds nothing the websocket needs.
//
// On a handshake that fails, the error answer is in ctx, as u.Upgrade
// leaves it.
func (s *Server) upgrade(ctx *fasthttp.RequestCtx, u websocket.FastHTTPUpgrader, handler func(*websocket.Conn)) error {
	nu := websocket.Upgrader{
		HandshakeTimeout:  u.HandshakeTimeout,
		ReadBufferSize:    u.ReadBufferSize,
		WriteBufferSize:   u.WriteBufferSize,
		WriteBufferPool:   u.WriteBufferPool,
		Subprotocols:      u.Subprotocols,
		EnableCompression: u.EnableCompression,
		CheckOrigin:       func(*http.Request) bool { return true }, // the caller checks
	}
	if u.CheckOrigin != nil && !u.CheckOrigin(ctx) {
		ctx.Error("websocket: request origin not allowed", fasthttp.StatusForbidden)
		return errors.New("websocket: request origin not allowed")
	}
	w := &upgradeResponse{ctx: ctx, header: http.Header{}}
	c, err := nu.Upgrade(w, upgradeRequest(ctx), nil)
	if w.hijacked {
		// The connection is the websocket's (or, after a failed write of
		// the 101, closed): fasthttp must neither answer nor read it.
		ctx.HijackSetNoResponse(true)
		ctx.SetStatusCode(fasthttp.StatusSwitchingProtocols)
		ctx.Hijack(func(net.Conn) {
			if c != nil {
				go handler(c)
			}
		})
	}
	return err
}

// upgradeRequest is the handshake request as net/http's.
func upgradeRequest(ctx *fasthttp.RequestCtx) *http.Request {
	r := &http.Request{
		Method:     string(ctx.Method()),
		URL:        &url.URL{Path: string(ctx.Path()), RawQuery: string(ctx.QueryArgs().QueryString())},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{},
		Host:       string(ctx.Host()),
		RequestURI: string(ctx.RequestURI()),
	}
	for k, v := range ctx.Request.Header.All() {
		r.Header.Add(string(k), string(v))
	}
	return r
}

// upgradeResponse is the http.ResponseWriter the upgrader answers through:
// an error goes into ctx, the hijack hands over ctx.Conn().
type upgradeResponse struct {
	ctx      *fasthttp.RequestCtx
	header   http.Header
	hijacked bool
}

func (w *upgradeResponse) Header() http.Header { return w.header }

func (w *upgradeResponse) WriteHeader(status int) {
	for k, vs := range w.header {
		for _, v := range vs {
			w.ctx.Response.Header.Add(k, v)
		}
	}
	w.ctx.SetStatusCode(status)
}

func (w *upgradeResponse) Write(b []byte) (int, error) {
	if w.ctx.Response.StatusCode() == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ctx.Write(b)
}

// Hijack hands over the connection, with an empty reader (the request has
// been read whole) and a writer the upgrader only takes room from.
func (w *upgradeResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.hijacked = true
	c := w.ctx.Conn()
	return c, bufio.NewReadWriter(bufio.NewReaderSize(strings.NewReader(""), 16), bufio.NewWriterSize(c, 512)), nil
}
