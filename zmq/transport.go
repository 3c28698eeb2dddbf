package zmq

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/transport"
)

// HardenedScheme is the zmq4 endpoint scheme of the hardened TCP transport
// (zmq4 sockets in this process, such as the synthetic kernel's, use it).
const HardenedScheme = "kgtcp"

// Limits bound what a peer can make us do. They travel to the transport in
// the socket's context, so each Client can carry its own.
type Limits struct {
	// MaxFrame is the largest ZMTP frame accepted, in bytes. A larger frame
	// fails the connection before zmq4 allocates anything for it.
	MaxFrame uint64
	// Handshake bounds the TCP connect plus the ZMTP greeting and READY
	// exchange; a peer that accepts and never greets is dropped after it.
	Handshake time.Duration
	// ReadBuffer is the size of the buffered reader under each connection.
	ReadBuffer int
}

// DefaultLimits are used when a Client is given none.
var DefaultLimits = Limits{MaxFrame: 64 << 20, Handshake: 10 * time.Second, ReadBuffer: 64 << 10}

// ErrFrameTooLarge reports a ZMTP frame over Limits.MaxFrame.
var ErrFrameTooLarge = errors.New("zmq: frame exceeds the size limit")

// ErrHandshakeTimeout reports a peer that did not finish the ZMTP handshake
// within Limits.Handshake.
var ErrHandshakeTimeout = errors.New("zmq: handshake timed out")

type limitsKey struct{}

type peersKey struct{}

func withLimits(ctx context.Context, l Limits) context.Context {
	return context.WithValue(ctx, limitsKey{}, l)
}

func limitsFrom(ctx context.Context) Limits {
	if l, ok := ctx.Value(limitsKey{}).(Limits); ok {
		return l
	}
	return DefaultLimits
}

// Peers are the connections of one socket once their handshake is done,
// for writing messages to them directly: zmq4's own send makes a context
// with a timeout and an errgroup goroutine for every message, and writes
// each message with a write of its own. Whoever writes through Peers must
// be the socket's only sender (never call the socket's Send or SendMulti).
type Peers struct {
	mu    sync.Mutex
	conns []*guardedConn
	frame []byte // scratch for frame headers
}

// WithPeers returns ctx for a socket whose connections are to join p.
func WithPeers(ctx context.Context, p *Peers) context.Context {
	return context.WithValue(ctx, peersKey{}, p)
}

func (p *Peers) add(g *guardedConn) {
	p.mu.Lock()
	p.conns = append(p.conns, g)
	p.mu.Unlock()
}

func (p *Peers) remove(g *guardedConn) {
	p.mu.Lock()
	if i := slices.Index(p.conns, g); i >= 0 {
		p.conns = slices.Delete(p.conns, i, i+1)
	}
	p.mu.Unlock()
}

// Send writes the message made of frames to every connection, behind what
// is buffered; with flush, it writes the buffers out (else a buffer is
// written when it fills, or by Flush). A timeout other than 0 bounds the
// write. It returns ErrNoPeer when the socket has no connection, and the
// first write error otherwise (the connection is unusable then).
func (p *Peers) Send(frames [][]byte, flush bool, timeout time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns) == 0 {
		return ErrNoPeer
	}
	var first error
	for _, g := range p.conns {
		if err := g.writeMessage(frames, flush, timeout, &p.frame); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Flush writes out what Send buffered.
func (p *Peers) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first error
	for _, g := range p.conns {
		g.wmu.Lock()
		err := g.bw.Flush()
		g.wmu.Unlock()
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}

// ErrNoPeer reports a send on a socket with no connection (yet).
var ErrNoPeer = errors.New("zmq: no connection to send on")

func init() {
	if err := zmq4.RegisterTransport(HardenedScheme, hardenedTransport{}); err != nil {
		panic(err) // only a second registration of the same name can fail
	}
}

// hardenedTransport is TCP with a guarded connection (see guardedConn).
type hardenedTransport struct{}

var _ transport.Transport = hardenedTransport{}

func (hardenedTransport) Dial(ctx context.Context, d transport.Dialer, addr string) (net.Conn, error) {
	l := limitsFrom(ctx)
	dctx, cancel := context.WithTimeout(ctx, l.Handshake)
	defer cancel()
	c, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return newGuardedConn(ctx, c, l), nil
}

func (hardenedTransport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return guardedListener{Listener: ln, ctx: ctx}, nil
}

func (hardenedTransport) Addr(ep string) (string, error) {
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return "", err
	}
	if host == "" || host == "*" {
		host = "0.0.0.0"
	}
	if port == "" || port == "*" {
		port = "0"
	}
	return net.JoinHostPort(host, port), nil
}

// guardedListener wraps accepted connections like dialled ones; benchmarks
// and test peers listen on it.
type guardedListener struct {
	net.Listener
	ctx context.Context
}

func (l guardedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newGuardedConn(l.ctx, c, limitsFrom(l.ctx)), nil
}

// ZMTP 3.0 framing, as far as the guard needs it.
const (
	greetingLen = 64
	flagMore    = 0x01
	flagLong    = 0x02
	flagCommand = 0x04
)

type frameState uint8

const (
	stGreeting frameState = iota
	stFlags
	stSize
	stBody
)

// framer follows ZMTP framing over a byte stream in one direction.
type framer struct {
	st    frameState
	need  uint64 // bytes left in the greeting, the size field or the body
	flags byte
	size  uint64
}

func newFramer() framer { return framer{st: stGreeting, need: greetingLen} }

// scan advances over b. sized is called when a frame's length is complete
// and may refuse it: scan then returns the offset of the byte that completed
// the length and sized's error. done is called when a frame is complete.
func (f *framer) scan(b []byte, sized func(uint64) error, done func(flags byte)) (int, error) {
	for i := 0; i < len(b); {
		switch f.st {
		case stGreeting, stBody:
			k := min(uint64(len(b)-i), f.need)
			f.need -= k
			i += int(k)
			if f.need > 0 {
				continue
			}
			if f.st == stBody {
				done(f.flags)
			}
			f.st = stFlags
		case stFlags:
			f.flags = b[i]
			i++
			f.size, f.need = 0, 1
			if f.flags&flagLong != 0 {
				f.need = 8
			}
			f.st = stSize
		case stSize:
			f.size = f.size<<8 | uint64(b[i])
			f.need--
			if f.need == 0 {
				if err := sized(f.size); err != nil {
					return i, err
				}
				f.need, f.st = f.size, stBody
				if f.size == 0 {
					done(f.flags)
					f.st = stFlags
				}
			}
			i++
		}
	}
	return 0, nil
}

// guardedConn is a net.Conn that follows the ZMTP framing in both
// directions, so it can
//   - fail the read that would complete an oversized frame's length, before
//     zmq4 sees the length and allocates a slice that size;
//   - hold a deadline over the handshake and lift it once the peer's first
//     command (READY) has arrived;
//   - read through a buffer, and write each whole message with one syscall
//     (zmq4 hands its frames to net.Buffers, which loses writev on any
//     wrapped conn; buffering until the last frame restores one write),
//     holding the read buffer only while it has bytes (see lazyReader);
//   - refuse reads after Close, even from buffered bytes.
type guardedConn struct {
	net.Conn
	br     *lazyReader
	bw     *bufio.Writer
	limits Limits
	closed atomic.Bool

	in, out    framer
	handshake  atomic.Bool // true until the peer's first command frame is complete
	sentReady  bool        // our own READY is out; writes may be buffered from now on
	flushAfter bool        // the bytes just scanned ended a message
	pending    error       // error to return on the next Read
	stop       func() bool
	// wmu orders writes: zmq4's (the handshake) and Peers'.
	wmu   sync.Mutex
	peers *Peers // joined once the handshake is done; nil: no Peers
	ready int    // READY commands sent and received, up to 2
}

func newGuardedConn(ctx context.Context, c net.Conn, l Limits) *guardedConn {
	g := &guardedConn{
		Conn:   c,
		peers:  peersFrom(ctx),
		br:     newLazyReader(c, max(l.ReadBuffer, 4096)),
		bw:     bufio.NewWriterSize(c, 64<<10),
		limits: l,
		in:     newFramer(),
		out:    newFramer(),
	}
	g.handshake.Store(true)
	if l.Handshake > 0 {
		c.SetDeadline(time.Now().Add(l.Handshake))
	}
	// zmq4 does not close a connection whose handshake is still running when
	// its socket closes; do it here so Close never waits on a silent peer.
	g.stop = context.AfterFunc(ctx, func() {
		if g.handshake.Load() {
			c.Close()
		}
	})
	return g
}

func (g *guardedConn) Close() error {
	g.closed.Store(true)
	g.stop()
	if g.peers != nil {
		g.peers.remove(g)
	}
	return g.Conn.Close()
}

func peersFrom(ctx context.Context) *Peers {
	p, _ := ctx.Value(peersKey{}).(*Peers)
	return p
}

// handshook counts a READY command sent or received; after both, the
// connection joins its Peers.
func (g *guardedConn) handshook() {
	if g.ready++; g.ready == 2 && g.peers != nil {
		g.peers.add(g)
	}
}

// writeMessage buffers one message (ZMTP frames, MORE on all but the last)
// and writes out the buffer if flush is set. scratch is for the frame
// headers.
func (g *guardedConn) writeMessage(frames [][]byte, flush bool, timeout time.Duration, scratch *[]byte) error {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if timeout > 0 {
		g.Conn.SetWriteDeadline(time.Now().Add(timeout))
	}
	for i, f := range frames {
		var flags byte
		if i < len(frames)-1 {
			flags |= flagMore
		}
		h := (*scratch)[:0]
		if len(f) > 255 {
			h = binary.BigEndian.AppendUint64(append(h, flags|flagLong), uint64(len(f)))
		} else {
			h = append(h, flags, byte(len(f)))
		}
		*scratch = h
		if _, err := g.bw.Write(h); err != nil {
			return err
		}
		if _, err := g.bw.Write(f); err != nil {
			return err
		}
	}
	if flush {
		return g.bw.Flush()
	}
	return nil
}

func (g *guardedConn) Read(p []byte) (int, error) {
	if g.pending != nil {
		return 0, g.pending
	}
	if g.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := g.br.Read(p)
	if n > 0 {
		if cut, ferr := g.in.scan(p[:n], g.checkSize, g.readFrame); ferr != nil {
			// Hand zmq4 only the bytes before the offending length byte:
			// its ReadFull then asks again and gets the error.
			g.pending = ferr
			g.Conn.Close()
			if cut == 0 {
				return 0, ferr
			}
			return cut, nil
		}
	}
	if err != nil && g.handshake.Load() && isTimeout(err) {
		err = fmt.Errorf("%w: %w", ErrHandshakeTimeout, err)
	}
	return n, err
}

func (g *guardedConn) checkSize(size uint64) error {
	if g.limits.MaxFrame > 0 && size > g.limits.MaxFrame {
		return fmt.Errorf("%w: %d bytes (limit %d)", ErrFrameTooLarge, size, g.limits.MaxFrame)
	}
	return nil
}

func (g *guardedConn) readFrame(flags byte) {
	if flags&flagCommand != 0 && g.handshake.CompareAndSwap(true, false) {
		g.Conn.SetDeadline(time.Time{})
		g.wmu.Lock()
		g.handshook()
		g.wmu.Unlock()
	}
}

func (g *guardedConn) Write(p []byte) (int, error) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	g.flushAfter = false
	g.out.scan(p, noLimit, g.wroteFrame)
	if !g.sentReady {
		// Handshake bytes go out at once: the peer answers them.
		return g.Conn.Write(p)
	}
	n, err := g.bw.Write(p)
	if err == nil && g.flushAfter {
		err = g.bw.Flush()
	}
	return n, err
}

func noLimit(uint64) error { return nil }

func (g *guardedConn) wroteFrame(flags byte) {
	if flags&flagCommand != 0 && !g.sentReady {
		g.sentReady = true
		g.handshook()
	}
	if flags&flagMore == 0 {
		g.flushAfter = true
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
