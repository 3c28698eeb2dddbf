package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/k8stest"
	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// errorBody is the gateway's JSON error.
type errorBody struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// A pod that cannot run fails its start within seconds, far inside the
// launch timeout (EG waits it out: EG#1357), with the pod's own reason in
// the error; its pod and the namespace made for it are deleted.
func TestPodsThatCannotRunFailFast(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t))
	quotaNS := c.Namespace(t)
	_, err := c.Client.CoreV1().ResourceQuotas(quotaNS).Create(context.Background(), &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "no-pods"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}},
	}, metav1.CreateOptions{})
	testkit.NoError(t, err)
	testkit.Eventually(t, 30*time.Second, func() error { // the quota controller has counted
		q, err := c.Client.CoreV1().ResourceQuotas(quotaNS).Get(context.Background(), "no-pods", metav1.GetOptions{})
		if err == nil && len(q.Status.Hard) == 0 {
			err = fmt.Errorf("quota status not computed yet")
		}
		return err
	})
	r := newRig(t, c, rigOptions{})
	for _, tc := range []struct {
		name  string
		env   map[string]string
		want  []string
		ownNS bool
	}{
		{"image-pull", map[string]string{"KERNEL_IMAGE": k8stest.FailPullRegistry + "kernel:1"},
			[]string{"ErrImagePull", "failed to pull and unpack image"}, true},
		{"unschedulable", map[string]string{"KERNEL_CPUS": "5000"},
			[]string{"Unschedulable", "Insufficient cpu"}, true},
		{"quota", map[string]string{"KERNEL_NAMESPACE": quotaNS},
			[]string{"exceeded quota", "no-pods"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("%08x-0000-4000-8000-%012x", time.Now().UnixNano()&0xffffffff, time.Now().UnixNano()&0xffffffffffff)
			tc.env["KERNEL_ID"] = id
			started := time.Now()
			status, body := r.start(specSynth, tc.env)
			took := time.Since(started)
			testkit.Equal(t, status, http.StatusInternalServerError)
			var e errorBody
			testkit.NoError(t, json.Unmarshal(body, &e))
			for _, w := range tc.want {
				testkit.True(t, strings.Contains(e.Message, w), "the error does not say %q: %s", w, e.Message)
			}
			testkit.True(t, took < 10*time.Second, "the start failed after %v", took)
			t.Logf("failed in %v: %s", took.Round(time.Millisecond), e.Message)
			r.noPods(id)
			if tc.ownNS {
				r.namespaceGoing("tester-" + id)
			}
		})
	}
}

// A pod that runs but whose launcher never reports fails its start at the
// launch timeout, saying where it stood, and is deleted with its namespace.
func TestSilentLauncherTimesOut(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t))
	r := newRig(t, c, rigOptions{})
	id := "00000000-0000-4000-8000-00000000beef"
	started := time.Now()
	status, body := r.start(specSynth, map[string]string{"KERNEL_ID": id, "KERNEL_IMAGE": silentImage, "KERNEL_LAUNCH_TIMEOUT": "3"})
	testkit.Equal(t, status, http.StatusInternalServerError)
	var e errorBody
	testkit.NoError(t, json.Unmarshal(body, &e))
	for _, w := range []string{"launch timeout", "phase Running", "its launcher has not reported"} {
		testkit.True(t, strings.Contains(e.Message, w), "the error does not say %q: %s", w, e.Message)
	}
	testkit.True(t, time.Since(started) < 10*time.Second, "the start took %v", time.Since(started))
	r.noPods(id)
	r.namespaceGoing("tester-" + id)
}

// A prohibited or malformed uid or gid is refused before anything is
// asked of the API server, with a 403 that says which (as EG).
func TestProhibitedIDsAreRefused(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t))
	r := newRig(t, c, rigOptions{config: func(c *Config) { c.Kernel.ProhibitedGIDs = []int64{0, 666} }})
	for env, want := range map[string]string{
		`{"KERNEL_UID":"0"}`:   "KERNEL_UID 0 is prohibited",
		`{"KERNEL_GID":"666"}`: "KERNEL_GID 666 is prohibited",
		`{"KERNEL_UID":"abc"}`: `KERNEL_UID: "abc" is not an integer`,
	} {
		status, body := r.do("POST", "/api/kernels", `{"name":"`+specSynth+`","env":`+env+`}`)
		testkit.Equal(t, status, http.StatusForbidden)
		var e errorBody
		testkit.NoError(t, json.Unmarshal(body, &e))
		testkit.True(t, strings.Contains(e.Message, want), "%s: the error does not say %q: %s", env, want, e.Message)
	}
	testkit.Equal(t, r.p.APIRequests()["create"], 0)
}

// Kernels share the gateway's namespace under EG_SHARED_NAMESPACE, and a
// request's KERNEL_NAMESPACE wins; neither namespace is made or deleted.
func TestSharedAndRequestedNamespaces(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t))
	shared, requested := c.Namespace(t), c.Namespace(t)
	r := newRig(t, c, rigOptions{config: func(c *Config) {
		c.Kernel.SharedNamespace, c.Kernel.Namespace = true, shared
	}})
	a := r.started(specSynth, nil)
	b := r.started(specSynth, map[string]string{"KERNEL_NAMESPACE": requested})
	testkit.Equal(t, r.pod(a, running).Namespace, shared)
	testkit.Equal(t, r.pod(b, running).Namespace, requested)
	testkit.Equal(t, run(t, r.connect(b), "echo hi"), "ok")
	for _, id := range []string{a, b} {
		_, err := c.Client.CoreV1().Namespaces().Get(context.Background(), "tester-"+id, metav1.GetOptions{})
		testkit.True(t, apierrors.IsNotFound(err), "a namespace was made for kernel %s: %v", id, err)
		r.shutdown(id)
		r.noPods(id)
	}
	for _, ns := range []string{shared, requested} {
		n, err := c.Client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
		testkit.NoError(t, err)
		testkit.True(t, n.DeletionTimestamp == nil, "namespace %s is being deleted", ns)
	}
}
