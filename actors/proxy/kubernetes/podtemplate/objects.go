package podtemplate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"slices"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kjson "sigs.k8s.io/json"
)

// PodObjects are the objects of a rendered kernel-pod template, the kinds
// launch_kubernetes.py creates (at most one of each). Pod is never nil.
type PodObjects struct {
	Pod                   *corev1.Pod
	Service               *corev1.Service
	ConfigMap             *corev1.ConfigMap
	Secret                *corev1.Secret
	PersistentVolumeClaim *corev1.PersistentVolumeClaim
	PersistentVolume      *corev1.PersistentVolume
}

// Pod renders the template with PodVars' variables and decodes the
// objects as DecodePod does, refusing (ErrForbidden) host access that the
// template does not name.
func (t *Template) Pod(vars map[string]any) (*PodObjects, error) {
	docs, err := t.checkedDocuments(vars)
	if err != nil {
		return nil, err
	}
	return podObjects(docs)
}

// CustomResource renders the template with CustomResourceVars' variables
// and decodes the object as DecodeCustomResource does, refusing
// (ErrForbidden) host access that the template does not name.
func (t *Template) CustomResource(vars map[string]any) (*unstructured.Unstructured, error) {
	docs, err := t.checkedDocuments(vars)
	if err != nil {
		return nil, err
	}
	return customResource(docs)
}

func (t *Template) checkedDocuments(vars map[string]any) ([]map[string]any, error) {
	rendered, err := t.Render(vars)
	if err != nil {
		return nil, err
	}
	docs, err := decodeDocuments(rendered)
	if err != nil {
		return nil, err
	}
	if err := t.check(docs); err != nil {
		return nil, err
	}
	return docs, nil
}

// DecodePod reads a rendered kernel-pod template as launch_kubernetes.py
// does: YAML documents read with PyYAML's rules, empty ones skipped, each
// an object of a kind it creates, at most one per kind. Unlike EG it also
// requires a Pod (EG would create the other objects and then wait out the
// launch timeout).
func DecodePod(rendered []byte) (*PodObjects, error) {
	docs, err := decodeDocuments(rendered)
	if err != nil {
		return nil, err
	}
	return podObjects(docs)
}

// DecodeCustomResource reads a rendered custom-resource template as
// launch_custom_resource.py does: exactly one document, an object with a
// kind.
func DecodeCustomResource(rendered []byte) (*unstructured.Unstructured, error) {
	docs, err := decodeDocuments(rendered)
	if err != nil {
		return nil, err
	}
	return customResource(docs)
}

func podObjects(docs []map[string]any) (*PodObjects, error) {
	objs := &PodObjects{}
	targets := map[string]any{
		"Pod":                   &objs.Pod,
		"Service":               &objs.Service,
		"ConfigMap":             &objs.ConfigMap,
		"Secret":                &objs.Secret,
		"PersistentVolumeClaim": &objs.PersistentVolumeClaim,
		"PersistentVolume":      &objs.PersistentVolume,
	}
	seen := map[string]bool{}
	for _, doc := range docs {
		kind := doc["kind"].(string)
		target, ok := targets[kind]
		if !ok {
			return nil, fmt.Errorf("%w: kind %q is not one launch_kubernetes.py creates", ErrManifest, kind)
		}
		if seen[kind] {
			return nil, fmt.Errorf("%w: more than one %s", ErrManifest, kind)
		}
		seen[kind] = true
		data, err := json.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrManifest, kind, err)
		}
		// Case-sensitive like the API server: a key it would drop must not
		// land in a field here.
		if err := kjson.UnmarshalCaseSensitivePreserveInts(data, target); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrManifest, kind, err)
		}
	}
	if objs.Pod == nil {
		return nil, fmt.Errorf("%w: no Pod", ErrManifest)
	}
	return objs, nil
}

func customResource(docs []map[string]any) (*unstructured.Unstructured, error) {
	if len(docs) != 1 {
		return nil, fmt.Errorf("%w: %d documents, want one custom resource", ErrManifest, len(docs))
	}
	return &unstructured.Unstructured{Object: docs[0]}, nil
}

// decodeDocuments reads every document of a rendered template with
// PyYAML's rules into JSON values; empty documents are skipped and every
// other one must be a mapping with a kind.
func decodeDocuments(rendered []byte) ([]map[string]any, error) {
	dec := yaml.NewDecoder(strings.NewReader(string(rendered)))
	var docs []map[string]any
	for i := 1; ; i++ {
		var node yaml.Node
		if err := dec.Decode(&node); err != nil {
			if errors.Is(err, io.EOF) {
				return docs, nil
			}
			return nil, fmt.Errorf("%w: document %d: %w", ErrManifest, i, err)
		}
		l := loader{document: true, budget: maxNodes}
		v, err := l.construct(&node)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if isEmpty(v) {
			continue
		}
		m, ok := v.(Mapping)
		if !ok {
			return nil, fmt.Errorf("%w: document %d is not a mapping", ErrManifest, i)
		}
		if kind, ok := m["kind"].(string); !ok || kind == "" {
			return nil, fmt.Errorf("%w: document %d has no kind", ErrManifest, i)
		}
		doc, err := jsonValue(m)
		if err != nil {
			return nil, fmt.Errorf("%w: document %d: %w", ErrManifest, i, err)
		}
		docs = append(docs, doc.(map[string]any))
	}
}

// isEmpty is Python's falsiness, which launch_kubernetes.py uses to skip
// documents.
func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case bool:
		return !v
	case int64:
		return v == 0
	case float64:
		return v == 0
	case List:
		return len(v) == 0
	case Mapping:
		return len(v) == 0
	}
	return false
}

// jsonValue turns a Python value into the JSON value EG's Kubernetes
// client sends. Ints that do not fit 64 bits and non-finite floats have
// none (the API server would refuse them), so they are refused here.
func jsonValue(v any) (any, error) {
	switch v := v.(type) {
	case Mapping:
		m := make(map[string]any, len(v))
		for k, item := range v {
			var err error
			if m[k], err = jsonValue(item); err != nil {
				return nil, err
			}
		}
		return m, nil
	case List:
		list := make([]any, len(v))
		for i, item := range v {
			var err error
			if list[i], err = jsonValue(item); err != nil {
				return nil, err
			}
		}
		return list, nil
	case *big.Int:
		return nil, fmt.Errorf("integer %s does not fit 64 bits", v)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("float %v has no JSON form", v)
		}
	}
	return v, nil
}

// ExtendEnv adds env to the first container's env as launch_kubernetes.py
// does with its own environment: a variable the template lists gets the
// environment's value, the others are appended (in name order; EG appends
// them in its process's order).
func ExtendEnv(pod *corev1.Pod, env map[string]string) {
	if len(pod.Spec.Containers) == 0 {
		return
	}
	c := &pod.Spec.Containers[0]
	listed := map[string]bool{}
	for i := range c.Env {
		if v, ok := env[c.Env[i].Name]; ok {
			c.Env[i].Value = v
			c.Env[i].ValueFrom = nil
			listed[c.Env[i].Name] = true
		}
	}
	names := make([]string, 0, len(env))
	for name := range env {
		if !listed[name] {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: env[name]})
	}
}
