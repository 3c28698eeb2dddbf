package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
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

// WriteHTML writes a self-contained page (inline CSS and SVG, no scripts,
// nothing fetched) with each scenario's table, latency histograms,
// latency over time and the gateway's resources.
func WriteHTML(w io.Writer, reps ...*Report) error {
	return htmlPage.Execute(w, reps)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

var htmlPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"histogram": histogramSVG,
	"series":    seriesSVG,
	"resources": resourcesSVG,
	"mib":       mib,
	"sorted": func(m map[string]*Summary) []string {
		var out []string
		for k, v := range m {
			if v != nil {
				out = append(out, k)
			}
		}
		slices.Sort(out)
		return out
	},
}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>kernelgate bench</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}
th{background:#f3f3f3}h2{margin-top:2em}h3{margin:1.2em 0 .3em}.charts{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:0}figcaption{font-size:12px;color:#555}svg text{font-size:10px;fill:#555}
</style></head><body>
<h1>kernelgate bench</h1>
{{range .}}
<h2>{{if .Label}}{{.Label}}: {{end}}{{.Target}} — kernel {{.Kernel}} ({{.Language}}){{if .Protocol}}, {{.Protocol}} framing{{end}}</h2>
<p>{{.Started.Format "2006-01-02 15:04:05 MST"}} · {{.Host}}</p>
{{range .Results}}{{$r := .}}
<h3>{{.Scenario}}</h3>
<table><tr><th>measure</th><th>count</th><th>mean ms</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th></tr>
{{range sorted .Latency}}{{with index $r.Latency .}}<tr><td>{{$}}</td><td>{{.Count}}</td><td>{{printf "%.2f" .Mean}}</td><td>{{printf "%.2f" .P50}}</td><td>{{printf "%.2f" .P95}}</td><td>{{printf "%.2f" .P99}}</td><td>{{printf "%.2f" .Max}}</td></tr>{{end}}{{end}}
</table>
<p>{{.Ops}} operations in {{printf "%.1f" .Seconds}} s, {{.Errors}} errors{{if .MsgsPerSec}}, {{printf "%.0f" .MsgsPerSec}} messages/s delivered{{end}}{{with .Cost}}; gateway CPU {{printf "%.3f" .CPUSecondsPer100k}} s per 100k messages, RSS {{printf "%.1f" (mib .RSSBytes)}} MiB{{end}}.
{{range $k, $v := .Params}} {{$k}}={{$v}}{{end}}</p>
{{range .ErrorSamples}}<p>error: <code>{{.}}</code></p>{{end}}
<div class="charts">
{{range sorted .Latency}}{{with index $r.Latency .}}<figure>{{histogram .}}<figcaption>{{$r.Scenario}} {{$}}: latency histogram (ms, log scale)</figcaption></figure>
{{if gt (len .Series) 1}}<figure>{{series .}}<figcaption>{{$r.Scenario}} {{$}}: p50 and p95 per second of the run</figcaption></figure>{{end}}{{end}}{{end}}
{{if .Resources}}<figure>{{resources .Resources}}<figcaption>gateway RSS (MiB, blue), goroutines (orange), open fds (green)</figcaption></figure>{{end}}
</div>
{{end}}{{end}}
</body></html>
`))

const chartW, chartH, pad = 360.0, 160.0, 28.0

// histogramSVG draws the non-empty span of a latency histogram.
func histogramSVG(s *Summary) template.HTML {
	lo, hi := -1, -1
	for i, c := range s.Histogram {
		if c > 0 {
			if lo < 0 {
				lo = i
			}
			hi = i
		}
	}
	var b strings.Builder
	openSVG(&b)
	if lo < 0 {
		return closeSVG(&b)
	}
	peak := slices.Max(s.Histogram[lo : hi+1])
	n := hi - lo + 1
	bw := (chartW - 2*pad) / float64(n)
	for i := lo; i <= hi; i++ {
		h := (chartH - 2*pad) * float64(s.Histogram[i]) / float64(peak)
		x := pad + float64(i-lo)*bw
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#4a7fd4"><title>≤ %g ms: %d</title></rect>`,
			x, chartH-pad-h, max(bw-1, 1), h, Buckets[i], s.Histogram[i])
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">%g</text><text x="%.0f" y="%.0f" text-anchor="end">%g ms</text><text x="2" y="%.0f">%d</text>`,
		pad, chartH-pad+12, Buckets[lo], chartW-pad, chartH-pad+12, Buckets[hi], pad-4, peak)
	return closeSVG(&b)
}

// seriesSVG draws p50 and p95 per second.
func seriesSVG(s *Summary) template.HTML {
	var b strings.Builder
	openSVG(&b)
	tMax := s.Series[len(s.Series)-1].T
	yMax := slices.MaxFunc(s.Series, func(a, c Point) int { return cmp.Compare(a.P95, c.P95) }).P95
	line := func(get func(Point) float64, color string) {
		var pts []string
		for _, p := range s.Series {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", scale(p.T, tMax, pad, chartW-pad), chartH-scale(get(p), yMax, pad, chartH-pad)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, color, strings.Join(pts, " "))
	}
	line(func(p Point) float64 { return p.P50 }, "#4a7fd4")
	line(func(p Point) float64 { return p.P95 }, "#d4844a")
	axes(&b, tMax, yMax, "s", "ms")
	return closeSVG(&b)
}

// resourcesSVG draws the gateway's RSS, goroutines and fds over the run,
// each scaled to its own maximum.
func resourcesSVG(rs []Resources) template.HTML {
	var b strings.Builder
	openSVG(&b)
	t0, tMax := rs[0].T, rs[len(rs)-1].T-rs[0].T
	for _, m := range []struct {
		get   func(Resources) float64
		color string
	}{
		{func(r Resources) float64 { return mib(r.RSSBytes) }, "#4a7fd4"},
		{func(r Resources) float64 { return float64(r.Goroutines) }, "#d4844a"},
		{func(r Resources) float64 { return float64(r.FDs) }, "#4aa45a"},
	} {
		peak := 0.0
		for _, r := range rs {
			peak = max(peak, m.get(r))
		}
		if peak <= 0 {
			continue
		}
		var pts []string
		for _, r := range rs {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", scale(r.T-t0, tMax, pad, chartW-pad), chartH-scale(m.get(r), peak, pad, chartH-pad)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"><title>max %.1f</title></polyline>`,
			m.color, strings.Join(pts, " "), peak)
	}
	axes(&b, tMax, 1, "s", "")
	return closeSVG(&b)
}

func openSVG(b *strings.Builder) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f">`, chartW, chartH, chartW, chartH)
	fmt.Fprintf(b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#999"/>`, pad, chartH-pad, chartW-pad, chartH-pad)
}

func closeSVG(b *strings.Builder) template.HTML {
	b.WriteString("</svg>")
	return template.HTML(b.String()) // built here from numbers only
}

func axes(b *strings.Builder, xMax, yMax float64, xUnit, yUnit string) {
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" text-anchor="end">%.0f %s</text>`, chartW-pad, chartH-pad+12, xMax, xUnit)
	if yUnit != "" {
		fmt.Fprintf(b, `<text x="2" y="%.0f">%.1f %s</text>`, pad-4, yMax, yUnit)
	}
}

// scale maps v in [0, vMax] to [lo, hi].
func scale(v, vMax, lo, hi float64) float64 {
	if vMax <= 0 {
		return lo
	}
	return lo + (hi-lo)*v/vMax
}
