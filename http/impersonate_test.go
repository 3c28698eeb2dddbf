package http

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/local"
	"github.com/kernelgate/kernelgate/internal/identity"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/internal/unixtest"
)

// as returns a view of h that sends token (REST and websockets).
func (h *harness) as(token string) *harness {
	c := *h
	c.token = token
	return &c
}

// output runs code in the kernel and returns what it printed.
func (w *wsClient) output(code string) string {
	w.t.Helper()
	var b strings.Builder
	for _, g := range w.reply(w.execute(code), 60*time.Second) {
		if g.msgType == "stream" {
			b.WriteString(g.content["text"].(string))
		}
	}
	return strings.TrimSpace(b.String())
}

// TestKernelsRunAsTheirUser: with impersonation each verified user's kernel
// runs as their Unix account, and bob's code cannot read alice's connection
// file (her key), list the runtime directory, read the gateway's
// environment (its token) or signal alice's kernel.
func TestKernelsRunAsTheirUser(t *testing.T) {
	alice, bob := unixtest.NewAccount(t, "kgt-alice"), unixtest.NewAccount(t, "kgt-bob")
	const shared = "shared-SECRET-0123456789"
	// The gateway's environment holds its token, as when EG_AUTH_TOKEN is
	// how it was given.
	t.Setenv("EG_AUTH_TOKEN", shared)
	runtime := unixtest.PassableDir(t)
	users := fakeIdentity{
		"alice-tok":  {Name: alice.Name, Source: identity.SourceHub},
		"bob-tok":    {Name: bob.Name, Source: identity.SourceHub},
		"nobody-tok": {Name: "no-such-account", Source: identity.SourceHub},
	}
	h := newHarness(t, func(c *Config, a *actors.Config) {
		c.Identity, c.AuthToken = users, shared
		lp := &local.Provisioner{Ports: testPorts, RuntimeDir: runtime,
			Impersonate: &local.Impersonation{ProhibitedUIDs: []int{0}, ProhibitedGIDs: []int{0}}}
		a.Proxies = proxy.NewRegistry(lp)
		a.Secrets = []string{shared}
		// Pools are off for kernels that run as their user: a pooled
		// kernel would run before its user is known.
		a.Pools = map[string]int{"python3": 1}
	})
	start := func(h *harness) (string, *wsClient) {
		id := decode[actors.Model](t, h.expect("POST", "/api/kernels", `{"name":"python3"}`, 201)).ID
		w := h.dialWS(id, "s", true)
		w.ready(60 * time.Second)
		return id, w
	}
	aliceID, aw := start(h.as("alice-tok"))
	bobID, bw := start(h.as("bob-tok"))

	// Alice's kernel is hers: uid, gid, groups, home, working directory.
	got := aw.output(`import os; print(os.getuid(), os.getgid(), os.getgroups(), os.environ["HOME"], os.environ["USER"], os.getcwd(), "EG_AUTH_TOKEN" in os.environ)`)
	testkit.Equal(t, got, fmt.Sprintf("%d %d [%d] %s %s %s False", alice.UID, alice.GID, alice.GID, alice.Home, alice.Name, alice.Home))
	alicePID := aw.output(`import os; print(os.getpid())`)

	// Her connection file is hers alone, in a directory of hers alone.
	connFile := filepath.Join(runtime, strconv.Itoa(alice.UID), "kernel-"+aliceID+".json")
	// (jupyter_client sets the sticky bit on the directory of the
	// connection files it writes.)
	for path, mode := range map[string]os.FileMode{connFile: 0o600, filepath.Dir(connFile): 0o700, runtime: 0o711} {
		st, err := os.Lstat(path)
		testkit.NoError(t, err)
		testkit.True(t, st.Mode().Perm() == mode && st.Mode()&os.ModeSymlink == 0, "%s: mode %v, want %v", path, st.Mode(), mode)
		owner := alice.UID
		if path == runtime {
			owner = 0
		}
		testkit.Equal(t, int(st.Sys().(*syscall.Stat_t).Uid), owner)
	}
	testkit.Equal(t, aw.output(`print(len(open(`+strconv.Quote(connFile)+`).read()) > 0)`), "True")

	// Bob's code gets nothing of alice's nor of the gateway's.
	attempt := func(what string) string {
		return fmt.Sprintf(`
try:
    %s
    print("allowed")
except PermissionError:
    print("refused")`, what)
	}
	for _, what := range []string{
		"open(" + strconv.Quote(connFile) + ").read()",
		"import os; os.listdir(" + strconv.Quote(filepath.Dir(connFile)) + ")",
		"import os; os.listdir(" + strconv.Quote(runtime) + ")",
		fmt.Sprintf("open('/proc/%d/environ').read()", os.Getpid()),
		fmt.Sprintf("open('/proc/%d/mem', 'rb').read(1)", os.Getpid()),
		"import os, signal; os.kill(" + alicePID + ", signal.SIGINT)",
		"import os, signal; os.killpg(" + alicePID + ", signal.SIGKILL)",
	} {
		testkit.Equal(t, bw.output(attempt(what)), "refused")
	}
	testkit.Equal(t, bw.output(`import os; print(os.getuid(), "EG_AUTH_TOKEN" in os.environ, any("`+shared+`" in v for v in os.environ.values()))`),
		fmt.Sprintf("%d False False", bob.UID))
	// Alice's kernel is unharmed.
	testkit.Equal(t, aw.output(`print(6*7)`), "42")

	// The gateway still drives her kernel as root: interrupt and restart.
	h.as("alice-tok").expect("POST", "/api/kernels/"+aliceID+"/interrupt", "", 204)
	h.as("alice-tok").expect("POST", "/api/kernels/"+aliceID+"/restart", "", 200)
	aw2 := h.as("alice-tok").dialWS(aliceID, "s2", true)
	aw2.ready(60 * time.Second)
	testkit.Equal(t, aw2.output(`import os; print(os.getuid())`), strconv.Itoa(alice.UID))

	// A user with no account here gets 403 and a clear message.
	b := h.as("nobody-tok").expect("POST", "/api/kernels", `{"name":"python3"}`, 403)
	testkit.True(t, strings.Contains(string(b), "has no Unix account"), "answer %s", b)

	// No pooled kernel was ever started.
	for _, p := range h.gw.Pools() {
		testkit.True(t, p.Warm == 0 && p.Starting == 0, "pool %+v under impersonation", p)
	}
	h.as("bob-tok").expect("DELETE", "/api/kernels/"+bobID, "", 204)
	h.as("alice-tok").expect("DELETE", "/api/kernels/"+aliceID, "", 204)
	_, err := os.Stat(connFile)
	testkit.True(t, os.IsNotExist(err), "connection file left behind: %v", err)
}
