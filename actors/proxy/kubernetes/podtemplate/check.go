package podtemplate

import (
	"fmt"
	"strings"
)

// A hazard is a field that gives a kernel's pod a way out to its node.
// Values a client sends can only reach a rendered object through the
// template's variables: escaped by yaml_safe they stay scalars, but
// KERNEL_VOLUMES and KERNEL_VOLUME_MOUNTS are structure by design, and a
// customised template may print a variable without yaml_safe. So an object
// that sets a hazard is refused unless the template's own text names the
// field, which is how an operator says it is meant: a field the template
// writes, or a Jinja comment such as {# clients may mount a hostPath #}.
type hazard struct {
	field string
	set   func(v any) bool
}

var hazards = []hazard{
	{"privileged", isTrue},
	{"capabilities", addsCapabilities},
	{"procMount", func(v any) bool { return v != nil && v != "Default" }},
	{"hostNetwork", isTrue},
	{"hostPID", isTrue},
	{"hostIPC", isTrue},
	{"hostPath", func(v any) bool { return v != nil }},
	{"hostPort", func(v any) bool { return v != nil && v != int64(0) }},
}

func hazardAlternatives() string {
	fields := make([]string, len(hazards))
	for i, h := range hazards {
		fields[i] = h.field
	}
	return strings.Join(fields, "|")
}

func isTrue(v any) bool { return v == true }

func addsCapabilities(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return v != nil
	}
	for k, add := range m {
		if strings.EqualFold(k, "add") && add != nil {
			if list, ok := add.([]any); !ok || len(list) > 0 {
				return true
			}
		}
	}
	return false
}

// check refuses documents that set a hazard the template does not name.
// Keys match whatever their case, so that no spelling a decoder might
// accept slips through.
func (t *Template) check(docs []map[string]any) error {
	for _, doc := range docs {
		if path, field := t.findHazard(doc, doc["kind"].(string)); path != "" {
			return fmt.Errorf("%w: %s sets %s, which the template does not name", ErrForbidden, path, field)
		}
	}
	return nil
}

func (t *Template) findHazard(v any, path string) (at, field string) {
	switch v := v.(type) {
	case map[string]any:
		for k, item := range v {
			for _, h := range hazards {
				if strings.EqualFold(k, h.field) && h.set(item) && !t.named[h.field] {
					return path + "." + k, h.field
				}
			}
			if at, field := t.findHazard(item, path+"."+k); at != "" {
				return at, field
			}
		}
	case []any:
		for i, item := range v {
			if at, field := t.findHazard(item, fmt.Sprintf("%s[%d]", path, i)); at != "" {
				return at, field
			}
		}
	}
	return "", ""
}
