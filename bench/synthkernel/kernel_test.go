package synthkernel

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/zmq"
)

// start runs a kernel in this process on free ports, as Run does from its
// connection file, and connects a client to it.
func start(t *testing.T) (*zmq.Client, <-chan struct{}) {
	t.Helper()
	k, err := Start(context.Background(), zmq.ConnectionInfo{IP: "127.0.0.1", Transport: "tcp", SignatureScheme: "hmac-sha256", Key: zmq.NewKey()})
	testkit.NoError(t, err)
	t.Cleanup(func() { k.Stop(); <-k.Done() })
	ci := k.ConnectionInfo()
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	c, err := zmq.Connect(cctx, ci, zmq.Options{})
	testkit.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = c.KernelInfo(cctx)
	testkit.NoError(t, err)
	return c, k.Done()
}

func send(t *testing.T, c *zmq.Client, ch zmq.Channel, msgType string, content any) *zmq.Message {
	m, err := zmq.NewMessage(msgType, "s", "u", nil, content)
	testkit.NoError(t, err)
	testkit.NoError(t, c.Send(ch, m))
	return m
}

// results reads messages answering req until its reply (on ch) and idle.
func results(t *testing.T, c *zmq.Client, req *zmq.Message) (streams int, reply map[string]any) {
	t.Helper()
	idle := false
	deadline := time.After(20 * time.Second)
	for reply == nil || !idle {
		select {
		case rc := <-c.Messages():
			testkit.NoError(t, rc.Err)
			p, _ := rc.Msg.Parent()
			if p.MsgID != req.Head().MsgID {
				continue
			}
			var content map[string]any
			json.Unmarshal(rc.Msg.Content, &content)
			switch {
			case rc.Msg.MsgType() == "stream":
				streams++
			case rc.Msg.MsgType() == "status" && content["execution_state"] == "idle":
				idle = true
			case rc.Channel != zmq.IOPub:
				reply = content
			}
		case <-deadline:
			t.Fatal("no reply")
		}
	}
	return streams, reply
}

func TestSyntheticKernel(t *testing.T) {
	c, done := start(t)
	n, reply := results(t, c, send(t, c, zmq.Shell, "execute_request", map[string]any{"code": "emit 500 64\necho hi"}))
	testkit.Equal(t, n, 501)
	testkit.Equal(t, reply["status"], any("ok"))

	_, reply = results(t, c, send(t, c, zmq.Shell, "execute_request", map[string]any{"code": "frobnicate"}))
	testkit.Equal(t, reply["status"], any("error"))
	testkit.Equal(t, reply["evalue"], any(`unknown command "frobnicate"`))

	req := send(t, c, zmq.Shell, "execute_request", map[string]any{"code": "sleep 60"})
	send(t, c, zmq.Control, "interrupt_request", nil)
	_, reply = results(t, c, req)
	testkit.Equal(t, reply["ename"], any("KeyboardInterrupt"))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	testkit.NoError(t, c.Heartbeat(ctx))
	send(t, c, zmq.Control, "shutdown_request", map[string]any{"restart": false})
	testkit.Recv(t, done, 10*time.Second)
}
