package bench

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/local"
	"github.com/kernelgate/kernelgate/actors/proxy/ports"
	"github.com/kernelgate/kernelgate/bench/synthkernel"
	kghttp "github.com/kernelgate/kernelgate/http"
	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/kernelspecs"
	"github.com/rs/zerolog"
)

// TestMain lets the test binary double as the synthetic kernel, and
// removes the kernelgate binary a test built.
func TestMain(m *testing.M) {
	synthkernel.ServeIfAsked()
	serveFloorIfAsked()
	code := m.Run()
	testkit.RemoveKernelgate()
	os.Exit(code)
}

var testPorts = func() *ports.Allocator {
	low, high := testkit.PortRange("bench")
	return ports.NewAllocator("127.0.0.1", ports.Range{Low: low, High: high}, time.Minute)
}()

// specDir writes a Jupyter path with the synthetic kernelspec (this test
// binary) and returns it.
func specDir(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "kernels", "synthetic")
	testkit.NoError(t, os.MkdirAll(dir, 0o755))
	self, err := os.Executable()
	testkit.NoError(t, err)
	testkit.NoError(t, os.WriteFile(filepath.Join(dir, "kernel.json"), []byte(synthkernel.Spec(self, "synth-kernel")), 0o644))
	return root
}

// gateway starts kernelgate in-process on 127.0.0.1:0 and returns its URL.
func gateway(t *testing.T) string {
	t.Helper()
	log := zerolog.Nop()
	if testing.Verbose() {
		log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	}
	cache := kernelspecs.NewCache(kernelspecs.CacheOptions{Path: []string{specDir(t)}, Default: "synthetic", Logger: log})
	lp := &local.Provisioner{Ports: testPorts, RuntimeDir: filepath.Join(t.TempDir(), "rt")}
	gw, err := actors.New(actors.Config{MaxKernelsPerUser: -1, BaseEnvs: []string{"PATH", "HOME"}, DefaultUsername: "bench",
		LaunchTimeout: 20 * time.Second, ShutdownWait: 2 * time.Second, SessionBuffer: 1 << 20, Specs: cache, Proxies: proxy.NewRegistry(lp), Logger: log})
	testkit.NoError(t, err)
	srv := kghttp.New(kghttp.Config{ListKernels: true, Version: "test", Logger: log}, gw, cache)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testkit.NoError(t, err)
	served := make(chan struct{})
	go func() { srv.Serve(ln); close(served) }()
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		<-served
		gw.Close(30 * time.Second)
	})
	return "http://" + ln.Addr().String()
}

// brief is a quick run of every scenario.
func brief(o Options) Options {
	o.Kernel = "synthetic"
	o.Starts, o.ConcurrentStarts = 2, 2
	o.RTTCount = 20
	o.StreamCount, o.StreamSize = 5000, 64
	o.Fanout = 3
	o.Users, o.UserInterval, o.UserDuration = 3, 200*time.Millisecond, 2*time.Second
	o.ChurnDuration, o.ChurnConcurrency = 2*time.Second, 2
	o.FloodDuration = time.Second
	o.OpTimeout = 30 * time.Second
	return o
}

func result(t *testing.T, rep *Report, scenario string) *Result {
	t.Helper()
	for _, r := range rep.Results {
		if r.Scenario == scenario {
			return r
		}
	}
	t.Fatalf("no %s result", scenario)
	return nil
}

func TestEveryScenarioAgainstAnInProcessGateway(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // after the gateway's own cleanup
	url := gateway(t)
	for _, protocol := range []string{"v1", "legacy"} {
		t.Run(protocol, func(t *testing.T) {
			o := brief(Options{Target: Target{URL: url, Protocol: protocol}})
			o.Sampler = MetricsSamplerFor(context.Background(), url, "")
			testkit.True(t, o.Sampler != nil, "kernelgate's /metrics has no process metrics")
			var progress bytes.Buffer
			o.Progress = NewProgress(&progress)
			rep, err := Run(context.Background(), o)
			testkit.NoError(t, err)
			testkit.Equal(t, rep.Language, "synthetic")
			testkit.Equal(t, len(rep.Results), len(Scenarios))
			for _, r := range rep.Results {
				testkit.True(t, r.Errors == 0, "%s: %d errors: %v", r.Scenario, r.Errors, r.ErrorSamples)
			}
			start := result(t, rep, "start")
			testkit.Equal(t, start.Latency["sequential"].Count, 2)
			testkit.Equal(t, start.Latency["concurrent"].Count, 2)
			testkit.True(t, start.Latency["sequential"].P50 > 0, "start latency %v", start.Latency["sequential"].P50)
			testkit.Equal(t, result(t, rep, "rtt").Latency["rtt"].Count, 20)
			stream := result(t, rep, "stream")
			testkit.Equal(t, stream.Counts["received_min"], int64(5000))
			testkit.True(t, stream.MsgsPerSec > 0 && stream.Cost != nil && stream.Cost.RSSBytes > 0, "stream %+v %+v", stream, stream.Cost)
			fanout := result(t, rep, "fanout")
			testkit.Equal(t, fanout.Counts["received_min"], int64(5000)) // every socket got every message
			testkit.Equal(t, fanout.Ops, 3*5000)
			flood := result(t, rep, "flood")
			testkit.True(t, flood.Latency["alone"].Count > 0 && flood.Latency["flooded"].Count > 0, "flood latencies %+v", flood.Latency)
			// Exact: a flooded client sent away (1013) gets the rest from
			// its session on the reconnect, nothing twice (the session
			// buffer is sized so that its bound drops nothing here).
			testkit.True(t, flood.Counts["flood_messages"] == 50000, "flood counts %v", flood.Counts)
			users := result(t, rep, "users")
			testkit.True(t, users.Latency["execute"].Count >= 3, "users ran %d cells", users.Latency["execute"].Count)
			churn := result(t, rep, "churn")
			testkit.True(t, churn.Counts["cycles"] > 0 && len(churn.Resources) > 0, "churn %+v", churn.Counts)
			testkit.True(t, strings.Contains(progress.String(), "churn: done"), "progress: %s", progress.String())
		})
	}
}

func TestReportsRoundTripAndRender(t *testing.T) {
	url := gateway(t)
	o := brief(Options{Target: Target{URL: url, Protocol: "v1"}, Label: "kernelgate", Scenarios: []string{"rtt", "stream", "churn"}})
	o.Sampler = MetricsSamplerFor(context.Background(), url, "")
	rep, err := Run(context.Background(), o)
	testkit.NoError(t, err)

	var text bytes.Buffer
	testkit.NoError(t, WriteText(&text, rep))
	testkit.True(t, strings.Contains(text.String(), "p50 ms") && strings.Contains(text.String(), "gateway RSS"), "text: %s", text.String())

	var js bytes.Buffer
	testkit.NoError(t, WriteJSON(&js, rep))
	back, err := ReadJSON(&js)
	testkit.NoError(t, err)
	testkit.Equal(t, back[0].Results[0].Latency["rtt"].P50, rep.Results[0].Latency["rtt"].P50)

	var page bytes.Buffer
	testkit.NoError(t, WriteHTML(&page, back...))
	html := page.String()
	// rtt's histogram and series, stream's, churn's resources at least.
	testkit.True(t, strings.Count(html, `<div class="chart" id="chart-`) >= 4, "expected charts in the page")
	testkit.True(t, strings.Contains(html, "<td>rtt</td>"), "the measure column does not name the measure")
	testkit.True(t, !strings.Contains(html, "[0x"), "the page prints pointers")
	for _, external := range []string{"src=", "href=", "@import", "url(", "fetch("} {
		testkit.True(t, !strings.Contains(html, external), "the page refers to something outside it: %s", external)
	}
	testkit.Equal(t, strings.Count(html, "https://"), 1) // uPlot's own banner

	other := *back[0]
	other.Label = "other"
	var table bytes.Buffer
	testkit.NoError(t, Compare(&table, []*Report{back[0], &other}))
	testkit.True(t, strings.Contains(table.String(), "kernelgate ÷ other") && strings.Contains(table.String(), "1.00"), "table: %s", table.String())
	page.Reset()
	testkit.NoError(t, WriteHTML(&page, back[0], &other))
	html = page.String()
	testkit.True(t, strings.Contains(html, "Side by side: kernel synthetic") && strings.Contains(html, "<th>kernelgate ÷ other</th>"), "no comparison")
	testkit.True(t, strings.Contains(html, "rtt rtt: latency distributions"), "no overlaid distributions")
}

func TestDirectIsTheLimit(t *testing.T) {
	t.Setenv("JUPYTER_PATH", specDir(t))
	o := brief(Options{Direct: true, Scenarios: []string{"start", "rtt", "stream", "fanout"}})
	rep, err := Run(context.Background(), o)
	testkit.NoError(t, err)
	testkit.Equal(t, rep.Target, "direct")
	for _, r := range rep.Results {
		testkit.True(t, r.Errors == 0, "%s: %v", r.Scenario, r.ErrorSamples)
	}
	testkit.Equal(t, result(t, rep, "stream").Counts["received_min"], int64(5000))
	testkit.Equal(t, result(t, rep, "fanout").Counts["received_min"], int64(5000))
}

func TestErrorsAreCountedNotFatal(t *testing.T) {
	url := gateway(t)
	o := brief(Options{Target: Target{URL: url, Protocol: "v1", Kernel: "synthetic"}, Scenarios: []string{"rtt"}})
	o.RTTCode = "nonsense" // the synthetic kernel answers with an error reply: still a round trip
	rep, err := Run(context.Background(), o)
	testkit.NoError(t, err)
	testkit.Equal(t, result(t, rep, "rtt").Latency["rtt"].Count, 20)

	_, err = Run(context.Background(), Options{Target: Target{URL: url, Kernel: "nope", Protocol: "v1"}})
	testkit.True(t, err != nil && strings.Contains(err.Error(), "nope"), "unknown kernelspec: %v", err)
	_, err = Run(context.Background(), Options{Target: Target{URL: url, Protocol: "v1"}, Scenarios: []string{"warp"}})
	testkit.True(t, err != nil && strings.Contains(err.Error(), "warp"), "unknown scenario: %v", err)

	// A gateway that goes away mid-run: every operation fails, and the run
	// still ends by itself with the failures counted.
	dead := "http://" + closedAddr(t)
	_, err = Run(context.Background(), Options{Target: Target{URL: dead, Protocol: "v1"}})
	testkit.True(t, err != nil, "a dead URL gave no error")
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testkit.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
