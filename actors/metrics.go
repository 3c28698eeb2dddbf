package actors

import "sync/atomic"

// Metrics are the gateway's counters, updated by the actors that own the
// events and read by anyone (tests, the metrics endpoint).
type Metrics struct {
	MessagesToClients  atomic.Uint64 // kernel messages written to websockets
	MessagesToKernels  atomic.Uint64 // client messages sent to kernels
	SlowConsumers      atomic.Uint64 // websockets disconnected for falling behind
	BufferDropped      atomic.Uint64 // messages dropped from full session buffers
	BadKernelMessages  atomic.Uint64 // kernel messages dropped (bad signature, malformed)
	KernelQueueDropped atomic.Uint64 // client messages dropped for a kernel that stopped reading
	Culled             atomic.Uint64 // kernels shut down for inactivity
	Starts             atomic.Uint64 // kernels started (first launches that came up)
	StartFailures      atomic.Uint64 // kernels that failed to start
	Restarts           atomic.Uint64 // restarts, automatic and requested
	PoolTakes          atomic.Uint64 // starts served by a warm pooled kernel
}

// Metrics returns the counters the actors update.
func (g *Gateway) Metrics() *Metrics { return g.cfg.Metrics }
