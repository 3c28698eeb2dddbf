package kernelspecs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// SearchPath returns the directories searched for kernels/<name>, in order
// of precedence: each JUPYTER_PATH entry, the user data dir
// (JUPYTER_DATA_DIR, else ~/.local/share/jupyter), then /usr/local/share/jupyter
// and /usr/share/jupyter.
func SearchPath() []string {
	var dirs []string
	for _, p := range filepath.SplitList(os.Getenv("JUPYTER_PATH")) {
		if p != "" {
			dirs = append(dirs, p)
		}
	}
	if d := os.Getenv("JUPYTER_DATA_DIR"); d != "" {
		dirs = append(dirs, d)
	} else if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".local", "share", "jupyter"))
	}
	return append(dirs, "/usr/local/share/jupyter", "/usr/share/jupyter")
}

// Problem is a kernelspec directory that could not be loaded.
type Problem struct {
	Dir string
	Err error
}

// ErrTransient reports a discovery that met a failure that passes (the
// process is out of file descriptors or memory for a moment): its result
// is incomplete and must not replace a complete one.
var ErrTransient = errors.New("kernelspec discovery failed for a moment")

// Discover loads every kernelspec under the kernels/ folder of each
// directory in path. The first directory that has a name wins. Specs that
// fail to load are skipped and reported as problems; a failure that passes
// (see ErrTransient) is returned as the error.
func Discover(path []string) (map[string]Spec, []Problem, error) {
	specs := make(map[string]Spec)
	var problems []Problem
	for _, root := range path {
		kernels := filepath.Join(root, "kernels")
		entries, err := os.ReadDir(kernels)
		if transient(err) {
			return nil, nil, fmt.Errorf("%w: %w", ErrTransient, err)
		}
		if err != nil {
			continue
		}
		for _, e := range entries {
			name := strings.ToLower(e.Name())
			if _, seen := specs[name]; seen || !validName(name) {
				continue
			}
			dir := filepath.Join(kernels, e.Name())
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				continue
			}
			s, err := Load(name, dir)
			if transient(err) {
				return nil, nil, fmt.Errorf("%w: %w", ErrTransient, err)
			}
			if err != nil {
				problems = append(problems, Problem{Dir: dir, Err: err})
				continue
			}
			specs[name] = s
		}
	}
	return specs, problems, nil
}

// transient reports file-system errors that say nothing about the files:
// the process or the system is short of descriptors or memory.
func transient(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.EINTR)
}

// validName reports whether name is a kernelspec name Jupyter accepts in
// URLs: letters, digits, '.', '-', '_'.
func validName(name string) bool {
	if name == "" || name == "." || name == ".." {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
