package http

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/internal/jupytertest"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

// jupyterServer runs Debian's Jupyter Server 1.x in gateway mode against
// the harness's gateway and returns a harness view of it: REST and
// websockets go through Jupyter Server, exactly as JupyterLab's would.
func jupyterServer(t *testing.T, gw *harness, env ...string) *harness {
	t.Helper()
	return gatewayClientApp(t, gw, jupytertest.Server, env...)
}

// notebookServer runs Debian's classic Notebook 6 in gateway mode.
func notebookServer(t *testing.T, gw *harness) *harness {
	t.Helper()
	return gatewayClientApp(t, gw, jupytertest.Notebook)
}

// gatewayClientApp runs a Jupyter application with --gateway-url pointing
// at gw.
func gatewayClientApp(t *testing.T, gw *harness, app jupytertest.App, env ...string) *harness {
	t.Helper()
	url := jupytertest.Start(t, app, gw.url, gw.token, []string{"--GatewayClient.env_whitelist=ALLOWED_EXTRA"}, env...)
	return &harness{t: t, url: url, token: jupytertest.Token, client: &http.Client{Timeout: 60 * time.Second}}
}

func TestE2EJupyterServerGatewayMode(t *testing.T) {
	gw := newHarness(t, func(c *Config, a *actors.Config) {
		c.AuthToken = "gwtoken"
		a.ClientEnvs = []string{"ALLOWED_EXTRA"}
		a.RestartLimit = 1
	})
	js := jupyterServer(t, gw, "KERNEL_USERNAME=alice", "ALLOWED_EXTRA=extra-value", "NOT_ALLOWED=secret")

	// Kernelspecs, logos included, come from kernelgate.
	specs := decode[struct {
		Default     string
		Kernelspecs map[string]struct{ Resources map[string]string }
	}](t, js.expect("GET", "/api/kernelspecs", "", 200))
	testkit.Equal(t, specs.Default, "python3")
	logo := specs.Kernelspecs["python3"].Resources["logo-64x64"]
	testkit.True(t, strings.HasSuffix(logo, "/kernelspecs/python3/logo-64x64.png"), "logo url %q", logo)
	status, body, _ := js.do("GET", "/kernelspecs/python3/logo-64x64.png", "")
	testkit.Equal(t, status, 200)
	testkit.Equal(t, string(body), "\x89PNG fake")

	// A session through Jupyter Server starts a kernel in kernelgate.
	sess := decode[map[string]any](t, js.expect("POST", "/api/sessions", `{"path":"e2e.ipynb","type":"notebook","name":"e2e","kernel":{"name":"python3"}}`, 201))
	id := sess["kernel"].(map[string]any)["id"].(string)
	gw.expect("GET", "/api/kernels/"+id, "", 200)

	w := js.dialWS(id, "js-session", false)
	w.ready(60 * time.Second)

	out := w.reply(w.execute(`import os; print(os.environ.get("KERNEL_USERNAME"), os.environ.get("ALLOWED_EXTRA"), os.environ.get("NOT_ALLOWED"))`), 60*time.Second)
	testkit.Equal(t, pick(t, out, "iopub", "stream").content["text"], any("alice extra-value None\n"))

	testkit.Equal(t, w.answerInput("bob", 60*time.Second), "got bob\n")
	ename := w.interruptSleep(func() { js.expect("POST", "/api/kernels/"+id+"/interrupt", "", 204) }, 60*time.Second)
	testkit.Equal(t, ename, any("KeyboardInterrupt"))

	js.expect("POST", "/api/kernels/"+id+"/restart", "", 200)
	w2 := js.dialWS(id, "js-session-2", false)
	w2.ready(60 * time.Second)
	out = w2.reply(w2.execute("print('after restart')"), 60*time.Second)
	testkit.Equal(t, pick(t, out, "iopub", "stream").content["text"], any("after restart\n"))

	js.expect("DELETE", "/api/sessions/"+sess["id"].(string), "", 204)
	gw.expect("GET", "/api/kernels/"+id, "", 404)

	// A kernel that dies for good disappears from Jupyter Server's list too.
	dying := decode[actors.Model](t, js.expect("POST", "/api/kernels", `{"name":"python3"}`, 201)).ID
	wd := js.dialWS(dying, "dying", false)
	wd.ready(60 * time.Second)
	for range 2 {
		all := wd.reply(wd.execute("import os; print(os.getpid())"), 60*time.Second)
		var pid int
		fmt.Sscan(pick(t, all, "iopub", "stream").content["text"].(string), &pid)
		testkit.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		wd.until(60*time.Second, func(g got) bool {
			return g.msgType == "status" && (g.content["execution_state"] == "restarting" || g.content["execution_state"] == "dead")
		})
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		list := decode[[]actors.Model](t, js.expect("GET", "/api/kernels", "", 200))
		for _, k := range list {
			if k.ID == dying {
				return fmt.Errorf("Jupyter Server still lists the dead kernel")
			}
		}
		return nil
	})
}
