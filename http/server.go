package http

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/internal/identity"
	"github.com/kernelgate/kernelgate/internal/lograte"
	"github.com/kernelgate/kernelgate/internal/netlisten"
	"github.com/kernelgate/kernelgate/kernelspecs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// Config configures the HTTP front. Zero values are EG's defaults.
type Config struct {
	// BaseURL prefixes every route ("/" by default).
	BaseURL string
	// AuthToken (EG_AUTH_TOKEN), when set, is accepted on every API call
	// (?token= or "Authorization: token …"); its holder is trusted to say
	// for whom it acts (see auth.go). Without Identity it is the only
	// check, as in EG.
	AuthToken string
	// Identity verifies users' tokens (JupyterHub, OIDC: internal/identity).
	// When set, every API call needs the shared token or a token Identity
	// vouches for (else 403; 503 when a provider cannot answer), and
	// kernels belong to the verified user, as under UserIsolation but
	// without trusting a header. Nil keeps EG's check.
	Identity identity.Authenticator
	// AdminUsers see and act on every user's kernels, as JupyterHub admins
	// and members of OIDC admin groups do.
	AdminUsers []string
	// CORS response headers, each sent when non-empty. AllowOrigin also
	// drives the origin check.
	AllowOrigin, AllowCredentials, AllowHeaders, AllowMethods, ExposeHeaders, MaxAge string
	// ListKernels allows GET /api/kernels and GET /api/sessions.
	ListKernels bool
	// MaxBodySize bounds request bodies, in bytes.
	MaxBodySize int
	// Access holds the user lists for the ?user= kernelspec filter.
	Access kernelspecs.Access
	// UserIsolation binds kernels to the user that started them; every
	// trusted request names its user in the UserHeader header (see
	// isolation.go). Identity implies isolation.
	UserIsolation bool
	UserHeader    string
	// MetricsAuth puts /metrics behind the token (it is open by default,
	// like the health endpoints).
	MetricsAuth bool
	// MaxConns bounds the connections open at once (0: no bound); one
	// beyond it is answered 503 and closed. MaxConnsPerIP bounds them per
	// client address (0: no bound); one beyond it is answered 429.
	MaxConns      int
	MaxConnsPerIP int
	// ReplicaToken is the secret a replica group shares for its internal
	// endpoints (see replicas.go); empty outside a group, which turns them
	// off.
	ReplicaToken string
	// Websocket tunes kernel websockets.
	Websocket WebsocketConfig
	// TLS, when set, serves the API (REST and websockets) over TLS
	// (internal/tlsfiles: EG_CERTFILE, EG_KEYFILE, EG_CLIENT_CA). The
	// metrics listener stays plain HTTP, for probes and scrapers.
	TLS *tls.Config
	// Dashboard serves the operator dashboard at <base>dashboard/, behind
	// the token (see dashboard.go).
	Dashboard bool
	// Pprof serves Go's profiles (heap, CPU, goroutines, …) at
	// <base>debug/pprof/, behind the token, to callers who see every
	// kernel. Off by default.
	Pprof bool
	// Version is reported by GET /api.
	Version string
	// Collectors are served on /metrics beside the gateway's own (a
	// process proxy's, say).
	Collectors []prometheus.Collector
	Logger     zerolog.Logger
}

// Server serves the gateway's HTTP API.
type Server struct {
	cfg      Config
	gw       *actors.Gateway
	specs    *kernelspecs.Cache
	sessions *sessionStore
	srv      *fasthttp.Server
	metrics  *metrics

	wsWriteBuffers sync.Pool     // shared by idle websockets
	badFrames      atomic.Uint64 // malformed client frames dropped
	redact         *redactor
	// auth checks tokens when identity providers are configured: the shared
	// token, then Config.Identity. Nil means EG's check (sharedToken).
	auth            identity.Authenticator
	authUnavailable atomic.Uint64 // requests refused because a provider was down

	// The listener's guard: connections open, refused and accept errors
	// retried.
	listener      atomic.Pointer[netlisten.GuardedListener]
	connsRefused  atomic.Uint64
	acceptRetries atomic.Uint64

	// Live websockets: fasthttp neither tracks nor waits for hijacked
	// connections, so the server does.
	wsMu       sync.Mutex
	wsLive     map[*wsConn]struct{}
	wsWG       sync.WaitGroup
	closing    bool
	metricsSrv *fasthttp.Server

	dash *dashboard // nil when the dashboard is off
}

// New returns a server for gw.
func New(cfg Config, gw *actors.Gateway, specs *kernelspecs.Cache) *Server {
	cfg.BaseURL = "/" + strings.Trim(cfg.BaseURL, "/")
	if cfg.BaseURL != "/" {
		cfg.BaseURL += "/"
	}
	if cfg.UserHeader == "" {
		cfg.UserHeader = "X-Kernelgate-User"
	}
	if cfg.MaxBodySize <= 0 {
		cfg.MaxBodySize = 1 << 20
	}
	if cfg.Websocket.ReadLimit <= 0 {
		cfg.Websocket.ReadLimit = 10 << 20
	}
	s := &Server{cfg: cfg, gw: gw, specs: specs, sessions: newSessionStore(), wsLive: make(map[*wsConn]struct{}),
		redact: newRedactor(cfg.AuthToken)}
	if cfg.Identity != nil {
		var chain identity.Chain
		if shared, err := identity.NewShared(cfg.AuthToken); err == nil { // err: no shared token
			chain = append(chain, shared)
		}
		s.auth = append(chain, cfg.Identity)
	}
	s.metrics = newMetrics(gw, s)
	if cfg.Dashboard {
		s.dash = newDashboard(s)
	}
	s.srv = s.fasthttpServer(s.handle)
	s.srv.MaxConnsPerIP = cfg.MaxConnsPerIP
	// Websockets are closed by kernelgate, not when their handler returns:
	// without this, fasthttp ignores Close on a hijacked connection and a
	// closed websocket's socket stays open and read.
	s.srv.KeepHijackedConns = true
	return s
}

// fasthttpServer is the HTTP server of the API and of the metrics listener.
func (s *Server) fasthttpServer(h fasthttp.RequestHandler) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:            h,
		Name:               "kernelgate",
		MaxRequestBodySize: s.cfg.MaxBodySize,
		// Large cookies and tokens ride in headers.
		ReadBufferSize:  64 << 10,
		ReadTimeout:     2 * time.Minute,
		WriteTimeout:    2 * time.Minute,
		IdleTimeout:     5 * time.Minute,
		ErrorHandler:    s.transportError,
		CloseOnShutdown: true,
		// Also bounds how long fasthttp's worker cleaner outlives Shutdown.
		MaxIdleWorkerDuration: 2 * time.Second,
		Logger:                fasthttpLogger{l: s.cfg.Logger, redact: s.redact},
	}
}

// Serve accepts connections on ln until Shutdown. Accept errors that pass
// (no descriptors left) are retried, and connections beyond MaxConns are
// refused, so a flood never ends the server.
func (s *Server) Serve(ln net.Listener) error {
	g := netlisten.Guard{
		MaxConns: s.cfg.MaxConns,
		Rejected: func() {
			if n := s.connsRefused.Add(1); lograte.Crossed(n-1, n) {
				s.cfg.Logger.Warn().Int("max_conns", s.cfg.MaxConns).Uint64("refused", n).Msg("too many connections; refusing new ones")
			}
		},
		Retrying: func(err error) {
			if n := s.acceptRetries.Add(1); lograte.Crossed(n-1, n) {
				s.cfg.Logger.Warn().Err(err).Uint64("retries", n).Msg("accepting a connection failed; retrying")
			}
		},
	}.Listener(ln)
	s.listener.Store(g)
	if s.dash != nil {
		s.dash.live.start()
	}
	if s.cfg.TLS != nil {
		// The handshake happens on a connection's first read, in its
		// fasthttp worker, under the read timeout: a client that stalls
		// it holds one connection of MaxConns, as a slow request would.
		return s.srv.Serve(tls.NewListener(g, s.cfg.TLS))
	}
	return s.srv.Serve(g)
}

// ServeMetrics serves /metrics, /healthz and /readyz alone on ln (at those
// paths, whatever the base URL), so that probes and scrapes are answered
// while the API's listener is flooded.
func (s *Server) ServeMetrics(ln net.Listener) error {
	srv := s.fasthttpServer(s.handleMetricsListener)
	s.wsMu.Lock()
	s.metricsSrv = srv
	s.wsMu.Unlock()
	return srv.Serve(ln)
}

func (s *Server) handleMetricsListener(ctx *fasthttp.RequestCtx) {
	var err error
	switch string(ctx.Path()) {
	case "/metrics":
		err = s.metricsHandler(ctx, nil)
	case "/healthz":
		err = s.healthz(ctx, nil)
	case "/readyz":
		err = s.readyz(ctx, nil)
	default:
		err = errorf(fasthttp.StatusNotFound, "")
	}
	if err != nil {
		writeError(ctx, err)
	}
}

// Shutdown stops accepting, waits for open requests, then closes every
// websocket with 1001 (going away) and waits for their handlers to end;
// when ctx ends first, the connections still open are closed under their
// clients and Shutdown returns.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.ShutdownWithContext(ctx)
	s.wsMu.Lock()
	s.closing = true
	metricsSrv := s.metricsSrv
	live := make([]*wsConn, 0, len(s.wsLive))
	for c := range s.wsLive {
		live = append(live, c)
	}
	s.wsMu.Unlock()
	if metricsSrv != nil {
		metricsSrv.ShutdownWithContext(ctx)
	}
	if s.dash != nil {
		s.dash.live.shutdown(ctx)
	}
	// Close frames go out in parallel: a client that reads nothing holds
	// its own close up to the frame timeout, not everyone's.
	for _, c := range live {
		go c.Close(1001, "gateway shutting down")
	}
	done := make(chan struct{})
	go func() { s.wsWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		for _, c := range live {
			c.c.NetConn().Close()
		}
		<-done
	}
	return err
}

// track registers a live websocket; it returns false when the server is
// shutting down. untrack must follow a successful track.
func (s *Server) track(c *wsConn) bool {
	s.wsMu.Lock()
	defer s.wsMu.Unlock()
	if s.closing {
		return false
	}
	s.wsLive[c] = struct{}{}
	s.wsWG.Add(1)
	return true
}

func (s *Server) untrack(c *wsConn) {
	s.wsMu.Lock()
	delete(s.wsLive, c)
	s.wsMu.Unlock()
	s.wsWG.Done()
}

// route is one matched request: the handler and the path parameters.
type route struct {
	name      string // the route's label in metrics
	handler   func(*fasthttp.RequestCtx, []string) error
	params    []string
	public    bool // no token needed
	session   bool // the dashboard's session cookie will do instead of the token
	websocket bool // refused origins get 403, as Tornado answers upgrades
}

// match maps a path below the base URL to its handler. Methods are checked
// by the handlers.
func (s *Server) match(segs []string) (route, bool) {
	if r, ok := s.replicaRoute(segs); ok {
		return r, true
	}
	n := len(segs)
	switch {
	case n == 1 && segs[0] == "metrics":
		return route{name: "metrics", handler: s.metricsHandler, public: true}, true
	case n == 1 && segs[0] == "healthz":
		return route{name: "healthz", handler: s.healthz, public: true}, true
	case n == 1 && segs[0] == "readyz":
		return route{name: "readyz", handler: s.readyz, public: true}, true
	case n == 1 && segs[0] == "api":
		return route{name: "api", handler: s.apiVersion}, true
	case n == 2 && segs[0] == "api" && segs[1] == "kernelspecs":
		return route{name: "kernelspecs", handler: s.kernelspecList}, true
	case n == 3 && segs[0] == "api" && segs[1] == "kernelspecs":
		return route{name: "kernelspec", handler: s.kernelspecGet, params: segs[2:]}, true
	case n == 3 && segs[0] == "kernelspecs":
		return route{name: "kernelspec_resource", handler: s.kernelspecResource, params: segs[1:]}, true
	case n == 2 && segs[0] == "api" && segs[1] == "kernels":
		return route{name: "kernels", handler: s.kernels}, true
	case n == 3 && segs[0] == "api" && segs[1] == "kernels" && isKernelID(segs[2]):
		return route{name: "kernel", handler: s.kernel, params: segs[2:]}, true
	case n == 4 && segs[0] == "api" && segs[1] == "kernels" && isKernelID(segs[2]) && segs[3] == "channels":
		return route{name: "channels", handler: s.channels, params: segs[2:], websocket: true}, true
	case n == 4 && segs[0] == "api" && segs[1] == "kernels" && isKernelID(segs[2]) && (segs[3] == "interrupt" || segs[3] == "restart"):
		return route{name: "kernel_action", handler: s.kernelAction, params: segs[2:]}, true
	case n == 2 && segs[0] == "api" && segs[1] == "sessions":
		return route{name: "sessions", handler: s.sessionList}, true
	case n == 3 && segs[0] == "api" && segs[1] == "sessions":
		return route{name: "session", handler: s.session, params: segs[2:]}, true
	case n >= 1 && segs[0] == "dashboard" && s.dash != nil:
		return s.dash.match(segs[1:])
	case n >= 2 && segs[0] == "debug" && segs[1] == "pprof" && s.cfg.Pprof:
		return route{name: "pprof", handler: s.pprofHandler, params: segs[2:]}, true
	}
	return route{}, false
}

// isKernelID is Jupyter's route pattern for kernel ids: \w+-\w+-\w+-\w+-\w+.
func isKernelID(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) != 5 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
		for _, r := range p {
			if !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
	}
	return true
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	s.setCORS(ctx)
	name, err := s.dispatch(ctx)
	var errorID string
	if err != nil {
		errorID = writeError(ctx, err)
	}
	s.metrics.observe(name, ctx.Method(), ctx.Response.StatusCode(), time.Since(start))
	ev := s.cfg.Logger.Info()
	if ctx.Response.StatusCode() >= 500 {
		ev = s.cfg.Logger.Warn().AnErr("error", err).Str("error_id", errorID)
	}
	if c := s.caller(ctx); c.user != "" {
		ev = ev.Str("user", c.user)
	}
	// The path only: the query may carry the token.
	ev.Str("method", methodLabel(ctx.Method())).Str("path", string(ctx.Path())).
		Int("status", ctx.Response.StatusCode()).Dur("duration", time.Since(start)).Msg("request")
}

// dispatch routes a request and returns the route's name for metrics.
func (s *Server) dispatch(ctx *fasthttp.RequestCtx) (string, error) {
	path := string(ctx.Path())
	if !strings.HasPrefix(path+"/", s.cfg.BaseURL) {
		return "unmatched", errorf(fasthttp.StatusNotFound, "")
	}
	var segs []string
	for _, seg := range strings.Split(strings.Trim(path[len(s.cfg.BaseURL)-1:], "/"), "/") {
		if seg != "" {
			segs = append(segs, seg)
		}
	}
	r, ok := s.match(segs)
	if !ok {
		return "unmatched", errorf(fasthttp.StatusNotFound, "")
	}
	if ctx.IsOptions() {
		ctx.SetStatusCode(fasthttp.StatusOK) // CORS preflight, never token-checked
		return r.name, nil
	}
	if !s.originAllowed(ctx) {
		if r.websocket {
			return r.name, errorf(fasthttp.StatusForbidden, "cross-origin websocket refused")
		}
		return r.name, errorf(fasthttp.StatusNotFound, "cross-origin request refused")
	}
	if !r.public {
		var c caller
		var err error
		if r.session && requestToken(ctx) == "" && s.dash.sessionOK(ctx) {
			c = unrestricted // a dashboard session stands for an operator
		} else {
			c, err = s.authenticate(ctx)
		}
		if err != nil {
			return r.name, err
		}
		if r.session && !c.all {
			return r.name, errorf(fasthttp.StatusForbidden, "the dashboard is for operators: the gateway's token or an admin's")
		}
		ctx.SetUserValue(callerKey{}, c)
	}
	return r.name, r.handler(ctx, r.params)
}

// originAllowed is EG's (and Jupyter Server's) origin check: a request whose
// Origin names another host than Host is refused unless allow_origin is "*"
// or that exact origin.
func (s *Server) originAllowed(ctx *fasthttp.RequestCtx) bool {
	origin := string(ctx.Request.Header.Peek("Origin"))
	host := string(ctx.Request.Header.Host())
	if origin == "" || host == "" || s.cfg.AllowOrigin == "*" || s.cfg.AllowOrigin == origin {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == host
}

func (s *Server) setCORS(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	for _, kv := range [][2]string{
		{"Access-Control-Allow-Origin", s.cfg.AllowOrigin},
		{"Access-Control-Allow-Credentials", s.cfg.AllowCredentials},
		{"Access-Control-Allow-Headers", s.cfg.AllowHeaders},
		{"Access-Control-Allow-Methods", s.cfg.AllowMethods},
		{"Access-Control-Expose-Headers", s.cfg.ExposeHeaders},
		{"Access-Control-Max-Age", s.cfg.MaxAge},
	} {
		if kv[1] != "" {
			h.Set(kv[0], kv[1])
		}
	}
}

// transportError answers errors fasthttp meets before a handler runs: an
// oversized body, a malformed request.
func (s *Server) transportError(ctx *fasthttp.RequestCtx, err error) {
	status := fasthttp.StatusBadRequest
	msg := "malformed request"
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		status, msg = fasthttp.StatusRequestEntityTooLarge, "request body exceeds the limit"
	}
	// fasthttp quotes the request it could not parse, token and all.
	s.cfg.Logger.Debug().Str("error", s.redact.String(err.Error())).Msg("request refused")
	writeJSON(ctx, status, map[string]string{"reason": fasthttp.StatusMessage(status), "message": msg})
}

func (s *Server) apiVersion(ctx *fasthttp.RequestCtx, _ []string) error {
	if !ctx.IsGet() {
		return errMethod
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]string{"version": s.cfg.Version, "gateway_version": s.cfg.Version, "gateway": "kernelgate"})
	return nil
}

// healthz answers while the process serves at all (liveness).
func (s *Server) healthz(ctx *fasthttp.RequestCtx, _ []string) error {
	writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz answers 200 while kernels are accepted and 503 once the gateway is
// draining (readiness: take it out of the load balancer).
func (s *Server) readyz(ctx *fasthttp.RequestCtx, _ []string) error {
	s.wsMu.Lock()
	closing := s.closing
	s.wsMu.Unlock()
	if closing || !s.gw.Accepting() {
		return &Error{Status: fasthttp.StatusServiceUnavailable, Message: "draining: not accepting kernels"}
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ready"})
	return nil
}

var errMethod = errorf(fasthttp.StatusMethodNotAllowed, "method not allowed")

// fasthttpLogger logs fasthttp's own messages at debug level, redacted:
// they may quote a request, token and all.
type fasthttpLogger struct {
	l      zerolog.Logger
	redact *redactor
}

func (f fasthttpLogger) Printf(format string, args ...any) {
	if e := f.l.Debug(); e.Enabled() {
		e.Msg(f.redact.String(fmt.Sprintf(format, args...)))
	}
}
