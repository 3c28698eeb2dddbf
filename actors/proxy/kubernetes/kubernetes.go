// Package kubernetes is the Kubernetes process proxy, Enterprise Gateway's
// KubernetesProcessProxy: each kernel runs in a pod made from its
// kernelspec's scripts/kernel-pod.yaml.j2, in a namespace of its own (made
// with a RoleBinding and deleted with the kernel), a shared one, or the
// client's. A launcher in the pod (EG's launch_ipykernel.py in EG's images,
// `kernelgate launch` in ours) reports the kernel's ports with EG's
// launcher protocol (actors/proxy/remote); the gateway dials the pod's IP.
//
// A kernelspec chooses how the pod is made (process_proxy.config
// "launch"): "native" (the default) renders the template in Go
// (podtemplate) and creates the pod with client-go, so the gateway needs no
// Python; "argv" runs the kernelspec's argv as EG does (its
// launch_kubernetes.py renders and creates the pod), then finds the pod by
// its kernel_id label.
//
// Status comes from one shared informer of kernel pods (label
// component=kernel, every namespace) and one of Warning events of pods,
// never from a poll per kernel: a pod that cannot run fails its start
// within seconds with its reason, and a pod that ends or disappears ends
// its kernel (proxy.Kernel.Exited), which then restarts like a local one.
// Requests to the API server are bounded (QPS, burst) and counted by verb.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/kubernetes/podtemplate"
	"github.com/kernelgate/kernelgate/actors/proxy/ports"
	"github.com/kernelgate/kernelgate/actors/proxy/remote"
	"github.com/rs/zerolog"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// ClassNames select this provisioner: ours and Enterprise Gateway's.
var ClassNames = []string{
	"kubernetes",
	"enterprise_gateway.services.processproxies.k8s.KubernetesProcessProxy",
}

// Labels. EG's are on every kernel pod and namespace (its templates set
// them on pods); kernelgate adds its own, which tell the pods and
// namespaces of one gateway (InstanceID) from any other's.
const (
	LabelKernelID  = "kernel_id"
	LabelComponent = "component" // "kernel"
	LabelApp       = "app"       // "enterprise-gateway"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelInstance  = "kernelgate.io/instance"
	managedBy      = "kernelgate"
)

// Launch modes: a kernelspec's process_proxy.config "launch".
const (
	// LaunchNative renders the kernelspec's pod template in Go and creates
	// the pod with client-go (the default).
	LaunchNative = "native"
	// LaunchArgv runs the kernelspec's argv (EG's launch_kubernetes.py),
	// which creates the pod.
	LaunchArgv = "argv"
)

// ErrPodFailed reports a kernel pod that cannot run (its image cannot be
// pulled, it cannot be scheduled, it crashed, it was refused): the start
// fails at once with the pod's own reason.
var ErrPodFailed = errors.New("kernel pod cannot run")

// Config configures the provisioner. Settings keep EG's names.
type Config struct {
	// REST reaches the API server (see ClusterConfig). QPS and Burst bound
	// this provisioner's requests to it (KERNELGATE_K8S_QPS,
	// KERNELGATE_K8S_BURST).
	REST  *rest.Config
	QPS   float32
	Burst int
	// LauncherEnv is added to the environment of an argv launch so that
	// the kernelspec's launcher reaches the API server as the gateway does:
	// KUBECONFIG, or the in-cluster KUBERNETES_SERVICE_* variables.
	LauncherEnv map[string]string
	// Kernel is EG's Kubernetes settings of a kernel: EG_NAMESPACE,
	// EG_SHARED_NAMESPACE, EG_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME,
	// EG_KERNEL_IMAGE, EG_KERNEL_EXECUTOR_IMAGE, EG_PROHIBITED_UIDS,
	// EG_PROHIBITED_GIDS, EG_MIRROR_WORKING_DIRS. A kernelspec's
	// image_name and executor_image_name override the images.
	Kernel podtemplate.Config
	// ClusterRole is bound to the kernel's service account in each
	// namespace made for a kernel (EG_KERNEL_CLUSTER_ROLE).
	ClusterRole string
	// PodTemplateDir is EG_POD_TEMPLATE_DIR: the kpt_<kernel id> file a
	// Spark kernelspec's launcher writes there goes with its kernel.
	PodTemplateDir string
	// InstanceID names this gateway on what it creates
	// (KERNELGATE_INSTANCE_ID): at start, its pods and namespaces that no
	// kernel claims are deleted. It must be a label value.
	InstanceID string
	// WaitUnschedulable lets a pod the scheduler cannot place wait out the
	// launch timeout (for clusters whose autoscaler adds nodes) instead of
	// failing the start at once.
	WaitUnschedulable bool
	// PortRange is `{port_range}` unless the kernelspec sets port_range
	// (EG_PORT_RANGE); MinPortRangeSize validates both.
	PortRange        string
	MinPortRangeSize int
	// CommTimeout bounds each comm-port request (EG_SOCKET_TIMEOUT).
	CommTimeout time.Duration
	Listener    *remote.Listener
	Logger      zerolog.Logger
}

// labelValue is what Kubernetes accepts as a label value.
var labelValue = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`)

func (c *Config) validate() error {
	var errs []error
	if c.REST == nil {
		errs = append(errs, errors.New("no API server configuration"))
	}
	if c.Listener == nil {
		errs = append(errs, errors.New("no response listener"))
	}
	if c.InstanceID == "" || !labelValue.MatchString(c.InstanceID) {
		errs = append(errs, fmt.Errorf("instance id %q is not a label value (63 characters at most: letters, digits, '-', '_', '.', alphanumeric at both ends)", c.InstanceID))
	}
	if c.ClusterRole == "" {
		errs = append(errs, errors.New("no cluster role for kernel namespaces"))
	}
	if c.QPS <= 0 || c.Burst <= 0 {
		errs = append(errs, fmt.Errorf("QPS %v and burst %d must be positive", c.QPS, c.Burst))
	}
	if _, err := ports.ParseRange(c.PortRange, c.MinPortRangeSize); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kubernetes process proxy: %w", err)
	}
	return nil
}

// Provisioner runs kernels in pods.
type Provisioner struct {
	cfg       Config
	client    kubernetes.Interface
	conns     *dialer
	requests  *requestCounts
	templates templates

	mu       sync.Mutex
	kernels  map[string]*kernelState // launched or taken back by this process, until retired
	pods     map[string]*podWatch    // namespace/name → its launch, for its events
	informer *informerSet            // started by the first launch or recovery
	closed   bool
}

// kernelState is what the provisioner holds for a kernel across its
// launches. Guarded by Provisioner.mu.
type kernelState struct {
	namespace    string
	ownNamespace bool      // made for the kernel: deleted when it retires
	watch        *podWatch // its current launch's pod; nil between launches
}

var (
	_ proxy.Provisioner = (*Provisioner)(nil)
	_ proxy.Recoverer   = (*Provisioner)(nil)
	_ proxy.Retirer     = (*Provisioner)(nil)
	_ proxy.Sweeper     = (*Provisioner)(nil)
)

// New checks the configuration and prepares the API client; nothing is
// asked of the API server before the first launch (or Sweep).
func New(cfg Config) (*Provisioner, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	counts := &requestCounts{}
	rc := rest.CopyConfig(cfg.REST)
	rc.QPS, rc.Burst = cfg.QPS, cfg.Burst
	rc.UserAgent = "kernelgate"
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &countingTransport{next: rt, counts: counts} })
	// A dialer of its own gives this client a transport of its own (client-go
	// shares transports of equal configurations), and Close the connections
	// to end.
	conns := &dialer{d: net.Dialer{Timeout: 30 * time.Second}, open: make(map[*trackedConn]struct{})}
	rc.Dial = conns.DialContext
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes process proxy: %w", err)
	}
	client, err := kubernetes.NewForConfigAndClient(rc, hc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes process proxy: %w", err)
	}
	return &Provisioner{cfg: cfg, client: client, conns: conns, requests: counts,
		kernels: make(map[string]*kernelState), pods: make(map[string]*podWatch)}, nil
}

// Close stops watching pods and events and closes the connections to the
// API server. Kernels are not touched.
func (p *Provisioner) Close() {
	p.mu.Lock()
	p.closed = true
	inf := p.informer
	p.mu.Unlock()
	if inf != nil {
		inf.stop()
	}
	p.conns.closeAll()
}

// apiTimeout bounds an API request made outside a launch (a clean-up).
const apiTimeout = 30 * time.Second

// dialer opens the client's connections and keeps them, for Close.
type dialer struct {
	d    net.Dialer
	mu   sync.Mutex
	open map[*trackedConn]struct{}
}

func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, d: d}
	d.mu.Lock()
	d.open[tc] = struct{}{}
	d.mu.Unlock()
	return tc, nil
}

func (d *dialer) closeAll() {
	d.mu.Lock()
	open := d.open
	d.open = make(map[*trackedConn]struct{})
	d.mu.Unlock()
	for c := range open {
		c.Conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	d *dialer
}

func (c *trackedConn) Close() error {
	c.d.mu.Lock()
	delete(c.d.open, c)
	c.d.mu.Unlock()
	return c.Conn.Close()
}

// informerSet is the shared pod and event informers.
type informerSet struct {
	pods, events informers.SharedInformerFactory
	cancel       context.CancelFunc
}

func (s *informerSet) stop() {
	s.cancel()
	s.pods.Shutdown()
	s.events.Shutdown()
}
