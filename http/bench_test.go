package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/http/framing"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/zmq"
)

// directSynthetic runs the synthetic kernel as its own process and connects
// a zmq.Client to it: the no-gateway baseline.
func directSynthetic(b *testing.B) *zmq.Client {
	ci, err := testPorts.ConnectionInfo("synthetic")
	testkit.NoError(b, err)
	path := filepath.Join(b.TempDir(), "k.json")
	testkit.NoError(b, zmq.WriteConnectionFile(path, ci))
	self, _ := os.Executable()
	cmd := exec.Command(self, "synth-kernel", "-f", path)
	testkit.NoError(b, cmd.Start())
	b.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := zmq.Connect(ctx, ci, zmq.Options{InboxSize: 1 << 16})
	testkit.NoError(b, err)
	b.Cleanup(func() { c.Close() })
	_, err = c.KernelInfo(ctx)
	testkit.NoError(b, err)
	return c
}

// directRun executes code and counts stream messages until idle.
func directRun(b *testing.B, c *zmq.Client, code string) int {
	m, err := zmq.NewMessage("execute_request", "bench", "bench", nil, map[string]any{"code": code})
	testkit.NoError(b, err)
	testkit.NoError(b, c.Send(zmq.Shell, m))
	streams := 0
	for rc := range c.Messages() {
		testkit.NoError(b, rc.Err)
		switch rc.Msg.MsgType() {
		case "stream":
			streams++
		case "status":
			p, _ := rc.Msg.Parent()
			var s struct {
				ExecutionState string `json:"execution_state"`
			}
			json.Unmarshal(rc.Msg.Content, &s)
			if p.MsgID == m.Head().MsgID && s.ExecutionState == "idle" {
				return streams
			}
		}
	}
	return streams
}

// gatewaySynthetic starts a synthetic kernel behind an in-process gateway
// and opens a websocket to it. A raw client has no reader goroutine: the
// benchmark reads frames itself.
func gatewaySynthetic(b *testing.B, v1, raw bool) *wsClient {
	// Default settings: a client that falls behind the synthetic kernel
	// gets its backlog merged, not a 1013.
	h := newHarness(b, nil)
	id := decode[actors.Model](b, h.expect("POST", "/api/kernels", `{"name":"synthetic"}`, 201)).ID
	if !raw {
		w := h.dialWS(id, "bench", v1)
		w.ready(30 * time.Second)
		return w
	}
	c, err := h.tryDialWS(id, "bench", v1)
	testkit.NoError(b, err)
	b.Cleanup(func() { c.Close() })
	w := &wsClient{t: b, c: c, v1: v1, session: "bench"}
	w.send(zmq.Shell, "kernel_info_request", nil, nil)
	for {
		_, data, err := c.ReadMessage()
		testkit.NoError(b, err)
		if bytes.Contains(data, []byte("kernel_info_reply")) {
			return w
		}
	}
}

// BenchmarkIOPubThroughput: one cell emits b.N small stream messages; how
// many per second reach the client, directly over ZMQ and through the
// gateway's websocket in each framing.
func BenchmarkIOPubThroughput(b *testing.B) {
	code := func(n int) string { return "emit " + itoa(n) + " 64" }
	b.Run("direct-zmq", func(b *testing.B) {
		c := directSynthetic(b)
		b.ResetTimer()
		start := time.Now()
		got := directRun(b, c, code(b.N))
		b.ReportMetric(float64(got)/time.Since(start).Seconds(), "msgs/s")
		if dropped := c.Dropped(); dropped > 0 {
			b.ReportMetric(float64(dropped), "dropped")
		}
	})
	for _, proto := range []struct {
		name string
		v1   bool
	}{{"gateway-v1", true}, {"gateway-legacy", false}} {
		b.Run(proto.name, func(b *testing.B) {
			w := gatewaySynthetic(b, proto.v1, true)
			b.ResetTimer()
			start := time.Now()
			req := w.execute(code(b.N))
			// Read like a fast client: count lines (a merged message has
			// several), look for the closing idle status by its bytes
			// instead of decoding every message.
			id := []byte(req.Head().MsgID)
			streams, frames := 0, 0
			w.c.SetReadDeadline(time.Now().Add(5 * time.Minute))
			var buf bytes.Buffer
			for {
				_, r, err := w.c.NextReader()
				testkit.NoError(b, err)
				buf.Reset()
				_, err = buf.ReadFrom(r)
				testkit.NoError(b, err)
				data := buf.Bytes()
				if bytes.Contains(data, []byte(`"stream"`)) {
					streams += bytes.Count(data, []byte(`\n`))
					frames++
				} else if bytes.Contains(data, []byte(`"idle"`)) && bytes.Contains(data, id) {
					break
				}
			}
			b.ReportMetric(float64(streams)/time.Since(start).Seconds(), "msgs/s")
			b.ReportMetric(float64(frames)/float64(b.N), "frames/msg")
			if streams != b.N {
				b.Fatalf("received %d of %d", streams, b.N)
			}
		})
	}
}

// BenchmarkExecuteRoundTrip: execute "echo x" until idle, directly and
// through the gateway; p50/p99 in microseconds.
func BenchmarkExecuteRoundTrip(b *testing.B) {
	report := func(b *testing.B, d []time.Duration) {
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
	}
	b.Run("direct-zmq", func(b *testing.B) {
		c := directSynthetic(b)
		d := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			t0 := time.Now()
			directRun(b, c, "echo x")
			d = append(d, time.Since(t0))
		}
		report(b, d)
	})
	b.Run("gateway-v1", func(b *testing.B) {
		// A raw client that reads like the direct one: it decodes nothing
		// but looks for the closing idle status by its bytes.
		w := gatewaySynthetic(b, true, true)
		d := make([]time.Duration, 0, b.N)
		var buf bytes.Buffer
		b.ResetTimer()
		for range b.N {
			t0 := time.Now()
			id := []byte(w.execute("echo x").Head().MsgID)
			for {
				_, r, err := w.c.NextReader()
				testkit.NoError(b, err)
				buf.Reset()
				buf.ReadFrom(r)
				if data := buf.Bytes(); bytes.Contains(data, []byte(`"idle"`)) && bytes.Contains(data, id) {
					break
				}
			}
			d = append(d, time.Since(t0))
		}
		report(b, d)
	})
}

// BenchmarkStartLatency: a real ipykernel, started through the gateway
// (POST → 201, and POST → first kernel_info_reply over the websocket) and
// directly (spawn + zmq.Client + kernel_info). Run with -benchtime 20x.
func BenchmarkStartLatency(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		var d []time.Duration
		for range b.N {
			t0 := time.Now()
			ci, err := testPorts.ConnectionInfo("python3")
			testkit.NoError(b, err)
			path := filepath.Join(b.TempDir(), "k.json")
			testkit.NoError(b, zmq.WriteConnectionFile(path, ci))
			proc := testkit.StartIPyKernel(b, path)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			c, err := zmq.Connect(ctx, ci, zmq.Options{})
			testkit.NoError(b, err)
			_, err = c.KernelInfo(ctx)
			testkit.NoError(b, err)
			d = append(d, time.Since(t0))
			cancel()
			c.Close()
			syscall.Kill(-proc.Cmd.Process.Pid, syscall.SIGKILL)
			<-proc.Done
		}
		reportPercentiles(b, "kernel_info", d)
	})
	for _, pooled := range []bool{false, true} {
		name := "gateway"
		mod := func(*Config, *actors.Config) {}
		if pooled {
			name = "gateway-pool"
			mod = func(_ *Config, a *actors.Config) { a.Pools = map[string]int{"python3": 1} }
		}
		b.Run(name, func(b *testing.B) {
			h := newHarness(b, mod)
			var created, info []time.Duration
			for range b.N {
				if pooled {
					b.StopTimer()
					h.waitPool("python3") // a pool hit is what this measures
					b.StartTimer()
				}
				t0 := time.Now()
				id := decode[actors.Model](b, h.expect("POST", "/api/kernels", `{"name":"python3"}`, 201)).ID
				created = append(created, time.Since(t0))
				w := h.dialWS(id, "", true)
				w.reply(w.send(zmq.Shell, "kernel_info_request", nil, nil), 30*time.Second)
				info = append(info, time.Since(t0))
				w.c.Close()
				h.expect("DELETE", "/api/kernels/"+id, "", 204)
			}
			reportPercentiles(b, "201", created)
			reportPercentiles(b, "kernel_info", info)
		})
	}
}

func reportPercentiles(b *testing.B, what string, d []time.Duration) {
	slices.Sort(d)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(d[len(d)/2]), what+"-p50-ms")
	b.ReportMetric(ms(d[min(len(d)-1, len(d)*95/100)]), what+"-p95-ms")
}

func itoa(n int) string { return strconv.Itoa(n) }

// BenchmarkWSConnFlush is a websocket's share of forwarding a 64-byte
// stream message: encoding it in its framing straight into the batch and
// writing the batch (64 messages, one write) to a loopback TCP connection
// whose peer discards. allocs/op is 0.
func BenchmarkWSConnFlush(b *testing.B) {
	for _, codec := range []framing.Codec{framing.V1{}, framing.Legacy{}} {
		b.Run(fmt.Sprintf("%T", codec)[len("framing."):], func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			testkit.NoError(b, err)
			defer ln.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				c, err := ln.Accept()
				if err != nil {
					return
				}
				io.Copy(io.Discard, c)
				c.Close()
			}()
			nc, err := net.Dial("tcp", ln.Addr().String())
			testkit.NoError(b, err)
			w := &wsConn{nc: nc, f: codec, wmu: make(chan struct{}, 1)}
			m, err := zmq.NewMessage("stream", "k", "u", []byte(`{"msg_id":"p"}`), map[string]string{"name": "stdout", "text": strings.Repeat("x", 63) + "\n"})
			testkit.NoError(b, err)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w.Queue(zmq.IOPub, m)
				if i%64 == 63 {
					testkit.NoError(b, w.Flush())
				}
			}
			testkit.NoError(b, w.Flush())
			b.StopTimer()
			nc.Close()
			<-done
		})
	}
}
