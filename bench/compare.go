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
	g := group(reps)
	if len(g.labels) == 0 {
		return fmt.Errorf("bench: nothing to compare")
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	head := []string{"kernel", "metric"}
	head = append(head, g.labels...)
	for _, l := range g.labels[1:] {
		head = append(head, g.labels[0]+" ÷ "+l)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, k := range g.kernels {
		for _, m := range compared {
			vals, have, found := g.figures(k, m)
			if !found {
				continue
			}
			row := []string{k, m.name}
			for i := range g.labels {
				row = append(row, figure(vals[i], have[i]))
			}
			row = append(row, g.ratios(vals, have)...)
			fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
		}
	}
	return tw.Flush()
}

// grouped are reports by label (in order of first appearance) and kernel;
// of two reports with the same label and kernel, the later counts.
type grouped struct {
	labels, kernels []string
	byKey           map[[2]string]*Report
}

func group(reps []*Report) grouped {
	g := grouped{byKey: map[[2]string]*Report{}}
	for _, r := range reps {
		label := orDefault(r.Label, r.Target)
		if !slices.Contains(g.labels, label) {
			g.labels = append(g.labels, label)
		}
		if !slices.Contains(g.kernels, r.Kernel) {
			g.kernels = append(g.kernels, r.Kernel)
		}
		g.byKey[[2]string{label, r.Kernel}] = r
	}
	return g
}

// figures reads metric m of kernel k under each label; found is false when
// no label has it.
func (g grouped) figures(k string, m metric) (vals []float64, have []bool, found bool) {
	vals, have = make([]float64, len(g.labels)), make([]bool, len(g.labels))
	for i, l := range g.labels {
		if r := g.byKey[[2]string{l, k}]; r != nil {
			vals[i], have[i] = m.get(r)
			found = found || have[i]
		}
	}
	return vals, have, found
}

// ratios are the first label's figure divided by each other label's.
func (g grouped) ratios(vals []float64, have []bool) []string {
	var out []string
	for i := 1; i < len(vals); i++ {
		if have[0] && have[i] && vals[i] != 0 {
			out = append(out, fmt.Sprintf("%.2f", vals[0]/vals[i]))
		} else {
			out = append(out, "—")
		}
	}
	return out
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
