package podtemplate

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// yamlSafe is EG's yaml_safe filter: a str becomes a double-quoted YAML
// scalar, a list or dict a YAML flow collection, anything else its YAML
// scalar, all as PyYAML's yaml.dump(value, width=10000) writes them (the
// same escapes, key order, quoting choices and line folding), so the text
// can only ever be read back as the one value it came from.
func yamlSafe(v any) (string, error) {
	e := emitter{whitespace: true, indention: true, indent: -1}
	switch v := v.(type) {
	case nil:
		// gonja hands an undefined variable over as nil, and EG's templates
		// are never given None at the top level.
		return "", ErrUndefined
	case string:
		e.increaseIndent()
		e.writeDoubleQuoted(pyRunes(v), true)
		return e.out.String(), nil
	case List, Mapping:
		if err := e.node(v, false); err != nil {
			return "", err
		}
		return e.out.String(), nil
	}
	return scalarText(v)
}

// The rest of this file follows PyYAML's Emitter (yaml/emitter.py) for
// the events yaml.dump produces from plain data in flow style, with
// width 10000, indent 2, no unicode output and "\n" line breaks.

const (
	bestWidth  = 10000
	bestIndent = 2
	// maxSimpleKey is the length from which a key is written as "? key".
	maxSimpleKey = 128
)

type emitter struct {
	out        strings.Builder
	column     int
	whitespace bool
	indention  bool
	indent     int // -1 for PyYAML's None
	indents    []int
}

func (e *emitter) increaseIndent() {
	e.indents = append(e.indents, e.indent)
	if e.indent < 0 {
		e.indent = bestIndent
	} else {
		e.indent += bestIndent
	}
}

func (e *emitter) popIndent() {
	e.indent = e.indents[len(e.indents)-1]
	e.indents = e.indents[:len(e.indents)-1]
}

func (e *emitter) write(s string) {
	e.column += len(s)
	e.out.WriteString(s)
}

func (e *emitter) writeIndicator(indicator string, needWhitespace, whitespace bool) {
	if !e.whitespace && needWhitespace {
		indicator = " " + indicator
	}
	e.whitespace = whitespace
	e.indention = false
	e.write(indicator)
}

func (e *emitter) writeIndent() {
	indent := max(e.indent, 0)
	if !e.indention || e.column > indent || (e.column == indent && !e.whitespace) {
		e.writeLineBreak()
	}
	if e.column < indent {
		e.whitespace = true
		e.write(strings.Repeat(" ", indent-e.column))
	}
}

func (e *emitter) writeLineBreak() {
	e.out.WriteByte('\n')
	e.whitespace = true
	e.indention = true
	e.column = 0
}

// node writes one value inside a flow collection (or, for a collection,
// at the root).
func (e *emitter) node(v any, simpleKey bool) error {
	switch v := v.(type) {
	case List:
		e.writeIndicator("[", true, true)
		e.increaseIndent()
		for i, item := range v {
			if i > 0 {
				e.writeIndicator(",", false, false)
			}
			if e.column > bestWidth {
				e.writeIndent()
			}
			if err := e.node(item, false); err != nil {
				return err
			}
		}
		e.popIndent()
		e.writeIndicator("]", false, false)
		return nil
	case Mapping:
		e.writeIndicator("{", true, true)
		e.increaseIndent()
		for i, k := range v.sortedKeys() {
			if i > 0 {
				e.writeIndicator(",", false, false)
			}
			if e.column > bestWidth {
				e.writeIndent()
			}
			if n := len(pyRunes(k)); n > 0 && n < maxSimpleKey && !isMultiline(k) {
				e.scalar(k, true)
				e.writeIndicator(":", false, false)
			} else {
				e.writeIndicator("?", true, false)
				e.scalar(k, false)
				if e.column > bestWidth {
					e.writeIndent()
				}
				e.writeIndicator(":", true, false)
			}
			if err := e.node(v[k], false); err != nil {
				return err
			}
		}
		e.popIndent()
		e.writeIndicator("}", false, false)
		return nil
	case string:
		e.scalar(v, simpleKey)
		return nil
	}
	text, err := scalarText(v)
	if err != nil {
		return err
	}
	e.increaseIndent()
	e.writePlain([]rune(text), !simpleKey)
	e.popIndent()
	return nil
}

// scalarText is PyYAML's plain text for a scalar that is not a str; every
// such text resolves back to its own type, so it is always written plain.
func scalarText(v any) (string, error) {
	switch v := v.(type) {
	case bool:
		if v {
			return "true", nil
		}
		return "false", nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case *big.Int:
		return v.String(), nil
	case float64:
		switch {
		case math.IsNaN(v):
			return ".nan", nil
		case math.IsInf(v, 1):
			return ".inf", nil
		case math.IsInf(v, -1):
			return "-.inf", nil
		}
		text := strings.ToLower(pyFloat(v))
		if !strings.Contains(text, ".") && strings.Contains(text, "e") {
			text = strings.Replace(text, "e", ".0e", 1)
		}
		return text, nil
	}
	if v == nil {
		return "null", nil
	}
	return "", fmt.Errorf("%w: yaml_safe cannot write a %T", ErrTemplate, v)
}

func isMultiline(s string) bool { return strings.ContainsAny(s, "\n\u0085\u2028\u2029") }

// scalar writes a str in the style PyYAML chooses for it in a flow
// collection: plain when that reads back as the same str, else single
// quotes, else double quotes.
func (e *emitter) scalar(s string, simpleKey bool) {
	text := pyRunes(s)
	a := analyze(text)
	e.increaseIndent()
	split := !simpleKey
	switch {
	case plainTag(s) == tagStr && a.flowPlain && !(simpleKey && (a.empty || a.multiline)):
		e.writePlain(text, split)
	case a.singleQuoted && !(simpleKey && a.multiline):
		e.writeSingleQuoted(text, split)
	default:
		e.writeDoubleQuoted(text, split)
	}
	e.popIndent()
}

// analysis is the part of PyYAML's ScalarAnalysis that flow style uses.
type analysis struct {
	empty, multiline, flowPlain, singleQuoted bool
}

func isBreak(r rune) bool { return r == '\n' || r == 0x85 || r == 0x2028 || r == 0x2029 }

func isSpaceOrBreak(r rune) bool { return r == 0 || r == ' ' || r == '\t' || r == '\r' || isBreak(r) }

func analyze(text []rune) analysis {
	if len(text) == 0 {
		return analysis{empty: true, singleQuoted: true}
	}
	var flowIndicators, lineBreaks, special bool
	var leadingSpace, leadingBreak, trailingSpace, trailingBreak, breakSpace, spaceBreak bool
	if s := string(text[:min(3, len(text))]); s == "---" || s == "..." {
		flowIndicators = true
	}
	precededByWhitespace := true
	followedByWhitespace := len(text) == 1 || isSpaceOrBreak(text[1])
	var previousSpace, previousBreak bool
	for i, ch := range text {
		if i == 0 {
			if strings.ContainsRune("#,[]{}&*!|>'\"%@`?:", ch) || ch == '-' && followedByWhitespace {
				flowIndicators = true
			}
		} else if strings.ContainsRune(",?[]{}:", ch) || ch == '#' && precededByWhitespace {
			flowIndicators = true
		}
		if isBreak(ch) {
			lineBreaks = true
		}
		if !(ch == '\n' || ch >= 0x20 && ch <= 0x7e) {
			// Without allow_unicode every other character is special.
			special = true
		}
		switch {
		case ch == ' ':
			leadingSpace = leadingSpace || i == 0
			trailingSpace = trailingSpace || i == len(text)-1
			breakSpace = breakSpace || previousBreak
			previousSpace, previousBreak = true, false
		case isBreak(ch):
			leadingBreak = leadingBreak || i == 0
			trailingBreak = trailingBreak || i == len(text)-1
			spaceBreak = spaceBreak || previousSpace
			previousSpace, previousBreak = false, true
		default:
			previousSpace, previousBreak = false, false
		}
		precededByWhitespace = isSpaceOrBreak(ch)
		followedByWhitespace = i+2 >= len(text) || isSpaceOrBreak(text[i+2])
	}
	a := analysis{multiline: lineBreaks, flowPlain: true, singleQuoted: true}
	if leadingSpace || leadingBreak || trailingSpace || trailingBreak {
		a.flowPlain = false
	}
	if breakSpace || spaceBreak || special {
		a.flowPlain, a.singleQuoted = false, false
	}
	if lineBreaks || flowIndicators {
		a.flowPlain = false
	}
	return a
}

func (e *emitter) writePlain(text []rune, split bool) {
	if len(text) == 0 {
		return
	}
	if !e.whitespace {
		e.write(" ")
	}
	e.whitespace = false
	e.indention = false
	spaces := false
	start := 0
	for end := 0; end <= len(text); end++ {
		var ch rune = -1
		if end < len(text) {
			ch = text[end]
		}
		if spaces {
			if ch != ' ' {
				if start+1 == end && e.column > bestWidth && split {
					e.writeIndent()
					e.whitespace = false
					e.indention = false
				} else {
					e.write(string(text[start:end]))
				}
				start = end
			}
		} else if ch == -1 || ch == ' ' {
			// Plain scalars never hold line breaks here (analyze forbids
			// them), so only spaces end a run.
			e.write(string(text[start:end]))
			start = end
		}
		spaces = ch == ' '
	}
}

func (e *emitter) writeSingleQuoted(text []rune, split bool) {
	e.writeIndicator("'", true, false)
	spaces, breaks := false, false
	start := 0
	for end := 0; end <= len(text); end++ {
		var ch rune = -1
		if end < len(text) {
			ch = text[end]
		}
		switch {
		case spaces:
			if ch != ' ' {
				if start+1 == end && e.column > bestWidth && split && start != 0 && end != len(text) {
					e.writeIndent()
				} else {
					e.write(string(text[start:end]))
				}
				start = end
			}
		case breaks:
			if ch == -1 || !isBreak(ch) {
				// Only "\n" can be here: the other breaks are special
				// characters, which rule out single quotes.
				if text[start] == '\n' {
					e.writeLineBreak()
				}
				for range text[start:end] {
					e.writeLineBreak()
				}
				e.writeIndent()
				start = end
			}
		default:
			if ch == -1 || ch == ' ' || isBreak(ch) || ch == '\'' {
				if start < end {
					e.write(string(text[start:end]))
					start = end
				}
			}
		}
		if ch == '\'' {
			e.write("''")
			start = end + 1
		}
		if ch != -1 {
			spaces = ch == ' '
			breaks = isBreak(ch)
		}
	}
	e.writeIndicator("'", false, false)
}

var escapes = map[rune]string{
	0: "0", 0x07: "a", 0x08: "b", 0x09: "t", 0x0a: "n", 0x0b: "v", 0x0c: "f",
	0x0d: "r", 0x1b: "e", '"': "\"", '\\': "\\", 0x85: "N", 0xa0: "_",
	0x2028: "L", 0x2029: "P",
}

func (e *emitter) writeDoubleQuoted(text []rune, split bool) {
	e.writeIndicator("\"", true, false)
	start := 0
	for end := 0; end <= len(text); end++ {
		var ch rune = -1
		if end < len(text) {
			ch = text[end]
		}
		if ch == -1 || ch == '"' || ch == '\\' || ch == 0xfeff || ch < 0x20 || ch > 0x7e {
			if start < end {
				e.write(string(text[start:end]))
				start = end
			}
			if ch != -1 {
				switch esc, ok := escapes[ch]; {
				case ok:
					e.write("\\" + esc)
				case ch <= 0xff:
					e.write(fmt.Sprintf("\\x%02X", ch))
				case ch <= 0xffff:
					e.write(fmt.Sprintf("\\u%04X", ch))
				default:
					e.write(fmt.Sprintf("\\U%08X", ch))
				}
				start = end + 1
			}
		}
		if 0 < end && end < len(text)-1 && (ch == ' ' || start >= end) && e.column+(end-start) > bestWidth && split {
			if start < end {
				e.write(string(text[start:end]))
				start = end
			}
			e.write("\\")
			e.writeIndent()
			e.whitespace = false
			e.indention = false
			if text[start] == ' ' {
				e.write("\\")
			}
		}
	}
	e.writeIndicator("\"", false, false)
}
