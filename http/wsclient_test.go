package http

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/kernelgate/kernelgate/http/framing"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/zmq"
)

// wsClient is a test client for /api/kernels/{id}/channels speaking either
// framing, as JupyterLab (v1) or Jupyter Server's gateway client (legacy)
// would.
type wsClient struct {
	t       testing.TB
	c       *websocket.Conn
	v1      bool
	session string
	in      chan received // filled by the reader goroutine
}

type received struct {
	g   got
	err error
}

// got is one message as a client sees it.
type got struct {
	channel string
	msgType string
	parent  string // parent msg_id
	content map[string]any
	buffers [][]byte
	header  map[string]any
}

// streamLines is how many lines a stream message holds: one per message
// the kernel wrote, a merged message holding several.
func streamLines(g got) int {
	text, _ := g.content["text"].(string)
	return strings.Count(text, "\n")
}

func (h *harness) dialWS(kernelID, session string, v1 bool) *wsClient {
	h.t.Helper()
	c, err := h.tryDialWS(kernelID, session, v1)
	testkit.NoError(h.t, err)
	if v1 {
		testkit.Equal(h.t, c.Subprotocol(), framing.SubprotocolV1)
	} else {
		testkit.Equal(h.t, c.Subprotocol(), "")
	}
	return h.wrapWS(c, session)
}

// wrapWS makes a test client of a dialled connection and starts reading it.
func (h *harness) wrapWS(c *websocket.Conn, session string) *wsClient {
	v1 := c.Subprotocol() == framing.SubprotocolV1
	w := &wsClient{t: h.t, c: c, v1: v1, session: session, in: make(chan received, 1<<16)}
	done := make(chan struct{})
	go func() { // gorilla fails a connection for good after a read timeout: read in the background
		defer close(done)
		for {
			typ, data, err := c.ReadMessage()
			if err != nil {
				w.in <- received{err: err}
				return
			}
			g, err := w.decodeFrame(typ, data)
			w.in <- received{g: g, err: err}
		}
	}()
	h.t.Cleanup(func() { c.Close(); <-done })
	return w
}

func (h *harness) tryDialWS(kernelID, session string, v1 bool) (*websocket.Conn, error) {
	u := "ws" + strings.TrimPrefix(h.url, "http") + "/api/kernels/" + kernelID + "/channels"
	q := url.Values{}
	if session != "" {
		q.Set("session_id", session)
	}
	if h.token != "" {
		q.Set("token", h.token)
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, TLSClientConfig: h.tlsClient}
	if v1 {
		d.Subprotocols = []string{framing.SubprotocolV1}
	}
	c, _, err := d.Dial(u, nil)
	return c, err
}

// send builds a message with a fresh header and sends it on ch.
func (w *wsClient) send(ch zmq.Channel, msgType string, content any, parent []byte, buffers ...[]byte) *zmq.Message {
	w.t.Helper()
	m, err := zmq.NewMessage(msgType, w.session, "tester", parent, content)
	testkit.NoError(w.t, err)
	m.Buffers = buffers
	var f framing.Codec = framing.Legacy{}
	if w.v1 {
		f = framing.V1{}
	}
	data, bin := f.Encode(nil, ch, m)
	typ := websocket.TextMessage
	if bin {
		typ = websocket.BinaryMessage
	}
	testkit.NoError(w.t, w.c.WriteMessage(typ, data))
	return m
}

func (w *wsClient) execute(code string) *zmq.Message {
	return w.send(zmq.Shell, "execute_request", map[string]any{"code": code, "silent": false, "store_history": true,
		"user_expressions": map[string]any{}, "allow_stdin": true, "stop_on_error": true}, nil)
}

// recv returns the next message, or an error when the connection ended
// or nothing came within d.
func (w *wsClient) recv(d time.Duration) (got, error) {
	select {
	case r := <-w.in:
		if r.err != nil {
			w.in <- r // the connection stays ended for later calls
		}
		return r.g, r.err
	case <-time.After(d):
		return got{}, fmt.Errorf("nothing received within %v", d)
	}
}

func (w *wsClient) decodeFrame(typ int, data []byte) (got, error) {
	var g got
	var header, parent, content []byte
	if w.v1 {
		if typ != websocket.BinaryMessage || len(data) < 8 {
			return g, fmt.Errorf("v1 frame of type %d, %d bytes", typ, len(data))
		}
		n := binary.LittleEndian.Uint64(data)
		offs := make([]uint64, n)
		for i := range offs {
			offs[i] = binary.LittleEndian.Uint64(data[8*(i+1):])
		}
		part := func(i int) []byte { return data[offs[i]:offs[i+1]] }
		g.channel = string(part(0))
		header, parent, content = part(1), part(2), part(4)
		for i := 5; i < int(n)-1; i++ {
			g.buffers = append(g.buffers, part(i))
		}
	} else {
		jsonPart := data
		if typ == websocket.BinaryMessage {
			var bufs [][]byte
			var err error
			if jsonPart, bufs, err = framing.SplitLegacyBinary(data); err != nil {
				return g, err
			}
			g.buffers = bufs
		}
		var obj struct {
			Header       json.RawMessage `json:"header"`
			ParentHeader json.RawMessage `json:"parent_header"`
			Content      json.RawMessage `json:"content"`
			MsgType      string          `json:"msg_type"`
			MsgID        string          `json:"msg_id"`
			Channel      string          `json:"channel"`
		}
		if err := json.Unmarshal(jsonPart, &obj); err != nil {
			return g, err
		}
		if obj.MsgType == "" || obj.MsgID == "" || obj.Channel == "" {
			return g, fmt.Errorf("legacy frame lacks top-level fields: %s", jsonPart)
		}
		g.channel = obj.Channel
		header, parent, content = obj.Header, obj.ParentHeader, obj.Content
	}
	if err := json.Unmarshal(header, &g.header); err != nil {
		return g, err
	}
	g.msgType, _ = g.header["msg_type"].(string)
	var p map[string]any
	if err := json.Unmarshal(parent, &p); err != nil {
		return g, err
	}
	g.parent, _ = p["msg_id"].(string)
	return g, json.Unmarshal(content, &g.content)
}

// until reads until match accepts a message, returning everything read.
func (w *wsClient) until(d time.Duration, match func(got) bool) []got {
	w.t.Helper()
	deadline := time.Now().Add(d)
	var all []got
	for {
		g, err := w.recv(time.Until(deadline))
		if err != nil {
			w.t.Fatalf("waiting for a message: %v (read %d)", err, len(all))
		}
		all = append(all, g)
		if match(g) {
			return all
		}
	}
}

// ready sends kernel_info_request once a second until one is answered, as
// JupyterLab does on connect: Jupyter Server 1.x's gateway proxy drops
// messages a client sends before its own connection to the gateway is up.
func (w *wsClient) ready(d time.Duration) {
	w.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		req := w.send(zmq.Shell, "kernel_info_request", nil, nil)
		for {
			g, err := w.recv(time.Second)
			if err != nil {
				if strings.HasPrefix(err.Error(), "nothing received") {
					break // ask again
				}
				w.t.Fatalf("waiting for kernel_info_reply: %v", err)
			}
			if g.msgType == "kernel_info_reply" && g.parent == req.Head().MsgID {
				return
			}
		}
	}
	w.t.Fatalf("no kernel_info_reply within %v", d)
}

// reply collects what answers req until its shell reply and idle status
// have both arrived.
func (w *wsClient) reply(req *zmq.Message, d time.Duration) []got {
	w.t.Helper()
	replied, idle := false, false
	var mine []got
	w.until(d, func(g got) bool {
		if g.parent != req.Head().MsgID {
			return false
		}
		mine = append(mine, g)
		if strings.HasSuffix(g.msgType, "_reply") {
			replied = true
		}
		if g.msgType == "status" && g.content["execution_state"] == "idle" {
			idle = true
		}
		return replied && idle
	})
	return mine
}

func pick(t testing.TB, all []got, channel, msgType string) got {
	t.Helper()
	for _, g := range all {
		if g.channel == channel && g.msgType == msgType {
			return g
		}
	}
	t.Fatalf("no %s %s among %d messages", channel, msgType, len(all))
	return got{}
}

func isStatus(state string) func(got) bool {
	return func(g got) bool { return g.msgType == "status" && g.content["execution_state"] == state }
}

// answerInput runs a cell that asks for input(), answers value on the
// stdin channel, and returns what the cell printed.
func (w *wsClient) answerInput(value string, d time.Duration) string {
	w.t.Helper()
	req := w.execute(`print("got", input("name? "))`)
	ask := w.until(d, func(g got) bool { return g.msgType == "input_request" })
	last := ask[len(ask)-1]
	testkit.Equal(w.t, last.channel, "stdin")
	askHeader := fmt.Sprintf(`{"msg_id":%q,"msg_type":"input_request","session":%q,"username":"","date":"","version":"5.3"}`,
		last.header["msg_id"], last.header["session"])
	w.send(zmq.Stdin, "input_reply", map[string]any{"value": value}, []byte(askHeader))
	return pick(w.t, w.reply(req, d), "iopub", "stream").content["text"].(string)
}

// interruptSleep runs a cell that sleeps a minute, calls interrupt once the
// cell's code runs (SIGINT is only caught from then on), and returns the
// ename of the cell's reply.
func (w *wsClient) interruptSleep(interrupt func(), d time.Duration) any {
	w.t.Helper()
	req := w.execute("import time; print('sleeping', flush=True); time.sleep(60)")
	w.until(d, func(g got) bool { return g.msgType == "stream" && g.parent == req.Head().MsgID })
	interrupt()
	return pick(w.t, w.reply(req, d), "shell", "execute_reply").content["ename"]
}
