package actors

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

// waitPool polls until spec's pool holds warm ready kernels and none
// starting.
func (h *harness) waitPool(spec string, warm int) {
	h.t.Helper()
	testkit.Eventually(h.t, 60*time.Second, func() error {
		for _, p := range h.g.Pools() {
			if p.Kernelspec == spec && p.Warm == warm && p.Starting == 0 {
				return nil
			}
		}
		return fmt.Errorf("pools %+v", h.g.Pools())
	})
}

// pooledPIDs lists the processes of this harness's kernels that are not
// listed (the pooled ones), by their connection files.
func (h *harness) pooledPIDs() []int {
	listed := make(map[int]bool)
	for _, m := range h.g.Kernels() {
		listed[findProcess("kernel-"+m.ID+".json")] = true
	}
	var out []int
	for _, pid := range findProcesses(h.runtime) {
		if !listed[pid] {
			out = append(out, pid)
		}
	}
	return out
}

func TestPoolHandsOutWarmKernelsAndRefills(t *testing.T) {
	defer leaktest.Check(t)()
	h := newHarness(t, func(c *Config) {
		c.Pools = map[string]int{"python3": 2}
		c.PoolIgnoredEnv = []string{"KERNEL_WORKING_DIR", "KERNEL_LAUNCH_TIMEOUT"}
	})
	h.waitPool("python3", 2)
	testkit.Equal(t, len(h.g.Kernels()), 0) // pooled kernels are not listed

	m := h.start("python3", map[string]any{"KERNEL_USERNAME": "alice", "KERNEL_WORKING_DIR": "/elsewhere"})
	testkit.Equal(t, m.ExecutionState, StateIdle) // it answered kernel_info before it was handed out
	testkit.Equal(t, h.g.Metrics().PoolTakes.Load(), uint64(1))
	testkit.Equal(t, len(h.g.Kernels()), 1)
	h.waitPool("python3", 2)

	// Env a kernel launched in advance cannot honour: a fresh kernel.
	for _, env := range []map[string]any{
		{"KERNEL_EXTRA": "x"},
		{"KERNEL_ID": uuid.NewString()},
	} {
		m := h.start("python3", env)
		testkit.Equal(t, m.ExecutionState, StateStarting)
	}
	testkit.Equal(t, h.g.Metrics().PoolTakes.Load(), uint64(1))

	// A taken kernel is like any other: restart keeps its id.
	r, err := h.g.Restart(m.ID)
	testkit.NoError(t, err)
	testkit.Equal(t, r.ID, m.ID)

	testkit.NoError(t, h.g.Close(30*time.Second))
	testkit.Equal(t, len(findProcesses(h.runtime)), 0) // pooled kernels shut down with the gateway
}

func TestPoolBurstTakesWarmThenStartsCold(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Pools = map[string]int{"python3": 2} })
	h.waitPool("python3", 2)
	const n = 6
	var (
		mu        sync.Mutex
		warm      int
		ids       []string
		wg        sync.WaitGroup
		startErrs []error
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := h.g.StartKernel(StartRequest{Name: "python3", Env: map[string]any{"KERNEL_USERNAME": "bob"}})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				startErrs = append(startErrs, err)
				return
			}
			if m.ExecutionState == StateIdle {
				warm++
			}
			ids = append(ids, m.ID)
		}()
	}
	wg.Wait()
	testkit.Equal(t, len(startErrs), 0)
	testkit.Equal(t, warm, 2)
	testkit.Equal(t, h.g.Metrics().PoolTakes.Load(), uint64(2))
	for _, id := range ids {
		h.waitState(id, StateIdle)
	}
	h.waitPool("python3", 2)
	testkit.Equal(t, len(h.g.Kernels()), n)
}

func TestPoolReplacesAKernelThatDiesWaiting(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Pools = map[string]int{"python3": 1} })
	h.waitPool("python3", 1)
	pids := h.pooledPIDs()
	testkit.Equal(t, len(pids), 1)
	testkit.NoError(t, syscall.Kill(pids[0], syscall.SIGKILL))
	testkit.Eventually(t, 60*time.Second, func() error {
		now := h.pooledPIDs()
		if len(now) != 1 || now[0] == pids[0] {
			return fmt.Errorf("pooled processes %v", now)
		}
		return nil
	})
	h.waitPool("python3", 1)
	testkit.Equal(t, h.g.Metrics().Restarts.Load(), uint64(0)) // replaced, not restarted
	m := h.start("python3", nil)
	testkit.Equal(t, m.ExecutionState, StateIdle)
}

func TestPoolLimits(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Pools = map[string]int{"python3": 2}
		c.MaxKernels = 2
		c.MaxKernelsPerUser = 1
	})
	h.waitPool("python3", 2)

	// At MaxKernels, a warm kernel yields its place to a request it cannot serve.
	cold := h.start("python3", map[string]any{"KERNEL_USERNAME": "carol", "KERNEL_EXTRA": "x"})
	testkit.Equal(t, cold.ExecutionState, StateStarting)
	warm := h.start("python3", map[string]any{"KERNEL_USERNAME": "dave"})
	testkit.Equal(t, warm.ExecutionState, StateIdle)

	// The per-user limit counts taken kernels.
	_, err := h.g.StartKernel(StartRequest{Name: "python3", Env: map[string]any{"KERNEL_USERNAME": "dave"}})
	testkit.ErrorIs(t, err, ErrLimit)
	// No warm kernel is left to yield, and no refill fits under MaxKernels.
	_, err = h.g.StartKernel(StartRequest{Name: "python3", Env: map[string]any{"KERNEL_USERNAME": "erin"}})
	testkit.ErrorIs(t, err, ErrLimit)
	testkit.Eventually(t, 30*time.Second, func() error {
		if pids := h.pooledPIDs(); len(pids) != 0 {
			return fmt.Errorf("pooled processes %v", pids)
		}
		return nil
	})
	testkit.Equal(t, h.g.Pools()[0].Warm+h.g.Pools()[0].Starting, 0)
}

func TestPooledKernelsAreNeverCulled(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Pools = map[string]int{"python3": 2}
		c.CullIdleTimeout = time.Second
		c.CullInterval = 200 * time.Millisecond
	})
	h.waitPool("python3", 2)
	m := h.start("python3", nil)
	// The taken kernel, idle for less time than the warm ones, is culled;
	// they are not.
	testkit.Eventually(t, 30*time.Second, func() error {
		if _, err := h.g.Kernel(m.ID); !errors.Is(err, ErrNoSuchKernel) {
			return errors.New("not culled yet")
		}
		return nil
	})
	testkit.Equal(t, h.g.Metrics().Culled.Load(), uint64(1))
	h.waitPool("python3", 2)
}

func TestFailingPoolBacksOffAndLeavesOthersAlone(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Pools = map[string]int{"missing": 1, "python3": 1} })
	h.waitPool("python3", 1)
	testkit.Eventually(t, 30*time.Second, func() error {
		if n := h.g.Metrics().StartFailures.Load(); n < 2 {
			return fmt.Errorf("%d failed pooled launches", n)
		}
		return nil
	})
	for _, p := range h.g.Pools() {
		if p.Kernelspec == "missing" {
			testkit.Equal(t, p.Warm, 0)
		}
	}
	m := h.start("python3", nil)
	testkit.Equal(t, m.ExecutionState, StateIdle)
}

func TestPoolBackoff(t *testing.T) {
	for _, tt := range []struct {
		failures int
		want     time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {4, 8 * time.Second}, {7, poolBackoffMax}, {40, poolBackoffMax}} {
		testkit.Equal(t, poolBackoff(tt.failures), tt.want)
	}
}
