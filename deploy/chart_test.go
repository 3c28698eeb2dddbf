package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/k8stest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	chartDir = "helm/kernelgate"
	// The images the test cluster's runtime runs: the chart's gateway image
	// as this tree's kernelgate serve, and its default kernelspec's kernel
	// image as kernelgate launch with Debian's ipykernel behind it.
	gatewayImage = "localhost/kernelgate:chart-test"
	kernelImage  = "localhost/kernelgate-kernel-py:latest"
)

var (
	images = map[string]k8stest.Image{}
	kube   = k8stest.NewShared(k8stest.Options{Images: images})
)

func TestMain(m *testing.M) {
	if bin, err := testkit.BuildKernelgate(); err == nil {
		home, _ := os.MkdirTemp("", "kernelgate-chart-home-")
		images[gatewayImage] = k8stest.Image{Entrypoint: []string{bin, "serve"}, Env: []string{"HOME=" + home, "PATH=/usr/bin:/bin"}}
		images[kernelImage] = k8stest.Image{Entrypoint: []string{bin, "launch"}, Env: []string{"HOME=" + home, "PATH=/usr/bin:/bin", "KERNEL_LANGUAGE=python"}}
		defer os.RemoveAll(home)
	}
	code := kube.Main(m)
	testkit.RemoveKernelgate()
	os.Exit(code)
}

func helmBinary(t *testing.T) string {
	t.Helper()
	bin, err := filepath.Abs("../tools/bin/helm")
	testkit.NoError(t, err)
	if _, err := os.Stat(bin); err != nil {
		skipOrFail(t, "KERNELGATE_REQUIRE_K8S", "tools/bin/helm is not built: run `make k8s-tools`")
	}
	return bin
}

// helm runs the helm binary of tools/bin with its state in a temp folder.
func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// decodeManifests splits helm's output into objects.
func decodeManifests(t *testing.T, manifest []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs
		}
		testkit.NoError(t, err)
		if len(m) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}

func find(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func as[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	v := new(T)
	testkit.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, v))
	return v
}

func envOf(d *appsv1.Deployment) map[string]corev1.EnvVar {
	env := map[string]corev1.EnvVar{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e
	}
	return env
}

// serviceMonitorCRD is a stand-in for the Prometheus operator's CRD: enough
// for the API server to accept and validate the chart's ServiceMonitor.
func serviceMonitorCRD() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "servicemonitors.monitoring.coreos.com"},
		"spec": map[string]any{
			"group": "monitoring.coreos.com",
			"names": map[string]any{"kind": "ServiceMonitor", "listKind": "ServiceMonitorList", "plural": "servicemonitors", "singular": "servicemonitor"},
			"scope": "Namespaced",
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object", "x-kubernetes-preserve-unknown-fields": true,
				}},
			}},
		},
	}}
}

// applier applies objects server-side.
type applier struct {
	dyn    dynamic.Interface
	mapper meta.ResettableRESTMapper
}

func newApplier(t *testing.T, c *k8stest.Cluster) *applier {
	cfg := c.RESTConfig()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	testkit.NoError(t, err)
	dyn, err := dynamic.NewForConfig(cfg)
	testkit.NoError(t, err)
	return &applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}
}

func (a *applier) apply(ctx context.Context, o *unstructured.Unstructured, namespace string, dryRun bool) error {
	gvk := o.GroupVersionKind()
	mapping, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("%s %s: %w", gvk.Kind, o.GetName(), err)
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := o.GetNamespace()
		if ns == "" {
			ns = namespace
		}
		ri = a.dyn.Resource(mapping.Resource).Namespace(ns)
	}
	opts := metav1.ApplyOptions{FieldManager: "kernelgate-chart-test", Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if _, err := ri.Apply(ctx, o.GetName(), o, opts); err != nil {
		return fmt.Errorf("%s %s: %w", gvk.Kind, o.GetName(), err)
	}
	return nil
}

// TestChartRendersAndApplies renders the chart with each values file of
// deploy/helm/kernelgate/ci and applies every object it renders to a real
// API server as a server-side dry run: schemas, defaults, admission and
// RBAC's escalation check (a ClusterRole granted by the chart must be
// grantable) all run. The ServiceMonitor CRD is installed (a stand-in) so
// that the values that ask for one are checked too.
func TestChartRendersAndApplies(t *testing.T) {
	c := kube.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a := newApplier(t, c)
	crd := serviceMonitorCRD()
	testkit.NoError(t, a.apply(ctx, crd, "", false))
	t.Cleanup(func() {
		dyn := a.dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
		dyn.Delete(context.Background(), crd.GetName(), metav1.DeleteOptions{})
	})
	testkit.Eventually(t, 30*time.Second, func() error {
		a.mapper.Reset()
		_, err := a.mapper.RESTMapping(schema.GroupKind{Group: "monitoring.coreos.com", Kind: "ServiceMonitor"}, "v1")
		return err
	})

	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	testkit.NoError(t, err)
	testkit.True(t, len(files) >= 5, "only %d values files in ci/", len(files))
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			ns := c.Namespace(t)
			out := helm(t, "template", "kg", chartDir, "--namespace", ns, "-f", file,
				"--api-versions", "monitoring.coreos.com/v1/ServiceMonitor", "--kubeconfig", c.Kubeconfig)
			objs := decodeManifests(t, out)
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.GetKind()]++
				testkit.NoError(t, a.apply(ctx, o, ns, true))
			}
			t.Logf("%d objects applied (dry run): %v", len(objs), kinds)
			for _, kind := range []string{"Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "PodDisruptionBudget"} {
				testkit.True(t, kinds[kind] >= 1, "no %s rendered", kind)
			}
			d := as[appsv1.Deployment](t, find(objs, "Deployment")[0])
			checkDeployment(t, filepath.Base(file), d, objs)
		})
	}
}

// checkDeployment checks what each values file is for.
func checkDeployment(t *testing.T, file string, d *appsv1.Deployment, objs []*unstructured.Unstructured) {
	env := envOf(d)
	ctr := d.Spec.Template.Spec.Containers[0]
	testkit.Equal(t, ctr.LivenessProbe.HTTPGet.Path, "/healthz")
	testkit.Equal(t, ctr.ReadinessProbe.HTTPGet.Path, "/readyz")
	testkit.True(t, *ctr.SecurityContext.ReadOnlyRootFilesystem && !*ctr.SecurityContext.AllowPrivilegeEscalation, "container security context: %+v", ctr.SecurityContext)
	testkit.True(t, *d.Spec.Template.Spec.SecurityContext.RunAsNonRoot, "pod does not run as non-root")
	testkit.Equal(t, env["EG_RESPONSE_IP"].Value, "$(KERNELGATE_POD_IP)")
	switch file {
	case "default-values.yaml":
		testkit.Equal(t, *d.Spec.Replicas, int32(1))
		testkit.Equal(t, d.Spec.Strategy.Type, appsv1.RecreateDeploymentStrategyType)
		_, replicated := env["EG_AVAILABILITY_MODE"]
		testkit.True(t, !replicated, "default values turn replication on")
		testkit.Equal(t, env["EG_KERNEL_CLUSTER_ROLE"].Value, "kernel-controller")
		testkit.Equal(t, len(find(objs, "ConfigMap")), 1)
		testkit.Equal(t, len(find(objs, "ServiceMonitor")), 0)
		checkRBACMatchesDocs(t, objs)
	case "replication-values.yaml":
		testkit.Equal(t, *d.Spec.Replicas, int32(3))
		testkit.Equal(t, env["EG_AVAILABILITY_MODE"].Value, "replication")
		testkit.Equal(t, env["EG_KERNEL_SESSION_PERSISTENCE"].Value, "true")
		testkit.Equal(t, env["EG_PERSISTENCE_ROOT"].Value, "/var/lib/kernelgate")
		testkit.Equal(t, env["KERNELGATE_LEASE_DURATION"].Value, "10")
		testkit.Equal(t, env["KERNELGATE_KERNEL_STORE"].Value, "file")
		testkit.Equal(t, env["KERNELGATE_INSTANCE_ID"].Value, "$(KERNELGATE_POD_NAME)")
		testkit.True(t, env["KERNELGATE_REPLICA_TOKEN"].ValueFrom.SecretKeyRef != nil, "the replica token is not from a Secret")
		pvc := as[corev1.PersistentVolumeClaim](t, find(objs, "PersistentVolumeClaim")[0])
		testkit.Equal(t, pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany})
		testkit.Equal(t, len(find(objs, "Secret")), 1)
	case "kube-store-values.yaml":
		testkit.Equal(t, env["KERNELGATE_KERNEL_STORE"].Value, "kubernetes")
		_, onVolume := env["EG_PERSISTENCE_ROOT"]
		testkit.True(t, !onVolume && len(find(objs, "PersistentVolumeClaim")) == 0, "the kube store has a volume")
		testkit.Equal(t, env["KERNELGATE_REPLICA_TOKEN"].ValueFrom.SecretKeyRef.Name, "my-replica-token")
		role := as[rbacv1.Role](t, find(objs, "Role")[0])
		var resources []string
		for _, r := range role.Rules {
			resources = append(resources, r.Resources...)
		}
		slices.Sort(resources)
		testkit.Equal(t, resources, []string{"leases", "secrets"})
	case "tls-oidc-values.yaml":
		testkit.Equal(t, env["EG_CERTFILE"].Value, "/etc/kernelgate/tls/tls.crt")
		testkit.Equal(t, env["EG_CLIENT_CA"].Value, "/etc/kernelgate/client-ca/ca.crt")
		testkit.Equal(t, env["KERNELGATE_OIDC_ISSUER"].Value, "https://login.example.com/realms/jupyter")
		testkit.Equal(t, env["KERNELGATE_LOG_LEVEL"].Value, "warn")
		testkit.Equal(t, env["EG_SHARED_NAMESPACE"].Value, "true")
		testkit.Equal(t, len(find(objs, "ServiceMonitor")), 1)
		testkit.Equal(t, len(find(objs, "Ingress")), 1)
	case "jupyterhub-values.yaml":
		testkit.Equal(t, env["KERNELGATE_JUPYTERHUB_API_URL"].Value, "http://hub.jupyterhub.svc:8081/hub/api")
		testkit.Equal(t, env["EG_AUTH_TOKEN"].ValueFrom.SecretKeyRef.Name, "kg-kernelgate-token")
		testkit.Equal(t, env["KERNELGATE_KEEP_KERNELS_ON_STOP"].Value, "true")
		testkit.Equal(t, len(d.Spec.Template.Spec.InitContainers), 1)
		testkit.Equal(t, len(find(objs, "ConfigMap")), 0)
		for _, o := range find(objs, "ClusterRole") {
			testkit.True(t, o.GetName() != "my-kernel-role", "the chart made the kernel role it was told not to")
		}
	}
}

// TestChartInstall installs the chart for real on the test cluster and uses
// it: the gateway's pod runs (this tree's kernelgate serve, run by the
// cluster's runtime with the pod's environment), answers its probes, and
// starts a kernel in a pod of its own — a namespace, a RoleBinding and a pod
// made by the Kubernetes process proxy with the chart's service account's
// permissions and no others (the gateway's kubeconfig impersonates it). The
// chart's kernelspec and pod template come from its ConfigMap. Then the
// kernel is deleted, its namespace goes, and the account is refused what
// the chart does not grant.
func TestChartInstall(t *testing.T) {
	c := kube.Cluster(t)
	ns := c.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const release = "kg"
	sa := "system:serviceaccount:" + ns + ":kernelgate"

	// The runtime mounts no volumes: what the chart mounts is put where the
	// process finds it (kernelspecs from the rendered ConfigMap, below).
	dir := t.TempDir()
	kubeconfig := impersonatingKubeconfig(t, c, dir, sa, ns)
	specs := filepath.Join(dir, "jupyter")
	values := fmt.Sprintf(`
image: %s
ip: "$(KERNELGATE_POD_IP)"
authToken: chart-test-token
kernel:
  clusterRole: kernel-controller-%s
  launchTimeout: 60
metrics:
  serviceMonitor:
    enabled: true
extraEnv:
  - {name: KUBECONFIG, value: %q}
  - {name: KERNELGATE_RUNTIME_DIR, value: %q}
  - {name: JUPYTER_PATH, value: %q}
`, gatewayImage, ns, kubeconfig, filepath.Join(dir, "run"), specs)
	valuesFile := filepath.Join(dir, "values.yaml")
	testkit.NoError(t, os.WriteFile(valuesFile, []byte(values), 0o644))
	// The kernelspecs first: the ConfigMap's items, as the volume lays them out.
	rendered := decodeManifests(t, helm(t, "template", release, chartDir, "--namespace", ns, "-f", valuesFile))
	writeConfigMapVolume(t, rendered, filepath.Join(specs, "kernels"))

	helm(t, "install", release, chartDir, "--namespace", ns, "-f", valuesFile, "--kubeconfig", c.Kubeconfig)
	t.Cleanup(func() { helm(t, "uninstall", release, "--namespace", ns, "--kubeconfig", c.Kubeconfig, "--wait") })

	// The ServiceMonitor exists exactly when its CRD does.
	_, crdErr := c.Client.Discovery().ServerResourcesForGroupVersion("monitoring.coreos.com/v1")
	manifest := string(helm(t, "get", "manifest", release, "--namespace", ns, "--kubeconfig", c.Kubeconfig))
	testkit.Equal(t, strings.Contains(manifest, "kind: ServiceMonitor"), crdErr == nil)

	var pod corev1.Pod
	testkit.Eventually(t, 90*time.Second, func() error {
		pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
				pod = p
				return nil
			}
		}
		return fmt.Errorf("no running gateway pod yet (%d pods)", len(pods.Items))
	})
	base := "http://" + pod.Status.PodIP + ":8888"
	metrics := "http://" + pod.Status.PodIP + ":9090"
	logs := func() string { l, _ := c.Logs(ns, pod.Name, "kernelgate"); return l }
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway pod %s log:\n%s", pod.Name, logs())
		}
	})
	testkit.Eventually(t, 30*time.Second, func() error { return expectStatus(ctx, "GET", metrics+"/readyz", "", 200) })
	testkit.NoError(t, expectStatus(ctx, "GET", metrics+"/healthz", "", 200))
	// The token comes from the chart's Secret.
	testkit.NoError(t, expectStatus(ctx, "GET", base+"/api/kernelspecs", "", 401))
	var specsReply struct {
		Default     string
		Kernelspecs map[string]any
	}
	testkit.NoError(t, getJSON(ctx, base+"/api/kernelspecs", "chart-test-token", &specsReply))
	testkit.Equal(t, specsReply.Default, "python_kubernetes")
	_, ok := specsReply.Kernelspecs["python_kubernetes"]
	testkit.True(t, ok, "the chart's kernelspec is not served: %v\n%s", specsReply.Kernelspecs, logs())

	// A kernel in a pod, made with the chart's RBAC.
	var kernel struct{ ID, Name string }
	body := `{"name": "python_kubernetes", "env": {"KERNEL_USERNAME": "alice"}}`
	status, err := request(ctx, "POST", base+"/api/kernels", "chart-test-token", body, &kernel)
	testkit.NoError(t, err)
	if status != 201 {
		t.Fatalf("POST /api/kernels: %d\ngateway log:\n%s", status, logs())
	}
	kernelNS := "alice-" + kernel.ID
	_, err = c.Client.RbacV1().RoleBindings(kernelNS).Get(ctx, "kernel-controller-"+ns, metav1.GetOptions{})
	testkit.NoError(t, err)
	pods, err := c.Client.CoreV1().Pods(kernelNS).List(ctx, metav1.ListOptions{LabelSelector: "kernel_id=" + kernel.ID})
	testkit.NoError(t, err)
	testkit.True(t, len(pods.Items) == 1 && pods.Items[0].Spec.Containers[0].Image == kernelImage, "kernel pods: %+v", pods.Items)
	testkit.NoError(t, expectStatus(ctx, "GET", base+"/api/kernels/"+kernel.ID, "chart-test-token", 200))
	testkit.NoError(t, expectStatus(ctx, "DELETE", base+"/api/kernels/"+kernel.ID, "chart-test-token", 204))
	testkit.Eventually(t, 60*time.Second, func() error {
		n, err := c.Client.CoreV1().Namespaces().Get(ctx, kernelNS, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && n.DeletionTimestamp != nil) {
			return nil
		}
		return fmt.Errorf("kernel namespace %s still there (%v)", kernelNS, err)
	})

	// And nothing more than the proxy needs.
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	testkit.NoError(t, err)
	asSA, err := kubernetes.NewForConfig(cfg)
	testkit.NoError(t, err)
	for _, ra := range []authorizationv1.ResourceAttributes{
		{Verb: "get", Resource: "secrets", Namespace: "kube-system"},
		{Verb: "list", Resource: "secrets"},
		{Verb: "create", Resource: "clusterrolebindings", Group: "rbac.authorization.k8s.io"},
		{Verb: "bind", Resource: "clusterroles", Group: "rbac.authorization.k8s.io", Name: "cluster-admin"},
		{Verb: "create", Resource: "pods/exec", Namespace: ns},
		{Verb: "update", Resource: "deployments", Group: "apps", Namespace: ns},
		{Verb: "create", Resource: "services", Namespace: ns},
	} {
		review, err := asSA.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
			&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &ra}}, metav1.CreateOptions{})
		testkit.NoError(t, err)
		testkit.True(t, !review.Status.Allowed, "the chart's service account may %s %s %s", ra.Verb, ra.Resource, ra.Name)
	}
}

// impersonatingKubeconfig writes a kubeconfig of the cluster's
// administrator that acts as the service account: what the gateway would
// have in its pod (the runtime mounts no token).
func impersonatingKubeconfig(t *testing.T, c *k8stest.Cluster, dir, user, ns string) string {
	cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
	testkit.NoError(t, err)
	for _, ai := range cfg.AuthInfos {
		ai.Impersonate = user
		ai.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	}
	path := filepath.Join(dir, "kubeconfig")
	testkit.NoError(t, clientcmd.WriteToFile(*cfg, path))
	return path
}

// writeConfigMapVolume lays out the kernelspecs ConfigMap as the
// Deployment's volume does.
func writeConfigMapVolume(t *testing.T, objs []*unstructured.Unstructured, dir string) {
	cm := as[corev1.ConfigMap](t, find(objs, "ConfigMap")[0])
	d := as[appsv1.Deployment](t, find(objs, "Deployment")[0])
	var items []corev1.KeyToPath
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == cm.Name {
			items = v.ConfigMap.Items
		}
	}
	testkit.True(t, len(items) >= 2, "the kernelspecs volume has %d items", len(items))
	for _, it := range items {
		content, ok := cm.Data[it.Key]
		testkit.True(t, ok, "volume item %s is not in the ConfigMap", it.Key)
		p := filepath.Join(dir, it.Path)
		testkit.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		testkit.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
}

func request(ctx context.Context, method, url, token, body string, into any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "token "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if into != nil && resp.StatusCode < 300 {
		return resp.StatusCode, json.Unmarshal(b, into)
	}
	return resp.StatusCode, nil
}

func expectStatus(ctx context.Context, method, url, token string, want int) error {
	status, err := request(ctx, method, url, token, "", nil)
	if err != nil {
		return err
	}
	if status != want {
		return fmt.Errorf("%s %s: %d, want %d", method, url, status, want)
	}
	return nil
}

func getJSON(ctx context.Context, url, token string, into any) error {
	status, err := request(ctx, "GET", url, token, "", into)
	if err == nil && status != 200 {
		err = fmt.Errorf("GET %s: %d", url, status)
	}
	return err
}

// checkRBACMatchesDocs compares the gateway's ClusterRole with the RBAC
// table of docs/kubernetes.md, row by row: the chart grants what the docs
// say the Kubernetes proxy uses, no verb more or less.
func checkRBACMatchesDocs(t *testing.T, objs []*unstructured.Unstructured) {
	granted := map[string][]string{}
	for _, o := range find(objs, "ClusterRole") {
		if o.GetLabels()["app.kubernetes.io/component"] != "gateway" {
			continue
		}
		for _, r := range as[rbacv1.ClusterRole](t, o).Rules {
			for _, res := range r.Resources {
				granted[res] = append(granted[res], r.Verbs...)
			}
		}
	}
	doc, err := os.ReadFile("../docs/kubernetes.md")
	testkit.NoError(t, err)
	section := string(doc)[strings.Index(string(doc), "### RBAC"):]
	documented := map[string][]string{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		resources := backticked(cells[1])
		if len(resources) != 1 { // the optional row of objects templates make
			continue
		}
		verbs := backticked(cells[2])
		if strings.Contains(cells[2], "only") { // "`bind`, on `EG_KERNEL_CLUSTER_ROLE` only"
			verbs = verbs[:1]
		}
		documented[resources[0]] = verbs
	}
	testkit.True(t, len(documented) >= 5, "RBAC rows read from docs/kubernetes.md: %v", documented)
	for res := range granted {
		slices.Sort(granted[res])
	}
	for res := range documented {
		slices.Sort(documented[res])
	}
	testkit.Equal(t, granted, documented)
}

func backticked(s string) []string {
	var out []string
	for i, part := range strings.Split(s, "`") {
		if i%2 == 1 {
			out = append(out, part)
		}
	}
	return out
}
