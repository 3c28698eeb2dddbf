package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kernelgate/kernelgate/zmq"
)

// Conn is one client's connection to a kernel: a websocket through a
// gateway, or the kernel's own ZMQ channels. One goroutine at a time makes
// requests on it.
type Conn interface {
	// Execute runs code and waits for its execute_reply and the idle
	// status that ends it; it returns the reply's status ("ok", "error").
	Execute(ctx context.Context, code string) (string, error)
	// KernelInfo waits for a kernel_info_reply, asking again every second
	// (a proxy may drop what is sent before its own upstream is ready).
	KernelInfo(ctx context.Context) error
	// Streams is how many lines of stream output this connection has
	// received: one per message the kernels here send (each ends its text
	// with a newline), and as many as a message merged by a gateway holds.
	Streams() uint64
	// Frames is how many stream messages it has received: fewer than
	// Streams when a gateway merged some.
	Frames() uint64
	// Reconnects is how often the connection ended in a way a client comes
	// back from (sent away for falling behind, a gateway going away or
	// dying) and it came back for the rest, as JupyterLab does.
	Reconnects() uint64
	// Done is closed when the connection has ended for good.
	Done() <-chan struct{}
	Close() error
}

// ErrClosed reports a connection that ended while a request waited.
var ErrClosed = errors.New("bench: connection closed")

// tracker matches what a connection receives to the requests in flight.
// Stream messages are only counted: the reader must keep up with a gateway
// at full speed, so it decodes the parent header only of replies and
// statuses.
type tracker struct {
	session string
	send    func(zmq.Channel, *zmq.Message) error

	mu    sync.Mutex
	calls map[string]*call
	done  chan struct{}

	streams    atomic.Uint64
	frames     atomic.Uint64
	reconnects atomic.Uint64
}

type call struct {
	needIdle    bool
	reply, idle bool
	status      string
	done        chan struct{}
}

// newTracker tracks the requests of a client whose messages carry session
// in their header (for a websocket, its session_id, as JupyterLab does).
func newTracker(session string, send func(zmq.Channel, *zmq.Message) error) *tracker {
	return &tracker{session: session, send: send, calls: make(map[string]*call), done: make(chan struct{})}
}

// observe is called by the connection's reader for every message.
func (t *tracker) observe(ch zmq.Channel, m *zmq.Message) {
	typ := m.MsgType()
	if typ == "stream" {
		// Lines are counted in the raw JSON, where a newline is the escape
		// \n: nothing is decoded.
		t.streams.Add(uint64(bytes.Count(m.Content, []byte(`\n`))))
		t.frames.Add(1)
		return
	}
	isReply := ch == zmq.Shell && strings.HasSuffix(typ, "_reply")
	if typ != "status" && !isReply {
		return
	}
	parent, err := m.Parent()
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.calls[parent.MsgID]
	if !ok {
		return
	}
	if isReply {
		var content struct {
			Status string `json:"status"`
		}
		m.DecodeContent(&content)
		c.reply, c.status = true, content.Status
	} else {
		var content struct {
			State string `json:"execution_state"`
		}
		if m.DecodeContent(&content) == nil && content.State == "idle" {
			c.idle = true
		}
	}
	if c.reply && (c.idle || !c.needIdle) {
		delete(t.calls, parent.MsgID)
		close(c.done)
	}
}

// closeAll ends the connection for good and fails every request still
// waiting.
func (t *tracker) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.done:
		return
	default:
	}
	close(t.done)
	for id, c := range t.calls {
		delete(t.calls, id)
		close(c.done)
	}
}

// request sends a shell request and waits for what completes it.
func (t *tracker) request(ctx context.Context, msgType string, content any, needIdle bool, retry time.Duration) (string, error) {
	for {
		m, err := zmq.NewMessage(msgType, t.session, "bench", nil, content)
		if err != nil {
			return "", err
		}
		c := &call{needIdle: needIdle, done: make(chan struct{})}
		t.mu.Lock()
		select {
		case <-t.done:
			t.mu.Unlock()
			return "", ErrClosed
		default:
		}
		t.calls[m.Head().MsgID] = c
		t.mu.Unlock()
		if err := t.send(zmq.Shell, m); err != nil {
			t.forget(m.Head().MsgID)
			return "", fmt.Errorf("bench: send %s: %w", msgType, err)
		}
		var again <-chan time.Time
		if retry > 0 {
			again = time.After(retry)
		}
		select {
		case <-c.done:
			if !c.reply {
				return "", ErrClosed
			}
			return c.status, nil
		case <-ctx.Done():
			t.forget(m.Head().MsgID)
			return "", fmt.Errorf("bench: %s: %w", msgType, ctx.Err())
		case <-again:
			t.forget(m.Head().MsgID)
		}
	}
}

func (t *tracker) forget(id string) {
	t.mu.Lock()
	delete(t.calls, id)
	t.mu.Unlock()
}

// executeContent is an execute_request as notebooks send it.
func executeContent(code string) map[string]any {
	return map[string]any{"code": code, "silent": false, "store_history": false,
		"user_expressions": map[string]any{}, "allow_stdin": false, "stop_on_error": false}
}

// Execute, KernelInfo and Streams implement Conn for the connections that
// embed a tracker.
func (t *tracker) Execute(ctx context.Context, code string) (string, error) {
	return t.request(ctx, "execute_request", executeContent(code), true, 0)
}

func (t *tracker) KernelInfo(ctx context.Context) error {
	_, err := t.request(ctx, "kernel_info_request", map[string]any{}, false, time.Second)
	return err
}

func (t *tracker) Streams() uint64       { return t.streams.Load() }
func (t *tracker) Frames() uint64        { return t.frames.Load() }
func (t *tracker) Reconnects() uint64    { return t.reconnects.Load() }
func (t *tracker) Done() <-chan struct{} { return t.done }
