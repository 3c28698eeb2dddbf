// Package proxy defines the process-proxy interface: how a kernel is
// launched on some resource (a local process, a remote host, a pod) and how
// the kernel actor then signals, watches and stops it.
//
// Provisioners are plain Go and may block: the kernel actor calls them from
// the runner of each launch, never inside Receive.
package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/kernelgate/kernelgate/kernelspecs"
	"github.com/kernelgate/kernelgate/zmq"
	"github.com/rs/zerolog"
)

// ErrLaunch reports a kernel that could not be started at all (its binary is
// missing, its connection file cannot be written, …); errors.Is on the
// returned error also finds the cause.
var ErrLaunch = errors.New("kernel launch failed")

// ErrUnknownProxy reports a kernelspec naming a process proxy that is not
// available.
var ErrUnknownProxy = errors.New("unknown process proxy")

// LaunchRequest is what a provisioner needs to start one kernel.
type LaunchRequest struct {
	KernelID string
	Spec     kernelspecs.Spec
	// Env is the kernel's complete environment, already filtered and merged.
	Env map[string]string
	// Dir is the working directory; empty means the provisioner's default.
	Dir    string
	Logger zerolog.Logger
}

// Kernel is one launched kernel as its provisioner sees it.
type Kernel interface {
	// ConnectionInfo is where the kernel's channels listen.
	ConnectionInfo() zmq.ConnectionInfo
	// Signal delivers sig to the kernel (its process group, for local
	// kernels). Signal 0 checks liveness.
	Signal(sig syscall.Signal) error
	// Exited is closed once the kernel is gone.
	Exited() <-chan struct{}
	// ExitErr describes how the kernel ended; valid after Exited.
	ExitErr() error
	// Cleanup releases what the launch acquired (files, ports). Call it
	// once, after Exited.
	Cleanup() error
	// ProcessInfo is what the provisioner needs to find the kernel again
	// after a gateway restart (see Recoverer); it is persisted with the
	// kernel's record.
	ProcessInfo() json.RawMessage
}

// Poller is a Kernel whose end is learned only by asking, as a remote
// kernel's: the kernel actor calls Poll on its resource-manager timer, and
// Poll closes Exited once it finds the kernel gone.
type Poller interface {
	Poll() error
}

// Recoverer is a Provisioner that can take back a kernel it launched
// before the gateway restarted, from the kernel's persisted record.
type Recoverer interface {
	Recover(ctx context.Context, req RecoverRequest) (Kernel, error)
}

// RecoverRequest describes a kernel to take back.
type RecoverRequest struct {
	KernelID    string
	Spec        kernelspecs.Spec
	Connection  zmq.ConnectionInfo
	ProcessInfo json.RawMessage
	Logger      zerolog.Logger
}

// ErrGone reports a kernel that is no longer there to recover.
var ErrGone = errors.New("kernel is gone")

// Provisioner launches kernels on one kind of resource.
type Provisioner interface {
	// Launch starts a kernel and returns once its connection info is known.
	// It does not wait for the kernel to answer.
	Launch(ctx context.Context, req LaunchRequest) (Kernel, error)
}

// Retirer is a Provisioner that holds something for a kernel across its
// launches (a namespace it created for the kernel's pods): the kernel actor
// calls Retire once the kernel has ended for good (shut down, culled, or
// dead after its restarts), off the actor and after the last launch's
// Cleanup. It is not called for a restart, nor for a kernel left running
// for the next gateway process.
type Retirer interface {
	Retire(ctx context.Context, kernelID string) error
}

// Sweeper is a Provisioner that can find what it launched for an earlier
// gateway process: the gateway calls Sweep once at start, in the
// background, after it has taken back the recorded kernels, with their ids.
// Whatever else of its own Sweep finds, and did not launch itself since,
// nobody will ever claim (the earlier process crashed, or kept no records),
// so it ends it.
type Sweeper interface {
	Sweep(ctx context.Context, recovered []string) error
}

// Registry maps process-proxy class names to provisioners. EG's Python class
// names are accepted as aliases of ours.
type Registry struct {
	byName   map[string]Provisioner
	all      []Provisioner
	fallback Provisioner
}

// NewRegistry returns a registry whose kernelspecs without a process proxy
// use fallback.
func NewRegistry(fallback Provisioner) *Registry {
	return &Registry{byName: make(map[string]Provisioner), fallback: fallback}
}

// Register makes p available under each name.
func (r *Registry) Register(p Provisioner, names ...string) {
	r.all = append(r.all, p)
	for _, n := range names {
		r.byName[strings.ToLower(n)] = p
	}
}

// Provisioners returns the fallback, then each provisioner as it was
// registered (once per Register call).
func (r *Registry) Provisioners() []Provisioner {
	return append([]Provisioner{r.fallback}, r.all...)
}

// For returns the provisioner a kernelspec asks for.
func (r *Registry) For(spec kernelspecs.Spec) (Provisioner, error) {
	name := spec.ProcessProxy.ClassName
	if name == "" {
		return r.fallback, nil
	}
	if p, ok := r.byName[strings.ToLower(name)]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("%w: kernelspec %s asks for %q", ErrUnknownProxy, spec.Name, name)
}

// Stop ends a kernel: SIGTERM, then SIGKILL if it is still there after
// grace, then waits (bounded) for it to be gone. It returns whether the
// kernel exited.
func Stop(k Kernel, grace time.Duration) bool {
	k.Signal(syscall.SIGTERM)
	if waitExit(k, grace) {
		return true
	}
	k.Signal(syscall.SIGKILL)
	return waitExit(k, 5*time.Second)
}

// stopPollInterval is how often Stop asks a Poller whether it has ended.
const stopPollInterval = 100 * time.Millisecond

// waitExit waits up to d for k to exit, polling it if it is a Poller.
func waitExit(k Kernel, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	var tick <-chan time.Time
	p, polled := k.(Poller)
	if polled {
		t := time.NewTicker(stopPollInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-k.Exited():
			return true
		case <-deadline.C:
			return false
		case <-tick:
			p.Poll()
		}
	}
}

// IsHostVariable reports whether a variable of a kernel's environment
// describes the gateway's own machine (its search path, home, user, shell,
// working and temporary directories): a kernel that runs elsewhere, on
// another host or in a pod, must not get it.
func IsHostVariable(name string) bool {
	switch name {
	case "PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "TMPDIR", "LS_COLORS":
		return true
	}
	return false
}

// Unavailable is a provisioner that cannot be used (its configuration is
// incomplete): every launch fails with Err, and nothing else is affected.
type Unavailable struct{ Err error }

func (u Unavailable) Launch(context.Context, LaunchRequest) (Kernel, error) {
	return nil, fmt.Errorf("%w: process proxy unavailable: %w", ErrLaunch, u.Err)
}
