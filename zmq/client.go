package zmq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// ErrSocket wraps a failure of one of the client's sockets. The connection
// to the kernel is unusable afterwards and should be closed and redialled.
var ErrSocket = errors.New("zmq: socket failed")

// ErrClosed reports use of a closed Client.
var ErrClosed = errors.New("zmq: client closed")

// Received is one message, or one failure, from a kernel channel.
type Received struct {
	Channel Channel
	Msg     *Message
	// Err is a message that failed to parse (errors.Is ErrBadSignature, …),
	// which the client drops, or a socket failure (errors.Is ErrSocket).
	Err error
}

// Options configure a Client. The zero value is usable.
type Options struct {
	// Identity is the routing identity shared by shell, control and stdin,
	// so that the kernel routes input_request to the shell requester.
	// Default: a random uuid.
	Identity string
	// Limits bound what the kernel can make us allocate or wait for.
	// Default: DefaultLimits.
	Limits Limits
	// SendTimeout bounds one send; a kernel that stops reading would
	// otherwise block the sender. A send that times out fails its socket.
	// Default 10 s.
	SendTimeout time.Duration
	// Deliver, when set, receives every message on the socket reader
	// goroutines. It must not block. When nil, messages go to the channel
	// returned by Messages, which holds InboxSize of them; beyond that they
	// are dropped and counted (see Dropped).
	Deliver   func(Received)
	InboxSize int
	// Echo, when set, receives the seq of every heartbeat echo (see Ping),
	// on a socket reader goroutine; it must not block. Heartbeat then
	// cannot be used.
	Echo func(seq uint64)
}

// Client holds one kernel's five channels: a ZMTP connection each (see
// peer), with one reader goroutine each. Send is safe for concurrent use,
// although a single owner keeps message order well defined.
type Client struct {
	signer *Signer
	opts   Options
	peers  [5]*peer

	inbox   chan Received
	dropped atomic.Uint64

	hbMu    sync.Mutex // one heartbeat probe at a time
	hbSeq   uint64
	hbReply chan []byte

	closeOnce sync.Once
	closing   atomic.Bool
	readers   sync.WaitGroup
}

// Connect dials all five channels of the kernel described by ci. It returns
// when every channel has completed its handshake, or with an error when ctx
// ends first; kernels that are still starting are retried until then.
func Connect(ctx context.Context, ci ConnectionInfo, opts Options) (*Client, error) {
	if err := ci.Validate(); err != nil {
		return nil, err
	}
	signer, err := NewSigner(ci.SignatureScheme, ci.Key)
	if err != nil {
		return nil, err
	}
	if opts.Identity == "" {
		opts.Identity = uuid.NewString()
	}
	if opts.Limits == (Limits{}) {
		opts.Limits = DefaultLimits
	}
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = 10 * time.Second
	}
	if opts.InboxSize <= 0 {
		opts.InboxSize = 4096
	}
	c := &Client{signer: signer, opts: opts, hbReply: make(chan []byte, 1)}
	if opts.Deliver == nil {
		c.inbox = make(chan Received, opts.InboxSize)
	}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type dialed struct {
		ch  Channel
		p   *peer
		err error
	}
	results := make(chan dialed, len(c.peers))
	id := []byte(opts.Identity)
	for ch := range c.peers {
		typ, ident := typeDealer, id
		switch Channel(ch) {
		case IOPub:
			typ, ident = typeSub, nil
		case Heartbeat:
			ident = nil
		}
		addr := net.JoinHostPort(ci.IP, strconv.Itoa(ci.Port(Channel(ch))))
		go func() {
			p, err := dialPeer(dctx, addr, typ, ident, opts.Limits)
			if err != nil {
				err = fmt.Errorf("zmq: dial %s: %w", Channel(ch), err)
			}
			results <- dialed{Channel(ch), p, err}
		}()
	}
	var errs []error
	for range c.peers {
		r := <-results
		if r.err != nil {
			cancel() // the other dials end at once
			errs = append(errs, r.err)
			continue
		}
		c.peers[r.ch] = r.p
	}
	if len(errs) > 0 {
		for _, p := range c.peers {
			if p != nil {
				p.br.close()
				p.close()
			}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("zmq: connect to kernel: %w", ctx.Err())
		}
		return nil, errs[0]
	}
	for ch, p := range c.peers {
		c.readers.Add(1)
		go c.read(Channel(ch), p)
	}
	return c, nil
}

// Identity returns the routing identity of shell, control and stdin.
func (c *Client) Identity() string { return c.opts.Identity }

// Messages returns the inbox, or nil when Options.Deliver is set. It is
// never closed; stop reading when Close returns.
func (c *Client) Messages() <-chan Received { return c.inbox }

// Dropped returns how many messages were dropped because the inbox was full.
func (c *Client) Dropped() uint64 { return c.dropped.Load() }

// Send signs m and sends it on ch (shell, control or stdin).
func (c *Client) Send(ch Channel, m *Message) error {
	if c.closing.Load() {
		return ErrClosed
	}
	if ch > Stdin {
		return fmt.Errorf("zmq: cannot send on %s", ch)
	}
	if err := c.peers[ch].send(c.signer.Serialize(m), c.opts.SendTimeout); err != nil {
		return fmt.Errorf("%w: send on %s: %w", ErrSocket, ch, err)
	}
	return nil
}

// read is one channel's reader: it hands over each message as it
// completes, until the connection fails or closes.
func (c *Client) read(ch Channel, p *peer) {
	defer c.readers.Done()
	defer p.br.close()
	// The frames of each message in turn: Parse keeps the frames, not
	// the slice, so it can live on this goroutine's stack.
	var scratch [8][]byte // a Jupyter message: its identities, seven parts
	for {
		frames, err := p.readMessage(scratch[:0])
		if err != nil {
			if !c.closing.Load() {
				c.deliver(Received{Channel: ch, Err: fmt.Errorf("%w: %s: %w", ErrSocket, ch, err)})
			}
			return
		}
		if ch == Heartbeat {
			c.heartbeatIn(frames)
			continue
		}
		m, err := c.signer.Parse(frames)
		c.deliver(Received{Channel: ch, Msg: m, Err: err})
	}
}

func (c *Client) deliver(r Received) {
	if c.opts.Deliver != nil {
		c.opts.Deliver(r)
		return
	}
	select {
	case c.inbox <- r:
	default:
		c.dropped.Add(1)
	}
}

func (c *Client) heartbeatIn(frames [][]byte) {
	if len(frames) == 0 {
		return
	}
	echo := frames[len(frames)-1]
	if c.opts.Echo != nil {
		if seq, err := strconv.ParseUint(string(bytes.TrimPrefix(echo, []byte("ping-"))), 10, 64); err == nil {
			c.opts.Echo(seq)
		}
		return
	}
	select {
	case c.hbReply <- echo:
	default: // a stale reply nobody waits for
	}
}

// Ping sends one heartbeat ping carrying seq; its echo comes back to
// Options.Echo (or to Heartbeat).
func (c *Client) Ping(seq uint64) error {
	return c.PingWithin(seq, c.opts.SendTimeout)
}

// PingWithin is Ping with its own bound on the write: a caller that pings
// many kernels in turn must not wait long on one that stopped reading.
func (c *Client) PingWithin(seq uint64, timeout time.Duration) error {
	if c.closing.Load() {
		return ErrClosed
	}
	var b [24]byte
	ping := strconv.AppendUint(append(b[:0], "ping-"...), seq, 10)
	// The empty first frame makes the ping valid for a REP heartbeat too;
	// ipykernel's ROUTER echo device returns the frames unchanged.
	if err := c.peers[Heartbeat].send([][]byte{{}, ping}, timeout); err != nil {
		return fmt.Errorf("%w: heartbeat: %w", ErrSocket, err)
	}
	return nil
}

// Heartbeat sends one ping on the heartbeat channel and waits for its echo.
func (c *Client) Heartbeat(ctx context.Context) error {
	c.hbMu.Lock()
	defer c.hbMu.Unlock()
	c.hbSeq++
	if err := c.Ping(c.hbSeq); err != nil {
		return err
	}
	want := []byte("ping-" + strconv.FormatUint(c.hbSeq, 10))
	for {
		select {
		case got := <-c.hbReply:
			if bytes.Equal(got, want) {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("zmq: heartbeat: %w", ctx.Err())
		}
	}
}

// Close closes every connection and waits for the readers to exit.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		for _, p := range c.peers {
			p.close()
		}
		c.readers.Wait()
	})
	return nil
}

func isFatal(err error) bool { return errors.Is(err, ErrSocket) }
