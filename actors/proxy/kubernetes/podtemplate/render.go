package podtemplate

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strings"

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
	Filters:           filters(),
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
func Parse(source string) (_ *Template, err error) {
	defer recoverEngine(&err)
	loader, err := loaders.NewMemoryLoader(map[string]string{templatePath: keepSpacesBetweenTags(source)})
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

// recoverEngine turns a panic of the engine into an error: it panics on
// some templates and values (a Go struct in a for loop did), and an
// operator's template must not bring the gateway down.
func recoverEngine(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: the engine failed: %v", ErrTemplate, r)
	}
}

// keepSpacesBetweenTags marks with "+" each block or comment tag that
// follows another tag on the same line with only spaces or tabs between
// them. jinja2's lstrip_blocks strips whitespace only from the start of a
// line, so "{% endif %} {% if y %}" keeps its space; gonja would strip it,
// and "+" is the tag's own way of saying "do not".
func keepSpacesBetweenTags(src string) string {
	var b strings.Builder
	b.Grow(len(src))
	for i := 0; ; {
		open := indexTagOpen(src, i)
		if open < 0 {
			b.WriteString(src[i:])
			return b.String()
		}
		end := tagEnd(src, open)
		if end < 0 {
			b.WriteString(src[i:])
			return b.String()
		}
		b.WriteString(src[i:end])
		i = end
		spaces := end
		for spaces < len(src) && (src[spaces] == ' ' || src[spaces] == '\t') {
			spaces++
		}
		if spaces > end && spaces+2 < len(src) && (strings.HasPrefix(src[spaces:], "{%") || strings.HasPrefix(src[spaces:], "{#")) &&
			src[spaces+2] != '+' && src[spaces+2] != '-' {
			b.WriteString(src[end : spaces+2])
			b.WriteByte('+')
			i = spaces + 2
		}
	}
}

// indexTagOpen returns the index of the next "{{", "{%" or "{#" from i.
func indexTagOpen(src string, i int) int {
	for {
		j := strings.IndexByte(src[i:], '{')
		if j < 0 || i+j+1 >= len(src) {
			return -1
		}
		if c := src[i+j+1]; c == '{' || c == '%' || c == '#' {
			return i + j
		}
		i += j + 1
	}
}

var (
	rawStart = regexp.MustCompile(`^\{%[-+]?\s*raw\s*[-+]?%\}`)
	rawEnd   = regexp.MustCompile(`\{%[-+]?\s*endraw\s*[-+]?%\}`)
)

// tagEnd returns the index just past the tag that opens at open (past the
// whole raw block for {% raw %}), or -1 if it never closes.
func tagEnd(src string, open int) int {
	closing := "}}"
	switch src[open+1] {
	case '%':
		closing = "%}"
	case '#':
		closing = "#}"
	}
	if rawStart.MatchString(src[open:]) {
		loc := rawEnd.FindStringIndex(src[open:])
		if loc == nil {
			return -1
		}
		return open + loc[1]
	}
	for i := open + 2; i < len(src); i++ {
		switch c := src[i]; {
		case strings.HasPrefix(src[i:], closing):
			return i + len(closing)
		case (c == '"' || c == '\'') && closing != "#}":
			// A string literal in an expression may hold the closing
			// delimiter.
			for i++; i < len(src) && src[i] != c; i++ {
				if src[i] == '\\' {
					i++
				}
			}
		}
	}
	return -1
}

// Render renders the template with vars (from PodVars or
// CustomResourceVars), as EG's launcher does before it parses the result.
func (t *Template) Render(vars map[string]any) (_ []byte, err error) {
	defer recoverEngine(&err)
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

// hazardWords finds, in a template's text, the hazards it names.
var hazardWords = regexp.MustCompile(`\b(?:` + hazardAlternatives() + `)\b`)
