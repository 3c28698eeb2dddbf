package podtemplate

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"

	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/exec"
)

// filters are jinja2's built-in filters as the engine has them, with
// tojson made jinja2's own, and EG's yaml_safe.
func filters() *exec.FilterSet {
	set := exec.NewFilterSet(map[string]exec.FilterFunction{}).Update(builtins.Filters)
	if err := set.Replace("tojson", tojsonFilter); err != nil {
		panic(err)
	}
	if err := set.Register("yaml_safe", yamlSafeFilter); err != nil {
		panic(err)
	}
	return set
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
	case nil, string, bool, int64, float64, *big.Int, List, Mapping:
		return v, nil
	case *exec.Value:
		return fromEngine(v.Interface())
	case *exec.Dict:
		m := Mapping{}
		for _, p := range v.Pairs {
			key, ok := p.Key.Interface().(string)
			if !ok {
				return nil, fmt.Errorf("%w: yaml_safe: dict key %v is not a string", ErrTemplate, p.Key)
			}
			item, err := fromEngine(p.Value.Interface())
			if err != nil {
				return nil, err
			}
			m[key] = item
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
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		m := Mapping{}
		for iter := rv.MapRange(); iter.Next(); {
			item, err := fromEngine(iter.Value().Interface())
			if err != nil {
				return nil, err
			}
			m[iter.Key().String()] = item
		}
		return m, nil
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

// tojsonFilter is jinja2's tojson: Python's json.dumps with sorted keys
// (ASCII only, ", " and ": " separators, or newlines and the given indent),
// then <, >, & and ' escaped for HTML.
func tojsonFilter(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	indent := -1
	arg, ok := params.KwArgs["indent"]
	if len(params.Args) > 0 {
		arg, ok = params.Args[0], true
	}
	if ok && !arg.IsNil() {
		if !arg.IsInteger() {
			return exec.AsValue(exec.ErrInvalidCall(errors.New("tojson: indent must be an int")))
		}
		indent = arg.Integer()
	}
	v, err := fromEngine(in.Interface())
	if err != nil {
		return exec.AsValue(err)
	}
	var b strings.Builder
	writeJSON(&b, v, indent, 0)
	return exec.AsSafeValue(strings.NewReplacer("<", `\u003c`, ">", `\u003e`, "&", `\u0026`, "'", `\u0027`).Replace(b.String()))
}

func writeJSON(b *strings.Builder, v any, indent, level int) {
	newline := func(level int) {
		if indent >= 0 {
			b.WriteByte('\n')
			b.WriteString(strings.Repeat(" ", indent*level))
		}
	}
	separator := ", "
	if indent >= 0 {
		separator = ","
	}
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case *big.Int:
		b.WriteString(v.String())
	case float64:
		switch {
		case math.IsNaN(v):
			b.WriteString("NaN")
		case math.IsInf(v, 1):
			b.WriteString("Infinity")
		case math.IsInf(v, -1):
			b.WriteString("-Infinity")
		default:
			b.WriteString(pyFloat(v))
		}
	case string:
		writeJSONString(b, v)
	case List:
		if len(v) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteByte('[')
		for i, item := range v {
			if i > 0 {
				b.WriteString(separator)
			}
			newline(level + 1)
			writeJSON(b, item, indent, level+1)
		}
		newline(level)
		b.WriteByte(']')
	case Mapping:
		if len(v) == 0 {
			b.WriteString("{}")
			return
		}
		b.WriteByte('{')
		for i, k := range v.sortedKeys() {
			if i > 0 {
				b.WriteString(separator)
			}
			newline(level + 1)
			writeJSONString(b, k)
			b.WriteString(": ")
			writeJSON(b, v[k], indent, level+1)
		}
		newline(level)
		b.WriteByte('}')
	}
}

// writeJSONString writes a JSON string as Python's json module does with
// ensure_ascii: everything outside printable ASCII as \uXXXX (a surrogate
// pair above the BMP).
func writeJSONString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range pyRunes(s) {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r >= ' ' && r <= '~':
			b.WriteRune(r)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			fmt.Fprintf(b, `\u%04x`, r)
		}
	}
	b.WriteByte('"')
}
