package zmq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
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
	// SendTimeout bounds one send; zmq4 writes synchronously, so a kernel
	// that stops reading would otherwise block the sender. Default 10 s.
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
	// Logger receives zmq4's own log output. Default: discarded.
	Logger *log.Logger
}

// Client holds one kernel's five channels. Send is safe for concurrent use,
// although a single owner keeps message order well defined.
type Client struct {
	signer  *Signer
	opts    Options
	sockets [5]zmq4.Socket
	// peers are the connections of the sockets we send on, written to
	// directly (see Peers): one send is then one buffered write, without
	// the goroutine and context zmq4 makes for each.
	peers  [5]Peers
	cancel context.CancelFunc

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
// when every socket has completed its handshake, or with an error when ctx
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
	if opts.Logger == nil {
		opts.Logger = log.New(io.Discard, "", 0)
	}
	sctx, cancel := context.WithCancel(withLimits(context.Background(), opts.Limits))
	c := &Client{signer: signer, opts: opts, cancel: cancel, hbReply: make(chan []byte, 1)}
	if opts.Deliver == nil {
		c.inbox = make(chan Received, opts.InboxSize)
	}

	common := []zmq4.Option{
		zmq4.WithLogger(opts.Logger),
		zmq4.WithTimeout(opts.SendTimeout),
		zmq4.WithDialerRetry(50 * time.Millisecond),
		zmq4.WithDialerMaxRetries(-1),
		zmq4.WithDialerTimeout(opts.Limits.Handshake),
	}
	id := zmq4.WithID(zmq4.SocketIdentity(opts.Identity))
	ctx4 := func(ch Channel) context.Context { return WithPeers(sctx, &c.peers[ch]) }
	c.sockets[Shell] = zmq4.NewDealer(ctx4(Shell), append(common, id)...)
	c.sockets[Control] = zmq4.NewDealer(ctx4(Control), append(common, id)...)
	c.sockets[Stdin] = zmq4.NewDealer(ctx4(Stdin), append(common, id)...)
	c.sockets[IOPub] = zmq4.NewSub(sctx, common...)
	c.sockets[Heartbeat] = zmq4.NewDealer(ctx4(Heartbeat), common...)
	// Subscribing before Dial makes zmq4 send the subscription as part of
	// connecting, so nothing published after the handshake is missed.
	if err := c.sockets[IOPub].SetOption(zmq4.OptionSubscribe, ""); err != nil {
		c.abort()
		return nil, fmt.Errorf("zmq: subscribe: %w", err)
	}

	dialed := make(chan error, len(c.sockets))
	for ch, s := range c.sockets {
		go func() {
			if err := s.Dial(ci.endpoint(Channel(ch))); err != nil {
				dialed <- fmt.Errorf("zmq: dial %s: %w", Channel(ch), err)
				return
			}
			dialed <- nil
		}()
	}
	for range c.sockets {
		select {
		case err = <-dialed:
		case <-ctx.Done():
			err = fmt.Errorf("zmq: connect to kernel: %w", ctx.Err())
		}
		if err != nil {
			c.abort()
			// Dials still in flight return once the socket context is gone.
			return nil, err
		}
	}
	for ch, s := range c.sockets {
		c.readers.Add(1)
		go c.read(Channel(ch), s)
	}
	return c, nil
}

// abort tears down sockets before readers were started.
func (c *Client) abort() {
	c.closing.Store(true)
	c.cancel()
	for _, s := range c.sockets {
		s.Close()
	}
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
	if err := c.peers[ch].Send(c.signer.Serialize(m), true, c.opts.SendTimeout); err != nil {
		return fmt.Errorf("%w: send on %s: %w", ErrSocket, ch, err)
	}
	return nil
}

// read is one socket's reader. It keeps calling Recv until the socket fails
// or closes: zmq4's per-connection goroutine blocks while its queue is full,
// so a reader that stopped early would leak it.
func (c *Client) read(ch Channel, s zmq4.Socket) {
	defer c.readers.Done()
	for {
		zm, err := s.Recv()
		if err != nil {
			if c.closing.Load() {
				drain(s)
				return
			}
			c.deliver(Received{Channel: ch, Err: fmt.Errorf("%w: %s: %w", ErrSocket, ch, err)})
			return
		}
		if ch == Heartbeat {
			c.heartbeatIn(zm.Frames)
			continue
		}
		m, err := c.signer.Parse(zm.Frames)
		c.deliver(Received{Channel: ch, Msg: m, Err: err})
	}
}

// drain empties a closed socket's queue so that zmq4's connection goroutine,
// if it was blocked handing over a message, can see the close and exit.
// Recv on a closed socket picks at random between its queue and the closed
// context, so a bounded number of calls suffices.
func drain(s zmq4.Socket) {
	for range 64 {
		s.Recv()
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
	ping := []byte("ping-" + strconv.FormatUint(seq, 10))
	// The empty first frame makes the ping valid for a REP heartbeat too;
	// ipykernel's ROUTER echo device returns the frames unchanged.
	if err := c.peers[Heartbeat].Send([][]byte{{}, ping}, true, c.opts.SendTimeout); err != nil {
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

// Close closes every socket and waits for the readers to exit.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		c.cancel()
		for _, s := range c.sockets {
			s.Close()
		}
		c.readers.Wait()
	})
	return nil
}

func isFatal(err error) bool { return errors.Is(err, ErrSocket) }
