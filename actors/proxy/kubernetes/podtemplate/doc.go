// Package podtemplate renders Enterprise Gateway's Kubernetes templates
// (kernel-pod.yaml.j2 for pods, <group>-<version>.yaml.j2 for custom
// resources such as a SparkApplication) in Go, byte for byte as EG's
// launchers render them with Python's jinja2 and PyYAML, so a kernelgate
// image needs no Python and operators keep their customised templates.
//
// The steps follow EG's: [Config.KernelEnv] gives the kernel's environment
// the defaults EG's process proxy gives it, [PodVars] or
// [CustomResourceVars] turn it into the template's variables as the
// launcher scripts do, [Parse] and [Template.Render] run the Jinja2
// template (with EG's trim_blocks, lstrip_blocks and yaml_safe filter), and
// [DecodePod] or [DecodeCustomResource] read the result with PyYAML's rules
// into typed objects under the launchers' kind rules. [Template.Pod] and
// [Template.CustomResource] do the last two and also refuse objects that a
// client's values could have made dangerous (privileged containers, host
// namespaces, hostPath volumes) unless the template itself names them.
//
// docs/kubernetes-templates.md says which Jinja2 engine is used, why, and
// what differs from EG.
package podtemplate
