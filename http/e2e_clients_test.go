package http

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/testkit"
)

// clientsDir is the npm project of the real JavaScript clients; `make deps`
// runs `npm ci` in it.
func clientsDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "clients"))
	testkit.NoError(t, err)
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not installed (run `make deps`): %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@jupyterlab", "services")); err != nil {
		t.Fatalf("the npm packages are not installed (run `make deps`, or `npm ci` in %s): %v", dir, err)
	}
	return dir
}

// runNode runs a script of the clients project and decodes the JSON object
// it prints last.
func runNode(t *testing.T, timeout time.Duration, script string, args ...string) map[string]any {
	t.Helper()
	dir := clientsDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("node %s: %v; no result (%v)\nstdout: %s\nstderr: %s", script, runErr, err, stdout.String(), stderr.String())
	}
	if e, ok := res["error"]; ok {
		t.Fatalf("node %s failed: %v\nstderr: %s", script, e, stderr.String())
	}
	return res
}

// TestE2EJupyterLabServices drives kernels with @jupyterlab/services, the
// library JupyterLab uses: against kernelgate in both framings, then
// through Jupyter Server in gateway mode.
func TestE2EJupyterLabServices(t *testing.T) {
	gw := newHarness(t, nil)
	js := jupyterServer(t, gw)
	// Directly, the library also reads a flood slower than the kernel
	// prints it (kernelgate merges its backlog): it must see the same text.
	const flood = 20000
	for _, tt := range []struct {
		name, url, token, protocol, negotiated string
		flood                                  int
	}{
		{"direct v1", gw.url, gw.token, "v1", "v1.kernel.websocket.jupyter.org", flood},
		{"direct legacy", gw.url, gw.token, "legacy", "", flood},
		// Jupyter Server 1.x speaks legacy to its browsers whatever they offer.
		{"through Jupyter Server", js.url, js.token, "v1", "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := runNode(t, 4*time.Minute, "services.mjs", tt.url, tt.token, tt.protocol, strconv.Itoa(tt.flood))
			testkit.Equal(t, res["kernel_info"], any("ok"))
			testkit.Equal(t, res["language"], any("python"))
			testkit.Equal(t, res["stream"], any("0\n7\n14\n"))
			testkit.Equal(t, res["prompt"], any("who? "))
			testkit.Equal(t, res["stdin"], any("hello lab\n"))
			testkit.Equal(t, res["comm"], any(map[string]any{"n": 42.0}))
			testkit.Equal(t, res["after_restart"], any("False\n"))
			testkit.Equal(t, res["shut_down"], any(true))
			if tt.flood > 0 {
				testkit.Equal(t, res["flood_same_text"], any(true))
				t.Logf("%d lines reached @jupyterlab/services in %v messages", tt.flood, res["flood_messages"])
			}
			testkit.Equal(t, res["running_after"], any(0.0))
			protocols := res["protocols"].([]any)
			testkit.True(t, len(protocols) > 0, "no websocket opened")
			for _, p := range protocols {
				testkit.Equal(t, p, any(tt.negotiated))
			}
			_, err := gw.gw.Kernel(res["kernel_id"].(string))
			testkit.True(t, err != nil, "the kernel is still on the gateway after its shutdown")
		})
	}
}

// TestE2ENotebook6InChromium runs a cell of classic Notebook 6, in gateway
// mode against kernelgate, in headless Chromium; the screenshot lands in
// the test's artifact directory (go test -artifacts).
func TestE2ENotebook6InChromium(t *testing.T) {
	chromium(t)
	gw := newHarness(t, nil)
	nb := notebookServer(t, gw)
	shot := filepath.Join(t.ArtifactDir(), "notebook6.png")
	res := runNode(t, 4*time.Minute, "notebook.mjs", nb.url, nb.token, shot, t.TempDir())
	testkit.Equal(t, res["kernel"], any("python3"))
	testkit.Equal(t, res["output"], any("42\n"))
	png, err := os.ReadFile(shot)
	testkit.NoError(t, err)
	testkit.True(t, bytes.HasPrefix(png, []byte("\x89PNG")), "the screenshot is not a PNG")
	// The kernel the browser ran is kernelgate's.
	testkit.Equal(t, len(gw.gw.Kernels()), 1)
}
