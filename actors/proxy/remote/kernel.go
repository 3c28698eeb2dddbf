package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/zmq"
)

// Kernel is a kernel that a launcher reported: its channels and comm port
// are on the host it was launched on. It learns of the kernel's end only by
// asking the comm port (Poll): a refused connection means the launcher,
// which lives exactly as long as its kernel, is gone.
type Kernel struct {
	ci      zmq.ConnectionInfo
	comm    string
	opts    KernelOptions
	exited  chan struct{}
	once    sync.Once
	exitErr error
}

// KernelOptions are what the provisioner adds to a reported kernel.
type KernelOptions struct {
	// CommTimeout bounds each comm-port request (EG_SOCKET_TIMEOUT).
	CommTimeout time.Duration
	// Fallback delivers a signal another way (a kill over SSH) when the
	// comm port cannot be reached for another reason than a refusal; nil
	// for none.
	Fallback func(sig syscall.Signal) error
	// Cleanup removes what is left on the host once the kernel has ended.
	Cleanup func() error
	// ProcessInfo is persisted to find the kernel again.
	ProcessInfo json.RawMessage
}

var (
	_ proxy.Kernel = (*Kernel)(nil)
	_ proxy.Poller = (*Kernel)(nil)
)

// NewKernel returns the kernel a payload describes, reached at host (the
// payload's own ip is the launcher's bind address, often 0.0.0.0, so EG
// too dials the host it launched on).
func NewKernel(p Payload, host string, opts KernelOptions) *Kernel {
	ci := p.ConnectionInfo
	ci.IP = host
	if ci.Transport == "" {
		ci.Transport = "tcp"
	}
	return &Kernel{ci: ci, comm: net.JoinHostPort(host, strconv.Itoa(int(p.CommPort))), opts: opts,
		exited: make(chan struct{})}
}

func (k *Kernel) ConnectionInfo() zmq.ConnectionInfo { return k.ci }
func (k *Kernel) Exited() <-chan struct{}            { return k.exited }
func (k *Kernel) ProcessInfo() json.RawMessage       { return k.opts.ProcessInfo }

// CommAddress is the launcher's comm port, host:port.
func (k *Kernel) CommAddress() string { return k.comm }

// ExitErr says how the kernel was found gone; valid after Exited.
func (k *Kernel) ExitErr() error { return k.exitErr }

// Signal asks the launcher to signal the kernel.
func (k *Kernel) Signal(sig syscall.Signal) error {
	select {
	case <-k.exited:
		return os.ErrProcessDone
	default:
	}
	err := SendComm(context.Background(), k.comm, SignalRequest(sig), k.opts.CommTimeout)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrRefused):
		k.End(fmt.Errorf("the launcher's comm port %s refuses connections: the kernel has ended", k.comm))
		return os.ErrProcessDone
	case sig != 0 && k.opts.Fallback != nil:
		return k.opts.Fallback(sig)
	}
	return err
}

// Poll checks that the kernel lives; Exited closes when it does not.
func (k *Kernel) Poll() error { return k.Signal(0) }

// Cleanup tells the launcher to stop, if it still listens, then clears the
// host.
func (k *Kernel) Cleanup() error {
	k.End(errors.New("the kernel was stopped"))
	SendComm(context.Background(), k.comm, ShutdownRequest, k.opts.CommTimeout)
	if k.opts.Cleanup != nil {
		return k.opts.Cleanup()
	}
	return nil
}

// End marks the kernel gone, with err as how it ended: for a provisioner
// that learns of the end another way (a resource manager's status) than by
// a refused comm port. Only the first call counts.
func (k *Kernel) End(err error) {
	k.once.Do(func() {
		k.exitErr = err
		close(k.exited)
	})
}
