package http

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/http/framing"
	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/zmq"
)

// startKernel starts a kernel over REST and returns its id.
func (h *harness) startKernel() string {
	h.t.Helper()
	return decode[actors.Model](h.t, h.expect("POST", "/api/kernels", `{"name":"python3"}`, 201)).ID
}

const echoComm = `
def _target(comm, open_msg):
    @comm.on_msg
    def _recv(msg):
        comm.send({"echo": msg["content"]["data"]}, buffers=[bytes(b) for b in msg["buffers"]])
get_ipython().kernel.comm_manager.register_target("echo", _target)
`

func TestWebsocketProtocols(t *testing.T) {
	for _, proto := range []struct {
		name string
		v1   bool
	}{{"v1", true}, {"legacy", false}} {
		t.Run(proto.name, func(t *testing.T) {
			h := newHarness(t, nil)
			id := h.startKernel()
			w := h.dialWS(id, "sess-"+proto.name, proto.v1)

			req := w.send(zmq.Shell, "kernel_info_request", nil, nil)
			info := pick(t, w.reply(req, 30*time.Second), "shell", "kernel_info_reply")
			testkit.True(t, strings.HasPrefix(info.content["protocol_version"].(string), "5."), "protocol %v", info.content)

			all := w.reply(w.execute("print('hi')\nfrom IPython.display import display, HTML\ndisplay(HTML('<b>x</b>'))\n6*7"), 30*time.Second)
			testkit.Equal(t, pick(t, all, "iopub", "stream").content["text"], any("hi\n"))
			testkit.Equal(t, pick(t, all, "iopub", "execute_result").content["data"].(map[string]any)["text/plain"], any("42"))
			testkit.Equal(t, pick(t, all, "iopub", "display_data").content["data"].(map[string]any)["text/html"], any("<b>x</b>"))
			testkit.Equal(t, pick(t, all, "shell", "execute_reply").content["status"], any("ok"))

			// stop_on_error off: otherwise ipykernel aborts requests that
			// arrive just after the error, the next cell's included.
			all = w.reply(w.send(zmq.Shell, "execute_request", map[string]any{"code": "1/0", "silent": false,
				"store_history": true, "user_expressions": map[string]any{}, "allow_stdin": false, "stop_on_error": false}, nil), 30*time.Second)
			e := pick(t, all, "iopub", "error")
			testkit.Equal(t, e.content["ename"], any("ZeroDivisionError"))
			testkit.True(t, len(e.content["traceback"].([]any)) > 0, "no traceback")

			// input() round trip on stdin.
			testkit.Equal(t, w.answerInput("alice", 30*time.Second), "got alice\n")

			// Comms with binary buffers round-trip unchanged.
			w.reply(w.execute(echoComm), 30*time.Second)
			w.send(zmq.Shell, "comm_open", map[string]any{"comm_id": "c1", "target_name": "echo", "data": map[string]any{}}, nil)
			payload := []byte{0, 1, 2, 255, 254, 0}
			w.send(zmq.Shell, "comm_msg", map[string]any{"comm_id": "c1", "data": map[string]any{"n": 1}}, nil, payload, []byte("second"))
			echo := w.until(30*time.Second, func(g got) bool { return g.msgType == "comm_msg" })
			last := echo[len(echo)-1]
			testkit.Equal(t, last.channel, "iopub")
			testkit.Equal(t, last.content["data"], any(map[string]any{"echo": map[string]any{"n": float64(1)}}))
			testkit.Equal(t, last.buffers, [][]byte{payload, []byte("second")})

			// Interrupt a running cell through REST.
			interrupt := func() { h.expect("POST", "/api/kernels/"+id+"/interrupt", "", 204) }
			testkit.Equal(t, w.interruptSleep(interrupt, 30*time.Second), any("KeyboardInterrupt"))

			m := decode[actors.Model](t, h.expect("GET", "/api/kernels/"+id, "", 200))
			testkit.Equal(t, m.Connections, 1)
		})
	}
}

func TestRestartWhileConnected(t *testing.T) {
	h := newHarness(t, nil)
	id := h.startKernel()
	w := h.dialWS(id, "s1", true)
	w.reply(w.execute("x = 1"), 30*time.Second)
	h.expect("POST", "/api/kernels/"+id+"/restart", "", 200)
	w.until(30*time.Second, isStatus("restarting"))
	// The same websocket reaches the new kernel: x is gone.
	all := w.reply(w.execute("print('x' in dir())"), 30*time.Second)
	testkit.Equal(t, pick(t, all, "iopub", "stream").content["text"], any("False\n"))
}

func TestKilledKernelReachesClientAsRestartingThenDead(t *testing.T) {
	h := newHarness(t, func(_ *Config, a *actors.Config) { a.RestartLimit = 1 })
	id := h.startKernel()
	w := h.dialWS(id, "s1", false)
	w.reply(w.execute("import os; print(os.getpid())"), 30*time.Second)
	kill := func() {
		all := w.reply(w.execute("import os; print(os.getpid())"), 30*time.Second)
		var pid int
		fmt.Sscan(pick(t, all, "iopub", "stream").content["text"].(string), &pid)
		testkit.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	}
	kill()
	w.until(30*time.Second, isStatus("restarting"))
	kill()
	w.until(30*time.Second, isStatus("dead"))
	_, err := w.recv(10 * time.Second)
	testkit.True(t, err != nil && strings.Contains(err.Error(), "1000"), "want a normal close after dead, got %v", err)
	h.expect("GET", "/api/kernels/"+id, "", 404)
}

func TestTwoClientsBothSeeIOPubButOnlyTheAskerGetsInput(t *testing.T) {
	h := newHarness(t, nil)
	id := h.startKernel()
	a := h.dialWS(id, "tab-a", true)
	b := h.dialWS(id, "tab-b", false)
	req := a.execute(`print("shared"); v = input("? ")`)
	a.until(30*time.Second, func(g got) bool { return g.msgType == "input_request" })
	seen := b.until(30*time.Second, func(g got) bool { return g.msgType == "stream" })
	testkit.Equal(t, seen[len(seen)-1].content["text"], any("shared\n"))
	for _, g := range seen {
		testkit.True(t, g.msgType != "input_request", "the other tab got the input_request")
	}
	m := decode[actors.Model](t, h.expect("GET", "/api/kernels/"+id, "", 200))
	testkit.Equal(t, m.Connections, 2)
	_ = req
}

// A second connection with the session id continues the output exactly:
// after the first closed (a reconnect), or while it is still open (a
// takeover, as when JupyterLab reconnects over a connection it thinks dead:
// the first stops after its current write, closes with 4000, and the second
// gets the rest first). Nothing is lost, nothing comes twice or out of order.
func TestSecondConnectionContinuesTheOutput(t *testing.T) {
	for _, tt := range []struct {
		name     string
		takeover bool
	}{{"reconnect after a close", false}, {"takeover of an open connection", true}} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			id := h.startKernel()
			first := h.dialWS(id, "continued", true)
			first.reply(first.execute("import time"), 30*time.Second)
			req := first.execute("for i in range(1, 2001):\n    print(i, flush=True)\n    if i % 100 == 0: time.sleep(0.02)")
			var text strings.Builder
			collect := func(all []got) {
				for _, g := range all {
					if g.msgType == "stream" && g.parent == req.Head().MsgID {
						text.WriteString(g.content["text"].(string)) // chunks need not end at line breaks
					}
				}
			}
			collect(first.until(30*time.Second, func(g got) bool { return g.msgType == "stream" && len(g.content["text"].(string)) > 0 }))
			var second *wsClient
			if tt.takeover {
				second = h.dialWS(id, "continued", true)
			} else {
				// Close gracefully in the middle of the output.
				testkit.NoError(t, first.c.WriteControl(8, []byte{3, 232}, time.Now().Add(time.Second)))
			}
			// Read until the server's close, so nothing already sent is
			// lost in flight.
			for {
				g, err := first.recv(10 * time.Second)
				if err != nil {
					testkit.True(t, !tt.takeover || strings.Contains(err.Error(), "4000"), "the first connection ended with %v, want 4000", err)
					break
				}
				collect([]got{g})
			}
			before := text.Len()
			if second == nil {
				second = h.dialWS(id, "continued", true)
			}
			collect(second.reply(req, 60*time.Second))
			testkit.True(t, before > 0 && before < text.Len(), "the second connection did not continue the output (%d of %d bytes before)", before, text.Len())
			lines := strings.Split(strings.TrimSuffix(text.String(), "\n"), "\n")
			testkit.Equal(t, len(lines), 2000)
			for i, l := range lines {
				if l != fmt.Sprint(i+1) {
					t.Fatalf("line %d is %q", i, l)
				}
			}
		})
	}
}

// A takeover of a dead connection (it never read, then vanished): what it
// was written is lost with it, but the second gets everything else in
// order and to the end.
func TestReplacingADeadConnectionKeepsOrder(t *testing.T) {
	h := newHarness(t, nil)
	id := h.startKernel()
	first, err := h.tryDialWS(id, "dead", true)
	testkit.NoError(t, err)
	defer first.Close()
	stalled := &wsClient{t: t, c: first, v1: true, session: "dead"}
	const n = 3000
	// 24 MB: more than the TCP buffers hold, less than the websocket's
	// backlog bound, so the server's writer is stuck with a queue behind it.
	req := stalled.execute(fmt.Sprintf("import sys\nfor i in range(1, %d):\n    sys.stdout.write('%%d %%s\\n' %% (i, 'x' * 8000)); sys.stdout.flush()", n+1))
	testkit.Eventually(t, 60*time.Second, func() error { // the whole output is out of the kernel
		if m := decode[actors.Model](t, h.expect("GET", "/api/kernels/"+id, "", 200)); m.ExecutionState != "idle" {
			return fmt.Errorf("kernel is %s", m.ExecutionState)
		}
		return nil
	})
	second := h.dialWS(id, "dead", true)
	first.NetConn().Close()
	last := 0
	for _, g := range second.reply(req, 60*time.Second) {
		if g.msgType != "stream" {
			continue
		}
		for _, line := range strings.Split(strings.TrimSuffix(g.content["text"].(string), "\n"), "\n") {
			var i int
			fmt.Sscan(line, &i)
			testkit.True(t, i > last, "line %d after line %d", i, last)
			last = i
		}
	}
	testkit.Equal(t, last, n)
}

func TestBadClientFramesDoNotHurtTheKernel(t *testing.T) {
	h := newHarness(t, nil)
	id := h.startKernel()
	bad := h.dialWS(id, "bad", true)
	good := h.dialWS(id, "good", false)
	for _, f := range [][]byte{
		[]byte("not binary at all"),
		{1, 2, 3},
		append([]byte{6, 0, 0, 0, 0, 0, 0, 0}, make([]byte, 48)...),
	} {
		testkit.NoError(t, bad.c.WriteMessage(2, f))
	}
	testkit.NoError(t, good.c.WriteMessage(1, []byte("{not json")))
	testkit.NoError(t, good.c.WriteMessage(1, []byte(`{"header":{"msg_id":"1","msg_type":"x"},"channel":"nope"}`)))
	testkit.NoError(t, good.c.WriteMessage(1, []byte(`{"header":"not an object","channel":"shell"}`)))
	bad.send(zmq.IOPub, "stream", map[string]any{"name": "stdout", "text": "forged"}, nil) // iopub is the kernel's
	testkit.Eventually(t, 10*time.Second, func() error {
		if n := metricValue(h.scrape(), "kernelgate_bad_client_frames_total"); n != 7 {
			return fmt.Errorf("%v bad frames counted", n)
		}
		return nil
	})
	// Both connections and the kernel still work.
	testkit.Equal(t, pick(t, good.reply(good.execute("print(1)"), 30*time.Second), "iopub", "stream").content["text"], any("1\n"))
	testkit.Equal(t, pick(t, bad.reply(bad.execute("print(2)"), 30*time.Second), "iopub", "stream").content["text"], any("2\n"))
}

func TestOversizedClientFrameClosesOnlyThatConnection(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *actors.Config) { c.Websocket.ReadLimit = 1 << 20 })
	id := h.startKernel()
	big := h.dialWS(id, "big", true)
	other := h.dialWS(id, "other", true)
	big.c.WriteMessage(2, make([]byte, 2<<20))
	var err error
	for err == nil { // kernel messages may still arrive before the close
		_, err = big.recv(10 * time.Second)
	}
	testkit.True(t, err != nil && strings.Contains(err.Error(), "1009"), "want close 1009, got %v", err)
	testkit.Equal(t, pick(t, other.reply(other.execute("print(3)"), 30*time.Second), "iopub", "stream").content["text"], any("3\n"))
}

func TestWebsocketAuthAndUnknownKernel(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *actors.Config) { c.AuthToken = "tok" })
	id := h.startKernel()
	h.token = ""
	_, err := h.tryDialWS(id, "s", true)
	testkit.True(t, err != nil && strings.Contains(err.Error(), "bad handshake"), "unauthenticated upgrade: %v", err)
	h.token = "tok"
	_, err = h.tryDialWS("11111111-2222-4333-8444-555555555555", "s", true)
	testkit.True(t, err != nil, "upgrade to an unknown kernel succeeded")
	h.dialWS(id, "s", true)
	h.expect("GET", "/api/kernels/"+id+"/channels", "", 403, "Origin", "https://evil.example")
}

func TestSlowConsumerIsDisconnectedAndOthersKeepWorking(t *testing.T) {
	metrics := &actors.Metrics{}
	h := newHarness(t, func(_ *Config, a *actors.Config) {
		a.Metrics = metrics
		a.WebsocketQueue = 256
		a.WebsocketQueueBytes = 4 << 20
		a.SessionBuffer = 1000
		a.SessionBufferBytes = 8 << 20
	})
	flood, other := h.startKernel(), h.startKernel()
	stalled := h.dialWS(flood, "stalled", true)
	busy := h.dialWS(other, "busy", true)
	// The stalled client asks for about 100 MB of output and never reads.
	stalled.execute("import sys\nfor i in range(10000):\n    sys.stdout.write('y' * 10000 + '\\n'); sys.stdout.flush()")
	testkit.Eventually(t, 60*time.Second, func() error {
		if metrics.SlowConsumers.Load() == 0 {
			return fmt.Errorf("no slow consumer detected yet")
		}
		return nil
	})
	// Meanwhile another user's kernel answers.
	testkit.Equal(t, pick(t, busy.reply(busy.execute("print(5)"), 30*time.Second), "iopub", "stream").content["text"], any("5\n"))
	testkit.Eventually(t, 60*time.Second, func() error {
		m := decode[actors.Model](t, h.expect("GET", "/api/kernels/"+flood, "", 200))
		if m.ExecutionState != "idle" {
			return fmt.Errorf("flooding kernel is %s", m.ExecutionState)
		}
		return nil
	})
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	testkit.True(t, ms.HeapInuse < 256<<20, "heap in use %d MiB after a 100 MB flood to a stalled client", ms.HeapInuse>>20)
	testkit.True(t, metrics.BufferDropped.Load() > 0, "the session buffer was not bounded")
}

func TestConnectDisconnectCyclesLeaveNoGoroutines(t *testing.T) {
	h := newHarness(t, nil)
	id := h.startKernel()
	w := h.dialWS(id, "warm", true) // the kernel's goroutines exist before the check
	w.reply(w.execute("1"), 30*time.Second)
	check := leaktest.Check(t)
	for i := range 10000 {
		c, err := h.tryDialWS(id, fmt.Sprint("s", i%7), i%2 == 0)
		testkit.NoError(t, err)
		c.Close()
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		m := decode[actors.Model](t, h.expect("GET", "/api/kernels/"+id, "", 200))
		if m.Connections != 1 {
			return fmt.Errorf("%d connections", m.Connections)
		}
		return nil
	})
	h.client.CloseIdleConnections() // the test client's own keep-alive goroutines
	check()
}

func TestIdleKernelsAreCulled(t *testing.T) {
	for _, tt := range []struct {
		name           string
		cullConnected  bool
		connectedCulls bool
	}{{"connected kernels kept", false, false}, {"connected kernels culled", true, true}} {
		t.Run(tt.name, func(t *testing.T) {
			metrics := &actors.Metrics{}
			h := newHarness(t, func(_ *Config, a *actors.Config) {
				a.CullIdleTimeout, a.CullInterval, a.CullConnected = 2*time.Second, 200*time.Millisecond, tt.cullConnected
				a.Metrics = metrics
			})
			alone, watched := h.startKernel(), h.startKernel()
			w := h.dialWS(watched, "watcher", false)
			w.ready(30 * time.Second)
			testkit.Eventually(t, 30*time.Second, func() error {
				if s, _, _ := h.do("GET", "/api/kernels/"+alone, ""); s != 404 {
					return fmt.Errorf("idle kernel not culled yet (%d)", s)
				}
				return nil
			})
			if !tt.connectedCulls {
				// Once it has been idle well past the timeout, it is still there.
				testkit.Eventually(t, 30*time.Second, func() error {
					m := decode[actors.Model](t, h.expect("GET", "/api/kernels/"+watched, "", 200))
					last, err := time.Parse(actors.LastActivityFormat, m.LastActivity)
					if err != nil || time.Since(last) < 3*time.Second {
						return fmt.Errorf("idle for %v only", time.Since(last))
					}
					return nil
				})
				testkit.Equal(t, metrics.Culled.Load(), uint64(1))
				return
			}
			w.until(30*time.Second, isStatus("dead"))
			var err error
			for err == nil {
				_, err = w.recv(30 * time.Second)
			}
			testkit.True(t, strings.Contains(err.Error(), "1000") && strings.Contains(err.Error(), "culled"), "close: %v", err)
			h.expect("GET", "/api/kernels/"+watched, "", 404)
			testkit.Equal(t, metrics.Culled.Load(), uint64(2))
		})
	}
}

// A client sent away for falling behind (1013: its backlog, merged, is
// over the bound) that comes back with its session id gets everything,
// once: the replay of a full session buffer does not count against the
// backlog bound of the new connection.
func TestClientSentAwayGetsEverythingOnReconnect(t *testing.T) {
	metrics := &actors.Metrics{}
	h := newHarness(t, func(_ *Config, a *actors.Config) {
		a.Metrics = metrics
		a.WebsocketQueueBytes = 64 << 10
		a.SessionBuffer, a.SessionBufferBytes = 50000, 256<<20
	})
	id := decode[actors.Model](t, h.expect("POST", "/api/kernels", `{"name":"synthetic"}`, 201)).ID
	const n = 20000
	c, err := h.tryDialWS(id, "laggard", true)
	testkit.NoError(t, err)
	defer c.Close()
	lag := &wsClient{t: t, c: c, v1: true, session: "laggard"}
	req := lag.send(zmq.Shell, "execute_request", map[string]any{"code": fmt.Sprintf("emit %d 64", n), "silent": false}, nil)
	// It reads nothing until the gateway has sent it away.
	testkit.Eventually(t, 60*time.Second, func() error {
		if metrics.SlowConsumers.Load() == 0 {
			return errors.New("not sent away yet")
		}
		return nil
	})
	count := 0
	for {
		typ, data, err := c.ReadMessage()
		if err != nil {
			testkit.True(t, websocket.IsCloseError(err, actors.CloseTryAgain), "first connection ended with %v, want close 1013", err)
			break
		}
		// Counted from the bytes, not decoded: the client must read to the
		// close frame (behind megabytes of backlog) before the gateway
		// gives up on it.
		if typ == websocket.BinaryMessage && bytes.Contains(data, []byte(`"msg_type":"stream"`)) {
			count += bytes.Count(data, []byte(`\n`))
		}
	}
	// Come back once the kernel is done: all of it is in the session buffer.
	testkit.Eventually(t, 60*time.Second, func() error {
		if m := decode[actors.Model](t, h.expect("GET", "/api/kernels/"+id, "", 200)); m.ExecutionState != "idle" {
			return fmt.Errorf("kernel is %s", m.ExecutionState)
		}
		return nil
	})
	back := h.dialWS(id, "laggard", true)
	for _, g := range back.until(60*time.Second, func(g got) bool {
		return g.msgType == "status" && g.parent == req.Head().MsgID && g.content["execution_state"] == "idle"
	}) {
		if g.msgType == "stream" {
			count += streamLines(g)
		}
	}
	testkit.Equal(t, count, n)
	testkit.Equal(t, metrics.SlowConsumers.Load(), uint64(1))
	testkit.Equal(t, metrics.BufferDropped.Load(), uint64(0))
}

// A client that vanished without closing its TCP connection (half-open:
// nothing comes back, not even pongs) is closed once the pong timeout
// passes, and the kernel serves others as before.
func TestHalfOpenConnectionIsClosed(t *testing.T) {
	h := newHarness(t, func(c *Config, a *actors.Config) {
		c.Websocket.PingInterval, c.Websocket.PongTimeout = 100*time.Millisecond, 500*time.Millisecond
		a.PingInterval = c.Websocket.PingInterval
	})
	id := h.startKernel()
	silent, err := h.tryDialWS(id, "vanished", true) // never read again: pings go unanswered
	testkit.NoError(t, err)
	defer silent.Close()
	testkit.Eventually(t, 10*time.Second, func() error {
		if m := decode[actors.Model](t, h.expect("GET", "/api/kernels/"+id, "", 200)); m.Connections != 0 {
			return fmt.Errorf("%d connections", m.Connections)
		}
		return nil
	})
	w := h.dialWS(id, "present", true)
	testkit.Equal(t, pick(t, w.reply(w.execute("print(3)"), 30*time.Second), "iopub", "stream").content["text"], any("3\n"))
}

// A kernel whose messages do not carry the right signature is never
// trusted: each message is dropped and counted, the kernel never becomes
// ready, and the gateway serves other kernels as before.
func TestForgedKernelMessagesAreDroppedAndCounted(t *testing.T) {
	metrics := &actors.Metrics{}
	h := newHarness(t, func(_ *Config, a *actors.Config) { a.Metrics = metrics })
	id := decode[actors.Model](t, h.expect("POST", "/api/kernels", `{"name":"forger"}`, 201)).ID
	testkit.Eventually(t, 30*time.Second, func() error {
		if n := metrics.BadKernelMessages.Load(); n < 3 {
			return fmt.Errorf("%d forged messages counted", n)
		}
		return nil
	})
	testkit.Equal(t, decode[actors.Model](t, h.expect("GET", "/api/kernels/"+id, "", 200)).ExecutionState, actors.StateStarting)
	testkit.True(t, metricValue(h.scrape(), "kernelgate_bad_kernel_messages_total") >= 3, "forged messages missing from /metrics")
	w := h.dialWS(h.startKernel(), "honest", true)
	testkit.Equal(t, pick(t, w.reply(w.execute("print(4)"), 30*time.Second), "iopub", "stream").content["text"], any("4\n"))
}

// With an iopub rate limit, a flood of output is cut off with one warning
// on the cell's stderr, the execution still ends (its status and reply
// pass), and output flows again once the rate falls.
func TestIOPubRateLimit(t *testing.T) {
	metrics := &actors.Metrics{}
	h := newHarness(t, func(_ *Config, a *actors.Config) {
		a.Metrics, a.IOPubMsgRateLimit, a.RateLimitWindow = metrics, 200, time.Second
	})
	id := decode[actors.Model](t, h.expect("POST", "/api/kernels", `{"name":"synthetic"}`, 201)).ID
	w := h.dialWS(id, "limited", true)
	w.ready(30 * time.Second)
	streams, warnings := 0, 0
	for _, g := range w.reply(w.execute("emit 3000 64"), 60*time.Second) {
		if g.msgType == "stream" && g.content["name"] == "stderr" {
			warnings++
		} else if g.msgType == "stream" {
			streams += streamLines(g) // a client behind its kernel gets lines merged
		}
	}
	testkit.Equal(t, warnings, 1)
	testkit.True(t, streams > 0 && streams < 3000, "%d of 3000 messages passed a 200/s limit", streams)
	testkit.Equal(t, metrics.RateLimited.Load(), uint64(3000-streams))
	testkit.Eventually(t, 10*time.Second, func() error {
		for _, g := range w.reply(w.execute("echo again"), 10*time.Second) {
			if g.msgType == "stream" && g.content["text"] == "again\n" {
				return nil
			}
		}
		return errors.New("output still dropped")
	})
}

// A kernel that closes its sockets but lives on is found out (its channels
// end; were they left open, its heartbeat would stop), killed and
// restarted; the gateway serves others meanwhile.
func TestKernelThatClosesItsSocketsIsRestarted(t *testing.T) {
	metrics := &actors.Metrics{}
	h := newHarness(t, func(_ *Config, a *actors.Config) {
		a.Metrics = metrics
		a.HeartbeatInterval, a.HeartbeatTimeout = 200*time.Millisecond, time.Second
	})
	id := decode[actors.Model](t, h.expect("POST", "/api/kernels", `{"name":"closer"}`, 201)).ID
	testkit.Eventually(t, 60*time.Second, func() error {
		if metrics.Restarts.Load() == 0 {
			return errors.New("not restarted yet")
		}
		return nil
	})
	w := h.dialWS(h.startKernel(), "other", true)
	testkit.Equal(t, pick(t, w.reply(w.execute("print(3)"), 30*time.Second), "iopub", "stream").content["text"], any("3\n"))
	h.expect("DELETE", "/api/kernels/"+id, "", 204)
}

// A client that drops its connection halfway through a frame costs
// nothing: its websocket ends, and the kernel serves the next client.
func TestClientGoneMidFrame(t *testing.T) {
	h := newHarness(t, nil)
	id := h.startKernel()
	w := h.dialWS(id, "first", true)
	w.reply(w.execute("1"), 30*time.Second)
	check := leaktest.Check(t)
	for i := range 20 {
		c, err := h.tryDialWS(id, fmt.Sprint("torn-", i), i%2 == 0)
		testkit.NoError(t, err)
		// A masked binary frame header announcing 1000 bytes, then 10 of them.
		c.NetConn().Write(append([]byte{0x82, 0xfe, 0x03, 0xe8, 1, 2, 3, 4}, make([]byte, 10)...))
		c.NetConn().Close()
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		if m := decode[actors.Model](t, h.expect("GET", "/api/kernels/"+id, "", 200)); m.Connections != 1 {
			return fmt.Errorf("%d connections", m.Connections)
		}
		return nil
	})
	testkit.Equal(t, pick(t, w.reply(w.execute("print(8)"), 30*time.Second), "iopub", "stream").content["text"], any("8\n"))
	h.client.CloseIdleConnections()
	check()
}

// A connection replaced by a newer one for its session is closed for good:
// after its close frame (4000) the server reads nothing more from it, and
// code sent on it does not run, even when its client does not answer the
// close frame.
func TestReplacedConnectionIsClosed(t *testing.T) {
	h := newHarness(t, nil)
	id := h.startKernel()
	c, err := h.tryDialWS(id, "taken", true)
	testkit.NoError(t, err)
	c.SetCloseHandler(func(int, string) error { return nil }) // no close frame back
	first := h.wrapWS(c, "taken")
	first.reply(first.send(zmq.Shell, "kernel_info_request", nil, nil), 30*time.Second)
	second := h.dialWS(id, "taken", true)
	for err == nil { // to the end of the connection
		_, err = first.recv(10 * time.Second)
	}
	testkit.True(t, err != nil && strings.Contains(err.Error(), "4000"), "the first connection ended with %v, want 4000", err)

	// What the old client still sends goes nowhere.
	m, err := zmq.NewMessage("execute_request", "taken", "tester", nil, map[string]any{"code": "hijacked = 1", "silent": false})
	testkit.NoError(t, err)
	data, _ := framing.V1{}.Encode(nil, zmq.Shell, m)
	raw := first.c.NetConn()
	raw.Write(maskedFrame(websocket.BinaryMessage, data))
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = raw.Read(make([]byte, 1))
	var ne net.Error
	testkit.True(t, err != nil && !(errors.As(err, &ne) && ne.Timeout()), "the server kept the replaced connection open: %v", err)

	out := second.reply(second.execute("print('hijacked' in globals())"), 30*time.Second)
	testkit.Equal(t, pick(t, out, "iopub", "stream").content["text"], any("False\n"))
}

// maskedFrame is one final client frame, masked as a client must.
func maskedFrame(opcode int, payload []byte) []byte {
	f := []byte{0x80 | byte(opcode)}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n < 1<<16:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	key := [4]byte{1, 2, 3, 4}
	f = append(f, key[:]...)
	for i, b := range payload {
		f = append(f, b^key[i%4])
	}
	return f
}

// TestEnterpriseGatewaysClientRunsCode speaks as Enterprise Gateway's own
// Python client (enterprise_gateway/client/gateway_client.py) does: legacy
// JSON frames with an empty session and username, version 5.0, no date,
// "buffers": {}; it matches what comes back by parent_header.msg_id.
func TestEnterpriseGatewaysClientRunsCode(t *testing.T) {
	h := newHarness(t, nil)
	id := h.startKernel()
	w := h.dialWS(id, "", false)
	request := `{"header":{"username":"","version":"5.0","session":"","msg_id":"%s","msg_type":"execute_request"},` +
		`"parent_header":{},"channel":"shell","content":{"code":%q,"silent":false,"store_history":false,` +
		`"user_expressions":{},"allow_stdin":false},"metadata":{},"buffers":{}}`
	run := func(msgID, code string) []got {
		testkit.NoError(t, w.c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, request, msgID, code)))
		return w.until(30*time.Second, func(g got) bool {
			return g.parent == msgID && g.msgType == "status" && g.content["execution_state"] == "idle"
		})
	}
	run("0123456789abcdef0123456789abcdef", "x = 6 * 7")
	var text strings.Builder
	for _, g := range run("fedcba9876543210fedcba9876543210", "print(x)") {
		if g.msgType == "stream" && g.parent == "fedcba9876543210fedcba9876543210" {
			text.WriteString(g.content["text"].(string))
		}
	}
	testkit.Equal(t, text.String(), "42\n")
}
