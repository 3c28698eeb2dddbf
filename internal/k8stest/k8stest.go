// Package k8stest runs a real Kubernetes control plane on loopback for
// tests: kine (etcd's API on SQLite), kube-apiserver,
// kube-controller-manager, kube-scheduler, and kwok playing one fake node,
// plus an in-process kubelet ("the runtime") that runs each Running pod's
// containers as local processes bound to the pod's IP. There is no API mock:
// what a client does against it, it does against Kubernetes.
//
// Nothing leaves loopback. The API server listens on 127.0.0.1, pod IPs come
// from the node's podCIDR, 127.0.10.0/24 (every 127/8 address can be bound
// and dialled on Linux without setup; clusters running at once take
// 127.0.11.0/24 and on), service ClusterIPs are allocated from 127.0.20.0/24
// but never served, and no pod gets the KUBERNETES_SERVICE_* variables a
// kubelet would inject.
//
// A cluster takes 3–4 s to start and 550–600 MB of memory, so a test
// package shares one, started by the first test that asks for it:
//
//	var kube = k8stest.NewShared(k8stest.Options{Images: ..., PodIPEnv: "POD_IP"})
//
//	func TestMain(m *testing.M) { os.Exit(kube.Main(m)) }
//
//	func TestX(t *testing.T) {
//		c := kube.Cluster(t)         // first: the cluster's goroutines outlive the test
//		t.Cleanup(leaktest.Check(t)) // runs after the namespace's clean-up has ended its pods
//		ns := c.Namespace(t)
//		...
//	}
//
// The programs are built into tools/bin by `make k8s-tools` (tools/k8s);
// without them tests skip, unless KERNELGATE_REQUIRE_K8S=1 (set by
// `make test`) makes that a failure.
package k8stest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	_ "embed"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

const (
	// NodeName is the fake node every pod is scheduled to.
	NodeName = "k8stest-node"
	// ServiceCIDR is where the API server allocates ClusterIPs. Nothing
	// serves them; it is loopback so that a stray dial stays on the machine.
	ServiceCIDR = "127.0.20.0/24"
	// FailPullRegistry is a registry no image can be pulled from: a pod with
	// a container image under it stays Pending with ErrImagePull, then
	// ImagePullBackOff, and Warning events, as on a real node.
	FailPullRegistry = "registry.invalid/"
)

// ErrToolsMissing is returned (wrapped) by Start when a program is missing
// from tools/bin.
var ErrToolsMissing = errors.New("the Kubernetes test programs are not built: run `make k8s-tools`")

// requireEnv names the variable that makes missing tools a test failure
// instead of a skip.
const requireEnv = "KERNELGATE_REQUIRE_K8S"

//go:embed kwok.yaml
var kwokConfig []byte

// Options configure a cluster.
type Options struct {
	// Images are the images the runtime can run, by reference as written in
	// pod specs. EG's pod templates give no command and rely on the image's
	// entrypoint, which only the test knows.
	Images map[string]Image
	// PodIPEnv, if set, names an environment variable every container gets
	// with its pod's IP, so that a process can bind where a container would
	// bind 0.0.0.0.
	PodIPEnv string
}

// Image is what the runtime needs to know of a container image: the part of
// its OCI configuration that decides how a container starts.
type Image struct {
	Entrypoint []string
	Cmd        []string
	Env        []string // KEY=value
	WorkingDir string
}

// Cluster is a running control plane with its fake node and runtime.
type Cluster struct {
	// URL is the API server's address, https://127.0.0.1:<port>.
	URL string
	// Token is a bearer token of a cluster administrator (system:masters).
	Token string
	// Kubeconfig is the path of a kubeconfig file for the administrator.
	Kubeconfig string
	// Client is the administrator's client, for tests to set up and inspect.
	Client kubernetes.Interface
	// PodCIDR is the node's pod network: every pod IP is in it.
	PodCIDR string

	caPEM   []byte
	dir     string
	cidr    *os.File // holds PodCIDR against other clusters
	runtime *runtime

	kine, apiserver, controllerManager, scheduler, kwok *component

	stopOnce sync.Once
	stopErr  error
}

// Start runs a cluster and returns once the API server serves, the node is
// Ready and pods can be created in the default namespace. Stop it with Stop.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	bin, err := toolsDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "k8stest-")
	if err != nil {
		return nil, fmt.Errorf("k8stest: %w", err)
	}
	c := &Cluster{dir: dir}
	if c.PodCIDR, c.cidr, err = takePodCIDR(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("k8stest: %w", err)
	}
	defer func() {
		if err != nil {
			c.Stop()
			err = fmt.Errorf("k8stest: %w", err)
		}
	}()
	p, err := newPKI(dir)
	if err != nil {
		return nil, err
	}
	c.Token, c.caPEM = p.adminToken, p.caPEM

	// kine on a unix socket: no port to race for.
	kineDir := filepath.Join(dir, "kine")
	if err := os.Mkdir(kineDir, 0o700); err != nil {
		return nil, err
	}
	sock := filepath.Join(kineDir, "kine.sock")
	// Without --endpoint kine keeps SQLite in ./db under its working directory.
	c.kine, err = startComponent("kine", filepath.Join(bin, "kine"), kineDir,
		"--listen-address=unix://"+sock, "--metrics-bind-address=0")
	if err != nil {
		return nil, err
	}
	if err := c.waitFor(ctx, "kine", 30*time.Second, func(context.Context) error {
		conn, err := net.Dial("unix", sock)
		if err == nil {
			conn.Close()
		}
		return err
	}); err != nil {
		return nil, err
	}

	ports, err := testkit.FreePorts(1)
	if err != nil {
		return nil, err
	}
	port := ports[0]
	c.URL = "https://127.0.0.1:" + strconv.Itoa(port)
	c.apiserver, err = startComponent("kube-apiserver", filepath.Join(bin, "kube-apiserver"), dir,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--advertise-address=127.0.0.1",
		// The default reconciler would publish the advertise address as the
		// kubernetes service's endpoint, and refuses loopback.
		"--endpoint-reconciler-type=none",
		"--etcd-servers=unix://"+sock,
		"--cert-dir="+dir,
		"--tls-cert-file="+p.certFile,
		"--tls-private-key-file="+p.keyFile,
		"--token-auth-file="+p.tokenFile,
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+p.saPubFile,
		"--service-account-signing-key-file="+p.saKeyFile,
		"--service-cluster-ip-range="+ServiceCIDR,
		// It taints a new node not-ready until the node lifecycle
		// controller, which is off (see the controller manager), lifts it.
		"--disable-admission-plugins=TaintNodesByCondition",
		"--profiling=false",
	)
	if err != nil {
		return nil, err
	}
	cfg := c.RESTConfig()
	// The harness's own client runs the runtime and the tests' set-up; the
	// default 5 requests/s would throttle them.
	cfg.QPS, cfg.Burst = 200, 400
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	c.Client = client
	if err := c.waitFor(ctx, "kube-apiserver", 60*time.Second, func(ctx context.Context) error {
		_, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	}); err != nil {
		return nil, err
	}

	c.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := c.writeKubeconfig(); err != nil {
		return nil, err
	}
	// Serving ports are off (0): nothing needs the components' health
	// endpoints, and their defaults would listen on every interface.
	c.controllerManager, err = startComponent("kube-controller-manager", filepath.Join(bin, "kube-controller-manager"), dir,
		"--kubeconfig="+c.Kubeconfig,
		"--secure-port=0",
		"--leader-elect=false",
		"--service-account-private-key-file="+p.saKeyFile,
		"--root-ca-file="+p.caFile,
		// The node lifecycle controller taints and evicts a node whose
		// kubelet stops reporting; the fake node has no heartbeat, and a
		// test pausing the API server must not get its pods evicted.
		"--controllers=*,-nodelifecycle",
	)
	if err != nil {
		return nil, err
	}
	c.scheduler, err = startComponent("kube-scheduler", filepath.Join(bin, "kube-scheduler"), dir,
		"--kubeconfig="+c.Kubeconfig,
		"--secure-port=0",
		"--leader-elect=false",
	)
	if err != nil {
		return nil, err
	}
	kwokFile := filepath.Join(dir, "kwok.yaml")
	if err := os.WriteFile(kwokFile, kwokConfig, 0o600); err != nil {
		return nil, err
	}
	c.kwok, err = startComponent("kwok", filepath.Join(bin, "kwok"), dir,
		"--kubeconfig="+c.Kubeconfig,
		"--config="+kwokFile,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-ip=127.0.0.1",
		// The node's podCIDR decides pod IPs; this default (10.0.0.0/24
		// otherwise) only matters if it were missing.
		"--cidr="+c.PodCIDR,
	)
	if err != nil {
		return nil, err
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        NodeName,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels: map[string]string{
				"kubernetes.io/hostname": NodeName,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
		},
		Spec: corev1.NodeSpec{PodCIDR: c.PodCIDR, PodCIDRs: []string{c.PodCIDR}},
	}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create node: %w", err)
	}
	c.runtime, err = startRuntime(ctx, client, opts, filepath.Join(dir, "pods"))
	if err != nil {
		return nil, err
	}
	// kwok marks the node Ready; the controller manager creates each
	// namespace's default service account, without which no pod can be
	// created.
	if err := c.waitFor(ctx, "kwok", 30*time.Second, func(ctx context.Context) error {
		n, err := client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return errors.New("node is not Ready")
	}); err != nil {
		return nil, err
	}
	if err := c.waitFor(ctx, "kube-controller-manager", 30*time.Second, func(ctx context.Context) error {
		_, err := client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// RESTConfig returns a new client configuration for the administrator.
func (c *Cluster) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            c.URL,
		BearerToken:     c.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.caPEM},
	}
}

// PauseAPIServer stops the API server process (SIGSTOP) and returns once
// all its threads have stopped: its connections stay open and every request
// hangs, as with a hung server, until ResumeAPIServer. A test that pauses a
// shared cluster must resume it before it ends (t.Cleanup).
func (c *Cluster) PauseAPIServer() error {
	if err := c.apiserver.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	return c.waitFor(context.Background(), "kube-apiserver to stop", 10*time.Second, func(context.Context) error {
		stopped, err := c.apiserver.stopped()
		if err == nil && !stopped {
			err = errors.New("some threads still run")
		}
		return err
	})
}

// ResumeAPIServer continues a paused API server (SIGCONT).
func (c *Cluster) ResumeAPIServer() error { return c.apiserver.signal(syscall.SIGCONT) }

// Logs returns the output so far of a container of the last pod of that
// name the runtime ran.
func (c *Cluster) Logs(namespace, pod, container string) (string, error) {
	return c.runtime.logs(namespace, pod, container)
}

// Stop kills the pods' processes, stops the control plane and removes its
// files. It reports components that had exited on their own. Calling it
// again returns the first result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		if c.runtime != nil {
			c.runtime.stop()
		}
		c.stopErr = errExited(c.kine, c.apiserver, c.controllerManager, c.scheduler, c.kwok)
		var wg sync.WaitGroup
		for _, p := range []*component{c.controllerManager, c.scheduler, c.kwok} {
			if p != nil {
				wg.Go(func() { p.stop(5 * time.Second) })
			}
		}
		wg.Wait()
		// The API server before kine: kine waits about 15 s for the API
		// server's watches to go away otherwise.
		for _, p := range []*component{c.apiserver, c.kine} {
			if p != nil {
				p.stop(10 * time.Second)
			}
		}
		if err := os.RemoveAll(c.dir); err != nil {
			c.stopErr = errors.Join(c.stopErr, err)
		}
		c.cidr.Close() // only now that no process holds one of its IPs
	})
	return c.stopErr
}

func (c *Cluster) writeKubeconfig() error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["k8stest"] = &clientcmdapi.Cluster{Server: c.URL, CertificateAuthorityData: c.caPEM}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: c.Token}
	cfg.Contexts["k8stest"] = &clientcmdapi.Context{Cluster: "k8stest", AuthInfo: "admin"}
	cfg.CurrentContext = "k8stest"
	if err := clientcmd.WriteToFile(*cfg, c.Kubeconfig); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// waitFor polls cond until it returns nil, a component exits, or timeout.
func (c *Cluster) waitFor(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		if dead := errExited(c.kine, c.apiserver, c.controllerManager, c.scheduler, c.kwok); dead != nil {
			return fmt.Errorf("waiting for %s: %w", what, dead)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %w", what, timeout, err)
		case <-tick.C:
		}
	}
}

// toolsDir finds tools/bin above the working directory (go test runs a test
// in its package's folder) and checks that every program is there.
func toolsDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("k8stest: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		bin := filepath.Join(d, "tools", "bin")
		if _, err := os.Stat(filepath.Join(d, "tools", "k8s", "go.mod")); err == nil {
			for _, p := range []string{"kine", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"} {
				if _, err := os.Stat(filepath.Join(bin, p)); err != nil {
					return "", fmt.Errorf("k8stest: %w (%s is missing)", ErrToolsMissing, filepath.Join(bin, p))
				}
			}
			return bin, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("k8stest: %w (no tools/k8s above %s)", ErrToolsMissing, wd)
		}
	}
}

// takePodCIDR takes the first pod network, from 127.0.10.0/24 to
// 127.0.19.0/24, that no other cluster on the machine holds (go test runs
// packages in parallel: two clusters handing out 127.0.10.1 would make their
// pods' ports collide). The flock on its file lasts while the file is open,
// and the kernel drops it if the test binary dies.
func takePodCIDR() (string, *os.File, error) {
	for n := 10; n < 20; n++ {
		f, err := os.OpenFile(filepath.Join(os.TempDir(), fmt.Sprintf("k8stest-podcidr-%d.lock", n)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return "", nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		return fmt.Sprintf("127.0.%d.0/24", n), f, nil
	}
	return "", nil, errors.New("every pod network from 127.0.10.0/24 to 127.0.19.0/24 is held by another cluster")
}
