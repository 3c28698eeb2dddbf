package podtemplate

import (
	"math"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzRender renders fuzzed templates with fuzzed client values and
// decodes the result: nothing may panic, and a value that went through
// yaml_safe must read back as itself.
func FuzzRender(f *testing.F) {
	f.Add(kernelPod, "alice-1", `[{"name": "v", "emptyDir": {}}]`)
	f.Add(kernelPod, "x\n---\nkind: Secret", "[{name: x, hostPath: {path: /}}]")
	f.Add("name: {{ kernel_pod_name }}\n{% for v in kernel_volumes %}- {{ v }}\n{% endfor %}", "a: b", "[&a {x: 1}, *a]")
	f.Add("{% if kernel_pod_name is defined %}{{ kernel_pod_name | int }}{% endif %}", " 7 ", "[]")
	f.Add("{{ kernel_volumes | yaml_safe }}", "\u2028\ufeff\x85", "[{k: [1, 2.5, .inf, yes, ~, 0x1F, 1:30, '']}]")
	f.Add("{% for v in kernel_volumes %}{% for k, x in v.items() %}{{ k }} {{ x | tojson }} {% endfor %}{{ v | length }}{% endfor %}", "", "[{b: 1, a: [x]}, {}]")
	f.Add("{% if 1 %}x{% endif %} {# c #}\t{{ '}} {%' }} {% raw %} {% {% endraw %} {%- if 1 -%} y {% endif %}", "", "[]")
	f.Add("{% for", "", "")
	f.Fuzz(func(t *testing.T, source, podName, volumes string) {
		tpl, err := Parse(source)
		if err != nil {
			return
		}
		env := kernelEnv(map[string]string{"KERNEL_POD_NAME": podName, "KERNEL_VOLUMES": volumes, "KERNEL_VOLUME_MOUNTS": "[]"})
		if vars, err := PodVars(env, testLaunch); err == nil {
			if rendered, err := tpl.Render(vars); err == nil {
				_, _ = DecodePod(rendered)
				_, _ = DecodeCustomResource(rendered)
			}
			_, _ = tpl.Pod(vars)
			_, _ = tpl.CustomResource(vars)
		}
		if !utf8.ValidString(podName) {
			return // Python would read such bytes as lone surrogates, which YAML cannot carry
		}
		rendered, err := Render("name: {{ kernel_pod_name | yaml_safe }}\n", map[string]any{"kernel_pod_name": podName})
		if err != nil {
			t.Fatalf("yaml_safe(%q): %v", podName, err)
		}
		v, err := loadValue(string(rendered))
		if err != nil {
			t.Fatalf("yaml_safe(%q) = %q does not load: %v", podName, rendered, err)
		}
		if got := v.(Mapping)["name"]; got != podName {
			t.Fatalf("yaml_safe(%q) = %q reads back as %q", podName, rendered, got)
		}
	})
}

// FuzzYAMLSafeRoundTrip checks that what yaml_safe writes for a client's
// KERNEL_VOLUMES reads back as the same value.
func FuzzYAMLSafeRoundTrip(f *testing.F) {
	f.Add(`[{"name": "v", "emptyDir": {}}]`)
	f.Add("[{a: [1, 2.5, -0.0, 1e300, yes, ~, 0x1F, 1:30, '', 'it''s', \"\\t\"]}]")
	f.Add("[{? '' : 1, 'a\nb': {c: [[], {}]}}]")
	f.Fuzz(func(t *testing.T, volumes string) {
		v, err := loadValue(volumes)
		if err != nil || hasNaN(v) {
			return
		}
		text, err := yamlSafe(v)
		if err != nil {
			if _, ok := v.(List); ok {
				t.Fatalf("yaml_safe(%q): %v", volumes, err)
			}
			return
		}
		back, err := loadValue(text)
		if err != nil {
			t.Fatalf("yaml_safe(%q) = %q does not load: %v", volumes, text, err)
		}
		if !reflect.DeepEqual(back, v) {
			t.Fatalf("yaml_safe(%q) = %q reads back as %#v, want %#v", volumes, text, back, v)
		}
	})
}

func hasNaN(v any) bool {
	switch v := v.(type) {
	case float64:
		return math.IsNaN(v)
	case List:
		for _, item := range v {
			if hasNaN(item) {
				return true
			}
		}
	case Mapping:
		for _, item := range v {
			if hasNaN(item) {
				return true
			}
		}
	}
	return false
}
