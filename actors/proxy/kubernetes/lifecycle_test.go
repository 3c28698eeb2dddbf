package kubernetes

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A kernel of EG's python_kubernetes kernelspec, launched natively: its
// own namespace with a RoleBinding, EG's and kernelgate's labels, the
// request's uid and gid in the pod's securityContext; it runs code through
// the gateway's websocket, and a DELETE takes its pod and namespace.
func TestNativeKernelLifecycle(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t))
	r := newRig(t, c, rigOptions{})
	before := r.requests()
	id := r.started(specPython, map[string]string{"KERNEL_USERNAME": "alice", "KERNEL_UID": "1234", "KERNEL_GID": "5678"})
	pod := r.pod(id, running)
	ns := "alice-" + id
	testkit.Equal(t, pod.Namespace, ns)
	testkit.Equal(t, pod.Name, ns)
	for k, v := range map[string]string{LabelKernelID: id, LabelComponent: "kernel", LabelApp: "enterprise-gateway",
		LabelManagedBy: "kernelgate", LabelInstance: r.p.cfg.InstanceID} {
		testkit.Equal(t, pod.Labels[k], v)
	}
	sc := pod.Spec.SecurityContext
	testkit.True(t, sc != nil && *sc.RunAsUser == 1234 && *sc.RunAsGroup == 5678, "securityContext %+v", sc)
	env := map[string]string{}
	for _, e := range pod.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	testkit.Equal(t, env["KERNEL_ID"], id)
	testkit.Equal(t, env["KERNEL_NAMESPACE"], ns)
	testkit.True(t, env["RESPONSE_ADDRESS"] != "" && env["PUBLIC_KEY"] != "", "no launcher variables in %v", env)
	_, hasPath := env["PATH"]
	testkit.True(t, !hasPath, "the gateway's PATH went into the pod")

	nsObj, err := c.Client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	testkit.NoError(t, err)
	testkit.Equal(t, nsObj.Labels[LabelInstance], r.p.cfg.InstanceID)
	testkit.Equal(t, nsObj.Labels[LabelKernelID], id)
	rb, err := c.Client.RbacV1().RoleBindings(ns).Get(context.Background(), "edit", metav1.GetOptions{})
	testkit.NoError(t, err)
	testkit.Equal(t, rb.RoleRef.Kind, "ClusterRole")
	testkit.Equal(t, rb.RoleRef.Name, "edit")
	testkit.True(t, len(rb.Subjects) == 1 && rb.Subjects[0].Name == "default" && rb.Subjects[0].Namespace == ns, "subjects %+v", rb.Subjects)

	conn := r.connect(id)
	testkit.Equal(t, run(t, conn, "import os; assert os.environ['POD_IP'] == '"+pod.Status.PodIP+"'"), "ok")

	r.shutdown(id)
	r.noPods(id)
	r.namespaceGoing(ns)
	perKernel := r.requests() - before
	t.Logf("API requests for the kernel's whole life: %d (%v)", perKernel, r.p.APIRequests())

	status, body := r.do("GET", "/metrics", "")
	testkit.Equal(t, status, http.StatusOK)
	testkit.True(t, strings.Contains(string(body), `kernelgate_k8s_api_requests_total{verb="create"}`), "no API request counts on /metrics")
}

// The same kernelspec with "launch": "argv": its launcher (the tests'
// launch_kubernetes.py, Python's Kubernetes client) makes the pod, the
// gateway finds it by its kernel_id label and labels it as its own.
func TestArgvKernelLifecycle(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t))
	r := newRig(t, c, rigOptions{})
	id := r.started(specArgv, map[string]string{"KERNEL_USERNAME": "bob"})
	pod := r.pod(id, running)
	ns := "bob-" + id
	testkit.Equal(t, pod.Namespace, ns)
	testkit.Equal(t, pod.Labels[LabelInstance], r.p.cfg.InstanceID)
	testkit.Equal(t, pod.Labels[LabelManagedBy], "kernelgate")
	env := map[string]string{}
	for _, e := range pod.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	testkit.Equal(t, env["KERNEL_NAME"], specArgv)
	testkit.Equal(t, env["KUBECONFIG"], c.Kubeconfig) // as in EG: the launcher's environment
	testkit.Equal(t, run(t, r.connect(id), "print('hello')"), "ok")
	r.shutdown(id)
	r.noPods(id)
	r.namespaceGoing(ns)
}

// A template's ConfigMap and Service are made with the pod, owned by it
// (so they go with it), as launch_kubernetes.py makes them.
func TestTemplateObjectsBelongToThePod(t *testing.T) {
	c := kube.Cluster(t)
	t.Cleanup(leaktest.Check(t))
	r := newRig(t, c, rigOptions{})
	id := r.started(specSynth, map[string]string{"KERNEL_EXTRA_OBJECTS": "made with the pod"})
	pod := r.pod(id, running)
	cm, err := c.Client.CoreV1().ConfigMaps(pod.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{})
	testkit.NoError(t, err)
	testkit.Equal(t, cm.Data["note"], "made with the pod")
	svc, err := c.Client.CoreV1().Services(pod.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{})
	testkit.NoError(t, err)
	for _, refs := range [][]metav1.OwnerReference{cm.OwnerReferences, svc.OwnerReferences} {
		testkit.True(t, len(refs) == 1 && refs[0].Kind == "Pod" && refs[0].UID == pod.UID, "owner references %+v", refs)
	}
	r.shutdown(id)
	r.noPods(id)
	r.namespaceGoing(pod.Namespace)
}
