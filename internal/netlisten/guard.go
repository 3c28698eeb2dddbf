package netlisten

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Guard protects a server's accept loop from floods and bad luck:
//
//   - accept errors that pass (no file descriptors left, a connection reset
//     before it was accepted, no kernel memory) are retried with a backoff,
//     as net/http does, instead of ending the server;
//   - at most MaxConns connections are open at once; a connection beyond
//     that is answered 503 and closed at once, so that the process keeps
//     file descriptors for its kernels and its existing clients.
type Guard struct {
	// MaxConns bounds the open connections; 0 means no bound.
	MaxConns int
	// Rejected, when set, receives every connection refused for MaxConns
	// (to count and log it, rate-limited).
	Rejected func()
	// Retrying, when set, receives every accept error that is retried.
	Retrying func(error)
}

// Listener returns ln guarded by g.
func (g Guard) Listener(ln net.Listener) *GuardedListener {
	return &GuardedListener{Listener: ln, g: g}
}

// GuardedListener is a listener under a Guard.
type GuardedListener struct {
	net.Listener
	g    Guard
	open atomic.Int64
}

// Open returns how many accepted connections are not closed yet.
func (l *GuardedListener) Open() int64 { return l.open.Load() }

// Backoff bounds of a retried accept, as net/http's.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

// tooManyConns is what a connection beyond MaxConns gets: the server's usual
// JSON error, written before anything is read.
var tooManyConns = func() []byte {
	body := `{"reason":"Service Unavailable","message":"too many connections: try again in a moment"}`
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// Accept waits for the next connection the guard admits.
func (l *GuardedListener) Accept() (net.Conn, error) {
	delay := time.Duration(0)
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !temporary(err) {
				return nil, err
			}
			if l.g.Retrying != nil {
				l.g.Retrying(err)
			}
			delay = min(max(2*delay, minAcceptDelay), maxAcceptDelay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if l.g.MaxConns > 0 && l.open.Load() >= int64(l.g.MaxConns) {
			// The response fits in a fresh socket's send buffer: the write
			// does not wait on the client.
			c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			c.Write(tooManyConns)
			if l.g.Rejected != nil {
				l.g.Rejected()
			}
			c.Close()
			continue
		}
		l.open.Add(1)
		return &guardedConn{Conn: c, l: l}, nil
	}
}

// temporary reports accept errors that pass: the process or the system is
// out of descriptors or memory for a moment, or a client gave up before its
// connection was accepted.
func temporary(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// guardedConn gives its place back when it is closed, once.
type guardedConn struct {
	net.Conn
	l    *GuardedListener
	once sync.Once
}

func (c *guardedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}
