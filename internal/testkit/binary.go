package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// kernelgate is the binary BuildKernelgate builds, once per test binary.
var kernelgate struct {
	once sync.Once
	path string
	err  error
}

// BuildKernelgate builds cmd/kernelgate, once per test binary, for tests
// that run it as a process of its own. A TestMain that lets it build
// calls RemoveKernelgate after its tests.
func BuildKernelgate() (string, error) {
	kernelgate.once.Do(func() {
		dir, err := os.MkdirTemp("", "kernelgate-bin-")
		if err != nil {
			kernelgate.err = err
			return
		}
		bin := filepath.Join(dir, "kernelgate")
		cmd := exec.Command("go", "build", "-o", bin, "github.com/kernelgate/kernelgate/cmd/kernelgate")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			kernelgate.err = &buildError{err, out}
			return
		}
		kernelgate.path = bin
	})
	return kernelgate.path, kernelgate.err
}

// RemoveKernelgate removes what BuildKernelgate built, if anything; no
// build follows it.
func RemoveKernelgate() {
	kernelgate.once.Do(func() {}) // nothing is built after this
	if kernelgate.path != "" {
		os.RemoveAll(filepath.Dir(kernelgate.path))
	}
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string {
	return "go build ./cmd/kernelgate: " + e.err.Error() + "\n" + string(e.out)
}

// KernelgateBinary is BuildKernelgate's binary, or the test fails.
func KernelgateBinary(t testing.TB) string {
	t.Helper()
	bin, err := BuildKernelgate()
	NoError(t, err)
	return bin
}
