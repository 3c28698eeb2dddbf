// Package jupytertest runs Debian's Jupyter applications (Jupyter Server
// 1.x, Notebook 6) in gateway mode for end-to-end tests: the clients a
// gateway exists for, exactly as deployments run them.
package jupytertest

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/testkit"
)

// App is a Jupyter application: its Python module, its application class
// and the flag of its root directory.
type App struct{ Module, Class, RootFlag string }

var (
	// Server is Jupyter Server 1.x, JupyterLab's server.
	Server = App{"jupyter_server", "ServerApp", "--ServerApp.root_dir"}
	// Notebook is the classic Notebook 6.
	Notebook = App{"notebook", "NotebookApp", "--notebook-dir"}
)

// Token is the token clients give the application.
const Token = "jstoken"

// Start runs app with --gateway-url gatewayURL (and gatewayToken) on a
// free loopback port until the test ends, with extra flags and environment
// variables, and returns its URL once it answers. Its log is shown if the
// test fails.
func Start(t testing.TB, app App, gatewayURL, gatewayToken string, flags []string, env ...string) string {
	t.Helper()
	if out, err := exec.Command(testkit.Python(), "-c", "import "+app.Module).CombinedOutput(); err != nil {
		t.Fatalf("%s is not installed (make deps): %v %s", app.Module, err, out)
	}
	ports, err := testkit.FreePorts(1)
	testkit.NoError(t, err)
	port := ports[0]
	dir := t.TempDir()
	args := append([]string{"-m", app.Module, "--no-browser", "--allow-root",
		"--ip=127.0.0.1", fmt.Sprintf("--port=%d", port), "--port-retries=0", "--" + app.Class + ".token=" + Token,
		app.RootFlag + "=" + dir, "--gateway-url=" + gatewayURL}, flags...)
	cmd := exec.Command(testkit.Python(), args...)
	cmd.Env = append(os.Environ(), "JUPYTER_CONFIG_DIR="+filepath.Join(dir, "cfg"), "JUPYTER_DATA_DIR="+filepath.Join(dir, "data"),
		"JUPYTER_RUNTIME_DIR="+filepath.Join(dir, "rt"), "JUPYTER_GATEWAY_AUTH_TOKEN="+gatewayToken)
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
			default: // the first thousand lines are enough to see what went wrong
			}
		}
		close(logs)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			for l := range logs {
				t.Log(app.Module+":", l)
			}
		}
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Timeout: 10 * time.Second}
	testkit.Eventually(t, 30*time.Second, func() error {
		resp, err := client.Get(url + "/api?token=" + Token)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return url
}
