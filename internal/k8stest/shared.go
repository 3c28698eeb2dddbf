package k8stest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Shared is one cluster for all the tests of a test binary, started by the
// first test that asks for it and stopped by Main.
type Shared struct {
	opts    Options
	once    sync.Once
	cluster *Cluster
	err     error
}

// NewShared returns a Shared cluster that will start with opts.
func NewShared(opts Options) *Shared { return &Shared{opts: opts} }

// Cluster returns the shared cluster, starting it on first use. It skips t
// when the programs are not built (fails it under KERNELGATE_REQUIRE_K8S=1)
// and fails t if the cluster could not start.
func (s *Shared) Cluster(t testing.TB) *Cluster {
	t.Helper()
	s.once.Do(func() {
		s.cluster, s.err = Start(context.Background(), s.opts)
	})
	if s.err != nil {
		skipOrFail(t, s.err)
	}
	return s.cluster
}

// Main runs the tests and stops the cluster if one started; its result is
// the exit code for os.Exit.
func (s *Shared) Main(m *testing.M) int {
	code := m.Run()
	if s.cluster != nil {
		if err := s.cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = max(code, 1)
		}
	}
	return code
}

// New starts a cluster of t's own, stopped when t ends; see Shared.Cluster
// for when it skips or fails.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c, err := Start(context.Background(), opts)
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	return c
}

func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrToolsMissing) && os.Getenv(requireEnv) != "1" {
		t.Skipf("%v (%s=1 makes this a failure)", err, requireEnv)
	}
	t.Fatal(err)
}

var notDNS = regexp.MustCompile(`[^a-z0-9]+`)

// Namespace creates a namespace for t, named after it, and returns its name
// once pods can be created in it (its default service account exists). When
// t ends its pods are deleted at once, their processes are waited for, and
// the namespace is deleted; the controller manager finishes that in the
// background.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	base := strings.Trim(notDNS.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	name := strings.TrimRight(base[:min(len(base), 50)], "-") + "-" + strings.ToLower(rand.Text()[:6])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("k8stest: create namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := c.deleteNamespace(name); err != nil {
			t.Errorf("k8stest: %v", err)
		}
	})
	if err := c.waitFor(ctx, "service account "+name+"/default", 30*time.Second, func(ctx context.Context) error {
		_, err := c.Client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		t.Fatalf("k8stest: %v", err)
	}
	return name
}

// deleteNamespace deletes the namespace's pods with grace period 0, waits
// until the runtime has reaped their processes (so no test leaves a process
// behind for the next), then deletes the namespace.
func (c *Cluster) deleteNamespace(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Client.CoreV1().Pods(name).DeleteCollection(ctx,
		metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, metav1.ListOptions{}); err != nil {
		return fmt.Errorf("delete the pods of %s: %w", name, err)
	}
	if err := c.waitFor(ctx, "the processes of "+name, 30*time.Second, func(context.Context) error {
		if n := c.runtime.live(name); n > 0 {
			return fmt.Errorf("%d pods still running", n)
		}
		return nil
	}); err != nil {
		return err
	}
	err := c.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	return nil
}
