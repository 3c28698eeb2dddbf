package podtemplate

import (
	"errors"
	"testing"
)

// Our own templates, written to exercise the Jinja2 constructs EG's
// templates use (and a few a customised one may), rendered with EG's
// settings. The expected texts are what Python's jinja2 3.1 renders with
// trim_blocks, lstrip_blocks and PyYAML's yaml.dump as yaml_safe.
func TestRenderConstructs(t *testing.T) {
	type run struct {
		env  map[string]string
		want string
	}
	tests := []struct {
		name   string
		source string
		runs   []run
	}{
		{
			name: "if-elif-else",
			source: `{% if kernel_team is defined and kernel_team %}team: {{ kernel_team }}
{% elif kernel_username is defined %}team: {{ kernel_username ~ '-team' }}
{% else %}team: none
{% endif %}`,
			runs: []run{
				{map[string]string{}, `team: none
`},
				{map[string]string{"KERNEL_TEAM": "ops"}, `team: ops
`},
				{map[string]string{"KERNEL_TEAM": "", "KERNEL_USERNAME": "bob"}, `team: bob-team
`},
			},
		},
		{
			name: "defined-or",
			source: `{% if kernel_cpus is defined or kernel_memory is defined %}
resources:
  {% if kernel_cpus is defined %}
  cpu: {{ kernel_cpus | yaml_safe }}
  {% endif %}
  {% if kernel_memory is defined %}
  memory: {{ kernel_memory | yaml_safe }}
  {% endif %}
{% endif %}
end: 1`,
			runs: []run{
				{map[string]string{}, `end: 1`},
				{map[string]string{"KERNEL_MEMORY": "2Gi"}, `resources:
  memory: "2Gi"
end: 1`},
				{map[string]string{"KERNEL_CPUS": "500m", "KERNEL_MEMORY": "2Gi"}, `resources:
  cpu: "500m"
  memory: "2Gi"
end: 1`},
			},
		},
		{
			name: "int filter",
			source: `runAsUser: {{ kernel_uid | int }}
runAsGroup: {{ kernel_gid | default(100) | int }}`,
			runs: []run{
				{map[string]string{"KERNEL_UID": "1000"}, `runAsUser: 1000
runAsGroup: 100`},
				{map[string]string{"KERNEL_UID": " 7 ", "KERNEL_GID": "abc"}, `runAsUser: 7
runAsGroup: 0`},
				{map[string]string{"KERNEL_UID": "1_000", "KERNEL_GID": "3.9"}, `runAsUser: 1000
runAsGroup: 3`},
			},
		},
		{
			name: "loop over mappings",
			source: `mounts:
  {% for m in kernel_volume_mounts %}
  - {{ m | yaml_safe }}  # {{ loop.index }}/{{ loop.length }}{{ ' last' if loop.last }}
  {% else %}
  []
  {% endfor %}`,
			runs: []run{
				{map[string]string{"KERNEL_VOLUME_MOUNTS": "[]"}, `mounts:
  []
`},
				{map[string]string{"KERNEL_VOLUME_MOUNTS": "[{\"name\": \"a\", \"mountPath\": \"/a\"}, {\"name\": \"b\", \"mountPath\": \"/b: x\", \"readOnly\": true}]"}, `mounts:
  - {mountPath: /a, name: a}  # 1/2
  - {mountPath: '/b: x', name: b, readOnly: true}  # 2/2 last
`},
			},
		},
		{
			name: "python repr of a mapping",
			source: `volumes:
{% for v in kernel_volumes %}
- {{ v }}
{% endfor %}`,
			runs: []run{
				{map[string]string{"KERNEL_VOLUMES": "[{name: v, persistentVolumeClaim: {claimName: it's}, readOnly: yes, size: 0x10, x: ~}]"}, `volumes:
- {'name': 'v', 'persistentVolumeClaim': {'claimName': "it's"}, 'readOnly': True, 'size': 16, 'x': None}
`},
			},
		},
		{
			name: "item and attribute access",
			source: `{% for v in kernel_volumes %}{{ v.name }}={{ v['mountPath'] }};{% endfor %}
names: {{ kernel_volumes | map(attribute='name') | join(',') }}
count: {{ kernel_volumes | length }}`,
			runs: []run{
				{map[string]string{"KERNEL_VOLUMES": "[{name: a, mountPath: /a}, {name: b, mountPath: /b}]"}, `a=/a;b=/b;names: a,b
count: 2`},
			},
		},
		{
			name: "whitespace control",
			source: `a:
  {%- if kernel_x %}
  x: 1
  {%- endif %}
b: [{{- kernel_x -}} ]
    {%+ if kernel_x %}
c: 2
    {% endif %}
d: {# comment #} 3
`,
			runs: []run{
				{map[string]string{"KERNEL_X": "y"}, `a:  x: 1b: [y]
    c: 2
d:  3`},
				{map[string]string{"KERNEL_X": ""}, `a:b: []
    d:  3`},
			},
		},
		{
			name: "filters and literals",
			source: `{% set user = kernel_username | default('nobody') | lower %}
user: {{ user | yaml_safe }}
shout: {{ user | upper | replace('O', '0') }}
args: [{{ kernel_args | default('') | trim | yaml_safe }}]
selector: {{ {'pool': kernel_pool | default('cpu'), 'zone': 'a'} | yaml_safe }}
list: {{ ['x', 1, true, none] | yaml_safe }}
root: {{ 'true' if (kernel_uid | default(1) | int) == 0 else 'false' }}
{% for name, value in {'A': 1, 'B': 2}.items() %}
{{ name }}: {{ value }}
{% endfor %}`,
			runs: []run{
				{map[string]string{}, `user: "nobody"
shout: N0B0DY
args: [""]
selector: {pool: cpu, zone: a}
list: [x, 1, true, null]
root: false
A: 1
B: 2
`},
				{map[string]string{"KERNEL_USERNAME": "Bob", "KERNEL_ARGS": "  --debug ", "KERNEL_POOL": "gpu: a100", "KERNEL_UID": "0"}, `user: "bob"
shout: B0B
args: ["--debug"]
selector: {pool: 'gpu: a100', zone: a}
list: [x, 1, true, null]
root: true
A: 1
B: 2
`},
			},
		},
		{
			name: "dict operations on a client's mapping",
			source: `{% for v in kernel_volumes %}
{{ v | length }} {{ 'name' in v }} {{ 'hostPath' not in v }} {{ v.readOnly is defined }} {{ 'T' if v else 'F' }}
{% for k in v %}{{ k }},{% endfor %} {% for k, x in v.items() %}{{ k }}={{ x }};{% endfor %} {{ v | dictsort | first }}
{% endfor %}
{{ kernel_volumes | selectattr('readOnly') | list | length }} {{ kernel_volumes | selectattr('readOnly') | map(attribute='name') | list }}`,
			runs: []run{
				{map[string]string{"KERNEL_VOLUMES": "[{mountPath: /a, name: a, readOnly: true}, {mountPath: /b, name: b}, {}]"}, `3 True True True T
mountPath,name,readOnly, mountPath=/a;name=a;readOnly=True; ('mountPath', '/a')
2 True True False T
mountPath,name, mountPath=/b;name=b; ('mountPath', '/b')
0 False True False F
  
1 ['a']`},
			},
		},
		{
			name: "tojson",
			source: `{{ kernel_volumes | tojson }}
{{ kernel_volumes | tojson(indent=2) }}
{{ kernel_x | tojson }} {{ [1, 2.5, none, true, 1e20] | tojson }}`,
			runs: []run{
				{map[string]string{"KERNEL_VOLUMES": "[{\"mountPath\": \"/b <&>\", \"name\": \"b'\u00e9\\u0001\\t\"}]", "KERNEL_X": "q\"<x>"}, `[{"mountPath": "/b \u003c\u0026\u003e", "name": "b\u0027\u00e9\u0001\t"}]
[
  {
    "mountPath": "/b \u003c\u0026\u003e",
    "name": "b\u0027\u00e9\u0001\t"
  }
]
"q\"\u003cx\u003e" [1, 2.5, null, true, 1e+20]`},
			},
		},
		{
			name: "spaces between tags on one line",
			source: `{% if kernel_x %}x{% endif %} {% if kernel_x %}y{% endif %}|{{ kernel_x }}	{% if kernel_x %}z{% endif %}|{# c #} {{ '}} {%' }} {% if kernel_x %}w{% endif %}
  {% if kernel_x %}
  indented
  {% endif %}`,
			runs: []run{
				{map[string]string{"KERNEL_X": "1"}, `x y|1	z| }} {% w  indented
`},
			},
		},
		{
			name: "values are data, not template code",
			source: `a: {{ kernel_x }}
b: {{ kernel_x | yaml_safe }}`,
			runs: []run{
				{map[string]string{"KERNEL_X": "{{ 7*7 }}{% if true %}t{% endif %}"}, `a: {{ 7*7 }}{% if true %}t{% endif %}
b: "{{ 7*7 }}{% if true %}t{% endif %}"`},
			},
		},
	}
	for _, tt := range tests {
		tpl, err := Parse(tt.source)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		for _, r := range tt.runs {
			vars, err := PodVars(r.env, Launch{})
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			got, err := tpl.Render(vars)
			if err != nil {
				t.Errorf("%s %v: %v", tt.name, r.env, err)
				continue
			}
			if string(got) != r.want {
				t.Errorf("%s %v:\n got %q\nwant %q", tt.name, r.env, got, r.want)
			}
		}
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		name   string
		source string
		want   error
	}{
		{"undefined through yaml_safe", "name: {{ kernel_nope | yaml_safe }}", ErrUndefined},
		{"unknown filter", "{{ kernel_id | nope }}", ErrTemplate},
		{"unclosed block", "{% if kernel_id %}x", ErrTemplate},
		{"include reads no file", "{% include '/etc/passwd' %}", ErrTemplate},
		{"the engine panics on a Go struct in a loop", "{% for k in kernel_struct %}{% endfor %}", ErrTemplate},
	}
	for _, tt := range tests {
		_, err := Render(tt.source, map[string]any{"kernel_id": "k", "kernel_struct": struct{ A int }{}})
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}
