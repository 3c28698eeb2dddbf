package ports

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/kernelgate/kernelgate/zmq"
)

// Allocator hands out free TCP ports of a range on one IP. A port it has
// handed out is not handed out again until it is released or its hold
// expires, so two kernels started at the same moment never get the same
// port even before either kernel has bound it.
//
// The local kernels' default range, 20000–32767 (see DefaultLocal), lies
// below both Linux's ephemeral range (32768–60999) and the range pyzmq's
// bind_to_random_port uses (49152–65535): a kernel's own random sockets
// (ipykernel binds one for its iopub thread) or any outgoing connection can
// then never take a port between our choice and the kernel's bind.
type Allocator struct {
	ip   string
	r    Range
	hold time.Duration
	mu   sync.Mutex
	held map[int]time.Time
}

// DefaultLocal is the range of local kernels' ports.
var DefaultLocal = Range{Low: 20000, High: 32767}

// NewAllocator returns an allocator of r's ports on ip that reserves each
// port it hands out for hold (until released).
func NewAllocator(ip string, r Range, hold time.Duration) *Allocator {
	return &Allocator{ip: ip, r: r, hold: hold, held: make(map[int]time.Time)}
}

// IP is the address the ports are on.
func (a *Allocator) IP() string { return a.ip }

// Allocate returns n distinct free ports: each is bound to prove it free,
// and all are let go together for the kernel to bind.
func (a *Allocator) Allocate(n int) ([]int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	for p, until := range a.held {
		if now.After(until) {
			delete(a.held, p)
		}
	}
	ports := make([]int, 0, n)
	// Keep every probe listener open until all n are chosen.
	var open []net.Listener
	defer func() {
		for _, l := range open {
			l.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 200*n {
			return nil, fmt.Errorf("ports: no free ports on %s in %s", a.ip, a.r)
		}
		l, err := a.r.Listen(a.ip)
		if err != nil {
			continue // taken by someone else
		}
		open = append(open, l)
		p := l.Addr().(*net.TCPAddr).Port
		if _, taken := a.held[p]; taken {
			continue
		}
		a.held[p] = now.Add(a.hold)
		ports = append(ports, p)
	}
	return ports, nil
}

// ConnectionInfo allocates a kernel's five channel ports and returns its
// connection info with a fresh key.
func (a *Allocator) ConnectionInfo(kernelName string) (zmq.ConnectionInfo, error) {
	p, err := a.Allocate(5)
	if err != nil {
		return zmq.ConnectionInfo{}, err
	}
	return zmq.NewConnectionInfo(a.ip, p, kernelName), nil
}

// Release makes ports available again.
func (a *Allocator) Release(ports ...int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range ports {
		delete(a.held, p)
	}
}
