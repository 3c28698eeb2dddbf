package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/internal/lograte"
	"github.com/kernelgate/kernelgate/internal/netlisten"
	"github.com/rs/zerolog"
)

// ListenerConfig configures the response listener. Field names follow EG's
// settings.
type ListenerConfig struct {
	// IP is advertised in `{response_address}` and bound (EG_RESPONSE_IP);
	// empty picks the first local address not matched by ProhibitedIPs,
	// falling back to 127.0.0.1.
	IP string
	// Port is tried first (EG_RESPONSE_PORT, 8877), then the next
	// PortRetries ports (EG_RESPONSE_PORT_RETRIES, 10). 0 takes any port.
	Port, PortRetries int
	// AddrAny binds all interfaces while IP is still what is advertised
	// (EG_RESPONSE_ADDR_ANY).
	AddrAny bool
	// ProhibitedIPs are regular expressions of local addresses never picked
	// as IP (EG_PROHIBITED_LOCAL_IPS).
	ProhibitedIPs []string
	// KeyBits is the RSA key size (2048; EG's launchers accept any).
	KeyBits int
	// MaxPayload bounds one callback; a bigger one is dropped (64 KiB).
	MaxPayload int
	// ReadTimeout bounds how long a callback connection may take to
	// arrive whole, so a slow or silent client holds nothing (10 s).
	ReadTimeout time.Duration
	Logger      zerolog.Logger
}

func (c *ListenerConfig) applyDefaults() {
	if c.KeyBits == 0 {
		c.KeyBits = 2048
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = 64 << 10
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 10 * time.Second
	}
}

// maxCallbacks bounds the callback connections read at once; more wait in
// the kernel's accept queue.
const maxCallbacks = 256

// Listener receives launchers' callbacks. It starts on first use, as EG's
// does, so a gateway without remote kernels opens no port. An actor owns
// the table of kernels waiting for their payload; connections are read and
// decoded on their own goroutines, so a slow or hostile one never holds up
// another kernel's callback.
type Listener struct {
	cfg ListenerConfig

	mu      sync.Mutex // guards the start-up fields below
	started bool
	keys    *KeyPair
	ln      net.Listener
	addr    string
	sys     *actor.ActorSystem
	pid     *actor.PID
	conns   sync.WaitGroup
	// ctx ends at Close: pending reads stop at once.
	ctx    context.Context
	cancel context.CancelFunc

	dropped atomic.Uint64
}

// NewListener returns a listener that starts on its first Register.
func NewListener(cfg ListenerConfig) *Listener {
	cfg.applyDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Listener{cfg: cfg, ctx: ctx, cancel: cancel}
}

// Waiter is one kernel's registration: its payload arrives on Wait.
type Waiter struct {
	l  *Listener
	id string
	ch chan Payload
}

// Register announces a kernel about to be launched. Close the waiter when
// the launch ends, however it ends.
func (l *Listener) Register(kernelID string) (*Waiter, error) {
	if err := l.start(); err != nil {
		return nil, err
	}
	w := &Waiter{l: l, id: kernelID, ch: make(chan Payload, 1)}
	l.sys.Root.Send(l.pid, &register{w: w})
	return w, nil
}

// Prepare registers req's kernel (see Register) and returns its waiter
// and the values of its launcher's placeholders, the port range the
// kernelspec's, else defPortRange, of at least minPortRange ports. Errors
// wrap proxy.ErrLaunch.
func (l *Listener) Prepare(req proxy.LaunchRequest, defPortRange string, minPortRange int) (*Waiter, LaunchArgs, error) {
	portRange, err := launchPortRange(req.Spec, defPortRange, minPortRange)
	if err != nil {
		return nil, LaunchArgs{}, fmt.Errorf("%w: %w", proxy.ErrLaunch, err)
	}
	w, err := l.Register(req.KernelID)
	if err != nil {
		return nil, LaunchArgs{}, fmt.Errorf("%w: %w", proxy.ErrLaunch, err)
	}
	return w, LaunchArgs{KernelID: req.KernelID, ResponseAddress: l.Address(), PublicKey: l.PublicKey(),
		PortRange: portRange, ResourceDir: req.Spec.Dir}, nil
}

// Address is the `{response_address}` value, ip:port; valid after a
// Register succeeded.
func (l *Listener) Address() string { return l.addr }

// PublicKey is the `{public_key}` value; valid after a Register succeeded.
func (l *Listener) PublicKey() string { return l.keys.PublicKey() }

// Dropped counts callbacks that were malformed, oversized, too slow or for
// no waiting kernel.
func (l *Listener) Dropped() uint64 { return l.dropped.Load() }

// Wait returns the kernel's payload, or ctx's error.
func (w *Waiter) Wait(ctx context.Context) (Payload, error) {
	select {
	case p := <-w.ch:
		return p, nil
	case <-ctx.Done():
		return Payload{}, ctx.Err()
	}
}

// Close withdraws the registration.
func (w *Waiter) Close() { w.l.sys.Root.Send(w.l.pid, &unregister{w: w}) }

func (l *Listener) start() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started {
		return nil
	}
	if l.ctx.Err() != nil {
		return errors.New("response listener is closed")
	}
	ip := l.cfg.IP
	if ip == "" {
		ip = localIP(l.cfg.ProhibitedIPs)
	}
	bind := ip
	if l.cfg.AddrAny {
		bind = ""
	}
	ln, err := netlisten.Retrying(bind, l.cfg.Port, l.cfg.PortRetries)
	if err != nil {
		return fmt.Errorf("response listener: %w", err)
	}
	keys, err := NewKeyPair(l.cfg.KeyBits)
	if err != nil {
		ln.Close()
		return err
	}
	actorLog := l.cfg.Logger.With().Str("component", "protoactor").Logger().Level(zerolog.WarnLevel)
	l.sys = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(zerolog.NewSlogHandler(actorLog))
	}))
	l.pid = l.sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &responseActor{waiting: make(map[string]*Waiter), log: l.cfg.Logger, dropped: &l.dropped}
	}))
	l.keys, l.ln, l.started = keys, ln, true
	l.addr = net.JoinHostPort(ip, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	l.conns.Add(1)
	go l.accept()
	l.cfg.Logger.Info().Str("response_address", l.addr).Int("key_bits", l.cfg.KeyBits).Msg("response listener started")
	return nil
}

// Close stops the listener and waits for its connections to end.
func (l *Listener) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() != nil {
		return
	}
	l.cancel()
	if !l.started {
		return
	}
	l.ln.Close()
	l.conns.Wait()
	l.sys.Root.StopFuture(l.pid).Wait()
	l.sys.Shutdown()
}

func (l *Listener) accept() {
	defer l.conns.Done()
	slots := make(chan struct{}, maxCallbacks)
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed
		}
		select {
		case slots <- struct{}{}:
		case <-l.ctx.Done():
			conn.Close()
			return
		}
		l.conns.Add(1)
		go func() {
			defer func() { <-slots; l.conns.Done() }()
			l.read(conn)
		}()
	}
}

// read takes one callback: everything up to EOF, bounded in size and time.
func (l *Listener) read(conn net.Conn) {
	defer conn.Close()
	from := conn.RemoteAddr().String()
	conn.SetReadDeadline(time.Now().Add(l.cfg.ReadTimeout))
	stop := context.AfterFunc(l.ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	b, err := io.ReadAll(io.LimitReader(conn, int64(l.cfg.MaxPayload)+1))
	switch {
	case err != nil:
		l.drop(from, fmt.Errorf("reading the callback: %w", err))
	case len(b) > l.cfg.MaxPayload:
		l.drop(from, fmt.Errorf("callback over %d bytes", l.cfg.MaxPayload))
	default:
		p, err := l.keys.Decode(b)
		if err != nil {
			l.drop(from, err)
			return
		}
		l.sys.Root.Send(l.pid, &arrived{p: p, from: from})
	}
}

func (l *Listener) drop(from string, err error) {
	if n := l.dropped.Add(1); lograte.Crossed(n-1, n) {
		l.cfg.Logger.Warn().Str("from", from).Err(err).Uint64("dropped", n).Msg("launcher callback dropped")
	}
}

// responseActor owns the table of kernels waiting for their callback.
type responseActor struct {
	waiting map[string]*Waiter
	log     zerolog.Logger
	dropped *atomic.Uint64
}

type (
	register   struct{ w *Waiter }
	unregister struct{ w *Waiter }
	arrived    struct {
		p    Payload
		from string
	}
)

func (a *responseActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *register:
		a.waiting[m.w.id] = m.w
	case *unregister:
		if a.waiting[m.w.id] == m.w {
			delete(a.waiting, m.w.id)
		}
	case *arrived:
		w, ok := a.waiting[m.p.KernelID]
		if !ok {
			n := a.dropped.Add(1)
			a.log.Warn().Str("from", m.from).Str("kernel_id", m.p.KernelID).Uint64("dropped", n).
				Msg("launcher callback for no kernel waiting for one; dropped")
			return
		}
		delete(a.waiting, m.p.KernelID)
		w.ch <- m.p // buffered for one, and the waiter is removed: never blocks
	}
}

// localIP is the first non-loopback IPv4 address of this host that no
// prohibited pattern matches, else 127.0.0.1.
func localIP(prohibited []string) string {
	var res []*regexp.Regexp
	for _, p := range prohibited {
		if re, err := regexp.Compile(p); err == nil {
			res = append(res, re)
		}
	}
	addrs, _ := net.InterfaceAddrs()
next:
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || n.IP.To4() == nil {
			continue
		}
		ip := n.IP.String()
		for _, re := range res {
			if re.MatchString(ip) {
				continue next
			}
		}
		return ip
	}
	return "127.0.0.1"
}
