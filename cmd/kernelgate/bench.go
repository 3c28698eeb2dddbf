package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kernelgate/kernelgate/bench"
)

// benchConfig is what `kernelgate bench` takes besides bench.Options.
type benchConfig struct {
	opts       bench.Options
	jsonFile   string
	htmlFile   string
	pid        int
	metricsURL string
	quiet      bool
	replicas   []string
}

func benchSettings(c *benchConfig, stderr io.Writer) *settings {
	d := bench.DefaultOptions()
	o := &c.opts
	s := newSettings("bench", stderr)
	s.String(&o.URL, "url", d.URL, "the gateway: http[s]://host:port[/base]", "KERNELGATE_BENCH_URL")
	s.String(&o.Token, "token", "", "the gateway's token", "KERNELGATE_BENCH_TOKEN")
	s.String(&o.Kernel, "kernel", d.Kernel, "kernelspec to start", "KERNELGATE_BENCH_KERNEL")
	s.String(&o.Protocol, "protocol", d.Protocol, "websocket framing to ask for: v1 or legacy", "KERNELGATE_BENCH_PROTOCOL")
	s.Bool(&o.Direct, "direct", false, "measure the limit: launch the local kernelspec and read it over ZMQ, no gateway", "KERNELGATE_BENCH_DIRECT")
	s.String(&o.Label, "label", "", "name of this run in reports and comparisons", "KERNELGATE_BENCH_LABEL")
	s.List(&o.Scenarios, "scenarios", d.Scenarios, "scenarios to run: start, rtt, stream, fanout, flood, users, churn; and failover (needs --replicas)", "KERNELGATE_BENCH_SCENARIOS")
	s.Int(&o.Starts, "starts", d.Starts, "start: sequential starts", "KERNELGATE_BENCH_STARTS")
	s.Int(&o.ConcurrentStarts, "concurrent-starts", d.ConcurrentStarts, "start: concurrent starts", "KERNELGATE_BENCH_CONCURRENT_STARTS")
	s.Int(&o.RTTCount, "rtt-count", d.RTTCount, "rtt: round trips", "KERNELGATE_BENCH_RTT_COUNT")
	s.String(&o.RTTCode, "rtt-code", "", "rtt and users: the cell to run (default 1+1, or 'echo 2' on the synthetic kernel)", "KERNELGATE_BENCH_RTT_CODE")
	s.Int(&o.StreamCount, "stream-count", d.StreamCount, "stream and fanout: messages the cell publishes", "KERNELGATE_BENCH_STREAM_COUNT")
	s.Int(&o.StreamSize, "stream-size", d.StreamSize, "stream and fanout: bytes per message", "KERNELGATE_BENCH_STREAM_SIZE")
	s.Int(&o.Fanout, "fanout", d.Fanout, "fanout: websockets on the kernel", "KERNELGATE_BENCH_FANOUT")
	s.Int(&o.Users, "users", d.Users, "users: simulated users, one kernel each", "KERNELGATE_BENCH_USERS")
	s.Seconds(&o.UserInterval, "user-interval", d.UserInterval, "users: seconds between a user's cells", "KERNELGATE_BENCH_USER_INTERVAL")
	s.Seconds(&o.UserDuration, "user-duration", d.UserDuration, "users: seconds the users work", "KERNELGATE_BENCH_USER_DURATION")
	s.Seconds(&o.ChurnDuration, "churn-duration", d.ChurnDuration, "churn: seconds of creating and deleting kernels", "KERNELGATE_BENCH_CHURN_DURATION")
	s.Seconds(&o.FloodDuration, "flood-duration", d.FloodDuration, "flood: seconds of round trips alone, then as long while another kernel floods", "KERNELGATE_BENCH_FLOOD_DURATION")
	s.List(&c.replicas, "replicas", nil, "failover: the replicas behind --url, as URL=PID (comma list); the bench kills one", "KERNELGATE_BENCH_REPLICAS")
	s.Int(&o.ChurnConcurrency, "churn-concurrency", d.ChurnConcurrency, "churn: workers", "KERNELGATE_BENCH_CHURN_CONCURRENCY")
	s.Seconds(&o.OpTimeout, "op-timeout", d.OpTimeout, "seconds one operation (a start, a cell) may take", "KERNELGATE_BENCH_OP_TIMEOUT")
	s.Bool(&o.FailFast, "fail-fast", false, "end the run at the first error (by default errors are counted)", "KERNELGATE_BENCH_FAIL_FAST")
	s.Int(&c.pid, "pid", 0, "the gateway's process id, to sample its CPU, RSS and fds from /proc", "KERNELGATE_BENCH_PID")
	s.String(&c.metricsURL, "metrics-url", "", "a Prometheus endpoint with the gateway's process metrics (default: <url>/metrics when it has them)", "KERNELGATE_BENCH_METRICS_URL")
	s.String(&c.jsonFile, "json", "", "write the report as JSON to this file", "KERNELGATE_BENCH_JSON")
	s.String(&c.htmlFile, "html", "", "write a self-contained HTML report to this file", "KERNELGATE_BENCH_HTML")
	s.Bool(&c.quiet, "quiet", false, "no progress output", "KERNELGATE_BENCH_QUIET")
	return s
}

func runBench(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "compare" {
		return runBenchCompare(args[1:], stdout, stderr)
	}
	var c benchConfig
	if code, ok := benchSettings(&c, stderr).load(args); !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	o := c.opts
	for _, r := range c.replicas {
		u, pid, ok := strings.Cut(r, "=")
		n, err := strconv.Atoi(pid)
		if !ok || err != nil || n <= 0 {
			fmt.Fprintf(stderr, "kernelgate bench: --replicas %q: want URL=PID\n", r)
			return 2
		}
		o.Replicas = append(o.Replicas, bench.Replica{URL: strings.TrimRight(u, "/"), PID: n})
	}
	switch {
	case c.pid > 0:
		o.Sampler = bench.ProcSampler{PID: c.pid}
	case c.metricsURL != "":
		o.Sampler = bench.MetricsSampler{URL: c.metricsURL, Token: o.Token, Client: &http.Client{Timeout: 5 * time.Second}}
	case !o.Direct:
		o.Sampler = bench.MetricsSamplerFor(ctx, o.URL, o.Token)
	}
	if !c.quiet {
		o.Progress = bench.NewProgress(stderr)
	}
	rep, err := bench.Run(ctx, o)
	if rep != nil {
		bench.WriteText(stdout, rep)
		if werr := writeReports(c, rep); werr != nil {
			fmt.Fprintln(stderr, "kernelgate bench:", werr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "kernelgate bench:", err)
		return 1
	}
	return 0
}

func writeReports(c benchConfig, rep *bench.Report) error {
	write := func(path string, f func(io.Writer, ...*bench.Report) error) error {
		if path == "" {
			return nil
		}
		out, err := os.Create(path)
		if err != nil {
			return err
		}
		return errors.Join(f(out, rep), out.Close())
	}
	return errors.Join(write(c.jsonFile, bench.WriteJSON), write(c.htmlFile, bench.WriteHTML))
}

// runBenchCompare prints the comparison table of JSON reports, the first
// label's figures against the others'; --html writes them all on one page.
func runBenchCompare(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	htmlFile := fs.String("html", "", "also write every report on one HTML page")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kernelgate bench compare [--html FILE] report.json...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var reps []*bench.Report
	for _, path := range fs.Args() {
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintln(stderr, "kernelgate bench compare:", err)
			return 1
		}
		r, err := bench.ReadJSON(f)
		f.Close()
		if err != nil {
			fmt.Fprintln(stderr, "kernelgate bench compare:", path+":", err)
			return 1
		}
		reps = append(reps, r...)
	}
	if err := bench.Compare(stdout, reps); err != nil {
		fmt.Fprintln(stderr, "kernelgate bench compare:", err)
		return 1
	}
	if *htmlFile != "" {
		f, err := os.Create(*htmlFile)
		if err == nil {
			err = errors.Join(bench.WriteHTML(f, reps...), f.Close())
		}
		if err != nil {
			fmt.Fprintln(stderr, "kernelgate bench compare:", err)
			return 1
		}
	}
	return 0
}
