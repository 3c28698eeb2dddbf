package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/kubernetes"
	"github.com/kernelgate/kernelgate/actors/proxy/remote"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/kernelspecs"
	"github.com/rs/zerolog"
)

func TestKubernetesSettings(t *testing.T) {
	var c serveConfig
	testkit.NoError(t, serveSettings(&c, io.Discard).parse([]string{"--k8s-qps", "7"},
		envFrom(map[string]string{"EG_SHARED_NAMESPACE": "true", "EG_PROHIBITED_UIDS": "0,1000", "KERNELGATE_K8S_QPS": "9"})))
	k := c.Kubernetes
	testkit.Equal(t, k.Namespace, "default")
	testkit.Equal(t, k.SharedNamespace, true)
	testkit.Equal(t, k.ClusterRole, "cluster-admin")
	testkit.Equal(t, k.ServiceAccount, "default")
	testkit.Equal(t, c.Security.ProhibitedUIDs, []int{0, 1000})
	testkit.Equal(t, c.Security.ProhibitedGIDs, []int{0})
	testkit.Equal(t, k.QPS, 7) // the flag wins
	testkit.Equal(t, k.Burst, 100)
	testkit.True(t, c.InstanceID != "", "no default instance id")
}

// Prohibited ids that are not numbers stop the gateway, as they stop EG.
func TestProhibitedIDsMustBeNumbers(t *testing.T) {
	var c serveConfig
	err := serveSettings(&c, io.Discard).parse(nil, envFrom(map[string]string{"EG_PROHIBITED_GIDS": "0,wheel"}))
	testkit.True(t, err != nil && strings.Contains(err.Error(), "EG_PROHIBITED_GIDS") && strings.Contains(err.Error(), "wheel"), "error %v", err)
}

// Without a cluster the Kubernetes proxy is unavailable: its kernelspecs'
// starts fail saying why, and nothing else does.
func TestKubernetesProxyWithoutACluster(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	reg := proxy.NewRegistry(proxy.Unavailable{})
	l := remote.NewListener(remote.ListenerConfig{})
	defer l.Close()
	var c kubernetesConfig
	c.Kubeconfig = filepath.Join(t.TempDir(), "none")
	collectors, closeK8s, err := kubernetesProxy(c, "test", []int{0}, []int{0}, remoteConfig{}, l, reg, zerolog.Nop())
	testkit.NoError(t, err)
	defer closeK8s()
	testkit.Equal(t, len(collectors), 0)
	p, err := reg.For(kernelspecs.Spec{ProcessProxy: kernelspecs.ProcessProxy{ClassName: kubernetes.ClassNames[1]}})
	testkit.NoError(t, err)
	_, err = p.Launch(context.Background(), proxy.LaunchRequest{})
	testkit.ErrorIs(t, err, proxy.ErrLaunch)
	testkit.ErrorIs(t, err, kubernetes.ErrNoCluster)
}
