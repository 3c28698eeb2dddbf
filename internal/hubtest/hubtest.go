// Package hubtest starts a real JupyterHub for tests: Debian's jupyterhub
// 3.0 (`make deps` installs it) on loopback ports, with sqlite in a temporary
// directory, the DummyAuthenticator, the SimpleLocalProcessSpawner, an admin
// user, and a service whose token may create users, groups and tokens and
// start servers through the REST API — the Hub a kernel gateway identifies
// tokens with. Users' single-user servers (Debian's Jupyter Server 1.23) can
// run in gateway mode against a gateway of the test.
//
// Without jupyterhub the tests that need it skip, unless
// KERNELGATE_REQUIRE_IDENTITY=1 (`make test` sets it): then they fail.
package hubtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/testkit"
)

// Python is Debian's interpreter, which has jupyterhub; the first python3 on
// PATH may be a pyenv shim without it.
const Python = "/usr/bin/python3"

// proxyBin is Debian's configurable-http-proxy, which the Hub starts.
const proxyBin = "/usr/bin/configurable-http-proxy"

// Admin is the user the Hub is configured to make an admin.
const Admin = "hubadmin"

// ServiceName is the name of the test service.
const ServiceName = "kernelgate-test"

// Options change the Hub a test starts.
type Options struct {
	// GatewayURL, when set, makes users' single-user servers run in gateway
	// mode against it (JUPYTER_GATEWAY_URL), each with its own Hub API token
	// as the gateway's token (JUPYTER_GATEWAY_AUTH_TOKEN), so that the
	// gateway can tell whose server is calling.
	GatewayURL string
}

// Hub is a running JupyterHub.
type Hub struct {
	// APIURL is the Hub's REST API (what JUPYTERHUB_API_URL would be).
	APIURL string
	// ProxyURL is the Hub's public address, its proxy: a user's server is
	// at ProxyURL/user/<name>.
	ProxyURL string
	// ServiceToken is the API token of the service ServiceName, whose role
	// may create users, groups and tokens.
	ServiceToken string

	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	client  *http.Client
	removes bool // Stop removes dir
}

// Require skips t unless jupyterhub is installed (or fails it, when
// KERNELGATE_REQUIRE_IDENTITY=1).
func Require(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("KERNELGATE_REQUIRE_IDENTITY") == "1" {
			t.Fatalf("JupyterHub is required (KERNELGATE_REQUIRE_IDENTITY=1): %v (make deps installs it)", err)
		}
		t.Skipf("JupyterHub is missing, skipped: %v (make deps installs it; KERNELGATE_REQUIRE_IDENTITY=1 makes this a failure)", err)
	}
}

// Available tells why the Hub cannot be started, or nil.
func Available() error {
	if _, err := os.Stat(proxyBin); err != nil {
		return fmt.Errorf("no configurable-http-proxy: %w", err)
	}
	if out, err := exec.Command(Python, "-c", "import jupyterhub").CombinedOutput(); err != nil {
		return fmt.Errorf("%s cannot import jupyterhub: %v: %s", Python, err, bytes.TrimSpace(out))
	}
	return nil
}

// Start starts a Hub that stops when t ends.
func Start(t testing.TB) *Hub {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith starts a Hub with opts that stops when t ends.
func StartWith(t testing.TB, opts Options) *Hub {
	t.Helper()
	Require(t)
	h, err := launch(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	return h
}

// Launch starts a Hub outside a test (a package's shared Hub, started once
// and stopped from TestMain); Stop removes its directory.
func Launch() (*Hub, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hubtest-")
	if err != nil {
		return nil, err
	}
	h, err := launch(dir, Options{})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	h.removes = true
	return h, nil
}

// launch tries a few times: the ports are picked free but another process
// may take one before the Hub binds it.
func launch(dir string, opts Options) (*Hub, error) {
	var err error
	for range 3 {
		var h *Hub
		if h, err = start(dir, opts); err == nil {
			return h, nil
		}
	}
	return nil, err
}

func start(dir string, opts Options) (*Hub, error) {
	ports, err := testkit.FreePorts(3)
	if err != nil {
		return nil, err
	}
	hubPort, proxyPort, proxyAPIPort := ports[0], ports[1], ports[2]
	b := make([]byte, 16)
	rand.Read(b)
	h := &Hub{
		APIURL:       fmt.Sprintf("http://127.0.0.1:%d/hub/api", hubPort),
		ProxyURL:     fmt.Sprintf("http://127.0.0.1:%d", proxyPort),
		ServiceToken: hex.EncodeToString(b),
		dir:          dir,
		exited:       make(chan struct{}),
		// No keep-alive: a test checking for leaked goroutines would see
		// the idle connections' goroutines.
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	q := strconv.Quote
	conf := strings.Join([]string{
		"c.JupyterHub.ip = '127.0.0.1'",
		"c.JupyterHub.port = " + strconv.Itoa(proxyPort),
		"c.JupyterHub.hub_ip = '127.0.0.1'",
		"c.JupyterHub.hub_port = " + strconv.Itoa(hubPort),
		"c.ConfigurableHTTPProxy.api_url = " + q(fmt.Sprintf("http://127.0.0.1:%d", proxyAPIPort)),
		"c.ConfigurableHTTPProxy.pid_file = " + q(filepath.Join(dir, "proxy.pid")),
		"c.JupyterHub.db_url = " + q("sqlite:///"+filepath.Join(dir, "jupyterhub.sqlite")),
		"c.JupyterHub.cookie_secret_file = " + q(filepath.Join(dir, "cookie_secret")),
		"c.JupyterHub.authenticator_class = 'dummy'",
		"c.JupyterHub.spawner_class = 'simple'",
		"c.Spawner.args = ['--allow-root']",
		"c.Authenticator.admin_users = {" + q(Admin) + "}",
		"c.JupyterHub.services = [{'name': " + q(ServiceName) + ", 'api_token': " + q(h.ServiceToken) + "}]",
		"c.JupyterHub.load_roles = [{'name': 'kernelgate-test-role', 'scopes': ['admin:users', 'admin:groups', 'tokens', 'admin:servers'], 'services': [" + q(ServiceName) + "]}]",
		// Debian's single-user server, with Debian's Python; users' homes
		// in the test's directory.
		"c.Spawner.cmd = ['/usr/bin/jupyterhub-singleuser']",
		"c.Spawner.start_timeout = 60",
		"c.Spawner.http_timeout = 60",
		"c.SimpleLocalProcessSpawner.home_dir_template = " + q(filepath.Join(dir, "home", "{username}")),
	}, "\n") + "\n"
	if opts.GatewayURL != "" {
		conf += "c.Spawner.environment = {'JUPYTER_GATEWAY_URL': " + q(opts.GatewayURL) +
			", 'JUPYTER_GATEWAY_AUTH_TOKEN': lambda spawner: spawner.api_token}\n"
	}
	confFile := filepath.Join(dir, "jupyterhub_config.py")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "hub.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(Python, "-m", "jupyterhub", "-f", confFile)
	cmd.Dir = dir
	// Debian's configurable-http-proxy finds its modules only there.
	cmd.Env = append(os.Environ(), "NODE_PATH=/usr/share/nodejs")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start jupyterhub: %w", err)
	}
	h.cmd = cmd
	go func() { cmd.Wait(); close(h.exited) }()
	if err := h.waitReady(60 * time.Second); err != nil {
		h.Stop()
		return nil, fmt.Errorf("%w\n%s", err, h.logTail())
	}
	return h, nil
}

// waitReady polls the Hub's API root until it answers.
func (h *Hub) waitReady(total time.Duration) error {
	deadline := time.Now().Add(total)
	for {
		resp, err := h.client.Get(h.APIURL + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		select {
		case <-h.exited:
			return fmt.Errorf("jupyterhub exited while starting")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("jupyterhub not ready after %v: %w", total, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// Stop stops the Hub and its proxy; it may be called more than once.
func (h *Hub) Stop() {
	if h.cmd == nil {
		return
	}
	select {
	case <-h.exited:
	default:
		// SIGTERM lets the Hub stop the proxy it started, which runs in a
		// process group of its own.
		h.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.exited:
		case <-time.After(15 * time.Second):
			syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
			<-h.exited
		}
	}
	if b, err := os.ReadFile(filepath.Join(h.dir, "proxy.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL) // still there only if the Hub was killed
		}
	}
	if h.removes {
		os.RemoveAll(h.dir)
	}
	h.cmd = nil
}

func (h *Hub) logTail() string {
	b, _ := os.ReadFile(filepath.Join(h.dir, "hub.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "jupyterhub log (tail):\n" + string(b)
}

// CreateUser creates a user (an admin if admin is true).
func (h *Hub) CreateUser(t testing.TB, name string, admin bool) {
	t.Helper()
	h.call(t, http.MethodPost, "/users/"+url.PathEscape(name), map[string]any{"admin": admin}, http.StatusCreated, nil)
}

// CreateGroup creates a group with users in it.
func (h *Hub) CreateGroup(t testing.TB, group string, users ...string) {
	t.Helper()
	h.call(t, http.MethodPost, "/groups/"+url.PathEscape(group), map[string]any{"users": users}, http.StatusCreated, nil)
}

// CreateToken creates an API token of user and returns it and its id. With
// no roles it has all the user's permissions; with roles "server" it is
// like the token the Hub gives a user's single-user server
// (JUPYTERHUB_API_TOKEN), which can identify its user only partly.
func (h *Hub) CreateToken(t testing.TB, user string, roles ...string) (token, id string) {
	t.Helper()
	var out struct {
		Token string `json:"token"`
		ID    string `json:"id"`
	}
	body := map[string]any{"note": "hubtest"}
	if len(roles) > 0 {
		body["roles"] = roles
	}
	h.call(t, http.MethodPost, "/users/"+url.PathEscape(user)+"/tokens", body, http.StatusCreated, &out)
	if out.Token == "" || out.ID == "" {
		t.Fatalf("jupyterhub created a token for %s without a token or id", user)
	}
	return out.Token, out.ID
}

// StartServer starts user's single-user server and waits until it is ready;
// it returns the server's URL through the Hub's proxy. The server is
// stopped when t ends.
func (h *Hub) StartServer(t testing.TB, user string) string {
	t.Helper()
	path := "/users/" + url.PathEscape(user) + "/server"
	status := h.call(t, http.MethodPost, path, nil, 0, nil)
	if status != http.StatusCreated && status != http.StatusAccepted {
		t.Fatalf("jupyterhub: starting %s's server: status %d\n%s", user, status, h.logTail())
	}
	t.Cleanup(func() { h.call(t, http.MethodDelete, path, nil, 0, nil) })
	deadline := time.Now().Add(90 * time.Second)
	for {
		var u struct {
			Servers map[string]struct {
				Ready bool `json:"ready"`
			} `json:"servers"`
		}
		h.call(t, http.MethodGet, "/users/"+url.PathEscape(user), nil, http.StatusOK, &u)
		if u.Servers[""].Ready {
			return h.ProxyURL + "/user/" + url.PathEscape(user)
		}
		if time.Now().After(deadline) {
			t.Fatalf("jupyterhub: %s's server not ready after 90s\n%s", user, h.logTail())
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
}

// RevokeToken deletes the token id of user.
func (h *Hub) RevokeToken(t testing.TB, user, id string) {
	t.Helper()
	h.call(t, http.MethodDelete, "/users/"+url.PathEscape(user)+"/tokens/"+url.PathEscape(id), nil, http.StatusNoContent, nil)
}

// call sends one API request with the service token and returns the
// status, which must be want unless want is 0.
func (h *Hub) call(t testing.TB, method, path string, body any, want int, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, h.APIURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "token "+h.ServiceToken)
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("jupyterhub %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if want != 0 && resp.StatusCode != want {
		t.Fatalf("jupyterhub %s %s: %s, want %d: %s", method, path, resp.Status, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("jupyterhub %s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}
