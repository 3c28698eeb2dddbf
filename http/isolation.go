package http

import (
	"errors"
	"fmt"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/valyala/fasthttp"
)

// Per-user isolation (Config.UserIsolation) binds each kernel to the
// KERNEL_USERNAME that started it. Every request then says whose it is in
// the Config.UserHeader header (set by the caller's Jupyter Server through
// its gateway headers, or by an authenticating proxy), and a user sees,
// uses and deletes only their own kernels: anyone else's answer 404, as if
// they did not exist.

// caller is the user a request acts for; "" when isolation is off.
func (s *Server) caller(ctx *fasthttp.RequestCtx) (string, error) {
	if !s.cfg.UserIsolation {
		return "", nil
	}
	u := string(ctx.Request.Header.Peek(s.cfg.UserHeader))
	if u == "" {
		return "", &Error{Status: fasthttp.StatusForbidden,
			Message: "per-user isolation is on: requests must name their user in the " + s.cfg.UserHeader + " header"}
	}
	return u, nil
}

// visible reports whether caller may see kernel m.
func visible(caller string, m actors.Model) bool { return caller == "" || m.User == caller }

// kernelFor returns the kernel's model when the caller may use it.
func (s *Server) kernelFor(ctx *fasthttp.RequestCtx, id string) (actors.Model, error) {
	caller, err := s.caller(ctx)
	if err != nil {
		return actors.Model{}, err
	}
	m, err := s.gw.Kernel(id)
	if err == nil && !visible(caller, m) {
		err = fmt.Errorf("%w: Kernel does not exist: %s", actors.ErrNoSuchKernel, id)
	}
	return m, err
}

// startKernel starts a kernel for the caller: its KERNEL_USERNAME is the
// caller, and naming anyone else is refused. Under isolation a client-chosen
// KERNEL_ID that is taken gets the answer of an id that cannot be used, the
// same whoever holds it, so that nobody learns whose ids are live.
func (s *Server) startKernel(ctx *fasthttp.RequestCtx, req actors.StartRequest) (actors.Model, error) {
	caller, err := s.caller(ctx)
	if err != nil {
		return actors.Model{}, err
	}
	if caller != "" {
		if u, ok := req.Env["KERNEL_USERNAME"]; ok && u != caller {
			return actors.Model{}, &Error{Status: fasthttp.StatusForbidden, Message: fmt.Sprintf("KERNEL_USERNAME %v is not the requesting user", u)}
		}
		if req.Env == nil {
			req.Env = map[string]any{}
		}
		req.Env["KERNEL_USERNAME"] = caller
	}
	m, err := s.gw.StartKernel(req)
	if caller != "" && errors.Is(err, actors.ErrConflict) {
		err = fmt.Errorf("%w: KERNEL_ID %v cannot be used: choose another or leave it out", actors.ErrBadRequest, req.Env["KERNEL_ID"])
	}
	return m, err
}
