package podtemplate

import (
	"fmt"
	"maps"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The values a template sees are those EG's launchers hand to jinja2:
// strings, and for KERNEL_VOLUMES and KERNEL_VOLUME_MOUNTS what PyYAML's
// safe_load builds (lists, dicts, str, int, float, bool, None). They are
// modelled here so that printing them ({{ volume }}, as EG's documented
// templates did before yaml_safe existed) gives Python's repr and dumping
// them (yaml_safe) gives PyYAML's output: nil is None, int64 or *big.Int is
// int (Python's are unbounded), float64 is float, List is list and Mapping
// is dict.

// List is a Python list.
type List []any

// String returns Python's repr of the list, which is what jinja2 prints.
func (l List) String() string {
	var b strings.Builder
	writeRepr(&b, l)
	return b.String()
}

// Mapping is a Python dict with string keys. It is a Go map so that the
// engine's dict operations (iteration, length, in, items(), tojson, …)
// work on it; Python keeps the order keys were written in, a Go map
// cannot, so a printed Mapping lists its keys sorted.
type Mapping map[string]any

// String returns Python's repr of the dict, keys sorted, which is what
// jinja2 prints but for the order.
func (m Mapping) String() string {
	var b strings.Builder
	writeRepr(&b, m)
	return b.String()
}

// sortedKeys returns m's keys in Python's order for str: by code point.
func (m Mapping) sortedKeys() []string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int { return slices.Compare(pyRunes(a), pyRunes(b)) })
	return keys
}

// writeRepr writes Python's repr of v.
func writeRepr(b *strings.Builder, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if v {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case *big.Int:
		b.WriteString(v.String())
	case float64:
		switch {
		case math.IsNaN(v):
			b.WriteString("nan")
		case math.IsInf(v, 1):
			b.WriteString("inf")
		case math.IsInf(v, -1):
			b.WriteString("-inf")
		default:
			b.WriteString(pyFloat(v))
		}
	case string:
		writeStrRepr(b, v)
	case List:
		b.WriteByte('[')
		for i, item := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, item)
		}
		b.WriteByte(']')
	case Mapping:
		b.WriteByte('{')
		for i, k := range v.sortedKeys() {
			if i > 0 {
				b.WriteString(", ")
			}
			writeStrRepr(b, k)
			b.WriteString(": ")
			writeRepr(b, v[k])
		}
		b.WriteByte('}')
	default:
		fmt.Fprint(b, v)
	}
}

// writeStrRepr writes Python's repr of a str: single quotes unless the text
// has a single quote and no double quote, printable characters as they are,
// the rest escaped with lower-case hex.
func writeStrRepr(b *strings.Builder, s string) {
	quote := '\''
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		quote = '"'
	}
	b.WriteRune(quote)
	for _, r := range pyRunes(s) {
		switch {
		case r == quote || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < ' ' || r == 0x7f:
			fmt.Fprintf(b, `\x%02x`, r)
		case r < 0x7f:
			b.WriteRune(r)
		case isSurrogate(r) || !unicode.IsPrint(r):
			switch {
			case r <= 0xff:
				fmt.Fprintf(b, `\x%02x`, r)
			case r <= 0xffff:
				fmt.Fprintf(b, `\u%04x`, r)
			default:
				fmt.Fprintf(b, `\U%08x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteRune(quote)
}

// pyRunes returns the characters Python sees in s. Python decodes an
// environment with surrogateescape, so a byte that is not UTF-8 becomes the
// lone surrogate U+DC80+byte rather than U+FFFD.
func pyRunes(s string) []rune {
	runes := make([]rune, 0, len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			r = 0xdc00 | rune(s[i])
		}
		runes = append(runes, r)
		i += size
	}
	return runes
}

func isSurrogate(r rune) bool { return r >= 0xd800 && r <= 0xdfff }

// pyFloat returns Python's repr of a finite float: the shortest digits that
// round-trip, in positional notation when the decimal exponent is in
// [-4, 16) (with ".0" when there is no fraction) and in scientific notation
// with a signed, at least two-digit exponent otherwise.
func pyFloat(f float64) string {
	sci := strconv.FormatFloat(f, 'e', -1, 64) // -d.ddde±dd
	mant, expText, _ := strings.Cut(sci, "e")
	exp, _ := strconv.Atoi(expText)
	sign := ""
	if strings.HasPrefix(mant, "-") {
		sign, mant = "-", mant[1:]
	}
	digits := strings.Replace(mant, ".", "", 1)
	if exp < -4 || exp >= 16 {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		es := "+"
		if exp < 0 {
			es, exp = "-", -exp
		}
		return fmt.Sprintf("%s%se%s%02d", sign, m, es, exp)
	}
	if exp < 0 {
		return sign + "0." + strings.Repeat("0", -exp-1) + digits
	}
	if len(digits) <= exp+1 {
		return sign + digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
	}
	return sign + digits[:exp+1] + "." + digits[exp+1:]
}
