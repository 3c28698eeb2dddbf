package main

import (
	"context"
	"crypto/tls"
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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/bench"
	"github.com/kernelgate/kernelgate/internal/jupytertest"
	"github.com/kernelgate/kernelgate/internal/testcerts"
	"github.com/kernelgate/kernelgate/internal/testkit"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// group is replicas of one group behind Debian's HAProxy, round-robin, no
// stickiness, on loopback. They share a store: a persistence root, or a
// namespace of the test cluster.
type group struct {
	t        *testing.T
	replicas []*gatewayProcess
	lb       string // the balancer's URL
	// dropRecord deletes a kernel's record behind the replicas' backs.
	dropRecord func(id string)
}

const replicaLease = 3 * time.Second

// eachStore runs test once with each kernel store.
func eachStore(t *testing.T, test func(t *testing.T, kernelStore string)) {
	for _, st := range []string{storeFile, storeKubernetes} {
		t.Run(st, func(t *testing.T) { test(t, st) })
	}
}

// storeArgs are the settings of a group's store, and how to delete a
// kernel's record there.
func storeArgs(t *testing.T, kernelStore string) ([]string, func(id string)) {
	t.Helper()
	if kernelStore == storeFile {
		root := t.TempDir()
		return []string{"--persistence-root", root}, func(id string) {
			testkit.NoError(t, os.Remove(filepath.Join(root, "kernel_sessions", id+".json")))
		}
	}
	c := kube.Cluster(t)
	ns := c.Namespace(t)
	return []string{"--kernel-store", kernelStore, "--kubeconfig", c.Kubeconfig, "--namespace", ns}, func(id string) {
		err := c.Client.CoreV1().Secrets(ns).Delete(context.Background(), "kernelgate-kernel-"+id, metav1.DeleteOptions{})
		testkit.NoError(t, err)
	}
}

// startGroup starts n replicas sharing kernelStore and the balancer in
// front of them.
func startGroup(t *testing.T, kernelStore string, n int, extra ...string) *group {
	t.Helper()
	shared, drop := storeArgs(t, kernelStore)
	g := &group{t: t, dropRecord: drop, replicas: startReplicas(t, n, append(shared, extra...)...)}
	g.lb = startBalancer(t, g.replicas)
	return g
}

// startReplicas starts n replicas of a group; extra names their store
// (storeArgs).
func startReplicas(t *testing.T, n int, extra ...string) []*gatewayProcess {
	t.Helper()
	low, high := testkit.PortRange("cmd")
	width := (high - low + 1) / n
	var replicas []*gatewayProcess
	for i := range n {
		args := append([]string{"--availability-mode", "replication",
			"--instance-id", fmt.Sprint("r", i+1), "--replica-token", "group-secret",
			"--lease-duration", replicaLease.String(), "--stop-timeout", "20",
			// Each replica its own ports: allocators of other processes do
			// not know each other's choices.
			"--local-port-range", fmt.Sprintf("%d..%d", low+i*width, low+(i+1)*width-1)}, extra...)
		replicas = append(replicas, startGateway(t, 0, args...))
	}
	return replicas
}

// startBalancer runs HAProxy in front of the gateways, checking /readyz.
func startBalancer(t *testing.T, backends []*gatewayProcess) string {
	t.Helper()
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		haproxy = "/usr/sbin/haproxy"
	}
	ports, err := testkit.FreePorts(1)
	testkit.NoError(t, err)
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	var servers strings.Builder
	for i, b := range backends {
		fmt.Fprintf(&servers, "  server r%d %s check inter 300ms fall 2 rise 1\n", i+1, strings.TrimPrefix(b.url, "http://"))
	}
	// The configuration deploy/ documents, with these replicas.
	base, err := os.ReadFile("../../deploy/haproxy/kernelgate.cfg")
	testkit.NoError(t, err)
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	testkit.NoError(t, os.WriteFile(cfg, append(base, servers.String()...), 0o644))
	cmd := exec.Command(haproxy, "-f", cfg, "-db")
	cmd.Env = append(os.Environ(), "KERNELGATE_LB_BIND="+addr)
	var out testkit.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	testkit.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("haproxy:\n%s", out.String())
		}
	})
	url := "http://" + addr
	testkit.Eventually(t, 10*time.Second, func() error {
		_, _, err := get(url + "/healthz")
		return err
	})
	return url
}

// start starts a python3 kernel at base and returns its id.
func start(t *testing.T, base string) string {
	t.Helper()
	code, body, err := post(base+"/api/kernels", `{"name":"python3"}`)
	testkit.NoError(t, err)
	testkit.True(t, code == http.StatusCreated, "start: %d %s", code, body)
	return body[strings.Index(body, `"id":"`)+6:][:36]
}

// post sends a JSON body on a fresh connection.
func post(url, body string) (int, string, error) {
	c := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func del(url string) (int, error) {
	req, err := http.NewRequest(http.MethodDelete, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestEveryReplicaServesEveryKernel: a kernel started through the balancer
// is known to each replica, each replica's websocket drives the same kernel
// (its variables persist from one to the next), and interrupt, restart and
// shutdown work from any replica.
func TestEveryReplicaServesEveryKernel(t *testing.T) {
	eachStore(t, func(t *testing.T, kernelStore string) {
		for _, n := range []int{2, 3} {
			t.Run(fmt.Sprint(n, " replicas"), func(t *testing.T) { everyReplicaServesEveryKernel(t, kernelStore, n) })
		}
	})
}

func everyReplicaServesEveryKernel(t *testing.T, kernelStore string, n int) {
	g := startGroup(t, kernelStore, n)
	id := start(t, g.lb)
	for _, r := range g.replicas {
		code, body, err := get(r.url + "/api/kernels/" + id)
		testkit.NoError(t, err)
		testkit.True(t, code == http.StatusOK, "%s does not know kernel %s: %d %s", r, id, code, body)
	}
	groupView(t, g.replicas, 1, n)
	// Each replica's websocket in turn drives the kernel: x counts them.
	dialKernel(t, g.replicas[0].url, id, "first", "").run("x = 0")
	for i, r := range g.replicas {
		testkit.Equal(t, dialKernel(t, r.url, id, fmt.Sprint("s", i), "").run("x += 1; print(x)"), fmt.Sprintln(i+1))
	}
	for _, r := range g.replicas {
		code, _, err := get(r.url + "/api/kernels")
		testkit.NoError(t, err)
		testkit.Equal(t, code, http.StatusOK)
	}
	for _, r := range g.replicas {
		code, body, err := post(r.url+"/api/kernels/"+id+"/interrupt", "")
		testkit.NoError(t, err)
		testkit.True(t, code == http.StatusNoContent, "interrupt through %s: %d %s", r, code, body)
	}
	last := g.replicas[n-1]
	code, body, err := post(last.url+"/api/kernels/"+id+"/restart", "")
	testkit.NoError(t, err)
	testkit.True(t, code == http.StatusOK, "restart through %s: %d %s", last, code, body)
	for i, r := range g.replicas {
		testkit.Equal(t, dialKernel(t, r.url, id, fmt.Sprint("after", i), "").run("print('x' in dir())"), "False\n")
	}
	code, err = del(last.url + "/api/kernels/" + id)
	testkit.NoError(t, err)
	testkit.Equal(t, code, http.StatusNoContent)
	for _, r := range g.replicas {
		testkit.Eventually(t, 10*time.Second, func() error {
			if code, _, _ := get(r.url + "/api/kernels/" + id); code != http.StatusNotFound {
				return fmt.Errorf("%s still answers %d for the deleted kernel", r, code)
			}
			return nil
		})
	}
	testkit.NoKernelProcesses(t, id, 10*time.Second)
}

// groupView waits until the replicas' metrics say that they know the
// group's kernels, own each once between them, and see live members.
func groupView(t *testing.T, replicas []*gatewayProcess, kernels, members int) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, func() error {
		owned := 0.0
		for _, r := range replicas {
			known := metric(t, r.url, `kernelgate_group_kernels{scope="known"}`)
			live := metric(t, r.url, "kernelgate_group_replicas")
			if known != float64(kernels) || live != float64(members) {
				return fmt.Errorf("%s knows %v kernels and %v replicas, want %d and %d", r, known, live, kernels, members)
			}
			owned += metric(t, r.url, `kernelgate_group_kernels{scope="owned"}`)
		}
		if owned != float64(kernels) {
			return fmt.Errorf("%v kernels owned in all, want %d", owned, kernels)
		}
		return nil
	})
}

// lines is Python printing 1..n, one line at a time, with a pause so that
// a client can move while it runs.
func lines(n int) string {
	return fmt.Sprintf("import time\nfor i in range(1, %d):\n    print(i, flush=True)\n    time.sleep(0.01)", n+1)
}

// collect reads req's stream output until the cell is idle, or until stop
// returns true (then it returns early).
func collect(t *testing.T, w *wsClient, req string, text *strings.Builder, stop func() bool) bool {
	t.Helper()
	for {
		ev, err := w.next(60 * time.Second)
		if err != nil {
			return false
		}
		if ev.parent != req {
			continue
		}
		if ev.msgType == "stream" {
			text.WriteString(fmt.Sprint(ev.content["text"]))
			if stop() {
				return false
			}
		}
		if ev.msgType == "status" && ev.content["execution_state"] == "idle" {
			return true
		}
	}
}

// numbered checks text is the lines 1..n, each once, in order.
func numbered(t *testing.T, text string, n int) {
	t.Helper()
	got := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(got) != n {
		seen := map[string]int{}
		var dups, missing []string
		for _, l := range got {
			if seen[l]++; seen[l] == 2 {
				dups = append(dups, l)
			}
		}
		for i := 1; i <= n; i++ {
			if seen[strconv.Itoa(i)] == 0 {
				missing = append(missing, strconv.Itoa(i))
			}
		}
		t.Fatalf("%d lines, want %d; twice: %v; missing: %v", len(got), n, dups, missing)
	}
	for i, l := range got {
		if l != strconv.Itoa(i+1) {
			t.Fatalf("line %d is %q", i+1, l)
		}
	}
}

// TestClientMovesToAnotherReplicaMidCell: a cell prints numbered lines; its
// client leaves one replica halfway and reconnects to the other with its
// session id. It gets every line once, in order: after a close, and after a
// broken connection when it says which message it had last.
func TestClientMovesToAnotherReplicaMidCell(t *testing.T) {
	g := startGroup(t, storeFile, 2)
	r1, r2 := g.replicas[0], g.replicas[1]
	id := start(t, r1.url)
	for _, tt := range []struct {
		name    string
		leave   func(w *wsClient)
		lastMsg bool
	}{
		{"closed by the client", func(w *wsClient) {
			w.c.WriteControl(8, []byte{3, 232}, time.Now().Add(time.Second))
			for { // to the server's close: nothing written before it is lost
				if _, err := w.next(10 * time.Second); err != nil {
					return
				}
			}
		}, false},
		{"broken, with the last message", func(w *wsClient) { w.c.NetConn().Close() }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			session := "moving-" + strings.ReplaceAll(tt.name, " ", "-")
			first := dialKernel(t, r1.url, id, session, "")
			req := first.execute(lines(300))
			var text strings.Builder
			collect(t, first, req, &text, func() bool { return strings.Count(text.String(), "\n") >= 100 })
			tt.leave(first)
			last := ""
			if tt.lastMsg {
				last = first.last
			}
			second := dialKernel(t, r2.url, id, session, last)
			testkit.True(t, collect(t, second, req, &text, func() bool { return false }), "the cell never ended on the second replica")
			numbered(t, text.String(), 300)
		})
	}
}

// TestKernelsSurviveAKilledReplica: SIGKILL of a replica loses no kernel:
// its kernels (taken over once their lease lapses) and the others' keep
// their state and answer through the balancer.
func TestKernelsSurviveAKilledReplica(t *testing.T) {
	eachStore(t, func(t *testing.T, kernelStore string) {
		g := startGroup(t, kernelStore, 2)
		r1, r2 := g.replicas[0], g.replicas[1]
		k1, k2 := start(t, r1.url), start(t, r2.url)
		dialKernel(t, r1.url, k1, "s1", "").run("x = 'one'")
		dialKernel(t, r2.url, k2, "s2", "").run("x = 'two'")
		testkit.NoError(t, r1.cmd.Process.Kill())
		<-r1.exited
		groupView(t, g.replicas[1:], 2, 1) // the survivor owns both
		for _, k := range []struct{ id, want string }{{k1, "one\n"}, {k2, "two\n"}} {
			testkit.Equal(t, dialKernel(t, g.lb, k.id, "after-"+k.id, "").run("print(x)"), k.want)
		}
		// The survivor owns the dead replica's kernel now: it restarts it.
		code, body, err := post(g.lb+"/api/kernels/"+k1+"/restart", "")
		testkit.NoError(t, err)
		testkit.True(t, code == http.StatusOK, "restart of the taken-over kernel: %d %s", code, body)
		testkit.Equal(t, dialKernel(t, r2.url, k1, "s3", "").run("print('x' in dir())"), "False\n")
	})
}

// TestStoppedReplicaHandsItsClientsOver: SIGTERM of a replica while a cell
// streams: its client is sent away (1001), reconnects through the balancer
// with its session id and gets every line once, in order.
func TestStoppedReplicaHandsItsClientsOver(t *testing.T) {
	g := startGroup(t, storeFile, 2)
	r1 := g.replicas[0]
	id := start(t, r1.url)
	w := dialKernel(t, r1.url, id, "rolling", "")
	req := w.execute(lines(300))
	var text strings.Builder
	collect(t, w, req, &text, func() bool { return strings.Count(text.String(), "\n") >= 100 })
	testkit.NoError(t, r1.cmd.Process.Signal(syscall.SIGTERM))
	// Output keeps coming to the close frame, as JupyterLab reads it.
	testkit.True(t, !collect(t, w, req, &text, func() bool { return false }), "the cell ended before the replica stopped")
	testkit.True(t, strings.Contains(w.err.Error(), "1001"), "the stopping replica closed with %v, want 1001", w.err)
	// The balancer stops sending to the stopping replica once /readyz fails.
	second := dialKernel(t, g.replicas[1].url, id, "rolling", "")
	testkit.True(t, collect(t, second, req, &text, func() bool { return false }), "the cell never ended on the other replica")
	numbered(t, text.String(), 300)
	<-r1.exited
}

// TestLimitsHoldAcrossReplicas: max kernels is the group's: concurrent
// starts on both replicas never pass it.
func TestLimitsHoldAcrossReplicas(t *testing.T) {
	eachStore(t, func(t *testing.T, kernelStore string) {
		g := startGroup(t, kernelStore, 2, "--max-kernels", "2")
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, _, err := post(g.replicas[i%2].url+"/api/kernels", `{"name":"python3"}`)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		testkit.Equal(t, codes[http.StatusCreated], 2)
		testkit.Equal(t, codes[http.StatusForbidden], 4)
	})
}

// TestCullingWithTwoReplicasCullsOnce: only the kernel's owner culls it.
func TestCullingWithTwoReplicasCullsOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, kernelStore string) {
		g := startGroup(t, kernelStore, 2, "--cull-idle-timeout", "2", "--cull-interval", "1")
		id := start(t, g.lb)
		for _, r := range g.replicas {
			testkit.Eventually(t, 30*time.Second, func() error {
				if code, _, _ := get(r.url + "/api/kernels/" + id); code != http.StatusNotFound {
					return fmt.Errorf("%s still has the kernel (%d)", r, code)
				}
				return nil
			})
		}
		culled := 0.0
		for _, r := range g.replicas {
			culled += metric(t, r.url, "kernelgate_kernels_culled_total")
		}
		testkit.Equal(t, culled, 1.0)
	})
}

// TestJupyterServerSessionSurvivesAReplicaKill: Jupyter Server in gateway
// mode, pointed at the balancer, runs a notebook session; the replica that
// carries its kernel's websocket is SIGKILLed. Jupyter Server reconnects
// through the balancer, the kernel keeps its state, and the notebook's own
// websocket (to Jupyter Server) stays open and runs code again.
func TestJupyterServerSessionSurvivesAReplicaKill(t *testing.T) {
	g := startGroup(t, storeFile, 2)
	js := jupytertest.Start(t, jupytertest.Server, g.lb, "", nil)
	code, body, err := post(js+"/api/sessions?token="+jupytertest.Token, `{"path":"ha.ipynb","type":"notebook","name":"ha","kernel":{"name":"python3"}}`)
	testkit.NoError(t, err)
	testkit.True(t, code == http.StatusCreated, "session: %d %s", code, body)
	var sess struct{ Kernel struct{ ID string } }
	testkit.NoError(t, json.Unmarshal([]byte(body), &sess))
	id := sess.Kernel.ID
	nb := dialChannels(t, js, id, "notebook", url.Values{"session_id": {"notebook"}, "token": {jupytertest.Token}})
	testkit.Equal(t, nb.runRetrying("x = 42; print('set')", time.Minute), "set\n")

	// The replica Jupyter Server's websocket reached dies.
	var carrier *gatewayProcess
	testkit.Eventually(t, 10*time.Second, func() error {
		for _, r := range g.replicas {
			if _, body, err := get(r.url + "/api/kernels/" + id); err == nil && strings.Contains(body, `"connections":1`) {
				carrier = r
				return nil
			}
		}
		return errors.New("no replica carries the notebook's websocket")
	})
	testkit.NoError(t, carrier.cmd.Process.Kill())
	<-carrier.exited

	testkit.Equal(t, nb.runRetrying("print(x)", 2*time.Minute), "42\n")
	code, _, err = get(js + "/api/kernels/" + id + "?token=" + jupytertest.Token)
	testkit.NoError(t, err)
	testkit.Equal(t, code, http.StatusOK)
}

// TestFailoverScenario runs `kernelgate bench`'s failover on a group: the
// replica carrying two clients dies mid-stream; the streaming client gets
// the rest of its cell (its reply rebuilt by the replica it moved to), the
// idle one runs code again.
func TestFailoverScenario(t *testing.T) {
	g := startGroup(t, storeFile, 2)
	var replicas []bench.Replica
	for _, r := range g.replicas {
		replicas = append(replicas, bench.Replica{URL: r.url, PID: r.cmd.Process.Pid})
	}
	o := bench.DefaultOptions()
	o.URL, o.Scenarios, o.Replicas, o.OpTimeout, o.FailFast = g.lb, []string{"failover"}, replicas, time.Minute, true
	rep, err := bench.Run(context.Background(), o)
	testkit.NoError(t, err)
	res := rep.Results[0]
	testkit.Equal(t, res.Errors, 0)
	testkit.True(t, res.Counts["reconnects"] >= 1, "the streaming client never reconnected: %v", res.Counts)
	testkit.True(t, res.Latency["recover"].P50 > 0, "no recovery time")
	rebuilt := 0.0
	for _, r := range g.replicas {
		select {
		case <-r.exited:
		default: // the survivor
			rebuilt += metric(t, r.url, "kernelgate_replies_rebuilt_total")
		}
	}
	testkit.True(t, rebuilt >= 1, "no reply was rebuilt for the streaming client's cell")
}

// TestRecordMissingWhileLeaseHeld: a kernel whose record disappears while
// its owner holds its lease (the Kubernetes store's garbage collector
// deletes the record with the kernel's old pod on a restart) stays served
// by every replica, and its owner records it again with its next launch.
func TestRecordMissingWhileLeaseHeld(t *testing.T) {
	eachStore(t, func(t *testing.T, kernelStore string) {
		g := startGroup(t, kernelStore, 2)
		r1, r2 := g.replicas[0], g.replicas[1]
		id := start(t, r1.url)
		dialKernel(t, r2.url, id, "a", "").run("x = 1")
		g.dropRecord(id)
		// Once r2 follows a kernel started after the drop, it has read the
		// group without the record.
		later := start(t, r1.url)
		testkit.Eventually(t, 10*time.Second, func() error {
			if code, _, _ := get(r2.url + "/api/kernels/" + later); code != http.StatusOK {
				return fmt.Errorf("r2 answers %d for the later kernel", code)
			}
			return nil
		})
		code, body, err := get(r2.url + "/api/kernels/" + id)
		testkit.NoError(t, err)
		testkit.True(t, code == http.StatusOK, "r2 let the kernel go with its record: %d %s", code, body)
		testkit.Equal(t, dialKernel(t, r2.url, id, "b", "").run("print(x)"), "1\n")
		code, body, err = post(r2.url+"/api/kernels/"+id+"/restart", "")
		testkit.NoError(t, err)
		testkit.True(t, code == http.StatusOK, "restart through r2: %d %s", code, body)
		testkit.Equal(t, dialKernel(t, r2.url, id, "c", "").run("print('x' in dir())"), "False\n")
		groupView(t, g.replicas, 2, 2)
	})
}

// TestGroupRidesOutAHungAPIServer: with the Kubernetes store's API server
// stopped (SIGSTOP) for longer than a lease, a group's kernels keep
// running and serving every replica, a start fails at the admission lock's
// wait instead of hanging, and a replica stops within its stop timeout;
// once the server is back, the survivor owns the kernel, which kept its
// state, and starts work again.
func TestGroupRidesOutAHungAPIServer(t *testing.T) {
	g := startGroup(t, storeKubernetes, 2, "--kernel-store-timeout", "1")
	r1, r2 := g.replicas[0], g.replicas[1]
	id := start(t, g.lb)
	w1, w2 := dialKernel(t, r1.url, id, "one", ""), dialKernel(t, r2.url, id, "two", "")
	w1.run("x = 1")
	c := kube.Cluster(t)
	testkit.NoError(t, c.PauseAPIServer())
	paused := true
	resume := func() {
		if paused {
			paused = false
			testkit.NoError(t, c.ResumeAPIServer())
		}
	}
	t.Cleanup(resume)
	began := time.Now()
	testkit.Equal(t, w2.run("x += 1; print(x)"), "2\n")
	testkit.Equal(t, w1.run("print(x)"), "2\n")
	for _, r := range g.replicas {
		code, _, err := get(r.url + "/api/kernels/" + id)
		testkit.NoError(t, err)
		testkit.Equal(t, code, http.StatusOK)
	}
	code, body, err := post(r1.url+"/api/kernels", `{"name":"python3"}`)
	testkit.NoError(t, err)
	testkit.True(t, code == http.StatusServiceUnavailable, "a start while the store hangs: %d %s", code, body)
	t.Logf("kernels served and a start refused (after %v) while the API server hung", time.Since(began).Round(time.Millisecond))
	// Past a lease: nobody could renew.
	testkit.True(t, time.Since(began) > replicaLease, "the hang lasted only %v", time.Since(began))
	stopping := time.Now()
	testkit.NoError(t, r2.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-r2.exited:
		t.Logf("a replica stopped in %v while the API server hung", time.Since(stopping).Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatal("a replica did not stop while the API server hung")
	}
	resume()
	groupView(t, g.replicas[:1], 1, 1)
	testkit.Equal(t, dialKernel(t, r1.url, id, "three", "").run("print(x)"), "2\n")
	later := start(t, r1.url)
	testkit.Equal(t, dialKernel(t, r1.url, later, "four", "").run("print('ok')"), "ok\n")
}

// TestReplicasOverMutualTLS: replicas that serve mutual TLS call each other
// with their own certificate: an action forwarded to a kernel's owner works.
func TestReplicasOverMutualTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "group")
	cert, key := ca.Peer(t, "replica")
	shared, _ := storeArgs(t, storeFile)
	r := startReplicas(t, 2, append(shared, "--certfile", cert, "--keyfile", key, "--client-ca", ca.CertFile)...)
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: ca.Pool(), Certificates: []tls.Certificate{ca.ClientCert(t, "user")}}}}
	call := func(method, url string, want int) string {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(`{"name":"python3"}`))
		testkit.NoError(t, err)
		resp, err := client.Do(req)
		testkit.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		testkit.True(t, resp.StatusCode == want, "%s %s: %d %s", method, url, resp.StatusCode, b)
		return string(b)
	}
	body := call("POST", r[0].url+"/api/kernels", http.StatusCreated)
	id := body[strings.Index(body, `"id":"`)+6:][:36]
	testkit.Eventually(t, 10*time.Second, func() error {
		req, _ := http.NewRequest("GET", r[1].url+"/api/kernels/"+id, nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("the second replica answers %d", resp.StatusCode)
		}
		return nil
	})
	call("POST", r[1].url+"/api/kernels/"+id+"/restart", http.StatusOK)
	call("DELETE", r[1].url+"/api/kernels/"+id, http.StatusNoContent)
	call("GET", r[0].url+"/api/kernels/"+id, http.StatusNotFound)
}
