package main

import (
	"log/slog"

	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/kubernetes"
	"github.com/kernelgate/kernelgate/actors/proxy/kubernetes/podtemplate"
	"github.com/kernelgate/kernelgate/actors/proxy/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"k8s.io/klog/v2"
)

// kubernetesConfig is the settings of the Kubernetes process proxy: EG's
// (EG_*) keep their names and defaults.
type kubernetesConfig struct {
	Kubeconfig        string
	Namespace         string
	SharedNamespace   bool
	ClusterRole       string
	ServiceAccount    string
	MirrorWorkingDirs bool
	Image             string
	ExecutorImage     string
	PodTemplateDir    string
	QPS               int
	Burst             int
	WaitUnschedulable bool
}

func kubernetesSettings(s *settings, c *kubernetesConfig) {
	s.String(&c.Kubeconfig, "kubeconfig", "", "kubeconfig file(s) of the cluster Kubernetes kernels run in; empty = the pod's service account inside a cluster, else ~/.kube/config", "KUBECONFIG")
	s.String(&c.Namespace, "namespace", "default", "the gateway's Kubernetes namespace, which kernels share under --shared-namespace", "EG_NAMESPACE")
	s.Bool(&c.SharedNamespace, "shared-namespace", false, "Kubernetes kernels run in the gateway's namespace instead of a namespace each (a request's KERNEL_NAMESPACE wins either way)", "EG_SHARED_NAMESPACE")
	s.String(&c.ClusterRole, "kernel-cluster-role", "cluster-admin", "ClusterRole bound to a kernel's service account in the namespace made for the kernel", "EG_KERNEL_CLUSTER_ROLE")
	s.String(&c.ServiceAccount, "default-kernel-service-account-name", "default", "service account of kernel pods when the request names none (KERNEL_SERVICE_ACCOUNT_NAME)", "EG_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME")
	s.Bool(&c.MirrorWorkingDirs, "mirror-working-dirs", false, "a request's KERNEL_WORKING_DIR becomes the kernel container's working directory (it is dropped otherwise)", "EG_MIRROR_WORKING_DIRS")
	s.String(&c.Image, "kernel-image", "", "kernel image when neither the request (KERNEL_IMAGE) nor the kernelspec (image_name) names one", "EG_KERNEL_IMAGE")
	s.String(&c.ExecutorImage, "kernel-executor-image", "", "Spark executor image when neither KERNEL_EXECUTOR_IMAGE nor the kernelspec's executor_image_name names one; empty = the kernel image", "EG_KERNEL_EXECUTOR_IMAGE")
	s.String(&c.PodTemplateDir, "pod-template-dir", "/tmp", "directory of the kpt_<kernel id> pod templates Spark kernelspecs' launchers write; each goes with its kernel", "EG_POD_TEMPLATE_DIR")
	s.Int(&c.QPS, "k8s-qps", 50, "requests per second the Kubernetes process proxy may send the API server, sustained", "KERNELGATE_K8S_QPS")
	s.Int(&c.Burst, "k8s-burst", 100, "requests the Kubernetes process proxy may send the API server in a burst", "KERNELGATE_K8S_BURST")
	s.Bool(&c.WaitUnschedulable, "k8s-wait-unschedulable", false, "a kernel pod the scheduler cannot place waits out the launch timeout (a cluster autoscaler may add a node) instead of failing its start at once", "KERNELGATE_K8S_WAIT_UNSCHEDULABLE")
}

// kubernetesProxy registers the Kubernetes process proxy and returns its
// metrics and what releases it. Without a cluster to reach, or with
// settings it cannot use, it fails only the launches that ask for it.
// instanceID labels what it makes; uids and gids are refused to kernels.
func kubernetesProxy(c kubernetesConfig, instanceID string, uids, gids []int, r remoteConfig, listener *remote.Listener, reg *proxy.Registry, log zerolog.Logger) ([]prometheus.Collector, func(), error) {
	log = log.With().Str("component", "kubernetes").Logger()
	unavailable := func(err error) ([]prometheus.Collector, func(), error) {
		reg.Register(proxy.Unavailable{Err: err}, kubernetes.ClassNames...)
		return nil, func() {}, nil
	}
	rest, launcherEnv, err := kubernetes.ClusterConfig(c.Kubeconfig)
	if err != nil {
		log.Debug().Err(err).Msg("the Kubernetes process proxy is unavailable")
		return unavailable(err)
	}
	// client-go logs through klog: into the gateway's log, warnings up.
	klog.SetSlogLogger(slog.New(zerolog.NewSlogHandler(log.With().Str("component", "client-go").Logger().Level(zerolog.WarnLevel))))
	p, err := kubernetes.New(kubernetes.Config{
		REST: rest, QPS: float32(c.QPS), Burst: c.Burst, LauncherEnv: launcherEnv,
		Kernel: podtemplate.Config{Namespace: c.Namespace, SharedNamespace: c.SharedNamespace,
			DefaultServiceAccount: c.ServiceAccount, Image: c.Image, ExecutorImage: c.ExecutorImage,
			ProhibitedUIDs: int64s(uids), ProhibitedGIDs: int64s(gids), MirrorWorkingDirs: c.MirrorWorkingDirs},
		ClusterRole: c.ClusterRole, PodTemplateDir: c.PodTemplateDir, InstanceID: instanceID,
		WaitUnschedulable: c.WaitUnschedulable, PortRange: r.PortRange, MinPortRangeSize: r.MinPortRangeSize,
		CommTimeout: r.SocketTimeout, Listener: listener, Logger: log,
	})
	if err != nil {
		log.Warn().Err(err).Msg("the Kubernetes process proxy is unavailable")
		return unavailable(err)
	}
	log.Info().Str("api_server", rest.Host).Str("instance_id", instanceID).Msg("Kubernetes process proxy ready")
	reg.Register(p, kubernetes.ClassNames...)
	return []prometheus.Collector{p.Collector()}, p.Close, nil
}

// parseIDs reads a prohibited uid or gid list strictly, as EG does.
func int64s(ids []int) []int64 {
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out
}
