package zmq

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// The gateway's side of a kernel's five channels speaks ZMTP 3.0 itself
// (the NULL mechanism, a DEALER or a SUB dialling the kernel's ROUTER or
// PUB) rather than through zmq4's sockets. zmq4 spends three goroutines on
// every socket (a connection reader, a connection reaper, and the reader
// the caller needs to turn its Recv into deliveries) and one more per send;
// a gateway holding ten thousand kernels holds fifty thousand connections,
// nearly all idle. A peer here is one TCP connection with one reader
// goroutine that hands each message over as it completes, a write of each
// message in one writev, and no buffer while it is idle (see lazyReader).
// The guarantees of the hardened transport hold: a frame over MaxFrame is
// refused before anything is allocated for it, and the connect, greeting
// and READY exchange are bounded by Handshake.

// ErrProtocol reports a peer that does not speak ZMTP 3 with the NULL
// mechanism, or breaks its framing.
var ErrProtocol = errors.New("zmq: ZMTP protocol error")

// Socket types the gateway's side announces.
const (
	typeDealer = "DEALER"
	typeSub    = "SUB"
)

// maxFrames bounds the frames of one message (a Jupyter message has its
// routing prefix, seven parts and its buffers).
const maxFrames = 4096

// maxCommand bounds a command frame (READY, PING, ERROR: a few hundred
// bytes in practice).
const maxCommand = 64 << 10

// dialRetry is how soon a refused connect is tried again (a kernel that is
// still starting has not bound its ports yet).
const dialRetry = 50 * time.Millisecond

// peer is one ZMTP connection to one kernel channel.
type peer struct {
	conn   net.Conn
	br     *lazyReader
	limits Limits

	wmu  sync.Mutex // one message written at a time
	hdrs []byte     // scratch for frame headers, under wmu
	bufs net.Buffers

	// Owned by the reader. lastSize is the size of the previous message's
	// frames: the next message's frames are read into one allocation of
	// that size (a kernel's messages come in runs of similar sizes). hdr
	// holds a frame header being read (a local array would escape to the
	// heap through io.ReadFull, an allocation a frame).
	lastSize int
	hdr      [9]byte
}

// dialPeer connects to addr (host:port) until ctx ends, retrying refused
// connects, and runs the handshake as socketType (with identity, for a
// DEALER); a SUB then subscribes to everything.
func dialPeer(ctx context.Context, addr, socketType string, identity []byte, l Limits) (*peer, error) {
	for {
		d := net.Dialer{Timeout: l.Handshake}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			p, err := handshake(ctx, c, socketType, identity, l)
			if err != nil {
				c.Close()
				return nil, err
			}
			return p, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("zmq: dial %s: %w", addr, ctx.Err())
		}
		t := time.NewTimer(dialRetry)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("zmq: dial %s: %w (last: %w)", addr, ctx.Err(), err)
		}
	}
}

// handshake exchanges greetings and READY commands over c within
// l.Handshake (and ctx).
func handshake(ctx context.Context, c net.Conn, socketType string, identity []byte, l Limits) (*peer, error) {
	p := &peer{conn: c, br: newLazyReader(c, max(l.ReadBuffer, 4096)), limits: l}
	if l.Handshake > 0 {
		c.SetDeadline(time.Now().Add(l.Handshake))
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	fail := func(err error) (*peer, error) {
		p.br.close()
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("zmq: handshake with %s: %w", c.RemoteAddr(), ctx.Err())
		case isTimeout(err):
			return nil, fmt.Errorf("%w: %s: %w", ErrHandshakeTimeout, c.RemoteAddr(), err)
		}
		return nil, fmt.Errorf("zmq: handshake with %s: %w", c.RemoteAddr(), err)
	}
	if _, err := c.Write(greeting()); err != nil {
		return fail(err)
	}
	var g [greetingLen]byte
	if err := p.br.readFull(g[:]); err != nil {
		return fail(err)
	}
	if g[0] != 0xFF || g[9] != 0x7F || g[10] < 3 {
		return fail(fmt.Errorf("%w: not a ZMTP 3 greeting", ErrProtocol))
	}
	if mech := string(bytes.TrimRight(g[12:32], "\x00")); mech != "NULL" {
		return fail(fmt.Errorf("%w: mechanism %q (only NULL is spoken)", ErrProtocol, mech))
	}
	props := [][2]string{{"Socket-Type", socketType}}
	if socketType == typeDealer && len(identity) > 0 {
		props = append(props, [2]string{"Identity", string(identity)})
	}
	if _, err := c.Write(command("READY", metadata(props))); err != nil {
		return fail(err)
	}
	for {
		name, body, err := p.readCommand()
		if err != nil {
			return fail(err)
		}
		switch name {
		case "READY":
			c.SetDeadline(time.Time{})
			if socketType == typeSub {
				// ZMTP 3.0's subscription: a message whose body is 1 then
				// the prefix (empty: everything).
				if err := p.send([][]byte{{1}}, l.Handshake); err != nil {
					return fail(err)
				}
			}
			return p, nil
		case "ERROR":
			reason := ""
			if len(body) > 0 && int(body[0]) < len(body) {
				reason = string(body[1 : 1+int(body[0])])
			}
			return fail(fmt.Errorf("%w: the peer refused the handshake: %q", ErrProtocol, reason))
		}
		// Anything else before READY is ignored.
	}
}

// greeting is our ZMTP 3.0 greeting: NULL mechanism, as client.
func greeting() []byte {
	g := make([]byte, greetingLen)
	g[0], g[9], g[10], g[11] = 0xFF, 0x7F, 3, 0
	copy(g[12:], "NULL")
	return g
}

// metadata encodes ZMTP properties: a one-byte name length, the name, a
// four-byte value length, the value.
func metadata(props [][2]string) []byte {
	var b []byte
	for _, p := range props {
		b = append(b, byte(len(p[0])))
		b = append(b, p[0]...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(p[1])))
		b = append(b, p[1]...)
	}
	return b
}

// command frames a command: its name's length, its name, its data.
func command(name string, data []byte) []byte {
	body := append(append([]byte{byte(len(name))}, name...), data...)
	if len(body) > 255 {
		return append(binary.BigEndian.AppendUint64([]byte{flagCommand | flagLong}, uint64(len(body))), body...)
	}
	return append([]byte{flagCommand, byte(len(body))}, body...)
}

// readHeader reads a frame's flags and size, refusing a size over limit
// before anything is allocated for it.
func (p *peer) readHeader(limit uint64) (flags byte, size uint64, err error) {
	h := &p.hdr
	if err = p.br.readFull(h[:2]); err != nil {
		return 0, 0, err
	}
	flags, size = h[0], uint64(h[1])
	if flags&flagLong != 0 {
		if err = p.br.readFull(h[2:9]); err != nil {
			return 0, 0, err
		}
		size = binary.BigEndian.Uint64(h[1:9])
	}
	if flags&^(flagMore|flagLong|flagCommand) != 0 {
		return 0, 0, fmt.Errorf("%w: frame flags %#x", ErrProtocol, flags)
	}
	if limit > 0 && size > limit {
		return 0, 0, fmt.Errorf("%w: %d bytes (limit %d)", ErrFrameTooLarge, size, limit)
	}
	return flags, size, nil
}

// readCommand reads one frame that must be a command.
func (p *peer) readCommand() (name string, data []byte, err error) {
	flags, size, err := p.readHeader(maxCommand)
	if err != nil {
		return "", nil, err
	}
	if flags&flagCommand == 0 {
		return "", nil, fmt.Errorf("%w: a message before the handshake ended", ErrProtocol)
	}
	return p.commandBody(size)
}

func (p *peer) commandBody(size uint64) (string, []byte, error) {
	body := make([]byte, size)
	if err := p.br.readFull(body); err != nil {
		return "", nil, err
	}
	if len(body) == 0 || int(body[0]) > len(body)-1 {
		return "", nil, fmt.Errorf("%w: malformed command", ErrProtocol)
	}
	n := int(body[0])
	return string(body[1 : 1+n]), body[1+n:], nil
}

// readMessage reads the next message's frames, each freshly allocated (the
// caller may hand them on), and appends them to frames[:0]: a caller reads
// message after message with one slice. Commands between messages are
// answered (PING) or ignored.
func (p *peer) readMessage(frames [][]byte) ([][]byte, error) {
	frames = frames[:0]
	// The frames share one block: a message is kept (by the logs that
	// replay it) or dropped as a whole, and one allocation instead of
	// one a frame halves the reader's cost. A frame that does not fit
	// what is left gets a block of its own size or of the previous
	// message's (up to maxBlock), so that little is allocated that a
	// frame will not use.
	var block []byte
	total := 0
	for {
		flags, size, err := p.readHeader(p.limits.MaxFrame)
		if err != nil {
			return nil, err
		}
		if flags&flagCommand != 0 {
			if len(frames) > 0 {
				return nil, fmt.Errorf("%w: a command inside a message", ErrProtocol)
			}
			if size > maxCommand {
				return nil, fmt.Errorf("%w: a command of %d bytes", ErrProtocol, size)
			}
			name, data, err := p.commandBody(size)
			if err != nil {
				return nil, err
			}
			if name == "PING" && len(data) >= 2 {
				p.pong(data[2:])
			}
			continue
		}
		if len(frames) == maxFrames {
			return nil, fmt.Errorf("%w: a message of over %d frames", ErrProtocol, maxFrames)
		}
		n := int(size)
		if cap(block)-len(block) < n {
			block = make([]byte, 0, max(n, min(p.lastSize-total, maxBlock)))
		}
		f := block[len(block) : len(block)+n : len(block)+n]
		block = block[:len(block)+n]
		total += n
		if err := p.br.readFull(f); err != nil {
			return nil, err
		}
		frames = append(frames, f)
		if flags&flagMore == 0 {
			p.lastSize = total
			return frames, nil
		}
	}
}

// maxBlock bounds the block a message's frames are read into beyond the
// frame at hand: one huge message must not make every later one allocate
// as much.
const maxBlock = 64 << 10

// pong answers a ZMTP PING with its context.
func (p *peer) pong(ctx []byte) {
	if len(ctx) > 16 {
		ctx = ctx[:16]
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.conn.SetWriteDeadline(time.Now().Add(time.Second))
	p.conn.Write(command("PONG", ctx))
}

// send writes one message, all its frames in one writev, within timeout
// (none when 0). A send that fails may have written part of the message:
// the connection is then unusable.
func (p *peer) send(frames [][]byte, timeout time.Duration) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	hdrs := p.hdrs[:0]
	for _, f := range frames {
		var fl byte
		if len(f) > 255 {
			fl |= flagLong
		}
		hdrs = append(hdrs, fl)
		if len(f) > 255 {
			hdrs = binary.BigEndian.AppendUint64(hdrs, uint64(len(f)))
		} else {
			hdrs = append(hdrs, byte(len(f)))
		}
	}
	p.hdrs = hdrs
	bufs := p.bufs[:0]
	off := 0
	for i, f := range frames {
		n := 2
		if len(f) > 255 {
			n = 9
		}
		h := hdrs[off : off+n]
		if i < len(frames)-1 {
			h[0] |= flagMore
		}
		off += n
		bufs = append(bufs, h)
		if len(f) > 0 {
			bufs = append(bufs, f)
		}
	}
	if timeout > 0 {
		p.conn.SetWriteDeadline(time.Now().Add(timeout))
	}
	w := bufs // WriteTo consumes its receiver
	_, err := w.WriteTo(p.conn)
	clear(bufs) // drop the references to the frames
	p.bufs = bufs[:0]
	return err
}

// close closes the connection: the reader's next read fails.
func (p *peer) close() error { return p.conn.Close() }
