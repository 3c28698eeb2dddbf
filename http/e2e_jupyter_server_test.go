package http

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

// jupyterServer runs Debian's Jupyter Server 1.x in gateway mode against
// the harness's gateway and returns a harness view of it: REST and
// websockets go through Jupyter Server, exactly as JupyterLab's would.
func jupyterServer(t *testing.T, gw *harness, env ...string) *harness {
	t.Helper()
	return gatewayClientApp(t, gw, "jupyter_server", "ServerApp", "--ServerApp.root_dir", env...)
}

// notebookServer runs Debian's classic Notebook 6 in gateway mode.
func notebookServer(t *testing.T, gw *harness) *harness {
	t.Helper()
	return gatewayClientApp(t, gw, "notebook", "NotebookApp", "--notebook-dir")
}

// gatewayClientApp runs a Jupyter application (the Python module, its app
// class, its root directory flag) with --gateway-url pointing at gw.
func gatewayClientApp(t *testing.T, gw *harness, module, app, rootFlag string, env ...string) *harness {
	t.Helper()
	if out, err := exec.Command(testkit.Python(), "-c", "import "+module).CombinedOutput(); err != nil {
		t.Fatalf("%s is not installed (make deps): %v %s", module, err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	testkit.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	cmd := exec.Command(testkit.Python(), "-m", module, "--no-browser", "--allow-root",
		"--ip=127.0.0.1", fmt.Sprintf("--port=%d", port), "--port-retries=0", "--"+app+".token=jstoken",
		rootFlag+"="+dir, "--gateway-url="+gw.url, "--GatewayClient.env_whitelist=ALLOWED_EXTRA")
	cmd.Env = append(os.Environ(), "JUPYTER_CONFIG_DIR="+filepath.Join(dir, "cfg"), "JUPYTER_DATA_DIR="+filepath.Join(dir, "data"),
		"JUPYTER_RUNTIME_DIR="+filepath.Join(dir, "rt"), "JUPYTER_GATEWAY_AUTH_TOKEN="+gw.token)
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	testkit.NoError(t, err)
	testkit.NoError(t, cmd.Start())
	logs := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case logs <- sc.Text():
			default:
			}
		}
		close(logs)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			for l := range logs {
				t.Log(module+":", l)
			}
		}
	})
	js := &harness{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), token: "jstoken", client: &http.Client{Timeout: 60 * time.Second}}
	testkit.Eventually(t, 30*time.Second, func() error {
		resp, err := js.client.Get(js.url + "/api?token=jstoken")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return js
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
