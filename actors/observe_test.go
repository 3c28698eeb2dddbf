package actors

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/testkit"
)

// statsOf returns the stats of kernel id.
func (f *fakeGateway) statsOf(id string) KernelStats {
	f.t.Helper()
	for _, s := range f.g.KernelStats() {
		if s.ID == id {
			return s
		}
	}
	f.t.Fatalf("kernel %s has no stats", id)
	return KernelStats{}
}

// TestKernelStatsFollowItsLife: the counters and the history an operator
// sees move with what happens to the kernel.
func TestKernelStatsFollowItsLife(t *testing.T) {
	f := newFakeGateway(t, nil)
	m := f.start()
	st := f.statsOf(m.ID)
	testkit.True(t, !st.Started.IsZero() && time.Since(st.Started) < time.Minute, "started %v", st.Started)
	testkit.True(t, st.Host != "", "no host")
	testkit.Equal(t, st.Restarts, 0)

	s := newSocket(t)
	a := f.attach(m.ID, "s", "", s)
	execute(t, a, "s", lines(1, 10))
	s.waitFor("stream", "10")
	f.waitState(m.ID, StateIdle)
	testkit.Eventually(t, 5*time.Second, func() error {
		if st := f.statsOf(m.ID); st.MessagesIn < 1 || st.MessagesOut < 12 {
			return fmt.Errorf("in %d, out %d", st.MessagesIn, st.MessagesOut)
		}
		return nil
	})

	_, err := f.g.Restart(m.ID)
	testkit.NoError(t, err)
	testkit.NoError(t, f.g.Interrupt(m.ID))
	st = f.statsOf(m.ID)
	testkit.Equal(t, st.Restarts, 1)
	events, err := f.g.KernelEvents(m.ID)
	testkit.NoError(t, err)
	var what []string
	for _, e := range events {
		what = append(what, e.What)
	}
	for _, want := range []string{"starting", "up, channels on " + st.Host, "restart requested", "exited for its restart", "interrupt requested"} {
		testkit.True(t, slices.Contains(what, want), "no %q in %q", want, what)
	}
	testkit.True(t, slices.IsSortedFunc(events, func(a, b Event) int { return a.At.Compare(b.At) }), "events out of order: %v", events)

	_, err = f.g.KernelEvents("no-such-kernel")
	testkit.ErrorIs(t, err, ErrNoSuchKernel)
}

// TestEventLogIsBounded: a kernel that keeps restarting keeps only its
// latest events, in order.
func TestEventLogIsBounded(t *testing.T) {
	var l eventLog
	for i := range 3 * maxEvents {
		l.add("event %d", i)
	}
	got := l.list()
	testkit.Equal(t, len(got), maxEvents)
	testkit.Equal(t, got[0].What, fmt.Sprintf("event %d", 2*maxEvents))
	testkit.Equal(t, got[maxEvents-1].What, fmt.Sprintf("event %d", 3*maxEvents-1))
}

// TestDrainRefusesNewKernelsAndKeepsTheOthers: a drained gateway is not
// ready and starts nothing; its kernels go on serving; Resume undoes it.
func TestDrainRefusesNewKernelsAndKeepsTheOthers(t *testing.T) {
	f := newFakeGateway(t, func(c *Config) { c.MaxKernels = 7; c.MaxKernelsPerUser = 3 })
	testkit.Equal(t, f.g.Limits(), Limits{MaxKernels: 7, MaxKernelsPerUser: 3})
	m := f.start()
	f.g.Drain()
	testkit.True(t, f.g.Draining() && !f.g.Accepting(), "drained but accepting")
	_, err := f.g.StartKernel(StartRequest{Name: "fake"})
	testkit.ErrorIs(t, err, ErrShuttingDown)
	testkit.True(t, strings.Contains(err.Error(), "draining"), "error %v", err)
	s := newSocket(t)
	a := f.attach(m.ID, "s", "", s)
	execute(t, a, "s", "echo still here")
	s.waitFor("stream", "still here")

	f.g.Resume()
	testkit.True(t, !f.g.Draining() && f.g.Accepting(), "resumed but not accepting")
	_, err = f.g.StartKernel(StartRequest{Name: "fake"})
	testkit.True(t, !errors.Is(err, ErrShuttingDown), "resumed gateway refused a start: %v", err)
}
