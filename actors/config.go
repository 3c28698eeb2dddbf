package actors

import (
	"errors"
	"fmt"
	"time"

	"github.com/kernelgate/kernelgate/actors/admission"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/store"
	"github.com/kernelgate/kernelgate/kernelspecs"
	"github.com/rs/zerolog"
)

// Config is what the actor tree needs from the gateway's settings. The
// command line documents each setting; zero values get the defaults below.
type Config struct {
	// MaxKernels bounds live plus starting kernels; 0 means no limit.
	MaxKernels int
	// MaxKernelsPerUser bounds them per KERNEL_USERNAME; negative means no limit.
	MaxKernelsPerUser int
	// Access holds the global authorized/unauthorized user lists.
	Access kernelspecs.Access
	// ClientEnvs are the non-KERNEL_ variables clients may set ("*" = all).
	ClientEnvs []string
	// InheritedEnvs are variables of the gateway's environment passed to
	// every kernel.
	InheritedEnvs []string
	// BaseEnvs are variables of the gateway's environment every local
	// kernel needs to run at all (PATH, HOME, locale, …).
	BaseEnvs []string
	// DefaultUsername is KERNEL_USERNAME when the client sends none.
	DefaultUsername string
	// Secrets are the gateway's credentials: no kernel gets a variable
	// holding one (see admission.EnvConfig).
	Secrets []string

	// LaunchTimeout bounds a start, unless the request's
	// KERNEL_LAUNCH_TIMEOUT says otherwise. Default 30 s.
	LaunchTimeout time.Duration
	// ShutdownWait is how long a kernel has to exit after shutdown_request
	// before SIGTERM, and again before SIGKILL. Default 5 s in all.
	ShutdownWait time.Duration
	// RestartLimit is how many automatic restarts in a row are tried before
	// a kernel is declared dead. Default 5.
	RestartLimit int
	// StableAfter is how long a kernel must stay up for its restart count
	// to reset. Default 10 s.
	StableAfter time.Duration
	// HeartbeatInterval is how often each kernel's heartbeat channel is
	// pinged (by the gateway's one heartbeat wheel, see heartbeat.go);
	// HeartbeatTimeout is how long without an echo makes a kernel dead
	// (it is then killed and restarted). Defaults 3 s and 30 s; a
	// negative interval turns heartbeats off.
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	// LivenessInterval is how often a kernel whose end is learned only by
	// asking (a remote one: proxy.Poller) is polled while it runs with
	// heartbeats off; with them, it is polled only once its last echo is
	// older than the longer of this and the heartbeat interval, plus half
	// a heartbeat interval: an echo is proof of life, and the launcher of
	// a kernel that echoes is not asked. PollInterval is how often it is
	// polled while it is being stopped or restarted. Defaults 3 s (the
	// restarter's period in EG) and 0.5 s (EG_POLL_INTERVAL).
	LivenessInterval time.Duration
	PollInterval     time.Duration
	// KernelInfoTimeout bounds the kernel_info handshake after a restart.
	// Default 60 s.
	KernelInfoTimeout time.Duration

	// WebsocketQueue and WebsocketQueueBytes bound how far one websocket's
	// client may fall behind the kernel; past either it is sent away (1013)
	// and may reconnect for the rest. Defaults 4096 and 64 MiB.
	WebsocketQueue      int
	WebsocketQueueBytes int64
	// PingInterval is how often an idle websocket is pinged; 0 is off.
	// (Websockets that were written to are pinged within a second, to learn
	// what their client has received.)
	PingInterval time.Duration
	// SessionBuffer and SessionBufferBytes bound each kernel's output log:
	// what its sessions can still get back after a reconnect. The oldest
	// messages are dropped beyond them. Defaults 10000 and 64 MiB.
	SessionBuffer      int
	SessionBufferBytes int
	// SessionExpiry is how long a session with no websocket keeps its
	// place for a reconnect. Default 10 min.
	SessionExpiry time.Duration
	// MaxSessionsPerKernel bounds one kernel's sessions, connected or not
	// (the oldest detached one makes room for a new one); default 100.
	// MaxDetachedSessions bounds the detached sessions of all kernels;
	// default 10000.
	MaxSessionsPerKernel int
	MaxDetachedSessions  int
	// KernelInbox bounds kernel messages received and not yet forwarded by
	// the kernel actor; a kernel that publishes faster waits on TCP.
	// Default 4096.
	KernelInbox int
	// IOPubMsgRateLimit and IOPubDataRateLimit (per second, 0 = off) drop
	// a session's iopub output while it runs faster, as Jupyter Server's
	// iopub_msg_rate_limit and iopub_data_rate_limit do, measured over
	// RateLimitWindow (default 3 s).
	IOPubMsgRateLimit  float64
	IOPubDataRateLimit float64
	RateLimitWindow    time.Duration
	// KernelQueue bounds client messages waiting for a kernel that is not
	// ready or not reading. Default 1024.
	KernelQueue int
	// CullIdleTimeout culls kernels idle longer than this; 0 turns culling
	// off. CullInterval is how often kernels are checked (default 300 s);
	// CullConnected and CullBusy also cull kernels with websockets or that
	// are busy (EG's cull_* settings).
	CullIdleTimeout time.Duration
	CullInterval    time.Duration
	CullConnected   bool
	CullBusy        bool

	// Pools is the number of warm kernels to keep per kernelspec name; it
	// overrides a kernelspec's metadata.kernelgate.pool_size.
	Pools map[string]int
	// PoolLaunches bounds pooled launches in flight across all pools, so a
	// burst of takes does not fork-bomb the host. Default 2.
	PoolLaunches int
	// PoolRefillDelay is how long after a take its pool starts a
	// replacement. Default 0.5 s; negative means at once.
	PoolRefillDelay time.Duration
	// PoolIgnoredEnv are client variables a pooled kernel may ignore: a
	// request whose env has nothing else besides KERNEL_USERNAME is served
	// from the pool.
	PoolIgnoredEnv []string

	// Store, when set, records every kernel so that a restarted gateway
	// takes back the ones still running (EG_KERNEL_SESSION_PERSISTENCE).
	Store store.Store
	// KeepKernelsOnStop makes Close leave recorded kernels running for the
	// next gateway process instead of shutting them down (EG's way).
	KeepKernelsOnStop bool
	// Replication, when set, makes this gateway a replica of a group that
	// shares its kernels (see Replication); Store is then its Group, and
	// kernels are always left running at stop, for the others.
	Replication *Replication

	// Metrics receives the counters; default a fresh set.
	Metrics *Metrics

	// hb is the heartbeat wheel, made by New and closed by Close; nil:
	// heartbeats are off.
	hb *heartbeats

	// Specs is the kernelspec cache.
	Specs *kernelspecs.Cache
	// Proxies maps kernelspecs to provisioners.
	Proxies *proxy.Registry
	Logger  zerolog.Logger
}

// StartRequest asks for a new kernel: the body of POST /api/kernels.
type StartRequest struct {
	// Name is the kernelspec; empty means the default.
	Name string
	// Env is the request's env object as decoded JSON; values are checked
	// on admission, so a non-string value is an error rather than a decode
	// failure.
	Env map[string]any
	// Path is the notebook path, relative to the gateway's root dir.
	Path string
}

func (c *Config) envConfig() admission.EnvConfig {
	return admission.EnvConfig{BaseEnvs: c.BaseEnvs, InheritedEnvs: c.InheritedEnvs, Secrets: c.Secrets}
}

// validate reports what makes a configuration unusable.
func (c *Config) validate() error {
	var errs []error
	if c.Specs == nil {
		errs = append(errs, errors.New("no kernelspec cache (Specs)"))
	}
	if c.Proxies == nil {
		errs = append(errs, errors.New("no process proxies (Proxies)"))
	}
	if r := c.Replication; r != nil {
		if err := r.validate(); err != nil {
			errs = append(errs, err)
		}
		if c.Store == nil {
			c.Store = r.Group
		}
		c.KeepKernelsOnStop = true
	}
	if c.KeepKernelsOnStop && c.Store == nil {
		errs = append(errs, errors.New("KeepKernelsOnStop needs a Store: a kernel nobody recorded could never be taken back"))
	}
	if c.HeartbeatInterval > 0 && c.HeartbeatTimeout < c.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("heartbeat timeout %v is shorter than the interval %v", c.HeartbeatTimeout, c.HeartbeatInterval))
	}
	if c.MaxKernels < 0 {
		errs = append(errs, fmt.Errorf("max kernels %d is negative (0 is no limit)", c.MaxKernels))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("actors: %w", err)
	}
	return nil
}

func (c *Config) applyDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.LaunchTimeout, 30*time.Second)
	def(&c.ShutdownWait, 5*time.Second)
	def(&c.StableAfter, 10*time.Second)
	def(&c.HeartbeatInterval, 3*time.Second)
	def(&c.HeartbeatTimeout, 30*time.Second)
	def(&c.LivenessInterval, 3*time.Second)
	def(&c.PollInterval, 500*time.Millisecond)
	def(&c.KernelInfoTimeout, 60*time.Second)
	def(&c.SessionExpiry, 10*time.Minute)
	def(&c.PoolRefillDelay, 500*time.Millisecond)
	def(&c.RateLimitWindow, 3*time.Second)
	if c.CullInterval <= 0 {
		c.CullInterval = 300 * time.Second
	}
	if c.RestartLimit == 0 {
		c.RestartLimit = 5
	}
	defInt := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	defInt(&c.WebsocketQueue, 4096)
	defInt(&c.SessionBuffer, 10000)
	defInt(&c.SessionBufferBytes, 64<<20)
	defInt(&c.KernelQueue, 1024)
	defInt(&c.KernelInbox, 4096)
	defInt(&c.MaxSessionsPerKernel, 100)
	defInt(&c.MaxDetachedSessions, 10000)
	defInt(&c.PoolLaunches, 2)
	if c.WebsocketQueueBytes <= 0 {
		c.WebsocketQueueBytes = 64 << 20
	}
	if c.Metrics == nil {
		c.Metrics = &Metrics{}
	}
	if c.Replication != nil {
		c.Replication.applyDefaults()
	}
}
