package podtemplate

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// YAML is read the way EG's launchers read it, with PyYAML's safe_load:
// YAML 1.1 scalars (yes/no/on/off are booleans, 0777 is octal, 1:30 is 90,
// 1e3 is a string), not the YAML 1.2 rules of Go's YAML libraries. The
// syntax is parsed by go.yaml.in/yaml/v3 and every scalar resolved here.

// PyYAML's implicit resolvers (yaml/resolver.py), tried in PyYAML's order
// among those registered for the scalar's first character.
var (
	boolRE      = regexp.MustCompile(`^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$`)
	floatRE     = regexp.MustCompile(`^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$`)
	intRE       = regexp.MustCompile(`^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$`)
	mergeRE     = regexp.MustCompile(`^(?:<<)$`)
	nullRE      = regexp.MustCompile(`^(?:~|null|Null|NULL|)$`)
	timestampRE = regexp.MustCompile(`^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$`)
	valueRE     = regexp.MustCompile(`^(?:=)$`)
)

const (
	tagStr       = "str"
	tagBool      = "bool"
	tagFloat     = "float"
	tagInt       = "int"
	tagNull      = "null"
	tagMerge     = "merge"
	tagTimestamp = "timestamp"
	tagValue     = "value"
)

type resolver struct {
	tag string
	re  *regexp.Regexp
}

var (
	resolveBool      = resolver{tagBool, boolRE}
	resolveFloat     = resolver{tagFloat, floatRE}
	resolveInt       = resolver{tagInt, intRE}
	resolveNull      = resolver{tagNull, nullRE}
	resolveTimestamp = resolver{tagTimestamp, timestampRE}
)

// plainTag returns the tag PyYAML gives a plain (unquoted) scalar.
func plainTag(s string) string {
	first, _ := utf8.DecodeRuneInString(s)
	var candidates []resolver
	switch {
	case s == "" || first == '~':
		candidates = []resolver{resolveNull}
	case strings.ContainsRune("yYtTfFoO", first):
		candidates = []resolver{resolveBool}
	case first == 'n' || first == 'N':
		candidates = []resolver{resolveBool, resolveNull}
	case first == '-' || first == '+':
		candidates = []resolver{resolveFloat, resolveInt}
	case first >= '0' && first <= '9':
		candidates = []resolver{resolveFloat, resolveInt, resolveTimestamp}
	case first == '.':
		candidates = []resolver{resolveFloat}
	case first == '<':
		candidates = []resolver{{tagMerge, mergeRE}}
	case first == '=':
		candidates = []resolver{{tagValue, valueRE}}
	}
	for _, c := range candidates {
		if c.re.MatchString(s) {
			return c.tag
		}
	}
	return tagStr
}

// loader builds Python values from YAML nodes.
type loader struct {
	// document is set for a rendered template, which is the operator's
	// text: aliases are expanded (within budget) and timestamps kept as
	// their text. A client's value may use neither.
	document bool
	// budget bounds the nodes an alias may expand to (a billion-laughs
	// document must not exhaust memory).
	budget int
}

// maxNodes bounds the nodes one document may expand to through aliases.
const maxNodes = 100_000

// loadValue reads one YAML value the way PyYAML's safe_load does: an empty
// stream is None and a second document is an error.
func loadValue(text string) (any, error) {
	dec := yaml.NewDecoder(strings.NewReader(text))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %w", ErrStructuredVar, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one YAML document", ErrStructuredVar)
	}
	l := loader{budget: maxNodes}
	return l.construct(&doc)
}

func (l *loader) construct(n *yaml.Node) (any, error) {
	l.budget--
	if l.budget < 0 {
		return nil, fmt.Errorf("%w: more than %d nodes", ErrUnsupportedYAML, maxNodes)
	}
	if n.Anchor != "" && !l.document {
		return nil, fmt.Errorf("%w: anchor &%s (line %d)", ErrUnsupportedYAML, n.Anchor, n.Line)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return l.construct(n.Content[0])
	case yaml.AliasNode:
		if !l.document {
			return nil, fmt.Errorf("%w: alias *%s (line %d)", ErrUnsupportedYAML, n.Value, n.Line)
		}
		return l.construct(n.Alias)
	case yaml.SequenceNode:
		if n.Style&yaml.TaggedStyle != 0 && n.Tag != "!!seq" {
			return nil, fmt.Errorf("%w: tag %s (line %d)", ErrUnsupportedYAML, n.Tag, n.Line)
		}
		list := make(List, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := l.construct(c)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		return list, nil
	case yaml.MappingNode:
		if n.Style&yaml.TaggedStyle != 0 && n.Tag != "!!map" {
			return nil, fmt.Errorf("%w: tag %s (line %d)", ErrUnsupportedYAML, n.Tag, n.Line)
		}
		m := Mapping{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, err := l.construct(n.Content[i])
			if err != nil {
				return nil, err
			}
			key, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("%w: key %s is not a string (line %d)", ErrUnsupportedYAML, n.Content[i].Value, n.Content[i].Line)
			}
			v, err := l.construct(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[key] = v
		}
		return m, nil
	case yaml.ScalarNode:
		return l.scalar(n)
	}
	return nil, fmt.Errorf("%w: node kind %d (line %d)", ErrUnsupportedYAML, n.Kind, n.Line)
}

func (l *loader) scalar(n *yaml.Node) (any, error) {
	tag := tagStr
	switch {
	case n.Style&yaml.TaggedStyle != 0:
		switch n.Tag {
		case "!!str", "!!int", "!!float", "!!bool", "!!null":
			tag = strings.TrimPrefix(n.Tag, "!!")
		default:
			return nil, fmt.Errorf("%w: tag %s (line %d)", ErrUnsupportedYAML, n.Tag, n.Line)
		}
		// An explicit tag must still hold what the tag's resolver takes (a
		// float may be written as an int); PyYAML's own constructors would
		// be laxer or fail.
		if resolved := plainTag(n.Value); tag != tagStr && tag != tagNull && resolved != tag && !(tag == tagFloat && resolved == tagInt) {
			return nil, fmt.Errorf("%w: %s %q (line %d)", ErrUnsupportedYAML, n.Tag, n.Value, n.Line)
		}
	case n.Style == 0:
		tag = plainTag(n.Value)
	}
	switch tag {
	case tagStr:
		return n.Value, nil
	case tagNull:
		return nil, nil
	case tagBool:
		switch strings.ToLower(n.Value) {
		case "yes", "true", "on":
			return true, nil
		}
		return false, nil
	case tagInt:
		v, err := pyInt(n.Value)
		if err != nil {
			return nil, fmt.Errorf("%w: int %q (line %d)", ErrUnsupportedYAML, n.Value, n.Line)
		}
		return v, nil
	case tagFloat:
		v, err := pyFloatValue(n.Value)
		if err != nil {
			return nil, fmt.Errorf("%w: float %q (line %d)", ErrUnsupportedYAML, n.Value, n.Line)
		}
		return v, nil
	case tagTimestamp:
		if l.document {
			return n.Value, nil
		}
	}
	return nil, fmt.Errorf("%w: %s %q (line %d)", ErrUnsupportedYAML, tag, n.Value, n.Line)
}

// pyInt builds an int as PyYAML's construct_yaml_int does from a scalar its
// int resolver matched: underscores dropped, 0b binary, 0x hex, a leading 0
// octal, colons base 60.
func pyInt(text string) (any, error) {
	s, neg := cutSign(strings.ReplaceAll(text, "_", ""))
	v := new(big.Int)
	var ok bool
	switch {
	case s == "0":
		ok = true
	case strings.HasPrefix(s, "0b"):
		_, ok = v.SetString(s[2:], 2)
	case strings.HasPrefix(s, "0x"):
		_, ok = v.SetString(s[2:], 16)
	case strings.HasPrefix(s, "0"):
		_, ok = v.SetString(s, 8)
	case strings.Contains(s, ":"):
		base := big.NewInt(1)
		parts := strings.Split(s, ":")
		ok = true
		for i := len(parts) - 1; i >= 0 && ok; i-- {
			d, good := new(big.Int).SetString(parts[i], 10)
			ok = good
			if ok {
				v.Add(v, d.Mul(d, base))
				base.Mul(base, big.NewInt(60))
			}
		}
	default:
		_, ok = v.SetString(s, 10)
	}
	if !ok {
		return nil, fmt.Errorf("not an int: %q", text)
	}
	if neg {
		v.Neg(v)
	}
	if v.IsInt64() {
		return v.Int64(), nil
	}
	return v, nil
}

// pyFloatValue builds a float as PyYAML's construct_yaml_float does.
func pyFloatValue(text string) (float64, error) {
	s, neg := cutSign(strings.ToLower(strings.ReplaceAll(text, "_", "")))
	sign := 1.0
	if neg {
		sign = -1
	}
	switch {
	case s == ".inf":
		return sign * math.Inf(1), nil
	case s == ".nan":
		return math.NaN(), nil
	case strings.Contains(s, ":"):
		parts := strings.Split(s, ":")
		base, v := 1.0, 0.0
		for i := len(parts) - 1; i >= 0; i-- {
			d, err := strconv.ParseFloat(parts[i], 64)
			if err != nil {
				return 0, err
			}
			v += d * base
			base *= 60
		}
		return sign * v, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, err
	}
	return sign * v, nil
}

func cutSign(s string) (rest string, negative bool) {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		return s[1:], s[0] == '-'
	}
	return s, false
}
