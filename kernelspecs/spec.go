package kernelspecs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Spec is one parsed kernelspec.
type Spec struct {
	// Name is the lower-cased directory name.
	Name string
	// Dir is the kernelspec's directory, its resource dir.
	Dir string

	Argv          []string
	DisplayName   string
	Language      string
	InterruptMode string // "signal" (default) or "message"
	Env           map[string]string
	// Metadata is kept raw so it is served exactly as written.
	Metadata json.RawMessage
	// ProcessProxy is metadata.process_proxy: which process proxy launches
	// the kernel and its configuration.
	ProcessProxy ProcessProxy
	// PoolSize is metadata.kernelgate.pool_size: how many warm kernels of
	// this spec to keep ready (the gateway's own setting overrides it).
	PoolSize int
	// Resources are the files served under /kernelspecs/<name>/: logos,
	// kernel.js and kernel.css.
	Resources []string
}

// ProcessProxy is a kernelspec's metadata.process_proxy.
type ProcessProxy struct {
	ClassName string         `json:"class_name"`
	Config    map[string]any `json:"config"`
}

// ErrInvalid reports a kernel.json that cannot be used.
var ErrInvalid = errors.New("kernelspecs: invalid kernel.json")

// kernelJSON is the file format.
type kernelJSON struct {
	Argv          []string          `json:"argv"`
	DisplayName   string            `json:"display_name"`
	Language      string            `json:"language"`
	InterruptMode string            `json:"interrupt_mode"`
	Env           map[string]string `json:"env"`
	Metadata      json.RawMessage   `json:"metadata"`
}

// Parse parses the content of a kernel.json for the spec named name in dir.
func Parse(name, dir string, data []byte) (Spec, error) {
	var kj kernelJSON
	if err := json.Unmarshal(data, &kj); err != nil {
		return Spec{}, fmt.Errorf("%w: %s: %w", ErrInvalid, name, err)
	}
	if len(kj.Argv) == 0 || kj.Argv[0] == "" {
		return Spec{}, fmt.Errorf("%w: %s: argv is empty", ErrInvalid, name)
	}
	switch kj.InterruptMode {
	case "":
		kj.InterruptMode = "signal"
	case "signal", "message":
	default:
		return Spec{}, fmt.Errorf("%w: %s: interrupt_mode %q", ErrInvalid, name, kj.InterruptMode)
	}
	if kj.DisplayName == "" {
		kj.DisplayName = name
	}
	if kj.Env == nil {
		kj.Env = map[string]string{}
	}
	s := Spec{
		Name: name, Dir: dir, Argv: kj.Argv, DisplayName: kj.DisplayName, Language: kj.Language,
		InterruptMode: kj.InterruptMode, Env: kj.Env, Metadata: kj.Metadata,
	}
	if len(s.Metadata) == 0 || string(s.Metadata) == "null" {
		s.Metadata = json.RawMessage("{}")
	}
	var meta struct {
		ProcessProxy *ProcessProxy `json:"process_proxy"`
		Kernelgate   struct {
			PoolSize int `json:"pool_size"`
		} `json:"kernelgate"`
	}
	if err := json.Unmarshal(s.Metadata, &meta); err != nil {
		return Spec{}, fmt.Errorf("%w: %s: metadata: %w", ErrInvalid, name, err)
	}
	if meta.ProcessProxy != nil {
		s.ProcessProxy = *meta.ProcessProxy
	}
	if n := meta.Kernelgate.PoolSize; n < 0 {
		return Spec{}, fmt.Errorf("%w: %s: metadata.kernelgate.pool_size %d is negative", ErrInvalid, name, n)
	}
	s.PoolSize = meta.Kernelgate.PoolSize
	return s, nil
}

// Load reads and parses dir/kernel.json and lists the spec's resources.
func Load(name, dir string) (Spec, error) {
	data, err := os.ReadFile(filepath.Join(dir, "kernel.json"))
	if err != nil {
		return Spec{}, fmt.Errorf("%w: %s: %w", ErrInvalid, name, err)
	}
	s, err := Parse(name, dir, data)
	if err != nil {
		return Spec{}, err
	}
	s.Resources = resources(dir)
	return s, nil
}

// resources lists the files of dir that Jupyter serves as resources.
func resources(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		if strings.HasPrefix(n, "logo-") || n == "kernel.js" || n == "kernel.css" {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// ResourceKey is the key a resource file has in the kernelspec model: the
// file name without extension for logos, the whole name otherwise.
func ResourceKey(file string) string {
	if strings.HasPrefix(file, "logo-") {
		return strings.TrimSuffix(file, filepath.Ext(file))
	}
	return file
}

// ResourcePath returns the path of resource file under the spec's
// directory, or false when file is not one of its resources. Only names the
// spec lists are served, so no path can escape the directory; symlinks are
// resolved and must stay inside it too.
func (s Spec) ResourcePath(file string) (string, bool) {
	found := false
	for _, r := range s.Resources {
		if r == file {
			found = true
			break
		}
	}
	if !found {
		return "", false
	}
	dir, err := filepath.EvalSymlinks(s.Dir)
	if err != nil {
		return "", false
	}
	p, err := filepath.EvalSymlinks(filepath.Join(s.Dir, file))
	if err != nil || !strings.HasPrefix(p, dir+string(filepath.Separator)) {
		return "", false
	}
	return p, true
}
