package bench

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"slices"
	"text/tabwriter"

	"github.com/kernelgate/kernelgate/internal/uplot"
)

// WriteText prints the summary table.
func WriteText(w io.Writer, rep *Report) error {
	fmt.Fprintf(w, "\n%s: %s, kernel %s (%s)", orDefault(rep.Label, "run"), rep.Target, rep.Kernel, rep.Language)
	if rep.Protocol != "" {
		fmt.Fprintf(w, ", %s framing", rep.Protocol)
	}
	fmt.Fprintf(w, "; %s\n\n", rep.Host)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tmeasure\tcount\tp50 ms\tp95 ms\tp99 ms\tmax ms\tmsgs/s\terrors\t")
	for _, res := range rep.Results {
		names := slices.Sorted(func(yield func(string) bool) {
			for n, s := range res.Latency {
				if s != nil && !yield(n) {
					return
				}
			}
		})
		for _, n := range names {
			s := res.Latency[n]
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t\t%d\t\n", res.Scenario, n, s.Count, s.P50, s.P95, s.P99, s.Max, res.Errors)
		}
		if res.MsgsPerSec > 0 {
			fmt.Fprintf(tw, "%s\tmessages\t%d\t\t\t\t\t%.0f\t%d\t\n", res.Scenario, res.Ops, res.MsgsPerSec, res.Errors)
		}
		if len(names) == 0 && res.MsgsPerSec == 0 {
			fmt.Fprintf(tw, "%s\t-\t%d\t\t\t\t\t\t%d\t\n", res.Scenario, res.Ops, res.Errors)
		}
	}
	tw.Flush()
	for _, res := range rep.Results {
		if res.Cost != nil {
			fmt.Fprintf(w, "%s: gateway CPU %.3f s per 100k messages, RSS %.1f MiB\n", res.Scenario, res.Cost.CPUSecondsPer100k, mib(res.Cost.RSSBytes))
		}
		if len(res.Resources) > 0 {
			first, last := res.Resources[0], res.Resources[len(res.Resources)-1]
			peak := slices.MaxFunc(res.Resources, func(a, b Resources) int { return int(a.RSSBytes - b.RSSBytes) })
			fmt.Fprintf(w, "%s: gateway RSS %.1f → %.1f MiB (max %.1f), goroutines %d → %d, fds %d → %d\n", res.Scenario,
				mib(first.RSSBytes), mib(last.RSSBytes), mib(peak.RSSBytes), first.Goroutines, last.Goroutines, first.FDs, last.FDs)
		}
		if len(res.Counts) > 0 {
			fmt.Fprintf(w, "%s:", res.Scenario)
			for _, k := range slices.Sorted(maps.Keys(res.Counts)) {
				fmt.Fprintf(w, " %s %d", k, res.Counts[k])
			}
			fmt.Fprintln(w)
		}
		for _, e := range res.ErrorSamples {
			fmt.Fprintf(w, "%s: error: %s\n", res.Scenario, e)
		}
	}
	return nil
}

// WriteJSON writes the reports as a JSON array.
func WriteJSON(w io.Writer, reps ...*Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(reps)
}

// ReadJSON reads what WriteJSON wrote.
func ReadJSON(r io.Reader) ([]*Report, error) {
	var reps []*Report
	if err := json.NewDecoder(r).Decode(&reps); err != nil {
		return nil, fmt.Errorf("bench: reading a report: %w", err)
	}
	return reps, nil
}

// WriteHTML writes one self-contained page: for each report, each
// scenario's table and charts (latency histograms, latency over the run,
// the gateway's resources); with several targets (kernelgate, the limit,
// Jupyter Server of one `make bench`), first the comparison per kernel: the
// table of ratios, a bar chart per compared metric and each scenario's
// latency distributions overlaid. The charts are uPlot's, inlined with
// their data: the page fetches nothing.
func WriteHTML(w io.Writer, reps ...*Report) error {
	var b chartBuilder
	view := htmlView{Compare: b.comparisons(reps), UPlotJS: template.JS(uplot.JS), UPlotCSS: template.CSS(uplot.CSS), Script: template.JS(reportJS)}
	for _, rep := range reps {
		view.Reports = append(view.Reports, b.report(rep))
	}
	data, err := json.Marshal(b.specs) // escapes <, > and &: safe inside <script>
	if err != nil {
		return fmt.Errorf("bench: the report's charts: %w", err)
	}
	view.Charts = template.JS(data)
	return htmlPage.Execute(w, view)
}

//go:embed report.js
var reportJS string

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// The page as the template sees it.
type (
	htmlView struct {
		Compare  []compareView
		Reports  []reportView
		Charts   template.JS // JSON: every chart's spec
		UPlotJS  template.JS
		UPlotCSS template.CSS
		Script   template.JS
	}
	compareView struct {
		Kernel string
		Head   []string // labels, then the ratios' names
		Rows   []compareRow
		Charts []chartRef
	}
	compareRow struct {
		Metric string
		Cells  []string // figures per label, then ratios
	}
	reportView struct {
		*Report
		Results []resultView
	}
	resultView struct {
		*Result
		Measures []measureView
		Charts   []chartRef
	}
	measureView struct {
		Name string
		*Summary
	}
	// chartRef places a chart: the element its script draws into.
	chartRef struct{ ID, Caption string }
)

// chartSpec is one chart for report.js.
type chartSpec struct {
	ID      string   `json:"id"`
	Kind    string   `json:"kind"` // bars, dist, lines or resources
	X       []any    `json:"x"`
	XLabels []string `json:"x_labels,omitempty"`
	YUnit   string   `json:"y_unit,omitempty"`
	Series  []series `json:"series"`
}

type series struct {
	Label  string `json:"label"`
	Scale  string `json:"scale,omitempty"`
	Values []any  `json:"values"` // nil is a gap
}

// chartBuilder collects the charts of a page as its parts are laid out.
type chartBuilder struct{ specs []chartSpec }

func (b *chartBuilder) add(spec chartSpec, caption string) chartRef {
	spec.ID = fmt.Sprintf("chart-%d", len(b.specs))
	b.specs = append(b.specs, spec)
	return chartRef{ID: spec.ID, Caption: caption}
}

func (b *chartBuilder) report(rep *Report) reportView {
	v := reportView{Report: rep}
	for _, res := range rep.Results {
		rv := resultView{Result: res}
		for _, name := range slices.Sorted(maps.Keys(res.Latency)) {
			s := res.Latency[name]
			if s == nil {
				continue
			}
			rv.Measures = append(rv.Measures, measureView{Name: name, Summary: s})
			x, ys := distribution(false, s)
			rv.Charts = append(rv.Charts, b.add(chartSpec{Kind: "dist", X: x, Series: []series{{Label: name, Values: ys[0]}}},
				fmt.Sprintf("%s %s: latency histogram (count per bucket, ms on a log scale)", res.Scenario, name)))
			if len(s.Series) > 1 {
				t, p50, p95 := make([]any, len(s.Series)), make([]any, len(s.Series)), make([]any, len(s.Series))
				for i, p := range s.Series {
					t[i], p50[i], p95[i] = p.T, p.P50, p.P95
				}
				rv.Charts = append(rv.Charts, b.add(chartSpec{Kind: "lines", X: t, YUnit: "ms",
					Series: []series{{Label: "p50", Values: p50}, {Label: "p95", Values: p95}}},
					fmt.Sprintf("%s %s: p50 and p95 latency per second of the run", res.Scenario, name)))
			}
		}
		if rs := res.Resources; len(rs) > 0 {
			t, rss, gor, fds := make([]any, len(rs)), make([]any, len(rs)), make([]any, len(rs)), make([]any, len(rs))
			for i, r := range rs {
				t[i], rss[i], gor[i], fds[i] = r.T-rs[0].T, mib(r.RSSBytes), r.Goroutines, r.FDs
			}
			rv.Charts = append(rv.Charts, b.add(chartSpec{Kind: "resources", X: t, Series: []series{
				{Label: "RSS MiB", Scale: "mib", Values: rss}, {Label: "goroutines", Scale: "n", Values: gor}, {Label: "open fds", Scale: "n", Values: fds},
			}}, res.Scenario+": the gateway's resident memory (left axis), goroutines and open fds (right axis)"))
		}
		v.Results = append(v.Results, rv)
	}
	return v
}

// comparisons lays out the targets side by side, per kernel; nothing for a
// single target.
func (b *chartBuilder) comparisons(reps []*Report) []compareView {
	g := group(reps)
	if len(g.labels) < 2 {
		return nil
	}
	var out []compareView
	for _, k := range g.kernels {
		cv := compareView{Kernel: k, Head: append([]string(nil), g.labels...)}
		for _, l := range g.labels[1:] {
			cv.Head = append(cv.Head, g.labels[0]+" ÷ "+l)
		}
		for _, m := range compared {
			vals, have, found := g.figures(k, m)
			if !found {
				continue
			}
			row := compareRow{Metric: m.name}
			bars := make([]series, len(g.labels))
			for i, l := range g.labels {
				row.Cells = append(row.Cells, figure(vals[i], have[i]))
				bars[i] = series{Label: l, Values: make([]any, len(g.labels))}
				if have[i] && !math.IsNaN(vals[i]) && !math.IsInf(vals[i], 0) {
					bars[i].Values[i] = vals[i]
				}
			}
			row.Cells = append(row.Cells, g.ratios(vals, have)...)
			cv.Rows = append(cv.Rows, row)
			x := make([]any, len(g.labels))
			for i := range x {
				x[i] = i
			}
			cv.Charts = append(cv.Charts, b.add(chartSpec{Kind: "bars", X: x, XLabels: g.labels, Series: bars}, m.name))
		}
		cv.Charts = append(cv.Charts, b.overlays(g, k)...)
		out = append(out, cv)
	}
	return out
}

// overlays draws, for each latency a scenario measured on kernel k under
// two targets or more, their distributions on one chart, each as the share
// of its samples per bucket (the targets ran different numbers of them).
func (b *chartBuilder) overlays(g grouped, k string) []chartRef {
	type key struct{ scenario, measure string }
	var keys []key
	for _, l := range g.labels {
		if r := g.byKey[[2]string{l, k}]; r != nil {
			for _, res := range r.Results {
				for _, m := range slices.Sorted(maps.Keys(res.Latency)) {
					if kk := (key{res.Scenario, m}); res.Latency[m] != nil && !slices.Contains(keys, kk) {
						keys = append(keys, kk)
					}
				}
			}
		}
	}
	var refs []chartRef
	for _, kk := range keys {
		var labels []string
		var sums []*Summary
		for _, l := range g.labels {
			if s := latencyIn(g.byKey[[2]string{l, k}], kk.scenario, kk.measure); s != nil && s.Count > 0 {
				labels, sums = append(labels, l), append(sums, s)
			}
		}
		if len(sums) < 2 {
			continue
		}
		x, ys := distribution(true, sums...)
		spec := chartSpec{Kind: "dist", X: x}
		for i, l := range labels {
			spec.Series = append(spec.Series, series{Label: l, Values: ys[i]})
		}
		refs = append(refs, b.add(spec, fmt.Sprintf("%s %s: latency distributions (%% of samples per bucket, ms on a log scale)", kk.scenario, kk.measure)))
	}
	return refs
}

func latencyIn(rep *Report, scenario, measure string) *Summary {
	if rep == nil {
		return nil
	}
	for _, res := range rep.Results {
		if res.Scenario == scenario {
			return res.Latency[measure]
		}
	}
	return nil
}

// distribution is histograms as stepped lines: x holds each bucket's lower
// bound over the span where any of sums has samples, then the span's upper
// bound; ys, per summary, the count of each bucket (as a percentage of its
// samples when share is set), the last repeated for the closing bound.
func distribution(share bool, sums ...*Summary) (x []any, ys [][]any) {
	lo, hi := -1, -1
	for _, s := range sums {
		for i, c := range s.Histogram {
			if c > 0 {
				if lo < 0 || i < lo {
					lo = i
				}
				hi = max(hi, i)
			}
		}
	}
	if lo < 0 {
		return []any{}, make([][]any, len(sums))
	}
	// An empty bucket each side, so that even a single one is drawn as a
	// bar rising from and falling back to zero.
	lo, hi = max(lo-1, 0), min(hi+1, len(Buckets)-1)
	for i := lo; i <= hi; i++ {
		x = append(x, lowerBound(i))
	}
	x = append(x, Buckets[hi])
	for _, s := range sums {
		total := 0
		for _, c := range s.Histogram {
			total += c
		}
		var y []any
		for i := lo; i <= hi; i++ {
			c := 0
			if i < len(s.Histogram) {
				c = s.Histogram[i]
			}
			if share {
				y = append(y, math.Round(float64(c)/float64(max(total, 1))*1000)/10)
			} else {
				y = append(y, c)
			}
		}
		ys = append(ys, append(y, y[len(y)-1]))
	}
	return x, ys
}

// lowerBound is the lower bound (ms) of histogram bucket i.
func lowerBound(i int) float64 {
	if i == 0 {
		return math.Round(Buckets[0]/math.Pow(2, 0.25)*1000) / 1000
	}
	return Buckets[i-1]
}

var htmlPage = template.Must(template.New("report").Funcs(template.FuncMap{"mib": mib}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kernelgate bench</title>
<style>{{.UPlotCSS}}</style>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}h2{margin-top:2em}h3{margin:1.2em 0 .3em}
.charts{display:flex;flex-wrap:wrap;gap:1.5em 2em}figure{margin:0;width:420px}figcaption{font-size:12px;color:#555}
.chart{min-height:200px}
</style></head><body>
<h1>kernelgate bench</h1>
{{range .Compare}}
<h2>Side by side: kernel {{.Kernel}}</h2>
<table><tr><th>metric</th>{{range .Head}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr><td>{{.Metric}}</td>{{range .Cells}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
<p>Ratios are the first target's figure divided by each other's: for latency and cost lower is better, for messages/s higher.</p>
<div class="charts">
{{range .Charts}}<figure><div class="chart" id="{{.ID}}"></div><figcaption>{{.Caption}}</figcaption></figure>
{{end}}</div>
{{end}}
{{range .Reports}}
<h2>{{if .Label}}{{.Label}}: {{end}}{{.Target}} — kernel {{.Kernel}} ({{.Language}}){{if .Protocol}}, {{.Protocol}} framing{{end}}</h2>
<p>{{.Started.Format "2006-01-02 15:04:05 MST"}} · {{.Host}}</p>
{{range .Results}}
<h3>{{.Scenario}}</h3>
{{if .Measures}}<table><tr><th>measure</th><th>count</th><th>mean ms</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th></tr>
{{range .Measures}}<tr><td>{{.Name}}</td><td>{{.Count}}</td><td>{{printf "%.2f" .Mean}}</td><td>{{printf "%.2f" .P50}}</td><td>{{printf "%.2f" .P95}}</td><td>{{printf "%.2f" .P99}}</td><td>{{printf "%.2f" .Max}}</td></tr>
{{end}}</table>{{end}}
<p>{{.Ops}} operations in {{printf "%.1f" .Seconds}} s, {{.Errors}} errors{{if .MsgsPerSec}}, {{printf "%.0f" .MsgsPerSec}} messages/s delivered{{end}}{{with .Cost}}; gateway CPU {{printf "%.3f" .CPUSecondsPer100k}} s per 100k messages, RSS {{printf "%.1f" (mib .RSSBytes)}} MiB{{end}}.
{{range $k, $v := .Params}} {{$k}}={{$v}}{{end}}</p>
{{range .ErrorSamples}}<p>error: <code>{{.}}</code></p>
{{end}}<div class="charts">
{{range .Charts}}<figure><div class="chart" id="{{.ID}}"></div><figcaption>{{.Caption}}</figcaption></figure>
{{end}}</div>
{{end}}{{end}}
<script>{{.UPlotJS}}</script>
<script type="application/json" id="chart-data">{{.Charts}}</script>
<script>{{.Script}}</script>
</body></html>
`))
