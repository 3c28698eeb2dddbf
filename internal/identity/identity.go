// Package identity tells who is calling the gateway from the token a request
// carries.
//
// A token is verified by an identity provider — JupyterHub ([Hub]: the Hub's
// API is asked whose token it is) or an OpenID Connect issuer ([OIDC]: a JWT
// checked against the issuer's published keys) — or compared with the
// gateway's shared secret ([Shared], EG_AUTH_TOKEN), whose holder is trusted
// to say for whom it acts. A [Chain] tries the configured authenticators in
// turn.
//
// The package knows nothing of HTTP serving: the server takes the token out
// of the request ([TokenFrom]) and maps the sentinel errors to statuses:
// [ErrNoToken] and [ErrInvalidToken] are 403, [ErrUnavailable] is 503.
//
// Tokens are secrets: nothing here logs them, puts them in an error, or keeps
// them in memory longer than a call (caches are keyed by their SHA-256).
package identity

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// Sources of an Identity.
const (
	SourceHub    = "jupyterhub"
	SourceOIDC   = "oidc"
	SourceShared = "shared-token"
)

// Identity is who a token belongs to.
type Identity struct {
	// Name is the user (or service) name; empty for the shared token, whose
	// holder names the user it acts for elsewhere (see Trusted).
	Name string
	// Admin may see and act on every user's kernels.
	Admin bool
	// Service is a JupyterHub service: neither a user nor an admin.
	Service bool
	// Groups are the provider's groups of the user, if it tells them.
	Groups []string
	// Source is the authenticator that vouched for it (Source* constants).
	Source string
}

// Trusted reports whether the caller holds the gateway's shared token: a
// component the operator trusts (Jupyter Server configured with
// EG_AUTH_TOKEN, a proxy that authenticated the user itself), which may say
// for which user it acts, as EG's KERNEL_USERNAME does.
func (id Identity) Trusted() bool { return id.Source == SourceShared }

// Authenticator identifies the owner of a token.
type Authenticator interface {
	// Identify returns the token's identity, or an error that wraps
	// ErrNoToken, ErrInvalidToken or ErrUnavailable.
	Identify(ctx context.Context, token string) (Identity, error)
}

var (
	// ErrNoToken: the request carried no token (answer 403).
	ErrNoToken = errors.New("no token")
	// ErrInvalidToken: the token is unknown, revoked, expired, forged or
	// meant for someone else (answer 403).
	ErrInvalidToken = errors.New("invalid token")
	// ErrUnavailable: the identity provider could not be asked (down, slow,
	// overloaded, answering nonsense), so the token is neither accepted nor
	// known to be bad. The gateway answers 503, not 403: the client did
	// nothing wrong and should retry, and Jupyter Server would otherwise
	// show users a permission error for an outage. Access is refused either
	// way, so this fails closed.
	ErrUnavailable = errors.New("identity provider unavailable")
)

// MaxTokenLen bounds the tokens looked at. Hub tokens are 32 characters and
// JWTs a few kilobytes; anything much larger is refused before it costs a
// hash, a parse or a request.
const MaxTokenLen = 16 << 10

// checkToken refuses tokens no provider could have issued: empty, too long,
// or with bytes that are not visible ASCII (they could not travel in an
// Authorization header, and net/http would fail on them in a way that looks
// like an outage).
func checkToken(token string) error {
	if token == "" {
		return ErrNoToken
	}
	if len(token) > MaxTokenLen {
		return fmt.Errorf("token longer than %d bytes: %w", MaxTokenLen, ErrInvalidToken)
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("token has a byte that is not visible ASCII: %w", ErrInvalidToken)
		}
	}
	return nil
}

// validName accepts a non-empty name without control characters: the name
// ends up in logs, records and KERNEL_USERNAME.
func validName(name string) bool {
	return name != "" && len(name) <= 256 && !strings.ContainsFunc(name, unicode.IsControl)
}

// TokenFrom returns the token of a request given its ?token= query value and
// its Authorization header: the query first, as Enterprise Gateway does, then
// the header with the scheme "token" (Jupyter, JupyterHub) or "Bearer"
// (OAuth 2.0), case-insensitively. It returns "" when there is none.
func TokenFrom(query, authorization string) string {
	if query != "" {
		return query
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !(strings.EqualFold(scheme, "token") || strings.EqualFold(scheme, "bearer")) {
		return ""
	}
	return strings.TrimSpace(token)
}

// Shared accepts the gateway's shared secret (EG_AUTH_TOKEN).
type Shared struct {
	sum [sha256.Size]byte
}

// NewShared returns an authenticator for the shared secret, which must not
// be empty (an empty EG_AUTH_TOKEN means no shared token, not "any token").
func NewShared(secret string) (*Shared, error) {
	if secret == "" {
		return nil, errors.New("identity: empty shared token")
	}
	return &Shared{sum: sha256.Sum256([]byte(secret))}, nil
}

// Identify accepts exactly the shared secret. The comparison is of SHA-256
// sums in constant time, so neither the content nor the length of the secret
// leaks through timing.
func (s *Shared) Identify(_ context.Context, token string) (Identity, error) {
	if err := checkToken(token); err != nil {
		return Identity{}, err
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(sum[:], s.sum[:]) != 1 {
		return Identity{}, fmt.Errorf("not the shared token: %w", ErrInvalidToken)
	}
	return Identity{Source: SourceShared}, nil
}

// Chain tries authenticators in order and returns the first identity one of
// them vouches for. Put the cheap ones first: Shared (a hash), then OIDC
// (a signature check, no request once keys are cached; it refuses a Hub
// token at once as a malformed JWT), then Hub (a request unless cached).
type Chain []Authenticator

// Identify returns the first identity found. When none is, the answer is
// ErrUnavailable if any authenticator could not decide — the token may be
// good with a provider that is down — and ErrInvalidToken otherwise.
func (c Chain) Identify(ctx context.Context, token string) (Identity, error) {
	if err := checkToken(token); err != nil {
		return Identity{}, err
	}
	var unavailable error
	for _, a := range c {
		id, err := a.Identify(ctx, token)
		if err == nil {
			return id, nil
		}
		if unavailable == nil && !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrNoToken) {
			// Anything that is not a definite "no" counts as undecided.
			unavailable = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if unavailable != nil {
		if !errors.Is(unavailable, ErrUnavailable) {
			unavailable = fmt.Errorf("%w: %w", ErrUnavailable, unavailable)
		}
		return Identity{}, unavailable
	}
	return Identity{}, fmt.Errorf("no authenticator accepts the token: %w", ErrInvalidToken)
}
