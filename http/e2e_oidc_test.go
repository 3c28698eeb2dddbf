package http

import (
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/internal/identity"
	"github.com/kernelgate/kernelgate/internal/oidctest"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

// bearer returns the headers of a request with an OAuth bearer token.
func bearer(token string, more ...string) []string {
	return append([]string{"Authorization", "Bearer " + token}, more...)
}

// TestE2EOIDC: with a real OpenID Connect provider (Dex), Jupyter Server
// sending alice's JWT as its bearer token starts kernels that are alice's;
// members of the admin group see every kernel, a token issued to another
// application is refused, and a provider that cannot be reached gives 503.
func TestE2EOIDC(t *testing.T) {
	dex := oidctest.Start(t, oidctest.Options{})
	newOIDC := func() *identity.OIDC {
		o, err := identity.NewOIDC(identity.OIDCConfig{Issuer: dex.Issuer, Audience: oidctest.ClientID,
			AdminGroups: []string{oidctest.AdminGroup}})
		testkit.NoError(t, err)
		t.Cleanup(func() { o.Close() })
		return o
	}
	gw := newHarness(t, func(c *Config, _ *actors.Config) { c.Identity = newOIDC() })
	alice := dex.Token(t, oidctest.Alice, oidctest.ClientID).IDToken
	bob := dex.Token(t, oidctest.Bob, oidctest.ClientID).IDToken // in the admin group

	gw.token = alice
	js := jupyterServer(t, gw, "JUPYTER_GATEWAY_AUTH_SCHEME=Bearer")
	sess := decode[map[string]any](t, js.expect("POST", "/api/sessions", `{"path":"o.ipynb","type":"notebook","name":"o","kernel":{"name":"python3"}}`, 201))
	id := sess["kernel"].(map[string]any)["id"].(string)
	k, err := gw.gw.Kernel(id)
	testkit.NoError(t, err)
	testkit.Equal(t, k.User, oidctest.Alice)
	w := js.dialWS(id, "oidc", false)
	w.ready(60 * time.Second)
	testkit.Equal(t, w.output(`import os; print(os.environ["KERNEL_USERNAME"])`), oidctest.Alice)

	gw.token = ""
	testkit.Equal(t, len(decode[[]actors.Model](t, gw.expect("GET", "/api/kernels", "", 200, bearer(bob)...))), 1)
	gw.expect("GET", "/api/kernels/"+id, "", 200, bearer(bob)...)
	other := dex.Token(t, oidctest.Alice, oidctest.OtherClientID).IDToken
	gw.expect("GET", "/api/kernels/"+id, "", 403, bearer(other)...)
	gw.expect("GET", "/api/kernels/"+id, "", 403, bearer(alice[:len(alice)-4]+"AAAA")...) // forged signature

	// Dex goes away: keys at hand go on verifying; a gateway that has
	// none yet cannot tell, and says so with 503.
	dex.Stop()
	gw.expect("GET", "/api/kernels/"+id, "", 200, bearer(alice)...)
	fresh := newHarness(t, func(c *Config, _ *actors.Config) { c.Identity = newOIDC() })
	fresh.expect("GET", "/api/kernels", "", 503, bearer(alice)...)

	js.expect("DELETE", "/api/sessions/"+sess["id"].(string), "", 204)
}
