package http

import (
	"crypto/subtle"
	"errors"
	"slices"
	"strings"

	"github.com/kernelgate/kernelgate/internal/identity"
	"github.com/kernelgate/kernelgate/internal/lograte"
	"github.com/valyala/fasthttp"
)

// Who is calling. Every API request is authenticated once, in dispatch,
// and the handlers read the result (caller) from the request.
//
// Without identity providers (Config.Identity nil) the check is Enterprise
// Gateway's: the shared token (AuthToken), if one is set, or nothing; a
// wrong token gets 401. Callers are trusted to say for whom they act.
//
// With identity providers the request's token must be the shared token or
// one a provider vouches for; anything else gets 403 (JupyterHub's answer)
// and a provider that cannot answer 503. A verified caller is its user:
// the user header and KERNEL_USERNAME are believed only from the shared
// token's holder (identity.Identity.Trusted).

// caller is who a request acts for.
type caller struct {
	// user owns the kernels the request starts and sessions it makes, and
	// sees its own kernels; "" when the request acts for no user.
	user string
	// all: sees and acts on every kernel — an admin, a trusted caller that
	// names no user, or anyone when kernels are not isolated.
	all bool
}

// unrestricted is the caller of a gateway without isolation: as in EG,
// everyone sees every kernel and KERNEL_USERNAME is taken as sent.
var unrestricted = caller{all: true}

// callerKey is the request's user value holding its caller.
type callerKey struct{}

// isolated reports whether kernels belong to their users: the operator
// turned it on, or users are verified.
func (s *Server) isolated() bool { return s.cfg.UserIsolation || s.cfg.Identity != nil }

// authenticate tells who sent the request, or answers with the error.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx) (caller, error) {
	if s.auth == nil {
		if !s.sharedToken(ctx) {
			return caller{}, errorf(fasthttp.StatusUnauthorized, "")
		}
		return s.trusted(ctx)
	}
	id, err := s.identify(ctx)
	switch {
	case err != nil:
		return caller{}, err
	case id.Trusted():
		return s.trusted(ctx)
	case id.Service:
		// A JupyterHub service acts for no user: it may read kernelspecs,
		// sees no kernels and cannot start one.
		return caller{}, nil
	}
	return caller{user: id.Name, all: id.Admin || s.admin(id.Name)}, nil
}

// identify asks the authenticators whose the request's token is.
func (s *Server) identify(ctx *fasthttp.RequestCtx) (identity.Identity, error) {
	token := identity.TokenFrom(string(ctx.QueryArgs().Peek("token")), string(ctx.Request.Header.Peek("Authorization")))
	id, err := s.auth.Identify(ctx, token)
	switch {
	case err == nil:
		return id, nil
	case errors.Is(err, identity.ErrNoToken):
		return id, errorf(fasthttp.StatusForbidden, "a token is required: 'Authorization: token <token>' or 'Authorization: Bearer <token>'")
	case errors.Is(err, identity.ErrUnavailable):
		// Never 403: the token may be good, and clients would show a
		// permission error for an outage. The error names the provider,
		// never the token.
		if n := s.authUnavailable.Add(1); lograte.Crossed(n-1, n) {
			s.cfg.Logger.Warn().Err(err).Uint64("count", n).Msg("identity provider unavailable; requests refused with 503")
		}
		return id, errorf(fasthttp.StatusServiceUnavailable, "the identity provider cannot be reached: try again later")
	}
	return id, errorf(fasthttp.StatusForbidden, "the token is not valid")
}

// trusted is the caller of a request that holds the shared token (or of any
// request when no token is configured): it acts for the user it names in
// the user header. Naming none, it sees every kernel and starts kernels for
// the KERNEL_USERNAME it sends, as in EG — unless the operator turned
// isolation on, which makes naming a user a must.
func (s *Server) trusted(ctx *fasthttp.RequestCtx) (caller, error) {
	if !s.isolated() {
		return unrestricted, nil
	}
	if u := string(ctx.Request.Header.Peek(s.cfg.UserHeader)); u != "" {
		return caller{user: u, all: s.admin(u)}, nil
	}
	if s.cfg.UserIsolation {
		return caller{}, &Error{Status: fasthttp.StatusForbidden,
			Message: "per-user isolation is on: requests must name their user in the " + s.cfg.UserHeader + " header"}
	}
	return unrestricted, nil
}

func (s *Server) admin(user string) bool { return slices.Contains(s.cfg.AdminUsers, user) }

// sharedToken is EG's check: ?token= first, and only when that is absent
// the "Authorization: token …" header. No configured token lets everyone in.
func (s *Server) sharedToken(ctx *fasthttp.RequestCtx) bool {
	if s.cfg.AuthToken == "" {
		return true
	}
	var got []byte
	if q := ctx.QueryArgs(); q.Has("token") {
		got = q.Peek("token")
	} else if h := ctx.Request.Header.Peek("Authorization"); len(h) > 6 && strings.EqualFold(string(h[:6]), "token ") {
		got = h[6:]
	}
	return subtle.ConstantTimeCompare(got, []byte(s.cfg.AuthToken)) == 1
}

// caller returns the request's caller, set by dispatch.
func (s *Server) caller(ctx *fasthttp.RequestCtx) caller {
	c, _ := ctx.UserValue(callerKey{}).(caller)
	return c
}

// metricsAllowed guards /metrics under Config.MetricsAuth: the shared token
// (EG's check), or with identity providers that or an admin's token.
func (s *Server) metricsAllowed(ctx *fasthttp.RequestCtx) error {
	switch {
	case !s.cfg.MetricsAuth:
		return nil
	case s.auth == nil:
		if !s.sharedToken(ctx) {
			return errorf(fasthttp.StatusUnauthorized, "")
		}
		return nil
	}
	id, err := s.identify(ctx)
	if err != nil {
		return err
	}
	if !id.Trusted() && !id.Admin && (id.Service || !s.admin(id.Name)) {
		return errorf(fasthttp.StatusForbidden, "metrics are for admins")
	}
	return nil
}
