package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// metric is one row of a comparison: a figure read from a report.
type metric struct {
	name string
	get  func(*Report) (float64, bool)
}

func latencyOf(scenario, measure string, pick func(*Summary) float64) func(*Report) (float64, bool) {
	return func(rep *Report) (float64, bool) {
		for _, res := range rep.Results {
			if s := res.Latency[measure]; res.Scenario == scenario && s != nil {
				return pick(s), true
			}
		}
		return 0, false
	}
}

func resultOf(scenario string, get func(*Result) (float64, bool)) func(*Report) (float64, bool) {
	return func(rep *Report) (float64, bool) {
		for _, res := range rep.Results {
			if res.Scenario == scenario {
				return get(res)
			}
		}
		return 0, false
	}
}

var compared = []metric{
	{"start p50 ms (POST → kernel_info_reply)", latencyOf("start", "sequential", func(s *Summary) float64 { return s.P50 })},
	{"start p50 ms, concurrent", latencyOf("start", "concurrent", func(s *Summary) float64 { return s.P50 })},
	{"round trip p50 ms", latencyOf("rtt", "rtt", func(s *Summary) float64 { return s.P50 })},
	{"round trip p99 ms", latencyOf("rtt", "rtt", func(s *Summary) float64 { return s.P99 })},
	{"stream msgs/s", resultOf("stream", func(r *Result) (float64, bool) { return r.MsgsPerSec, r.MsgsPerSec > 0 })},
	{"fanout msgs/s (all sockets)", resultOf("fanout", func(r *Result) (float64, bool) { return r.MsgsPerSec, r.MsgsPerSec > 0 })},
	{"round trip p50 ms while another kernel floods", latencyOf("flood", "flooded", func(s *Summary) float64 { return s.P50 })},
	{"flooded ÷ alone, round trip p50", func(rep *Report) (float64, bool) {
		alone, ok1 := latencyOf("flood", "alone", func(s *Summary) float64 { return s.P50 })(rep)
		flooded, ok2 := latencyOf("flood", "flooded", func(s *Summary) float64 { return s.P50 })(rep)
		return flooded / alone, ok1 && ok2 && alone > 0
	}},
	{"users execute p95 ms", latencyOf("users", "execute", func(s *Summary) float64 { return s.P95 })},
	{"gateway CPU s / 100k msgs", resultOf("stream", func(r *Result) (float64, bool) {
		if r.Cost == nil {
			return 0, false
		}
		return r.Cost.CPUSecondsPer100k, true
	})},
	{"gateway RSS MiB after stream", resultOf("stream", func(r *Result) (float64, bool) {
		if r.Cost == nil {
			return 0, false
		}
		return mib(r.Cost.RSSBytes), true
	})},
}

// Compare prints one table of reports side by side: a row per kernel and
// metric, a column per label (in order of first appearance), then the
// first label's figure divided by each other label's.
func Compare(w io.Writer, reps []*Report) error {
	var labels, kernels []string
	byKey := map[[2]string]*Report{}
	for _, r := range reps {
		label := orDefault(r.Label, r.Target)
		if _, seen := byKey[[2]string{label, r.Kernel}]; !seen {
			if !slices.Contains(labels, label) {
				labels = append(labels, label)
			}
			if !slices.Contains(kernels, r.Kernel) {
				kernels = append(kernels, r.Kernel)
			}
		}
		byKey[[2]string{label, r.Kernel}] = r
	}
	if len(labels) == 0 {
		return fmt.Errorf("bench: nothing to compare")
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	head := []string{"kernel", "metric"}
	head = append(head, labels...)
	for _, l := range labels[1:] {
		head = append(head, labels[0]+" ÷ "+l)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, k := range kernels {
		for _, m := range compared {
			vals := make([]float64, len(labels))
			have := make([]bool, len(labels))
			found := false
			for i, l := range labels {
				if r := byKey[[2]string{l, k}]; r != nil {
					vals[i], have[i] = m.get(r)
					found = found || have[i]
				}
			}
			if !found {
				continue
			}
			row := []string{k, m.name}
			for i := range labels {
				row = append(row, figure(vals[i], have[i]))
			}
			for i := 1; i < len(labels); i++ {
				if have[0] && have[i] && vals[i] != 0 {
					row = append(row, fmt.Sprintf("%.2f", vals[0]/vals[i]))
				} else {
					row = append(row, "—")
				}
			}
			fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
		}
	}
	return tw.Flush()
}

func figure(v float64, ok bool) string {
	switch {
	case !ok:
		return "—"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}
