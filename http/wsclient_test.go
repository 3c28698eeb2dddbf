package http

import (
	"encoding/binary"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
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

func (h *harness) dialWS(kernelID, session string, v1 bool) *wsClient {
	h.t.Helper()
	c, err := h.tryDialWS(kernelID, session, v1)
	testkit.NoError(h.t, err)
	if v1 {
		testkit.Equal(h.t, c.Subprotocol(), SubprotocolV1)
	} else {
		testkit.Equal(h.t, c.Subprotocol(), "")
	}
	w := &wsClient{t: h.t, c: c, v1: v1, session: session}
	h.t.Cleanup(func() { c.Close() })
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
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	if v1 {
		d.Subprotocols = []string{SubprotocolV1}
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
	var f framing = legacy{}
	if w.v1 {
		f = v1{}
	}
	data, bin := f.encode(nil, ch, m)
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

// recv reads one message.
func (w *wsClient) recv(d time.Duration) (got, error) {
	w.c.SetReadDeadline(time.Now().Add(d))
	typ, data, err := w.c.ReadMessage()
	if err != nil {
		return got{}, err
	}
	var g got
	var header, parent, content []byte
	if w.v1 {
		testkit.Equal(w.t, typ, websocket.BinaryMessage)
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
			jsonPart, bufs, err = splitLegacyBinary(data)
			testkit.NoError(w.t, err)
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
		testkit.NoError(w.t, json.Unmarshal(jsonPart, &obj))
		g.channel = obj.Channel
		header, parent, content = obj.Header, obj.ParentHeader, obj.Content
		testkit.True(w.t, obj.MsgType != "" && obj.MsgID != "" && obj.Channel != "", "legacy frame lacks top-level fields: %s", jsonPart)
	}
	testkit.NoError(w.t, json.Unmarshal(header, &g.header))
	g.msgType, _ = g.header["msg_type"].(string)
	var p map[string]any
	testkit.NoError(w.t, json.Unmarshal(parent, &p))
	g.parent, _ = p["msg_id"].(string)
	testkit.NoError(w.t, json.Unmarshal(content, &g.content))
	return g, nil
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

func pick(t *testing.T, all []got, channel, msgType string) got {
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
