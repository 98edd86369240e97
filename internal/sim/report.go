package sim

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the comparison for people: one row a policy, then the assumptions.
func (r Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "POLICY\tSLO MET\tQUEUE p50\tQUEUE p99\tTTFT p50\tTTFT p99\tGPU NODE-H\tx ORACLE\tACTIONS\tLOST\t")
	for _, p := range r.Policies {
		fmt.Fprintf(tw, "%s\t%.2f%%\t%.2fs\t%.2fs\t%.2fs\t%.2fs\t%.2f\t%.2f\t%d\t%d\t\n", p.Name, 100*p.SLOAttainment,
			p.QueueDelayP50, p.QueueDelayP99, p.TTFTP50, p.TTFTP99, p.GPUNodeHours, p.OracleRatio, p.ScaleActions, p.LostRequests)
	}
	tw.Flush()
	a := r.Assumptions
	fmt.Fprintf(w, "\n%d requests over %s", a.TraceRequests, a.TraceDuration)
	if a.Trace != "" {
		fmt.Fprintf(w, " from %s (rate x%g", a.Trace, a.RateScale)
		if a.Window != "" {
			fmt.Fprintf(w, ", window %s", a.Window)
		}
		fmt.Fprint(w, ")")
	}
	fmt.Fprintf(w, ". SLO: queueing delay <= %s for %g%% of requests.\n", a.SLO, 100*a.Attainment)
	fmt.Fprintf(w, "Lead time %s = node Ready %s + GPUs allocatable %s + image pull %s + model load %s; drain grace %s (hpa+ca: termination grace %s, nodes removed after %s unneeded).\n",
		a.LeadTime, a.NodeReady, a.GPUAllocatable, a.ImagePull, a.ModelLoad, a.DrainGrace, a.BaselineGrace, a.ScaleDownUnneeded)
	s := a.Serving
	fmt.Fprintf(w, "Replica: batch %d, prefill %g tok/s, decode %g tok/s per sequence, queue %d; %d GPU(s) per node, %d per pod; evaluation every %s. %s.\n",
		s.MaxBatch, s.PrefillTokensPerSec, s.DecodeTokensPerSec, s.MaxQueue, a.GPUsPerNode, a.GPUsPerPod, a.EvaluationInterval, strings.ToUpper(a.Start[:1])+a.Start[1:])
	for _, warning := range r.Warnings {
		fmt.Fprintf(w, "Warning: %s.\n", warning)
	}
	r.writeSpells(w)
}

// WriteSVG plots, for each policy, the load (requests in flight over the batch size, in replicas' worth),
// the replicas serving and the nodes paid for over time, one panel a policy on a shared scale.
func (r Report) WriteSVG(w io.Writer) error {
	const width, panel, left, right, top = 960.0, 150.0, 50.0, 20.0, 30.0
	var ymax float64 = 1
	var tmax float64 = 1
	for _, p := range r.Policies {
		for _, pt := range p.Series {
			ymax = max(ymax, pt.Load, float64(pt.Ready), float64(pt.Nodes))
			tmax = max(tmax, pt.T)
		}
	}
	ymax *= 1.1
	height := top + float64(len(r.Policies))*(panel+25) + 20
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="%.0f" y="18" font-size="13">load (in flight / batch, grey), replicas serving (blue), GPU nodes paid for (orange) over %0.f min</text>`+"\n", left, tmax/60)
	for i, p := range r.Policies {
		y0 := top + float64(i)*(panel+25) + 15
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-weight="bold">%s: %.2f%% within SLO, %.2f GPU node-hours (x%.2f oracle), %d lost</text>`+"\n",
			left, y0-3, p.Name, 100*p.SLOAttainment, p.GPUNodeHours, p.OracleRatio, p.LostRequests)
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#ccc"/>`+"\n", left, y0, width-left-right, panel)
		if w := r.Assumptions.Warmup.D().Seconds(); w > 0 {
			fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.1f" height="%.0f" fill="#eee"/><text x="%.0f" y="%.0f" fill="#888">warm-up, not measured</text>`+"\n",
				left, y0, min(w, tmax)/tmax*(width-left-right), panel, left+4, y0+12)
		}
		for _, tick := range []float64{0, 0.5, 1} {
			y := y0 + panel - tick*panel
			fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%.0f</text>`+"\n", left-4, y+4, tick*ymax)
		}
		xy := func(t, v float64) string {
			return fmt.Sprintf("%.1f,%.1f", left+t/tmax*(width-left-right), y0+panel-v/ymax*panel)
		}
		line := func(color string, v func(Point) float64, step bool) {
			var pts []string
			for j, pt := range p.Series {
				if step && j > 0 {
					pts = append(pts, xy(pt.T, v(p.Series[j-1])))
				}
				pts = append(pts, xy(pt.T, v(pt)))
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.3" points="%s"/>`+"\n", color, strings.Join(pts, " "))
		}
		line("#999", func(pt Point) float64 { return pt.Load }, false)
		line("#1f77b4", func(pt Point) float64 { return float64(pt.Ready) }, true)
		line("#ff7f0e", func(pt Point) float64 { return float64(pt.Nodes) }, true)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
