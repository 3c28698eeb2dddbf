package actors

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/local"
	"github.com/kernelgate/kernelgate/actors/proxy/ports"
	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/kernelspecs"
	"github.com/kernelgate/kernelgate/zmq"
	"github.com/rs/zerolog"
)

// testPorts is shared by every harness of this package, so kernels of one
// test and the next never get the same port.
var testPorts = func() *ports.Allocator {
	low, high := testkit.PortRange("actors")
	return ports.NewAllocator("127.0.0.1", ports.Range{Low: low, High: high}, time.Minute)
}()

// harness is a Gateway over real local kernels with a kernelspec dir of
// its own.
type harness struct {
	t       *testing.T
	g       *Gateway
	runtime string
}

func kernelJSON(argv ...string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = `"` + a + `"`
	}
	return `{"argv":[` + strings.Join(q, ",") + `],"display_name":"Test","language":"python"}`
}

var specs = map[string]string{
	"python3": kernelJSON(testkit.Python(), "-m", "ipykernel_launcher", "-f", "{connection_file}"),
	"msgint":  `{"argv":["` + testkit.Python() + `","-m","ipykernel_launcher","-f","{connection_file}"],"interrupt_mode":"message","language":"python"}`,
	"sleeper": kernelJSON("/bin/sleep", "600"),
	"missing": kernelJSON("/nonexistent/kernel-binary", "{connection_file}"),
	"quitter": kernelJSON("/bin/true"),
	"envdump": `{"argv":["` + testkit.Python() + `","-m","ipykernel_launcher","-f","{connection_file}"],"env":{"FROM_SPEC":"spec-${HOME}","KERNEL_OVERRIDE":"spec"}}`,
}

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	testkit.RequireIPyKernel(t)
	root := t.TempDir()
	for name, body := range specs {
		dir := filepath.Join(root, "kernels", name)
		testkit.NoError(t, os.MkdirAll(dir, 0o755))
		testkit.NoError(t, os.WriteFile(filepath.Join(dir, "kernel.json"), []byte(body), 0o644))
	}
	runtime := filepath.Join(t.TempDir(), "runtime")
	log := zerolog.Nop()
	if testing.Verbose() {
		log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	}
	cfg := Config{
		MaxKernelsPerUser: -1,
		BaseEnvs:          []string{"PATH", "HOME", "LANG"},
		DefaultUsername:   "tester",
		LaunchTimeout:     20 * time.Second,
		ShutdownWait:      2 * time.Second,
		Specs:             kernelspecs.NewCache(kernelspecs.CacheOptions{Path: []string{root}, Default: "python3", Logger: log}),
		Proxies: proxy.NewRegistry(&local.Provisioner{
			Ports: testPorts, RuntimeDir: runtime}),
		Logger: log,
	}
	if mod != nil {
		mod(&cfg)
	}
	g, err := New(cfg)
	testkit.NoError(t, err)
	t.Cleanup(func() { g.Close(30 * time.Second) })
	return &harness{t: t, g: g, runtime: runtime}
}

func (h *harness) start(name string, env map[string]any) Model {
	h.t.Helper()
	m, err := h.g.StartKernel(StartRequest{Name: name, Env: env})
	testkit.NoError(h.t, err)
	return m
}

// waitState polls the kernel's model until it reaches state.
func (h *harness) waitState(id, state string) {
	h.t.Helper()
	testkit.Eventually(h.t, 30*time.Second, func() error {
		m, err := h.g.Kernel(id)
		if err != nil {
			return err
		}
		if m.ExecutionState != state {
			return errors.New("state " + m.ExecutionState)
		}
		return nil
	})
}

// kernelPID finds the kernel's process by its connection file.
func (h *harness) kernelPID(id string) int {
	h.t.Helper()
	var pid int
	testkit.Eventually(h.t, 10*time.Second, func() error {
		pid = findProcess("kernel-" + id + ".json")
		if pid == 0 {
			return errors.New("no process")
		}
		return nil
	})
	return pid
}

func findProcess(arg string) int {
	pids := findProcesses(arg)
	if len(pids) == 0 {
		return 0
	}
	return pids[len(pids)-1]
}

// findProcesses lists the processes whose command line contains arg.
func findProcesses(arg string) []int {
	out, _ := exec.Command("pgrep", "-f", arg).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if p := atoi(f); p > 0 {
			pids = append(pids, p)
		}
	}
	return pids
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func TestStartListShutdown(t *testing.T) {
	defer leaktest.Check(t)()
	h := newHarness(t, nil)
	m := h.start("", nil)
	testkit.Equal(t, m.Name, "python3")
	testkit.Equal(t, m.ExecutionState, StateStarting)
	_, err := time.Parse(LastActivityFormat, m.LastActivity)
	testkit.NoError(t, err)
	testkit.Equal(t, len(m.LastActivity), len("2006-01-02T15:04:05.000000Z"))
	h.waitState(m.ID, StateIdle)
	testkit.Equal(t, len(h.g.Kernels()), 1)
	pid := h.kernelPID(m.ID)

	testkit.NoError(t, h.g.Shutdown(m.ID))
	_, err = h.g.Kernel(m.ID)
	testkit.ErrorIs(t, err, ErrNoSuchKernel)
	testkit.Equal(t, testkit.ProcessState(pid), "")
	entries, _ := os.ReadDir(h.runtime)
	testkit.Equal(t, len(entries), 0)
	testkit.ErrorIs(t, h.g.Shutdown(m.ID), ErrNoSuchKernel)
	testkit.NoError(t, h.g.Close(10*time.Second))
}

func TestConcurrentStartsAllReachIdleAndLeaveNothing(t *testing.T) {
	h := newHarness(t, nil)
	const n = 20
	ids := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := h.g.StartKernel(StartRequest{Name: "python3"})
			if err != nil {
				t.Error(err)
				return
			}
			ids <- m.ID
		}()
	}
	wg.Wait()
	close(ids)
	var all []string
	for id := range ids {
		all = append(all, id)
	}
	testkit.Equal(t, len(all), n)
	for _, id := range all {
		h.waitState(id, StateIdle)
	}
	for _, id := range all {
		wg.Add(1)
		go func() { defer wg.Done(); testkit.NoError(t, h.g.Shutdown(id)) }()
	}
	wg.Wait()
	testkit.Equal(t, len(h.g.Kernels()), 0)
	for _, id := range all {
		testkit.Equal(t, findProcess("kernel-"+id+".json"), 0)
	}
	entries, _ := os.ReadDir(h.runtime)
	testkit.Equal(t, len(entries), 0)
}

func TestLimitsCountStartsInFlight(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  func(*Config)
	}{
		{"global", func(c *Config) { c.MaxKernels = 5 }},
		{"per user", func(c *Config) { c.MaxKernelsPerUser = 5 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			var mu sync.Mutex
			ok, limited := 0, 0
			var wg sync.WaitGroup
			for range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := h.g.StartKernel(StartRequest{Name: "python3", Env: map[string]any{"KERNEL_USERNAME": "alice"}})
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						ok++
					case errors.Is(err, ErrLimit):
						limited++
					}
				}()
			}
			wg.Wait()
			testkit.Equal(t, ok, 5)
			testkit.Equal(t, limited, 45)
			testkit.Equal(t, len(h.g.Kernels()), 5)
		})
	}
}

func TestLaunchFailures(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.LaunchTimeout = 2 * time.Second })
	start := time.Now()
	_, err := h.g.StartKernel(StartRequest{Name: "missing"})
	testkit.ErrorIs(t, err, proxy.ErrLaunch)
	testkit.True(t, time.Since(start) < time.Second, "a missing binary took %v to report", time.Since(start))

	_, err = h.g.StartKernel(StartRequest{Name: "quitter"})
	testkit.ErrorIs(t, err, ErrKernelDied)

	_, err = h.g.StartKernel(StartRequest{Name: "sleeper"})
	testkit.ErrorIs(t, err, ErrLaunchTimeout)
	testkit.Eventually(t, 5*time.Second, func() error {
		if p := findProcess("/bin/sleep 600"); p != 0 {
			return errors.New("sleeper still running")
		}
		return nil
	})
	_, err = h.g.StartKernel(StartRequest{Name: "nope"})
	testkit.ErrorIs(t, err, ErrNoSuchKernelSpec)
	testkit.Equal(t, len(h.g.Kernels()), 0)
	entries, _ := os.ReadDir(h.runtime)
	testkit.Equal(t, len(entries), 0)
}

func TestKilledKernelRestartsThenDies(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RestartLimit = 5 })
	m := h.start("python3", nil)
	h.waitState(m.ID, StateIdle)
	for i := range 5 {
		pid := h.kernelPID(m.ID)
		testkit.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		testkit.Eventually(t, 30*time.Second, func() error {
			if p := findProcess("kernel-" + m.ID + ".json"); p == 0 || p == pid {
				return errors.New("not restarted yet")
			}
			return nil
		})
		h.waitState(m.ID, StateIdle)
		_, err := h.g.Kernel(m.ID)
		testkit.NoError(t, err)
		t.Logf("restart %d ok", i+1)
	}
	testkit.NoError(t, syscall.Kill(h.kernelPID(m.ID), syscall.SIGKILL))
	testkit.Eventually(t, 20*time.Second, func() error {
		if _, err := h.g.Kernel(m.ID); !errors.Is(err, ErrNoSuchKernel) {
			return errors.New("kernel still listed")
		}
		return nil
	})
}

func TestInterruptAndRestart(t *testing.T) {
	for _, spec := range []string{"python3", "msgint"} {
		t.Run(spec, func(t *testing.T) {
			h := newHarness(t, nil)
			m := h.start(spec, nil)
			h.waitState(m.ID, StateIdle)
			testkit.NoError(t, h.g.Interrupt(m.ID))
			oldPID := h.kernelPID(m.ID)
			r, err := h.g.Restart(m.ID)
			testkit.NoError(t, err)
			testkit.Equal(t, r.ID, m.ID)
			testkit.Equal(t, r.ExecutionState, StateIdle)
			testkit.True(t, h.kernelPID(m.ID) != oldPID, "restart kept the old process")
		})
	}
}

func TestEnvRules(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ClientEnvs = []string{"ALLOWED"} })
	for _, tt := range []struct {
		name string
		env  map[string]any
		want error
	}{
		{"non-string", map[string]any{"KERNEL_X": 1}, ErrBadRequest},
		{"dollar", map[string]any{"KERNEL_X": "a$b"}, ErrBadRequest},
		{"backtick", map[string]any{"ALLOWED": "`id`"}, ErrBadRequest},
		{"newline", map[string]any{"KERNEL_X": "a\nb"}, ErrBadRequest},
		{"too long", map[string]any{"KERNEL_X": strings.Repeat("a", 4097)}, ErrBadRequest},
		{"bad id", map[string]any{"KERNEL_ID": "not-a-uuid"}, ErrBadRequest},
		{"uuid v1 id", map[string]any{"KERNEL_ID": "6ba7b810-9dad-11d1-80b4-00c04fd430c8"}, ErrBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.g.StartKernel(StartRequest{Name: "python3", Env: tt.env})
			testkit.ErrorIs(t, err, tt.want)
		})
	}
}

func TestPanicInOneKernelActorDisturbsNoOther(t *testing.T) {
	h := newHarness(t, nil)
	a := h.start("python3", nil)
	b := h.start("python3", nil)
	h.waitState(a.ID, StateIdle)
	ha, err := h.g.handle(a.ID)
	testkit.NoError(t, err)
	h.g.sys.Root.Send(ha.pid, inspect(func(*kernelActor) { panic("boom") }))
	// The panicking actor keeps its state and keeps answering.
	testkit.NoError(t, h.g.Interrupt(a.ID))
	r, err := h.g.Restart(b.ID)
	testkit.NoError(t, err)
	testkit.Equal(t, r.ExecutionState, StateIdle)
	testkit.Equal(t, len(h.g.Kernels()), 2)
}

func TestHungKernelIsKilledAndRestarted(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.HeartbeatInterval, c.HeartbeatTimeout = 200*time.Millisecond, time.Second })
	m := h.start("python3", nil)
	h.waitState(m.ID, StateIdle)
	pid := h.kernelPID(m.ID)
	testkit.NoError(t, syscall.Kill(pid, syscall.SIGSTOP)) // hung: alive, but its heartbeat stops
	testkit.Eventually(t, 30*time.Second, func() error {
		if p := findProcess("kernel-" + m.ID + ".json"); p == 0 || p == pid {
			return errors.New("not restarted yet")
		}
		return nil
	})
	h.waitState(m.ID, StateIdle)
	testkit.Equal(t, testkit.ProcessState(pid), "")
}

func TestConnectionFilesArePrivateAndKeysFresh(t *testing.T) {
	h := newHarness(t, nil)
	a, b := h.start("python3", nil), h.start("python3", nil)
	st, err := os.Stat(h.runtime)
	testkit.NoError(t, err)
	testkit.Equal(t, st.Mode().Perm(), os.FileMode(0o700))
	keys := map[string]bool{}
	for _, id := range []string{a.ID, b.ID} {
		path := filepath.Join(h.runtime, "kernel-"+id+".json")
		st, err := os.Stat(path)
		testkit.NoError(t, err)
		testkit.Equal(t, st.Mode().Perm(), os.FileMode(0o600))
		ci, err := zmq.ReadConnectionFile(path)
		testkit.NoError(t, err)
		testkit.True(t, len(ci.Key) >= 32, "short key %q", ci.Key)
		keys[ci.Key] = true
	}
	testkit.Equal(t, len(keys), 2)
}

func TestUnwritableRuntimeDirFailsCleanly(t *testing.T) {
	h := newHarness(t, nil)
	testkit.NoError(t, os.MkdirAll(filepath.Dir(h.runtime), 0o755))
	testkit.NoError(t, os.WriteFile(h.runtime, []byte("a file, not a directory"), 0o600))
	_, err := h.g.StartKernel(StartRequest{Name: "python3"})
	testkit.ErrorIs(t, err, proxy.ErrLaunch)
	testkit.Equal(t, len(h.g.Kernels()), 0)
}

// TestFullRuntimeDirFailsCleanly fills the connection-file directory (a
// tiny tmpfs): starts fail with a clear error and start working again once
// there is room.
func TestFullRuntimeDirFailsCleanly(t *testing.T) {
	h := newHarness(t, nil)
	testkit.NoError(t, os.MkdirAll(h.runtime, 0o700))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16k,mode=0700", "tmpfs", h.runtime).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (a full disk cannot be made without one): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", h.runtime).Run() })
	filler := filepath.Join(h.runtime, "filler")
	f, err := os.Create(filler)
	testkit.NoError(t, err)
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			testkit.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	f.Close()
	_, err = h.g.StartKernel(StartRequest{Name: "python3"})
	testkit.ErrorIs(t, err, proxy.ErrLaunch)
	testkit.ErrorIs(t, err, syscall.ENOSPC)
	testkit.Equal(t, len(h.g.Kernels()), 0)

	testkit.NoError(t, os.Remove(filler))
	m := h.start("python3", nil)
	h.waitState(m.ID, StateIdle)
}
