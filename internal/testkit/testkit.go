// Package testkit holds small helpers shared by kernelgate's tests: generic
// assertions, polling for eventual conditions, and starting real ipykernel
// processes.
package testkit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NoError fails the test at once if err is not nil.
func NoError(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

// ErrorIs fails the test at once unless errors.Is(err, target).
func ErrorIs(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
}

// Equal fails the test at once unless got equals want.
func Equal[T any](t testing.TB, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, want %#v", got, want)
	}
}

// True fails the test at once unless cond holds.
func True(t testing.TB, cond bool, format string, args ...any) {
	t.Helper()
	if !cond {
		t.Fatalf(format, args...)
	}
}

// Eventually polls f every interval until it returns nil or total has
// passed, then fails the test with f's last error.
func Eventually(t testing.TB, total time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", total, err)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// Python returns the interpreter with Debian's ipykernel: /usr/bin/python3,
// never a pyenv python that comes first on PATH. KERNELGATE_TEST_PYTHON
// overrides it.
func Python() string {
	if p := os.Getenv("KERNELGATE_TEST_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// RequireIPyKernel fails the test unless Debian's ipykernel is importable;
// `make test` installs it, so its absence is a broken setup, not a skip.
// Under -short, tests with Python kernels are skipped: that mode is for the
// in-process tests that take seconds.
func RequireIPyKernel(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no Python kernels")
	}
	if out, err := exec.Command(Python(), "-c", "import ipykernel").CombinedOutput(); err != nil {
		t.Fatalf("ipykernel is not installed for %s (run `make deps`): %v\n%s", Python(), err, out)
	}
}

// Process is a kernel process started by a test.
type Process struct {
	Cmd *exec.Cmd
	// Done is closed when the process has exited.
	Done <-chan struct{}
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.Done:
		return true
	default:
		return false
	}
}

// StartIPyKernel runs ipykernel on the connection file at connFile, in its own
// process group. The process group is killed when the test ends.
func StartIPyKernel(t testing.TB, connFile string) *Process {
	t.Helper()
	RequireIPyKernel(t)
	cmd := exec.Command(Python(), "-m", "ipykernel_launcher", "-f", connFile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Dir = filepath.Dir(connFile)
	cmd.Env = append(os.Environ(), "PYDEVD_DISABLE_FILE_VALIDATION=1")
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	return &Process{Cmd: cmd, Done: done}
}

// Recv reads from ch until it yields a value or d passes.
func Recv[T any](t testing.TB, ch <-chan T, d time.Duration) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		var zero T
		t.Fatalf("nothing received within %v", d)
		return zero
	}
}

// ProcessState returns the state letter of pid from /proc (R, S, T, Z, …),
// or "" when the process is gone.
func ProcessState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return ""
}

// Stop sends SIGSTOP to pid's process group and waits until pid is stopped.
func Stop(t testing.TB, pid int) {
	t.Helper()
	NoError(t, syscall.Kill(-pid, syscall.SIGSTOP))
	Eventually(t, 5*time.Second, func() error {
		if st := ProcessState(pid); st != "T" {
			return fmt.Errorf("process %d is in state %q, not stopped", pid, st)
		}
		return nil
	})
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGCONT) })
}

// PortRange gives each test package that starts kernels a range of kernel
// ports of its own. `go test ./...` runs packages as parallel processes, and
// a port allocator only knows its own process: two processes could hand the
// same port to two kernels, and a client would then dial the other kernel's
// socket (seen as a stdin that never delivers input_request).
func PortRange(pkg string) (low, high int) {
	switch pkg {
	case "zmq":
		return 20000, 21999
	case "actors":
		return 22000, 23999
	case "http":
		return 24000, 26999
	case "synthkernel":
		return 27000, 27999
	case "bench":
		return 28000, 29999
	case "cmd":
		return 30000, 31999
	case "ports":
		return 32000, 32500
	case "kubernetes":
		return 32501, 32767
	}
	panic("testkit: no port range for package " + pkg) // a test setup error
}

// KernelProcesses lists the processes whose environment holds KERNEL_ID=id:
// whatever is left of a kernel, its launcher and their children, on this
// machine (the tests' "remote" hosts are this machine too).
func KernelProcesses(id string) []string {
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		env, err := os.ReadFile(d + "/environ")
		if err == nil && strings.Contains("\x00"+string(env), "\x00KERNEL_ID="+id+"\x00") {
			out = append(out, filepath.Base(d))
		}
	}
	return out
}

// NoKernelProcesses waits up to d for every process of kernel id to be gone.
func NoKernelProcesses(t testing.TB, id string, d time.Duration) {
	t.Helper()
	Eventually(t, d, func() error {
		if pids := KernelProcesses(id); len(pids) > 0 {
			return fmt.Errorf("kernel %s still has processes %v", id, pids)
		}
		return nil
	})
}

// Buffer collects what many goroutines write (a child process's output, a
// logger's lines) for the test to read.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
