// Package metricsource reads the metrics a model scales on. Resource metrics (cpu, memory) come from the
// Kubernetes metrics API, the path the HPA reads (kubelet -> metrics-server -> metrics.k8s.io); Pods, Object
// and External metrics, the LLM-serving signals such as lorax_queue_length, come from Prometheus.
package metricsource

import (
	"context"
	"fmt"

	"github.com/llmscaler/llmscaler/policy"
)

// Pods says whose pods a metric is read for.
type Pods struct {
	Namespace string
	// Selector is the Deployment's label selector, in its string form.
	Selector string
}

// PodMetrics reads per-pod samples of a resource.
type PodMetrics interface {
	// Resource returns each pod's usage of a resource: cpu in cores, memory in bytes.
	Resource(ctx context.Context, pods Pods, resource string) ([]policy.PodSample, error)
}

// Queries evaluates PromQL.
type Queries interface {
	// PerPod runs a query whose series carry a "pod" label and returns one sample per pod.
	PerPod(ctx context.Context, query string) ([]policy.PodSample, error)
	// Scalar runs a query and returns the sum of its series; an empty result is an error (absence is not
	// zero: write `... or vector(0)` where it should be).
	Scalar(ctx context.Context, query string) (float64, error)
}

// Router reads every kind of metric from the right source.
type Router struct {
	Resources PodMetrics
	// Prometheus may be nil when no spec uses it; metrics that need it then read as invalid.
	Prometheus Queries
}

// Read returns the reading of one metric; a failure is recorded in the reading's Error, which makes the
// metric invalid for the policy (no scale-down on it).
func (r Router) Read(ctx context.Context, pods Pods, m policy.MetricSpec) policy.MetricReading {
	reading := policy.MetricReading{Name: m.Name()}
	var err error
	switch m.Type {
	case policy.ResourceMetric:
		if m.Resource == nil || r.Resources == nil {
			reading.Error = "no metrics API client"
			return reading
		}
		reading.Pods, err = r.Resources.Resource(ctx, pods, m.Resource.Name)
	case policy.PodsMetric, policy.ObjectMetric, policy.ExternalMetric:
		if r.Prometheus == nil {
			reading.Error = "no Prometheus URL configured (prometheus.url in the worker config)"
			return reading
		}
		query := metricQuery(m)
		if m.Type == policy.PodsMetric {
			reading.Pods, err = r.Prometheus.PerPod(ctx, query)
		} else {
			var v float64
			if v, err = r.Prometheus.Scalar(ctx, query); err == nil {
				reading.Value = &v
			}
		}
	case policy.DemandMetric:
		if m.Demand == nil || r.Prometheus == nil {
			reading.Error = "no Prometheus URL configured (prometheus.url in the worker config)"
			return reading
		}
		reading.Demand, err = r.demand(ctx, m.Demand)
	default:
		reading.Error = "unknown metric type " + string(m.Type)
	}
	if err != nil {
		reading.Error = err.Error()
	}
	return reading
}

// Activation reads a scale-to-zero activation signal; nil when it cannot be read.
func (r Router) Activation(ctx context.Context, id policy.MetricIdentifier) (*float64, string) {
	if r.Prometheus == nil {
		return nil, "no Prometheus URL configured"
	}
	v, err := r.Prometheus.Scalar(ctx, id.Query)
	if err != nil {
		return nil, err.Error()
	}
	return &v, ""
}

func metricQuery(m policy.MetricSpec) string {
	switch m.Type {
	case policy.PodsMetric:
		return m.Pods.Metric.Query
	case policy.ObjectMetric:
		return m.Object.Metric.Query
	case policy.ExternalMetric:
		return m.External.Metric.Query
	}
	return ""
}

// demand reads a Demand metric's signals: the arrival rate and the backlog must be read (an unreadable one
// makes the metric invalid); a service time that reads nothing falls back to the spec's fixed value, and
// an unreadable peak arrival rate is left out.
func (r Router) demand(ctx context.Context, d *policy.DemandSource) (*policy.DemandReading, error) {
	arrivals, err := r.Prometheus.Scalar(ctx, d.Arrivals.Query)
	if err != nil {
		return nil, fmt.Errorf("arrivals: %w", err)
	}
	out := &policy.DemandReading{Arrivals: arrivals}
	if d.ServiceTime != nil && d.ServiceTime.Query != "" {
		if v, err := r.Prometheus.Scalar(ctx, d.ServiceTime.Query); err == nil {
			out.ServiceTime = &v
		}
	}
	if d.Backlog != nil && d.Backlog.Query != "" {
		v, err := r.Prometheus.Scalar(ctx, d.Backlog.Query)
		if err != nil {
			return nil, fmt.Errorf("backlog: %w", err)
		}
		out.Backlog = &v
	}
	// The peak only ever raises the count: unreadable (a scrape slower than its window), it is left out.
	if d.PeakArrivals != nil && d.PeakArrivals.Query != "" {
		if v, err := r.Prometheus.Scalar(ctx, d.PeakArrivals.Query); err == nil {
			out.PeakArrivals = &v
		}
	}
	return out, nil
}
