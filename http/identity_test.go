package http

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/internal/identity"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

// fakeIdentity vouches for the tokens it knows; the token "down" stands for
// a provider that cannot answer.
type fakeIdentity map[string]identity.Identity

func (f fakeIdentity) Identify(_ context.Context, token string) (identity.Identity, error) {
	switch id, ok := f[token]; {
	case token == "":
		return identity.Identity{}, identity.ErrNoToken
	case token == "down":
		return identity.Identity{}, fmt.Errorf("hub at http://hub: %w", identity.ErrUnavailable)
	case ok:
		return id, nil
	}
	return identity.Identity{}, identity.ErrInvalidToken
}

var people = fakeIdentity{
	"alice-tok": {Name: "alice", Source: identity.SourceHub},
	"bob-tok":   {Name: "bob", Source: identity.SourceOIDC},
	"admin-tok": {Name: "hubadmin", Admin: true, Source: identity.SourceHub},
	"carol-tok": {Name: "carol", Source: identity.SourceHub}, // in AdminUsers
	"svc-tok":   {Name: "carol", Service: true, Source: identity.SourceHub},
	"root-tok":  {Name: "root", Source: identity.SourceHub},
}

// auth returns the headers of a request sent with token.
func auth(token string, more ...string) []string {
	return append([]string{"Authorization", "token " + token}, more...)
}

// upgrade returns the headers of a websocket upgrade.
func upgrade(headers ...string) []string {
	return append(headers, "Connection", "Upgrade", "Upgrade", "websocket",
		"Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
}

// TestVerifiedUsersOwnTheirKernels: with an identity provider, a kernel
// belongs to the user whose token started it, whatever the request claims,
// and every route answers 404 to anyone else but admins.
func TestVerifiedUsersOwnTheirKernels(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *actors.Config) {
		c.Identity, c.AuthToken, c.AdminUsers, c.MetricsAuth = people, "shared-tok", []string{"carol"}, true
	})
	h.token = ""
	// Jupyter Server 1.23 sends no KERNEL_USERNAME: the token says who.
	m := decode[actors.Model](t, h.expect("POST", "/api/kernels", `{"name":"synthetic"}`, 201, auth("alice-tok")...))
	id := m.ID
	owner := func(id string) string {
		k, err := h.gw.Kernel(id)
		testkit.NoError(t, err)
		return k.User
	}
	testkit.Equal(t, owner(id), "alice")
	sess := decode[map[string]any](t, h.expect("POST", "/api/sessions", `{"path":"a.ipynb","type":"notebook","kernel":{"id":"`+id+`"}}`, 201, auth("alice-tok")...))["id"].(string)

	// Claiming someone else, by KERNEL_USERNAME or by header, changes nothing.
	h.expect("POST", "/api/kernels", `{"name":"synthetic","env":{"KERNEL_USERNAME":"bob"}}`, 403, auth("alice-tok")...)
	for _, headers := range [][]string{auth("bob-tok"), auth("bob-tok", "X-Kernelgate-User", "alice")} {
		testkit.Equal(t, len(decode[[]actors.Model](t, h.expect("GET", "/api/kernels", "", 200, headers...))), 0)
		testkit.Equal(t, len(decode[[]map[string]any](t, h.expect("GET", "/api/sessions", "", 200, headers...))), 0)
		for _, r := range []struct{ method, path string }{
			{"GET", "/api/kernels/" + id}, {"DELETE", "/api/kernels/" + id},
			{"POST", "/api/kernels/" + id + "/interrupt"}, {"POST", "/api/kernels/" + id + "/restart"},
			{"GET", "/api/sessions/" + sess}, {"PATCH", "/api/sessions/" + sess}, {"DELETE", "/api/sessions/" + sess},
		} {
			h.expect(r.method, r.path, `{"path":"x"}`, 404, headers...)
		}
		h.expect("GET", "/api/kernels/"+id+"/channels", "", 404, upgrade(headers...)...)
		h.expect("POST", "/api/sessions", `{"path":"b.ipynb","type":"notebook","kernel":{"id":"`+id+`"}}`, 400, headers...)
	}
	bobs := decode[actors.Model](t, h.expect("POST", "/api/kernels", `{"name":"synthetic"}`, 201, auth("bob-tok", "X-Kernelgate-User", "alice")...)).ID
	testkit.Equal(t, owner(bobs), "bob")

	// The query token works as the header does (browsers' websockets).
	status, _, _ := h.do("GET", "/api/kernels/"+id+"?token=alice-tok", "", "Authorization", "")
	testkit.Equal(t, status, 200)
	status, _, _ = h.do("GET", "/api/kernels/"+id+"?token=bob-tok", "", "Authorization", "token alice-tok") // the query wins
	testkit.Equal(t, status, 404)

	// Admins — the provider's, and those of AdminUsers — see and act on
	// every kernel; their own starts are theirs.
	for _, tok := range []string{"admin-tok", "carol-tok"} {
		testkit.Equal(t, len(decode[[]actors.Model](t, h.expect("GET", "/api/kernels", "", 200, auth(tok)...))), 2)
		h.expect("GET", "/api/kernels/"+id, "", 200, auth(tok)...)
		h.expect("GET", "/api/sessions/"+sess, "", 200, auth(tok)...)
		h.expect("POST", "/api/kernels", `{"name":"synthetic","env":{"KERNEL_USERNAME":"alice"}}`, 403, auth(tok)...)
	}
	h.expect("POST", "/api/kernels/"+id+"/interrupt", "", 204, auth("admin-tok")...)

	// A JupyterHub service acts for no user: kernelspecs only.
	h.expect("GET", "/api/kernelspecs", "", 200, auth("svc-tok")...)
	testkit.Equal(t, len(decode[[]actors.Model](t, h.expect("GET", "/api/kernels", "", 200, auth("svc-tok")...))), 0)
	h.expect("GET", "/api/kernels/"+id, "", 404, auth("svc-tok")...)
	h.expect("POST", "/api/kernels", `{"name":"synthetic"}`, 403, auth("svc-tok")...)

	// EG's user lists apply to the verified name: root may not start kernels.
	h.expect("POST", "/api/kernels", `{"name":"synthetic"}`, 403, auth("root-tok")...)
	// The kernelspec filter is the caller's: bob cannot list alice's
	// restricted kernelspec by asking as her.
	specs := func(headers []string, query string) map[string]any {
		return decode[map[string]any](t, h.expect("GET", "/api/kernelspecs"+query, "", 200, headers...))["kernelspecs"].(map[string]any)
	}
	_, ok := specs(auth("alice-tok"), "")["restricted"]
	testkit.True(t, ok, "alice cannot list her kernelspec")
	_, ok = specs(auth("bob-tok"), "?user=alice")["restricted"]
	testkit.True(t, !ok, "bob lists alice's kernelspec")

	// No token, a bad one: 403 with EG's error body; a provider that cannot
	// answer: 503, never 403.
	for _, headers := range [][]string{{"Authorization", ""}, auth("garbage"), {"Authorization", "Bearer garbage"}, auth("")} {
		b := h.expect("GET", "/api/kernels", "", 403, headers...)
		testkit.True(t, !strings.Contains(string(b), "garbage"), "the answer quotes the token: %s", b)
	}
	h.expect("GET", "/api/kernels/"+id+"/channels", "", 403, upgrade("Authorization", "token garbage")...)
	h.expect("GET", "/api/kernels", "", 503, auth("down")...)
	h.expect("GET", "/api/kernels/"+id+"/channels", "", 503, upgrade(auth("down")...)...)

	// The shared token's holder is trusted: it names its user in the header,
	// or, naming none, sees everything and starts kernels for the
	// KERNEL_USERNAME it sends, as with EG.
	testkit.Equal(t, len(decode[[]actors.Model](t, h.expect("GET", "/api/kernels", "", 200, auth("shared-tok")...))), 2)
	testkit.Equal(t, len(decode[[]actors.Model](t, h.expect("GET", "/api/kernels", "", 200, auth("shared-tok", "X-Kernelgate-User", "bob")...))), 1)
	h.expect("POST", "/api/kernels", `{"name":"synthetic","env":{"KERNEL_USERNAME":"alice"}}`, 403, auth("shared-tok", "X-Kernelgate-User", "bob")...)
	dave := decode[actors.Model](t, h.expect("POST", "/api/kernels", `{"name":"synthetic","env":{"KERNEL_USERNAME":"dave"}}`, 201, auth("shared-tok")...)).ID
	testkit.Equal(t, owner(dave), "dave")

	// Metrics (behind auth here) are for admins and the trusted.
	h.expect("GET", "/metrics", "", 403, auth("alice-tok")...)
	h.expect("GET", "/metrics", "", 403, auth("svc-tok")...)
	h.expect("GET", "/metrics", "", 403, "Authorization", "")
	h.expect("GET", "/metrics", "", 200, auth("admin-tok")...)
	h.expect("GET", "/metrics", "", 200, auth("shared-tok", "X-Kernelgate-User", "bob")...)
	h.expect("GET", "/healthz", "", 200, "Authorization", "")

	// Alice's kernel is still hers to delete.
	h.expect("DELETE", "/api/kernels/"+id, "", 204, auth("alice-tok")...)
}
