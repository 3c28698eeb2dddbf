package main

import (
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

// wsClient is one kernel websocket of a test, in the v1 framing, reading
// in the test's goroutine.
type wsClient struct {
	t       *testing.T
	c       *websocket.Conn
	session string
	last    string // msg_id of the last message read
	err     error  // why reading stopped
	codec   framing.Codec
	events  chan event // read by a goroutine, once runRetrying needs it
}

// dialKernel opens kernel id's websocket at base with session (and, when
// set, kernelgate's last_msg_id).
func dialKernel(t *testing.T, base, id, session, lastMsgID string) *wsClient {
	t.Helper()
	q := url.Values{"session_id": {session}}
	if lastMsgID != "" {
		q.Set("last_msg_id", lastMsgID)
	}
	return dialChannels(t, base, id, session, q)
}

// dialChannels opens kernel id's websocket at base with query q, in the
// framing the server agrees to (Jupyter Server 1.x knows only the legacy
// JSON one).
func dialChannels(t *testing.T, base, id, session string, q url.Values) *wsClient {
	t.Helper()
	u := "ws" + strings.TrimPrefix(base, "http") + "/api/kernels/" + id + "/channels?" + q.Encode()
	d := websocket.Dialer{Subprotocols: []string{framing.SubprotocolV1}, HandshakeTimeout: 30 * time.Second}
	var c *websocket.Conn
	testkit.Eventually(t, 30*time.Second, func() error {
		var err error
		c, _, err = d.Dial(u, nil)
		return err
	})
	w := &wsClient{t: t, c: c, session: session, codec: framing.For(c.Subprotocol())}
	t.Cleanup(func() { c.Close() })
	return w
}

// execute sends code and returns the request's msg_id.
func (w *wsClient) execute(code string) string {
	w.t.Helper()
	m, err := zmq.NewMessage("execute_request", w.session, "tester", nil, map[string]any{"code": code, "silent": false,
		"store_history": false, "user_expressions": map[string]any{}, "allow_stdin": false, "stop_on_error": true})
	testkit.NoError(w.t, err)
	data, bin := w.codec.Encode(nil, zmq.Shell, m)
	typ := websocket.TextMessage
	if bin {
		typ = websocket.BinaryMessage
	}
	testkit.NoError(w.t, w.c.WriteMessage(typ, data))
	return m.Head().MsgID
}

// event is one message as the test reads it.
type event struct {
	channel, msgType, parent string
	content                  map[string]any
}

// next reads one message, or returns the error that ended the connection.
func (w *wsClient) next(d time.Duration) (event, error) {
	w.c.SetReadDeadline(time.Now().Add(d))
	typ, data, err := w.c.ReadMessage()
	if err != nil {
		w.err = err
		return event{}, err
	}
	ch, m, err := w.codec.Decode(data, typ == websocket.TextMessage)
	if err != nil {
		return event{}, err
	}
	w.last = m.Head().MsgID
	p, _ := m.Parent()
	ev := event{channel: ch.String(), msgType: m.MsgType(), parent: p.MsgID}
	json.Unmarshal(m.Content, &ev.content)
	return ev, nil
}

// run executes code and returns its stdout once it is idle; it fails the
// test if the cell ends in an error.
func (w *wsClient) run(code string) string {
	w.t.Helper()
	id := w.execute(code)
	var out strings.Builder
	status := ""
	for idle := false; !idle || status == ""; {
		ev, err := w.next(60 * time.Second)
		testkit.NoError(w.t, err)
		if ev.parent != id {
			continue
		}
		switch {
		case ev.msgType == "stream":
			out.WriteString(fmt.Sprint(ev.content["text"]))
		case ev.msgType == "execute_reply":
			status = fmt.Sprint(ev.content["status"])
			testkit.True(w.t, status == "ok", "cell %q ended with %v", code, ev.content)
		case ev.msgType == "status" && ev.content["execution_state"] == "idle":
			idle = true
		}
	}
	return out.String()
}

// runRetrying runs code and returns its stdout, sending it again every few
// seconds until an answer comes, as a user runs a cell again: a request
// sent while a gateway client reconnects upstream is lost with it (Jupyter
// Server 1.x writes it to the dead connection). The websocket itself must
// stay open throughout. (A websocket read that times out cannot be
// resumed: a goroutine reads, for the first call and the later ones.)
func (w *wsClient) runRetrying(code string, within time.Duration) string {
	w.t.Helper()
	if w.events == nil {
		w.events = make(chan event, 1024)
		go func() {
			defer close(w.events)
			for {
				ev, err := w.next(time.Hour)
				if err != nil {
					return
				}
				w.events <- ev
			}
		}()
	}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		id := w.execute(code)
		var out strings.Builder
		again := time.After(5 * time.Second)
	read:
		for {
			select {
			case ev, ok := <-w.events:
				if !ok {
					w.t.Fatalf("the websocket closed: %v", w.err)
				}
				switch {
				case ev.parent != id:
				case ev.msgType == "stream":
					out.WriteString(fmt.Sprint(ev.content["text"]))
				case ev.msgType == "status" && ev.content["execution_state"] == "idle":
					return out.String()
				}
			case <-again:
				break read
			}
		}
	}
	w.t.Fatalf("%q never ran within %v", code, within)
	return ""
}
