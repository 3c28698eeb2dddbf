//go:build tools

// Package tools pins the programs internal/k8stest runs: a Kubernetes
// control plane (kube-apiserver, kube-controller-manager, kube-scheduler),
// kine as its SQLite-backed etcd, kwok as the fake kubelet, and helm.
// build.sh builds them into tools/bin; nothing imports this package.
package tools

import (
	_ "github.com/k3s-io/kine"
	_ "helm.sh/helm/v3/cmd/helm"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
