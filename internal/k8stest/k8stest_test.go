package k8stest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// helperImage is an image whose entrypoint is this test binary in helper
// mode (see TestMain): its default command serves HTTP on the pod IP.
const helperImage = "example.test/helper:1"

var kube = NewShared(Options{Images: helperImages(), PodIPEnv: "POD_IP"})

func helperImages() map[string]Image {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return map[string]Image{
		helperImage: {Entrypoint: []string{exe}, Cmd: []string{"serve"}, Env: []string{"K8STEST_HELPER=1"}},
	}
}

func TestMain(m *testing.M) {
	if os.Getenv("K8STEST_HELPER") == "1" {
		os.Exit(helper(os.Args[1:]))
	}
	os.Exit(kube.Main(m))
}

// helper is what runs in the test's pods: "serve" answers GET / on
// $POD_IP:8080 with its pid and environment until SIGTERM; "exit N" writes
// a line and exits with N.
func helper(args []string) int {
	switch args[0] {
	case "serve":
		l, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("POD_IP"), "8080"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			json.NewEncoder(w).Encode(helperReply{Pid: os.Getpid(), Env: os.Environ()})
		}))
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		<-term
		fmt.Println("terminated")
		return 0
	case "exit":
		code, _ := strconv.Atoi(args[1])
		fmt.Fprintf(os.Stderr, "exiting with %d\n", code)
		return code
	}
	return 2
}

type helperReply struct {
	Pid int
	Env []string
}

func helperPod(name string, env ...corev1.EnvVar) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "main", Image: helperImage, Env: env}},
		},
	}
}

func fieldRef(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
}

// waitPod polls the pod until ok accepts it.
func waitPod(t *testing.T, c *Cluster, ns, name string, timeout time.Duration, ok func(*corev1.Pod) error) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	testkit.Eventually(t, timeout, func() error {
		p, err := c.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		pod = p
		return ok(p)
	})
	return pod
}

func phase(want corev1.PodPhase) func(*corev1.Pod) error {
	return func(p *corev1.Pod) error {
		if p.Status.Phase != want {
			return fmt.Errorf("phase %s, want %s", p.Status.Phase, want)
		}
		return nil
	}
}

func waitGone(t *testing.T, c *Cluster, ns, name string, timeout time.Duration) {
	t.Helper()
	testkit.Eventually(t, timeout, func() error {
		_, err := c.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("pod still there (%v)", err)
	})
}

// get asks the helper at ip for its pid and environment, without keeping a
// connection (an idle one would count as a leaked goroutine).
func get(ip string) (helperReply, error) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	var r helperReply
	resp, err := client.Get("http://" + net.JoinHostPort(ip, "8080") + "/")
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	return r, json.NewDecoder(resp.Body).Decode(&r)
}

func processGone(pid int) error {
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("process %d still exists (kill 0: %v)", pid, err)
	}
	return nil
}

// runningHelper creates a helper pod and returns it Running, with the
// helper's answer from its pod IP.
func runningHelper(t *testing.T, c *Cluster, ns, name string, env ...corev1.EnvVar) (*corev1.Pod, helperReply) {
	t.Helper()
	if _, err := c.Client.CoreV1().Pods(ns).Create(context.Background(), helperPod(name, env...), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := waitPod(t, c, ns, name, 20*time.Second, phase(corev1.PodRunning))
	ip, err := netip.ParseAddr(pod.Status.PodIP)
	if err != nil || !netip.MustParsePrefix(c.PodCIDR).Contains(ip) {
		t.Fatalf("pod IP %q is not in %s", pod.Status.PodIP, c.PodCIDR)
	}
	var reply helperReply
	testkit.Eventually(t, 10*time.Second, func() (err error) {
		reply, err = get(pod.Status.PodIP)
		return err
	})
	return pod, reply
}

func TestPodRunsAtItsIP(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t)) // after the namespace's clean-up: it ends the pods
	ns := c.Namespace(t)

	start := time.Now()
	pod, reply := runningHelper(t, c, ns, "server",
		fieldRef("MY_NAME", "metadata.name"),
		fieldRef("MY_NAMESPACE", "metadata.namespace"),
		fieldRef("MY_IP", "status.podIP"),
		corev1.EnvVar{Name: "GREETING", Value: "hello $(MY_NAME) at $(MY_IP), $$(MY_NAME) $(UNSET)"},
	)
	t.Logf("created → answering at %s: %v", pod.Status.PodIP, time.Since(start))

	env := map[string]string{}
	for _, kv := range reply.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	ip := pod.Status.PodIP
	for k, want := range map[string]string{
		"K8STEST_HELPER": "1", // the image's
		"MY_NAME":        "server",
		"MY_NAMESPACE":   ns,
		"MY_IP":          ip,
		"POD_IP":         ip,
		"HOSTNAME":       "server",
		"GREETING":       "hello server at " + ip + ", $(MY_NAME) $(UNSET)",
	} {
		if env[k] != want {
			t.Errorf("%s=%q, want %q", k, env[k], want)
		}
	}
	for k := range env {
		if strings.HasPrefix(k, "KUBERNETES_") {
			t.Errorf("the pod got %s: nothing may dial a ClusterIP", k)
		}
	}

	// A graceful delete: SIGTERM, the helper exits, and only then does the
	// runtime remove the pod.
	if err := c.Client.CoreV1().Pods(ns).Delete(context.Background(), "server", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, c, ns, "server", 10*time.Second)
	testkit.NoError(t, processGone(reply.Pid))
	if _, err := get(ip); err == nil {
		t.Error("the helper still answers after its pod was deleted")
	}
	out, err := c.Logs(ns, "server", "main")
	testkit.NoError(t, err)
	testkit.True(t, strings.Contains(out, "terminated"), "the helper did not see SIGTERM; its output: %q", out)
}

func TestForcedDeleteKillsAtOnce(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t))
	ns := c.Namespace(t)
	_, reply := runningHelper(t, c, ns, "server")
	if err := c.Client.CoreV1().Pods(ns).Delete(context.Background(), "server",
		metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() error { return processGone(reply.Pid) })
}

func TestPodEnds(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t))
	ns := c.Namespace(t)
	exe, err := os.Executable()
	testkit.NoError(t, err)
	for _, tc := range []struct {
		name, image string
		command     []string
		phase       corev1.PodPhase
		code        int32
		reason, log string
	}{
		{"zero", helperImage, []string{exe, "exit", "0"}, corev1.PodSucceeded, 0, "Completed", "exiting with 0"},
		{"three", helperImage, []string{exe, "exit", "3"}, corev1.PodFailed, 3, "Error", "exiting with 3"},
		{"unknown-image", "example.test/unknown:1", nil, corev1.PodFailed, 128, "StartError", ""},
		{"missing-binary", helperImage, []string{"/nonexistent/k8stest"}, corev1.PodFailed, 128, "StartError", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: tc.name},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "main", Image: tc.image, Command: tc.command,
						Env: []corev1.EnvVar{{Name: "K8STEST_HELPER", Value: "1"}}}},
				},
			}
			if _, err := c.Client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			pod = waitPod(t, c, ns, tc.name, 20*time.Second, phase(tc.phase))
			term := pod.Status.ContainerStatuses[0].State.Terminated
			if term == nil || term.ExitCode != tc.code || term.Reason != tc.reason {
				t.Fatalf("container state %+v, want terminated %s with %d", pod.Status.ContainerStatuses[0].State, tc.reason, tc.code)
			}
			if tc.log != "" {
				out, err := c.Logs(ns, tc.name, "main")
				testkit.NoError(t, err)
				testkit.True(t, strings.Contains(out, tc.log), "output %q lacks %q", out, tc.log)
			}
		})
	}
}

func TestImagePullFailure(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t))
	ns := c.Namespace(t)
	pod := helperPod("bad-image")
	pod.Spec.Containers[0].Image = FailPullRegistry + "kernel:1"
	if _, err := c.Client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waiting := func(reason string) func(*corev1.Pod) error {
		return func(p *corev1.Pod) error {
			if p.Status.Phase != corev1.PodPending {
				return fmt.Errorf("phase %s", p.Status.Phase)
			}
			for _, s := range p.Status.ContainerStatuses {
				if s.State.Waiting != nil && s.State.Waiting.Reason == reason {
					return nil
				}
			}
			return fmt.Errorf("container statuses %+v", p.Status.ContainerStatuses)
		}
	}
	start := time.Now()
	waitPod(t, c, ns, "bad-image", 5*time.Second, waiting("ErrImagePull"))
	t.Logf("ErrImagePull after %v", time.Since(start))
	testkit.Eventually(t, 5*time.Second, func() error {
		events, err := c.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
			FieldSelector: "involvedObject.name=bad-image,type=Warning"})
		if err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Reason == "Failed" && strings.Contains(e.Message, "ErrImagePull") {
				return nil
			}
		}
		return fmt.Errorf("no Warning event for ErrImagePull among %d", len(events.Items))
	})
	waitPod(t, c, ns, "bad-image", 5*time.Second, waiting("ImagePullBackOff"))
	t.Logf("ImagePullBackOff after %v", time.Since(start))

	// Such a pod never ran; the runtime still finishes its deletion.
	if err := c.Client.CoreV1().Pods(ns).Delete(context.Background(), "bad-image", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, c, ns, "bad-image", 5*time.Second)
}

// TestNamespaceDeletion deletes a namespace with a running pod in it: the
// controller manager's namespace controller deletes the pod, the runtime
// kills it, and the namespace goes.
func TestNamespaceDeletion(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t))
	ns := c.Namespace(t)
	_, reply := runningHelper(t, c, ns, "server")
	start := time.Now()
	if err := c.Client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 60*time.Second, func() error {
		_, err := c.Client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("namespace still there (%v)", err)
	})
	t.Logf("namespace deleted in %v", time.Since(start))
	testkit.NoError(t, processGone(reply.Pid))
}

// TestPausedAPIServer: while the API server is stopped, requests to it hang
// but pods keep serving.
func TestPausedAPIServer(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t))
	ns := c.Namespace(t)
	pod, _ := runningHelper(t, c, ns, "server")

	testkit.NoError(t, c.PauseAPIServer())
	paused := true
	t.Cleanup(func() {
		if paused {
			c.ResumeAPIServer()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := c.Client.CoreV1().Pods(ns).Get(ctx, "server", metav1.GetOptions{})
	testkit.ErrorIs(t, err, context.DeadlineExceeded)
	if _, err := get(pod.Status.PodIP); err != nil {
		t.Errorf("the pod stopped serving with the API server: %v", err)
	}

	testkit.NoError(t, c.ResumeAPIServer())
	paused = false
	_, err = c.Client.CoreV1().Pods(ns).Get(context.Background(), "server", metav1.GetOptions{})
	testkit.NoError(t, err)
}

// TestStartStop starts a cluster of its own beside the shared one: it must
// get a pod network of its own, Stop must leave no process, goroutine or
// file behind, and the test reports what starting costs.
func TestStartStop(t *testing.T) {
	shared := kube.Cluster(t) // up, so that this cluster must take another pod network
	defer leaktest.Check(t)()
	start := time.Now()
	c, err := Start(context.Background(), Options{})
	if err != nil {
		skipOrFail(t, err)
	}
	t.Logf("started in %v", time.Since(start))
	if c.PodCIDR == shared.PodCIDR {
		t.Errorf("two clusters on %s", c.PodCIDR)
	}
	var rss int
	components := []*component{c.kine, c.apiserver, c.controllerManager, c.scheduler, c.kwok}
	for _, p := range components {
		kb := vmRSS(t, p.cmd.Process.Pid)
		t.Logf("%s: %d MB", p.name, kb/1024)
		rss += kb
	}
	t.Logf("RSS of the control plane: %d MB", rss/1024)
	svc, err := c.Client.CoreV1().Services(metav1.NamespaceDefault).Get(context.Background(), "kubernetes", metav1.GetOptions{})
	testkit.NoError(t, err)
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	testkit.True(t, err == nil && netip.MustParsePrefix(ServiceCIDR).Contains(ip) && ip.IsLoopback(),
		"the kubernetes service's ClusterIP %q is not in %s", svc.Spec.ClusterIP, ServiceCIDR)

	start = time.Now()
	testkit.NoError(t, c.Stop())
	t.Logf("stopped in %v", time.Since(start))
	for _, p := range components {
		testkit.NoError(t, processGone(p.cmd.Process.Pid))
	}
	_, err = os.Stat(c.dir)
	testkit.True(t, errors.Is(err, os.ErrNotExist), "%s remains: %v", c.dir, err)
}

func vmRSS(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	testkit.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb
		}
	}
	return 0
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	for in, want := range map[string]string{
		"":            "",
		"plain":       "plain",
		"$(A)":        "1",
		"x$(A)y$(B)z": "x1ytwoz",
		"$$(A)":       "$(A)",
		"$(C)":        "$(C)",
		"$(A":         "$(A",
		"a$b$":        "a$b$",
		"$$$(B)":      "$two",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}
