package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/local"
	"github.com/kernelgate/kernelgate/actors/proxy/ports"
	"github.com/kernelgate/kernelgate/kernelspecs"
	"github.com/kernelgate/kernelgate/zmq"
	"github.com/rs/zerolog"
)

// Direct is the limit: a Backend that launches the kernelspec itself (with
// the same local launcher kernelgate uses) and talks to the kernel over
// ZMQ, with no gateway in between.
type Direct struct {
	spec kernelspecs.Spec
	prov *local.Provisioner
	dir  string

	mu      sync.Mutex
	kernels map[string]proxy.Kernel
}

// DirectPorts is the port range of kernels the harness runs itself, apart
// from kernelgate's default range so both can run on one host.
const DirectPortLow, DirectPortHigh = 15000, 19999

// NewDirect finds the kernelspec named kernel on the local Jupyter path.
func NewDirect(kernel string) (*Direct, error) {
	specs, _, err := kernelspecs.Discover(kernelspecs.SearchPath())
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	spec, ok := specs[strings.ToLower(kernel)]
	if !ok {
		return nil, fmt.Errorf("bench: no local kernelspec %q (the limit runs kernels itself; set JUPYTER_PATH)", kernel)
	}
	dir, err := os.MkdirTemp("", "kernelgate-bench-")
	if err != nil {
		return nil, err
	}
	alloc := ports.NewAllocator("127.0.0.1", ports.Range{Low: DirectPortLow, High: DirectPortHigh}, time.Minute)
	return &Direct{spec: spec, dir: dir, kernels: make(map[string]proxy.Kernel),
		prov: &local.Provisioner{Ports: alloc, RuntimeDir: filepath.Join(dir, "runtime")}}, nil
}

// Start launches a kernel process.
func (d *Direct) Start(ctx context.Context) (string, error) {
	id := uuid.NewString()
	env := make(map[string]string)
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	env["KERNEL_ID"] = id
	k, err := d.prov.Launch(ctx, proxy.LaunchRequest{KernelID: id, Spec: d.spec, Env: env, Logger: zerolog.Nop()})
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	d.kernels[id] = k
	d.mu.Unlock()
	return id, nil
}

func (d *Direct) kernel(id string) (proxy.Kernel, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k, ok := d.kernels[id]
	if !ok {
		return nil, fmt.Errorf("bench: no kernel %s", id)
	}
	return k, nil
}

// Connect dials the kernel's channels.
func (d *Direct) Connect(ctx context.Context, id string) (Conn, error) {
	k, err := d.kernel(id)
	if err != nil {
		return nil, err
	}
	z := &zmqConn{}
	z.tracker = newTracker(uuid.NewString(), func(ch zmq.Channel, m *zmq.Message) error { return z.c.Send(ch, m) })
	c, err := zmq.Connect(ctx, k.ConnectionInfo(), zmq.Options{Deliver: func(r zmq.Received) {
		if r.Err == nil {
			z.observe(r.Channel, r.Msg)
		}
	}})
	if err != nil {
		return nil, err
	}
	z.c = c
	return z, nil
}

// Stop ends the kernel's process and removes its files.
func (d *Direct) Stop(_ context.Context, id string) error {
	k, err := d.kernel(id)
	if err != nil {
		return err
	}
	d.mu.Lock()
	delete(d.kernels, id)
	d.mu.Unlock()
	proxy.Stop(k, 2*time.Second)
	return k.Cleanup()
}

// Language is the kernelspec's.
func (d *Direct) Language(context.Context) (string, error) {
	return strings.ToLower(d.spec.Language), nil
}

// Close stops every kernel still running and removes the runtime files.
func (d *Direct) Close() error {
	d.mu.Lock()
	ids := make([]string, 0, len(d.kernels))
	for id := range d.kernels {
		ids = append(ids, id)
	}
	d.mu.Unlock()
	for _, id := range ids {
		d.Stop(context.Background(), id)
	}
	return os.RemoveAll(d.dir)
}

// zmqConn is a client on the kernel's own channels.
type zmqConn struct {
	*tracker
	c *zmq.Client
}

func (z *zmqConn) Close() error {
	err := z.c.Close()
	z.closeAll()
	return err
}
