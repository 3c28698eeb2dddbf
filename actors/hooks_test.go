package actors

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/fake"
	"github.com/kernelgate/kernelgate/actors/store"
	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

// hooked is a fake provisioner with the optional hooks: it reports each
// Retire with the number of cleanups its kernel's last launch had, and each
// Sweep.
type hooked struct {
	*fake.Provisioner
	retired chan retired
	swept   chan []string
	hang    bool // Sweep waits for its context
}

type retired struct {
	id       string
	cleanups int
}

func (h *hooked) Retire(_ context.Context, id string) error {
	h.retired <- retired{id: id, cleanups: h.Last(id).Cleanups()}
	return nil
}

func (h *hooked) Sweep(ctx context.Context, recovered []string) error {
	h.swept <- recovered
	if h.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func newHooked(t *testing.T, hang bool, mod func(*Config)) (*fakeGateway, *hooked) {
	h := &hooked{Provisioner: &fake.Provisioner{}, retired: make(chan retired, 10), swept: make(chan []string, 10), hang: hang}
	f := newFakeGateway(t, func(c *Config) {
		c.Proxies = proxy.NewRegistry(h)
		if mod != nil {
			mod(c)
		}
	})
	f.prov = h.Provisioner
	return f, h
}

func noRetire(t *testing.T, h *hooked) {
	t.Helper()
	select {
	case r := <-h.retired:
		t.Fatalf("kernel %s retired while it lives", r.id)
	default:
	}
}

// Retire comes once, after the last launch is cleaned up and before the
// shutdown is answered, when a kernel ends for good: not when it restarts,
// on request or after a death.
func TestRetireOnlyWhenTheKernelEndsForGood(t *testing.T) {
	defer leaktest.Check(t)()
	f, h := newHooked(t, false, nil)
	m := f.start()
	_, err := f.g.Restart(m.ID)
	testkit.NoError(t, err)
	f.waitState(m.ID, StateIdle)
	f.prov.Last(m.ID).Die(errors.New("crashed"))
	testkit.Eventually(t, 10*time.Second, func() error {
		if n := len(f.prov.Kernels()); n != 3 {
			return fmt.Errorf("%d launches", n)
		}
		return nil
	})
	f.waitState(m.ID, StateIdle)
	noRetire(t, h)

	// A shutdown is answered once the kernel is retired.
	testkit.NoError(t, f.g.Shutdown(m.ID))
	testkit.Equal(t, len(h.retired), 1)
	testkit.Equal(t, <-h.retired, retired{id: m.ID, cleanups: 1})
	testkit.NoError(t, f.g.Close(5*time.Second))
	noRetire(t, h)
}

// A kernel that dies past its restart limit is retired too.
func TestRetireAfterTheLastRestart(t *testing.T) {
	defer leaktest.Check(t)()
	f, h := newHooked(t, false, func(c *Config) { c.RestartLimit = 1 })
	m := f.start()
	f.prov.SetHooks(fake.Hooks{Launch: func(_ context.Context, n int, _ proxy.LaunchRequest) error {
		return errors.New("no more")
	}})
	f.prov.Last(m.ID).Die(errors.New("crashed"))
	select {
	case r := <-h.retired:
		testkit.Equal(t, r.id, m.ID)
	case <-time.After(10 * time.Second):
		t.Fatal("no Retire for a dead kernel")
	}
	f.gone(m.ID)
	testkit.NoError(t, f.g.Close(5*time.Second))
}

// A kernel left running for the next gateway process is not retired.
func TestNoRetireForAKeptKernel(t *testing.T) {
	defer leaktest.Check(t)()
	f, h := newHooked(t, false, func(c *Config) {
		c.Store = store.FileStore{Dir: t.TempDir()}
		c.KeepKernelsOnStop = true
	})
	m := f.start()
	testkit.NoError(t, f.g.Close(5*time.Second))
	noRetire(t, h)
	f.prov.Last(m.ID).Die(nil) // what the next process would have taken back
}

// Sweep is called once at start, with the kernels taken back (none here),
// and a Sweep that hangs is cancelled by Close.
func TestSweepAtStartEndsWithClose(t *testing.T) {
	defer leaktest.Check(t)()
	f, h := newHooked(t, true, nil)
	select {
	case ids := <-h.swept:
		testkit.Equal(t, len(ids), 0)
	case <-time.After(5 * time.Second):
		t.Fatal("no Sweep at start")
	}
	f.start()
	testkit.NoError(t, f.g.Close(5*time.Second))
	testkit.Equal(t, len(h.swept), 0)
}
