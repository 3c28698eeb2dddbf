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
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
)

// Defaults of OIDCConfig.
const (
	DefaultUsernameClaim   = "preferred_username"
	DefaultGroupsClaim     = "groups"
	DefaultClockSkew       = 30 * time.Second
	DefaultRefreshInterval = time.Second
	DefaultKeysMaxAge      = time.Hour
)

// signingAlgs are the algorithms a token may be signed with: the asymmetric
// ones. "none" and the HMAC family are refused: with a public key set they
// would let anyone sign.
var signingAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// maxJWKS bounds the key set read from the issuer.
const maxJWKS = 1 << 20

// OIDCConfig configures an OIDC authenticator. Zero fields take defaults.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL, exactly as in its tokens' "iss"
	// (KERNELGATE_OIDC_ISSUER); its discovery document names the key set.
	Issuer string
	// Audience must be among a token's "aud" (KERNELGATE_OIDC_AUDIENCE):
	// usually the client id the tokens are issued to. Required: without it a
	// token issued to any other application of the provider would do.
	Audience string
	// UsernameClaim is the claim holding the user name
	// (KERNELGATE_OIDC_USERNAME_CLAIM, default preferred_username).
	UsernameClaim string
	// GroupsClaim is the claim holding the user's groups (default groups).
	GroupsClaim string
	// AdminGroups make their members admins (KERNELGATE_OIDC_ADMIN_GROUPS).
	AdminGroups []string
	// ClockSkew is how long past its expiry a token is still accepted, for
	// clocks that differ a little (default 30 s; negative for none).
	ClockSkew time.Duration
	// RefreshInterval is the shortest time between two fetches of the key
	// set. A token signed with a key not seen yet (the provider rotated its
	// keys) makes the gateway fetch the keys again; this bounds what forged
	// tokens with made-up key ids can make it send the provider. A token
	// arriving just after a fetch waits for the next one.
	RefreshInterval time.Duration
	// KeysMaxAge is how long a fetched key set is used before it is fetched
	// again, so that a key the provider withdrew stops verifying (default
	// 1 h). If the provider is down then, the old keys go on being used.
	KeysMaxAge time.Duration
	// Timeout bounds one fetch of the discovery document or the keys
	// (default 5 s).
	Timeout time.Duration
	// Client sends the requests; nil means one with timeouts.
	Client *http.Client
	// Now is the clock tokens are checked against (default time.Now).
	Now func() time.Time
}

// OIDC identifies OpenID Connect bearer tokens: JWTs whose signature is
// checked with go-oidc against the issuer's published key set, and whose
// issuer, audience and expiry are checked too. The user name comes from a
// claim; membership of an admin group makes an admin.
//
// The issuer is first asked for its keys when the first token arrives, not
// at start, so that the gateway starts while the provider is down.
type OIDC struct {
	cfg      OIDCConfig
	verifier *oidc.IDTokenVerifier
	keys     *keySet
}

// NewOIDC returns an OIDC authenticator for cfg. Close it to stop its
// fetches.
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("identity: OIDC issuer: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("identity: OIDC issuer %q is not an http(s) URL", cfg.Issuer)
	}
	if cfg.Audience == "" {
		return nil, errors.New("identity: OIDC audience is required")
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = DefaultUsernameClaim
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = DefaultGroupsClaim
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = DefaultClockSkew
	}
	cfg.ClockSkew = max(cfg.ClockSkew, 0)
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	if cfg.KeysMaxAge <= 0 {
		cfg.KeysMaxAge = DefaultKeysMaxAge
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   cfg.Timeout,
			ResponseHeaderTimeout: cfg.Timeout,
		}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ks := &keySet{
		issuer: cfg.Issuer, client: client, interval: cfg.RefreshInterval,
		maxAge: cfg.KeysMaxAge, timeout: cfg.Timeout, ctx: ctx, cancel: cancel,
	}
	algs := make([]string, len(signingAlgs))
	for i, a := range signingAlgs {
		algs[i] = string(a)
	}
	skew, now := cfg.ClockSkew, cfg.Now
	v := oidc.NewVerifier(cfg.Issuer, ks, &oidc.Config{
		ClientID:             cfg.Audience,
		SupportedSigningAlgs: algs,
		// go-oidc has no leeway for expiry (it allows 5 min for "nbf"): a
		// clock set back by the skew gives one.
		Now: func() time.Time { return now().Add(-skew) },
	})
	return &OIDC{cfg: cfg, verifier: v, keys: ks}, nil
}

// probe carries, through go-oidc's Verify, whether the key set could be
// fetched: go-oidc flattens its KeySet's errors into text, and a provider
// that is down must give ErrUnavailable, not ErrInvalidToken.
type probe struct{ err error }

type probeKey struct{}

// Identify verifies the token and returns its user.
func (o *OIDC) Identify(ctx context.Context, token string) (Identity, error) {
	if err := checkToken(token); err != nil {
		return Identity{}, err
	}
	p := &probe{}
	tok, err := o.verifier.Verify(context.WithValue(ctx, probeKey{}, p), token)
	if err != nil {
		if p.err != nil { // wraps ErrUnavailable
			return Identity{}, fmt.Errorf("oidc: %w", p.err)
		}
		return Identity{}, fmt.Errorf("oidc: %w: %w", ErrInvalidToken, err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return Identity{}, fmt.Errorf("oidc: claims: %w: %w", ErrInvalidToken, err)
	}
	name, _ := claims[o.cfg.UsernameClaim].(string)
	if !validName(name) {
		return Identity{}, fmt.Errorf("oidc: claim %q is not a user name: %w", o.cfg.UsernameClaim, ErrInvalidToken)
	}
	id := Identity{Name: name, Groups: stringList(claims[o.cfg.GroupsClaim]), Source: SourceOIDC}
	for _, g := range id.Groups {
		if slices.Contains(o.cfg.AdminGroups, g) {
			id.Admin = true
			break
		}
	}
	return id, nil
}

// stringList reads a claim that is a list of strings or one string.
func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// Close stops the key fetches and closes idle connections.
func (o *OIDC) Close() error {
	o.keys.cancel()
	o.keys.wg.Wait()
	o.keys.client.CloseIdleConnections()
	return nil
}

// keySet is the issuer's key set as go-oidc's KeySet: like go-oidc's
// RemoteKeySet it fetches the keys again when a token names a key it has not
// seen (rotation), but no more often than every interval, and it tells a
// fetch that failed (ErrUnavailable) from a signature that does not verify.
type keySet struct {
	issuer   string
	client   *http.Client
	interval time.Duration
	maxAge   time.Duration
	timeout  time.Duration
	ctx      context.Context // canceled by Close; parent of every fetch
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu      sync.Mutex
	jwksURL string // from discovery, once it succeeded
	keys    []jose.JSONWebKey
	fetched time.Time // last successful fetch
	tried   time.Time // start of the last fetch
	lastErr error     // of the last fetch
	flight  *keyFlight
}

type keyFlight struct {
	done chan struct{}
	err  error
}

// VerifySignature returns the token's payload if one of the issuer's keys
// verifies it. go-oidc calls it after checking the algorithm.
func (s *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, signingAlgs)
	if err != nil {
		return nil, fmt.Errorf("malformed jwt: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("not one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, fresh := s.current()
	switch {
	case len(keys) == 0:
		if err := s.refresh(ctx); err != nil {
			noteUnavailable(ctx, err)
			return nil, err
		}
		keys, _ = s.current()
	case !fresh:
		// Fetched long ago: fetch again, but verify with the keys at hand
		// meanwhile, so that no request waits for it and a provider that
		// is down does not lock everyone out.
		s.start()
	}
	payload, known := verifyWith(jws, kid, keys)
	if payload != nil {
		return payload, nil
	}
	if known {
		// A key with that id exists and does not verify it: forged or
		// corrupted. Fetching the keys again would not change that.
		return nil, errors.New("signature does not verify")
	}
	// A key not seen yet: the provider may have rotated its keys.
	if err := s.refresh(ctx); err != nil {
		noteUnavailable(ctx, err)
		return nil, err
	}
	keys, _ = s.current()
	if payload, _ := verifyWith(jws, kid, keys); payload != nil {
		return payload, nil
	}
	return nil, errors.New("no key of the issuer verifies the token")
}

func noteUnavailable(ctx context.Context, err error) {
	if p, ok := ctx.Value(probeKey{}).(*probe); ok {
		p.err = err
	}
}

// verifyWith tries the keys with the token's key id (all, if it has none);
// known reports whether any key had that id.
func verifyWith(jws *jose.JSONWebSignature, kid string, keys []jose.JSONWebKey) (payload []byte, known bool) {
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		known = kid != ""
		if p, err := jws.Verify(&keys[i]); err == nil {
			return p, true
		}
	}
	return nil, known
}

// current returns the keys and whether they are younger than maxAge.
func (s *keySet) current() ([]jose.JSONWebKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys, len(s.keys) > 0 && time.Since(s.fetched) < s.maxAge
}

// refresh fetches the key set, or joins the fetch in flight, and waits for
// it.
func (s *keySet) refresh(ctx context.Context) error {
	f, err := s.start()
	if f == nil {
		return err
	}
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return fmt.Errorf("waiting for the issuer's keys: %w: %w", ErrUnavailable, ctx.Err())
	}
}

// start returns the fetch in flight, starting one if there is none. Fetches
// start at least interval apart: within it, after a fetch that failed there
// is no fetch but its error (the provider was down a moment ago), and after
// one that succeeded the next is scheduled for the end of the interval.
func (s *keySet) start() (*keyFlight, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.flight != nil {
		return s.flight, nil
	}
	wait := s.interval - time.Since(s.tried)
	if wait > 0 && s.lastErr != nil {
		return nil, s.lastErr
	}
	if s.ctx.Err() != nil {
		return nil, fmt.Errorf("oidc authenticator closed: %w", ErrUnavailable)
	}
	s.flight = &keyFlight{done: make(chan struct{})}
	s.wg.Add(1)
	go s.fetch(s.flight, max(wait, 0))
	return s.flight, nil
}

// fetch runs one flight after waiting delay; it is apart from the callers
// so that one giving up does not cancel it for the others.
func (s *keySet) fetch(f *keyFlight, delay time.Duration) {
	defer s.wg.Done()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
		}
	}
	s.mu.Lock()
	s.tried = time.Now()
	jwksURL := s.jwksURL
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	keys, jwksURL, err := s.load(ctx, jwksURL)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s.mu.Lock()
	if err == nil {
		s.jwksURL, s.keys, s.fetched = jwksURL, keys, time.Now()
	} else {
		// Discover again next time: the issuer may have moved its keys.
		s.jwksURL = ""
	}
	s.lastErr = err
	s.flight = nil
	s.mu.Unlock()
	f.err = err
	close(f.done)
}

// load discovers the key set's URL if it is not known yet, then fetches it.
func (s *keySet) load(ctx context.Context, jwksURL string) ([]jose.JSONWebKey, string, error) {
	if jwksURL == "" {
		// go-oidc's discovery checks that the document names our issuer.
		p, err := oidc.NewProvider(oidc.ClientContext(ctx, s.client), s.issuer)
		if err != nil {
			return nil, "", fmt.Errorf("discovery at %s: %w", s.issuer, err)
		}
		var meta struct {
			JWKSURL string `json:"jwks_uri"`
		}
		if err := p.Claims(&meta); err != nil || meta.JWKSURL == "" {
			return nil, "", fmt.Errorf("discovery at %s: no jwks_uri", s.issuer)
		}
		jwksURL = meta.JWKSURL
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, jwksURL, nil)
	if err != nil {
		return nil, jwksURL, fmt.Errorf("keys: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, jwksURL, fmt.Errorf("keys: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKS))
	if err != nil {
		return nil, jwksURL, fmt.Errorf("keys at %s: %w", jwksURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, jwksURL, fmt.Errorf("keys at %s: %s", jwksURL, resp.Status)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return nil, jwksURL, fmt.Errorf("keys at %s: %w", jwksURL, err)
	}
	return keys, jwksURL, nil
}

// parseJWKS keeps the set's public signing keys; keys of a type or curve
// go-jose does not know are skipped, as RFC 7517 §5 asks, rather than failing
// the whole set.
func parseJWKS(body []byte) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, err
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if json.Unmarshal(raw, &k) != nil || !k.Valid() || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable signing key")
	}
	return keys, nil
}
