package http

import (
	"encoding/json"
	"math"
	"runtime"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/prometheus/procfs"
)

const (
	// vitalsEvery is how often the gateway's vitals are sampled.
	vitalsEvery = 5 * time.Second
	// vitalsKept is an hour of samples.
	vitalsKept = int(time.Hour / vitalsEvery)
	// startWindow is the span of the start latency quantiles of a sample:
	// starts are rare, a quantile over 5 seconds would mostly be empty.
	startWindow = time.Minute
)

// vitalPoint is one sample of the gateway's vitals.
type vitalPoint struct {
	T           float64 // unix seconds, the charts' time axis
	States      map[string]int
	Connections int
	RateIn      float64 // client messages to kernels per second since the last sample
	RateOut     float64 // kernel messages to clients per second
	// StartP50 and StartP95 are the start latency quantiles (ms) over
	// startWindow; NaN when nothing started.
	StartP50, StartP95 float64
	RSSMiB             float64
	Goroutines         int
	FDs                int
}

// vitalStates are the kernel states charted: execution states and, for
// warm pools, pooled and booting kernels.
var vitalStates = []string{actors.StateStarting, actors.StateIdle, actors.StateBusy, actors.StateRestarting, actors.StateDead, "pooled", "pool_booting"}

// vitalFields name a sample's figures once, for the JSON of one point and
// of the history's columns alike.
var vitalFields = func() []struct {
	name string
	get  func(*vitalPoint) any
} {
	f := []struct {
		name string
		get  func(*vitalPoint) any
	}{
		{"t", func(p *vitalPoint) any { return p.T }},
		{"connections", func(p *vitalPoint) any { return p.Connections }},
		{"rate_in", func(p *vitalPoint) any { return p.RateIn }},
		{"rate_out", func(p *vitalPoint) any { return p.RateOut }},
		{"start_p50", func(p *vitalPoint) any { return orNull(p.StartP50) }},
		{"start_p95", func(p *vitalPoint) any { return orNull(p.StartP95) }},
		{"rss_mib", func(p *vitalPoint) any { return p.RSSMiB }},
		{"goroutines", func(p *vitalPoint) any { return p.Goroutines }},
		{"fds", func(p *vitalPoint) any { return p.FDs }},
	}
	for _, s := range vitalStates {
		f = append(f, struct {
			name string
			get  func(*vitalPoint) any
		}{"kernels_" + s, func(p *vitalPoint) any { return p.States[s] }})
	}
	return f
}()

// orNull is x, or nil (JSON null, a gap in a chart) for NaN.
func orNull(x float64) any {
	if math.IsNaN(x) {
		return nil
	}
	return math.Round(x*100) / 100
}

func (p *vitalPoint) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(vitalFields))
	for _, f := range vitalFields {
		m[f.name] = f.get(p)
	}
	return json.Marshal(m)
}

// vitals is the last hour of samples, a ring. Only live.run touches it.
type vitals struct {
	points []vitalPoint
	next   int // once full, the oldest
	// For the rates: the message counters at the last sample.
	lastAt          time.Time
	lastIn, lastOut uint64
	// For the start quantiles: the start histogram's cumulative counts at
	// each sample within startWindow, oldest first.
	starts []startCounts
}

type startCounts struct {
	at         time.Time
	cumulative []uint64 // per actors.DurationBuckets, then the total
}

func newVitals() *vitals { return &vitals{points: make([]vitalPoint, 0, vitalsKept)} }

// sample reads the gateway and the process, keeps the point and returns it.
func (v *vitals) sample(gw *actors.Gateway, now time.Time) *vitalPoint {
	p := vitalPoint{T: float64(now.UnixMilli()) / 1000, States: make(map[string]int, len(vitalStates)), Goroutines: runtime.NumGoroutine()}
	for _, k := range gw.Kernels() {
		p.States[k.ExecutionState]++
		p.Connections += k.Connections
	}
	for _, pool := range gw.Pools() {
		p.States["pooled"] += pool.Warm
		p.States["pool_booting"] += pool.Starting
	}
	m := gw.Metrics()
	in, out := m.MessagesToKernels.Load(), m.MessagesToClients.Load()
	if dt := now.Sub(v.lastAt).Seconds(); !v.lastAt.IsZero() && dt > 0 {
		p.RateIn = math.Round(float64(in-v.lastIn)/dt*10) / 10
		p.RateOut = math.Round(float64(out-v.lastOut)/dt*10) / 10
	}
	v.lastAt, v.lastIn, v.lastOut = now, in, out
	p.StartP50, p.StartP95 = v.startQuantiles(&m.StartDurations, now)
	if proc, err := procfs.Self(); err == nil {
		if st, err := proc.Stat(); err == nil {
			p.RSSMiB = math.Round(float64(st.ResidentMemory())/(1<<20)*10) / 10
		}
		if n, err := proc.FileDescriptorsLen(); err == nil {
			p.FDs = n
		}
	}
	if len(v.points) < vitalsKept {
		v.points = append(v.points, p)
		return &v.points[len(v.points)-1]
	}
	v.points[v.next] = p
	v.next = (v.next + 1) % vitalsKept
	return &p
}

// startQuantiles returns the p50 and p95 (ms) of the starts within
// startWindow, NaN when there were none, estimated from the histogram's
// buckets as Prometheus's histogram_quantile does.
func (v *vitals) startQuantiles(d *actors.Durations, now time.Time) (p50, p95 float64) {
	total, _, cum := d.Snapshot()
	cur := startCounts{at: now, cumulative: make([]uint64, len(actors.DurationBuckets)+1)}
	for i, ub := range actors.DurationBuckets {
		cur.cumulative[i] = cum[ub]
	}
	cur.cumulative[len(actors.DurationBuckets)] = total
	for len(v.starts) > 0 && now.Sub(v.starts[0].at) > startWindow {
		v.starts = v.starts[1:]
	}
	v.starts = append(v.starts, cur)
	base := v.starts[0].cumulative
	delta := make([]uint64, len(cur.cumulative))
	for i := range delta {
		delta[i] = cur.cumulative[i] - base[i]
	}
	return quantile(delta, 0.5), quantile(delta, 0.95)
}

// quantile estimates the q-quantile (ms) of a histogram given as cumulative
// counts per actors.DurationBuckets and then the total, interpolating
// within the bucket it falls in; NaN for an empty one. Beyond the last
// bucket it answers the last bound.
func quantile(cumulative []uint64, q float64) float64 {
	bounds := actors.DurationBuckets
	total := cumulative[len(bounds)]
	if total == 0 {
		return math.NaN()
	}
	rank := q * float64(total)
	lower, below := 0.0, uint64(0)
	for i, ub := range bounds {
		if float64(cumulative[i]) >= rank {
			in := cumulative[i] - below
			if in == 0 {
				return ub * 1000
			}
			return (lower + (ub-lower)*(rank-float64(below))/float64(in)) * 1000
		}
		lower, below = ub, cumulative[i]
	}
	return bounds[len(bounds)-1] * 1000
}

// columns is the history as the charts take it: one array per figure,
// oldest first.
func (v *vitals) columns() map[string]any {
	ordered := append(append([]vitalPoint(nil), v.points[v.next:]...), v.points[:v.next]...)
	out := make(map[string]any, len(vitalFields))
	for _, f := range vitalFields {
		col := make([]any, len(ordered))
		for i := range ordered {
			col[i] = f.get(&ordered[i])
		}
		out[f.name] = col
	}
	return out
}
