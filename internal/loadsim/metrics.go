package loadsim

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/llmscaler/llmscaler/internal/serving"
)

// metrics are LoRAX's Prometheus metrics, per pod (labels namespace and pod, as a pod scrape would have),
// plus the gateway's queue of requests no pod has taken yet.
type metrics struct {
	namespace   string
	queue       *prometheus.GaugeVec
	batch       *prometheus.GaugeVec
	count       *prometheus.CounterVec
	success     *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	queueDur    *prometheus.HistogramVec
	inference   *prometheus.HistogramVec
	generated   *prometheus.HistogramVec
	inputLength *prometheus.HistogramVec
	gateway     prometheus.Gauge
	offered     prometheus.Counter
}

func newMetrics(namespace string) *metrics {
	labels := []string{"namespace", "pod"}
	secs := prometheus.ExponentialBuckets(0.01, 2, 14)
	tokens := prometheus.ExponentialBuckets(8, 2, 10)
	return &metrics{
		namespace:   namespace,
		queue:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lorax_queue_length", Help: "Requests waiting in the queue."}, labels),
		batch:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lorax_batch_current_size", Help: "Sequences in the current batch."}, labels),
		count:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lorax_request_count", Help: "Requests received."}, labels),
		success:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lorax_request_success", Help: "Requests completed."}, labels),
		duration:    prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lorax_request_duration", Help: "End-to-end request duration (s).", Buckets: secs}, labels),
		queueDur:    prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lorax_request_queue_duration", Help: "Time in the queue (s).", Buckets: secs}, labels),
		inference:   prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lorax_request_inference_duration", Help: "Prefill and decode time (s).", Buckets: secs}, labels),
		generated:   prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lorax_request_generated_tokens", Help: "Tokens generated.", Buckets: tokens}, labels),
		inputLength: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lorax_request_input_length", Help: "Prompt tokens.", Buckets: tokens}, labels),
		gateway:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "llmscaler_gateway_queue_length", Help: "Requests waiting for a ready replica.", ConstLabels: prometheus.Labels{"namespace": namespace}}),
		offered:     prometheus.NewCounter(prometheus.CounterOpts{Name: "llmscaler_gateway_requests_total", Help: "Requests that arrived at the gateway in front of the replicas.", ConstLabels: prometheus.Labels{"namespace": namespace}}),
	}
}

func (m *metrics) all() []prometheus.Collector {
	return []prometheus.Collector{m.queue, m.batch, m.count, m.success, m.duration, m.queueDur, m.inference, m.generated, m.inputLength, m.gateway, m.offered}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.all() {
		c.Describe(ch)
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.all() {
		c.Collect(ch)
	}
}

func (m *metrics) gauges(pod string, queued, running int) {
	m.queue.WithLabelValues(m.namespace, pod).Set(float64(queued))
	m.batch.WithLabelValues(m.namespace, pod).Set(float64(running))
}

func (m *metrics) gatewayQueue(n int) { m.gateway.Set(float64(n)) }

func (m *metrics) arrived(pod string, r serving.Request) {
	m.count.WithLabelValues(m.namespace, pod).Inc()
	m.inputLength.WithLabelValues(m.namespace, pod).Observe(float64(r.Prompt))
}

func (m *metrics) finished(pod string, d serving.Done, arrival time.Time) {
	l := []string{m.namespace, pod}
	m.success.WithLabelValues(l...).Inc()
	m.duration.WithLabelValues(l...).Observe(d.Finish.Sub(arrival).Seconds())
	m.queueDur.WithLabelValues(l...).Observe(d.Start.Sub(arrival).Seconds())
	m.inference.WithLabelValues(l...).Observe(d.Finish.Sub(d.Start).Seconds())
	m.generated.WithLabelValues(l...).Observe(float64(d.Output))
}

// forget drops a pod that is gone, so its series end.
func (m *metrics) forget(pod string) {
	for _, v := range []interface{ DeleteLabelValues(...string) bool }{m.queue, m.batch, m.count, m.success, m.duration, m.queueDur, m.inference, m.generated, m.inputLength} {
		v.DeleteLabelValues(m.namespace, pod)
	}
}

// ServeMetrics serves the simulated pods' metrics on listen (host:port; port 0 picks one) at /metrics and
// returns the address and a function that stops serving.
func (s *Sim) ServeMetrics(listen string) (string, func(), error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.metrics)
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return "", nil, fmt.Errorf("metrics listener on %s: %w", listen, err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return l.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
