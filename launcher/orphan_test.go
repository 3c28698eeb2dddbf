package launcher

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

// asLauncher makes this test binary `kernelgate launch` with its arguments.
const asLauncher = "KERNELGATE_TEST_AS_LAUNCHER"

func TestMain(m *testing.M) {
	if os.Getenv(asLauncher) == "1" {
		os.Exit(Main(os.Args[1:], os.Stderr))
	}
	os.Exit(m.Run())
}

// A launcher killed with SIGKILL cannot pass the signal on to its kernel's
// group; the kernel must end with it all the same, not live on unmanaged
// on the host.
func TestKernelEndsWithItsKilledLauncher(t *testing.T) {
	self, err := os.Executable()
	testkit.NoError(t, err)
	cmd := exec.Command(self, "--kernel-id", uuid.NewString(), "--public-key", "unused-without-a-callback",
		"--ip", "127.0.0.1", "--", "sleep", "300")
	cmd.Env = append(os.Environ(), asLauncher+"=1")
	stderr, err := cmd.StderrPipe()
	testkit.NoError(t, err)
	testkit.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	started := regexp.MustCompile(`started \(pid (\d+)\)`)
	lines := bufio.NewScanner(stderr)
	kernel := 0
	for kernel == 0 && lines.Scan() {
		if m := started.FindStringSubmatch(lines.Text()); m != nil {
			kernel, _ = strconv.Atoi(m[1])
		}
	}
	if kernel == 0 {
		t.Fatalf("the launcher never said it started the kernel: %v", lines.Err())
	}
	t.Cleanup(func() { syscall.Kill(kernel, syscall.SIGKILL) })
	testkit.True(t, running(kernel), "the kernel (pid %d) is not running", kernel)

	testkit.NoError(t, cmd.Process.Kill())
	cmd.Wait()
	testkit.Eventually(t, 10*time.Second, func() error {
		if running(kernel) {
			return fmt.Errorf("the kernel (pid %d) outlived its launcher", kernel)
		}
		return nil
	})
}

// running reports whether pid is a live process (not gone, not a zombie).
func running(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}
