package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of HubConfig.
const (
	DefaultTTL           = 5 * time.Minute
	DefaultNegativeTTL   = 10 * time.Second
	DefaultMaxEntries    = 10000
	DefaultMaxConcurrent = 16
	DefaultMaxPending    = 1024
	DefaultTimeout       = 5 * time.Second
)

// maxHubAnswer bounds the Hub's answer read: a user model is a few hundred
// bytes, a user in very many groups a few kilobytes.
const maxHubAnswer = 1 << 20

// HubConfig configures a Hub. Zero fields but TTL take the defaults above.
type HubConfig struct {
	// APIURL is the Hub's REST API, as in JUPYTERHUB_API_URL
	// (http://hub:8081/hub/api).
	APIURL string
	// TTL is how long a token the Hub accepted is taken without asking again:
	// a revoked token keeps working at most this long. Unlike the other
	// fields it is taken as it is: zero turns the cache off (every request
	// asks the Hub). DefaultTTL is KERNELGATE_AUTH_CACHE_TTL's default.
	TTL time.Duration
	// NegativeTTL is how long a refused token is refused without asking
	// again (never longer than TTL): short, as a token may be created just
	// after a client tried it, but long enough that a client retrying a bad
	// token in a loop costs the Hub nothing.
	NegativeTTL time.Duration
	// MaxEntries bounds each of the two caches (accepted, refused). They are
	// apart so that a spray of random tokens, which fills the refused one,
	// never evicts real users.
	MaxEntries int
	// MaxConcurrent bounds the requests in flight to the Hub.
	MaxConcurrent int
	// MaxPending bounds the distinct tokens being looked up at once
	// (in flight or waiting for one of the MaxConcurrent slots); past it a
	// new token is answered ErrUnavailable at once instead of queueing.
	MaxPending int
	// Timeout bounds one lookup: waiting for a slot plus the request.
	Timeout time.Duration
	// Client sends the requests; nil means a client of the Hub's own with
	// timeouts, no redirects and at most MaxConcurrent connections.
	Client *http.Client
}

// Hub identifies JupyterHub tokens by asking the Hub: GET {api}/user with
// "Authorization: token T" returns the token's owner (the Hub's API ignores
// ?token=, so a query token is always sent as the header).
//
// Answers are cached (see HubConfig). Concurrent lookups of one token share
// one request. The caches, the lookups in flight and the connections to the
// Hub are all bounded, so a client spraying random tokens can neither grow
// the gateway's memory nor send the Hub more than MaxConcurrent requests at
// a time.
type Hub struct {
	cfg     HubConfig
	userURL string
	client  *http.Client
	slots   chan struct{} // a token per request in flight to the Hub

	ctx    context.Context // canceled by Close; parent of every lookup
	cancel context.CancelFunc
	wg     sync.WaitGroup // lookups running

	mu      sync.Mutex
	known   *lru // tokens the Hub accepted
	refused *lru // tokens the Hub refused
	flights map[key]*flight

	hits, refusedHits, coalesced, requests atomic.Int64
}

// flight is one lookup; callers of the same token wait for its done.
type flight struct {
	done chan struct{}
	id   Identity
	err  error
}

// HubStats are a Hub's counters since it was made.
type HubStats struct {
	CacheHits   int64 // answered from the cache of accepted tokens
	RefusedHits int64 // answered from the cache of refused tokens
	Coalesced   int64 // joined a lookup of the same token in flight
	Requests    int64 // requests sent to the Hub
	Entries     int   // accepted tokens cached now
	Refused     int   // refused tokens cached now
	Pending     int   // lookups in flight now
}

// NewHub returns a Hub for cfg. Close it to stop its lookups.
func NewHub(cfg HubConfig) (*Hub, error) {
	u, err := url.Parse(cfg.APIURL)
	if err != nil {
		return nil, fmt.Errorf("identity: JupyterHub API URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("identity: JupyterHub API URL %q is not an http(s) URL", cfg.APIURL)
	}
	if cfg.TTL < 0 {
		return nil, fmt.Errorf("identity: negative cache TTL %v", cfg.TTL)
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = DefaultNegativeTTL
	}
	cfg.NegativeTTL = min(cfg.NegativeTTL, cfg.TTL)
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{
			Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				DialContext:           (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
				ForceAttemptHTTP2:     true,
				MaxIdleConnsPerHost:   cfg.MaxConcurrent,
				MaxConnsPerHost:       cfg.MaxConcurrent,
				IdleConnTimeout:       90 * time.Second,
				TLSHandshakeTimeout:   cfg.Timeout,
				ResponseHeaderTimeout: cfg.Timeout,
			},
			// A redirect means a wrong API URL; following it could send the
			// token somewhere it was not meant to go.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Hub{
		cfg:     cfg,
		userURL: strings.TrimRight(cfg.APIURL, "/") + "/user",
		client:  client,
		slots:   make(chan struct{}, cfg.MaxConcurrent),
		ctx:     ctx,
		cancel:  cancel,
		known:   newLRU(cfg.MaxEntries),
		refused: newLRU(cfg.MaxEntries),
		flights: make(map[key]*flight),
	}, nil
}

// Identify asks the Hub whose token this is, or answers from the cache.
func (h *Hub) Identify(ctx context.Context, token string) (Identity, error) {
	if err := checkToken(token); err != nil {
		return Identity{}, err
	}
	k := keyOf(token)
	now := time.Now()
	h.mu.Lock()
	if id, ok := h.known.get(k, now); ok {
		h.mu.Unlock()
		h.hits.Add(1)
		return clone(id), nil
	}
	if _, ok := h.refused.get(k, now); ok {
		h.mu.Unlock()
		h.refusedHits.Add(1)
		return Identity{}, fmt.Errorf("jupyterhub refused the token (cached): %w", ErrInvalidToken)
	}
	f, ok := h.flights[k]
	switch {
	case ok:
		h.coalesced.Add(1)
	case h.ctx.Err() != nil:
		h.mu.Unlock()
		return Identity{}, fmt.Errorf("jupyterhub authenticator closed: %w", ErrUnavailable)
	case len(h.flights) >= h.cfg.MaxPending:
		h.mu.Unlock()
		return Identity{}, fmt.Errorf("%d jupyterhub lookups pending: %w", len(h.flights), ErrUnavailable)
	default:
		f = &flight{done: make(chan struct{})}
		h.flights[k] = f
		h.wg.Add(1)
		// The lookup runs apart from the caller so that a caller giving up
		// (its client went away) neither cancels it for the others waiting
		// nor loses an answer worth caching.
		go h.lookup(k, token, f)
	}
	h.mu.Unlock()
	select {
	case <-f.done:
		return clone(f.id), f.err
	case <-ctx.Done():
		return Identity{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

func (h *Hub) lookup(k key, token string, f *flight) {
	defer h.wg.Done()
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.Timeout)
	defer cancel()
	id, err := h.ask(ctx, token)
	now := time.Now()
	h.mu.Lock()
	switch {
	case err == nil && h.cfg.TTL > 0:
		h.known.put(k, id, now.Add(h.cfg.TTL))
	case errors.Is(err, ErrInvalidToken) && h.cfg.NegativeTTL > 0:
		h.refused.put(k, Identity{}, now.Add(h.cfg.NegativeTTL))
	}
	delete(h.flights, k)
	h.mu.Unlock()
	f.id, f.err = id, err
	close(f.done)
}

// hubUser is the part of the Hub's user (or service) model used. A user's
// own token gets the full model, a single-user server's token one with only
// kind, name, admin, groups; both have these.
type hubUser struct {
	Kind   string   `json:"kind"`
	Name   string   `json:"name"`
	Admin  bool     `json:"admin"`
	Groups []string `json:"groups"`
}

// ask sends one request to the Hub, waiting for a free slot first.
func (h *Hub) ask(ctx context.Context, token string) (Identity, error) {
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	case <-ctx.Done():
		return Identity{}, fmt.Errorf("waiting for a connection to jupyterhub: %w: %w", ErrUnavailable, ctx.Err())
	}
	h.requests.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.userURL, nil)
	if err != nil {
		return Identity{}, fmt.Errorf("jupyterhub request: %w: %w", ErrUnavailable, err)
	}
	req.Header.Set("Authorization", "token "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		// The error names the URL, never the token (it is in a header).
		return Identity{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxHubAnswer)
	// Read what is left so the connection can be reused.
	defer io.Copy(io.Discard, body)
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		return Identity{}, fmt.Errorf("jupyterhub refused the token: %w", ErrInvalidToken)
	default:
		return Identity{}, fmt.Errorf("jupyterhub at %s answered %s: %w", h.userURL, resp.Status, ErrUnavailable)
	}
	var u hubUser
	if err := json.NewDecoder(body).Decode(&u); err != nil {
		return Identity{}, fmt.Errorf("jupyterhub at %s: unreadable answer: %w: %w", h.userURL, ErrUnavailable, err)
	}
	if !validName(u.Name) {
		return Identity{}, fmt.Errorf("jupyterhub at %s: answer without a valid name: %w", h.userURL, ErrUnavailable)
	}
	id := Identity{Name: u.Name, Groups: u.Groups, Source: SourceHub}
	switch u.Kind {
	case "user", "":
		id.Admin = u.Admin
	case "service":
		// A service acts for no user and is no admin, whatever roles the
		// Hub gave it: kernels are per user here.
		id.Service = true
	default:
		return Identity{}, fmt.Errorf("jupyterhub token of kind %q: %w", u.Kind, ErrInvalidToken)
	}
	return id, nil
}

// Stats returns the Hub's counters.
func (h *Hub) Stats() HubStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return HubStats{
		CacheHits:   h.hits.Load(),
		RefusedHits: h.refusedHits.Load(),
		Coalesced:   h.coalesced.Load(),
		Requests:    h.requests.Load(),
		Entries:     h.known.len(),
		Refused:     h.refused.len(),
		Pending:     len(h.flights),
	}
}

// Close cancels the lookups in flight, waits for them and closes idle
// connections. Identify answers ErrUnavailable afterwards.
func (h *Hub) Close() error {
	h.cancel()
	h.wg.Wait()
	h.client.CloseIdleConnections()
	return nil
}

// clone copies id's groups so that callers cannot change a cached identity.
func clone(id Identity) Identity {
	id.Groups = slices.Clone(id.Groups)
	return id
}
