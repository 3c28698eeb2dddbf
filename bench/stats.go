package bench

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Latencies collects timed samples from many goroutines.
type Latencies struct {
	start time.Time // of the run, for latency over time

	mu      sync.Mutex
	samples []sample
}

type sample struct {
	at time.Duration // since the run began
	d  time.Duration
}

func newLatencies(start time.Time) *Latencies { return &Latencies{start: start} }

// Add records one latency that ended now.
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	l.samples = append(l.samples, sample{at: time.Since(l.start), d: d})
	l.mu.Unlock()
}

// Summary is a latency distribution in milliseconds.
type Summary struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	// Histogram has one count per bucket of Buckets.
	Histogram []int `json:"histogram"`
	// Series is the latency over time, per second of the run.
	Series []Point `json:"series"`
}

// Point is one second of a latency series.
type Point struct {
	T     float64 `json:"t_s"`
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
}

// Buckets are the upper bounds (ms) of the latency histograms: 0.05 ms to
// about 2 min, four per doubling.
var Buckets = func() []float64 {
	var b []float64
	for v := 0.05; v < 150000; v *= math.Pow(2, 0.25) {
		b = append(b, math.Round(v*1000)/1000)
	}
	return b
}()

// Summarize computes the distribution; nil when there are no samples.
func (l *Latencies) Summarize() *Summary {
	l.mu.Lock()
	samples := slices.Clone(l.samples)
	l.mu.Unlock()
	if len(samples) == 0 {
		return nil
	}
	ds := make([]time.Duration, len(samples))
	var sum time.Duration
	for i, s := range samples {
		ds[i] = s.d
		sum += s.d
	}
	slices.Sort(ds)
	s := &Summary{
		Count: len(ds), Mean: ms(sum / time.Duration(len(ds))),
		P50: ms(quantile(ds, 0.50)), P95: ms(quantile(ds, 0.95)), P99: ms(quantile(ds, 0.99)), Max: ms(ds[len(ds)-1]),
		Histogram: make([]int, len(Buckets)),
	}
	for _, d := range ds {
		i, _ := slices.BinarySearch(Buckets, ms(d))
		s.Histogram[min(i, len(Buckets)-1)]++
	}
	slices.SortFunc(samples, func(a, b sample) int { return int(a.at - b.at) })
	for i := 0; i < len(samples); {
		sec := samples[i].at.Truncate(time.Second)
		j := i
		for j < len(samples) && samples[j].at.Truncate(time.Second) == sec {
			j++
		}
		window := make([]time.Duration, 0, j-i)
		for _, x := range samples[i:j] {
			window = append(window, x.d)
		}
		slices.Sort(window)
		s.Series = append(s.Series, Point{T: sec.Seconds(), Count: len(window),
			P50: ms(quantile(window, 0.5)), P95: ms(quantile(window, 0.95))})
		i = j
	}
	return s
}

// quantile of sorted ds, nearest rank.
func quantile(ds []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
