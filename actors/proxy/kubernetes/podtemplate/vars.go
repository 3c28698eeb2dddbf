package podtemplate

import (
	"fmt"
	"maps"
	"regexp"
	"strings"
)

// Launch is what EG's process proxy passes a launcher on its command line
// (the kernelspec's argv), besides the kernel's environment.
type Launch struct {
	KernelID        string // --kernel-id
	PortRange       string // --port-range, e.g. "0..0"
	ResponseAddress string // --response-address, ip:port of the response listener
	PublicKey       string // --public-key
	// SparkContextInitMode is --spark-context-initialization-mode; empty
	// means the launchers' default, "none".
	SparkContextInitMode string
	// KernelClassName is --kernel-class-name (launch_kubernetes.py only).
	KernelClassName string
	// KernelName is the kernelspec's directory name with its case kept
	// (EG's launchers take it from their own path).
	KernelName string
}

// structuredVars are the only variables parsed as YAML; every other one
// stays the string the client sent, so it cannot bring structure.
var structuredVars = map[string]bool{"KERNEL_VOLUMES": true, "KERNEL_VOLUME_MOUNTS": true}

func (l Launch) sparkMode() string {
	if l.SparkContextInitMode == "" {
		return "none"
	}
	return l.SparkContextInitMode
}

// PodEnv returns the environment launch_kubernetes.py works in: the
// kernel's environment (as the process proxy prepared it: KERNEL_ID,
// KERNEL_NAMESPACE, KERNEL_POD_NAME, KERNEL_IMAGE, KERNEL_UID, …) plus what
// the launcher sets from its arguments: PORT_RANGE, PUBLIC_KEY,
// RESPONSE_ADDRESS, KERNEL_ID, KERNEL_CLASS_NAME when given,
// KERNEL_SPARK_CONTEXT_INIT_MODE and KERNEL_NAME. Its KERNEL_* variables
// are the template's; all of it is the kernel container's env (ExtendEnv).
func (l Launch) PodEnv(env map[string]string) map[string]string {
	out := maps.Clone(env)
	if out == nil {
		out = map[string]string{}
	}
	set := func(name, value string) {
		if value != "" {
			out[name] = value
		}
	}
	set("PORT_RANGE", l.PortRange)
	set("PUBLIC_KEY", l.PublicKey)
	set("RESPONSE_ADDRESS", l.ResponseAddress)
	set("KERNEL_ID", l.KernelID)
	set("KERNEL_SPARK_CONTEXT_INIT_MODE", l.sparkMode())
	set("KERNEL_CLASS_NAME", l.KernelClassName)
	out["KERNEL_NAME"] = l.KernelName
	return out
}

// PodVars returns the variables launch_kubernetes.py renders
// kernel-pod.yaml.j2 with: every KERNEL_* variable of PodEnv(env) under
// its lower-cased name (kernel_id, kernel_namespace, kernel_pod_name,
// kernel_image, kernel_uid, kernel_working_dir, kernel_cpus, …), each a
// string except kernel_volumes and kernel_volume_mounts, which must be
// YAML lists of mappings (ErrStructuredVar) and become List of Mapping.
// A variable the environment lacks is undefined in the template.
func PodVars(env map[string]string, l Launch) (map[string]any, error) {
	return kernelVars(map[string]any{}, l.PodEnv(env))
}

// CustomResourceVars returns the variables launch_custom_resource.py
// renders a custom-resource template with: eg_port_range, eg_public_key,
// eg_response_address, kernel_id, kernel_name and
// spark_context_initialization_mode from l, then every KERNEL_* variable
// of env as PodVars has them (so KERNEL_ID and KERNEL_NAME, when set, win).
func CustomResourceVars(env map[string]string, l Launch) (map[string]any, error) {
	return kernelVars(map[string]any{
		"eg_port_range":                     l.PortRange,
		"eg_public_key":                     l.PublicKey,
		"eg_response_address":               l.ResponseAddress,
		"kernel_id":                         l.KernelID,
		"kernel_name":                       l.KernelName,
		"spark_context_initialization_mode": l.sparkMode(),
	}, env)
}

func kernelVars(vars map[string]any, env map[string]string) (map[string]any, error) {
	for name, value := range env {
		if !strings.HasPrefix(name, "KERNEL_") {
			continue
		}
		key := strings.ToLower(name)
		if !structuredVars[name] {
			vars[key] = value
			continue
		}
		v, err := loadValue(value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		list, ok := v.(List)
		if ok {
			for _, item := range list {
				if _, ok = item.(Mapping); !ok {
					break
				}
			}
		}
		if !ok {
			return nil, fmt.Errorf("%s: %w", name, ErrStructuredVar)
		}
		vars[key] = list
	}
	return vars, nil
}

// crdTemplateName is what launch_custom_resource.py accepts as
// <group>-<version>.
var crdTemplateName = regexp.MustCompile(`^[a-z0-9][a-z0-9.\-]*-v[a-z0-9]+$`)

// CustomResourceTemplate returns the file name launch_custom_resource.py
// renders for vars: <kernel_crd_group>-<kernel_crd_version>.yaml.j2, e.g.
// sparkoperator.k8s.io-v1beta2.yaml.j2.
func CustomResourceTemplate(vars map[string]any) (string, error) {
	group, _ := vars["kernel_crd_group"].(string)
	version, _ := vars["kernel_crd_version"].(string)
	name := group + "-" + version
	if !crdTemplateName.MatchString(name) {
		return "", fmt.Errorf("%w: invalid custom resource template name %q", ErrTemplate, name)
	}
	return name + ".yaml.j2", nil
}
