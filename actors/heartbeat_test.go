package actors

import (
	"fmt"
	"runtime"
	"slices"
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
)

// Tests of the heartbeat wheel (heartbeat.go): first on its own, with
// heartbeat channels that are counters, then in a gateway of fake kernels
// whose heartbeats can be muted (a hung kernel) and whose end can be
// learned only by polling (a remote kernel).

// beat is a kernel's heartbeat channel as the wheel sees it: it counts
// pings and echoes each at once, unless muted.
type beat struct {
	e *hbEntry

	mu    sync.Mutex
	pings int
	mute  bool
}

func (b *beat) PingWithin(seq uint64, _ time.Duration) error {
	b.mu.Lock()
	b.pings++
	mute := b.mute
	b.mu.Unlock()
	if !mute {
		b.e.echo(seq)
	}
	return nil
}

func (b *beat) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pings
}

func (b *beat) setMute(m bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mute = m
}

// told records what the wheel reported for one entry, and when.
type told struct {
	mu            sync.Mutex
	silent, stale []time.Time
}

func (r *told) times() (silent, stale []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.silent), slices.Clone(r.stale)
}

// onWheel puts a new entry, echoing or not, on h.
func onWheel(h *heartbeats, polled, mute bool) (*beat, *told) {
	r := &told{}
	e := newHBEntry(func(time.Duration) {
		r.mu.Lock()
		r.silent = append(r.silent, time.Now())
		r.mu.Unlock()
	}, func() {
		r.mu.Lock()
		r.stale = append(r.stale, time.Now())
		r.mu.Unlock()
	})
	b := &beat{e: e, mute: mute}
	h.add(e, b, polled)
	return b, r
}

// size is how many entries the wheel holds.
func (h *heartbeats) size() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, s := range h.slots {
		n += len(s)
	}
	return n
}

// TestHeartbeatCheck: what the wheel reports of one entry at one check,
// from the age of its last echo and what it reported last.
func TestHeartbeatCheck(t *testing.T) {
	const timeout, stale = 30 * time.Second, 4500 * time.Millisecond
	h := &heartbeats{timeout: timeout, stale: stale}
	now := time.Now().UnixNano()
	ago := func(d time.Duration) int64 { return now - int64(d) }
	for _, c := range []struct {
		name                  string
		echo                  time.Duration // how long ago
		polled                bool
		toldSilent, toldStale int64
		silent, stale         bool
	}{
		{name: "echoed", echo: time.Second, polled: true},
		{name: "late, polled", echo: 5 * time.Second, polled: true, stale: true},
		{name: "late, not polled", echo: 5 * time.Second},
		{name: "late, told stale lately", echo: 8 * time.Second, polled: true, toldStale: ago(3 * time.Second)},
		{name: "late, told stale a period ago", echo: 12 * time.Second, polled: true, toldStale: ago(5 * time.Second), stale: true},
		{name: "silent", echo: 31 * time.Second, silent: true},
		{name: "silent, polled: silence only", echo: 31 * time.Second, polled: true, silent: true},
		{name: "silent, told lately", echo: 50 * time.Second, toldSilent: ago(20 * time.Second)},
		{name: "silent, told a timeout ago", echo: 70 * time.Second, toldSilent: ago(31 * time.Second), silent: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var silent, stale bool
			var silentFor time.Duration
			e := newHBEntry(func(d time.Duration) { silent, silentFor = true, d }, func() { stale = true })
			e.echoed.Store(ago(c.echo))
			e.polled, e.toldSilent, e.toldStale = c.polled, c.toldSilent, c.toldStale
			h.check(e, now)
			testkit.Equal(t, silent, c.silent)
			testkit.Equal(t, stale, c.stale)
			if c.silent {
				testkit.Equal(t, silentFor, c.echo)
				testkit.Equal(t, e.toldSilent, now)
			}
		})
	}
}

// TestHeartbeatWheelReportsSilenceOncePerTimeout: an entry whose echoes
// stop is reported silent once the timeout has passed, then once per
// timeout while the silence lasts; an echoing entry beside it never is,
// and a polled one is reported stale before it is silent.
func TestHeartbeatWheelReportsSilenceOncePerTimeout(t *testing.T) {
	defer leaktest.Check(t)()
	// Margins of many intervals: a loaded machine delays the wheel.
	const interval, timeout, stale = 20 * time.Millisecond, time.Second, 300 * time.Millisecond
	h := newHeartbeats(interval, timeout, stale)
	defer h.close()
	live, liveTold := onWheel(h, true, false)
	_, hungTold := onWheel(h, false, true)
	remote, remoteTold := onWheel(h, true, false)
	testkit.Eventually(t, 5*time.Second, func() error {
		if n := remote.count(); n < 3 {
			return fmt.Errorf("%d pings", n)
		}
		return nil
	})
	remote.setMute(true)
	lastEcho := time.Unix(0, remote.e.echoed.Load())
	since := func(r *told) (silent, stale []time.Time) {
		s, st := r.times()
		earlier := func(at time.Time) bool { return at.Before(lastEcho) }
		return slices.DeleteFunc(s, earlier), slices.DeleteFunc(st, earlier)
	}
	testkit.Eventually(t, 15*time.Second, func() error {
		for _, r := range []*told{hungTold, remoteTold} {
			if silent, _ := since(r); len(silent) < 2 {
				return fmt.Errorf("%d silence reports", len(silent))
			}
		}
		return nil
	})
	for _, r := range []*told{hungTold, remoteTold} {
		silent, _ := r.times()
		for i := 1; i < len(silent); i++ {
			testkit.True(t, silent[i].Sub(silent[i-1]) > timeout, "silence reported again after %v", silent[i].Sub(silent[i-1]))
		}
	}
	_, hungStale := hungTold.times()
	testkit.Equal(t, len(hungStale), 0) // not polled: its launcher has nothing to say
	silent, stales := since(remoteTold)
	testkit.True(t, silent[0].Sub(lastEcho) > timeout, "reported silent %v after its last echo", silent[0].Sub(lastEcho))
	testkit.True(t, slices.ContainsFunc(stales, func(at time.Time) bool {
		return at.Sub(lastEcho) > stale && at.Before(silent[0])
	}), "not reported stale between its last echo (%v) and its silence (%v): %v", lastEcho, silent[0], stales)
	// Whether the live one was reported stale is left out: a machine busy
	// enough may delay the wheel by a stale period (TestHeartbeatCheck
	// has the case).
	silent, _ = liveTold.times()
	testkit.Equal(t, len(silent), 0)
	testkit.True(t, live.count() > 10, "the echoing entry was pinged %d times", live.count())
}

// TestHeartbeatWheelNeverPingsARemovedEntry: once remove returns, an entry
// is pinged no more (bar a ping under way then) and nothing is reported
// for it, while the others go on.
func TestHeartbeatWheelNeverPingsARemovedEntry(t *testing.T) {
	defer leaktest.Check(t)()
	h := newHeartbeats(5*time.Millisecond, 20*time.Millisecond, 10*time.Millisecond)
	defer h.close()
	other, _ := onWheel(h, false, false)
	gone, goneTold := onWheel(h, true, true) // silent: it would be reported
	testkit.Eventually(t, 5*time.Second, func() error {
		if silent, _ := goneTold.times(); len(silent) == 0 {
			return fmt.Errorf("not reported yet")
		}
		return nil
	})
	h.remove(gone.e)
	h.remove(gone.e) // idempotent
	pings := gone.count()
	silent, stale := goneTold.times()
	testkit.Equal(t, h.size(), 1)
	from := other.count()
	testkit.Eventually(t, 5*time.Second, func() error { // ten rounds
		if n := other.count() - from; n < 10 {
			return fmt.Errorf("the wheel went round %d times", n)
		}
		return nil
	})
	testkit.True(t, gone.count() <= pings+1, "pinged %d times after its removal", gone.count()-pings)
	silentNow, staleNow := goneTold.times()
	testkit.True(t, len(silentNow) <= len(silent)+1 && len(staleNow) <= len(stale)+1, "reported after its removal")
	h.add(gone.e, gone, true) // a removed entry stays off
	testkit.Equal(t, h.size(), 1)
}

// TestHeartbeatWheelIsOneGoroutine: a thousand entries cost the wheel's
// goroutine and no other.
func TestHeartbeatWheelIsOneGoroutine(t *testing.T) {
	defer leaktest.Check(t)()
	h := newHeartbeats(20*time.Millisecond, time.Minute, time.Minute)
	defer h.close()
	before := runtime.NumGoroutine()
	beats := make([]*beat, 1000)
	for i := range beats {
		beats[i], _ = onWheel(h, i%2 == 0, false)
	}
	testkit.Equal(t, h.size(), len(beats))
	testkit.Eventually(t, 10*time.Second, func() error { // twice round
		for i, b := range beats {
			if n := b.count(); n < 2 {
				return fmt.Errorf("entry %d pinged %d times", i, n)
			}
		}
		return nil
	})
	// Earlier tests' timers may start a goroutine for a moment.
	testkit.Eventually(t, 5*time.Second, func() error {
		if after := runtime.NumGoroutine(); after > before {
			return fmt.Errorf("%d goroutines with a thousand entries, %d with none", after, before)
		}
		return nil
	})
	testkit.Equal(t, wheels(), 1)
	// The slots are even: no tick pings much more than its share.
	h.mu.Lock()
	for i, s := range h.slots {
		testkit.True(t, len(s) <= len(beats)/len(h.slots)+1, "slot %d holds %d", i, len(s))
	}
	h.mu.Unlock()
}

// wheels counts the goroutines running a heartbeat wheel.
func wheels() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "actors.(*heartbeats).run(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestHeartbeatWheelChurn: entries come and go from many goroutines while
// the wheel pings (run with -race); it holds exactly those left.
func TestHeartbeatWheelChurn(t *testing.T) {
	defer leaktest.Check(t)()
	h := newHeartbeats(2*time.Millisecond, time.Minute, time.Minute)
	var wg sync.WaitGroup
	kept := make([][]*beat, 8)
	for g := range kept {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				b, _ := onWheel(h, false, i%3 == 0)
				if i%4 == 0 {
					kept[g] = append(kept[g], b)
					continue
				}
				runtime.Gosched()
				h.remove(b.e)
			}
		}()
	}
	wg.Wait()
	n := 0
	for _, k := range kept {
		n += len(k)
	}
	testkit.Equal(t, h.size(), n)
	testkit.Eventually(t, 5*time.Second, func() error {
		for _, k := range kept {
			for _, b := range k {
				if b.count() == 0 {
					return fmt.Errorf("an entry is not pinged")
				}
			}
		}
		return nil
	})
	h.close()
	h.close() // idempotent
}

// TestHungFakeKernelIsKilledAndRestarted: a kernel that stops echoing its
// heartbeat (hung) is killed once and restarted; the new launch is on the
// wheel in its stead.
func TestHungFakeKernelIsKilledAndRestarted(t *testing.T) {
	defer leaktest.Check(t)()
	f := newFakeGateway(t, func(c *Config) { c.HeartbeatInterval, c.HeartbeatTimeout = 20*time.Millisecond, time.Second })
	m := f.start()
	first := f.prov.Last(m.ID)
	echoed(t, first, 3)
	first.MuteHeartbeat(true)
	testkit.Eventually(t, 10*time.Second, func() error {
		if k := f.prov.Last(m.ID); k == first {
			return fmt.Errorf("not restarted yet")
		}
		return nil
	})
	f.waitState(m.ID, StateIdle)
	testkit.True(t, !first.Alive(), "the hung kernel runs on")
	testkit.Equal(t, first.Signals(), []syscall.Signal{syscall.SIGKILL})
	testkit.Equal(t, f.m.Restarts.Load(), uint64(1))
	echoed(t, f.prov.Last(m.ID), 3)
	testkit.Equal(t, f.g.cfg.hb.size(), 1)
	testkit.NoError(t, f.g.Close(5*time.Second))
}

// echoed waits until k has echoed n heartbeats more.
func echoed(t *testing.T, k *fake.Kernel, n uint64) {
	t.Helper()
	from := k.Heartbeats()
	testkit.Eventually(t, 10*time.Second, func() error {
		if got := k.Heartbeats() - from; got < n {
			return fmt.Errorf("%d echoes of %d", got, n)
		}
		return nil
	})
}

// TestHeartbeatWheelFollowsLaunches: every launch is on the wheel while it
// lasts, and only then: a restart replaces its entry, a shutdown removes it.
func TestHeartbeatWheelFollowsLaunches(t *testing.T) {
	defer leaktest.Check(t)()
	f := newFakeGateway(t, func(c *Config) { c.HeartbeatInterval = 10 * time.Millisecond })
	a, b := f.start(), f.start()
	testkit.Equal(t, f.g.cfg.hb.size(), 2)
	old := f.prov.Last(a.ID)
	_, err := f.g.Restart(a.ID)
	testkit.NoError(t, err)
	f.waitState(a.ID, StateIdle)
	testkit.True(t, f.prov.Last(a.ID) != old, "not restarted")
	echoed(t, f.prov.Last(a.ID), 3)
	testkit.Equal(t, f.g.cfg.hb.size(), 2)
	testkit.NoError(t, f.g.Shutdown(a.ID))
	testkit.Eventually(t, 5*time.Second, func() error {
		if n := f.g.cfg.hb.size(); n != 1 {
			return fmt.Errorf("%d entries", n)
		}
		return nil
	})
	testkit.NoError(t, f.g.Shutdown(b.ID))
	testkit.Eventually(t, 5*time.Second, func() error {
		if n := f.g.cfg.hb.size(); n != 0 {
			return fmt.Errorf("%d entries", n)
		}
		return nil
	})
	testkit.NoError(t, f.g.Close(5*time.Second))
}

// TestHeartbeatStalePollsARemoteKernel: the launcher of a remote kernel
// (a proxy.Poller) is not asked whether it lives while the kernel echoes;
// once its echoes are late it is, once per liveness interval, without the
// kernel being killed before the heartbeat timeout; when the echoes come
// back, the polls stop.
func TestHeartbeatStalePollsARemoteKernel(t *testing.T) {
	defer leaktest.Check(t)()
	f := newFakeGateway(t, func(c *Config) {
		// Stale after 510 ms: a margin over a busy machine's delays.
		c.HeartbeatInterval, c.HeartbeatTimeout, c.LivenessInterval = 20*time.Millisecond, time.Minute, 500*time.Millisecond
	})
	f.prov.SetHooks(fake.Hooks{Polled: true})
	m := f.start()
	k := f.prov.Last(m.ID)
	echoed(t, k, 75) // 1.5 s: three liveness intervals
	testkit.Equal(t, k.Polls(), 0)
	k.MuteHeartbeat(true)
	testkit.Eventually(t, 10*time.Second, func() error {
		if n := k.Polls(); n < 3 {
			return fmt.Errorf("polled %d times", n)
		}
		return nil
	})
	testkit.True(t, k.Alive() && len(k.Signals()) == 0, "the kernel was signalled: %v", k.Signals())
	k.MuteHeartbeat(false)
	echoed(t, k, 5)
	polls := k.Polls()
	echoed(t, k, 75)
	testkit.Equal(t, k.Polls(), polls)
	testkit.NoError(t, f.g.Close(5*time.Second))
}

// TestHeartbeatsOff: with a negative interval there is no wheel, no kernel
// is pinged, and a remote kernel is polled every liveness interval.
func TestHeartbeatsOff(t *testing.T) {
	defer leaktest.Check(t)()
	f := newFakeGateway(t, func(c *Config) { c.HeartbeatInterval, c.LivenessInterval = -1, 20*time.Millisecond })
	testkit.True(t, f.g.cfg.hb == nil, "a wheel with heartbeats off")
	testkit.Equal(t, wheels(), 0)
	f.prov.SetHooks(fake.Hooks{Polled: true})
	m := f.start()
	k := f.prov.Last(m.ID)
	testkit.Eventually(t, 10*time.Second, func() error {
		if n := k.Polls(); n < 3 {
			return fmt.Errorf("polled %d times", n)
		}
		return nil
	})
	testkit.Equal(t, k.Heartbeats(), uint64(0))
	testkit.NoError(t, f.g.Close(5*time.Second))
}

// TestFollowerIsPingedOnceItOwns: in a replica group the kernel's owner
// pings it; a replica that follows it does not (a silent kernel is not its
// to kill) until it takes the kernel over, its channels as they were.
func TestFollowerIsPingedOnceItOwns(t *testing.T) {
	dir := t.TempDir()
	prov := &fake.Provisioner{} // the replicas' kernels are this process's
	replica := func(id string) *fakeGateway {
		f := newFakeGateway(t, func(c *Config) {
			files := store.FileStore{Dir: dir}
			c.Store = files
			c.Proxies = proxy.NewRegistry(prov)
			c.HeartbeatInterval = 10 * time.Millisecond
			c.Replication = &Replication{ID: id, URL: "http://" + id, Group: files, Peers: noPeers{},
				LeaseDuration: time.Second, Sync: 50 * time.Millisecond}
		})
		f.prov = prov
		return f
	}
	owner, follower := replica("a"), replica("b")
	m := owner.start()
	follower.waitState(m.ID, StateIdle)
	h, err := follower.g.handle(m.ID)
	testkit.NoError(t, err)
	testkit.True(t, h.follower.Load(), "b owns the kernel")
	k := prov.Last(m.ID)
	echoed(t, k, 5)
	testkit.Equal(t, owner.g.cfg.hb.size(), 1)
	testkit.Equal(t, follower.g.cfg.hb.size(), 0)
	gen := func() uint64 {
		gens := make(chan uint64, 1)
		follower.inspect(m.ID, func(k *kernelActor) { gens <- k.gen })
		return testkit.Recv(t, gens, 5*time.Second)
	}
	followed := gen()

	testkit.NoError(t, owner.g.Close(5*time.Second)) // the kernel lives on
	testkit.Eventually(t, 15*time.Second, func() error {
		if h.follower.Load() {
			return fmt.Errorf("not taken over yet")
		}
		return nil
	})
	testkit.Eventually(t, 5*time.Second, func() error {
		if n := follower.g.cfg.hb.size(); n != 1 {
			return fmt.Errorf("%d entries", n)
		}
		return nil
	})
	echoed(t, k, 5) // b's pings: a is gone
	testkit.Equal(t, prov.Launches(), 1)
	testkit.Equal(t, gen(), followed) // adopted over the same launch
	testkit.NoError(t, follower.g.Shutdown(m.ID))
}
