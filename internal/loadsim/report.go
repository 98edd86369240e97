package loadsim

import (
	"fmt"
	"io"
	"time"

	"github.com/llmscaler/llmscaler/internal/serving"
)

// Report sums up a replay.
type Report struct {
	Duration time.Duration `json:"duration"`
	Requests int           `json:"requests"`
	Served   int           `json:"served"`
	// Lost are requests whose pod went away while it held them: scale-in must make this zero.
	Lost int `json:"lostOnScaleIn"`
	// Rejected are requests no ready pod took within the gateway timeout.
	Rejected int `json:"rejected"`
	// SLOAttainment is the share of all requests that started within the SLO of their arrival.
	SLO            time.Duration `json:"slo"`
	SLOAttainment  float64       `json:"sloAttainment"`
	QueueDelayP50  time.Duration `json:"queueDelayP50"`
	QueueDelayP99  time.Duration `json:"queueDelayP99"`
	TTFTP50        time.Duration `json:"ttftP50"`
	TTFTP99        time.Duration `json:"ttftP99"`
	LatencyP50     time.Duration `json:"latencyP50"`
	LatencyP99     time.Duration `json:"latencyP99"`
	GPUNodeMinutes float64       `json:"gpuNodeMinutes"`
}

func (s *Sim) report(now time.Time) Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := Report{Duration: now.Sub(s.started), Requests: s.arrived, SLO: s.cfg.SLO, GPUNodeMinutes: s.nodeMins}
	var queue, ttft, latency []time.Duration
	met := 0
	for _, o := range s.outcomes {
		switch {
		case o.Lost:
			r.Lost++
		case o.Rejected:
			r.Rejected++
		default:
			r.Served++
			q := o.Start.Sub(o.Arrival)
			if q <= s.cfg.SLO {
				met++
			}
			queue = append(queue, q)
			ttft = append(ttft, o.FirstToken.Sub(o.Arrival))
			latency = append(latency, o.Finish.Sub(o.Arrival))
		}
	}
	if s.arrived > 0 {
		r.SLOAttainment = float64(met) / float64(s.arrived)
	}
	q, f, l := serving.Percentiles(queue, 50, 99), serving.Percentiles(ttft, 50, 99), serving.Percentiles(latency, 50, 99)
	r.QueueDelayP50, r.QueueDelayP99 = q[0], q[1]
	r.TTFTP50, r.TTFTP99 = f[0], f[1]
	r.LatencyP50, r.LatencyP99 = l[0], l[1]
	return r
}

// Write prints the report for people.
func (r Report) Write(w io.Writer) {
	fmt.Fprintf(w, "Requests:          %d in %s (%d served, %d rejected for want of a ready replica)\n", r.Requests, r.Duration.Round(time.Second), r.Served, r.Rejected)
	fmt.Fprintf(w, "SLO attainment:    %.2f%% of requests started within %s of arrival\n", 100*r.SLOAttainment, r.SLO)
	fmt.Fprintf(w, "Queueing delay:    p50 %s, p99 %s\n", r.QueueDelayP50.Round(time.Millisecond), r.QueueDelayP99.Round(time.Millisecond))
	fmt.Fprintf(w, "Time to 1st token: p50 %s, p99 %s\n", r.TTFTP50.Round(time.Millisecond), r.TTFTP99.Round(time.Millisecond))
	fmt.Fprintf(w, "Latency:           p50 %s, p99 %s\n", r.LatencyP50.Round(time.Millisecond), r.LatencyP99.Round(time.Millisecond))
	fmt.Fprintf(w, "GPU node-minutes:  %.1f\n", r.GPUNodeMinutes)
	fmt.Fprintf(w, "Lost on scale-in:  %d (requests cut off because their pod went away; the goal is zero)\n", r.Lost)
}
