package http

import (
	"context"
	"fmt"
	nethttp "net/http"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/local"
	"github.com/kernelgate/kernelgate/internal/hubtest"
	"github.com/kernelgate/kernelgate/internal/identity"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/internal/unixtest"
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
// in gateway mode against kernelgate, each sending its own Hub API token,
// and kernels that run as their user's Unix account. A kernel started
// through alice's server (through the Hub's proxy) is alice's in kernelgate
// and runs code as her; bob's server can neither see nor reach it, nor can
// bob directly with his token, a spoofed user header, a garbage token, or
// alice's token once revoked (after the cache TTL); his kernel cannot read
// her connection file.
func TestE2EJupyterHub(t *testing.T) {
	hubtest.Require(t)
	const ttl = 2 * time.Second
	aliceAccount, bobAccount := unixtest.NewAccount(t, "kgt-alice"), unixtest.NewAccount(t, "kgt-bob")
	alice, bob := aliceAccount.Name, bobAccount.Name
	runtime := unixtest.PassableDir(t)
	late := &lateIdentity{}
	gw := newHarness(t, func(c *Config, a *actors.Config) {
		c.Identity = late
		a.Proxies = proxy.NewRegistry(&local.Provisioner{Ports: testPorts, RuntimeDir: runtime,
			Impersonate: &local.Impersonation{ProhibitedUIDs: []int{0}, ProhibitedGIDs: []int{0}}})
	})
	hub := hubtest.StartWith(t, hubtest.Options{GatewayURL: gw.url})
	hubAuth, err := identity.NewHub(identity.HubConfig{APIURL: hub.APIURL, TTL: ttl})
	testkit.NoError(t, err)
	defer hubAuth.Close()
	late.a.Store(hubAuth)

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
	testkit.Equal(t, w.output(`import os; print(os.environ["KERNEL_USERNAME"], os.getuid(), 6*7)`), fmt.Sprintf("%s %d 42", alice, aliceAccount.UID))

	// Bob's server neither lists nor reaches it.
	for _, m := range decode[[]actors.Model](t, bobServer.expect("GET", "/api/kernels", "", 200)) {
		testkit.True(t, m.ID != id, "bob's server lists alice's kernel")
	}
	bobServer.expect("GET", "/api/kernels/"+id, "", 404)
	bobServer.expect("DELETE", "/api/kernels/"+id, "", 404)
	// Jupyter Server proxies a websocket for any kernel id: kernelgate's
	// refusal of the upgrade is what keeps bob's messages from her kernel.
	if c, err := bobServer.tryDialWS(id, "bob-session", false); err == nil {
		sneak := bobServer.wrapWS(c, "bob-session")
		sneak.execute("print('bob was here')")
		for {
			g, err := sneak.recv(10 * time.Second)
			if err != nil {
				break // closed, or nothing came: either way nothing of hers
			}
			testkit.True(t, g.msgType != "execute_reply" && g.msgType != "stream", "bob's server reached alice's kernel: %s", g.msgType)
		}
	}

	// Bob's own kernel, his code, runs as him and cannot read her key.
	bobSess := decode[map[string]any](t, bobServer.expect("POST", "/api/sessions", `{"path":"b.ipynb","type":"notebook","name":"b","kernel":{"name":"python3"}}`, 201))
	bobsKernel := bobSess["kernel"].(map[string]any)["id"].(string)
	bw := bobServer.dialWS(bobsKernel, "bob-own", false)
	bw.ready(60 * time.Second)
	connFile := filepath.Join(runtime, strconv.Itoa(aliceAccount.UID), "kernel-"+id+".json")
	testkit.Equal(t, bw.output(`
import os
try:
    open(`+strconv.Quote(connFile)+`).read()
    print(os.getuid(), "read it")
except PermissionError:
    print(os.getuid(), "refused")`), fmt.Sprintf("%d refused", bobAccount.UID))

	// Nor does bob, straight to kernelgate, whatever he claims.
	for _, headers := range [][]string{auth(bobTok), auth(bobTok, "X-Kernelgate-User", alice)} {
		gw.expect("GET", "/api/kernels/"+id, "", 404, headers...)
		gw.expect("GET", "/api/kernels/"+id+"/channels", "", 404, upgrade(headers...)...)
		testkit.Equal(t, len(decode[[]actors.Model](t, gw.expect("GET", "/api/kernels", "", 200, headers...))), 1) // his own
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
