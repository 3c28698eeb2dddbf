package http

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/valyala/fasthttp"
)

// Error is an HTTP error with its status; Message is shown to the client.
type Error struct {
	Status  int
	Message string
	// Reason overrides the status phrase in the body's "reason".
	Reason string
}

func (e *Error) Error() string { return e.Message }

// errorf builds an Error.
func errorf(status int, msg string) *Error { return &Error{Status: status, Message: msg} }

// statusOf maps the gateway's sentinel errors to status codes.
func statusOf(err error) int {
	var he *Error
	switch {
	case errors.As(err, &he):
		return he.Status
	case errors.Is(err, actors.ErrNoSuchKernel), errors.Is(err, actors.ErrNoSuchKernelSpec):
		return fasthttp.StatusNotFound
	case errors.Is(err, actors.ErrBadRequest):
		return fasthttp.StatusBadRequest
	case errors.Is(err, actors.ErrForbidden), errors.Is(err, actors.ErrLimit):
		return fasthttp.StatusForbidden
	case errors.Is(err, actors.ErrConflict):
		return fasthttp.StatusConflict
	case errors.Is(err, actors.ErrShuttingDown), errors.Is(err, actors.ErrKernelUnavailable):
		return fasthttp.StatusServiceUnavailable
	case errors.Is(err, actors.ErrLaunchTimeout):
		return fasthttp.StatusInternalServerError // EG's answer to a start that timed out
	case errors.Is(err, actors.ErrTimeout):
		return fasthttp.StatusGatewayTimeout
	case errors.Is(err, actors.ErrKernelDied),
		errors.Is(err, proxy.ErrLaunch), errors.Is(err, proxy.ErrUnknownProxy):
		return fasthttp.StatusInternalServerError
	}
	return fasthttp.StatusInternalServerError
}

// writeError answers with the JSON error shape clients parse. A server
// error also gets an id, in the body and returned for the log line, so that
// an operator finds what a user reports.
func writeError(ctx *fasthttp.RequestCtx, err error) (id string) {
	status := statusOf(err)
	reason := fasthttp.StatusMessage(status)
	var he *Error
	if errors.As(err, &he) && he.Reason != "" {
		reason = he.Reason
	}
	if errors.Is(err, actors.ErrLimit) {
		reason = "Resource Limit" // what EG says; clients show it
	}
	body := map[string]string{"reason": reason, "message": err.Error()}
	if status >= 500 {
		var b [6]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
		body["error_id"] = id
	}
	writeJSON(ctx, status, body)
	return id
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = fasthttp.StatusInternalServerError, []byte(`{"reason":"Internal Server Error","message":"encoding the response failed"}`)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}
