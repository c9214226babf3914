package bench

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Report is one run of parley-bench: its results and the ratios to the
// baseline measured in the same run.
type Report struct {
	Started string             `json:"started"`
	Host    string             `json:"host"`
	Results []Result           `json:"results"`
	Ratios  map[string]float64 `json:"ratios,omitempty"`
}

// WriteTable prints the results as a table.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tcount\trate\tunit\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\t")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t\n", res.Scenario, res.Count, res.Rate, res.Unit,
			res.Latency.P50, res.Latency.P99, res.Latency.P999, res.Latency.Max)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, res := range r.Results {
		var keys []string
		for k := range res.Figures {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %s %s: %s\n", res.Scenario, k, figure(res.Figures[k]))
		}
		reasons := make([]string, 0, len(res.Failures))
		for reason := range res.Failures {
			reasons = append(reasons, reason)
		}
		sort.Strings(reasons)
		for _, reason := range reasons {
			fmt.Fprintf(w, "  %s failures %s: %d\n", res.Scenario, reason, res.Failures[reason])
		}
	}
	var keys []string
	for k := range r.Ratios {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "ratio %s: %.2f\n", k, r.Ratios[k])
	}
	return nil
}

// sampleUnit is what the per-second samples count.
func (r *Result) sampleUnit() string {
	if r.SampleUnit != "" {
		return r.SampleUnit
	}
	return r.Unit
}

// figure formats a figure: whole numbers and those past 100 without
// decimals, others to 4 significant digits.
func figure(v float64) string {
	if v == math.Trunc(v) || math.Abs(v) >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// ReadReport reads a report written by WriteJSON.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", path, err)
	}
	return &r, nil
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// WriteHTML writes a self-contained page with, per scenario, its rate and
// latency percentiles over time as inline SVG charts.
func (r *Report) WriteHTML(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	type chart struct {
		Title string
		SVG   template.HTML
	}
	var charts []chart
	for _, res := range r.Results {
		var ts, rate, p50, p99, p999 []float64
		for _, s := range res.Samples {
			ts = append(ts, s.T)
			rate = append(rate, s.Rate)
			p50 = append(p50, s.Latency.P50)
			p99 = append(p99, s.Latency.P99)
			p999 = append(p999, s.Latency.P999)
		}
		charts = append(charts,
			chart{res.Scenario + ": " + res.sampleUnit(), svgLines(ts, [][]float64{rate}, []string{"#1f77b4"}, []string{res.sampleUnit()})},
			chart{res.Scenario + ": latency (ms)", svgLines(ts, [][]float64{p50, p99, p999}, []string{"#2ca02c", "#d62728", "#9467bd"}, []string{"p50", "p99", "p99.9"})})
		if len(res.Server) > 1 {
			var sts, rss, msgs, pushes []float64
			for i, s := range res.Server[1:] {
				prev := res.Server[i]
				secs := max(s.T-prev.T, 0.001)
				sts = append(sts, s.T)
				rss = append(rss, float64(s.RSS)/(1<<20))
				msgs = append(msgs, float64(s.Messages-prev.Messages)/secs)
				pushes = append(pushes, float64(s.Pushes-prev.Pushes)/secs)
			}
			if slices.Max(pushes) > 0 {
				charts = append(charts, chart{res.Scenario + ": server messages stored and pushes sent /s",
					svgLines(sts, [][]float64{msgs, pushes}, []string{"#ff7f0e", "#17becf"}, []string{"stored/s", "pushes/s"})})
			}
			charts = append(charts, chart{res.Scenario + ": server RSS (MB)", svgLines(sts, [][]float64{rss}, []string{"#8c564b"}, []string{"RSS MB"})})
		}
	}
	table := &strings.Builder{}
	_ = r.WriteTable(table)
	return pageTmpl.Execute(f, map[string]any{"R": r, "Charts": charts, "Table": table.String()})
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>parley-bench {{.R.Started}}</title>
<style>body{font-family:sans-serif;margin:2em}pre{background:#f6f6f6;padding:1em}figure{display:inline-block;margin:1em}</style>
</head><body>
<h1>parley-bench</h1><p>{{.R.Started}} on {{.R.Host}}</p>
<pre>{{.Table}}</pre>
{{range .Charts}}<figure><figcaption>{{.Title}}</figcaption>{{.SVG}}</figure>{{end}}
</body></html>
`))

// MergeResults combines the results of one scenario run in parts by
// several processes at once: counts, rates and failures add up; latency
// comes from the merged histograms; per-second samples add their rates
// and keep the worst percentiles of the parts; figures in ms or seconds
// keep the largest, others add up.
func MergeResults(parts []Result) (Result, error) {
	if len(parts) == 0 {
		return Result{}, nil
	}
	out := Result{Scenario: parts[0].Scenario, Params: parts[0].Params, Unit: parts[0].Unit, SampleUnit: parts[0].SampleUnit}
	var hists []string
	for _, p := range parts {
		out.Seconds = max(out.Seconds, p.Seconds)
		out.Count += p.Count
		out.Rate += p.Rate
		hists = append(hists, p.Hist)
		for i, s := range p.Samples {
			if i == len(out.Samples) {
				out.Samples = append(out.Samples, Sample{})
			}
			o := &out.Samples[i]
			o.T = max(o.T, s.T)
			o.Rate += s.Rate
			o.Latency.Count += s.Latency.Count
			o.Latency.P50 = max(o.Latency.P50, s.Latency.P50)
			o.Latency.P99 = max(o.Latency.P99, s.Latency.P99)
			o.Latency.P999 = max(o.Latency.P999, s.Latency.P999)
			o.Latency.Max = max(o.Latency.Max, s.Latency.Max)
		}
		for k, v := range p.Figures {
			if strings.HasSuffix(k, "_ms") || strings.HasSuffix(k, "_seconds") {
				out.figure(k, max(out.Figures[k], v))
			} else {
				out.figure(k, out.Figures[k]+v)
			}
		}
		for k, n := range p.Failures {
			if out.Failures == nil {
				out.Failures = map[string]int{}
			}
			out.Failures[k] += n
		}
	}
	var err error
	out.Latency, out.Hist, err = MergeEncoded(hists...)
	return out, err
}

// svgLines draws series against xs, scaled to fit, with a legend.
func svgLines(xs []float64, series [][]float64, colors, names []string) template.HTML {
	const w, h, pad = 480.0, 240.0, 40.0
	maxX, maxY := 1.0, 1.0
	for _, x := range xs {
		maxX = max(maxX, x)
	}
	for _, s := range series {
		for _, y := range s {
			maxY = max(maxY, y)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f">`, w, h)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#999"/>`, pad, h-pad, w-10, h-pad)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="10" x2="%.0f" y2="%.0f" stroke="#999"/>`, pad, pad, h-pad)
	fmt.Fprintf(&b, `<text x="2" y="16" font-size="10">%s</text><text x="%.0f" y="%.0f" font-size="10">0</text>`, figure(maxY), pad-12, h-pad+4)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="10">0s</text><text x="%.0f" y="%.0f" font-size="10">%.0fs</text>`, pad-4, h-pad+14, w-40, h-pad+14, maxX)
	for i, s := range series {
		var pts []string
		for j, y := range s {
			px := pad + xs[j]/maxX*(w-pad-10)
			py := h - pad - y/maxY*(h-pad-10)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px, py))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, colors[i], strings.Join(pts, " "))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="11" fill="%s">%s</text>`, pad+10+float64(i)*90, h-8, colors[i], template.HTMLEscapeString(names[i]))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
