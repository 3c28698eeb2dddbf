package zmq

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// Buffers of idle connections are what a gateway with thousands of kernels
// would otherwise spend most of its memory on: five connections a kernel,
// each with a read and a write buffer, nearly all of them idle. The
// connections here hold a buffer only while it has bytes in it, and take
// it from a pool shared by every connection.

// bufPools holds a pool per buffer size.
var bufPools sync.Map // int → *sync.Pool

func bufPool(size int) *sync.Pool {
	if p, ok := bufPools.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := bufPools.LoadOrStore(size, &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}})
	return p.(*sync.Pool)
}

func getBuf(size int) []byte { return (*bufPool(size).Get().(*[]byte))[:size] }

func putBuf(b []byte) {
	b = b[:cap(b)]
	bufPool(cap(b)).Put(&b)
}

// lazyReader reads a connection through a buffer of size bytes that it
// holds only while the buffer has unread bytes: it waits for the socket to
// be readable without one (syscall.RawConn), so an idle connection, whose
// reader is blocked, costs no buffer. On a connection that is not a socket
// it waits in Read with the buffer.
type lazyReader struct {
	c    net.Conn
	rc   syscall.RawConn // nil: c is not a socket
	size int
	buf  []byte // nil while empty
	r, w int
}

func newLazyReader(c net.Conn, size int) *lazyReader {
	l := &lazyReader{c: c, size: max(size, 512)}
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			l.rc = rc
		}
	}
	return l
}

// Buffered is how many bytes were read from the connection and not yet
// from the reader.
func (l *lazyReader) Buffered() int { return l.w - l.r }

func (l *lazyReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if l.r == l.w {
		if len(p) >= l.size {
			return l.read(p) // a large read needs no buffer
		}
		buf := l.buf
		if buf == nil && l.rc == nil {
			buf = getBuf(l.size)
		}
		n, err := l.readInto(&buf)
		if n == 0 {
			if buf != nil {
				putBuf(buf)
			}
			l.buf = nil
			return 0, err
		}
		l.buf, l.r, l.w = buf, 0, n
	}
	n := copy(p, l.buf[l.r:l.w])
	l.r += n
	l.releaseIfEmpty()
	return n, nil
}

// readFull fills p, straight from the buffer when it holds enough: the
// frames of a message mostly arrive in one read, and a ZMTP reader makes
// two calls a frame, which io.ReadFull would each take through an
// interface and a loop.
func (l *lazyReader) readFull(p []byte) error {
	if l.w-l.r < len(p) {
		_, err := io.ReadFull(l, p)
		return err
	}
	l.r += copy(p, l.buf[l.r:l.w])
	l.releaseIfEmpty()
	return nil
}

// Release gives the buffer back if it is empty; a reader that stops
// reading calls it.
func (l *lazyReader) releaseIfEmpty() {
	if l.r == l.w && l.buf != nil {
		putBuf(l.buf)
		l.buf, l.r, l.w = nil, 0, 0
	}
}

// read reads straight into p.
func (l *lazyReader) read(p []byte) (int, error) {
	if l.rc == nil {
		return l.c.Read(p)
	}
	b := p
	return l.readInto(&b)
}

// readInto reads once into *buf, which, when nil, is taken from the pool
// once the socket is readable and given back if it was not after all.
func (l *lazyReader) readInto(buf *[]byte) (int, error) {
	if l.rc == nil {
		return l.c.Read(*buf)
	}
	pooled := *buf == nil
	var n int
	var rerr error
	err := l.rc.Read(func(fd uintptr) bool {
		for {
			if *buf == nil {
				*buf = getBuf(l.size)
			}
			n, rerr = syscall.Read(int(fd), *buf)
			switch rerr {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				if pooled {
					putBuf(*buf)
					*buf = nil
				}
				return false // wait until readable
			}
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: l.c.LocalAddr(), Addr: l.c.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// close gives the buffer back; the reader must not be used after.
func (l *lazyReader) close() {
	if l.buf != nil {
		putBuf(l.buf)
		l.buf = nil
	}
	l.r, l.w = 0, 0
}
