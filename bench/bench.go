package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// Target is the gateway under test.
type Target struct {
	// URL is http[s]://host:port[/base].
	URL   string
	Token string
	// Kernel is the kernelspec name.
	Kernel string
	// Protocol is the websocket framing asked for: "v1" or "legacy".
	Protocol string
}

// Options configure a run. Zero values get the defaults of DefaultOptions.
type Options struct {
	Target
	// Direct runs the limit instead: kernels launched by the harness and
	// read over ZMQ, no gateway.
	Direct bool
	// Label names the run in reports and comparisons.
	Label     string
	Scenarios []string

	Starts, ConcurrentStarts int // start: sequential and concurrent starts
	RTTCount                 int // rtt: round trips
	RTTCode                  string
	StreamCount, StreamSize  int // stream and fanout: messages per cell, bytes each
	Fanout                   int // fanout: websockets on one kernel
	Users                    int // users: simulated users, one kernel each
	UserInterval             time.Duration
	UserDuration             time.Duration
	ChurnDuration            time.Duration
	ChurnConcurrency         int
	FloodDuration            time.Duration // flood: how long the other kernel floods
	// Replicas are the replica group behind URL, for failover.
	Replicas []Replica
	// OpTimeout bounds every single operation (a start, a cell).
	OpTimeout time.Duration
	// FailFast ends the run at the first error; by default errors are
	// counted and reported.
	FailFast bool

	// Sampler reads the gateway's CPU, memory, fds and goroutines; nil
	// leaves those figures out.
	Sampler Sampler
	// Progress reports how far each scenario is; nil is silent.
	Progress Progress
}

// Scenarios lists the standard suite's scenarios in the order a run takes
// them; the others (a replica group's failover) come after.
var Scenarios = []string{"start", "rtt", "stream", "fanout", "flood", "users", "churn"}

// order is the order of every scenario.
var order = append(slices.Clone(Scenarios), "failover")

// DefaultOptions is the standard suite.
func DefaultOptions() Options {
	return Options{
		Target:    Target{URL: "http://127.0.0.1:8888", Kernel: "python3", Protocol: "v1"},
		Scenarios: Scenarios,
		Starts:    5, ConcurrentStarts: 5,
		RTTCount:    200,
		StreamCount: 20000, StreamSize: 64,
		Fanout:       8,
		Users:        10,
		UserInterval: time.Second, UserDuration: 20 * time.Second,
		ChurnDuration: 20 * time.Second, ChurnConcurrency: 4,
		FloodDuration: 20 * time.Second,
		OpTimeout:     2 * time.Minute,
	}
}

// Report is the outcome of a run.
type Report struct {
	Label    string    `json:"label"`
	Target   string    `json:"target"` // the URL, or "direct"
	Kernel   string    `json:"kernel"`
	Language string    `json:"language"`
	Protocol string    `json:"protocol,omitempty"`
	Started  time.Time `json:"started"`
	Host     string    `json:"host"`
	Results  []*Result `json:"results"`
}

// Result is one scenario's outcome.
type Result struct {
	Scenario string         `json:"scenario"`
	Params   map[string]any `json:"params"`
	Seconds  float64        `json:"seconds"`
	Ops      int            `json:"ops"`
	Errors   int            `json:"errors"`
	// ErrorSamples are the first few errors, verbatim.
	ErrorSamples []string `json:"error_samples,omitempty"`
	// Latency holds the distributions the scenario measured, by name.
	Latency map[string]*Summary `json:"latency,omitempty"`
	// MsgsPerSec is the stream messages delivered per second, to all
	// connections together.
	MsgsPerSec float64          `json:"msgs_per_sec,omitempty"`
	Counts     map[string]int64 `json:"counts,omitempty"`
	// Cost is the gateway's CPU and memory for the messages forwarded.
	Cost      *Cost       `json:"gateway_cost,omitempty"`
	Resources []Resources `json:"resources,omitempty"`

	mu sync.Mutex
}

// Cost is what forwarding took from the gateway process.
type Cost struct {
	CPUSecondsPer100k float64 `json:"cpu_s_per_100k_msgs"`
	RSSBytes          int64   `json:"rss_bytes"`
}

const maxErrorSamples = 5

// fail counts err; with FailFast it is returned to end the run.
func (r *Result) fail(run *runner, err error) error {
	r.mu.Lock()
	r.Errors++
	if len(r.ErrorSamples) < maxErrorSamples {
		r.ErrorSamples = append(r.ErrorSamples, err.Error())
	}
	r.mu.Unlock()
	if run.opts.FailFast {
		return err
	}
	return nil
}

func (r *Result) op() {
	r.mu.Lock()
	r.Ops++
	r.mu.Unlock()
}

// runner is one run's shared state.
type runner struct {
	opts     Options
	backend  Backend
	language string
	start    time.Time
	progress Progress
}

// Run runs the chosen scenarios in order against opts' target.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts = withDefaults(opts)
	for _, s := range opts.Scenarios {
		if _, ok := scenarios[s]; !ok {
			return nil, fmt.Errorf("bench: unknown scenario %q (have %s)", s, strings.Join(order, ", "))
		}
	}
	var backend Backend
	var err error
	target := opts.URL
	if opts.Direct {
		backend, err = NewDirect(opts.Kernel)
		target = "direct"
	} else {
		backend, err = NewGateway(opts.Target)
	}
	if err != nil {
		return nil, err
	}
	defer backend.Close()
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	language, err := backend.Language(lctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	host, _ := os.Hostname()
	rep := &Report{Label: opts.Label, Target: target, Kernel: opts.Kernel, Language: language, Started: time.Now(),
		Host: fmt.Sprintf("%s, %d CPUs, %s/%s", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)}
	if !opts.Direct {
		rep.Protocol = opts.Protocol
	}
	r := &runner{opts: opts, backend: backend, language: language, start: rep.Started, progress: opts.Progress}
	if r.progress == nil {
		r.progress = silent{}
	}
	for _, name := range order { // the standard order, whatever order they were asked in
		if !slices.Contains(opts.Scenarios, name) {
			continue
		}
		res := &Result{Scenario: name, Params: map[string]any{}, Latency: map[string]*Summary{}, Counts: map[string]int64{}}
		t0 := time.Now()
		err := scenarios[name](ctx, r, res)
		res.Seconds = time.Since(t0).Seconds()
		r.progress.End(name, res)
		rep.Results = append(rep.Results, res)
		if err != nil {
			return rep, fmt.Errorf("bench: %s: %w", name, err)
		}
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	return rep, nil
}

func withDefaults(o Options) Options {
	d := DefaultOptions()
	if o.Protocol == "" {
		o.Protocol = d.Protocol
	}
	if o.Kernel == "" {
		o.Kernel = d.Kernel
	}
	if len(o.Scenarios) == 0 {
		o.Scenarios = d.Scenarios
	}
	for _, p := range []struct{ v, def *int }{{&o.Starts, &d.Starts}, {&o.ConcurrentStarts, &d.ConcurrentStarts},
		{&o.RTTCount, &d.RTTCount}, {&o.StreamCount, &d.StreamCount}, {&o.StreamSize, &d.StreamSize},
		{&o.Fanout, &d.Fanout}, {&o.Users, &d.Users}, {&o.ChurnConcurrency, &d.ChurnConcurrency}} {
		positiveOr(p.v, *p.def)
	}
	for _, p := range []struct{ v, def *time.Duration }{{&o.UserInterval, &d.UserInterval}, {&o.UserDuration, &d.UserDuration},
		{&o.ChurnDuration, &d.ChurnDuration}, {&o.FloodDuration, &d.FloodDuration}, {&o.OpTimeout, &d.OpTimeout}} {
		positiveOr(p.v, *p.def)
	}
	return o
}

// positiveOr sets *p to def unless it is positive.
func positiveOr[T int | time.Duration](p *T, def T) {
	if *p <= 0 {
		*p = def
	}
}

// MetricsSamplerFor returns a sampler of url's /metrics when it serves
// the process collector (kernelgate does), else nil.
func MetricsSamplerFor(ctx context.Context, url, token string) Sampler {
	s := MetricsSampler{URL: strings.TrimRight(url, "/") + "/metrics", Token: token, Client: &http.Client{Timeout: 5 * time.Second}}
	r, err := s.Sample(ctx)
	if err != nil || r.CPUSeconds < 0 {
		return nil
	}
	return s
}
