package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/fake"
	"github.com/kernelgate/kernelgate/actors/store"
	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/zmq"
)

// Lifecycle tests on in-process fake kernels (see fake_test.go): each
// scripts the provisioner to fail, hang or die at one step of a kernel's
// life and checks what clients and the gateway see.

func TestFakeKernelStartsRunsAndShutsDown(t *testing.T) {
	defer leaktest.Check(t)()
	f := newFakeGateway(t, nil)
	m := f.start()
	s := newSocket(t)
	a := f.attach(m.ID, "s", "", s)
	execute(t, a, "s", "echo hello")
	s.waitFor("stream", "hello")
	testkit.NoError(t, f.g.Shutdown(m.ID))
	k := f.prov.Last(m.ID)
	testkit.True(t, !k.Alive(), "the kernel still runs")
	testkit.Eventually(t, 5*time.Second, func() error { // its runner cleans up after
		if n := k.Cleanups(); n != 1 {
			return fmt.Errorf("%d cleanups", n)
		}
		return nil
	})
	code, _ := s.waitClosed()
	testkit.Equal(t, code, CloseNormal)
	a.Close(EndBroken)
	testkit.NoError(t, f.g.Close(5*time.Second))
}

// A launch that hangs (a resource manager that does not answer) holds up
// only its own start: other kernels start, run and list meanwhile.
func TestHungLaunchDelaysNothingElse(t *testing.T) {
	f := newFakeGateway(t, nil)
	release := make(chan struct{})
	f.prov.SetHooks(fake.Hooks{Launch: func(ctx context.Context, n int, _ proxy.LaunchRequest) error {
		if n == 1 {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return nil
	}})
	first := make(chan error, 1)
	go func() { _, err := f.g.StartKernel(StartRequest{Name: "fake"}); first <- err }()
	testkit.Eventually(t, 5*time.Second, func() error {
		if f.prov.Launches() < 1 {
			return errors.New("the first launch has not begun")
		}
		return nil
	})
	other := f.start()
	s := newSocket(t)
	a := f.attach(other.ID, "s", "", s)
	execute(t, a, "s", "echo other")
	s.waitFor("stream", "other")
	testkit.Equal(t, len(f.g.Kernels()), 1)
	close(release)
	testkit.NoError(t, testkit.Recv(t, first, 10*time.Second))
	testkit.Equal(t, len(f.g.Kernels()), 2)
}

func TestRestartDuringStartIsRefusedAsStarting(t *testing.T) {
	f := newFakeGateway(t, nil)
	release := make(chan struct{})
	f.prov.SetHooks(fake.Hooks{Launch: func(ctx context.Context, _ int, _ proxy.LaunchRequest) error {
		<-release
		return nil
	}})
	result := make(chan error, 1)
	go func() { _, err := f.g.StartKernel(StartRequest{Name: "fake"}); result <- err }()
	// The starting kernel is not listed yet; find its actor through the gateway.
	var id string
	testkit.Eventually(t, 5*time.Second, func() error {
		ids := f.startingIDs()
		if len(ids) == 0 {
			return errors.New("no kernel starting")
		}
		id = ids[0]
		return nil
	})
	_, err := f.restartByActor(id)
	testkit.ErrorIs(t, err, ErrKernelUnavailable)
	testkit.True(t, strings.Contains(err.Error(), "starting"), "error %q does not say the kernel is starting", err)
	close(release)
	testkit.NoError(t, testkit.Recv(t, result, 10*time.Second))
}

func TestShutdownDuringStartEndsTheLaunch(t *testing.T) {
	defer leaktest.Check(t)()
	f := newFakeGateway(t, nil)
	release := make(chan struct{})
	f.prov.SetHooks(fake.Hooks{Launch: func(ctx context.Context, _ int, _ proxy.LaunchRequest) error {
		<-release
		return nil
	}})
	result := make(chan error, 1)
	go func() { _, err := f.g.StartKernel(StartRequest{Name: "fake"}); result <- err }()
	var id string
	testkit.Eventually(t, 5*time.Second, func() error {
		if ids := f.startingIDs(); len(ids) > 0 {
			id = ids[0]
			return nil
		}
		return errors.New("no kernel starting")
	})
	stopped := make(chan error, 1)
	go func() { stopped <- f.shutdownByActor(id) }()
	err := testkit.Recv(t, result, 10*time.Second)
	testkit.ErrorIs(t, err, ErrKernelUnavailable)
	close(release)
	testkit.NoError(t, testkit.Recv(t, stopped, 10*time.Second))
	testkit.Eventually(t, 5*time.Second, func() error {
		if k := f.prov.Last(id); k == nil || k.Alive() || k.Cleanups() != 1 {
			return errors.New("the launch that came up late was not cleaned up")
		}
		return nil
	})
	testkit.NoError(t, f.g.Close(5*time.Second))
}

// A shutdown that reaches a kernel actor after it left the registry (a
// second DELETE, a replica seeing the record's end twice) is answered, not
// kept until its caller times out.
func TestShutdownAfterTheKernelLeftIsAnswered(t *testing.T) {
	f := newFakeGateway(t, nil)
	m := f.start()
	h, err := f.g.handle(m.ID)
	testkit.NoError(t, err)
	// A client that does not read keeps the actor saying goodbye, out of
	// the registry but not stopped.
	stalled := newSocket(t)
	stalled.stalled = make(chan struct{})
	f.attach(m.ID, "s", "", stalled)
	testkit.NoError(t, f.g.Shutdown(m.ID))
	for range 3 {
		_, err := f.g.request(h.pid, &shutdownKernel{}, 3*time.Second)
		testkit.True(t, err == nil || errors.Is(err, ErrNoSuchKernel), "a late shutdown: %v", err)
	}
	close(stalled.stalled)
}

func TestShutdownDuringRestartAnswersBoth(t *testing.T) {
	f := newFakeGateway(t, nil)
	m := f.start()
	release := make(chan struct{})
	f.prov.SetHooks(fake.Hooks{Launch: func(ctx context.Context, n int, _ proxy.LaunchRequest) error {
		if n == 2 {
			<-release
		}
		return nil
	}})
	restarted := make(chan error, 1)
	go func() { _, err := f.g.Restart(m.ID); restarted <- err }()
	f.waitState(m.ID, StateRestarting)
	testkit.Eventually(t, 5*time.Second, func() error {
		if f.prov.Launches() < 2 {
			return errors.New("the relaunch has not begun")
		}
		return nil
	})
	stopped := make(chan error, 1)
	go func() { stopped <- f.g.Shutdown(m.ID) }()
	testkit.ErrorIs(t, testkit.Recv(t, restarted, 10*time.Second), ErrKernelUnavailable)
	close(release)
	testkit.NoError(t, testkit.Recv(t, stopped, 10*time.Second))
	f.gone(m.ID)
	for _, k := range f.prov.Kernels() {
		testkit.True(t, !k.Alive(), "a launch of the kernel still runs")
	}
}

// TestHungProvisionerDelaysNothingElse: while one kernel's provisioner hangs
// in Signal (an SSH host that stopped answering), that kernel's own
// websocket traffic and REST model, other kernels, listings, and the
// gateway's stop all go on.
func TestHungProvisionerDelaysNothingElse(t *testing.T) {
	f := newFakeGateway(t, nil)
	hung, other := f.start(), f.start()
	release := make(chan struct{})
	defer close(release)
	f.prov.SetHooks(fake.Hooks{
		Signal: func(k *fake.Kernel, sig syscall.Signal) error {
			if k.ID == hung.ID {
				<-release
			}
			return nil
		},
		Cleanup: func(k *fake.Kernel) error {
			if k.ID == hung.ID {
				<-release
			}
			return nil
		},
	})
	interrupted := make(chan error, 1)
	go func() { interrupted <- f.g.Interrupt(hung.ID) }()
	testkit.Eventually(t, 5*time.Second, func() error { // the interrupt is stuck in Signal
		if f.prov.Last(hung.ID).Signals() != nil {
			return errors.New("delivered")
		}
		return nil
	})

	s := newSocket(t)
	a := f.attach(hung.ID, "s", "", s)
	execute(t, a, "s", "echo still serving")
	s.waitFor("stream", "still serving")
	// The kernel's idle status follows its output.
	testkit.Eventually(t, 5*time.Second, func() error {
		model, err := f.g.Kernel(hung.ID)
		if err == nil && model.ExecutionState != StateIdle {
			err = fmt.Errorf("the kernel is %s", model.ExecutionState)
		}
		return err
	})
	testkit.Equal(t, len(f.g.Kernels()), 2)
	r, err := f.g.Restart(other.ID)
	testkit.NoError(t, err)
	testkit.Equal(t, r.ExecutionState, StateIdle)
	third := f.start()
	testkit.NoError(t, f.g.Shutdown(third.ID))

	// The stop is bounded, though the hung kernel's cleanup never returns.
	start := time.Now()
	f.g.Close(3 * time.Second)
	testkit.True(t, time.Since(start) < 10*time.Second, "the gateway took %v to stop", time.Since(start))
}

func TestInterruptWhileASignalHangsIsAnsweredOnceItEnds(t *testing.T) {
	f := newFakeGateway(t, nil)
	m := f.start()
	release := make(chan struct{})
	f.prov.SetHooks(fake.Hooks{Signal: func(*fake.Kernel, syscall.Signal) error { <-release; return nil }})
	first, second := make(chan error, 1), make(chan error, 1)
	go func() { first <- f.g.Interrupt(m.ID) }()
	go func() { second <- f.g.Interrupt(m.ID) }()
	select {
	case err := <-first:
		t.Fatalf("an interrupt was answered (%v) while its signal hangs", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	testkit.NoError(t, testkit.Recv(t, first, 5*time.Second))
	testkit.NoError(t, testkit.Recv(t, second, 5*time.Second))
	testkit.Equal(t, f.prov.Last(m.ID).Signals(), []syscall.Signal{syscall.SIGINT, syscall.SIGINT})
}

// An interrupt that reaches a kernel mid-cell ends the cell, through the
// runner, as a signal.
func TestInterruptEndsACell(t *testing.T) {
	f := newFakeGateway(t, nil)
	m := f.start()
	s := newSocket(t)
	a := f.attach(m.ID, "s", "", s)
	execute(t, a, "s", "sleep 60")
	f.waitState(m.ID, StateBusy)
	testkit.NoError(t, f.g.Interrupt(m.ID))
	s.waitFor("error", "KeyboardInterrupt")
	f.waitState(m.ID, StateIdle)
}

// TestDeathDuringARelaunchCountsAsARestart: a kernel that dies during the
// start-up of an automatic restart is restarted again, within the restart
// limit, rather than declared dead at once.
func TestDeathDuringARelaunchCountsAsARestart(t *testing.T) {
	f := newFakeGateway(t, func(c *Config) { c.RestartLimit = 3 })
	m := f.start()
	f.prov.SetHooks(fake.Hooks{Launch: func(_ context.Context, n int, _ proxy.LaunchRequest) error {
		if n == 2 || n == 3 {
			return errors.New("the node went away")
		}
		return nil
	}})
	f.prov.Last(m.ID).Die(errors.New("signal: killed"))
	testkit.Eventually(t, 10*time.Second, func() error {
		if f.prov.Launches() < 4 {
			return fmt.Errorf("%d launches", f.prov.Launches())
		}
		return nil
	})
	f.waitState(m.ID, StateIdle)
	testkit.Equal(t, f.m.Restarts.Load(), uint64(3))

	// Past the limit it is dead, and its clients are told so before their
	// close.
	s := newSocket(t)
	f.attach(m.ID, "s", "", s)
	f.prov.SetHooks(fake.Hooks{Launch: func(context.Context, int, proxy.LaunchRequest) error { return errors.New("no node") }})
	f.prov.Last(m.ID).Die(errors.New("signal: killed"))
	f.gone(m.ID)
	s.waitFor("status", `"dead"`)
	code, reason := s.waitClosed()
	testkit.Equal(t, code, CloseNormal)
	testkit.Equal(t, reason, "kernel died")
}

func TestRequestsDuringARestartSayRestarting(t *testing.T) {
	f := newFakeGateway(t, nil)
	m := f.start()
	release := make(chan struct{})
	defer close(release)
	f.prov.SetHooks(fake.Hooks{Launch: func(context.Context, int, proxy.LaunchRequest) error { <-release; return nil }})
	go f.g.Restart(m.ID)
	f.waitState(m.ID, StateRestarting)
	err := f.g.Interrupt(m.ID)
	testkit.ErrorIs(t, err, ErrKernelUnavailable)
	testkit.True(t, strings.Contains(err.Error(), "restarting") && !strings.Contains(err.Error(), "shutting down"),
		"interrupt during a restart says %q", err)
}

// A pooled kernel that dies as it is claimed: either the claim finds it
// dying and the request is served by a fresh kernel, or the claim wins and
// the kernel, now the client's, restarts. Either way the client gets a
// kernel that works, and nothing dead is listed.
func TestKernelDyingWhileClaimedFromItsPool(t *testing.T) {
	f := newFakeGateway(t, func(c *Config) { c.Pools = map[string]int{"fake": 1}; c.PoolRefillDelay = -1 })
	for range 5 {
		testkit.Eventually(t, 10*time.Second, func() error {
			if p := f.g.Pools(); len(p) == 0 || p[0].Warm != 1 {
				return fmt.Errorf("pools %+v", p)
			}
			return nil
		})
		warm := f.pooledHandle()
		result := make(chan Model, 1)
		go func() {
			m, err := f.g.StartKernel(StartRequest{Name: "fake"})
			testkit.NoError(t, err)
			result <- m
		}()
		f.prov.Last(warm.id).Die(errors.New("signal: killed"))
		m := testkit.Recv(t, result, 10*time.Second)
		f.waitState(m.ID, StateIdle)
		s := newSocket(t)
		a := f.attach(m.ID, "s", "", s)
		// What is sent as the kernel dies is lost with it: ask until the
		// kernel that serves the client answers.
		testkit.Eventually(t, 10*time.Second, func() error {
			execute(t, a, "s", "echo works")
			for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				if strings.Contains(strings.Join(s.texts(), " "), "works") {
					return nil
				}
			}
			return errors.New("no answer")
		})
		testkit.NoError(t, f.g.Shutdown(m.ID))
		testkit.Equal(t, len(f.g.Kernels()), 0)
	}
}

// A start that needs the place of a pooled kernel still booting gets it:
// booting pooled kernels are retired like warm ones, not a reason for 403.
func TestBootingPooledKernelYieldsItsPlace(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	f := newHookedGateway(t, fake.Hooks{Launch: func(_ context.Context, n int, _ proxy.LaunchRequest) error {
		if n == 1 {
			<-release // the pooled kernel boots forever
		}
		return nil
	}}, func(c *Config) { c.MaxKernels = 1; c.Pools = map[string]int{"fake": 1} })
	testkit.Eventually(t, 5*time.Second, func() error {
		if p := f.g.Pools(); len(p) == 0 || p[0].Starting != 1 {
			return fmt.Errorf("pools %+v", p)
		}
		return nil
	})
	m, err := f.g.StartKernel(StartRequest{Name: "fake", Env: map[string]any{"KERNEL_EXTRA": "not poolable"}})
	testkit.NoError(t, err)
	f.waitState(m.ID, StateIdle)
}

// The record of a kernel is written by its runner: a store that hangs
// delays no start.
func TestHungStoreDelaysNoStart(t *testing.T) {
	records := &blockingStore{release: make(chan struct{})}
	defer close(records.release)
	f := newFakeGateway(t, func(c *Config) { c.Store = records })
	m := f.start()
	s := newSocket(t)
	a := f.attach(m.ID, "s", "", s)
	execute(t, a, "s", "echo recorded later")
	s.waitFor("stream", "recorded later")
	testkit.Equal(t, records.saved(), 0)
}

type blockingStore struct {
	release chan struct{}
	mu      sync.Mutex
	saves   int
}

func (b *blockingStore) Save(store.Record) error {
	<-b.release
	b.mu.Lock()
	b.saves++
	b.mu.Unlock()
	return nil
}
func (b *blockingStore) Delete(string) error           { return nil }
func (b *blockingStore) Load() ([]store.Record, error) { return nil, nil }
func (b *blockingStore) saved() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.saves
}

// A stubborn kernel (it ignores shutdown_request) is signalled, SIGTERM
// then SIGKILL, on the escalation timers.
func TestStubbornKernelIsEscalated(t *testing.T) {
	f := newFakeGateway(t, func(c *Config) { c.ShutdownWait = 200 * time.Millisecond })
	f.prov.SetHooks(fake.Hooks{Stubborn: true})
	m := f.start()
	testkit.NoError(t, f.g.Shutdown(m.ID))
	testkit.Equal(t, f.prov.Last(m.ID).Signals()[0], syscall.SIGTERM)
}

// Sessions share one log of the kernel's output: a thousand clients that
// came and went cost no copy of it each; past the per-kernel bound the
// oldest detached ones go, counted.
func TestDetachedSessionsShareTheKernelsOutput(t *testing.T) {
	f := newFakeGateway(t, func(c *Config) { c.MaxSessionsPerKernel = 100 })
	m := f.start()
	for i := range 1000 {
		s := newSocket(t)
		a, err := f.g.Attach(m.ID, "gone-"+strconv.Itoa(i), true, "", s)
		testkit.NoError(t, err)
		a.Close(EndBroken)
	}
	live := newSocket(t)
	a := f.attach(m.ID, "live", "", live)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	execute(t, a, "live", "emit 10000 100")
	f.waitState(m.ID, StateBusy)
	f.waitState(m.ID, StateIdle)
	testkit.Eventually(t, 10*time.Second, func() error {
		if n := len(live.texts()); n < 10000 {
			return fmt.Errorf("%d of 10000 lines", n)
		}
		return nil
	})
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	// One copy is about 3 MB (10,000 messages of ~300 bytes); a copy per
	// detached session would be hundreds of megabytes.
	grown := int64(after.HeapInuse) - int64(before.HeapInuse)
	testkit.True(t, grown < 64<<20, "heap grew %d MiB for 10,000 messages and 100 sessions", grown>>20)
	testkit.True(t, f.m.SessionsEvicted.Load() >= 900, "evicted %d sessions, want at least 900", f.m.SessionsEvicted.Load())
	testkit.True(t, f.m.DetachedSessions.Load() <= 100, "%d detached sessions kept", f.m.DetachedSessions.Load())
}

// A client sending a new header.session with every message teaches the
// kernel a bounded number of routes.
func TestRoutesAClientTeachesAreBounded(t *testing.T) {
	f := newFakeGateway(t, nil)
	m := f.start()
	s := newSocket(t)
	a := f.attach(m.ID, "s", "", s)
	for i := range 4000 {
		msg, err := zmq.NewMessage("kernel_info_request", "sess-"+strconv.Itoa(i), "u", nil, nil)
		testkit.NoError(t, err)
		a.Send(zmq.Shell, msg)
	}
	testkit.Equal(t, len(a.learned), maxLearned)
	routes := make(chan int, 1)
	f.inspect(m.ID, func(k *kernelActor) { routes <- len(k.routes) })
	testkit.True(t, testkit.Recv(t, routes, 5*time.Second) <= maxLearned, "the kernel learned more routes than one client may teach")
}

// TestReconnectGetsWhatTheClientDidNotConfirm: a client that vanished gets,
// on its next connection with the same session id, everything after what
// it confirmed (its pongs); one that says what it last got
// (?last_msg_id=) gets exactly what followed.
func TestReconnectGetsWhatTheClientDidNotConfirm(t *testing.T) {
	f := newFakeGateway(t, nil)
	m := f.start()
	first := newSocket(t)
	a := f.attach(m.ID, "s", "", first)
	execute(t, a, "s", lines(1, 50))
	first.waitFor("stream", `"50\n"`)
	f.waitState(m.ID, StateIdle)
	testkit.Eventually(t, 5*time.Second, func() error { // the writer asks for a confirmation
		if a.w.acked.Load() < a.w.written.Load() {
			return errors.New("not confirmed yet")
		}
		return nil
	})
	first.mu.Lock()
	first.mute = true // now the client stops answering pings, then vanishes
	first.mu.Unlock()
	execute(t, a, "s", lines(51, 100))
	first.waitFor("stream", `"100\n"`)
	a.Close(EndBroken)

	second := newSocket(t)
	f.attach(m.ID, "s", "", second)
	second.waitFor("stream", `"100\n"`)
	got := second.texts()
	testkit.Equal(t, got[0], "51")
	testkit.Equal(t, len(got), 50)

	// With the id of the last message it has, a client gets exactly what
	// followed, however much it confirmed.
	// (A message the writer merged stands for all its lines.)
	var last string
	upTo := 0
	first.mu.Lock()
	for _, msg := range first.msgs {
		if msg.MsgType() == "stream" && (strings.Contains(string(msg.Content), `"75\n"`) || inMerged(msg, `"75\n"`)) {
			last = msg.Head().MsgID
			var c struct{ Text string }
			json.Unmarshal(msg.Content, &c)
			ls := strings.Split(strings.TrimSuffix(c.Text, "\n"), "\n")
			upTo, _ = strconv.Atoi(ls[len(ls)-1])
		}
	}
	first.mu.Unlock()
	third := newSocket(t)
	f.attach(m.ID, "s", last, third)
	third.waitFor("stream", `"100\n"`)
	got = third.texts()
	testkit.Equal(t, got[0], strconv.Itoa(upTo+1))
	testkit.Equal(t, len(got), 100-upTo)
}

// A client that falls behind by more than its bounds, even with its
// backlog merged, is sent away (1013) and, coming back, gets everything it
// had not confirmed, in order.
func TestSlowClientIsSentAwayAndGetsTheRestOnReturn(t *testing.T) {
	f := newFakeGateway(t, func(c *Config) { c.WebsocketQueueBytes = 4 << 10 })
	m := f.start()
	slow := newSocket(t)
	slow.stalled = make(chan struct{})
	a := f.attach(m.ID, "s", "", slow)
	execute(t, a, "s", lines(1, 500))
	code, _ := slow.waitClosed()
	testkit.Equal(t, code, CloseTryAgain)
	a.Close(EndBroken)
	testkit.Equal(t, f.m.SlowConsumers.Load(), uint64(1))

	back := newSocket(t)
	f.attach(m.ID, "s", "", back)
	back.waitFor("stream", `"500\n"`)
	got := back.texts()
	for i, l := range got {
		testkit.Equal(t, l, strconv.Itoa(i+1))
	}
}

// A second connection with a session id takes over: the first is closed
// with 4000 after the write it is in, and the second starts from what the
// first's client confirmed.
func TestTakeoverStartsWhereTheOldClientConfirmed(t *testing.T) {
	f := newFakeGateway(t, nil)
	m := f.start()
	first := newSocket(t)
	a := f.attach(m.ID, "s", "", first)
	execute(t, a, "s", lines(1, 20))
	first.waitFor("stream", `"20\n"`)
	testkit.Eventually(t, 5*time.Second, func() error {
		if a.w.acked.Load() < a.w.written.Load() {
			return errors.New("not confirmed yet")
		}
		return nil
	})
	second := newSocket(t)
	b := f.attach(m.ID, "s", "", second)
	code, _ := first.waitClosed()
	testkit.Equal(t, code, CloseReplaced)
	execute(t, b, "s", lines(21, 30))
	second.waitFor("stream", `"30\n"`)
	testkit.Equal(t, second.texts()[0], "21")
}

// startingIDs lists the kernels the gateway has admitted but not listed.
func (f *fakeGateway) startingIDs() []string {
	ids := make(chan []string, 1)
	f.g.sys.Root.Send(f.g.pid, gatewayInspect(func(g *gatewayActor) {
		var out []string
		for id := range g.pending {
			out = append(out, id)
		}
		ids <- out
	}))
	return testkit.Recv(f.t, ids, 5*time.Second)
}

// pooledHandle is the handle of the (only) warm pooled kernel.
func (f *fakeGateway) pooledHandle() *kernelHandle {
	hs := make(chan *kernelHandle, 1)
	f.g.sys.Root.Send(f.g.pid, gatewayInspect(func(g *gatewayActor) {
		for _, h := range g.pooled {
			hs <- h
			return
		}
		hs <- nil
	}))
	return testkit.Recv(f.t, hs, 5*time.Second)
}

// kernelActorPID is the actor of any kernel the gateway has spawned.
func (f *fakeGateway) kernelActorPID(id string) *kernelHandle {
	hs := make(chan *kernelHandle, 1)
	f.g.sys.Root.Send(f.g.pid, gatewayInspect(func(g *gatewayActor) {
		pid := g.children[id]
		hs <- &kernelHandle{id: id, pid: pid}
	}))
	return testkit.Recv(f.t, hs, 5*time.Second)
}

func (f *fakeGateway) restartByActor(id string) (Model, error) {
	res, err := f.g.request(f.kernelActorPID(id).pid, &restartKernel{}, 10*time.Second)
	if err != nil {
		return Model{}, err
	}
	return res.(*started).model, res.(*started).err
}

func (f *fakeGateway) shutdownByActor(id string) error {
	res, err := f.g.request(f.kernelActorPID(id).pid, &shutdownKernel{}, 10*time.Second)
	if err != nil {
		return err
	}
	return res.(*result).err
}

func (f *fakeGateway) inspect(id string, fn func(*kernelActor)) {
	h, err := f.g.handle(id)
	testkit.NoError(f.t, err)
	f.g.sys.Root.Send(h.pid, inspect(fn))
}

// What a reconnecting client is given again depends on how its previous
// connection ended: nothing it read for sure (it answered kernelgate's
// close frame, or closed the connection itself), everything it did not
// confirm when the connection broke.
func TestReconnectDependsOnHowTheConnectionEnded(t *testing.T) {
	for _, tt := range []struct {
		ending    Ending
		wantFirst string
	}{
		{EndHandshake, "21"},
		{EndClientClosed, "21"},
		{EndBroken, "11"},
	} {
		t.Run(fmt.Sprint(tt.ending), func(t *testing.T) {
			f := newFakeGateway(t, nil)
			m := f.start()
			first := newSocket(t)
			a := f.attach(m.ID, "s", "", first)
			execute(t, a, "s", lines(1, 10))
			first.waitFor("stream", `"10\n"`)
			testkit.Eventually(t, 5*time.Second, func() error {
				if a.w.acked.Load() < a.w.written.Load() {
					return errors.New("not confirmed yet")
				}
				return nil
			})
			first.mu.Lock()
			first.mute = true
			first.mu.Unlock()
			execute(t, a, "s", lines(11, 20))
			first.waitFor("stream", `"20\n"`)
			a.Close(tt.ending)

			second := newSocket(t)
			b := f.attach(m.ID, "s", "", second)
			execute(t, b, "s", lines(21, 22))
			second.waitFor("stream", `"22\n"`)
			testkit.Equal(t, second.texts()[0], tt.wantFirst)
		})
	}
}

// A client behind its kernel gets its backlog merged (every line, once, in
// order, in fewer messages, no 1013 for a small message bound); coming back
// with ?last_msg_id= a merged message's id, it gets what followed the last
// line that message held: no loss, no duplicate.
func TestMergedBacklogAndResumeAfterAMergedMessage(t *testing.T) {
	f := newFakeGateway(t, func(c *Config) { c.WebsocketQueue = 16 })
	m := f.start()
	first := newSocket(t)
	stalled := make(chan struct{})
	first.mu.Lock()
	first.stalled = stalled
	first.mu.Unlock()
	a := f.attach(m.ID, "s", "", first)
	execute(t, a, "s", lines(1, 300))
	// Its 300 lines are in the log while the client reads nothing.
	testkit.Eventually(t, 10*time.Second, func() error {
		last := make(chan bool, 1)
		f.inspect(m.ID, func(k *kernelActor) {
			cur, _ := k.output.at(1)
			found := false
			for e, ok := k.output.next(&cur); ok; e, ok = k.output.next(&cur) {
				found = found || strings.Contains(string(e.m.Content), `"300\n"`)
			}
			last <- found
		})
		if !<-last {
			return errors.New("the cell is still running")
		}
		return nil
	})
	first.mu.Lock()
	first.stalled = nil
	first.mu.Unlock()
	close(stalled)
	first.waitFor("stream", `"300\n"`)
	got := first.texts()
	testkit.Equal(t, len(got), 300)
	for i, l := range got {
		testkit.Equal(t, l, strconv.Itoa(i+1))
	}
	testkit.True(t, f.m.MessagesMerged.Load() > 0, "nothing merged")
	testkit.Equal(t, f.m.SlowConsumers.Load(), uint64(0))

	// The merged message that holds line 150, and the last line it holds.
	var last string
	upTo := 0
	first.mu.Lock()
	for _, msg := range first.msgs {
		var c struct{ Text string }
		json.Unmarshal(msg.Content, &c)
		ls := strings.Split(strings.TrimSuffix(c.Text, "\n"), "\n")
		if msg.MsgType() == "stream" && len(ls) > 1 && slices.Contains(ls, "150") {
			last = msg.Head().MsgID
			upTo, _ = strconv.Atoi(ls[len(ls)-1])
		}
	}
	first.mu.Unlock()
	testkit.True(t, last != "", "line 150 was not in a merged message")
	a.Close(EndBroken)

	back := newSocket(t)
	b := f.attach(m.ID, "s", last, back)
	execute(t, b, "s", "echo end")
	back.waitFor("stream", `"end\n"`)
	got = back.texts()
	testkit.Equal(t, len(got), 300-upTo+1)
	for i, l := range got[:len(got)-1] {
		testkit.Equal(t, l, strconv.Itoa(upTo+1+i))
	}
}
