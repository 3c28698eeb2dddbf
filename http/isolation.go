package http

import (
	"errors"
	"fmt"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/valyala/fasthttp"
)

// Per-user isolation binds each kernel to the user that started it (its
// KERNEL_USERNAME). It is on when users are verified (Config.Identity) or
// when the operator turns it on for trusted callers that name their user
// in a header (Config.UserIsolation). A user then sees, uses and deletes
// only their own kernels: anyone else's answer 404 on every route, the
// websocket's upgrade included, as if they did not exist. Admins see and
// act on every kernel.

// visible reports whether c may see kernel m.
func visible(c caller, m actors.Model) bool { return c.all || c.user != "" && m.User == c.user }

// kernelFor returns the kernel's model when the caller may use it.
func (s *Server) kernelFor(ctx *fasthttp.RequestCtx, id string) (actors.Model, error) {
	m, err := s.gw.Kernel(id)
	if err == nil && !visible(s.caller(ctx), m) {
		err = fmt.Errorf("%w: Kernel does not exist: %s", actors.ErrNoSuchKernel, id)
	}
	return m, err
}

// startKernel starts a kernel for the caller: its KERNEL_USERNAME is the
// caller, and naming anyone else is refused. Under isolation a client-chosen
// KERNEL_ID that is taken gets the answer of an id that cannot be used, the
// same whoever holds it, so that nobody learns whose ids are live.
func (s *Server) startKernel(ctx *fasthttp.RequestCtx, req actors.StartRequest) (actors.Model, error) {
	c := s.caller(ctx)
	switch {
	case c.user != "":
		if u, ok := req.Env["KERNEL_USERNAME"]; ok && u != c.user {
			return actors.Model{}, &Error{Status: fasthttp.StatusForbidden, Message: fmt.Sprintf("KERNEL_USERNAME %v is not the requesting user", u)}
		}
		if req.Env == nil {
			req.Env = map[string]any{}
		}
		req.Env["KERNEL_USERNAME"] = c.user
	case !c.all:
		return actors.Model{}, &Error{Status: fasthttp.StatusForbidden, Message: "the caller acts for no user (a JupyterHub service): it cannot start kernels"}
	}
	m, err := s.gw.StartKernel(req)
	if !c.all && errors.Is(err, actors.ErrConflict) {
		err = fmt.Errorf("%w: KERNEL_ID %v cannot be used: choose another or leave it out", actors.ErrBadRequest, req.Env["KERNEL_ID"])
	}
	return m, err
}
