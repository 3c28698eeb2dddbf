package http

import (
	"encoding/json"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/valyala/fasthttp"
)

// kernels serves /api/kernels: GET lists (when listing is on), POST starts.
func (s *Server) kernels(ctx *fasthttp.RequestCtx, _ []string) error {
	switch {
	case ctx.IsGet():
		if !s.cfg.ListKernels {
			return &Error{Status: fasthttp.StatusForbidden, Message: "Forbidden: kernel listing is disabled (EG_LIST_KERNELS)"}
		}
		c := s.caller(ctx)
		all := s.gw.Kernels()
		out := all[:0]
		for _, m := range all {
			if visible(c, m) {
				out = append(out, m)
			}
		}
		writeJSON(ctx, fasthttp.StatusOK, out)
		return nil
	case ctx.IsPost():
		req, err := parseStartRequest(ctx.PostBody())
		if err != nil {
			return err
		}
		m, err := s.startKernel(ctx, req)
		if err != nil {
			return err
		}
		ctx.Response.Header.Set("Location", s.cfg.BaseURL+"api/kernels/"+m.ID)
		writeJSON(ctx, fasthttp.StatusCreated, m)
		return nil
	}
	return errMethod
}

// parseStartRequest reads a POST /api/kernels body: {"name", "env", "path"},
// all optional; an empty body starts the default kernel.
func parseStartRequest(body []byte) (actors.StartRequest, error) {
	var req actors.StartRequest
	if len(body) == 0 {
		return req, nil
	}
	var raw struct {
		Name *json.RawMessage `json:"name"`
		Env  *json.RawMessage `json:"env"`
		Path *json.RawMessage `json:"path"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return req, errorf(fasthttp.StatusBadRequest, "Invalid JSON in body of request")
	}
	field := func(name string, src *json.RawMessage, dst any) error {
		if src == nil || string(*src) == "null" {
			return nil
		}
		if err := json.Unmarshal(*src, dst); err != nil {
			return errorf(fasthttp.StatusBadRequest, "'"+name+"' has the wrong type")
		}
		return nil
	}
	if err := field("name", raw.Name, &req.Name); err != nil {
		return req, err
	}
	if err := field("env", raw.Env, &req.Env); err != nil {
		return req, err
	}
	if err := field("path", raw.Path, &req.Path); err != nil {
		return req, err
	}
	return req, nil
}

// kernel serves /api/kernels/{id}: GET the model, DELETE shuts down.
func (s *Server) kernel(ctx *fasthttp.RequestCtx, p []string) error {
	id := p[0]
	if !ctx.IsGet() && !ctx.IsDelete() {
		return errMethod
	}
	m, err := s.kernelFor(ctx, id)
	if err != nil {
		return err
	}
	switch {
	case ctx.IsGet():
		writeJSON(ctx, fasthttp.StatusOK, m)
		return nil
	case ctx.IsDelete():
		if err := s.gw.Shutdown(id); err != nil {
			return err
		}
		s.sessions.forgetKernel(id)
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return nil
	}
	return errMethod
}

// kernelAction serves POST /api/kernels/{id}/interrupt and …/restart.
func (s *Server) kernelAction(ctx *fasthttp.RequestCtx, p []string) error {
	if !ctx.IsPost() {
		return errMethod
	}
	id, action := p[0], p[1]
	if _, err := s.kernelFor(ctx, id); err != nil {
		return err
	}
	if action == "interrupt" {
		if err := s.gw.Interrupt(id); err != nil {
			return err
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return nil
	}
	m, err := s.gw.Restart(id)
	if err != nil {
		if statusOf(err) == fasthttp.StatusNotFound {
			return err
		}
		return &Error{Status: fasthttp.StatusInternalServerError, Message: "Exception restarting kernel: " + err.Error()}
	}
	writeJSON(ctx, fasthttp.StatusOK, m)
	return nil
}
