package podtemplate

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"reflect"
	"regexp"

	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
)

// Template is a parsed Jinja2 template. It is safe for concurrent use.
type Template struct {
	tpl *exec.Template
	// named holds the hazards (check.go) the template's own text names.
	named map[string]bool
}

// templatePath is the one name the loader serves: a template cannot
// include, import or extend anything else, and never reads a file.
const templatePath = "/template"

// environment is EG's jinja2 Environment: trim_blocks and lstrip_blocks,
// no autoescaping (select_autoescape disables it for .j2 files), jinja2's
// built-in filters and tests, and the yaml_safe filter.
var environment = &exec.Environment{
	Context: exec.EmptyContext().
		Update(builtins.GlobalFunctions).
		Update(builtins.GlobalVariables),
	Filters:           exec.NewFilterSet(map[string]exec.FilterFunction{"yaml_safe": yamlSafeFilter}).Update(builtins.Filters),
	Tests:             builtins.Tests,
	ControlStructures: builtins.ControlStructures,
	Methods:           builtins.Methods,
}

func engineConfig() *config.Config {
	c := config.New()
	c.TrimBlocks = true
	c.LeftStripBlocks = true
	return c
}

// Parse parses a template's text.
func Parse(source string) (*Template, error) {
	loader, err := loaders.NewMemoryLoader(map[string]string{templatePath: source})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	tpl, err := exec.NewTemplate(templatePath, engineConfig(), loader, environment)
	if err != nil {
		// The engine quotes the whole source around the parser's error.
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		return nil, fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	named := map[string]bool{}
	for _, m := range hazardWords.FindAllString(source, -1) {
		named[m] = true
	}
	return &Template{tpl: tpl, named: named}, nil
}

// Render renders the template with vars (from PodVars or
// CustomResourceVars), as EG's launcher does before it parses the result.
func (t *Template) Render(vars map[string]any) ([]byte, error) {
	data := maps.Clone(vars)
	if data == nil {
		data = map[string]any{}
	}
	state := &renderState{}
	data[stateKey] = state
	var out bytes.Buffer
	if err := t.tpl.Execute(&out, exec.NewContext(data)); err != nil {
		if state.filterErr != nil {
			return nil, fmt.Errorf("%w (%v)", state.filterErr, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	return out.Bytes(), nil
}

// renderState carries what the engine cannot: it reports a filter's
// failure as text, so yaml_safe leaves its error here for Render.
type renderState struct {
	filterErr error
}

// stateKey is a context name no template can spell.
const stateKey = "\x00podtemplate"

// Render parses and renders source in one step.
func Render(source string, vars map[string]any) ([]byte, error) {
	t, err := Parse(source)
	if err != nil {
		return nil, err
	}
	return t.Render(vars)
}

func yamlSafeFilter(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if len(params.Args) > 0 || len(params.KwArgs) > 0 {
		return exec.AsValue(exec.ErrInvalidCall(errors.New("yaml_safe takes no arguments")))
	}
	v, err := fromEngine(in.Interface())
	if err == nil {
		var text string
		if text, err = yamlSafe(v); err == nil {
			return exec.AsValue(text)
		}
	}
	if s, ok := e.Environment.Context.Get(stateKey); ok {
		s.(*renderState).filterErr = err
	}
	return exec.AsValue(err)
}

// fromEngine turns what a template hands a filter (our own values, or the
// engine's for literals and other filters' results) into our model of
// Python values.
func fromEngine(v any) (any, error) {
	switch v := v.(type) {
	case nil, string, bool, int64, float64, *big.Int, List, *Mapping:
		return v, nil
	case *exec.Value:
		return fromEngine(v.Interface())
	case *exec.Dict:
		m := NewMapping()
		for _, p := range v.Pairs {
			key, ok := p.Key.Interface().(string)
			if !ok {
				return nil, fmt.Errorf("%w: yaml_safe: dict key %v is not a string", ErrTemplate, p.Key)
			}
			item, err := fromEngine(p.Value.Interface())
			if err != nil {
				return nil, err
			}
			m.Set(key, item)
		}
		return m, nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return new(big.Int).SetUint64(rv.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	case reflect.String:
		return rv.String(), nil
	case reflect.Slice, reflect.Array:
		list := make(List, 0, rv.Len())
		for i := range rv.Len() {
			item, err := fromEngine(rv.Index(i).Interface())
			if err != nil {
				return nil, err
			}
			list = append(list, item)
		}
		return list, nil
	}
	return nil, fmt.Errorf("%w: yaml_safe cannot write a %T", ErrTemplate, v)
}

// hazardWords finds, in a template's text, the hazards it names.
var hazardWords = regexp.MustCompile(`\b(?:` + hazardAlternatives() + `)\b`)
