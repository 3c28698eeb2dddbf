package podtemplate

import (
	"errors"
	"reflect"
	"testing"
)

// The expected variables are the keywords EG's launchers build from the
// same environment and arguments.
func TestPodVars(t *testing.T) {
	env := map[string]string{
		"KERNEL_ID":            "stale",
		"KERNEL_USERNAME":      "alice",
		"KERNEL_UID":           "1000",
		"KERNEL_CPUS":          "2",
		"KERNEL_VOLUME_MOUNTS": "[{name: d, mountPath: /d}]",
		"KERNEL_EMPTY":         "",
		"kernel_lower":         "not a KERNEL_ variable",
		"PATH":                 "/usr/bin",
		"EG_X":                 "y",
	}
	tests := []struct {
		name   string
		launch Launch
		want   map[string]any
	}{
		{"all arguments", Launch{KernelID: "k1", PortRange: "0..0", ResponseAddress: "10.0.0.1:8877", PublicKey: "pk", SparkContextInitMode: "lazy", KernelClassName: "ipykernel.ipkernel.IPythonKernel", KernelName: "spark_python_kubernetes"}, map[string]any{
			"kernel_id":                      "k1",
			"kernel_username":                "alice",
			"kernel_uid":                     "1000",
			"kernel_cpus":                    "2",
			"kernel_volume_mounts":           List{mapping("name", "d", "mountPath", "/d")},
			"kernel_empty":                   "",
			"kernel_spark_context_init_mode": "lazy",
			"kernel_class_name":              "ipykernel.ipkernel.IPythonKernel",
			"kernel_name":                    "spark_python_kubernetes",
		}},
		{"defaults", Launch{KernelName: "python_kubernetes"}, map[string]any{
			"kernel_id":                      "stale",
			"kernel_username":                "alice",
			"kernel_uid":                     "1000",
			"kernel_cpus":                    "2",
			"kernel_volume_mounts":           List{mapping("name", "d", "mountPath", "/d")},
			"kernel_empty":                   "",
			"kernel_spark_context_init_mode": "none",
			"kernel_name":                    "python_kubernetes",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PodVars(env, tt.launch)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("vars =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
	if env["KERNEL_ID"] != "stale" {
		t.Error("PodVars changed the caller's environment")
	}
}

func TestPodEnv(t *testing.T) {
	got := Launch{KernelID: "k1", PortRange: "0..0", ResponseAddress: "10.0.0.1:8877", PublicKey: "pk", KernelName: "R_kubernetes"}.
		PodEnv(map[string]string{"PATH": "/usr/bin", "KERNEL_ID": "stale"})
	want := map[string]string{
		"PATH": "/usr/bin", "KERNEL_ID": "k1", "PORT_RANGE": "0..0", "RESPONSE_ADDRESS": "10.0.0.1:8877",
		"PUBLIC_KEY": "pk", "KERNEL_SPARK_CONTEXT_INIT_MODE": "none", "KERNEL_NAME": "R_kubernetes",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("env = %v, want %v", got, want)
	}
}

func TestCustomResourceVars(t *testing.T) {
	env := map[string]string{
		"KERNEL_ID":          "from-env",
		"KERNEL_CRD_GROUP":   "sparkoperator.k8s.io",
		"KERNEL_CRD_VERSION": "v1beta2",
		"KERNEL_VOLUMES":     `[{"name": "v", "emptyDir": {}}]`,
		"PORT_RANGE":         "not a template variable",
	}
	got, err := CustomResourceVars(env, Launch{KernelID: "k1", PortRange: "0..0", ResponseAddress: "a:1", PublicKey: "pk", KernelName: "spark_python_operator"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"eg_port_range":                     "0..0",
		"eg_public_key":                     "pk",
		"eg_response_address":               "a:1",
		"kernel_id":                         "from-env",
		"kernel_name":                       "spark_python_operator",
		"spark_context_initialization_mode": "none",
		"kernel_crd_group":                  "sparkoperator.k8s.io",
		"kernel_crd_version":                "v1beta2",
		"kernel_volumes":                    List{mapping("name", "v", "emptyDir", Mapping{})},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("vars =\n%#v\nwant\n%#v", got, want)
	}
	name, err := CustomResourceTemplate(got)
	if err != nil || name != "sparkoperator.k8s.io-v1beta2.yaml.j2" {
		t.Errorf("template = %q, %v", name, err)
	}
}

func TestCustomResourceTemplateRefuses(t *testing.T) {
	for _, version := range []string{"v1/../../etc", "v1\n", "", "1"} {
		vars := map[string]any{"kernel_crd_group": "sparkoperator.k8s.io", "kernel_crd_version": version}
		if name, err := CustomResourceTemplate(vars); !errors.Is(err, ErrTemplate) {
			t.Errorf("version %q: %q, %v", version, name, err)
		}
	}
}

func TestStructuredVarsRefused(t *testing.T) {
	for _, value := range []string{"", "x", "{a: 1}", "[a]", "[[]]", "[{a: 1}, 2]", "[{a: 1}"} {
		for _, name := range []string{"KERNEL_VOLUMES", "KERNEL_VOLUME_MOUNTS"} {
			if _, err := PodVars(map[string]string{name: value}, Launch{}); !errors.Is(err, ErrStructuredVar) {
				t.Errorf("%s=%q: err = %v, want ErrStructuredVar", name, value, err)
			}
		}
	}
}
