package kubernetes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ErrNoCluster reports that no API server configuration was found: not in
// a cluster, and no kubeconfig.
var ErrNoCluster = errors.New("no Kubernetes configuration (not in a cluster, and no kubeconfig)")

// ClusterConfig finds the API server as kubectl and EG's launcher do:
// kubeconfig when given (a path, or a list as KUBECONFIG holds), else the
// pod's service account when running in a cluster, else the default
// kubeconfig (~/.kube/config). It also returns what an argv launcher's
// environment needs to find the same server: the kubeconfig's paths as
// KUBECONFIG, or the in-cluster KUBERNETES_SERVICE_* variables.
func ClusterConfig(kubeconfig string) (*rest.Config, map[string]string, error) {
	if kubeconfig == "" {
		if cfg, err := rest.InClusterConfig(); err == nil {
			env := map[string]string{}
			for _, kv := range os.Environ() {
				if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "KUBERNETES_SERVICE") {
					env[k] = v
				}
			}
			return cfg, env, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.Precedence = filepath.SplitList(kubeconfig)
	}
	var paths []string
	found := false
	for _, p := range rules.GetLoadingPrecedence() {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs // the launcher's working directory is not ours
		}
		paths = append(paths, p)
		if _, err := os.Stat(p); err == nil {
			found = true
		}
	}
	rules.Precedence = paths
	if !found {
		return nil, nil, fmt.Errorf("%w: %s", ErrNoCluster, strings.Join(paths, ", "))
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig %s: %w", strings.Join(paths, string(filepath.ListSeparator)), err)
	}
	return cfg, map[string]string{"KUBECONFIG": strings.Join(paths, string(filepath.ListSeparator))}, nil
}
