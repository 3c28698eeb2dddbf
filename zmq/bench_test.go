package zmq

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

func benchMessage(b *testing.B) *Message {
	m, err := NewMessage("stream", "0b5ea3c1-7c3a-4b59-9f0e-2a3c1f1e8d01", "user",
		[]byte(`{"msg_id":"6f1c2a9e-1111-4d4f-9a55-2c6f1d2b3e4f","msg_type":"execute_request","session":"s","username":"u","date":"2026-11-26T05:00:00.000000Z","version":"5.3"}`),
		map[string]any{"name": "stdout", "text": "hello, world\n"})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func BenchmarkSignSerialize(b *testing.B) {
	s, _ := NewSigner("hmac-sha256", NewKey())
	m := benchMessage(b)
	b.ReportAllocs()
	for b.Loop() {
		s.Serialize(m)
	}
}

func BenchmarkParseVerify(b *testing.B) {
	s, _ := NewSigner("hmac-sha256", NewKey())
	frames := s.Serialize(benchMessage(b))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Parse(frames); err != nil {
			b.Fatal(err)
		}
	}
}

// jupyterFrames is a Jupyter-shaped iopub message: topic plus six frames.
func jupyterFrames(b *testing.B) [][]byte {
	s, _ := NewSigner("hmac-sha256", NewKey())
	m := benchMessage(b)
	m.Identities = [][]byte{[]byte("stream.stdout")}
	return s.Serialize(m)
}

func freeEndpoint(b *testing.B, scheme string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return scheme + "://" + l.Addr().String()
}

// benchOneWay sends b.N messages from a Go sender to a Go receiver over
// loopback and reports received msgs/s.
func benchOneWay(b *testing.B, scheme string, newSender, newReceiver func(context.Context, ...zmq4.Option) zmq4.Socket) {
	ctx := withLimits(context.Background(), DefaultLimits)
	ep := freeEndpoint(b, scheme)
	tx := newSender(ctx)
	defer tx.Close()
	if err := tx.Listen(ep); err != nil {
		b.Fatal(err)
	}
	rx := newReceiver(ctx)
	defer rx.Close()
	if rx.Type() == zmq4.Sub {
		rx.SetOption(zmq4.OptionSubscribe, "")
	}
	if err := rx.Dial(ep); err != nil {
		b.Fatal(err)
	}
	frames := jupyterFrames(b)
	warm := zmq4.NewMsgFrom([]byte("warm"))
	// Wait out the slow joiner with warm-up messages the receiver does not
	// count, then count exactly b.N real ones.
	joined := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		n := 0
		for n < b.N {
			m, err := rx.Recv()
			if err != nil {
				return
			}
			if string(m.Frames[len(m.Frames)-1]) == "warm" {
				select {
				case joined <- struct{}{}:
				default:
				}
				continue
			}
			n++
		}
	}()
	for joining := true; joining; {
		tx.Send(warm)
		select {
		case <-joined:
			joining = false
		case <-time.After(10 * time.Millisecond):
		}
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := tx.SendMulti(zmq4.NewMsgFrom(frames...)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		b.Fatal("receiver did not get every message")
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

func BenchmarkDealerRouter(b *testing.B) {
	for _, scheme := range []string{"tcp", HardenedScheme} {
		b.Run(scheme, func(b *testing.B) { benchOneWay(b, scheme, zmq4.NewDealer, zmq4.NewRouter) })
	}
}

func BenchmarkPubSub(b *testing.B) {
	for _, scheme := range []string{"tcp", HardenedScheme} {
		b.Run(scheme, func(b *testing.B) { benchOneWay(b, scheme, zmq4.NewPub, zmq4.NewSub) })
	}
}

// pyPublisher publishes n Jupyter-shaped messages from pyzmq (libzmq), as a
// real kernel would, after a short pause for the subscriber to join.
const pyPublisher = `
import sys, time, zmq
port, n = int(sys.argv[1]), int(sys.argv[2])
ctx = zmq.Context()
s = ctx.socket(zmq.PUB)
s.setsockopt(zmq.SNDHWM, 0)
s.bind("tcp://127.0.0.1:%d" % port)
msg = [b"stream.stdout", b"<IDS|MSG>", b"0"*64, b"h"*150, b"p"*150, b"{}", b"c"*60]
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
for _ in range(n):
    s.send_multipart(msg)
sys.stdin.readline()
`

// BenchmarkPySubscriber measures what a Go SUB receives from a libzmq PUB,
// the shape of traffic from a real kernel's iopub.
func BenchmarkPySubscriber(b *testing.B) {
	for _, scheme := range []string{"tcp", HardenedScheme} {
		b.Run(scheme, func(b *testing.B) {
			testkit.RequireIPyKernel(b)
			ep := freeEndpoint(b, scheme)
			_, port, _ := net.SplitHostPort(ep[len(scheme)+3:])
			cmd := exec.Command(testkit.Python(), "-c", pyPublisher, port, strconv.Itoa(b.N))
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer cmd.Process.Kill()
			fmt.Fscanln(stdout)
			rx := zmq4.NewSub(withLimits(context.Background(), DefaultLimits))
			defer rx.Close()
			rx.SetOption(zmq4.OptionSubscribe, "")
			if err := rx.Dial(ep); err != nil {
				b.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond) // let the subscription reach libzmq; pyzmq sends no welcome
			b.ResetTimer()
			start := time.Now()
			stdin.Write([]byte("go\n"))
			for range b.N {
				if _, err := rx.Recv(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			stdin.Write([]byte("done\n"))
		})
	}
}

// BenchmarkSubReceive isolates our receive path: a raw TCP peer completes
// the ZMTP handshake as a PUB, then streams b.N pre-encoded Jupyter-shaped
// messages in large writes, as libzmq batches them, and the Go SUB reads
// them. The sender costs almost nothing, so this is the SUB's own ceiling.
func BenchmarkSubReceive(b *testing.B) {
	var wire []byte
	frames := jupyterFrames(b)
	for i, f := range frames {
		flags := byte(flagMore)
		if i == len(frames)-1 {
			flags = 0
		}
		if len(f) > 255 {
			wire = append(wire, flags|flagLong)
			wire = binary.BigEndian.AppendUint64(wire, uint64(len(f)))
		} else {
			wire = append(wire, flags, byte(len(f)))
		}
		wire = append(wire, f...)
	}
	// The receivers: zmq4's SUB over plain TCP and over the hardened
	// transport, and the gateway's own ZMTP peer (what zmq.Client reads
	// each channel with).
	type receiver struct {
		name string
		dial func(addr string) (recv func() error, closer func(), err error)
	}
	zmq4Sub := func(scheme string) func(string) (func() error, func(), error) {
		return func(addr string) (func() error, func(), error) {
			rx := zmq4.NewSub(withLimits(context.Background(), DefaultLimits))
			rx.SetOption(zmq4.OptionSubscribe, "")
			if err := rx.Dial(scheme + "://" + addr); err != nil {
				rx.Close()
				return nil, nil, err
			}
			return func() error { _, err := rx.Recv(); return err }, func() { rx.Close() }, nil
		}
	}
	receivers := []receiver{{"tcp", zmq4Sub("tcp")}, {HardenedScheme, zmq4Sub(HardenedScheme)},
		{"peer", func(addr string) (func() error, func(), error) {
			p, err := dialPeer(context.Background(), addr, typeSub, nil, DefaultLimits)
			if err != nil {
				return nil, nil, err
			}
			frames := make([][]byte, 0, 8) // reused, as zmq.Client's reader does
			return func() error { _, err := p.readMessage(frames); return err }, func() { p.close(); p.br.close() }, nil
		}}}
	for _, r := range receivers {
		b.Run(r.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				defer io.Copy(io.Discard, c) // until the subscriber hangs up
				c.Write(zmtpGreeting())
				c.Write(zmtpReady("PUB"))
				batch := bytes.Repeat(wire, max(1, (64<<10)/len(wire)))
				per := len(batch) / len(wire)
				for sent := 0; sent < b.N; sent += per {
					n := min(per, b.N-sent)
					if _, err := c.Write(batch[:n*len(wire)]); err != nil {
						return
					}
				}
			}()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			recv, closer, err := r.dial(ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer closer()
			for range b.N {
				if err := recv(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
