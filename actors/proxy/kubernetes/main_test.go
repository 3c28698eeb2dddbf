package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/kubernetes/podtemplate"
	"github.com/kernelgate/kernelgate/actors/proxy/local"
	"github.com/kernelgate/kernelgate/actors/proxy/ports"
	"github.com/kernelgate/kernelgate/actors/proxy/remote"
	"github.com/kernelgate/kernelgate/actors/store"
	"github.com/kernelgate/kernelgate/bench"
	"github.com/kernelgate/kernelgate/bench/synthkernel"
	kghttp "github.com/kernelgate/kernelgate/http"
	"github.com/kernelgate/kernelgate/internal/k8stest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/kernelspecs"
	"github.com/kernelgate/kernelgate/launcher"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The images the test cluster's runtime knows. pythonImage is named like
// EG's kernel image; both run this test binary as `kernelgate launch`,
// which reads EG's environment contract from the pod, with a real
// ipykernel or the synthetic kernel (this binary again) behind it.
const (
	pythonImage = "elyra/kernel-py:3.3.0"
	synthImage  = "kernelgate/kernel-synthetic:test"
	// silentImage runs, but its launcher never reports.
	silentImage = "kernelgate/silent:test"
)

var (
	images = map[string]k8stest.Image{}
	kube   = k8stest.NewShared(k8stest.Options{Images: images})
)

// TestMain lets the test binary double as the launcher and the synthetic
// kernel its pods run, and shares one cluster among the tests.
func TestMain(m *testing.M) {
	launcher.RunIfAsked()
	synthkernel.ServeIfAsked()
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	home, err := os.MkdirTemp("", "kernelgate-k8s-home-")
	if err != nil {
		panic(err)
	}
	images[pythonImage] = k8stest.Image{Entrypoint: []string{exe, "launch"}, Env: []string{"HOME=" + home, "PATH=/usr/bin:/bin"}}
	images[synthImage] = k8stest.Image{Entrypoint: []string{exe, "launch", "--", exe, "synth-kernel", "-f", "{connection_file}"}}
	images[silentImage] = k8stest.Image{Entrypoint: []string{"sleep", "300"}}
	code := kube.Main(m)
	os.RemoveAll(home)
	os.Exit(code)
}

var localPorts = func() *ports.Allocator {
	low, high := testkit.PortRange("kubernetes")
	return ports.NewAllocator("127.0.0.1", ports.Range{Low: low, High: high}, time.Minute)
}()

// Kernelspecs of the rig: EG's python_kubernetes (native and argv), the
// synthetic kernel in a pod, and a local synthetic kernel.
const (
	specPython = "python_kubernetes"
	specArgv   = "python_kubernetes_argv"
	specSynth  = "synthetic_kubernetes"
	specLocal  = "synthetic_local"
)

// rig is a gateway (actors and HTTP, in-process) whose Kubernetes kernels
// run in the shared test cluster.
type rig struct {
	t      *testing.T
	c      *k8stest.Cluster
	p      *Provisioner
	gw     *actors.Gateway
	url    string
	client *http.Client
	stop   func()
}

type rigOptions struct {
	config   func(*Config)        // the provisioner's settings
	gateway  func(*actors.Config) // the gateway's
	instance string               // the gateway's instance id; default: one of the test's own
	// wrap registers something else under the proxy's class names.
	wrap func(*Provisioner) proxy.Provisioner
}

func newRig(t *testing.T, c *k8stest.Cluster, o rigOptions) *rig {
	t.Helper()
	log := zerolog.Nop()
	if testing.Verbose() {
		log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	if o.instance == "" {
		o.instance = testInstance()
	}
	l := remote.NewListener(remote.ListenerConfig{IP: "127.0.0.1", KeyBits: 1024, Logger: log})
	cfg := Config{REST: c.RESTConfig(), QPS: 200, Burst: 400, LauncherEnv: map[string]string{"KUBECONFIG": c.Kubeconfig},
		Kernel: podtemplate.Config{Namespace: "default"}, ClusterRole: "edit", InstanceID: o.instance,
		PortRange: "0..0", MinPortRangeSize: ports.MinRangeSize, CommTimeout: 2 * time.Second, Listener: l, Logger: log}
	if o.config != nil {
		o.config(&cfg)
	}
	p, err := New(cfg)
	testkit.NoError(t, err)

	root := specsDir(t)
	lp := &local.Provisioner{Ports: localPorts, RuntimeDir: filepath.Join(t.TempDir(), "rt")}
	reg := proxy.NewRegistry(lp)
	var k8s proxy.Provisioner = p
	if o.wrap != nil {
		k8s = o.wrap(p)
	}
	reg.Register(k8s, ClassNames...)
	cache := kernelspecs.NewCache(kernelspecs.CacheOptions{Path: []string{root}, Default: specSynth, Logger: log})
	acfg := actors.Config{MaxKernelsPerUser: -1, DefaultUsername: "tester", LaunchTimeout: 60 * time.Second,
		ShutdownWait: 2 * time.Second, Specs: cache, Proxies: reg, Logger: log}
	if o.gateway != nil {
		o.gateway(&acfg)
	}
	gw, err := actors.New(acfg)
	testkit.NoError(t, err)
	srv := kghttp.New(kghttp.Config{ListKernels: true, Version: "test", Logger: log, Collectors: []prometheus.Collector{p.Collector()}}, gw, cache)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testkit.NoError(t, err)
	served := make(chan struct{})
	go func() { srv.Serve(ln); close(served) }()
	r := &rig{t: t, c: c, p: p, gw: gw, url: "http://" + ln.Addr().String(), client: &http.Client{Timeout: 3 * time.Minute}}
	stopped := false
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		srv.Shutdown(context.Background())
		<-served
		gw.Close(60 * time.Second)
		p.Close()
		l.Close()
		r.client.CloseIdleConnections()
	}
	t.Cleanup(r.stop)
	return r
}

// testInstance is an instance id of the test's own, so that no test's
// sweep touches another's pods.
func testInstance() string { return "test-" + strings.ToLower(rand.Text()[:8]) }

// specsDir writes the rig's kernelspecs.
func specsDir(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	exe, err := os.Executable()
	testkit.NoError(t, err)
	template, err := os.ReadFile(filepath.Join("testdata", "kernel-pod.yaml.j2"))
	testkit.NoError(t, err)
	script, err := os.ReadFile(filepath.Join("testdata", "launch_kubernetes.py"))
	testkit.NoError(t, err)
	placeholders := []string{"--RemoteProcessProxy.kernel-id", "{kernel_id}", "--RemoteProcessProxy.port-range", "{port_range}",
		"--RemoteProcessProxy.response-address", "{response_address}", "--RemoteProcessProxy.public-key", "{public_key}"}
	write := func(name, language string, config map[string]any, argv []string) {
		dir := filepath.Join(root, "kernels", name)
		testkit.NoError(t, os.MkdirAll(filepath.Join(dir, "scripts"), 0o755))
		testkit.NoError(t, os.WriteFile(filepath.Join(dir, "scripts", "kernel-pod.yaml.j2"), template, 0o644))
		testkit.NoError(t, os.WriteFile(filepath.Join(dir, "scripts", "launch_kubernetes.py"), script, 0o755))
		meta := map[string]any{}
		if config != nil {
			meta["process_proxy"] = map[string]any{"class_name": ClassNames[1], "config": config}
		}
		for i, a := range argv {
			argv[i] = strings.ReplaceAll(a, "{dir}", dir)
		}
		b, err := json.Marshal(map[string]any{"argv": argv, "display_name": name, "language": language, "metadata": meta})
		testkit.NoError(t, err)
		testkit.NoError(t, os.WriteFile(filepath.Join(dir, "kernel.json"), b, 0o644))
	}
	egArgv := func() []string {
		return append([]string{"/usr/bin/python3", "{dir}/scripts/launch_kubernetes.py"}, placeholders...)
	}
	write(specPython, "python", map[string]any{"image_name": pythonImage}, egArgv())
	write(specArgv, "python", map[string]any{"image_name": pythonImage, "launch": LaunchArgv}, egArgv())
	write(specSynth, "synthetic", map[string]any{"image_name": synthImage}, egArgv())
	write(specLocal, "synthetic", nil, []string{exe, "synth-kernel", "-f", "{connection_file}"})
	return root
}

// start posts a kernel start and returns the status and body.
func (r *rig) start(spec string, env map[string]string) (int, []byte) {
	r.t.Helper()
	body, err := json.Marshal(map[string]any{"name": spec, "env": env})
	testkit.NoError(r.t, err)
	return r.do("POST", "/api/kernels", string(body))
}

// started starts a kernel that must come up and returns its id.
func (r *rig) started(spec string, env map[string]string) string {
	r.t.Helper()
	status, body := r.start(spec, env)
	if status != http.StatusCreated {
		r.t.Fatalf("start %s: %d %s", spec, status, body)
	}
	var m struct {
		ID string `json:"id"`
	}
	testkit.NoError(r.t, json.Unmarshal(body, &m))
	return m.ID
}

func (r *rig) do(method, path, body string) (int, []byte) {
	r.t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	testkit.NoError(r.t, err)
	resp, err := r.client.Do(req)
	testkit.NoError(r.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	testkit.NoError(r.t, err)
	return resp.StatusCode, b
}

// shutdown deletes a kernel through the API.
func (r *rig) shutdown(id string) {
	r.t.Helper()
	if status, body := r.do("DELETE", "/api/kernels/"+id, ""); status != http.StatusNoContent {
		r.t.Fatalf("delete %s: %d %s", id, status, body)
	}
}

// connect opens a websocket to the kernel, as a client does, once it has
// answered kernel_info.
func (r *rig) connect(id string) bench.Conn {
	r.t.Helper()
	g, err := bench.NewGateway(bench.Target{URL: r.url, Protocol: "v1"})
	testkit.NoError(r.t, err)
	r.t.Cleanup(func() { g.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := g.Connect(ctx, id)
	testkit.NoError(r.t, err)
	r.t.Cleanup(func() { c.Close() })
	testkit.NoError(r.t, c.KernelInfo(ctx))
	return c
}

// run executes code on c and returns the reply's status.
func run(t *testing.T, c bench.Conn, code string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	status, err := c.Execute(ctx, code)
	testkit.NoError(t, err)
	return status
}

// pod returns the kernel's pod, waiting for one that ok accepts.
func (r *rig) pod(id string, ok func(*corev1.Pod) error) *corev1.Pod {
	r.t.Helper()
	var pod *corev1.Pod
	testkit.Eventually(r.t, 30*time.Second, func() error {
		pods, err := r.c.Client.CoreV1().Pods(metav1.NamespaceAll).List(context.Background(),
			metav1.ListOptions{LabelSelector: LabelKernelID + "=" + id})
		if err != nil {
			return err
		}
		if len(pods.Items) != 1 {
			return fmt.Errorf("%d pods of kernel %s", len(pods.Items), id)
		}
		pod = &pods.Items[0]
		if ok != nil {
			return ok(pod)
		}
		return nil
	})
	return pod
}

func running(p *corev1.Pod) error {
	if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
		return fmt.Errorf("pod %s: %s", p.Name, describe(p))
	}
	return nil
}

// noPods waits until the kernel has no pod left.
func (r *rig) noPods(id string) {
	r.t.Helper()
	testkit.Eventually(r.t, 30*time.Second, func() error {
		pods, err := r.c.Client.CoreV1().Pods(metav1.NamespaceAll).List(context.Background(),
			metav1.ListOptions{LabelSelector: LabelKernelID + "=" + id})
		if err != nil {
			return err
		}
		if n := len(pods.Items); n > 0 {
			return fmt.Errorf("kernel %s still has %d pods (%s)", id, n, pods.Items[0].Name)
		}
		return nil
	})
}

// namespaceGoing waits until a namespace is deleted or being deleted (the
// controller manager takes a few seconds to empty it).
func (r *rig) namespaceGoing(name string) {
	r.t.Helper()
	testkit.Eventually(r.t, 30*time.Second, func() error {
		ns, err := r.c.Client.CoreV1().Namespaces().Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || err == nil && ns.DeletionTimestamp != nil {
			return nil
		}
		return fmt.Errorf("namespace %s is still there (%v)", name, err)
	})
}

// requests is how many API requests the provisioner has sent.
func (r *rig) requests() uint64 {
	var n uint64
	for _, c := range r.p.APIRequests() {
		n += c
	}
	return n
}

// store is a kernel record store in a folder of the test's.
func fileStore(t *testing.T) store.FileStore { return store.FileStore{Dir: t.TempDir()} }
