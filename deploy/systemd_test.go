package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/testkit"
)

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("systemd-analyze")
	if err != nil {
		skipOrFail(t, requireDeployEnv, "systemd-analyze is not installed (Debian's systemd package; `make test` installs it)")
	}
	return path
}

// unitCopy writes the unit with ExecStart pointing at a freshly built
// binary (verify checks that the program exists and is executable).
func unitCopy(t *testing.T, edit func(string) string) string {
	unit, err := os.ReadFile("systemd/kernelgate.service")
	testkit.NoError(t, err)
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/kernelgate", testkit.KernelgateBinary(t))
	if edit != nil {
		text = edit(text)
	}
	path := filepath.Join(t.TempDir(), "kernelgate.service")
	testkit.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

// TestSystemdUnit checks deploy/systemd/kernelgate.service with systemd's
// own tools: `systemd-analyze verify` reports nothing (it warns of unknown
// keys and bad values, but exits 0, so any output fails the test), and the
// offline security assessment keeps the hardening.
func TestSystemdUnit(t *testing.T) {
	analyze := systemdAnalyze(t)
	verify := func(path string) string {
		out, err := exec.Command(analyze, "verify", path).CombinedOutput()
		if err != nil && len(out) == 0 {
			t.Skipf("systemd-analyze verify cannot run here: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	// That it checks at all here: a mistyped key and a bad value are reported.
	bad := verify(unitCopy(t, func(s string) string {
		return strings.Replace(strings.Replace(s, "ProtectSystem=", "ProtectSystm=", 1), "NoNewPrivileges=yes", "NoNewPrivileges=maybe", 1)
	}))
	if !strings.Contains(bad, "ProtectSystm") || !strings.Contains(bad, "maybe") {
		t.Skipf("systemd-analyze verify does not report a broken unit in this container, so it cannot check ours: %q", bad)
	}
	testkit.Equal(t, verify(unitCopy(t, nil)), "")

	out, err := exec.Command(analyze, "security", "--offline=yes", unitCopy(t, nil)).CombinedOutput()
	if err != nil && !bytes.Contains(out, []byte("Overall exposure level")) {
		t.Skipf("systemd-analyze security --offline cannot run here: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for kernelgate\.service: ([0-9.]+)`).FindSubmatch(out)
	testkit.True(t, m != nil, "no exposure level in:\n%s", out)
	level, err := strconv.ParseFloat(string(m[1]), 64)
	testkit.NoError(t, err)
	t.Logf("systemd-analyze security: exposure %.1f", level)
	// 5.2 now; what is left is what kernels need (network, their own
	// processes and files, arbitrary system calls). Losing a protection
	// shows as a higher figure.
	testkit.True(t, level <= 5.5, "exposure level %.1f: the unit has lost hardening\n%s", level, out)
	for _, want := range []string{"✓ NoNewPrivileges=", "✓ PrivateTmp=", "✓ ProtectSystem=", "✓ PrivateDevices="} {
		testkit.True(t, bytes.Contains(out, []byte(want)), "security assessment lacks %q", want)
	}
}

// TestSystemdEnvExample checks deploy/systemd/kernelgate.env: each variable
// it sets or shows commented out is a setting of kernelgate serve (or
// Jupyter's JUPYTER_PATH), and the gateway starts with the ones it sets, as
// the unit would start it, and stops on SIGTERM.
func TestSystemdEnvExample(t *testing.T) {
	env, err := os.ReadFile("systemd/kernelgate.env")
	testkit.NoError(t, err)
	settings, err := os.ReadFile("../docs/configuration.md")
	testkit.NoError(t, err)
	var set []string
	sc := bufio.NewScanner(bytes.NewReader(env))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		commented := strings.HasPrefix(line, "#")
		name, value, ok := strings.Cut(strings.TrimPrefix(line, "#"), "=")
		if !ok || !regexp.MustCompile(`^[A-Z][A-Z0-9_]+$`).MatchString(name) {
			continue
		}
		testkit.True(t, name == "JUPYTER_PATH" || bytes.Contains(settings, []byte("`"+name+"`")),
			"kernelgate.env names %s, which is no setting in docs/configuration.md", name)
		if !commented {
			set = append(set, name+"="+value)
		}
	}
	testkit.True(t, len(set) >= 5, "kernelgate.env sets only %v", set)

	dir := t.TempDir()
	cmd := exec.Command(testkit.KernelgateBinary(t), "serve", "--port", "0", "--metrics-addr", "127.0.0.1:0", "--ip", "127.0.0.1",
		"--runtime-dir", filepath.Join(dir, "run"), "--persistence-root", filepath.Join(dir, "state"))
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + dir}, set...)
	var out testkit.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	testkit.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	testkit.Eventually(t, 20*time.Second, func() error {
		select {
		case err := <-done:
			t.Fatalf("kernelgate serve with kernelgate.env exited: %v\n%s", err, out.String())
		default:
		}
		if !strings.Contains(out.String(), "is available at") {
			return errNotYet
		}
		return nil
	})
	testkit.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		testkit.True(t, err == nil, "kernelgate serve ended with %v after SIGTERM\n%s", err, out.String())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("kernelgate serve did not stop on SIGTERM")
	}
}

var errNotYet = errors.New("not yet")
