package worker

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// sdkMetrics exposes the Temporal SDK's own metrics (task latencies, schedule-to-start, poller counts,
// failures) on the worker's Prometheus registry. A metric's label set is the one it was first used with;
// later uses fill missing labels with "" and drop extra ones, since Prometheus needs one set per name.
type sdkMetrics struct {
	reg  prometheus.Registerer
	tags map[string]string
	vecs *vecs
}

type vecs struct {
	mu     sync.Mutex
	labels map[string][]string
	byName map[string]any
}

var _ client.MetricsHandler = sdkMetrics{}

func newSDKMetrics(reg prometheus.Registerer) sdkMetrics {
	return sdkMetrics{reg: reg, tags: map[string]string{}, vecs: &vecs{labels: map[string][]string{}, byName: map[string]any{}}}
}

func (h sdkMetrics) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	for k, v := range h.tags {
		merged[k] = v
	}
	for k, v := range tags {
		merged[k] = v
	}
	return sdkMetrics{reg: h.reg, tags: merged, vecs: h.vecs}
}

func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == ':' {
			return r
		}
		return '_'
	}, s)
}

// get returns the vector for name, creating it with the current tags' keys, and the label values to use.
func (h sdkMetrics) get(name string, newVec func(labels []string) prometheus.Collector) (prometheus.Collector, []string) {
	h.vecs.mu.Lock()
	defer h.vecs.mu.Unlock()
	labels, ok := h.vecs.labels[name]
	if !ok {
		for k := range h.tags {
			labels = append(labels, sanitizeName(k))
		}
		slices.Sort(labels)
		c := newVec(labels)
		if err := h.reg.Register(c); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				c = are.ExistingCollector
			}
		}
		h.vecs.labels[name], h.vecs.byName[name] = labels, c
	}
	values := make([]string, len(labels))
	for k, v := range h.tags {
		if i := slices.Index(labels, sanitizeName(k)); i >= 0 {
			values[i] = v
		}
	}
	return h.vecs.byName[name].(prometheus.Collector), values
}

func (h sdkMetrics) Counter(name string) client.MetricsCounter {
	c, values := h.get(name, func(l []string) prometheus.Collector {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: sanitizeName(name), Help: "Temporal SDK counter " + name}, l)
	})
	vec, ok := c.(*prometheus.CounterVec)
	if !ok {
		return client.MetricsNopHandler.Counter(name)
	}
	counter := vec.WithLabelValues(values...)
	return counterFunc(func(d int64) { counter.Add(float64(d)) })
}

func (h sdkMetrics) Gauge(name string) client.MetricsGauge {
	c, values := h.get(name, func(l []string) prometheus.Collector {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: sanitizeName(name), Help: "Temporal SDK gauge " + name}, l)
	})
	vec, ok := c.(*prometheus.GaugeVec)
	if !ok {
		return client.MetricsNopHandler.Gauge(name)
	}
	gauge := vec.WithLabelValues(values...)
	return gaugeFunc(gauge.Set)
}

func (h sdkMetrics) Timer(name string) client.MetricsTimer {
	c, values := h.get(name, func(l []string) prometheus.Collector {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: sanitizeName(name) + "_seconds", Help: "Temporal SDK timer " + name,
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, l)
	})
	vec, ok := c.(*prometheus.HistogramVec)
	if !ok {
		return client.MetricsNopHandler.Timer(name)
	}
	obs := vec.WithLabelValues(values...)
	return timerFunc(func(d time.Duration) { obs.Observe(d.Seconds()) })
}

type counterFunc func(int64)

func (f counterFunc) Inc(d int64) { f(d) }

type gaugeFunc func(float64)

func (f gaugeFunc) Update(v float64) { f(v) }

type timerFunc func(time.Duration)

func (f timerFunc) Record(d time.Duration) { f(d) }
