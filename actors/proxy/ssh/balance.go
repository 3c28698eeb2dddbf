package ssh

import (
	"fmt"
	"slices"
	"sync"
)

// Load-balancing algorithms (EG_LOAD_BALANCING_ALGORITHM).
const (
	RoundRobin      = "round-robin"
	LeastConnection = "least-connection"
)

// balancer orders a kernel's candidate hosts. Like EG's class-wide state it
// is shared by every kernel of the provisioner: a round-robin counter, and
// for least-connection the number of kernels each host runs (counted from
// launch to cleanup).
type balancer struct {
	algorithm string

	mu   sync.Mutex
	next int
	load map[string]int
}

func newBalancer(algorithm string) (*balancer, error) {
	switch algorithm {
	case "":
		algorithm = RoundRobin
	case RoundRobin, LeastConnection:
	default:
		return nil, fmt.Errorf("load balancing algorithm %q: want %s or %s", algorithm, RoundRobin, LeastConnection)
	}
	return &balancer{algorithm: algorithm, load: make(map[string]int)}, nil
}

// order returns hosts in the order to try them: the chosen one first, then
// the others as fallbacks.
func (b *balancer) order(hosts []string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.algorithm == LeastConnection {
		out := slices.Clone(hosts)
		slices.SortStableFunc(out, func(x, y string) int { return b.load[x] - b.load[y] })
		return out
	}
	i := b.next % len(hosts)
	b.next++
	return append(slices.Clone(hosts[i:]), hosts[:i]...)
}

// acquire counts a kernel on host; release uncounts it.
func (b *balancer) acquire(host string) {
	b.mu.Lock()
	b.load[host]++
	b.mu.Unlock()
}

func (b *balancer) release(host string) {
	b.mu.Lock()
	if b.load[host]--; b.load[host] <= 0 {
		delete(b.load, host)
	}
	b.mu.Unlock()
}

// Load is the number of kernels each host runs now.
func (b *balancer) Load() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int, len(b.load))
	for h, n := range b.load {
		out[h] = n
	}
	return out
}
