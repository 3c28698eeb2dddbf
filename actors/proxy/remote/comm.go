package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// ErrRefused reports a comm port nobody listens on: the launcher, and so
// its kernel, is gone.
var ErrRefused = errors.New("comm port refused the connection")

// CommRequest is one request to a launcher's comm port: a signal for the
// kernel (0 only checks that it lives) or the launcher's shutdown.
type CommRequest struct {
	Signum   *int `json:"signum,omitempty"`
	Shutdown int  `json:"shutdown,omitempty"`
}

// SignalRequest asks the launcher to deliver sig.
func SignalRequest(sig syscall.Signal) CommRequest {
	n := int(sig)
	return CommRequest{Signum: &n}
}

// ShutdownRequest asks the launcher to stop listening and end with its
// kernel.
var ShutdownRequest = CommRequest{Shutdown: 1}

// MaxCommRequest bounds what a launcher reads from one comm connection.
const MaxCommRequest = 4 << 10

// SendComm delivers req to the comm port at addr, as EG does: one TCP
// connection per request, the JSON, then a half-close; the launcher never
// answers. timeout bounds the connect and the write.
func SendComm(ctx context.Context, addr string, req CommRequest, timeout time.Duration) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w: %s", ErrRefused, addr)
		}
		return fmt.Errorf("comm port %s: %w", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(body); err != nil {
		return fmt.Errorf("comm port %s: %w", addr, err)
	}
	conn.(*net.TCPConn).CloseWrite()
	// Wait for the launcher to close its end: the request has then been
	// read, so a signal is delivered before this returns.
	io.Copy(io.Discard, io.LimitReader(conn, 1))
	return nil
}

// CommHandler is what a launcher does with the requests to its comm port.
type CommHandler struct {
	// Signal delivers a signal to the kernel. Signal 0 only asks whether
	// the kernel lives, and accepting the connection is the answer: it
	// never reaches Signal.
	Signal func(syscall.Signal)
	// Shutdown runs on the first shutdown request; later ones are
	// ignored.
	Shutdown func()
	// Ignored, when set, hears of a request that could not be read.
	Ignored func(error)
}

// commReadTimeout bounds the read of one comm request.
const commReadTimeout = 5 * time.Second

// ServeComm answers the requests to a comm port (the launcher's side), one
// connection at a time and in order, until ln closes: each connection is
// read to its end, closed (the gateway's SendComm waits for that), then
// handled.
func ServeComm(ln net.Listener, h CommHandler) {
	shutdown := false
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		req, err := readComm(conn, commReadTimeout)
		conn.Close()
		switch {
		case err != nil:
			if h.Ignored != nil {
				h.Ignored(err)
			}
		case req.Shutdown != 0:
			if !shutdown {
				shutdown = true
				h.Shutdown()
			}
		case req.Signum != nil && *req.Signum != 0:
			h.Signal(syscall.Signal(*req.Signum))
		}
	}
}

// readComm reads one request from a comm connection: up to EOF, at most
// MaxCommRequest bytes, before the deadline.
func readComm(conn net.Conn, timeout time.Duration) (CommRequest, error) {
	var req CommRequest
	conn.SetReadDeadline(time.Now().Add(timeout))
	b, err := io.ReadAll(io.LimitReader(conn, MaxCommRequest+1))
	if err != nil {
		return req, err
	}
	if len(b) > MaxCommRequest {
		return req, fmt.Errorf("comm request over %d bytes", MaxCommRequest)
	}
	if err := json.Unmarshal(b, &req); err != nil {
		return req, fmt.Errorf("comm request is not JSON: %w", err)
	}
	return req, nil
}
