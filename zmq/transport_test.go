package zmq

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

// zmtpGreeting is a ZMTP 3.0 greeting for the NULL mechanism.
func zmtpGreeting() []byte {
	g := make([]byte, greetingLen)
	g[0], g[9], g[10], g[11] = 0xFF, 0x7F, 3, 0
	copy(g[12:], "NULL")
	return g
}

// zmtpReady is a READY command announcing socketType.
func zmtpReady(socketType string) []byte {
	body := append([]byte{5}, "READY"...)
	body = append(body, byte(len("Socket-Type")))
	body = append(body, "Socket-Type"...)
	body = binary.BigEndian.AppendUint32(body, uint32(len(socketType)))
	body = append(body, socketType...)
	return append([]byte{flagCommand, byte(len(body))}, body...)
}

// hostilePeer accepts one connection, runs serve on it, and returns the
// endpoint to dial.
func hostilePeer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testkit.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		serve(c)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return HardenedScheme + "://" + ln.Addr().String()
}

func TestOversizedFrameIsRefusedBeforeAllocation(t *testing.T) {
	for _, claim := range []uint64{1 << 62, 1 << 30} {
		t.Run(strconv.FormatUint(claim, 10), func(t *testing.T) {
			defer leaktest.Check(t)()
			ep := hostilePeer(t, func(c net.Conn) {
				c.Write(zmtpGreeting())
				c.Write(zmtpReady("ROUTER"))
				hdr := binary.BigEndian.AppendUint64([]byte{flagLong}, claim)
				c.Write(hdr)
				io.Copy(io.Discard, c) // hold the connection open, send no body
			})
			var before runtime.MemStats
			runtime.ReadMemStats(&before)

			ctx := withLimits(context.Background(), Limits{MaxFrame: 1 << 20, Handshake: 5 * time.Second, ReadBuffer: 4096})
			s := zmq4.NewDealer(ctx, zmq4.WithDialerMaxRetries(0))
			defer s.Close()
			testkit.NoError(t, s.Dial(ep))
			_, err := s.Recv()
			testkit.ErrorIs(t, err, ErrFrameTooLarge)

			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			testkit.True(t, after.TotalAlloc-before.TotalAlloc < 64<<20,
				"allocated %d bytes for a frame that was refused", after.TotalAlloc-before.TotalAlloc)
		})
	}
}

func TestSilentPeerFailsTheHandshake(t *testing.T) {
	defer leaktest.Check(t)()
	ep := hostilePeer(t, func(c net.Conn) { io.Copy(io.Discard, c) }) // accepts, never greets
	ctx := withLimits(context.Background(), Limits{MaxFrame: 1 << 20, Handshake: 200 * time.Millisecond, ReadBuffer: 4096})
	s := zmq4.NewDealer(ctx, zmq4.WithDialerMaxRetries(0))
	defer s.Close()
	err := s.Dial(ep)
	testkit.ErrorIs(t, err, ErrHandshakeTimeout)
}

func TestConnectGivesUpWhenContextEnds(t *testing.T) {
	defer leaktest.Check(t)()
	ep := hostilePeer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	_, port, _ := net.SplitHostPort(ep[len(HardenedScheme)+3:])
	p, _ := strconv.Atoi(port)
	// Every channel points at the silent peer (only one dial is accepted;
	// the others hang in connect retries), so Connect can only end by ctx.
	ci := ConnectionInfo{IP: "127.0.0.1", Transport: "tcp", ShellPort: p, IOPubPort: p,
		StdinPort: p, ControlPort: p, HBPort: p, SignatureScheme: "hmac-sha256", Key: "k"}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Connect(ctx, ci, Options{Limits: Limits{MaxFrame: 1 << 20, Handshake: time.Hour, ReadBuffer: 4096}})
	testkit.ErrorIs(t, err, context.DeadlineExceeded)
}
