package zmq

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/testkit"
)

// freePorts picks five ports in this package's test range that are free
// now (one kernel at a time runs in these tests).
func freePorts(t *testing.T) []int {
	t.Helper()
	low, high := testkit.PortRange("zmq")
	var out []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for p := low; p <= high && len(out) < 5; p += 1 + rand.IntN(7) {
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
			held = append(held, l)
			out = append(out, p)
		}
	}
	testkit.True(t, len(out) == 5, "no free ports in %d..%d", low, high)
	return out
}

// testKernel is a real ipykernel with a connected Client.
type testKernel struct {
	t    *testing.T
	c    *Client
	ci   ConnectionInfo
	proc *testkit.Process
}

func startKernel(t *testing.T) *testKernel {
	t.Helper()
	ci := NewConnectionInfo("127.0.0.1", freePorts(t), "python3")
	path := filepath.Join(t.TempDir(), "kernel.json")
	testkit.NoError(t, WriteConnectionFile(path, ci))
	proc := testkit.StartIPyKernel(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Connect(ctx, ci, Options{})
	testkit.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = c.KernelInfo(ctx)
	testkit.NoError(t, err)
	return &testKernel{t: t, c: c, ci: ci, proc: proc}
}

// request sends a message built from msgType and content on ch.
func (k *testKernel) request(ch Channel, msgType string, parent []byte, content any) *Message {
	k.t.Helper()
	m, err := NewMessage(msgType, k.c.Identity(), "test", parent, content)
	testkit.NoError(k.t, err)
	testkit.NoError(k.t, k.c.Send(ch, m))
	return m
}

func (k *testKernel) execute(code string) *Message {
	return k.request(Shell, "execute_request", nil, map[string]any{
		"code": code, "silent": false, "store_history": true,
		"user_expressions": map[string]any{}, "allow_stdin": true, "stop_on_error": true,
	})
}

// next returns the next message that answers req and satisfies match.
func (k *testKernel) next(req *Message, d time.Duration, match func(Received) bool) Received {
	k.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case rc := <-k.c.Messages():
			testkit.NoError(k.t, rc.Err)
			p, err := rc.Msg.Parent()
			testkit.NoError(k.t, err)
			if p.MsgID == req.Head().MsgID && match(rc) {
				return rc
			}
		case <-deadline:
			k.t.Fatalf("no matching reply to %s within %v", req.MsgType(), d)
		}
	}
}

// collect returns every message answering req until both its shell reply
// and the idle status that closes it have arrived (iopub and shell are
// separate sockets, so their relative order is not fixed).
func (k *testKernel) collect(req *Message, d time.Duration) []Received {
	k.t.Helper()
	var got []Received
	replied, idle := false, false
	for !replied || !idle {
		rc := k.next(req, d, func(Received) bool { return true })
		got = append(got, rc)
		switch {
		case rc.Channel == Shell && strings.HasSuffix(rc.Msg.MsgType(), "_reply"):
			replied = true
		case rc.Channel == IOPub && rc.Msg.MsgType() == "status" && content(k.t, rc.Msg)["execution_state"] == "idle":
			idle = true
		}
	}
	return got
}

// find returns the first message in got of the given channel and type.
func find(t *testing.T, got []Received, ch Channel, msgType string) *Message {
	t.Helper()
	for _, rc := range got {
		if rc.Channel == ch && rc.Msg.MsgType() == msgType {
			return rc.Msg
		}
	}
	t.Fatalf("no %s %s among %d messages", ch, msgType, len(got))
	return nil
}

func isType(ch Channel, msgType string) func(Received) bool {
	return func(rc Received) bool { return rc.Channel == ch && rc.Msg.MsgType() == msgType }
}

func content(t *testing.T, m *Message) map[string]any {
	t.Helper()
	var c map[string]any
	testkit.NoError(t, json.Unmarshal(m.Content, &c))
	return c
}
