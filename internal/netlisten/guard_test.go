package netlisten

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/kernelgate/kernelgate/internal/testkit"
)

// scripted is a listener whose Accept returns the given errors first, then
// real connections.
type scripted struct {
	net.Listener
	errs []error
}

func (s *scripted) Accept() (net.Conn, error) {
	if len(s.errs) > 0 {
		err := s.errs[0]
		s.errs = s.errs[1:]
		return nil, err
	}
	return s.Listener.Accept()
}

func TestGuardRetriesErrorsThatPass(t *testing.T) {
	tests := []struct {
		err   error
		retry bool
	}{
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EMFILE)}, true},
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ENFILE)}, true},
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ECONNABORTED)}, true},
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ENOBUFS)}, true},
		{net.ErrClosed, false},
		{errors.New("something else"), false},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			real, err := net.Listen("tcp", "127.0.0.1:0")
			testkit.NoError(t, err)
			defer real.Close()
			var retried []error
			ln := Guard{Retrying: func(err error) { retried = append(retried, err) }}.Listener(&scripted{Listener: real, errs: []error{tt.err, tt.err}})
			if !tt.retry {
				_, err := ln.Accept()
				testkit.True(t, errors.Is(err, tt.err), "accept returned %v, want %v", err, tt.err)
				return
			}
			go func() {
				if c, err := net.Dial("tcp", real.Addr().String()); err == nil {
					defer c.Close()
					io.Copy(io.Discard, c)
				}
			}()
			c, err := ln.Accept()
			testkit.NoError(t, err)
			c.Close()
			testkit.Equal(t, len(retried), 2)
		})
	}
}

func TestGuardRefusesConnectionsBeyondTheBound(t *testing.T) {
	real, err := net.Listen("tcp", "127.0.0.1:0")
	testkit.NoError(t, err)
	var rejected atomic.Int32
	ln := Guard{MaxConns: 2, Rejected: func() { rejected.Add(1) }}.Listener(real)
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", real.Addr().String())
		testkit.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	dial()
	first := <-accepted
	<-accepted
	testkit.Equal(t, ln.Open(), int64(2))

	third := dial()
	reply, err := io.ReadAll(third)
	testkit.NoError(t, err)
	testkit.True(t, strings.HasPrefix(string(reply), "HTTP/1.1 503 ") && strings.Contains(string(reply), `"reason":"Service Unavailable"`),
		"refused connection got %q", reply)
	testkit.Equal(t, rejected.Load(), int32(1))

	// A closed connection frees its place, once however often it is closed.
	first.Close()
	first.Close()
	testkit.Equal(t, ln.Open(), int64(1))
	dial()
	c := <-accepted
	testkit.True(t, c != nil, "a freed place was not given to the next connection")
	testkit.Equal(t, ln.Open(), int64(2))
}
