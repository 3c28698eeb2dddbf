package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ScaleFigures are the scale scenario's measures with a number of kernels
// live, each with a websocket attached and idle.
type ScaleFigures struct {
	KernelsLive int `json:"kernels_live"`
	// StartSeconds is how long the waves that brought the kernels here
	// took (from the previous checkpoint).
	StartSeconds float64 `json:"start_seconds"`
	// The gateway's resources at the end of the idle window.
	RSSBytes   int64 `json:"rss_bytes"`
	Goroutines int   `json:"goroutines"`
	FDs        int   `json:"fds"`
	// IdleCPUCores is the gateway's CPU time over the idle window divided
	// by its length.
	IdleCPUCores float64 `json:"idle_cpu_cores"`
	IdleSeconds  float64 `json:"idle_seconds"`
	// GET /api/kernels: latency and the size of the answer.
	ListP50   float64 `json:"list_p50_ms"`
	ListP99   float64 `json:"list_p99_ms"`
	ListBytes int     `json:"list_bytes"`
	ListCount int     `json:"list_count"`
	// Execute round trips, one on each of RTTKernels random kernels.
	RTTP50     float64 `json:"rtt_p50_ms"`
	RTTP99     float64 `json:"rtt_p99_ms"`
	RTTKernels int     `json:"rtt_kernels"`
	RTTErrors  int     `json:"rtt_errors"`
	// The burst: BurstN concurrent POST /api/kernels, BurstOK of them
	// answered 201, all answered after BurstSeconds; the burst's kernels
	// are deleted after, in DeleteSeconds.
	BurstN        int      `json:"burst_n"`
	BurstOK       int      `json:"burst_ok"`
	BurstSeconds  float64  `json:"burst_seconds"`
	BurstP50      float64  `json:"burst_p50_ms"`
	BurstP99      float64  `json:"burst_p99_ms"`
	BurstErrors   []string `json:"burst_errors,omitempty"`
	DeleteSeconds float64  `json:"burst_delete_seconds"`
}

// ScaleResult is the scale scenario's outcome: the figures at the last
// checkpoint (the kernels asked for), and at each checkpoint.
type ScaleResult struct {
	ScaleFigures
	Target      int            `json:"kernels_target"`
	StartErrors int            `json:"start_errors"`
	Checkpoints []ScaleFigures `json:"checkpoints"`
	// Started and Host say when and where.
	Started time.Time `json:"started"`
	Host    string    `json:"host"`
}

// WriteScaleJSON writes a scale result (scale.json).
func WriteScaleJSON(w io.Writer, s *ScaleResult) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// scaleCheckpoints are where the scale scenario measures: the asked ones
// below n, then n.
func scaleCheckpoints(asked []int, n int) []int {
	var cps []int
	for _, c := range asked {
		if c > 0 && c < n && !slices.Contains(cps, c) {
			cps = append(cps, c)
		}
	}
	slices.Sort(cps)
	return append(cps, n)
}

// scaleRun is the state of one scale scenario.
type scaleRun struct {
	r   *runner
	g   *Gateway
	res *Result

	mu    sync.Mutex
	ids   []string
	conns []Conn
	live  atomic.Int64
}

// runScale: ScaleKernels kernels started in waves of ScaleWave concurrent
// starts, a websocket attached to each (kernel_info answered); at each
// checkpoint the gateway is measured with every kernel idle and attached:
// resources and CPU over ScaleIdle, GET /api/kernels, round trips on
// random kernels, and a burst of ScaleBurst concurrent starts (deleted
// after).
func runScale(ctx context.Context, r *runner, res *Result) error {
	g, ok := r.backend.(*Gateway)
	if !ok {
		return res.fail(r, errors.New("scale: needs a gateway (not --direct)"))
	}
	o := r.opts
	n := o.ScaleKernels
	cps := scaleCheckpoints(o.ScaleCheckpoints, n)
	res.Params["kernels"], res.Params["wave"], res.Params["checkpoints"] = n, o.ScaleWave, cps
	res.Params["idle_s"], res.Params["list_count"], res.Params["rtt_kernels"], res.Params["burst"] = o.ScaleIdle.Seconds(), o.ScaleListCount, o.ScaleRTTKernels, o.ScaleBurst
	g.lighten(n + o.ScaleBurst + 64)
	s := &scaleRun{r: r, g: g, res: res}
	out := &ScaleResult{Target: n, Started: r.start, Host: r.host}
	res.Scale = out
	r.progress.Begin("scale", float64(n))

	defer s.closeAll() // after the sampling stops (defers run last first)
	if o.Sampler != nil {
		sctx, stopSampling := context.WithCancel(context.Background())
		sampled := make(chan []Resources, 1)
		go func() { sampled <- s.sampleKernels(sctx) }()
		defer func() { stopSampling(); res.Resources = <-sampled }()
	}

	for _, cp := range cps {
		t0 := time.Now()
		if err := s.rampTo(ctx, cp); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f := ScaleFigures{StartSeconds: time.Since(t0).Seconds()}
		if err := s.measure(ctx, &f); err != nil {
			return err
		}
		out.Checkpoints = append(out.Checkpoints, f)
		out.ScaleFigures = f
		if int(s.live.Load()) < cp {
			break // the gateway took no more: the rest would measure the same
		}
	}
	out.StartErrors = res.Errors
	return nil
}

// maxStartFailures bounds the failed starts of a ramp, beyond which the
// scenario stops ramping (the gateway refuses kernels: measured as is).
func maxStartFailures(target int) int { return max(target/100, 20) }

// rampTo starts kernels, ScaleWave at a time, until target are live.
func (s *scaleRun) rampTo(ctx context.Context, target int) error {
	var failed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, s.r.opts.ScaleWave)
	var claimed atomic.Int64
	claimed.Store(s.live.Load())
	for range s.r.opts.ScaleWave {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && failed.Load() < int64(maxStartFailures(target)) {
				if claimed.Add(1) > int64(target) {
					return
				}
				id, c, err := s.r.open(ctx)
				if err != nil {
					claimed.Add(-1)
					failed.Add(1)
					if err := s.res.fail(s.r, fmt.Errorf("start %d: %w", s.live.Load()+1, err)); err != nil {
						errs <- err
						return
					}
					continue
				}
				s.mu.Lock()
				s.ids, s.conns = append(s.ids, id), append(s.conns, c)
				s.mu.Unlock()
				s.live.Add(1)
				s.r.progress.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// measure fills f with the live kernels idle and attached.
func (s *scaleRun) measure(ctx context.Context, f *ScaleFigures) error {
	o := s.r.opts
	f.KernelsLive = int(s.live.Load())
	// Idle: nothing but what the gateway does on its own (heartbeats,
	// pings, polls) and the samples.
	before := s.r.sample(ctx)
	t0 := time.Now()
	select {
	case <-time.After(o.ScaleIdle):
	case <-ctx.Done():
		return ctx.Err()
	}
	after := s.r.sample(ctx)
	f.IdleSeconds = time.Since(t0).Seconds()
	f.RSSBytes, f.Goroutines, f.FDs = -1, -1, -1
	if before != nil && after != nil {
		f.RSSBytes, f.Goroutines, f.FDs = after.RSSBytes, after.Goroutines, after.FDs
		if before.CPUSeconds >= 0 && after.CPUSeconds >= 0 {
			f.IdleCPUCores = (after.CPUSeconds - before.CPUSeconds) / f.IdleSeconds
		}
	}

	name := func(m string) string { return fmt.Sprintf("%s@%d", m, f.KernelsLive) }
	list := newLatencies(s.r.start)
	for range o.ScaleListCount {
		t := time.Now()
		n, size, err := s.list(ctx)
		if err != nil {
			if err := s.res.fail(s.r, fmt.Errorf("list: %w", err)); err != nil {
				return err
			}
			continue
		}
		list.Add(time.Since(t))
		f.ListBytes, f.ListCount = size, n
	}
	if sum := list.Summarize(); sum != nil {
		f.ListP50, f.ListP99 = sum.P50, sum.P99
		s.res.Latency[name("list")] = sum
	}

	rtt := newLatencies(s.r.start)
	s.mu.Lock()
	conns := slices.Clone(s.conns)
	s.mu.Unlock()
	for i := 0; i < o.ScaleRTTKernels && len(conns) > 0; i++ {
		c := conns[rand.IntN(len(conns))]
		ok, err := s.r.roundTrip(ctx, c, s.res, rtt)
		if err != nil {
			return err
		}
		if !ok {
			f.RTTErrors++
		}
	}
	f.RTTKernels = o.ScaleRTTKernels
	if sum := rtt.Summarize(); sum != nil {
		f.RTTP50, f.RTTP99 = sum.P50, sum.P99
		s.res.Latency[name("rtt")] = sum
	}

	if o.ScaleBurst > 0 {
		if err := s.burst(ctx, f); err != nil {
			return err
		}
		if sum := s.res.Latency[name("burst")]; sum != nil {
			f.BurstP50, f.BurstP99 = sum.P50, sum.P99
		}
	}
	return nil
}

// list fetches GET /api/kernels whole and returns how many kernels it
// listed and its size in bytes.
func (s *scaleRun) list(ctx context.Context) (int, int, error) {
	ctx, cancel := s.r.opCtx(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", s.g.base.String()+"/api/kernels", nil)
	if err != nil {
		return 0, 0, err
	}
	if s.g.token != "" {
		req.Header.Set("Authorization", "token "+s.g.token)
	}
	resp, err := s.g.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET /api/kernels: %s (a gateway lists kernels only when asked to: kernelgate's --list-kernels)", resp.Status)
	}
	var models []json.RawMessage
	if err := json.Unmarshal(b, &models); err != nil {
		return 0, 0, fmt.Errorf("GET /api/kernels: %w", err)
	}
	return len(models), len(b), nil
}

// burst posts ScaleBurst starts at once, then deletes what they started.
func (s *scaleRun) burst(ctx context.Context, f *ScaleFigures) error {
	n := s.r.opts.ScaleBurst
	f.BurstN = n
	lat := newLatencies(s.r.start)
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			octx, cancel := s.r.opCtx(ctx)
			defer cancel()
			t := time.Now()
			ids[i], errs[i] = s.r.backend.Start(octx)
			if errs[i] == nil {
				lat.Add(time.Since(t))
			}
		}()
	}
	t0 := time.Now()
	close(gate)
	wg.Wait()
	f.BurstSeconds = time.Since(t0).Seconds()
	for _, err := range errs {
		if err == nil {
			f.BurstOK++
		} else if len(f.BurstErrors) < maxErrorSamples {
			f.BurstErrors = append(f.BurstErrors, err.Error())
		}
	}
	if sum := lat.Summarize(); sum != nil {
		s.res.Latency[fmt.Sprintf("burst@%d", f.KernelsLive)] = sum
	}
	if f.BurstOK < n {
		if err := s.res.fail(s.r, fmt.Errorf("burst at %d kernels: %d of %d starts failed, e.g. %s", f.KernelsLive, n-f.BurstOK, n, f.BurstErrors[0])); err != nil {
			return err
		}
	}
	t1 := time.Now()
	s.stopAll(ids)
	f.DeleteSeconds = time.Since(t1).Seconds()
	return nil
}

// stopAll deletes kernels, a hundred at a time; ids that are empty (a
// failed start) are skipped.
func (s *scaleRun) stopAll(ids []string) {
	work := make(chan string)
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				if err := s.r.stop(id); err != nil {
					s.res.fail(s.r, fmt.Errorf("stop: %w", err))
				}
			}
		}()
	}
	for _, id := range ids {
		if id != "" {
			work <- id
		}
	}
	close(work)
	wg.Wait()
}

// closeAll closes every websocket and deletes every kernel the scenario
// started.
func (s *scaleRun) closeAll() {
	s.mu.Lock()
	conns, ids := s.conns, s.ids
	s.conns, s.ids = nil, nil
	s.mu.Unlock()
	var wg sync.WaitGroup
	for i := 0; i < len(conns); i += 500 {
		part := conns[i:min(i+500, len(conns))]
		wg.Go(func() {
			for _, c := range part {
				c.Close()
			}
		})
	}
	wg.Wait()
	s.stopAll(ids)
	s.live.Store(0)
}

// sampleKernels samples the gateway every 2 s, each reading stamped with
// the kernels live, until ctx ends.
func (s *scaleRun) sampleKernels(ctx context.Context) []Resources {
	var out []Resources
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		live := int(s.live.Load())
		if r := s.r.sample(context.Background()); r != nil {
			r.Kernels = live
			out = append(out, *r)
		}
		select {
		case <-ctx.Done():
			return out
		case <-t.C:
		}
	}
}
