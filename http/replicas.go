package http

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/http/framing"
	"github.com/valyala/fasthttp"
)

// The replicas of a group (see actors.Replication) ask each other on
// internal endpoints below the base URL, authenticated by the group's
// shared secret (Config.ReplicaToken) in a header of their own, never by a
// user's token:
//
//	POST {base}/_kernelgate/replica/kernels/{id}/{interrupt|restart|shutdown}
//	POST {base}/_kernelgate/replica/kernels/{id}/sessions/{session}/handover
const (
	replicaPrefix      = "_kernelgate"
	replicaTokenHeader = "X-Kernelgate-Replica-Token"
)

// replicaRoute matches the internal endpoints (segs below the base URL).
func (s *Server) replicaRoute(segs []string) (route, bool) {
	if s.cfg.ReplicaToken == "" || len(segs) < 5 || segs[0] != replicaPrefix || segs[1] != "replica" || segs[2] != "kernels" || !isKernelID(segs[3]) {
		return route{}, false
	}
	switch {
	case len(segs) == 5 && (segs[4] == "interrupt" || segs[4] == "restart" || segs[4] == "shutdown"):
		return route{name: "replica_action", handler: s.replicaAct, params: segs[3:], public: true}, true
	case len(segs) == 7 && segs[4] == "sessions" && segs[6] == "handover":
		return route{name: "replica_handover", handler: s.replicaHandover, params: []string{segs[3], segs[5]}, public: true}, true
	}
	return route{}, false
}

// replicaAuthorized checks the group's secret.
func (s *Server) replicaAuthorized(ctx *fasthttp.RequestCtx) bool {
	got := ctx.Request.Header.Peek(replicaTokenHeader)
	return subtle.ConstantTimeCompare(got, []byte(s.cfg.ReplicaToken)) == 1
}

func (s *Server) replicaAct(ctx *fasthttp.RequestCtx, p []string) error {
	if !ctx.IsPost() {
		return errMethod
	}
	if !s.replicaAuthorized(ctx) {
		return errorf(fasthttp.StatusUnauthorized, "")
	}
	m, err := s.gw.Act(p[0], p[1])
	if errors.Is(err, actors.ErrNotOwner) {
		return &Error{Status: fasthttp.StatusMisdirectedRequest, Message: err.Error()}
	}
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, m)
	return nil
}

// handoverBody is a Handover on the wire; routed messages travel in the v1
// websocket framing, base64.
type handoverBody struct {
	actors.Handover
	Routed []string `json:"routed,omitempty"`
}

func (s *Server) replicaHandover(ctx *fasthttp.RequestCtx, p []string) error {
	if !ctx.IsPost() {
		return errMethod
	}
	if !s.replicaAuthorized(ctx) {
		return errorf(fasthttp.StatusUnauthorized, "")
	}
	h, err := s.gw.Handover(p[0], p[1])
	if err != nil {
		return err
	}
	body := handoverBody{Handover: h}
	for _, r := range h.Routed {
		frame, _ := framing.V1{}.Encode(nil, r.Channel, r.Msg)
		body.Routed = append(body.Routed, base64.StdEncoding.EncodeToString(frame))
	}
	writeJSON(ctx, fasthttp.StatusOK, body)
	return nil
}

// ReplicaClient asks the other replicas of the group (actors.Peers), with
// the group's secret.
type ReplicaClient struct {
	Token  string
	Client *nethttp.Client
}

var _ actors.Peers = (*ReplicaClient)(nil)

// NewReplicaClient returns a client with sane timeouts; tlsConfig, when
// set, is how it calls replicas that serve TLS.
func NewReplicaClient(token string, tlsConfig *tls.Config) *ReplicaClient {
	return &ReplicaClient{Token: token, Client: &nethttp.Client{Timeout: 2 * time.Minute,
		Transport: &nethttp.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute, TLSClientConfig: tlsConfig}}}
}

func (c *ReplicaClient) post(ctx context.Context, base string, path []string, out any) error {
	u := strings.TrimRight(base, "/") + "/" + replicaPrefix + "/replica"
	for _, p := range path {
		u += "/" + url.PathEscape(p)
	}
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodPost, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set(replicaTokenHeader, c.Token)
	resp, err := c.Client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w: replica %s: %w", actors.ErrKernelUnavailable, actors.ErrOwnerGone, base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%w: replica %s: %w", actors.ErrKernelUnavailable, base, err)
	}
	if resp.StatusCode != nethttp.StatusOK {
		var e struct{ Message string }
		json.Unmarshal(b, &e)
		return replicaError(resp.StatusCode, e.Message)
	}
	return json.Unmarshal(b, out)
}

// replicaError maps another replica's error answer back to the sentinel
// its status stands for, so that the client gets the same answer here.
func replicaError(status int, msg string) error {
	sentinel := actors.ErrKernelUnavailable
	switch status {
	case nethttp.StatusNotFound:
		sentinel = actors.ErrNoSuchKernel
	case nethttp.StatusBadRequest:
		sentinel = actors.ErrBadRequest
	case nethttp.StatusForbidden:
		sentinel = actors.ErrForbidden
	case nethttp.StatusInternalServerError:
		sentinel = actors.ErrKernelDied
	case nethttp.StatusMisdirectedRequest:
		// It was the owner when asked, no longer: ownership is moving.
		return fmt.Errorf("%w: %w: %s", actors.ErrKernelUnavailable, actors.ErrOwnerGone, msg)
	}
	return fmt.Errorf("%w: %s", sentinel, msg)
}

// Act asks the replica at base to act on a kernel it owns.
func (c *ReplicaClient) Act(ctx context.Context, base, kernelID, action string) (actors.Model, error) {
	var m actors.Model
	err := c.post(ctx, base, []string{"kernels", kernelID, action}, &m)
	return m, err
}

// Handover asks the replica at base where a session stands.
func (c *ReplicaClient) Handover(ctx context.Context, base, kernelID, sessionID string) (actors.Handover, error) {
	var body handoverBody
	if err := c.post(ctx, base, []string{"kernels", kernelID, "sessions", sessionID, "handover"}, &body); err != nil {
		return actors.Handover{}, err
	}
	h := body.Handover
	for _, r := range body.Routed {
		frame, err := base64.StdEncoding.DecodeString(r)
		if err != nil {
			return actors.Handover{}, fmt.Errorf("handover: %w", err)
		}
		ch, m, err := framing.V1{}.Decode(bytes.Clone(frame), false)
		if err != nil {
			return actors.Handover{}, fmt.Errorf("handover: %w", err)
		}
		h.Routed = append(h.Routed, actors.Routed{Channel: ch, Msg: m})
	}
	return h, nil
}
