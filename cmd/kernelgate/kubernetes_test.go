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
	testkit.Equal(t, k.ProhibitedUIDs, []string{"0", "1000"})
	testkit.Equal(t, k.ProhibitedGIDs, []string{"0"})
	testkit.Equal(t, k.QPS, 7) // the flag wins
	testkit.Equal(t, k.Burst, 100)
	testkit.True(t, k.InstanceID != "", "no default instance id")
}

// Prohibited ids that are not numbers stop the gateway, as they stop EG.
func TestProhibitedIDsMustBeNumbers(t *testing.T) {
	ids, err := parseIDs("EG_PROHIBITED_UIDS", []string{"0", " 1000"})
	testkit.NoError(t, err)
	testkit.Equal(t, ids, []int64{0, 1000})
	_, err = parseIDs("EG_PROHIBITED_GIDS", []string{"0", "wheel"})
	testkit.True(t, err != nil && strings.Contains(err.Error(), `EG_PROHIBITED_GIDS: "wheel"`), "error %v", err)
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
	c.ProhibitedUIDs, c.ProhibitedGIDs = []string{"0"}, []string{"0"}
	collectors, closeK8s, err := kubernetesProxy(c, remoteConfig{}, l, reg, zerolog.Nop())
	testkit.NoError(t, err)
	defer closeK8s()
	testkit.Equal(t, len(collectors), 0)
	p, err := reg.For(kernelspecs.Spec{ProcessProxy: kernelspecs.ProcessProxy{ClassName: kubernetes.ClassNames[1]}})
	testkit.NoError(t, err)
	_, err = p.Launch(context.Background(), proxy.LaunchRequest{})
	testkit.ErrorIs(t, err, proxy.ErrLaunch)
	testkit.ErrorIs(t, err, kubernetes.ErrNoCluster)
}
