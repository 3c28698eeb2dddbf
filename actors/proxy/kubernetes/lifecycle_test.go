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
