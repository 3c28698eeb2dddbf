// Package fake is an in-process provisioner for tests. Its kernels are
// synthetic kernels (bench/synthkernel) served by goroutines of the test
// process on loopback, speaking the real wire protocol, and every call the
// kernel actor makes on them can be scripted to fail, hang or die. Lifecycle
// races are then tested in milliseconds, with no Python.
package fake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/google/uuid"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/bench/synthkernel"
	"github.com/kernelgate/kernelgate/zmq"
)

// Hooks script a provisioner's kernels. Each hook runs in place of nothing:
// it runs first, may block (a hung resource manager) and its error is
// returned; with a nil error the usual behaviour follows.
type Hooks struct {
	// Launch runs at the start of the n-th launch (1-based).
	Launch func(ctx context.Context, n int, req proxy.LaunchRequest) error
	// Signal runs before a signal is delivered.
	Signal func(k *Kernel, sig syscall.Signal) error
	// Cleanup runs before a kernel's cleanup.
	Cleanup func(k *Kernel) error
	// Stubborn kernels answer shutdown_request and go on running, as hung
	// kernels do: only a signal ends them.
	Stubborn bool
	// Polled kernels are proxy.Pollers, as remote kernels are: the
	// gateway asks them whether they live (see Kernel.Polls).
	Polled bool
}

// Provisioner launches synthetic kernels in this process.
type Provisioner struct {
	mu       sync.Mutex
	hooks    Hooks
	launches int
	kernels  []*Kernel
}

var (
	_ proxy.Provisioner = (*Provisioner)(nil)
	_ proxy.Recoverer   = (*Provisioner)(nil)
)

// SetHooks replaces the hooks; kernels already running use the new ones.
func (p *Provisioner) SetHooks(h Hooks) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hooks = h
}

func (p *Provisioner) hooksNow() Hooks {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hooks
}

// Launches returns how many launches were asked for.
func (p *Provisioner) Launches() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.launches
}

// Kernels returns every kernel launched, oldest first.
func (p *Provisioner) Kernels() []*Kernel {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Kernel(nil), p.kernels...)
}

// Last returns the kernel launched last for id, or nil.
func (p *Provisioner) Last(id string) *Kernel {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.kernels) - 1; i >= 0; i-- {
		if p.kernels[i].ID == id {
			return p.kernels[i]
		}
	}
	return nil
}

// Launch starts a synthetic kernel on 127.0.0.1.
func (p *Provisioner) Launch(ctx context.Context, req proxy.LaunchRequest) (proxy.Kernel, error) {
	p.mu.Lock()
	p.launches++
	n, hooks := p.launches, p.hooks
	p.mu.Unlock()
	if hooks.Launch != nil {
		if err := hooks.Launch(ctx, n, req); err != nil {
			return nil, fmt.Errorf("%w: %w", proxy.ErrLaunch, err)
		}
	}
	ci := zmq.ConnectionInfo{IP: "127.0.0.1", Transport: "tcp", SignatureScheme: "hmac-sha256", Key: uuid.NewString(), KernelName: req.Spec.Name}
	syn, err := synthkernel.Start(context.Background(), ci)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", proxy.ErrLaunch, err)
	}
	if hooks.Stubborn {
		syn.Stubborn()
	}
	k := &Kernel{ID: req.KernelID, Env: req.Env, p: p, syn: syn, exited: make(chan struct{})}
	go func() {
		<-syn.Done()
		k.exitOnce.Do(func() { close(k.exited) })
	}()
	p.mu.Lock()
	p.kernels = append(p.kernels, k)
	p.mu.Unlock()
	if hooks.Polled {
		return polled{k}, nil
	}
	return k, nil
}

// Recover takes back a kernel this provisioner launched that still runs,
// as a replica taking a kernel over from another of the same process
// does; any other kernel is gone.
func (p *Provisioner) Recover(_ context.Context, req proxy.RecoverRequest) (proxy.Kernel, error) {
	k := p.Last(req.KernelID)
	if k == nil || !k.Alive() {
		return nil, fmt.Errorf("%w: kernel %s", proxy.ErrGone, req.KernelID)
	}
	if p.hooksNow().Polled {
		return polled{k}, nil
	}
	return k, nil
}

// polled is a Kernel that is a proxy.Poller.
type polled struct{ *Kernel }

var _ proxy.Poller = polled{}

// Poll counts the call and reports a kernel that has ended.
func (p polled) Poll() error {
	p.mu.Lock()
	p.polls++
	p.mu.Unlock()
	if !p.Alive() {
		return errors.New("kernel gone")
	}
	return nil
}

// Kernel is one synthetic kernel as its provisioner sees it.
type Kernel struct {
	ID  string
	Env map[string]string

	p   *Provisioner
	syn *synthkernel.Kernel

	mu       sync.Mutex
	signals  []syscall.Signal
	cleanups int
	polls    int
	exitErr  error
	exitOnce sync.Once
	exited   chan struct{}
}

var _ proxy.Kernel = (*Kernel)(nil)

func (k *Kernel) ConnectionInfo() zmq.ConnectionInfo { return k.syn.ConnectionInfo() }
func (k *Kernel) Exited() <-chan struct{}            { return k.exited }
func (k *Kernel) ProcessInfo() json.RawMessage       { return json.RawMessage(`{"fake":true}`) }

// ExitErr says how the kernel ended: nil after a shutdown_request, else
// what killed it.
func (k *Kernel) ExitErr() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.exitErr
}

// Signal delivers sig after the Signal hook: SIGINT interrupts, SIGTERM and
// SIGKILL end the kernel, 0 checks it lives.
func (k *Kernel) Signal(sig syscall.Signal) error {
	if h := k.p.hooksNow().Signal; h != nil {
		if err := h(k, sig); err != nil {
			return err
		}
	}
	k.mu.Lock()
	k.signals = append(k.signals, sig)
	k.mu.Unlock()
	switch sig {
	case 0:
		if !k.Alive() {
			return errors.New("process done")
		}
	case syscall.SIGINT:
		k.syn.Interrupt()
	case syscall.SIGTERM, syscall.SIGKILL:
		k.Die(fmt.Errorf("signal: %s", sig))
	}
	return nil
}

// Die ends the kernel as a crash would, with err as its exit.
func (k *Kernel) Die(err error) {
	k.mu.Lock()
	if k.Alive() && k.exitErr == nil {
		k.exitErr = err
	}
	k.mu.Unlock()
	k.syn.Stop()
	<-k.exited
}

// Cleanup counts the call after the Cleanup hook.
func (k *Kernel) Cleanup() error {
	if h := k.p.hooksNow().Cleanup; h != nil {
		if err := h(k); err != nil {
			return err
		}
	}
	k.mu.Lock()
	k.cleanups++
	k.mu.Unlock()
	k.syn.Stop()
	return nil
}

// Alive reports whether the kernel still runs.
func (k *Kernel) Alive() bool {
	select {
	case <-k.exited:
		return false
	default:
		return true
	}
}

// Signals returns the signals delivered so far.
func (k *Kernel) Signals() []syscall.Signal {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]syscall.Signal(nil), k.signals...)
}

// Polls returns how often a Polled kernel was asked whether it lives.
func (k *Kernel) Polls() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.polls
}

// MuteHeartbeat stops (or, false, resumes) the kernel's heartbeat echoes;
// it goes on running, as a hung kernel does.
func (k *Kernel) MuteHeartbeat(mute bool) { k.syn.MuteHeartbeat(mute) }

// Heartbeats returns how many heartbeat pings the kernel has echoed.
func (k *Kernel) Heartbeats() uint64 { return k.syn.Heartbeats() }

// Cleanups returns how often Cleanup completed.
func (k *Kernel) Cleanups() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cleanups
}
