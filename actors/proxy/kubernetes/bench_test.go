package kubernetes

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/bench"
	"github.com/kernelgate/kernelgate/internal/testkit"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestBenchConcurrentStarts runs `kernelgate bench --scenarios start`
// against Kubernetes kernels (the synthetic kernel behind `kernelgate
// launch` in each pod, a namespace each, the gateway's default QPS and
// burst unless KERNELGATE_K8S_BENCH_QPS says otherwise, burst twice that):
// sequential starts, then KERNELGATE_K8S_BENCH_STARTS (100) at once, all
// of which must succeed. It reports start latency (POST → first
// kernel_info_reply) and the API requests of one kernel's life.
func TestBenchConcurrentStarts(t *testing.T) {
	if testing.Short() {
		t.Skip("100 pods at once: not under -short")
	}
	concurrent, qps := 100, 50
	for name, p := range map[string]*int{"KERNELGATE_K8S_BENCH_STARTS": &concurrent, "KERNELGATE_K8S_BENCH_QPS": &qps} {
		if s := os.Getenv(name); s != "" {
			n, err := strconv.Atoi(s)
			testkit.NoError(t, err)
			*p = n
		}
	}
	// No leak check: under this load the API server restarts the test
	// cluster's own watches (its kubelet's), whose new goroutines would
	// count. The other tests check the same code for leaks.
	c := kube.Cluster(t)
	r := newRig(t, c, rigOptions{config: func(c *Config) { c.QPS, c.Burst = float32(qps), 2*qps }})
	// The sweep at start lists this gateway's pods and namespaces once.
	testkit.Eventually(t, 10*time.Second, func() error {
		if n := r.p.APIRequests()["list"]; n < 2 {
			return fmt.Errorf("%d lists", n)
		}
		return nil
	})
	before := r.p.APIRequests()
	o := bench.Options{Target: bench.Target{URL: r.url, Kernel: specSynth, Protocol: "v1"}, Scenarios: []string{"start"},
		Starts: 5, ConcurrentStarts: concurrent, OpTimeout: 3 * time.Minute}
	rep, err := bench.Run(context.Background(), o)
	testkit.NoError(t, err)
	res := rep.Results[0]
	testkit.True(t, res.Errors == 0, "%d starts failed: %v", res.Errors, res.ErrorSamples)
	seq, conc := res.Latency["sequential"], res.Latency["concurrent"]
	testkit.Equal(t, conc.Count, concurrent)
	// Every kernel's namespace is on its way out before the count is read.
	testkit.Eventually(t, 2*time.Minute, func() error {
		nss, err := c.Client.CoreV1().Namespaces().List(context.Background(),
			metav1.ListOptions{LabelSelector: LabelInstance + "=" + r.p.cfg.InstanceID})
		if err != nil {
			return err
		}
		for _, ns := range nss.Items {
			if ns.DeletionTimestamp == nil {
				return fmt.Errorf("namespace %s still there", ns.Name)
			}
		}
		return nil
	})
	after := r.p.APIRequests()
	kernels := uint64(o.Starts + concurrent)
	var total uint64
	perVerb := map[string]float64{}
	for v, n := range after {
		if d := n - before[v]; d > 0 {
			total += d
			perVerb[v] = float64(d) / float64(kernels)
		}
	}
	t.Logf("sequential starts: p50 %.0f ms, p95 %.0f ms (%d)", seq.P50, seq.P95, seq.Count)
	t.Logf("QPS %d, burst %d", qps, 2*qps)
	t.Logf("%d concurrent starts: p50 %.0f ms, p95 %.0f ms, max %.0f ms, %d errors", concurrent, conc.P50, conc.P95, conc.Max, res.Errors)
	t.Logf("API requests per kernel lifecycle (start to delete, namespace included): %.2f, by verb %v", float64(total)/float64(kernels), perVerb)
}
