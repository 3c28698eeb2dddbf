package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// setting binds one value to a flag and to environment variables: the flag
// wins, then the first variable that is set, then the default.
type setting struct {
	flag  string
	env   []string // first is the documented name; the rest are EG's fallbacks
	usage string
	value flag.Value
	def   string
	// docDef, when set, stands for def in the documentation: the default
	// depends on the machine (host name, user, home), and the docs say how.
	docDef string
}

// settings is the set of one subcommand.
type settings struct {
	fs   *flag.FlagSet
	list []*setting
	// flagged holds the settings given as flags, once parsed.
	flagged map[string]bool
}

func newSettings(name string, stderr io.Writer) *settings {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &settings{fs: fs}
}

func (s *settings) add(v flag.Value, name, usage string, env ...string) {
	s.fs.Var(v, name, usage)
	s.list = append(s.list, &setting{flag: name, env: env, usage: usage, value: v, def: v.String()})
}

func (s *settings) String(p *string, name, def, usage string, env ...string) {
	*p = def
	s.add((*stringValue)(p), name, usage, env...)
}

func (s *settings) Int(p *int, name string, def int, usage string, env ...string) {
	*p = def
	s.add((*intValue)(p), name, usage, env...)
}

func (s *settings) Bool(p *bool, name string, def bool, usage string, env ...string) {
	*p = def
	s.add((*boolValue)(p), name, usage, env...)
}

func (s *settings) Seconds(p *time.Duration, name string, def time.Duration, usage string, env ...string) {
	*p = def
	s.add((*secondsValue)(p), name, usage, env...)
}

func (s *settings) List(p *[]string, name string, def []string, usage string, env ...string) {
	*p = def
	s.add((*listValue)(p), name, usage, env...)
}

func (s *settings) Ints(p *[]int, name string, def []int, usage string, env ...string) {
	*p = def
	s.add((*intsValue)(p), name, usage, env...)
}

func (s *settings) Counts(p *map[string]int, name, usage string, env ...string) {
	*p = map[string]int{}
	s.add((*countsValue)(p), name, usage, env...)
}

// describeDefault says how the default of a setting is found, for a
// default that depends on the machine it runs on.
func (s *settings) describeDefault(name, text string) {
	for _, st := range s.list {
		if st.flag == name {
			st.docDef = text
			return
		}
	}
	panic("describeDefault: no setting --" + name)
}

// parse reads flags, then fills what no flag set from the environment.
func (s *settings) parse(args []string, lookupEnv func(string) (string, bool)) error {
	s.fs.Usage = func() { s.usage(s.fs.Output()) }
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", s.fs.Arg(0))
	}
	s.flagged = map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { s.flagged[f.Name] = true })
	for _, st := range s.list {
		if s.flagged[st.flag] {
			continue
		}
		for _, name := range st.env {
			if v, ok := lookupEnv(name); ok {
				if err := st.value.Set(v); err != nil {
					return fmt.Errorf("%s=%q: %w", name, v, err)
				}
				break
			}
		}
	}
	return nil
}

// load parses args and the environment for a subcommand. When it returns
// false the subcommand exits with code: 0 after --help, 2 after an error,
// which it has reported on stderr.
func (s *settings) load(args []string) (code int, ok bool) {
	err := s.parse(args, os.LookupEnv)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		return 0, false
	}
	fmt.Fprintf(s.fs.Output(), "kernelgate %s: %v\n", s.fs.Name(), err)
	return 2, false
}

// usage lists every setting with its variable, default and meaning.
func (s *settings) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: kernelgate %s [flags]\n\nEvery flag can also be set by its environment variable; the flag wins.\n\n", s.fs.Name())
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "FLAG\tENVIRONMENT\tDEFAULT\tMEANING")
	for _, st := range s.list {
		def := st.def
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(tw, "--%s\t%s\t%s\t%s\n", st.flag, strings.Join(st.env, ", "), def, st.usage)
	}
	tw.Flush()
}

type stringValue string

func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }
func (v *stringValue) String() string     { return string(*v) }

type intValue int

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not an integer")
	}
	*v = intValue(n)
	return nil
}
func (v *intValue) String() string { return strconv.Itoa(int(*v)) }

type boolValue bool

// Set accepts what EG's env readers accept: true/false in any case, 1/0.
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(strings.ToLower(strings.TrimSpace(s)))
	if err != nil {
		return errors.New("not true or false")
	}
	*v = boolValue(b)
	return nil
}
func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }

// secondsValue takes seconds as EG writes them ("30", "2.5") or a Go
// duration ("30s", "500ms").
type secondsValue time.Duration

func (v *secondsValue) Set(s string) error {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		*v = secondsValue(time.Duration(f * float64(time.Second)))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a number of seconds or a duration")
	}
	*v = secondsValue(d)
	return nil
}
func (v *secondsValue) String() string {
	return strconv.FormatFloat(time.Duration(*v).Seconds(), 'f', -1, 64)
}

// listValue is a comma-separated list.
type listValue []string

func (v *listValue) Set(s string) error {
	*v = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*v = append(*v, p)
		}
	}
	return nil
}
func (v *listValue) String() string { return strings.Join(*v, ",") }

// intsValue is a comma-separated list of integers; one that is not makes
// the setting (and the start) fail, as EG's EG_PROHIBITED_UIDS does.
type intsValue []int

func (v *intsValue) Set(s string) error {
	*v = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("%q is not an integer", p)
		}
		*v = append(*v, n)
	}
	return nil
}

func (v *intsValue) String() string {
	parts := make([]string, len(*v))
	for i, n := range *v {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

// countsValue is a comma-separated list of name=N with N >= 0; names are
// lower-cased as kernelspec names are.
type countsValue map[string]int

func (v *countsValue) Set(s string) error {
	m := map[string]int{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		name, count, ok := strings.Cut(p, "=")
		n, err := strconv.Atoi(strings.TrimSpace(count))
		name = strings.ToLower(strings.TrimSpace(name))
		if !ok || err != nil || n < 0 || name == "" {
			return fmt.Errorf("%q is not name=N with N >= 0", p)
		}
		m[name] = n
	}
	*v = m
	return nil
}

func (v *countsValue) String() string {
	parts := make([]string, 0, len(*v))
	for _, name := range slices.Sorted(maps.Keys(*v)) {
		parts = append(parts, name+"="+strconv.Itoa((*v)[name]))
	}
	return strings.Join(parts, ",")
}
