package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/local"
	"github.com/kernelgate/kernelgate/actors/proxy/ports"
	"github.com/kernelgate/kernelgate/actors/store"
	kghttp "github.com/kernelgate/kernelgate/http"
	"github.com/kernelgate/kernelgate/internal/netlisten"
	"github.com/kernelgate/kernelgate/internal/privatedir"
	"github.com/kernelgate/kernelgate/kernelspecs"
	"github.com/rs/zerolog"
)

// serveConfig is every setting of `kernelgate serve`. Settings Enterprise
// Gateway has keep its variable names and defaults; ours use KERNELGATE_.
type serveConfig struct {
	IP          string
	Port        int
	PortRetries int
	BaseURL     string
	AuthToken   string

	AllowOrigin, AllowCredentials, AllowHeaders, AllowMethods, ExposeHeaders, MaxAge string

	ListKernels       bool
	MaxKernels        int
	MaxKernelsPerUser int
	DefaultKernelName string
	AllowedKernels    []string
	AuthorizedUsers   []string
	UnauthorizedUsers []string
	ClientEnvs        []string
	InheritedEnvs     []string

	LaunchTimeout     time.Duration
	KernelInfoTimeout time.Duration

	BaseEnvs          []string
	RuntimeDir        string
	LocalPortRange    string
	ShutdownWait      time.Duration
	RestartLimit      int
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	MaxBodySize       int
	MaxConns          int
	MaxConnsPerIP     int
	MetricsAddr       string
	StopTimeout       time.Duration
	Persistence       bool
	PersistenceRoot   string
	KeepKernels       bool
	MetricsAuth       bool
	Dashboard         bool
	Pprof             bool
	UserIsolation     bool
	UserHeader        string

	Pool           map[string]int
	PoolLaunches   int
	PoolRefill     time.Duration
	PoolIgnoredEnv []string

	CullIdleTimeout time.Duration
	CullInterval    time.Duration
	CullConnected   bool
	CullBusy        bool

	WSPingInterval     time.Duration
	WSPongTimeout      time.Duration
	WSReadLimit        int
	WSQueue            int
	WSQueueBytes       int
	SessionBuffer      int
	SessionBufferBytes int
	SessionExpiry      time.Duration
	MaxSessions        int
	MaxDetached        int
	KernelInbox        int
	IOPubMsgRate       int
	IOPubDataRate      int
	RateLimitWindow    time.Duration
	LogLevel           string
	LogFormat          string

	// InstanceID names this gateway: in its replica group, and on the
	// Kubernetes objects it makes.
	InstanceID  string
	Remote      remoteConfig
	Kubernetes  kubernetesConfig
	Replication replicationConfig
	Security    securityConfig
}

// defaultDataDir is Jupyter's data directory, EG's persistence root.
func defaultDataDir() string {
	if d := os.Getenv("JUPYTER_DATA_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "jupyter")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "jupyter")
}

func defaultRuntimeDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "kernelgate")
	}
	return filepath.Join(os.TempDir(), "kernelgate-"+strconv.Itoa(os.Getuid()))
}

func serveSettings(c *serveConfig, stderr io.Writer) *settings {
	s := newSettings("serve", stderr)
	s.String(&c.IP, "ip", "127.0.0.1", "address to listen on", "EG_IP", "KG_IP")
	s.Int(&c.Port, "port", 8888, "port to listen on", "EG_PORT", "KG_PORT")
	s.Int(&c.PortRetries, "port-retries", 50, "further ports to try when the port is taken", "EG_PORT_RETRIES", "KG_PORT_RETRIES")
	s.String(&c.BaseURL, "base-url", "/", "URL prefix of every route", "EG_BASE_URL", "KG_BASE_URL")
	s.String(&c.AuthToken, "auth-token", "", "shared token (?token= or 'Authorization: token …'); its holder is trusted to name its user; the only check without identity providers; empty = none (prefer the variable or --auth-token-file: flags show in ps)", "EG_AUTH_TOKEN", "KG_AUTH_TOKEN")
	securitySettings(s, &c.Security)
	s.String(&c.AllowOrigin, "allow-origin", "", "Access-Control-Allow-Origin; also the origin check ('*' allows any)", "EG_ALLOW_ORIGIN", "KG_ALLOW_ORIGIN")
	s.String(&c.AllowCredentials, "allow-credentials", "", "Access-Control-Allow-Credentials", "EG_ALLOW_CREDENTIALS", "KG_ALLOW_CREDENTIALS")
	s.String(&c.AllowHeaders, "allow-headers", "", "Access-Control-Allow-Headers", "EG_ALLOW_HEADERS", "KG_ALLOW_HEADERS")
	s.String(&c.AllowMethods, "allow-methods", "", "Access-Control-Allow-Methods", "EG_ALLOW_METHODS", "KG_ALLOW_METHODS")
	s.String(&c.ExposeHeaders, "expose-headers", "", "Access-Control-Expose-Headers", "EG_EXPOSE_HEADERS", "KG_EXPOSE_HEADERS")
	s.String(&c.MaxAge, "max-age", "", "Access-Control-Max-Age", "EG_MAX_AGE", "KG_MAX_AGE")
	s.Bool(&c.ListKernels, "list-kernels", false, "allow GET /api/kernels and /api/sessions (Jupyter Server clients need it)", "EG_LIST_KERNELS", "KG_LIST_KERNELS")
	s.Int(&c.MaxKernels, "max-kernels", 0, "most kernels, running and starting; 0 = no limit", "EG_MAX_KERNELS", "KG_MAX_KERNELS")
	s.Int(&c.MaxKernelsPerUser, "max-kernels-per-user", -1, "most kernels per KERNEL_USERNAME; -1 = no limit", "EG_MAX_KERNELS_PER_USER")
	s.String(&c.DefaultKernelName, "default-kernel-name", "python3", "kernelspec used when a request names none", "EG_DEFAULT_KERNEL_NAME", "KG_DEFAULT_KERNEL_NAME")
	s.List(&c.AllowedKernels, "allowed-kernels", nil, "comma list of the only kernelspecs served; empty = all", "EG_ALLOWED_KERNELS")
	s.List(&c.AuthorizedUsers, "authorized-users", nil, "comma list of the only users who may start kernels; empty = all", "EG_AUTHORIZED_USERS")
	s.List(&c.UnauthorizedUsers, "unauthorized-users", []string{"root"}, "comma list of users who may not start kernels (wins over authorized)", "EG_UNAUTHORIZED_USERS")
	s.List(&c.ClientEnvs, "client-envs", nil, "comma list of non-KERNEL_ variables clients may set ('*' = any)", "EG_CLIENT_ENVS", "EG_ENV_WHITELIST")
	s.List(&c.InheritedEnvs, "inherited-envs", nil, "comma list of the gateway's variables passed to every kernel", "EG_INHERITED_ENVS", "EG_ENV_PROCESS_WHITELIST")
	s.Seconds(&c.LaunchTimeout, "kernel-launch-timeout", 30*time.Second, "seconds a kernel may take to start (a request's KERNEL_LAUNCH_TIMEOUT overrides)", "EG_KERNEL_LAUNCH_TIMEOUT")
	s.Seconds(&c.KernelInfoTimeout, "kernel-info-timeout", 60*time.Second, "seconds to wait for kernel_info after a (re)start", "EG_KERNEL_INFO_TIMEOUT")

	s.List(&c.BaseEnvs, "base-envs", []string{"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL"},
		"the gateway's variables every local kernel gets so that it can run (unlike EG, kernels never inherit the whole environment)", "KERNELGATE_BASE_ENVS")
	s.String(&c.RuntimeDir, "runtime-dir", defaultRuntimeDir(), "directory for kernel connection files: made 0700; a symlink or another user's directory is refused ($XDG_RUNTIME_DIR/kernelgate when that is set)", "KERNELGATE_RUNTIME_DIR")
	s.String(&c.LocalPortRange, "local-port-range", ports.DefaultLocal.String(),
		"ports for local kernels' channels, L..U (keep it clear of the ephemeral range)", "KERNELGATE_LOCAL_PORT_RANGE")
	s.Seconds(&c.ShutdownWait, "shutdown-wait", 5*time.Second, "seconds a kernel has to exit after shutdown_request (SIGTERM at half, SIGKILL at the end)", "KERNELGATE_SHUTDOWN_WAIT")
	s.Int(&c.RestartLimit, "restart-limit", 5, "automatic restarts in a row before a kernel is declared dead", "KERNELGATE_RESTART_LIMIT")
	s.Seconds(&c.HeartbeatInterval, "heartbeat-interval", 3*time.Second, "seconds between heartbeat probes; negative = off", "KERNELGATE_HEARTBEAT_INTERVAL")
	s.Seconds(&c.HeartbeatTimeout, "heartbeat-timeout", 30*time.Second, "seconds without a heartbeat echo before a kernel is killed and restarted", "KERNELGATE_HEARTBEAT_TIMEOUT")
	s.Int(&c.MaxBodySize, "max-body-size", 1<<20, "largest request body in bytes", "KERNELGATE_MAX_BODY_SIZE")
	s.Int(&c.MaxConns, "max-conns", 0, "most connections open at once (one more is answered 503); 0 = half the open-file limit, so kernels keep the other half", "KERNELGATE_MAX_CONNS")
	s.Int(&c.MaxConnsPerIP, "max-conns-per-ip", 1024, "most connections open at once from one client address (one more is answered 429); 0 = no limit", "KERNELGATE_MAX_CONNS_PER_IP")
	s.String(&c.MetricsAddr, "metrics-addr", "", "host:port of a second listener serving only /metrics, /healthz and /readyz (answered while the API's listener is flooded); empty = off", "KERNELGATE_METRICS_ADDR")
	s.Counts(&c.Pool, "pool", "warm kernels kept ready per kernelspec, e.g. python3=4,ir=1 (overrides a kernelspec's metadata.kernelgate.pool_size)", "KERNELGATE_POOL")
	s.Int(&c.PoolLaunches, "pool-launches", 2, "pooled kernels launched at once, across all pools", "KERNELGATE_POOL_LAUNCHES")
	s.Seconds(&c.PoolRefill, "pool-refill-delay", 500*time.Millisecond, "seconds after a take before its pool launches a replacement (so it does not slow the taker's first requests); negative = at once", "KERNELGATE_POOL_REFILL_DELAY")
	s.List(&c.PoolIgnoredEnv, "pool-ignored-env", []string{"KERNEL_LAUNCH_TIMEOUT", "KERNEL_WORKING_DIR"},
		"client variables a pooled kernel may ignore; a start whose env has nothing else but KERNEL_USERNAME gets a warm kernel", "KERNELGATE_POOL_IGNORED_ENV")
	s.Seconds(&c.CullIdleTimeout, "cull-idle-timeout", 0, "seconds of inactivity after which a kernel is shut down; 0 = never", "EG_CULL_IDLE_TIMEOUT")
	s.Seconds(&c.CullInterval, "cull-interval", 300*time.Second, "seconds between checks for idle kernels", "EG_CULL_INTERVAL")
	s.Bool(&c.CullConnected, "cull-connected", false, "also cull idle kernels that have websockets", "EG_CULL_CONNECTED")
	s.Bool(&c.CullBusy, "cull-busy", false, "also cull kernels that are busy", "EG_CULL_BUSY")
	s.Seconds(&c.WSPingInterval, "ws-ping-interval", 30*time.Second, "seconds between websocket pings; 0 = off", "EG_WS_PING_INTERVAL_SECS")
	s.Seconds(&c.WSPongTimeout, "ws-pong-timeout", 0, "seconds a pinged websocket may send nothing before it is closed as dead (half-open); 0 = max(3 pings, 30)", "KERNELGATE_WS_PONG_TIMEOUT")
	s.Int(&c.WSReadLimit, "ws-read-limit", 10<<20, "largest websocket message a client may send, in bytes", "KERNELGATE_WS_READ_LIMIT")
	s.Int(&c.WSQueue, "ws-queue", 4096, "messages that cannot be merged (anything but stream output and display updates) a websocket may fall behind before it is disconnected (1013)", "KERNELGATE_WS_QUEUE")
	s.Int(&c.WSQueueBytes, "ws-queue-bytes", 64<<20, "bytes a websocket may fall behind, counting what it is merged into, before it is disconnected (1013)", "KERNELGATE_WS_QUEUE_BYTES")
	s.Int(&c.SessionBuffer, "session-buffer", 10000, "messages of each kernel's recent output kept for its clients' reconnects, shared by its sessions (oldest dropped)", "KERNELGATE_SESSION_BUFFER")
	s.Int(&c.SessionBufferBytes, "session-buffer-bytes", 64<<20, "bytes of each kernel's recent output kept for its clients' reconnects", "KERNELGATE_SESSION_BUFFER_BYTES")
	s.Seconds(&c.SessionExpiry, "session-expiry", 10*time.Minute, "seconds a session without a websocket keeps its place for a reconnect", "KERNELGATE_SESSION_EXPIRY")
	s.Int(&c.MaxSessions, "max-sessions-per-kernel", 100, "most sessions (client session ids) of one kernel, connected or not; the oldest detached one makes room for a new one", "KERNELGATE_MAX_SESSIONS_PER_KERNEL")
	s.Int(&c.MaxDetached, "max-detached-sessions", 10000, "most sessions waiting for their client to come back, across all kernels (the oldest go first)", "KERNELGATE_MAX_DETACHED_SESSIONS")
	s.Int(&c.KernelInbox, "kernel-inbox", 4096, "kernel messages received and not yet forwarded, per kernel; a kernel that publishes faster waits on TCP", "KERNELGATE_KERNEL_INBOX")
	s.Bool(&c.UserIsolation, "user-isolation", false, "bind each kernel to the KERNEL_USERNAME that started it; requests name their user in --user-header and see only their kernels (implied, without the header, when users are verified by JupyterHub or OIDC)", "KERNELGATE_USER_ISOLATION")
	s.String(&c.UserHeader, "user-header", "X-Kernelgate-User", "request header in which a trusted caller (the shared token's holder) names its user (set it from a trusted proxy or Jupyter Server's gateway headers; whoever holds the token can name anyone)", "KERNELGATE_USER_HEADER")
	s.Int(&c.IOPubMsgRate, "iopub-msg-rate-limit", 0, "iopub messages per second a client may get before output is dropped (Jupyter Server's iopub_msg_rate_limit); 0 = no limit", "KERNELGATE_IOPUB_MSG_RATE_LIMIT")
	s.Int(&c.IOPubDataRate, "iopub-data-rate-limit", 0, "iopub bytes per second a client may get before output is dropped (iopub_data_rate_limit); 0 = no limit", "KERNELGATE_IOPUB_DATA_RATE_LIMIT")
	s.Seconds(&c.RateLimitWindow, "rate-limit-window", 3*time.Second, "seconds over which the iopub rates are averaged", "KERNELGATE_RATE_LIMIT_WINDOW")
	s.Bool(&c.MetricsAuth, "metrics-auth", false, "require the token on /metrics (open by default, like /healthz)", "KERNELGATE_METRICS_AUTH")
	s.Bool(&c.Dashboard, "dashboard", true, "serve the operator dashboard at <base-url>dashboard/, behind the token", "KERNELGATE_DASHBOARD")
	s.Bool(&c.Pprof, "pprof", false, "serve Go's profiles (heap, CPU, goroutines) at <base-url>debug/pprof/, behind the token, for admins (go tool pprof)", "KERNELGATE_PPROF")
	s.Bool(&c.Persistence, "kernel-session-persistence", false, "record every kernel so that a restarted gateway takes back the ones still running (local kernels then outlive the gateway process)", "EG_KERNEL_SESSION_PERSISTENCE")
	s.String(&c.PersistenceRoot, "persistence-root", defaultDataDir(), "directory whose kernel_sessions/ holds the records (0700; they include the kernels' keys)", "EG_PERSISTENCE_ROOT")
	s.Bool(&c.KeepKernels, "keep-kernels-on-stop", false, "on SIGTERM/SIGINT leave recorded kernels running for the next gateway process instead of shutting them down (needs --kernel-session-persistence)", "KERNELGATE_KEEP_KERNELS_ON_STOP")
	s.Seconds(&c.StopTimeout, "stop-timeout", 30*time.Second, "seconds to shut kernels down when the gateway stops", "KERNELGATE_STOP_TIMEOUT")
	host, _ := os.Hostname()
	s.String(&c.InstanceID, "instance-id", host, "this gateway's name: in its replica group (kernel leases, members) and on the Kubernetes pods and namespaces it makes (label kernelgate.io/instance), of which it deletes at start those no kernel claims; keep it stable across restarts and unique among gateways", "KERNELGATE_INSTANCE_ID")
	remoteSettings(s, &c.Remote)
	replicationSettings(s, &c.Replication)
	kubernetesSettings(s, &c.Kubernetes)
	s.String(&c.LogLevel, "log-level", "info", "debug, info, warn or error", "KERNELGATE_LOG_LEVEL")
	s.String(&c.LogFormat, "log-format", "json", "json or console", "KERNELGATE_LOG_FORMAT")
	return s
}

func runServe(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == "--help-markdown" {
		if err := writeConfigurationDoc(stdout); err != nil {
			fmt.Fprintln(stderr, "kernelgate serve:", err)
			return 1
		}
		return 0
	}
	var c serveConfig
	st := serveSettings(&c, stderr)
	if code, ok := st.load(args); !ok {
		return code
	}
	if st.flagged["auth-token"] {
		fmt.Fprintln(stderr, "kernelgate serve: warning: --auth-token is visible to every local user (ps, /proc/<pid>/cmdline): use --auth-token-file or EG_AUTH_TOKEN")
	}
	c.Security.envSecrets = takeSecretEnvs()
	if err := hideProcess(); err != nil {
		fmt.Fprintln(stderr, "kernelgate serve:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	signal.Ignore(syscall.SIGHUP)
	if err := serve(ctx, c, stdout, stderr, nil); err != nil {
		fmt.Fprintln(stderr, "kernelgate serve:", err)
		return 1
	}
	return 0
}

// serve runs the gateway until ctx ends. ready, when set, gets the address
// it listens on.
func serve(ctx context.Context, c serveConfig, stdout, stderr io.Writer, ready func(net.Addr)) error {
	log, err := newLogger(c, stderr)
	if err != nil {
		return err
	}
	replicated, err := c.replicated()
	if err != nil {
		return err
	}
	sec, err := buildSecurity(&c, log)
	if err != nil {
		return err
	}
	defer sec.identity.Close()
	// Connection files and records hold kernels' keys: their directories
	// must be this user's alone (a planted directory or symlink in /tmp
	// would hand them to someone else). Under impersonation other users
	// pass through the runtime directory to theirs.
	ensureRuntime := privatedir.Ensure
	if sec.impersonate != nil {
		ensureRuntime = privatedir.EnsurePassable
	}
	if err := ensureRuntime(c.RuntimeDir); err != nil {
		return fmt.Errorf("runtime dir: %w", err)
	}
	if c.Persistence && c.Replication.Store == storeFile {
		if err := privatedir.Ensure(filepath.Join(c.PersistenceRoot, "kernel_sessions")); err != nil {
			return fmt.Errorf("persistence root: %w", err)
		}
	}
	files, err := raiseFileLimit()
	if err != nil {
		log.Warn().Err(err).Msg("cannot read the open-file limit")
	}
	if c.MaxConns == 0 {
		c.MaxConns = int(max(files/2, 16))
	}
	log.Info().Uint64("open_files", files).Int("max_conns", c.MaxConns).Int("max_conns_per_ip", c.MaxConnsPerIP).Msg("connection limits")
	localPorts, err := ports.ParseRange(c.LocalPortRange, minLocalPorts)
	if err == nil && localPorts.Any() {
		err = fmt.Errorf("%w: local kernels need a range of their own (0..0 would be the ephemeral range)", ports.ErrRange)
	}
	if err != nil {
		return fmt.Errorf("local port range: %w", err)
	}
	allocator := ports.NewAllocator(c.IP, localPorts, time.Minute)
	username := "kernelgate"
	if u, err := user.Current(); err == nil {
		username = u.Username
	}
	specs := kernelspecs.NewCache(kernelspecs.CacheOptions{Default: c.DefaultKernelName, Allowed: c.AllowedKernels, Logger: log})
	access := kernelspecs.Access{Authorized: c.AuthorizedUsers, Unauthorized: c.UnauthorizedUsers}
	if c.KeepKernels && !c.Persistence {
		return errors.New("--keep-kernels-on-stop needs --kernel-session-persistence: a kernel nobody recorded could never be taken back")
	}
	group, err := c.kernelStore(log)
	if err != nil {
		return err
	}
	ln, err := netlisten.Retrying(c.IP, c.Port, c.PortRetries)
	if err != nil {
		return err
	}
	defer ln.Close() // fasthttp closes it too; this covers the failures before
	var records store.Store
	var replication *actors.Replication
	replicaToken := ""
	if c.Persistence {
		records = group
		if replicated {
			if replication, replicaToken, err = c.replication(group, ln.Addr(), sec.peerTLS); err != nil {
				return err
			}
		}
	}
	localProxy := &local.Provisioner{Ports: allocator, RuntimeDir: c.RuntimeDir, Detached: c.Persistence, Impersonate: sec.impersonate}
	proxies := proxy.NewRegistry(localProxy)
	proxies.Register(localProxy, local.ClassNames...)
	listener := responseListener(c.Remote, log)
	defer listener.Close()
	closeSSH := sshProxy(c.Remote, listener, proxies, log)
	defer closeSSH()
	closeFarm := farmProxy(c.Remote, listener, proxies, log)
	defer closeFarm()
	collectors, closeK8s, err := kubernetesProxy(c.Kubernetes, c.InstanceID, c.Security.ProhibitedUIDs, c.Security.ProhibitedGIDs, c.Remote, listener, proxies, log)
	if err != nil {
		return err
	}
	defer closeK8s()
	gw, err := actors.New(actors.Config{
		MaxKernels: c.MaxKernels, MaxKernelsPerUser: c.MaxKernelsPerUser, Access: access,
		ClientEnvs: c.ClientEnvs, InheritedEnvs: c.InheritedEnvs, BaseEnvs: c.BaseEnvs,
		DefaultUsername: username, Secrets: sec.secrets, LaunchTimeout: c.LaunchTimeout, ShutdownWait: c.ShutdownWait,
		RestartLimit: c.RestartLimit, HeartbeatInterval: c.HeartbeatInterval, HeartbeatTimeout: c.HeartbeatTimeout,
		LivenessInterval: c.Remote.LivenessInterval, PollInterval: c.Remote.PollInterval,
		KernelInfoTimeout: c.KernelInfoTimeout, Specs: specs, Proxies: proxies, Logger: log,
		WebsocketQueue: c.WSQueue, WebsocketQueueBytes: int64(c.WSQueueBytes),
		SessionBuffer: c.SessionBuffer, SessionBufferBytes: c.SessionBufferBytes, SessionExpiry: c.SessionExpiry,
		MaxSessionsPerKernel: c.MaxSessions, MaxDetachedSessions: c.MaxDetached,
		CullIdleTimeout: c.CullIdleTimeout, CullInterval: c.CullInterval, CullConnected: c.CullConnected, CullBusy: c.CullBusy,
		KernelInbox: c.KernelInbox, IOPubMsgRateLimit: float64(c.IOPubMsgRate), IOPubDataRateLimit: float64(c.IOPubDataRate),
		RateLimitWindow: c.RateLimitWindow, Store: records, Replication: replication, PingInterval: c.WSPingInterval, KeepKernelsOnStop: c.KeepKernels, Pools: c.Pool, PoolLaunches: c.PoolLaunches, PoolRefillDelay: c.PoolRefill, PoolIgnoredEnv: c.PoolIgnoredEnv,
	})
	if err != nil {
		return err
	}
	srv := kghttp.New(kghttp.Config{
		BaseURL: c.BaseURL, AuthToken: c.AuthToken, AllowOrigin: c.AllowOrigin, AllowCredentials: c.AllowCredentials,
		AllowHeaders: c.AllowHeaders, AllowMethods: c.AllowMethods, ExposeHeaders: c.ExposeHeaders, MaxAge: c.MaxAge,
		ListKernels: c.ListKernels, MaxBodySize: c.MaxBodySize, Access: access, Version: version, Logger: log,
		MetricsAuth: c.MetricsAuth, Dashboard: c.Dashboard, Pprof: c.Pprof, UserIsolation: c.UserIsolation, UserHeader: c.UserHeader,
		Identity: identityOrNil(sec.identity), AdminUsers: c.Security.AdminUsers, TLS: sec.tls,
		MaxConns: c.MaxConns, MaxConnsPerIP: c.MaxConnsPerIP, ReplicaToken: replicaToken, Collectors: collectors,
		Websocket: kghttp.WebsocketConfig{PingInterval: c.WSPingInterval, PongTimeout: c.WSPongTimeout, ReadLimit: int64(c.WSReadLimit)},
	}, gw, specs)

	var metricsLn net.Listener
	if c.MetricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", c.MetricsAddr); err != nil {
			ln.Close()
			gw.Close(c.StopTimeout)
			return fmt.Errorf("metrics listener: %w", err)
		}
	}
	if len(specs.Snapshot().Names) == 0 {
		log.Warn().Msg("no kernelspecs found (install python3-ipykernel or set JUPYTER_PATH)")
	}
	if c.AuthToken == "" && sec.identity == nil {
		log.Warn().Msg("no auth token set: anyone who reaches this port can run code")
	}
	scheme := "http"
	if sec.tls != nil {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "kernelgate %s is available at %s://%s%s\n", version, scheme, ln.Addr(), strings.TrimRight(c.BaseURL, "/"))
	if metricsLn != nil {
		fmt.Fprintf(stdout, "kernelgate metrics, health and readiness at http://%s\n", metricsLn.Addr())
	}
	if c.Dashboard {
		base := strings.Trim(c.BaseURL, "/")
		if base != "" {
			base += "/"
		}
		fmt.Fprintf(stdout, "kernelgate dashboard at http://%s/%sdashboard/\n", ln.Addr(), base)
	}
	if ready != nil {
		ready(ln.Addr())
	}

	specCtx, stopSpecs := context.WithCancel(ctx)
	specsDone := make(chan struct{})
	go func() { specs.Run(specCtx); close(specsDone) }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	metricsDone := make(chan struct{})
	if metricsLn != nil {
		go func() { srv.ServeMetrics(metricsLn); close(metricsDone) }()
	} else {
		close(metricsDone)
	}

	select {
	case <-ctx.Done():
		log.Info().Msg("stopping")
	case err = <-serveErr:
		log.Error().Err(err).Msg("http server failed")
	}
	// The whole stop fits in StopTimeout, whatever clients do: half for
	// requests in flight and websockets, the rest (at least) for kernels.
	deadline := time.Now().Add(c.StopTimeout)
	stopSpecs()
	var closeErr error
	closed := false
	if replication != nil {
		// A replica leaves its kernels running for the group, says goodbye
		// to its clients (who reconnect to the others), then keeps answering
		// the others while they ask where those clients' sessions stood.
		closeErr, closed = gw.Close(c.StopTimeout/2), true
		handoverWait(gw, time.Now().Add(c.StopTimeout/4))
	}
	httpCtx, cancel := context.WithDeadline(context.Background(), time.Now().Add(c.StopTimeout/2))
	srv.Shutdown(httpCtx)
	cancel()
	// fasthttp closes only listeners its Serve has registered; a stop that
	// comes before Serve got that far would leave it accepting forever.
	ln.Close()
	if metricsLn != nil {
		metricsLn.Close()
	}
	if serveFailed := err != nil; !serveFailed {
		<-serveErr
	}
	<-metricsDone
	if !closed {
		closeErr = gw.Close(max(time.Until(deadline), time.Second))
	}
	<-specsDone
	if err == nil {
		err = closeErr
	}
	return err
}

// raiseFileLimit raises the soft open-file limit to the hard one, as Go
// servers do (the runtime does so too; this makes it explicit and reads the
// result), and returns the limit in force.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024, fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			lim = raised
		}
	}
	return lim.Cur, nil
}

// minLocalPorts is the smallest local port range: 20 kernels' worth.
const minLocalPorts = 100

func newLogger(c serveConfig, stderr io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(c.LogLevel)
	if err != nil || c.LogLevel == "" {
		return zerolog.Logger{}, fmt.Errorf("log level %q: want debug, info, warn or error", c.LogLevel)
	}
	var w io.Writer = stderr
	switch c.LogFormat {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.RFC3339}
	default:
		return zerolog.Logger{}, fmt.Errorf("log format %q: want json or console", c.LogFormat)
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}
