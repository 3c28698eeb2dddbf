package kubernetes

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kernelgate/kernelgate/actors/admission"
	"github.com/kernelgate/kernelgate/actors/proxy/kubernetes/podtemplate"
	"github.com/kernelgate/kernelgate/actors/proxy/remote"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestVerbOf(t *testing.T) {
	for _, tc := range []struct{ method, url, want string }{
		{"GET", "/api/v1/namespaces/ns/pods/p", "get"},
		{"GET", "/api/v1/namespaces/ns/pods", "list"},
		{"GET", "/api/v1/pods?labelSelector=a%3Db", "list"},
		{"GET", "/api/v1/pods?watch=true&labelSelector=a", "watch"},
		{"GET", "/api/v1/namespaces/ns", "get"},
		{"GET", "/api/v1/namespaces", "list"},
		{"GET", "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/rolebindings", "list"},
		{"GET", "/apis/rbac.authorization.k8s.io/v1", "get"},
		{"GET", "/version", "get"},
		{"POST", "/api/v1/namespaces/ns/pods", "create"},
		{"PUT", "/api/v1/namespaces/ns/pods/p/status", "update"},
		{"PATCH", "/api/v1/namespaces/ns/pods/p", "patch"},
		{"DELETE", "/api/v1/namespaces/ns/pods/p", "delete"},
		{"DELETE", "/api/v1/namespaces/ns/pods?labelSelector=x", "deletecollection"},
		{"DELETE", "/api/v1/namespaces/ns", "delete"},
		{"OPTIONS", "/api/v1/pods", "other"},
	} {
		r, err := http.NewRequest(tc.method, "https://127.0.0.1"+tc.url, nil)
		testkit.NoError(t, err)
		testkit.Equal(t, verbs[verbOf(r)], tc.want)
	}
}

func TestLauncherFlags(t *testing.T) {
	for _, tc := range []struct {
		argv            []string
		mode, className string
	}{
		{[]string{"python", "launch.py", "--RemoteProcessProxy.kernel-id", "{kernel_id}"}, "", ""},
		{[]string{"python", "launch.py", "--RemoteProcessProxy.spark-context-initialization-mode", "lazy"}, "lazy", ""},
		{[]string{"python", "launch.py", "--spark-context-initialization-mode=eager", "--kernel-class-name", "my.Kernel"}, "eager", "my.Kernel"},
	} {
		mode, className := launcherFlags(tc.argv)
		testkit.Equal(t, mode, tc.mode)
		testkit.Equal(t, className, tc.className)
	}
}

func waitingPod(reason, message string) *corev1.Pod {
	return &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{
		{Name: "kernel", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}}}}}
}

func TestCannotRun(t *testing.T) {
	unschedulable := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/3 nodes are available"}}}}
	failed := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{
		{Name: "kernel", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}}}}
	now := metav1.Now()
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		wait bool
		want string
	}{
		{"pending", waitingPod("ContainerCreating", ""), false, ""},
		{"pulling failed", waitingPod("ErrImagePull", "no such host"), false, "ErrImagePull: no such host"},
		{"back-off", waitingPod("ImagePullBackOff", "Back-off pulling image"), false, "ImagePullBackOff: Back-off pulling image"},
		{"crash loop", waitingPod("CrashLoopBackOff", "back-off 10s"), false, "CrashLoopBackOff: back-off 10s"},
		{"config error waits", waitingPod("CreateContainerConfigError", "configmap not found"), false, ""},
		{"unschedulable", unschedulable, false, "Unschedulable: 0/3 nodes are available"},
		{"unschedulable, autoscaled", unschedulable, true, ""},
		{"failed", failed, false, "Failed: container kernel: Error (exit code 1)"},
		{"succeeded", &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}, false, "its containers exited before the kernel reported"},
		{"deleting", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now}}, false, "the pod is being deleted"},
	} {
		testkit.Equal(t, cannotRun(tc.pod, tc.wait), tc.want)
	}
}

func TestRefusedRequestsAreTheClients(t *testing.T) {
	testkit.ErrorIs(t, refused(podtemplate.ErrInvalidID), admission.ErrForbidden)
	testkit.ErrorIs(t, refused(podtemplate.ErrForbidden), admission.ErrForbidden)
	testkit.ErrorIs(t, refused(podtemplate.ErrStructuredVar), admission.ErrBadRequest)
	testkit.True(t, refused(podtemplate.ErrTemplate) == nil, "a template error is the gateway's")
	testkit.True(t, refused(errors.New("other")) == nil, "any other error is the gateway's")
}

func TestClusterConfig(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // not in a cluster
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	_, _, err := ClusterConfig(missing)
	testkit.ErrorIs(t, err, ErrNoCluster)

	path := filepath.Join(dir, "config")
	testkit.NoError(t, os.WriteFile(path, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: secret}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600))
	cfg, env, err := ClusterConfig(missing + string(filepath.ListSeparator) + path)
	testkit.NoError(t, err)
	testkit.Equal(t, cfg.Host, "https://127.0.0.1:6443")
	testkit.Equal(t, cfg.BearerToken, "secret")
	testkit.True(t, strings.HasSuffix(env["KUBECONFIG"], string(filepath.ListSeparator)+path), "KUBECONFIG %q", env["KUBECONFIG"])
}

func TestConfigIsChecked(t *testing.T) {
	_, err := New(Config{InstanceID: "not a label value!", QPS: 1, Burst: 1, PortRange: "0..0", ClusterRole: "edit"})
	testkit.True(t, err != nil && strings.Contains(err.Error(), "instance id") && strings.Contains(err.Error(), "no response listener"),
		"error %v", err)
}

// A launch's watch keeps its pod's latest state and Warning event, and
// ends when its pod (and no other) ends.
func TestPodWatch(t *testing.T) {
	w := newPodWatch("k")
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "n", UID: "old"}}
	w.observe(other, false)
	pod, _, _ := w.state()
	testkit.Equal(t, pod, other) // before the launch knows its pod, any pod of the kernel counts

	mine := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "n", UID: "new"}}
	w.adopt(mine)
	w.observe(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "n", UID: "old"}}, true)
	pod, _, gone := w.state()
	testkit.True(t, pod == mine && !gone, "another pod's deletion counted: %v %v", pod, gone)
	w.event(&corev1.Event{InvolvedObject: corev1.ObjectReference{UID: "old"}, Reason: "Failed", Message: "not mine"})
	w.event(&corev1.Event{InvolvedObject: corev1.ObjectReference{UID: "new"}, Reason: "FailedMount", Message: "no volume"})
	_, warning, _ := w.state()
	testkit.Equal(t, warning, "FailedMount: no volume")
	testkit.Equal(t, lastWarning(warning, "Unschedulable: no node"), "; last warning event: FailedMount: no volume")
	testkit.Equal(t, lastWarning(warning, "ErrImagePull: FailedMount: no volume"), "")

	var ended error
	w.endWith(func(err error) { ended = err })
	done := mine.DeepCopy()
	done.Status.Phase = corev1.PodSucceeded
	w.observe(done, false)
	<-w.ended
	testkit.True(t, ended != nil && strings.Contains(ended.Error(), "pod n/p completed"), "ended with %v", ended)
}

// PodOf reads the pod back from the process info a kernel records, and
// nothing from another provisioner's.
func TestPodOf(t *testing.T) {
	k := (&Provisioner{}).kernel(remote.Payload{}, processInfo{Namespace: "ns", Pod: "alice-k1", UID: "u1", IP: "127.0.10.2", CommPort: 9}, newPodWatch("k1"), nil, zerolog.Nop())
	ns, pod, uid, ok := PodOf(k.ProcessInfo())
	testkit.True(t, ok, "no pod in %s", k.ProcessInfo())
	testkit.Equal(t, []string{ns, pod, string(uid)}, []string{"ns", "alice-k1", "u1"})
	for _, other := range []string{`{"pid":42,"pgid":42}`, `{"assigned_host":"host1","pid":7}`, `not json`} {
		_, _, _, ok := PodOf([]byte(other))
		testkit.True(t, !ok, "a pod found in %s", other)
	}
}
