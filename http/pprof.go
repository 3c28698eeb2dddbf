package http

import (
	"net/http/pprof"
	"strconv"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// pprofProfiles are the profiles served under <base>debug/pprof/ when
// Config.Pprof is on; the command line is not among them (a token given as
// a flag would show).
var pprofProfiles = map[string]fasthttp.RequestHandler{
	"":        fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Index),
	"profile": fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Profile),
	"trace":   fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Trace),
	"symbol":  fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Symbol),
}

// pprofNamed are the runtime's named profiles.
var pprofNamed = []string{"allocs", "block", "goroutine", "heap", "mutex", "threadcreate"}

func init() {
	for _, name := range pprofNamed {
		pprofProfiles[name] = fasthttpadaptor.NewFastHTTPHandler(pprof.Handler(name))
	}
}

// pprofHandler serves GET <base>debug/pprof/[name], Go's profiles, to
// callers who see every kernel (the shared token's holder, an admin).
func (s *Server) pprofHandler(ctx *fasthttp.RequestCtx, p []string) error {
	if !ctx.IsGet() && !ctx.IsPost() { // pprof's symbol lookup posts
		return errMethod
	}
	if !s.caller(ctx).all {
		return errorf(fasthttp.StatusForbidden, "profiles are for admins")
	}
	name := ""
	if len(p) > 0 {
		name = p[0]
	}
	h, ok := pprofProfiles[name]
	if len(p) > 1 || !ok {
		return errorf(fasthttp.StatusNotFound, "no profile "+strconv.Quote(name))
	}
	// net/http/pprof reads the profile's name from the path below
	// /debug/pprof/, whatever the base URL.
	ctx.URI().SetPath("/debug/pprof/" + name)
	h(ctx)
	return nil
}
