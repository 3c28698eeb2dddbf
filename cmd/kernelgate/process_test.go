package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/kernelgate/kernelgate/bench"
	"github.com/kernelgate/kernelgate/http/framing"
	"github.com/kernelgate/kernelgate/internal/k8stest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/internal/unixtest"
	"github.com/kernelgate/kernelgate/zmq"
)

// TestMain lets the test binary run as `kernelgate` itself: a test that
// needs a gateway process of its own (to limit its open files, to kill it)
// starts this binary with runAsMain set. It stops the shared cluster.
func TestMain(m *testing.M) {
	if os.Getenv(runAsMain) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(kube.Main(m))
}

// kube is the cluster of the groups whose store is Kubernetes.
var kube = k8stest.NewShared(k8stest.Options{})

const runAsMain = "KERNELGATE_TEST_RUN_AS_MAIN"

// gatewayProcess is `kernelgate serve` in a process of its own.
type gatewayProcess struct {
	t          *testing.T
	cmd        *exec.Cmd
	url        string // the API
	metricsURL string // the metrics listener, when asked for
	exited     chan struct{}

	mu  sync.Mutex
	log strings.Builder // its stderr
}

var bannerURL = regexp.MustCompile(`https?://[0-9.:]+`)

// startGateway runs `kernelgate serve` with args on a free loopback port and
// a python3 (ipykernel) kernelspec; openFiles > 0 sets its open-file limit
// (soft and hard, so the gateway cannot raise it).
func startGateway(t *testing.T, openFiles int, args ...string) *gatewayProcess {
	t.Helper()
	return startGatewayWith(t, gatewayOptions{openFiles: openFiles}, args...)
}

// gatewayOptions change how startGatewayWith runs the gateway.
type gatewayOptions struct {
	openFiles int
	// as runs the gateway as this account (the test runs as root), its
	// runtime directory its own; nil runs it as the test's user.
	as *unixtest.Account
	// env is added to the gateway's environment.
	env []string
}

func startGatewayWith(t *testing.T, o gatewayOptions, args ...string) *gatewayProcess {
	t.Helper()
	testkit.RequireIPyKernel(t)
	low, high := testkit.PortRange("cmd")
	self, err := os.Executable()
	testkit.NoError(t, err)
	runtime := t.TempDir()
	if o.as != nil {
		// The test binary is in go's 0700 build directory and t.TempDir's
		// are 0700 too: the account gets a copy and a directory of its own.
		self, runtime = copyForAccount(t, self, *o.as)
	}
	specs := t.TempDir()
	testkit.NoError(t, os.Chmod(specs, 0o755))
	dir := filepath.Join(specs, "kernels", "python3")
	testkit.NoError(t, os.MkdirAll(dir, 0o755))
	testkit.NoError(t, os.WriteFile(filepath.Join(dir, "kernel.json"), []byte(`{"argv":["`+testkit.Python()+
		`","-m","ipykernel_launcher","-f","{connection_file}"],"display_name":"Python 3","language":"python"}`), 0o644))
	argv := append([]string{self, "serve", "--port", "0", "--runtime-dir", runtime, "--list-kernels",
		"--unauthorized-users", "", "--local-port-range", fmt.Sprintf("%d..%d", low, high)}, args...)
	if o.openFiles > 0 {
		argv = append([]string{"/bin/sh", "-c", `ulimit -n ` + strconv.Itoa(o.openFiles) + ` && exec "$@"`, "sh"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), runAsMain+"=1", "JUPYTER_PATH="+specs, "PYDEVD_DISABLE_FILE_VALIDATION=1")
	cmd.Env = append(cmd.Env, o.env...)
	if o.as != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(o.as.UID), Gid: uint32(o.as.GID)}}
		cmd.Dir = o.as.Home
		cmd.Env = append(cmd.Env, "HOME="+o.as.Home, "USER="+o.as.Name, "LOGNAME="+o.as.Name)
	}
	stdout, err := cmd.StdoutPipe()
	testkit.NoError(t, err)
	g := &gatewayProcess{t: t, cmd: cmd, exited: make(chan struct{})}
	cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.log.Write(b)
	})
	testkit.NoError(t, cmd.Start())
	go func() { cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-g.exited
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.stderr())
		}
	})
	urls := make(chan []string, 1)
	go func() {
		var found []string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u := bannerURL.FindString(sc.Text()); u != "" {
				found = append(found, u)
			}
			if len(found) == 1+strings.Count(strings.Join(args, " "), "--metrics-addr") {
				urls <- found
				found = nil
			}
		}
	}()
	select {
	case u := <-urls:
		g.url = u[0]
		if len(u) > 1 {
			g.metricsURL = u[1]
		}
	case <-g.exited:
		t.Fatalf("gateway exited at start:\n%s", g.stderr())
	case <-time.After(30 * time.Second):
		t.Fatalf("gateway did not start:\n%s", g.stderr())
	}
	return g
}

func (g *gatewayProcess) stderr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.log.String()
}

// alive reports whether the gateway process still runs.
func (g *gatewayProcess) alive() bool {
	select {
	case <-g.exited:
		return false
	default:
		return true
	}
}

// client is a bench client of the gateway's API for python3 kernels.
func (g *gatewayProcess) client() *bench.Gateway {
	c, err := bench.NewGateway(bench.Target{URL: g.url, Kernel: "python3", Protocol: "v1"})
	testkit.NoError(g.t, err)
	g.t.Cleanup(func() { c.Close() })
	return c
}

// get answers a GET to url's path on a fresh connection.
func get(url string) (int, string, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// execute runs code on conn and fails the test unless it ends "ok".
func execute(t *testing.T, conn bench.Conn, code string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status, err := conn.Execute(ctx, code)
	testkit.NoError(t, err)
	testkit.Equal(t, status, "ok")
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// metric reads one sample of the gateway's /metrics.
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	code, body, err := get(url + "/metrics")
	testkit.NoError(t, err)
	testkit.Equal(t, code, http.StatusOK)
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			testkit.NoError(t, err)
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// started starts a kernel through g and opens a websocket to it.
func started(t *testing.T, g *gatewayProcess) (string, bench.Conn) {
	t.Helper()
	c := g.client()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, err := c.Start(ctx)
	testkit.NoError(t, err)
	conn, err := c.Connect(ctx, id)
	testkit.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	testkit.NoError(t, conn.KernelInfo(ctx))
	return id, conn
}

func (g *gatewayProcess) String() string {
	return fmt.Sprintf("gateway pid %d at %s", g.cmd.Process.Pid, g.url)
}

// TestKernelsEndWithAKilledGateway: without persistence, kernels are not
// meant to outlive their gateway; killed with SIGKILL, it leaves none
// running, nor their ports bound.
func TestKernelsEndWithAKilledGateway(t *testing.T) {
	g := startGateway(t, 0)
	id, conn := started(t, g)
	execute(t, conn, "import os; print(os.getpid())")
	pids := testkit.KernelProcesses(id)
	testkit.Equal(t, len(pids), 1)
	testkit.NoError(t, g.cmd.Process.Kill())
	<-g.exited
	testkit.NoKernelProcesses(t, id, 30*time.Second)
}

// TestStopIsBoundedWhateverClientsDo: a client that reads nothing and never
// answers a close frame (with pings off, nothing else would end its
// connection) does not hold up SIGTERM beyond the stop timeout.
func TestStopIsBoundedWhateverClientsDo(t *testing.T) {
	const stopTimeout = 6 * time.Second
	g := startGateway(t, 0, "--stop-timeout", stopTimeout.String(), "--ws-ping-interval", "0")
	id, _ := started(t, g)
	u := "ws" + strings.TrimPrefix(g.url, "http") + "/api/kernels/" + id + "/channels?session_id=stuck"
	c, _, err := (&websocket.Dialer{Subprotocols: []string{framing.SubprotocolV1}}).Dial(u, nil)
	testkit.NoError(t, err)
	defer c.Close()
	m, err := zmq.NewMessage("execute_request", "stuck", "tester", nil, map[string]any{"code": "while True: print('x' * 1000)", "silent": false})
	testkit.NoError(t, err)
	data, _ := framing.V1{}.Encode(nil, zmq.Shell, m)
	testkit.NoError(t, c.WriteMessage(websocket.BinaryMessage, data))
	testkit.Eventually(t, 30*time.Second, func() error { // the client's buffers fill up
		_, body, err := get(g.url + "/api/kernels/" + id)
		if err == nil && !strings.Contains(body, `"busy"`) {
			err = fmt.Errorf("kernel is not busy: %s", body)
		}
		return err
	})

	start := time.Now()
	testkit.NoError(t, g.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-g.exited:
		t.Logf("stopped in %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(stopTimeout + 15*time.Second):
		t.Fatalf("the gateway did not stop within %v of SIGTERM", stopTimeout+15*time.Second)
	}
	testkit.NoKernelProcesses(t, id, 10*time.Second)
}
