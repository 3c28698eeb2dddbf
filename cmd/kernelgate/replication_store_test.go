package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors/proxy/kubernetes"
	"github.com/kernelgate/kernelgate/actors/store"
	"github.com/kernelgate/kernelgate/actors/store/kubestore"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/rs/zerolog"
)

func TestKernelStoreSettings(t *testing.T) {
	var c serveConfig
	testkit.NoError(t, serveSettings(&c, io.Discard).parse(nil, envFrom(nil)))
	testkit.Equal(t, c.Replication.Store, storeFile)
	testkit.Equal(t, c.Replication.Group, "kernelgate")
	testkit.Equal(t, c.Replication.StoreTimeout, 5*time.Second)
	testkit.NoError(t, serveSettings(&c, io.Discard).parse([]string{"--kernel-store", "file"},
		envFrom(map[string]string{"KERNELGATE_KERNEL_STORE": "kubernetes", "KERNELGATE_REPLICA_GROUP": "team-a", "KERNELGATE_KERNEL_STORE_TIMEOUT": "2.5"})))
	testkit.Equal(t, c.Replication.Store, storeFile) // the flag wins
	testkit.Equal(t, c.Replication.Group, "team-a")
	testkit.Equal(t, c.Replication.StoreTimeout, 2500*time.Millisecond)
}

// A kubeconfig of a cluster that is never asked anything: the store makes
// no request until it is used.
func unusedKubeconfig(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "kubeconfig")
	testkit.NoError(t, os.WriteFile(p, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600))
	return p
}

// The store --kernel-store names, and the combinations refused at start
// with a clear error.
func TestKernelStoreChoice(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	kubeconfig := unusedKubeconfig(t)
	for _, tt := range []struct {
		name string
		args []string
		want string      // in the error; empty: no error
		is   error       // the error wraps it, when set
		kind store.Group // the store's type, without an error
	}{
		{"file by default", []string{"--availability-mode", "replication"}, "", nil, store.FileStore{}},
		{"kubernetes", []string{"--availability-mode", "replication", "--kernel-store", "kubernetes", "--kubeconfig", kubeconfig}, "", nil, &kubestore.Store{}},
		{"kubernetes for one gateway's records", []string{"--kernel-session-persistence", "--kernel-store", "kubernetes", "--kubeconfig", kubeconfig}, "", nil, &kubestore.Store{}},
		{"unknown", []string{"--availability-mode", "replication", "--kernel-store", "etcd"}, `--kernel-store "etcd": want file or kubernetes`, nil, nil},
		{"kubernetes and nothing to keep", []string{"--kernel-store", "kubernetes", "--kubeconfig", kubeconfig}, "add --kernel-session-persistence or --availability-mode", nil, nil},
		{"kubernetes without a cluster", []string{"--availability-mode", "replication", "--kernel-store", "kubernetes", "--kubeconfig", filepath.Join(t.TempDir(), "none")}, "--kernel-store kubernetes", kubernetes.ErrNoCluster, nil},
		{"a group that cannot name objects", []string{"--availability-mode", "replication", "--kernel-store", "kubernetes", "--kubeconfig", kubeconfig, "--replica-group", "Team_A"}, `group "Team_A"`, nil, nil},
		{"an instance id that cannot name a Lease", []string{"--availability-mode", "replication", "--kernel-store", "kubernetes", "--kubeconfig", kubeconfig, "--instance-id", "r 1"}, `replica id "r 1"`, nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var c serveConfig
			testkit.NoError(t, serveSettings(&c, io.Discard).parse(append(tt.args, "--persistence-root", t.TempDir()), envFrom(nil)))
			_, err := c.replicated()
			testkit.NoError(t, err)
			g, err := c.kernelStore(zerolog.Nop())
			if tt.want == "" {
				testkit.NoError(t, err)
				testkit.Equal(t, fmt.Sprintf("%T", g), fmt.Sprintf("%T", tt.kind))
				return
			}
			testkit.True(t, err != nil && strings.Contains(err.Error(), tt.want), "error %v, want one saying %q", err, tt.want)
			if tt.is != nil {
				testkit.ErrorIs(t, err, tt.is)
			}
		})
	}
}

// serve refuses a nonsense store before it listens.
func TestServeRefusesAKernelStoreWithNothingToKeep(t *testing.T) {
	var c serveConfig
	testkit.NoError(t, serveSettings(&c, io.Discard).parse([]string{"--port", "0", "--runtime-dir", t.TempDir(),
		"--kernel-store", "kubernetes", "--kubeconfig", unusedKubeconfig(t)}, envFrom(nil)))
	var out strings.Builder
	err := serve(context.Background(), c, &out, io.Discard, nil)
	testkit.True(t, err != nil && strings.Contains(err.Error(), "--kernel-session-persistence"), "serve returned %v", err)
	testkit.Equal(t, out.String(), "") // it never listened
}
