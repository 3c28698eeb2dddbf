package http

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	nethttp "net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/internal/hubtest"
	"github.com/kernelgate/kernelgate/internal/identity"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

// lateIdentity is an authenticator set after the gateway has started: the
// Hub needs the gateway's URL for its users' servers before the gateway
// can be given the Hub.
type lateIdentity struct{ a atomic.Pointer[identity.Hub] }

func (l *lateIdentity) Identify(ctx context.Context, token string) (identity.Identity, error) {
	h := l.a.Load()
	if h == nil {
		return identity.Identity{}, identity.ErrUnavailable
	}
	return h.Identify(ctx, token)
}

// TestE2EJupyterHub: a real JupyterHub whose users' single-user servers run
// in gateway mode against kernelgate, each sending its own Hub API token.
// A kernel started through alice's server (through the Hub's proxy) is
// alice's in kernelgate and runs code; bob's server can neither see nor
// reach it, nor can bob directly with his token, a spoofed user header, a
// garbage token, or alice's token once revoked (after the cache TTL).
func TestE2EJupyterHub(t *testing.T) {
	hubtest.Require(t)
	const ttl = 2 * time.Second
	late := &lateIdentity{}
	gw := newHarness(t, func(c *Config, _ *actors.Config) { c.Identity = late })
	hub := hubtest.StartWith(t, hubtest.Options{GatewayURL: gw.url})
	hubAuth, err := identity.NewHub(identity.HubConfig{APIURL: hub.APIURL, TTL: ttl})
	testkit.NoError(t, err)
	defer hubAuth.Close()
	late.a.Store(hubAuth)

	b := make([]byte, 3)
	rand.Read(b)
	alice, bob := "alice-"+hex.EncodeToString(b), "bob-"+hex.EncodeToString(b)
	hub.CreateUser(t, alice, false)
	hub.CreateUser(t, bob, false)
	aliceTok, _ := hub.CreateToken(t, alice)
	// A second token of hers, to revoke: the first opens her server.
	aliceDirect, aliceDirectID := hub.CreateToken(t, alice)
	bobTok, _ := hub.CreateToken(t, bob)
	adminTok, _ := hub.CreateToken(t, hubtest.Admin)
	client := &nethttp.Client{Timeout: 60 * time.Second}
	aliceServer := &harness{t: t, url: hub.StartServer(t, alice), token: aliceTok, client: client}
	bobServer := &harness{t: t, url: hub.StartServer(t, bob), token: bobTok, client: client}

	// Alice opens a notebook: her server starts the kernel in kernelgate,
	// sending no KERNEL_USERNAME, only its token.
	sess := decode[map[string]any](t, aliceServer.expect("POST", "/api/sessions", `{"path":"a.ipynb","type":"notebook","name":"a","kernel":{"name":"python3"}}`, 201))
	id := sess["kernel"].(map[string]any)["id"].(string)
	k, err := gw.gw.Kernel(id)
	testkit.NoError(t, err)
	testkit.Equal(t, k.User, alice)
	w := aliceServer.dialWS(id, "alice-session", false)
	w.ready(60 * time.Second)
	testkit.Equal(t, w.output(`import os; print(os.environ["KERNEL_USERNAME"], 6*7)`), alice+" 42")

	// Bob's server neither lists nor reaches it.
	for _, m := range decode[[]actors.Model](t, bobServer.expect("GET", "/api/kernels", "", 200)) {
		testkit.True(t, m.ID != id, "bob's server lists alice's kernel")
	}
	bobServer.expect("GET", "/api/kernels/"+id, "", 404)
	bobServer.expect("DELETE", "/api/kernels/"+id, "", 404)
	// Jupyter Server proxies a websocket for any kernel id: kernelgate's
	// refusal of the upgrade is what keeps bob's messages from her kernel.
	if c, err := bobServer.tryDialWS(id, "bob-session", false); err == nil {
		bw := bobServer.wrapWS(c, "bob-session")
		bw.execute("print('bob was here')")
		for {
			g, err := bw.recv(10 * time.Second)
			if err != nil {
				break // closed, or nothing came: either way nothing of hers
			}
			testkit.True(t, g.msgType != "execute_reply" && g.msgType != "stream", "bob's server reached alice's kernel: %s", g.msgType)
		}
	}

	// Nor does bob, straight to kernelgate, whatever he claims.
	for _, headers := range [][]string{auth(bobTok), auth(bobTok, "X-Kernelgate-User", alice)} {
		gw.expect("GET", "/api/kernels/"+id, "", 404, headers...)
		gw.expect("GET", "/api/kernels/"+id+"/channels", "", 404, upgrade(headers...)...)
		testkit.Equal(t, len(decode[[]actors.Model](t, gw.expect("GET", "/api/kernels", "", 200, headers...))), 0)
	}
	gw.expect("GET", "/api/kernels/"+id, "", 403, auth("garbage-token")...)
	gw.expect("GET", "/api/kernels/"+id, "", 403, "Authorization", "")
	// The Hub's admin sees every kernel.
	gw.expect("GET", "/api/kernels/"+id, "", 200, auth(adminTok)...)

	// Alice's token works straight to kernelgate until revoked, and not
	// beyond the cache TTL.
	gw.expect("GET", "/api/kernels/"+id, "", 200, auth(aliceDirect)...)
	hub.RevokeToken(t, alice, aliceDirectID)
	revoked := time.Now()
	testkit.Eventually(t, ttl+5*time.Second, func() error {
		if status, _, _ := gw.do("GET", "/api/kernels/"+id, "", auth(aliceDirect)...); status != 403 {
			return fmt.Errorf("the revoked token is answered %d", status)
		}
		return nil
	})
	t.Logf("the revoked token was refused %v after its revocation (TTL %v)", time.Since(revoked).Round(100*time.Millisecond), ttl)
	// Her server's own token is another: her notebook goes on.
	testkit.Equal(t, w.output(`print("still here")`), "still here")
	aliceServer.expect("DELETE", "/api/sessions/"+sess["id"].(string), "", 204)
	gw.expect("GET", "/api/kernels/"+id, "", 404, auth(adminTok)...)
}
