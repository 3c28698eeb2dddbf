package podtemplate

import (
	"errors"
	"math"
	"math/big"
	"strings"
	"testing"
)

// mapping builds a Mapping from key, value pairs.
func mapping(kv ...any) Mapping {
	m := Mapping{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// The expected texts are what PyYAML 6's yaml.dump writes with the
// arguments EG's yaml_safe filter passes it.
func TestYAMLSafe(t *testing.T) {
	big70, _ := new(big.Int).SetString("1180591620717411303424", 10)
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"path", "/home/jovyan", `"/home/jovyan"`},
		{"double quotes", `say "hi"`, `"say \"hi\""`},
		{"single quote", "it's", `"it's"`},
		{"newline", "line1\nline2", `"line1\nline2"`},
		{"document marker", "before\n---\nafter", `"before\n---\nafter"`},
		{"colon", "a: b", `"a: b"`},
		{"comment", "#x", `"#x"`},
		{"empty", "", `""`},
		{"unicode", "café ☃ 😀", `"caf\xE9 \u2603 \U0001F600"`},
		{"tab", "tab\there", `"tab\there"`},
		{"control and break characters", "\x07\x1b\x7f\u0085\u00a0\u2028\ufeff", `"\a\e\x7F\N\_\L\uFEFF"`},
		{"backslash", `back\slash`, `"back\\slash"`},
		{"byte that is not UTF-8", "a\xffb", `"a\uDCFFb"`},
		{"empty list", List{}, "[]"},
		{"empty dict", Mapping{}, "{}"},
		{"volume mount", List{mapping("name", "data", "mountPath", "/data")}, "[{mountPath: /data, name: data}]"},
		{"scalars in a flow mapping", mapping("b", int64(1), "a", List{true, nil, 1.5, "yes", "1", "", "x y", " lead", "a: b", "it's", "é"}),
			`{a: [true, null, 1.5, 'yes', '1', '', x y, ' lead', 'a: b', it's, "\xE9"], b: 1}`},
		{"long key", mapping(strings.Repeat("z", 130), int64(1)), "{? " + strings.Repeat("z", 130) + " : 1}"},
		{"empty key", mapping("", int64(1)), "{? '' : 1}"},
		{"multi-line key", mapping("a\nb", int64(1)), "{? 'a\n\n    b' : 1}"},
		{"numbers", List{1e16, 1e15, 1.5e-5, 0.0001, math.Copysign(0, -1), big70, int64(-7)},
			"[1.0e+16, 1000000000000000.0, 1.5e-05, 0.0001, -0.0, 1180591620717411303424, -7]"},
		{"true", true, "true"},
		{"int", int64(1000), "1000"},
		{"float", 3.14, "3.14"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := yamlSafe(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("yaml_safe(%#v)\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}

// PyYAML folds a double-quoted scalar past column 10000 at a space, with
// an escaped line break and an escaped leading space.
func TestYAMLSafeFoldsLongStrings(t *testing.T) {
	got, err := yamlSafe(strings.Repeat("word ", 2100))
	if err != nil {
		t.Fatal(err)
	}
	if want := " word word word\\\n  \\ word word word word"; got[9990:10030] != want {
		t.Errorf("fold = %q, want %q", got[9990:10030], want)
	}
}

func TestYAMLSafeUndefined(t *testing.T) {
	if _, err := yamlSafe(nil); !errors.Is(err, ErrUndefined) {
		t.Errorf("err = %v, want ErrUndefined", err)
	}
}

// Jinja2 prints a dict or list as Python's repr, which EG's documented
// templates (- {{ volume }}) relied on before yaml_safe. Keys come out
// sorted: Python would keep the client's order.
func TestPythonRepr(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{mapping("name", "my-vol", "persistentVolumeClaim", mapping("claimName", "my-pvc")),
			"{'name': 'my-vol', 'persistentVolumeClaim': {'claimName': 'my-pvc'}}"},
		{mapping("b", true, "a", nil), "{'a': None, 'b': True}"},
		{List{"it's", `say "hi"`, `both ' "`, "tab\t", "\x1b", "é", "\u200b"},
			`["it's", 'say "hi"', 'both \' "', 'tab\t', '\x1b', 'é', '\u200b']`},
		{List{int64(1), 1.0, 1e16, 0.1, 1e-5}, "[1, 1.0, 1e+16, 0.1, 1e-05]"},
	}
	for _, tt := range tests {
		var got string
		switch v := tt.in.(type) {
		case List:
			got = v.String()
		case Mapping:
			got = v.String()
		}
		if got != tt.want {
			t.Errorf("repr\n got %s\nwant %s", got, tt.want)
		}
	}
}
