package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// BuildKernelgate builds cmd/kernelgate once per test binary, for tests
// that run it as a process of its own (the caller removes its directory
// when done, if it cares).
var BuildKernelgate = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "kernelgate-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "kernelgate")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/kernelgate/kernelgate/cmd/kernelgate")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", &buildError{err, out}
	}
	return bin, nil
})

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
