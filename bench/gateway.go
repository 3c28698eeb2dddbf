package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/google/uuid"
	"github.com/kernelgate/kernelgate/http/framing"
	"github.com/kernelgate/kernelgate/zmq"
)

// Backend is where the harness gets kernels: a gateway's REST and
// websocket API, or kernels it runs itself (the limit, no gateway).
type Backend interface {
	// Start starts a kernel and returns its id once the backend says it
	// exists (for a gateway, the POST's answer).
	Start(ctx context.Context) (string, error)
	// Connect opens a client connection to a started kernel.
	Connect(ctx context.Context, id string) (Conn, error)
	// Stop shuts a kernel down.
	Stop(ctx context.Context, id string) error
	// Language is the kernel's language, which picks the code scenarios run.
	Language(ctx context.Context) (string, error)
	Close() error
}

// Gateway is a Backend speaking Enterprise Gateway's API, which
// kernelgate, Kernel Gateway and Jupyter Server all serve.
type Gateway struct {
	base     *url.URL
	token    string
	kernel   string
	protocol string
	client   *http.Client
}

// NewGateway checks the target's URL and returns its backend. protocol is
// "v1" or "legacy": which websocket subprotocol to ask for (a server that
// does not know v1 answers with legacy anyway).
func NewGateway(target Target) (*Gateway, error) {
	u, err := url.Parse(strings.TrimRight(target.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("bench: --url %q is not http[s]://host:port[/base]", target.URL)
	}
	if target.Protocol != "v1" && target.Protocol != "legacy" {
		return nil, fmt.Errorf("bench: --protocol %q: want v1 or legacy", target.Protocol)
	}
	return &Gateway{base: u, token: target.Token, kernel: target.Kernel, protocol: target.Protocol,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}, nil
}

// do sends a REST request and decodes a JSON answer into out (when not
// nil), failing on any status but want.
func (g *Gateway) do(ctx context.Context, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.base.String()+path, rd)
	if err != nil {
		return err
	}
	if g.token != "" {
		req.Header.Set("Authorization", "token "+g.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b[:min(len(b), 300)]))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Start posts the kernel start.
func (g *Gateway) Start(ctx context.Context) (string, error) {
	var m struct {
		ID string `json:"id"`
	}
	if err := g.do(ctx, "POST", "/api/kernels", map[string]any{"name": g.kernel}, http.StatusCreated, &m); err != nil {
		return "", err
	}
	if m.ID == "" {
		return "", errors.New("POST /api/kernels: no id in the answer")
	}
	return m.ID, nil
}

// Stop deletes the kernel.
func (g *Gateway) Stop(ctx context.Context, id string) error {
	return g.do(ctx, "DELETE", "/api/kernels/"+url.PathEscape(id), nil, http.StatusNoContent, nil)
}

// Language reads the kernelspec's language from /api/kernelspecs.
func (g *Gateway) Language(ctx context.Context) (string, error) {
	var specs struct {
		Kernelspecs map[string]struct {
			Spec struct {
				Language string `json:"language"`
			} `json:"spec"`
		} `json:"kernelspecs"`
	}
	if err := g.do(ctx, "GET", "/api/kernelspecs", nil, http.StatusOK, &specs); err != nil {
		return "", err
	}
	s, ok := specs.Kernelspecs[g.kernel]
	if !ok {
		return "", fmt.Errorf("the target has no kernelspec %q", g.kernel)
	}
	return strings.ToLower(s.Spec.Language), nil
}

// Close releases idle HTTP connections.
func (g *Gateway) Close() error {
	g.client.CloseIdleConnections()
	return nil
}

// Connect opens the kernel's websocket.
func (g *Gateway) Connect(ctx context.Context, id string) (Conn, error) {
	u := *g.base
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path += "/api/kernels/" + url.PathEscape(id) + "/channels"
	session := uuid.NewString()
	header := http.Header{}
	if g.token != "" {
		header.Set("Authorization", "token "+g.token)
	}
	d := &websocket.Dialer{ReadBufferSize: 64 << 10, WriteBufferSize: 16 << 10}
	if g.protocol == "v1" {
		d.Subprotocols = []string{framing.SubprotocolV1}
	}
	// A reconnect says which message came last (kernelgate's
	// ?last_msg_id=), so it gets exactly what followed; other gateways
	// ignore it.
	w := &wsConn{dial: func(ctx context.Context, lastMsgID string) (*websocket.Conn, error) {
		q := url.Values{"session_id": {session}}
		if lastMsgID != "" {
			q.Set("last_msg_id", lastMsgID)
		}
		u.RawQuery = q.Encode()
		c, resp, err := d.DialContext(ctx, u.String(), header)
		if err != nil {
			if resp != nil && resp.StatusCode < 500 {
				return nil, fmt.Errorf("websocket %s: %s: %w: %w", id, resp.Status, errRefused, err)
			}
			if resp != nil { // a balancer with no live backend yet, say
				return nil, fmt.Errorf("websocket %s: %s: %w", id, resp.Status, err)
			}
			return nil, fmt.Errorf("websocket %s: %w", id, err)
		}
		c.SetReadLimit(256 << 20)
		return c, nil
	}, ended: make(chan struct{})}
	c, err := w.dial(ctx, "")
	if err != nil {
		return nil, err
	}
	w.c, w.codec = c, framing.For(c.Subprotocol())
	w.tracker = newTracker(session, w.send)
	go w.read()
	return w, nil
}

// wsConn is a kernel websocket: a reader goroutine feeds the tracker.
type wsConn struct {
	*tracker
	dial  func(ctx context.Context, lastMsgID string) (*websocket.Conn, error)
	last  string // msg_id of the last message read; the reader's
	codec framing.Codec
	ended chan struct{} // the reader has exited

	wmu    sync.Mutex // guards c (a reconnect replaces it), buf and writes
	c      *websocket.Conn
	buf    []byte
	closed bool
}

// errRefused reports a websocket the gateway refused (4xx): the kernel is
// gone, say; coming back would not help.
var errRefused = errors.New("refused")

// maxReconnects bounds the comebacks of one connection.
const maxReconnects = 100

func (w *wsConn) send(ch zmq.Channel, m *zmq.Message) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	var bin bool
	w.buf, bin = w.codec.Encode(w.buf[:0], ch, m)
	typ := websocket.TextMessage
	if bin {
		typ = websocket.BinaryMessage
	}
	return w.c.WriteMessage(typ, w.buf)
}

func (w *wsConn) conn() *websocket.Conn {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	return w.c
}

// read decodes every frame into the tracker, reading into one reused
// buffer (the tracker keeps nothing of a message). An end a client comes
// back from (see comesBack) is followed by a reconnect with the same
// session id and the last message read, for exactly what followed.
func (w *wsConn) read() {
	defer close(w.ended)
	defer w.closeAll()
	var buf bytes.Buffer
	c := w.conn()
	for {
		typ, r, err := c.NextReader()
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			if !comesBack(err) || w.reconnects.Load() >= maxReconnects {
				return
			}
			if c = w.reconnect(); c == nil {
				return
			}
			continue
		}
		ch, m, err := w.codec.Decode(buf.Bytes(), typ == websocket.TextMessage)
		if err != nil {
			continue // nothing the harness waits for comes in a frame it cannot read
		}
		w.last = m.Head().MsgID
		w.observe(ch, m)
	}
}

// comesBack reports an end of the connection JupyterLab comes back from
// with its session: the gateway sent the client away for being slow
// (1013) or is going away (1001, a replica stopping), or the connection
// broke under it (no close frame: a proxy or a replica died).
func comesBack(err error) bool {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code == websocket.CloseTryAgainLater || ce.Code == websocket.CloseGoingAway || ce.Code == websocket.CloseAbnormalClosure
	}
	return true
}

// reconnect dials again, for up to 30 s (a balancer takes a moment to
// notice a dead replica), unless the connection was closed here.
func (w *wsConn) reconnect() *websocket.Conn {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var c *websocket.Conn
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		w.wmu.Lock()
		closed := w.closed
		w.wmu.Unlock()
		if closed {
			return nil
		}
		var err error
		if c, err = w.dial(ctx, w.last); err == nil {
			break
		}
		if errors.Is(err, errRefused) { // the kernel is gone, say
			return nil
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
	}
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.closed {
		c.Close()
		return nil
	}
	w.c.Close()
	w.c = c
	w.reconnects.Add(1)
	return c
}

// Close ends the connection and waits for its reader.
func (w *wsConn) Close() error {
	w.wmu.Lock()
	w.closed = true
	w.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	err := w.c.Close()
	w.wmu.Unlock()
	<-w.ended
	return err
}
