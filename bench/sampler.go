package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
)

// Resources is one reading of the gateway process. A figure the source
// cannot tell is -1.
type Resources struct {
	T          float64 `json:"t_s"` // since the run began
	CPUSeconds float64 `json:"cpu_s"`
	RSSBytes   int64   `json:"rss_bytes"`
	FDs        int     `json:"fds"`
	Goroutines int     `json:"goroutines"`
	// Kernels is how many kernels the run had live then (scale), or 0.
	Kernels int `json:"kernels,omitempty"`
}

// Sampler reads the gateway's resource use.
type Sampler interface {
	Sample(ctx context.Context) (Resources, error)
}

// ProcSampler reads /proc/<pid> of a process on this host.
type ProcSampler struct{ PID int }

// clockTicks is USER_HZ, 100 on every Linux platform Go supports.
const clockTicks = 100

func (p ProcSampler) Sample(context.Context) (Resources, error) {
	r := Resources{Goroutines: -1}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID))
	if err != nil {
		return r, err
	}
	// Fields after the command (which may hold spaces) in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return r, errors.New("bench: unreadable /proc stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 22 {
		return r, errors.New("bench: short /proc stat")
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	rss, _ := strconv.ParseInt(f[21], 10, 64)
	r.CPUSeconds = (utime + stime) / clockTicks
	r.RSSBytes = rss * int64(os.Getpagesize())
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.PID))
	r.FDs = len(fds)
	if err != nil {
		r.FDs = -1
	}
	return r, nil
}

// MetricsSampler scrapes a Prometheus endpoint with the standard process
// and Go collectors (kernelgate's /metrics).
type MetricsSampler struct {
	URL    string
	Token  string
	Client *http.Client
}

func (m MetricsSampler) Sample(ctx context.Context) (Resources, error) {
	r := Resources{CPUSeconds: -1, RSSBytes: -1, FDs: -1, Goroutines: -1}
	req, err := http.NewRequestWithContext(ctx, "GET", m.URL, nil)
	if err != nil {
		return r, err
	}
	if m.Token != "" {
		req.Header.Set("Authorization", "token "+m.Token)
	}
	resp, err := m.Client.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("bench: %s: %s", m.URL, resp.Status)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return r, fmt.Errorf("bench: %s: %w", m.URL, err)
	}
	value := func(name string) (float64, bool) {
		f, ok := fams[name]
		if !ok || len(f.Metric) == 0 {
			return 0, false
		}
		switch m := f.Metric[0]; {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		}
		return 0, false
	}
	if v, ok := value("process_cpu_seconds_total"); ok {
		r.CPUSeconds = v
	}
	if v, ok := value("process_resident_memory_bytes"); ok {
		r.RSSBytes = int64(v)
	}
	if v, ok := value("process_open_fds"); ok {
		r.FDs = int(v)
	}
	if v, ok := value("go_goroutines"); ok {
		r.Goroutines = int(v)
	}
	return r, nil
}

// sampleEvery reads s every interval until ctx ends, stamping readings
// with the time since start; errors are counted, not fatal.
func sampleEvery(ctx context.Context, s Sampler, start time.Time, interval time.Duration) (out []Resources, errs int) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := s.Sample(c)
		cancel()
		if err != nil {
			errs++
		} else {
			r.T = time.Since(start).Seconds()
			out = append(out, r)
		}
		select {
		case <-ctx.Done():
			return out, errs
		case <-t.C:
		}
	}
}

// Both reads /proc for what it can tell (CPU, RSS, fds: exact, and cheap
// for the gateway) and fills the rest (goroutines) from a metrics
// endpoint, when one is set.
type Both struct {
	Proc    ProcSampler
	Metrics Sampler
}

func (b Both) Sample(ctx context.Context) (Resources, error) {
	r, err := b.Proc.Sample(ctx)
	if err != nil || b.Metrics == nil {
		return r, err
	}
	if m, err := b.Metrics.Sample(ctx); err == nil {
		r.Goroutines = m.Goroutines
	}
	return r, nil
}
