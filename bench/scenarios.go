package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// scenario runs one scenario into res. It returns an error only to end the
// run (FailFast, or the context); other errors are counted in res.
type scenario func(ctx context.Context, r *runner, res *Result) error

var scenarios = map[string]scenario{
	"start":  runStart,
	"rtt":    runRTT,
	"stream": runStream,
	"fanout": runFanout,
	"flood":  runFlood,
	"users":  runUsers,
	"churn":  runChurn,
	// Not in the standard suite: it needs a replica group (Options.Replicas).
	"failover": runFailover,
	// Not in the standard suite: thousands of kernels (make scale).
	"scale": runScale,
}

// opCtx bounds one operation.
func (r *runner) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.opts.OpTimeout)
}

// open starts a kernel, connects to it and waits for its kernel_info_reply.
func (r *runner) open(ctx context.Context) (string, Conn, error) {
	ctx, cancel := r.opCtx(ctx)
	defer cancel()
	id, err := r.backend.Start(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("start: %w", err)
	}
	c, err := r.backend.Connect(ctx, id)
	if err != nil {
		r.stop(id)
		return "", nil, fmt.Errorf("connect: %w", err)
	}
	if err := c.KernelInfo(ctx); err != nil {
		c.Close()
		r.stop(id)
		return "", nil, fmt.Errorf("kernel_info: %w", err)
	}
	return id, c, nil
}

// stop shuts a kernel down with its own deadline: a run that is ending
// still cleans up.
func (r *runner) stop(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.OpTimeout)
	defer cancel()
	return r.backend.Stop(ctx, id)
}

func (r *runner) close(id string, c Conn, res *Result) error {
	c.Close()
	if err := r.stop(id); err != nil {
		return res.fail(r, fmt.Errorf("stop: %w", err))
	}
	return nil
}

// roundTrip runs the round-trip cell once on c: its latency goes to lat
// and it counts as an operation (neither with lat nil: a warm-up), or its
// error is counted. ok reports a
// completed round trip; err, set only with FailFast, ends the run.
func (r *runner) roundTrip(ctx context.Context, c Conn, res *Result, lat *Latencies) (ok bool, err error) {
	octx, cancel := r.opCtx(ctx)
	defer cancel()
	t0 := time.Now()
	if _, err := c.Execute(octx, r.rttCode()); err != nil {
		return false, res.fail(r, err)
	}
	if lat != nil {
		lat.Add(time.Since(t0))
		res.op()
	}
	return true, nil
}

// rttCode is what a round trip runs: "1+1", or its equivalent in the
// synthetic kernel's command language.
func (r *runner) rttCode() string {
	switch {
	case r.opts.RTTCode != "":
		return r.opts.RTTCode
	case r.language == "synthetic":
		return "echo 2"
	}
	return "1+1"
}

// streamCode makes the kernel publish n stream messages of size bytes.
// exact reports whether the kernel sends exactly n (the synthetic kernel
// does; ipykernel may coalesce writes into fewer messages).
func (r *runner) streamCode(n, size int) (code string, exact bool) {
	if r.language == "synthetic" {
		return fmt.Sprintf("emit %d %d", n, size), true
	}
	return fmt.Sprintf("import sys\nfor _ in range(%d):\n    sys.stdout.write(%q)\n    sys.stdout.flush()",
		n, fmt.Sprintf("%*s\n", max(size-1, 0), "x")), false
}

// runStart: sequential starts, then concurrent ones, each timed from the
// start request to the first kernel_info_reply.
func runStart(ctx context.Context, r *runner, res *Result) error {
	n, m := r.opts.Starts, r.opts.ConcurrentStarts
	res.Params["sequential"], res.Params["concurrent"] = n, m
	r.progress.Begin("start", float64(n+m))
	seq, conc := newLatencies(r.start), newLatencies(r.start)
	once := func(lat *Latencies) error {
		t0 := time.Now()
		id, c, err := r.open(ctx)
		if err != nil {
			return res.fail(r, err)
		}
		lat.Add(time.Since(t0))
		res.op()
		r.progress.Add(1)
		return r.close(id, c, res)
	}
	for range n {
		if err := once(seq); err != nil || ctx.Err() != nil {
			return err
		}
	}
	errs := make(chan error, m)
	var wg sync.WaitGroup
	for range m {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- once(conc) }()
	}
	wg.Wait()
	close(errs)
	res.Latency["sequential"], res.Latency["concurrent"] = seq.Summarize(), conc.Summarize()
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// runRTT: execute round trips on one warm kernel.
func runRTT(ctx context.Context, r *runner, res *Result) error {
	code := r.rttCode()
	res.Params["count"], res.Params["code"] = r.opts.RTTCount, code
	r.progress.Begin("rtt", float64(r.opts.RTTCount))
	id, c, err := r.open(ctx)
	if err != nil {
		return res.fail(r, err)
	}
	defer r.close(id, c, res)
	lat := newLatencies(r.start)
	for range 5 {
		if _, err := r.roundTrip(ctx, c, res, nil); err != nil {
			return err
		}
	}
	for i := 0; i < r.opts.RTTCount && ctx.Err() == nil; i++ {
		ok, err := r.roundTrip(ctx, c, res, lat)
		if err != nil {
			return err
		}
		if ok {
			r.progress.Add(1)
		}
	}
	res.Latency["rtt"] = lat.Summarize()
	return nil
}

// stallTimeout is how long a fanout socket may receive nothing before the
// harness stops waiting for the rest of its messages.
const stallTimeout = 5 * time.Second

// runStream: one cell that publishes StreamCount messages; throughput is
// what the client received per second, and the gateway's cost per 100k.
func runStream(ctx context.Context, r *runner, res *Result) error {
	return r.streamTo(ctx, res, 1, "stream")
}

// runFanout: Fanout websockets on one kernel, one of them running the
// stream cell; each counts what it receives.
func runFanout(ctx context.Context, r *runner, res *Result) error {
	return r.streamTo(ctx, res, r.opts.Fanout, "fanout")
}

func (r *runner) streamTo(ctx context.Context, res *Result, conns int, name string) error {
	n, size := r.opts.StreamCount, r.opts.StreamSize
	code, exact := r.streamCode(n, size)
	res.Params["messages"], res.Params["size"], res.Params["connections"] = n, size, conns
	r.progress.Begin(name, float64(n*conns))
	id, first, err := r.open(ctx)
	if err != nil {
		return res.fail(r, err)
	}
	all := []Conn{first}
	defer func() {
		for _, c := range all[1:] {
			c.Close()
		}
		r.close(id, first, res)
	}()
	for len(all) < conns {
		octx, cancel := r.opCtx(ctx)
		c, err := r.backend.Connect(octx, id)
		if err == nil {
			if err = c.KernelInfo(octx); err != nil {
				c.Close()
			}
		}
		cancel()
		if err != nil {
			return res.fail(r, fmt.Errorf("connect: %w", err))
		}
		all = append(all, c)
	}
	received := func() uint64 {
		var sum uint64
		for _, c := range all {
			sum += c.Streams()
		}
		return sum
	}
	before, framesBefore := make([]uint64, len(all)), make([]uint64, len(all))
	for i, c := range all {
		before[i], framesBefore[i] = c.Streams(), c.Frames()
	}
	base := received()
	cost := r.sample(ctx)
	stopProgress := r.progress.Follow(func() float64 { return float64(received() - base) })
	octx, cancel := r.opCtx(ctx)
	defer cancel()
	t0 := time.Now()
	_, err = first.Execute(octx, code)
	if err != nil {
		stopProgress()
		return res.fail(r, fmt.Errorf("stream cell: %w", err))
	}
	// The runner's own connection is done once idle arrives; the others,
	// which get the same messages a little later, once they have as much
	// or have stopped getting anything for a while (the gateway dropped
	// some for them).
	want := first.Streams() - before[0]
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for i := 1; i < len(all); i++ {
		last, lastChange := all[i].Streams(), time.Now()
		for all[i].Streams()-before[i] < want && octx.Err() == nil && time.Since(lastChange) < stallTimeout {
			select {
			case <-tick.C:
			case <-octx.Done():
			case <-all[i].Done():
			}
			if n := all[i].Streams(); n != last {
				last, lastChange = n, time.Now()
			}
		}
	}
	elapsed := time.Since(t0)
	stopProgress()
	total := received() - base
	res.Ops = int(total)
	res.MsgsPerSec = float64(total) / elapsed.Seconds()
	lo, hi := uint64(1<<63), uint64(0)
	for i, c := range all {
		got := c.Streams() - before[i]
		lo, hi = min(lo, got), max(hi, got)
		res.Counts["reconnects"] += int64(c.Reconnects())
		res.Counts["frames"] += int64(c.Frames() - framesBefore[i])
	}
	res.Counts["received_min"], res.Counts["received_max"] = int64(lo), int64(hi)
	if exact {
		res.Counts["emitted"] = int64(n)
		if lo != uint64(n) {
			res.fail(r, fmt.Errorf("a connection received %d of %d messages", lo, n))
		}
	}
	if cost != nil {
		if after := r.sample(ctx); after != nil && total > 0 {
			res.Cost = &Cost{CPUSecondsPer100k: (after.CPUSeconds - cost.CPUSeconds) / float64(total) * 1e5, RSSBytes: after.RSSBytes}
		}
	}
	return nil
}

// sample reads the gateway's resources, or nil without a sampler.
func (r *runner) sample(ctx context.Context) *Resources {
	if r.opts.Sampler == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := r.opts.Sampler.Sample(ctx)
	if err != nil {
		return nil
	}
	s.T = time.Since(r.start).Seconds()
	return &s
}

// floodCode makes the kernel publish as fast as it can for about d.
func (r *runner) floodCode(d time.Duration) string {
	if r.language == "synthetic" {
		return fmt.Sprintf("emit %d 64", int(d.Seconds()*50000)) // about its rate on a small host
	}
	return fmt.Sprintf("import time, sys\n_end = time.time() + %g\nwhile time.time() < _end:\n    print('x' * 63, flush=True)", d.Seconds())
}

// runFlood: round trips on one kernel, first alone, then while another
// kernel floods its client with output for FloodDuration; the two
// distributions say how much one user's flood costs another's latency.
func runFlood(ctx context.Context, r *runner, res *Result) error {
	d := r.opts.FloodDuration
	res.Params["flood_s"] = d.Seconds()
	r.progress.Begin("flood", 2*d.Seconds())
	id, quiet, err := r.open(ctx)
	if err != nil {
		return res.fail(r, err)
	}
	defer r.close(id, quiet, res)
	fid, flooder, err := r.open(ctx)
	if err != nil {
		return res.fail(r, err)
	}
	defer r.close(fid, flooder, res)
	t0 := time.Now()
	stop := r.progress.Follow(func() float64 { return time.Since(t0).Seconds() })
	defer stop()
	// roundTrips runs the round-trip cell on the quiet kernel until done.
	roundTrips := func(lat *Latencies, done func() bool) error {
		for !done() && ctx.Err() == nil {
			if _, err := r.roundTrip(ctx, quiet, res, lat); err != nil {
				return err
			}
		}
		return nil
	}
	alone, flooded := newLatencies(r.start), newLatencies(r.start)
	if err := roundTrips(alone, func() bool { return time.Since(t0) > d }); err != nil {
		return err
	}
	before, framesBefore := flooder.Streams(), flooder.Frames()
	floodDone := make(chan error, 1)
	go func() {
		octx, cancel := context.WithTimeout(ctx, d+r.opts.OpTimeout)
		defer cancel()
		_, err := flooder.Execute(octx, r.floodCode(d))
		floodDone <- err
	}()
	var floodErr error
	finished := false
	err = roundTrips(flooded, func() bool {
		select {
		case floodErr = <-floodDone:
			finished = true
		default:
		}
		return finished
	})
	if !finished {
		floodErr = <-floodDone
	}
	res.Latency["alone"], res.Latency["flooded"] = alone.Summarize(), flooded.Summarize()
	res.Counts["flood_messages"] = int64(flooder.Streams() - before)
	res.Counts["flood_frames"] = int64(flooder.Frames() - framesBefore)
	res.Counts["flood_reconnects"] = int64(flooder.Reconnects())
	if floodErr != nil {
		return res.fail(r, fmt.Errorf("flood cell: %w", floodErr))
	}
	return err
}

// runUsers: Users users, each with a kernel, each running the round-trip
// cell every UserInterval for UserDuration; latency over time.
func runUsers(ctx context.Context, r *runner, res *Result) error {
	u, every, d := r.opts.Users, r.opts.UserInterval, r.opts.UserDuration
	res.Params["users"], res.Params["interval_s"], res.Params["duration_s"] = u, every.Seconds(), d.Seconds()
	r.progress.Begin("users", d.Seconds())
	lat := newLatencies(r.start)
	var wg, ready sync.WaitGroup
	errs := make(chan error, u)
	var t0 time.Time
	startsDone := make(chan struct{})
	for i := range u {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			id, c, err := r.open(ctx)
			ready.Done()
			<-startsDone
			if err != nil {
				errs <- res.fail(r, err)
				return
			}
			defer r.close(id, c, res)
			// Spread the users over the interval rather than in step.
			tick := time.NewTicker(every)
			defer tick.Stop()
			phase := time.NewTimer(every * time.Duration(i) / time.Duration(u))
			select {
			case <-phase.C:
			case <-ctx.Done():
				return
			}
			for time.Since(t0) < d && ctx.Err() == nil {
				if _, err := r.roundTrip(ctx, c, res, lat); err != nil {
					errs <- err
					return
				}
				select {
				case <-tick.C:
				case <-ctx.Done():
				}
			}
		}()
	}
	ready.Wait() // every user has a kernel before the clock starts
	t0 = time.Now()
	close(startsDone)
	stop := r.progress.Follow(func() float64 { return time.Since(t0).Seconds() })
	wg.Wait()
	stop()
	close(errs)
	res.Latency["execute"] = lat.Summarize()
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// runChurn: kernels and websockets created and deleted continuously by
// ChurnConcurrency workers for ChurnDuration, the gateway sampled every
// second.
func runChurn(ctx context.Context, r *runner, res *Result) error {
	d, workers := r.opts.ChurnDuration, r.opts.ChurnConcurrency
	res.Params["duration_s"], res.Params["concurrency"] = d.Seconds(), workers
	r.progress.Begin("churn", d.Seconds())
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	sampled := make(chan []Resources, 1)
	if r.opts.Sampler != nil {
		sctx, stopSampling := context.WithCancel(context.Background())
		defer stopSampling()
		go func() {
			s, _ := sampleEvery(sctx, r.opts.Sampler, r.start, time.Second)
			sampled <- s
		}()
		defer func() { stopSampling(); res.Resources = <-sampled }()
	}
	t0 := time.Now()
	stop := r.progress.Follow(func() float64 { return time.Since(t0).Seconds() })
	defer stop()
	lat := newLatencies(r.start)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cctx.Err() == nil {
				s := time.Now()
				id, c, err := r.open(ctx) // not cctx: a cycle begun is finished
				if err != nil {
					if err := res.fail(r, err); err != nil {
						errs <- err
						return
					}
					continue
				}
				if err := r.close(id, c, res); err != nil {
					errs <- err
					return
				}
				lat.Add(time.Since(s))
				res.op()
			}
		}()
	}
	wg.Wait()
	close(errs)
	res.Latency["cycle"] = lat.Summarize()
	res.Counts["cycles"] = int64(res.Ops)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
