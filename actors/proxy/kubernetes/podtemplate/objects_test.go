package podtemplate

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// kernelPod is our own kernel-pod template, in the shape of EG's
// kernel-pod.yaml.j2: every client value goes through yaml_safe.
const kernelPod = `# kernel pod for the tests
apiVersion: v1
kind: Pod
metadata:
  name: {{ kernel_pod_name | yaml_safe }}
  namespace: {{ kernel_namespace | yaml_safe }}
  labels:
    app: enterprise-gateway
    component: kernel
    kernel_id: {{ kernel_id | yaml_safe }}
spec:
  restartPolicy: Never
  serviceAccountName: {{ kernel_service_account_name | yaml_safe }}
  {% if kernel_uid is defined or kernel_gid is defined %}
  securityContext:
    {% if kernel_uid is defined %}
    runAsUser: {{ kernel_uid | int }}
    {% endif %}
    {% if kernel_gid is defined %}
    runAsGroup: {{ kernel_gid | int }}
    {% endif %}
    fsGroup: 100
  {% endif %}
  containers:
  - name: kernel
    image: {{ kernel_image | yaml_safe }}
    env:
    - name: KERNEL_LANGUAGE
      value: {{ kernel_language | default('python') | yaml_safe }}
    {% if kernel_cpus is defined or kernel_memory is defined or kernel_cpus_limit is defined or kernel_memory_limit is defined %}
    resources:
      {% if kernel_cpus is defined or kernel_memory is defined %}
      requests:
        {% if kernel_cpus is defined %}
        cpu: {{ kernel_cpus | yaml_safe }}
        {% endif %}
        {% if kernel_memory is defined %}
        memory: {{ kernel_memory | yaml_safe }}
        {% endif %}
      {% endif %}
      {% if kernel_cpus_limit is defined or kernel_memory_limit is defined %}
      limits:
        {% if kernel_cpus_limit is defined %}
        cpu: {{ kernel_cpus_limit | yaml_safe }}
        {% endif %}
        {% if kernel_memory_limit is defined %}
        memory: {{ kernel_memory_limit | yaml_safe }}
        {% endif %}
      {% endif %}
    {% endif %}
    {% if kernel_working_dir %}
    workingDir: {{ kernel_working_dir | yaml_safe }}
    {% endif %}
    volumeMounts:
    {% for m in kernel_volume_mounts | default([]) %}
    - {{ m | yaml_safe }}
    {% endfor %}
  volumes:
  {% for v in kernel_volumes | default([]) %}
  - {{ v | yaml_safe }}
  {% endfor %}
`

// kernelEnv is a kernel's environment as the process proxy hands it to the
// launcher, with overrides (an empty override removes the variable).
func kernelEnv(overrides map[string]string) map[string]string {
	env := map[string]string{
		"KERNEL_ID":                   "3f5a2b1c-0d9e-4c7b-8a6f-1e2d3c4b5a69",
		"KERNEL_USERNAME":             "alice",
		"KERNEL_POD_NAME":             "alice-3f5a2b1c-0d9e-4c7b-8a6f-1e2d3c4b5a69",
		"KERNEL_NAMESPACE":            "alice-3f5a2b1c-0d9e-4c7b-8a6f-1e2d3c4b5a69",
		"KERNEL_SERVICE_ACCOUNT_NAME": "default",
		"KERNEL_IMAGE":                "elyra/kernel-py:3.2.3",
	}
	for k, v := range overrides {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	return env
}

var testLaunch = Launch{
	KernelID:        "3f5a2b1c-0d9e-4c7b-8a6f-1e2d3c4b5a69",
	PortRange:       "0..0",
	ResponseAddress: "10.244.0.7:8877",
	PublicKey:       "MIIBIjANBg==",
	KernelName:      "python_kubernetes",
}

func renderPod(t *testing.T, source string, env map[string]string) (*PodObjects, error) {
	t.Helper()
	tpl, err := Parse(source)
	if err != nil {
		t.Fatal(err)
	}
	vars, err := PodVars(env, testLaunch)
	if err != nil {
		return nil, err
	}
	return tpl.Pod(vars)
}

func TestPodObjects(t *testing.T) {
	int64p := func(v int64) *int64 { return &v }
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, pod *corev1.Pod)
	}{
		{"without optional variables", kernelEnv(nil), func(t *testing.T, pod *corev1.Pod) {
			if pod.Spec.SecurityContext != nil {
				t.Errorf("securityContext = %+v, want none", pod.Spec.SecurityContext)
			}
			c := pod.Spec.Containers[0]
			if len(c.Resources.Requests) > 0 || len(c.Resources.Limits) > 0 || c.WorkingDir != "" || len(c.VolumeMounts) > 0 || len(pod.Spec.Volumes) > 0 {
				t.Errorf("container = %+v, want no resources, working dir or volumes", c)
			}
		}},
		{"uid and gid", kernelEnv(map[string]string{"KERNEL_UID": "1000", "KERNEL_GID": "100"}), func(t *testing.T, pod *corev1.Pod) {
			want := &corev1.PodSecurityContext{RunAsUser: int64p(1000), RunAsGroup: int64p(100), FSGroup: int64p(100)}
			if !reflect.DeepEqual(pod.Spec.SecurityContext, want) {
				t.Errorf("securityContext = %+v, want %+v", pod.Spec.SecurityContext, want)
			}
		}},
		{"uid only", kernelEnv(map[string]string{"KERNEL_UID": "1001"}), func(t *testing.T, pod *corev1.Pod) {
			want := &corev1.PodSecurityContext{RunAsUser: int64p(1001), FSGroup: int64p(100)}
			if !reflect.DeepEqual(pod.Spec.SecurityContext, want) {
				t.Errorf("securityContext = %+v, want %+v", pod.Spec.SecurityContext, want)
			}
		}},
		{"resources", kernelEnv(map[string]string{"KERNEL_CPUS": "500m", "KERNEL_MEMORY": "2Gi", "KERNEL_MEMORY_LIMIT": "4Gi"}), func(t *testing.T, pod *corev1.Pod) {
			want := corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("2Gi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("4Gi")},
			}
			if got := pod.Spec.Containers[0].Resources; !reflect.DeepEqual(got, want) {
				t.Errorf("resources = %+v, want %+v", got, want)
			}
		}},
		{"working dir", kernelEnv(map[string]string{"KERNEL_WORKING_DIR": "/home/jovyan/my notebooks: 2024 #1"}), func(t *testing.T, pod *corev1.Pod) {
			if got := pod.Spec.Containers[0].WorkingDir; got != "/home/jovyan/my notebooks: 2024 #1" {
				t.Errorf("workingDir = %q", got)
			}
		}},
		{"volumes", kernelEnv(map[string]string{
			"KERNEL_VOLUMES":       `[{"name": "data", "persistentVolumeClaim": {"claimName": "alice-data", "readOnly": true}}, {name: cfg, configMap: {name: kernel-cfg, defaultMode: 0644}}]`,
			"KERNEL_VOLUME_MOUNTS": "- name: data\n  mountPath: /home/jovyan/data\n- {name: cfg, mountPath: /etc/kernel, readOnly: yes}\n",
		}), func(t *testing.T, pod *corev1.Pod) {
			mode := int32(0644)
			wantVolumes := []corev1.Volume{
				{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "alice-data", ReadOnly: true}}},
				{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "kernel-cfg"}, DefaultMode: &mode}}},
			}
			if !reflect.DeepEqual(pod.Spec.Volumes, wantVolumes) {
				t.Errorf("volumes = %+v, want %+v", pod.Spec.Volumes, wantVolumes)
			}
			wantMounts := []corev1.VolumeMount{{Name: "data", MountPath: "/home/jovyan/data"}, {Name: "cfg", MountPath: "/etc/kernel", ReadOnly: true}}
			if got := pod.Spec.Containers[0].VolumeMounts; !reflect.DeepEqual(got, wantMounts) {
				t.Errorf("volumeMounts = %+v, want %+v", got, wantMounts)
			}
		}},
		{"values YAML would misread", kernelEnv(map[string]string{"KERNEL_LANGUAGE": `it's "R": yes # no`, "KERNEL_IMAGE": "0777"}), func(t *testing.T, pod *corev1.Pod) {
			c := pod.Spec.Containers[0]
			if c.Env[0].Value != `it's "R": yes # no` || c.Image != "0777" {
				t.Errorf("env = %q, image = %q", c.Env[0].Value, c.Image)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := renderPod(t, kernelPod, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			pod := objs.Pod
			wantLabels := map[string]string{"app": "enterprise-gateway", "component": "kernel", "kernel_id": tt.env["KERNEL_ID"]}
			if !reflect.DeepEqual(pod.Labels, wantLabels) {
				t.Errorf("labels = %v, want %v", pod.Labels, wantLabels)
			}
			if pod.Name != tt.env["KERNEL_POD_NAME"] || pod.Namespace != tt.env["KERNEL_NAMESPACE"] || pod.Spec.ServiceAccountName != "default" {
				t.Errorf("name %q, namespace %q, service account %q", pod.Name, pod.Namespace, pod.Spec.ServiceAccountName)
			}
			if pod.Spec.RestartPolicy != corev1.RestartPolicyNever || len(pod.Spec.Containers) != 1 || objs.Service != nil {
				t.Errorf("spec = %+v", pod.Spec)
			}
			tt.check(t, pod)
		})
	}
}

// A hostile client's KERNEL_* values. EG's current templates escape every
// value with yaml_safe, as ours does: the value stays one string in its
// field and nothing else in the pod changes. KERNEL_VOLUMES is structure by
// design: EG creates a pod with whatever volume it describes (a hostPath
// of the node's root included); we refuse host access the template does
// not name.
func TestHostileValues(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr error
		check   func(t *testing.T, objs *PodObjects)
	}{
		{"new key in the pod name", map[string]string{"KERNEL_POD_NAME": "x\n  namespace: kube-system"}, nil, func(t *testing.T, objs *PodObjects) {
			if objs.Pod.Name != "x\n  namespace: kube-system" || objs.Pod.Namespace != kernelEnv(nil)["KERNEL_NAMESPACE"] {
				t.Errorf("name %q, namespace %q", objs.Pod.Name, objs.Pod.Namespace)
			}
		}},
		{"second document in the image", map[string]string{"KERNEL_IMAGE": "img\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"}, nil, func(t *testing.T, objs *PodObjects) {
			if objs.Secret != nil || !strings.HasPrefix(objs.Pod.Spec.Containers[0].Image, "img\n---\n") {
				t.Errorf("secret %v, image %q", objs.Secret, objs.Pod.Spec.Containers[0].Image)
			}
		}},
		{"privileged container through an env value", map[string]string{"KERNEL_LANGUAGE": "python\n    securityContext: {privileged: true}"}, nil, func(t *testing.T, objs *PodObjects) {
			if c := objs.Pod.Spec.Containers[0]; c.SecurityContext != nil || c.Env[0].Value != "python\n    securityContext: {privileged: true}" {
				t.Errorf("container = %+v", c)
			}
		}},
		{"host network through the working dir", map[string]string{"KERNEL_WORKING_DIR": "/w\n  hostNetwork: true\n  hostPID: true"}, nil, func(t *testing.T, objs *PodObjects) {
			if objs.Pod.Spec.HostNetwork || objs.Pod.Spec.HostPID {
				t.Errorf("spec = %+v", objs.Pod.Spec)
			}
		}},
		{"flow mapping as a uid", map[string]string{"KERNEL_UID": "{privileged: true}"}, nil, func(t *testing.T, objs *PodObjects) {
			// jinja2's int filter turns what is not a number into 0; the
			// process proxy refuses such a uid before any template runs.
			if *objs.Pod.Spec.SecurityContext.RunAsUser != 0 {
				t.Errorf("runAsUser = %d", *objs.Pod.Spec.SecurityContext.RunAsUser)
			}
		}},
		{"keys injected in a volume's name", map[string]string{"KERNEL_VOLUMES": `[{"name": "v\n  hostPath: {path: /}", "emptyDir": {}}]`}, nil, func(t *testing.T, objs *PodObjects) {
			v := objs.Pod.Spec.Volumes[0]
			if v.Name != "v\n  hostPath: {path: /}" || v.HostPath != nil || v.EmptyDir == nil {
				t.Errorf("volume = %+v", v)
			}
		}},
		{"hostPath volume", map[string]string{"KERNEL_VOLUMES": `[{"name": "root", "hostPath": {"path": "/"}}]`, "KERNEL_VOLUME_MOUNTS": `[{"name": "root", "mountPath": "/host"}]`}, ErrForbidden, nil},
		{"hostPath with another spelling", map[string]string{"KERNEL_VOLUMES": `[{"name": "root", "HostPath": {"path": "/"}}]`}, ErrForbidden, nil},
		{"volumes that are not a list of mappings", map[string]string{"KERNEL_VOLUMES": "{name: x}"}, ErrStructuredVar, nil},
		{"alias bomb", map[string]string{"KERNEL_VOLUMES": "[&a {x: 1}, *a, *a]"}, ErrUnsupportedYAML, nil},
		{"python object tag", map[string]string{"KERNEL_VOLUMES": "[!!python/object/apply:os.system [id]]"}, ErrUnsupportedYAML, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := renderPod(t, kernelPod, kernelEnv(tt.env))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if objs.Service != nil || objs.ConfigMap != nil || objs.PersistentVolume != nil || objs.PersistentVolumeClaim != nil {
				t.Errorf("extra objects: %+v", objs)
			}
			tt.check(t, objs)
		})
	}
}

// A customised template that prints values without yaml_safe, as EG's
// templates did before 3.3 and its documentation still shows, lets a value
// with line breaks write YAML. EG creates what comes out; we refuse host
// access the template does not name. (The gateway already refuses client
// values with line breaks, as EG's handler does.)
func TestHazards(t *testing.T) {
	const unescaped = `apiVersion: v1
kind: Pod
metadata:
  name: "{{ kernel_pod_name }}"
spec:
  serviceAccountName: "{{ kernel_service_account_name }}"
  containers:
  - name: kernel
    image: "{{ kernel_image }}"
  volumes:
  {% for v in kernel_volumes | default([]) %}
  - {{ v }}
  {% endfor %}
`
	tests := []struct {
		name     string
		template string
		env      map[string]string
		wantErr  error
	}{
		{"host network", unescaped, map[string]string{"KERNEL_SERVICE_ACCOUNT_NAME": "default\"\n  hostNetwork: true\n  x: \""}, ErrForbidden},
		{"host PID", unescaped, map[string]string{"KERNEL_SERVICE_ACCOUNT_NAME": "default\"\n  hostPID: true\n  x: \""}, ErrForbidden},
		{"host IPC", unescaped, map[string]string{"KERNEL_SERVICE_ACCOUNT_NAME": "default\"\n  hostIPC: true\n  x: \""}, ErrForbidden},
		{"privileged container", unescaped, map[string]string{"KERNEL_IMAGE": "img\"\n    securityContext: {privileged: true}\n    x: \""}, ErrForbidden},
		{"added capabilities", unescaped, map[string]string{"KERNEL_IMAGE": "img\"\n    securityContext: {capabilities: {add: [SYS_ADMIN]}}\n    x: \""}, ErrForbidden},
		{"host port", unescaped, map[string]string{"KERNEL_IMAGE": "img\"\n    ports: [{containerPort: 22, hostPort: 22}]\n    x: \""}, ErrForbidden},
		{"hostPath printed as a Python dict", unescaped, map[string]string{"KERNEL_VOLUMES": `[{"name": "root", "hostPath": {"path": "/"}}]`}, ErrForbidden},
		{"harmless values", unescaped, map[string]string{"KERNEL_VOLUMES": `[{"name": "scratch", "emptyDir": {}}]`}, nil},
		{"the template names hostPath", "{# clients may mount hostPath volumes #}\n" + unescaped, map[string]string{"KERNEL_VOLUMES": `[{"name": "root", "hostPath": {"path": "/data"}}]`}, nil},
		{"the template sets privileged itself", strings.Replace(unescaped, `    image: "{{ kernel_image }}"`, "    image: \"{{ kernel_image }}\"\n    securityContext: {privileged: true}", 1), nil, nil},
		{"privileged false is no hazard", strings.Replace(unescaped, `    image: "{{ kernel_image }}"`, "    image: x\n    securityContext: {privileged: false, capabilities: {drop: [ALL]}}", 1), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderPod(t, tt.template, kernelEnv(tt.env))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestDecodePod(t *testing.T) {
	const service = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {clusterIP: None}\n"
	const pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: k, image: i}]}\n"
	tests := []struct {
		name    string
		yaml    string
		wantErr error
	}{
		{"pod, service and empty documents", "---\n" + pod + "---\n" + service + "---\n", nil},
		{"two pods", pod + "---\n" + pod, ErrManifest},
		{"a kind launch_kubernetes.py does not create", pod + "---\nkind: Deployment\n", ErrManifest},
		{"no kind", "apiVersion: v1\nmetadata: {name: p}\n", ErrManifest},
		{"a list", "- kind: Pod\n", ErrManifest},
		{"no pod", service, ErrManifest},
		{"not YAML", "kind: Pod\n  bad: [", ErrManifest},
		{"a field of the wrong type", "kind: Pod\nspec: {containers: [{name: k, env: [{name: A, value: yes}]}]}\n", ErrManifest},
		{"an int that does not fit 64 bits", "kind: Pod\nspec: {activeDeadlineSeconds: 99999999999999999999}\n", ErrManifest},
		{"a merge key", "kind: Pod\nmetadata: {<<: {name: p}}\n", ErrUnsupportedYAML},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := DecodePod([]byte(tt.yaml))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && (objs.Pod.Name != "p" || objs.Service.Spec.ClusterIP != "None") {
				t.Errorf("objects = %+v", objs)
			}
		})
	}
}

func TestDecodeCustomResource(t *testing.T) {
	const app = `apiVersion: "sparkoperator.k8s.io/v1beta2"
kind: SparkApplication
metadata: {name: alice-1}
spec:
  sparkVersion: 2.4.5
  pythonVersion: "3"
  dynamicAllocation: {enabled: on, maxExecutors: 0x10}
  driver: {cores: 1, coreLimit: 1000m, memory: 1g}
`
	u, err := DecodeCustomResource([]byte(app))
	if err != nil {
		t.Fatal(err)
	}
	// YAML 1.1 as PyYAML reads it: on is true, 0x10 is 16, 2.4.5 a string.
	want := map[string]any{
		"sparkVersion":      "2.4.5",
		"pythonVersion":     "3",
		"dynamicAllocation": map[string]any{"enabled": true, "maxExecutors": int64(16)},
		"driver":            map[string]any{"cores": int64(1), "coreLimit": "1000m", "memory": "1g"},
	}
	if u.GetKind() != "SparkApplication" || u.GetName() != "alice-1" || !reflect.DeepEqual(u.Object["spec"], want) {
		t.Errorf("object = %v", u.Object)
	}
	if _, err := DecodeCustomResource([]byte(app + "---\n" + app)); !errors.Is(err, ErrManifest) {
		t.Errorf("two documents: err = %v, want ErrManifest", err)
	}
}

func TestExtendEnv(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Env: []corev1.EnvVar{
		{Name: "KERNEL_LANGUAGE", Value: "from template"},
		{Name: "CUSTOM", Value: "kept"},
	}}}}}
	ExtendEnv(pod, map[string]string{"KERNEL_LANGUAGE": "python", "PUBLIC_KEY": "k", "KERNEL_ID": "1"})
	want := []corev1.EnvVar{
		{Name: "KERNEL_LANGUAGE", Value: "python"},
		{Name: "CUSTOM", Value: "kept"},
		{Name: "KERNEL_ID", Value: "1"},
		{Name: "PUBLIC_KEY", Value: "k"},
	}
	if got := pod.Spec.Containers[0].Env; !reflect.DeepEqual(got, want) {
		t.Errorf("env = %+v, want %+v", got, want)
	}
}

// A parsed template is rendered for many kernels at once.
func TestConcurrentRender(t *testing.T) {
	tpl, err := Parse(kernelPod)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			env := kernelEnv(map[string]string{"KERNEL_POD_NAME": strings.Repeat("p", i+1), "KERNEL_UID": "1000"})
			vars, err := PodVars(env, testLaunch)
			if err != nil {
				t.Error(err)
				return
			}
			for range 20 {
				objs, err := tpl.Pod(vars)
				if err != nil {
					t.Error(err)
					return
				}
				if objs.Pod.Name != env["KERNEL_POD_NAME"] {
					t.Errorf("name = %q, want %q", objs.Pod.Name, env["KERNEL_POD_NAME"])
				}
			}
		})
	}
	wg.Wait()
}
