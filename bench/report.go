package bench

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"sort"
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
			fmt.Fprintf(w, "  %s %s: %.1f\n", res.Scenario, k, res.Figures[k])
		}
		for reason, n := range res.Failures {
			fmt.Fprintf(w, "  %s failures %s: %d\n", res.Scenario, reason, n)
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
		var rate, p50, p99 []float64
		var ts []float64
		for _, s := range res.Samples {
			ts = append(ts, s.T)
			rate = append(rate, s.Rate)
			p50 = append(p50, s.Latency.P50)
			p99 = append(p99, s.Latency.P99)
		}
		charts = append(charts,
			chart{res.Scenario + ": " + res.Unit, svgLines(ts, [][]float64{rate}, []string{"#1f77b4"}, []string{res.Unit})},
			chart{res.Scenario + ": latency (ms)", svgLines(ts, [][]float64{p50, p99}, []string{"#2ca02c", "#d62728"}, []string{"p50", "p99"})})
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
	fmt.Fprintf(&b, `<text x="2" y="16" font-size="10">%.4g</text><text x="%.0f" y="%.0f" font-size="10">%.0fs</text>`, maxY, w-40, h-pad+14, maxX)
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
