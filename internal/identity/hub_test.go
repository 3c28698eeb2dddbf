package identity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/hubtest"
	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

// newUser creates a user with a name of its own on the shared Hub (users
// outlive a test there).
func newUser(t *testing.T, hub *hubtest.Hub, base string, admin bool) string {
	t.Helper()
	name := base + "-" + randomHex(4)
	hub.CreateUser(t, name, admin)
	return name
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newHub(t *testing.T, cfg HubConfig) *Hub {
	t.Helper()
	h, err := NewHub(cfg)
	testkit.NoError(t, err)
	return h
}

// TestHubIdentifies asks the real Hub about a user's, an admin's and a
// service's token, and about tokens it never issued.
func TestHubIdentifies(t *testing.T) {
	hub := sharedHub(t)
	defer leaktest.Check(t)()
	alice := newUser(t, hub, "alice", false)
	admin := newUser(t, hub, "admin", true)
	group := "team-" + randomHex(4)
	hub.CreateGroup(t, group, alice)
	aliceTok, _ := hub.CreateToken(t, alice)
	adminTok, _ := hub.CreateToken(t, admin)
	configuredAdminTok, _ := hub.CreateToken(t, hubtest.Admin)
	serverTok, _ := hub.CreateToken(t, alice, "server")
	adminServerTok, _ := hub.CreateToken(t, admin, "server")

	h := newHub(t, HubConfig{APIURL: hub.APIURL, TTL: time.Minute})
	defer h.Close()
	ctx := context.Background()
	for _, c := range []struct {
		token string
		want  Identity
	}{
		{aliceTok, Identity{Name: alice, Groups: []string{group}, Source: SourceHub}},
		{adminTok, Identity{Name: admin, Admin: true, Groups: []string{}, Source: SourceHub}},
		{configuredAdminTok, Identity{Name: hubtest.Admin, Admin: true, Groups: []string{}, Source: SourceHub}},
		// What a single-user server in gateway mode sends.
		{serverTok, Identity{Name: alice, Groups: []string{group}, Source: SourceHub}},
		{adminServerTok, Identity{Name: admin, Admin: true, Groups: []string{}, Source: SourceHub}},
		// The service's role lets it administer users, yet it is no admin
		// of kernels.
		{hub.ServiceToken, Identity{Name: hubtest.ServiceName, Service: true, Source: SourceHub}},
	} {
		id, err := h.Identify(ctx, c.token)
		testkit.NoError(t, err)
		testkit.Equal(t, id, c.want)
	}

	for _, bad := range []string{"0123456789abcdef0123456789abcdef", "garbage", aliceTok + "x"} {
		_, err := h.Identify(ctx, bad)
		testkit.ErrorIs(t, err, ErrInvalidToken)
		noTokenIn(t, err, bad)
	}
	_, err := h.Identify(ctx, "")
	testkit.ErrorIs(t, err, ErrNoToken)
	// Not sent at all: it could not be a header value.
	before := h.Stats().Requests
	_, err = h.Identify(ctx, "a\r\nX-Evil: 1")
	testkit.ErrorIs(t, err, ErrInvalidToken)
	testkit.Equal(t, h.Stats().Requests, before)
}

// TestHubCaches: a second lookup of a good or a bad token asks nobody, and a
// caller cannot change a cached identity.
func TestHubCaches(t *testing.T) {
	hub := sharedHub(t)
	defer leaktest.Check(t)()
	alice := newUser(t, hub, "alice", false)
	hub.CreateGroup(t, "g-"+randomHex(4), alice)
	tok, _ := hub.CreateToken(t, alice)
	h := newHub(t, HubConfig{APIURL: hub.APIURL, TTL: time.Minute})
	defer h.Close()
	ctx := context.Background()

	id, err := h.Identify(ctx, tok)
	testkit.NoError(t, err)
	id.Groups[0] = "changed"
	id, err = h.Identify(ctx, tok)
	testkit.NoError(t, err)
	testkit.True(t, id.Groups[0] != "changed", "a caller changed the cached identity")
	_, err = h.Identify(ctx, "unknown-token")
	testkit.ErrorIs(t, err, ErrInvalidToken)
	_, err = h.Identify(ctx, "unknown-token")
	testkit.ErrorIs(t, err, ErrInvalidToken)
	st := h.Stats()
	testkit.Equal(t, []int64{st.Requests, st.CacheHits, st.RefusedHits}, []int64{2, 1, 1})
	testkit.Equal(t, []int{st.Entries, st.Refused}, []int{1, 1})
}

// TestHubRevokedAfterTTL: a revoked token keeps working from the cache for
// at most the TTL, then is refused.
func TestHubRevokedAfterTTL(t *testing.T) {
	hub := sharedHub(t)
	defer leaktest.Check(t)()
	alice := newUser(t, hub, "alice", false)
	tok, tokID := hub.CreateToken(t, alice)
	const ttl = time.Second
	h := newHub(t, HubConfig{APIURL: hub.APIURL, TTL: ttl})
	defer h.Close()
	ctx := context.Background()

	asked := time.Now()
	_, err := h.Identify(ctx, tok)
	testkit.NoError(t, err)
	hub.RevokeToken(t, alice, tokID)
	if time.Since(asked) < ttl/2 { // only meaningful while well inside the TTL
		_, err = h.Identify(ctx, tok)
		testkit.NoError(t, err)
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		_, err := h.Identify(ctx, tok)
		if errors.Is(err, ErrInvalidToken) {
			return nil
		}
		return fmt.Errorf("revoked token still accepted (err %v)", err)
	})
	testkit.True(t, time.Since(asked) >= ttl, "refused before the TTL ran out: the cache was not used")
	testkit.True(t, time.Since(asked) < ttl+5*time.Second, "refused only %v after the revocation", time.Since(asked))
}

// TestHubDown: with the Hub gone, cached tokens keep working until their
// TTL and any other is ErrUnavailable (503), not ErrInvalidToken.
func TestHubDown(t *testing.T) {
	hubtest.Require(t)
	hub := hubtest.Start(t) // a Hub of its own: this test stops it
	defer leaktest.Check(t)()
	hub.CreateUser(t, "alice", false)
	tok, _ := hub.CreateToken(t, "alice")
	other, _ := hub.CreateToken(t, "alice")
	h := newHub(t, HubConfig{APIURL: hub.APIURL, TTL: time.Minute})
	defer h.Close()
	ctx := context.Background()
	_, err := h.Identify(ctx, tok)
	testkit.NoError(t, err)

	hub.Stop()
	id, err := h.Identify(ctx, tok)
	testkit.NoError(t, err)
	testkit.Equal(t, id.Name, "alice")
	for _, tk := range []string{other, "garbage"} {
		_, err = h.Identify(ctx, tk)
		testkit.ErrorIs(t, err, ErrUnavailable)
		testkit.True(t, !errors.Is(err, ErrInvalidToken), "a Hub that is down refused a token: %v", err)
		noTokenIn(t, err, tk)
	}
	testkit.Equal(t, h.Stats().Refused, 0) // nothing learnt from an outage
}

// TestHubSlow: a Hub that accepts connections and never answers costs a
// lookup its Timeout, not more, and gives ErrUnavailable.
func TestHubSlow(t *testing.T) {
	defer leaktest.Check(t)()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testkit.NoError(t, err)
	var conns sync.WaitGroup
	accepted := make(chan net.Conn, 16)
	conns.Add(1)
	go func() {
		defer conns.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	defer func() {
		ln.Close()
		conns.Wait()
		close(accepted)
		for c := range accepted {
			c.Close()
		}
	}()

	const timeout = 300 * time.Millisecond
	h := newHub(t, HubConfig{APIURL: "http://" + ln.Addr().String() + "/hub/api", TTL: time.Minute, Timeout: timeout})
	defer h.Close()
	start := time.Now()
	_, err = h.Identify(context.Background(), "some-token")
	testkit.ErrorIs(t, err, ErrUnavailable)
	took := time.Since(start)
	testkit.True(t, took >= timeout && took < timeout+2*time.Second, "took %v, timeout %v", took, timeout)

	// A caller's own deadline ends its wait earlier.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = h.Identify(ctx, "another-token")
	testkit.ErrorIs(t, err, ErrUnavailable)
	testkit.True(t, time.Since(start) < timeout, "the caller's deadline was not honoured: %v", time.Since(start))
}

// TestHubBadAnswers: answers that are neither a user nor a refusal are
// ErrUnavailable and are not cached.
func TestHubBadAnswers(t *testing.T) {
	defer leaktest.Check(t)()
	for _, c := range []struct {
		name    string
		status  int
		body    string
		refused bool
	}{
		{"server error", 500, `{"status": 500}`, false},
		{"wrong URL", 404, `{"status": 404}`, false},
		{"redirect", 302, ``, false},
		{"not JSON", 200, `<html>`, false},
		{"no name", 200, `{"kind": "user", "admin": true}`, false},
		{"a name with a newline", 200, `{"kind": "user", "name": "alice\nbob"}`, false},
		{"unknown kind", 200, `{"kind": "robot", "name": "r2"}`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if c.status == 302 {
					w.Header().Set("Location", "http://127.0.0.1:1/elsewhere")
				}
				w.WriteHeader(c.status)
				w.Write([]byte(c.body))
			}))
			defer srv.Close()
			h := newHub(t, HubConfig{APIURL: srv.URL + "/hub/api", TTL: time.Minute})
			defer h.Close()
			_, err := h.Identify(context.Background(), "tok")
			if c.refused {
				testkit.ErrorIs(t, err, ErrInvalidToken)
				return
			}
			testkit.ErrorIs(t, err, ErrUnavailable)
			st := h.Stats()
			testkit.Equal(t, st.Entries+st.Refused, 0)
		})
	}
}

// gate is a reverse proxy in front of the real Hub that counts the
// identity lookups it forwards and can hold them.
type gate struct {
	lookups atomic.Int64
	hold    chan struct{} // while open, lookups wait
	srv     *httptest.Server
}

func newGate(t *testing.T, hubAPI string) *gate {
	u, err := url.Parse(hubAPI)
	testkit.NoError(t, err)
	g := &gate{hold: make(chan struct{})}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	proxy.Transport = &http.Transport{DisableKeepAlives: true}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == u.Path+"/user" {
			g.lookups.Add(1)
			<-g.hold
		}
		proxy.ServeHTTP(w, r)
	}))
	return g
}

func (g *gate) apiURL(hubAPI string) string {
	u, _ := url.Parse(hubAPI)
	return g.srv.URL + u.Path
}

// TestHubCoalesces: many callers asking about the same new token at once
// cost the Hub one request.
func TestHubCoalesces(t *testing.T) {
	hub := sharedHub(t)
	defer leaktest.Check(t)()
	alice := newUser(t, hub, "alice", false)
	tok, _ := hub.CreateToken(t, alice)
	g := newGate(t, hub.APIURL)
	defer g.srv.Close()
	h := newHub(t, HubConfig{APIURL: g.apiURL(hub.APIURL), TTL: time.Minute})
	defer h.Close()

	const callers = 50
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := h.Identify(context.Background(), tok)
			if err == nil && id.Name != alice {
				err = fmt.Errorf("got %q", id.Name)
			}
			errs <- err
		}()
	}
	// Hold the Hub's answer until every caller is waiting on the lookup.
	testkit.Eventually(t, 10*time.Second, func() error {
		if c := h.Stats().Coalesced; c != callers-1 {
			return fmt.Errorf("%d callers joined the lookup", c)
		}
		return nil
	})
	close(g.hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		testkit.NoError(t, err)
	}
	testkit.Equal(t, g.lookups.Load(), int64(1))
	testkit.Equal(t, h.Stats().Requests, int64(1))
}

// TestHubSpray: 100,000 random tokens neither grow the heap beyond the
// cache bound, nor put more than MaxConcurrent requests in flight at once,
// nor evict a real user's cached token. The Hub is a stub answering as the
// real one does (403 {"status": 403, "message": "Forbidden"}): the real Hub
// answers a few hundred lookups a second, and the bounds tested are the
// gateway's own.
func TestHubSpray(t *testing.T) {
	defer leaktest.Check(t)()
	const (
		good          = "good-token"
		sprayed       = 100_000
		maxEntries    = 1000
		maxConcurrent = 8
		workers       = 32
	)
	var inflight, peak atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for m := peak.Load(); n > m && !peak.CompareAndSwap(m, n); m = peak.Load() {
		}
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") == "token "+good {
			w.Write([]byte(`{"kind": "user", "name": "alice", "admin": false}`))
			return
		}
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"status": 403, "message": "Forbidden"}`))
	}))
	defer srv.Close()
	// TTL: longer than the spray takes on a loaded machine, so the good
	// token is still cached at the end.
	h := newHub(t, HubConfig{APIURL: srv.URL + "/hub/api", TTL: time.Hour,
		MaxEntries: maxEntries, MaxConcurrent: maxConcurrent})
	defer h.Close()
	ctx := context.Background()
	_, err := h.Identify(ctx, good)
	testkit.NoError(t, err)

	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var unexpected atomic.Value
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 16)
			for next.Add(1) <= sprayed {
				rand.Read(b)
				if _, err := h.Identify(ctx, hex.EncodeToString(b)); !errors.Is(err, ErrInvalidToken) {
					unexpected.Store(fmt.Errorf("random token: %v", err))
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	after := heap()
	if err, _ := unexpected.Load().(error); err != nil {
		t.Fatal(err)
	}
	st := h.Stats()
	growth := int64(after) - int64(before)
	t.Logf("%d random tokens in %v (%.0f/s): heap %+.2f MiB, %d refused cached, peak %d requests in flight",
		sprayed, took.Round(time.Millisecond), sprayed/took.Seconds(), float64(growth)/(1<<20), st.Refused, peak.Load())
	testkit.True(t, st.Refused <= maxEntries, "%d refused tokens cached, bound %d", st.Refused, maxEntries)
	testkit.True(t, peak.Load() <= maxConcurrent, "%d requests in flight, bound %d", peak.Load(), maxConcurrent)
	testkit.Equal(t, st.Requests, int64(sprayed+1))
	// A full cache of refused tokens is ~0.2 MiB here; an unbounded one
	// would hold 100,000 entries (~20 MiB).
	testkit.True(t, growth < 4<<20, "heap grew %d bytes", growth)

	_, err = h.Identify(ctx, good)
	testkit.NoError(t, err)
	testkit.Equal(t, h.Stats().Requests, int64(sprayed+1)) // still cached
}

// TestHubBounds: at most MaxConcurrent requests reach the Hub at once, the
// other lookups wait for a slot, and past MaxPending distinct tokens in
// flight a new one is answered at once with ErrUnavailable instead of
// queueing.
func TestHubBounds(t *testing.T) {
	defer leaktest.Check(t)()
	release := make(chan struct{})
	var inflight, peak atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for m := peak.Load(); n > m && !peak.CompareAndSwap(m, n); m = peak.Load() {
		}
		<-release
		w.WriteHeader(http.StatusForbidden)
	}))
	defer srv.Close()
	// TTL: longer than the spray takes on a loaded machine, so the good
	// token is still cached at the end.
	h := newHub(t, HubConfig{APIURL: srv.URL + "/hub/api", TTL: time.Hour, MaxPending: 4, MaxConcurrent: 2})
	defer h.Close()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.Identify(context.Background(), fmt.Sprintf("token-%d", i))
		}()
	}
	testkit.Eventually(t, 5*time.Second, func() error {
		if p, n := h.Stats().Pending, inflight.Load(); p != 4 || n != 2 {
			return fmt.Errorf("%d lookups pending, %d requests at the Hub", p, n)
		}
		return nil
	})
	_, err := h.Identify(context.Background(), "one-too-many")
	testkit.ErrorIs(t, err, ErrUnavailable)
	close(release)
	wg.Wait()
	testkit.Equal(t, peak.Load(), int64(2))
	testkit.Equal(t, h.Stats().Requests, int64(4))
}

// BenchmarkHub measures a lookup against the real Hub: cached (the
// gateway's cost per request) and uncached (TTL 0: the Hub's round trip).
func BenchmarkHub(b *testing.B) {
	hubtest.Require(b)
	hub, err := hubtest.Launch()
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Stop()
	hub.CreateUser(b, "alice", false)
	tok, _ := hub.CreateToken(b, "alice")
	for _, c := range []struct {
		name string
		ttl  time.Duration
	}{{"cached", time.Minute}, {"uncached", 0}} {
		b.Run(c.name, func(b *testing.B) {
			h, err := NewHub(HubConfig{APIURL: hub.APIURL, TTL: c.ttl})
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			ctx := context.Background()
			if _, err := h.Identify(ctx, tok); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := h.Identify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
