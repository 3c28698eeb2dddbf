package actors

import (
	"sort"
	"sync/atomic"
	"time"
)

// Metrics are the gateway's counters, updated by the actors that own the
// events and read by anyone (tests, the metrics endpoint). The two message
// counters are written from every connection, once per batch of writes
// (never per message): each sits on a cache line of its own, so they do
// not slow each other or the rest down.
type Metrics struct {
	MessagesToClients atomic.Uint64 // kernel messages written to websockets
	_                 [56]byte
	MessagesToKernels atomic.Uint64 // client messages sent to kernels
	_                 [56]byte

	SlowConsumers      atomic.Uint64 // websockets disconnected for falling behind
	MessagesMerged     atomic.Uint64 // messages merged into others for clients that fell behind
	MergeBytesSaved    atomic.Uint64 // bytes those merges saved
	BufferDropped      atomic.Uint64 // messages dropped from full session buffers
	BadKernelMessages  atomic.Uint64 // kernel messages dropped (bad signature, malformed)
	KernelQueueDropped atomic.Uint64 // client messages dropped for a kernel that stopped reading
	Culled             atomic.Uint64 // kernels shut down for inactivity
	Starts             atomic.Uint64 // kernels started (first launches that came up)
	StartFailures      atomic.Uint64 // kernels that failed to start
	Restarts           atomic.Uint64 // restarts, automatic and requested
	PoolTakes          atomic.Uint64 // starts served by a warm pooled kernel
	RateLimited        atomic.Uint64 // iopub messages dropped by the rate limits
	RunnerRefused      atomic.Uint64 // provisioner calls refused: a kernel's earlier calls hang
	SessionsEvicted    atomic.Uint64 // detached sessions dropped to keep within the bounds
	SessionGaps        atomic.Uint64 // sessions that moved replica and could not be told where they stood
	RepliesRebuilt     atomic.Uint64 // execute replies rebuilt for clients whose replica died (kernel_orphans.go)
	// DetachedSessions is how many sessions wait for their client to come
	// back, across kernels (bounded by Config.MaxDetachedSessions).
	DetachedSessions atomic.Int64
	// StartDurations: from admission to the kernel being up (its channels
	// connected), or to a pooled kernel handed over.
	StartDurations Durations
	// ShutdownDurations: from a shutdown request to the kernel gone.
	ShutdownDurations Durations
}

// Metrics returns the counters the actors update.
func (g *Gateway) Metrics() *Metrics { return g.cfg.Metrics }

// DurationBuckets are the upper bounds, in seconds, of the duration
// histograms: from a pooled take (milliseconds) to a slow remote start.
var DurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// Durations is a histogram of durations that many goroutines update
// without a lock.
type Durations struct {
	counts [15]atomic.Uint64 // per bucket of DurationBuckets, then +Inf
	micros atomic.Uint64     // sum
}

// Observe records one duration.
func (d *Durations) Observe(x time.Duration) {
	s := x.Seconds()
	i := sort.SearchFloat64s(DurationBuckets, s)
	d.counts[i].Add(1)
	d.micros.Add(uint64(x.Microseconds()))
}

// Snapshot returns the count, the sum in seconds and the cumulative count
// at each bucket's upper bound, as Prometheus histograms want them.
func (d *Durations) Snapshot() (count uint64, sum float64, cumulative map[float64]uint64) {
	cumulative = make(map[float64]uint64, len(DurationBuckets))
	for i, ub := range DurationBuckets {
		count += d.counts[i].Load()
		cumulative[ub] = count
	}
	count += d.counts[len(DurationBuckets)].Load()
	return count, float64(d.micros.Load()) / 1e6, cumulative
}
