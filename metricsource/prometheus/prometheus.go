// Package prometheus reads LLM-serving metrics (queue length, in-flight requests, token throughput) with
// PromQL through client_golang's API client.
package prometheus

import (
	"context"
	"fmt"
	"math"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/llmscaler/llmscaler/metricsource"
	"github.com/llmscaler/llmscaler/policy"
)

// Source queries one Prometheus server.
type Source struct {
	api     promv1.API
	timeout time.Duration
	url     string
}

var _ metricsource.Queries = (*Source)(nil)

// New returns a source for the Prometheus at url.
func New(url string, timeout time.Duration) (*Source, error) {
	c, err := promapi.NewClient(promapi.Config{Address: url})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", url, err)
	}
	return &Source{api: promv1.NewAPI(c), timeout: timeout, url: url}, nil
}

func (s *Source) query(ctx context.Context, q string) (model.Vector, error) {
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	v, _, _, err := s.api.Query(ctx, q, time.Now())
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: query %q: %w", s.url, q, err)
	}
	switch r := v.(type) {
	case model.Vector:
		return r, nil
	case *model.Scalar:
		return model.Vector{{Value: r.Value, Timestamp: r.Timestamp}}, nil
	}
	return nil, fmt.Errorf("prometheus %s: query %q returned a %s, want an instant vector", s.url, q, v.Type())
}

// PerPod implements metricsource.Queries.
func (s *Source) PerPod(ctx context.Context, q string) ([]policy.PodSample, error) {
	vec, err := s.query(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]policy.PodSample, 0, len(vec))
	for _, smp := range vec {
		pod, ok := smp.Metric["pod"]
		if !ok {
			return nil, fmt.Errorf("query %q returned a series without a pod label (%s): aggregate with `by (pod)`", q, smp.Metric)
		}
		v := float64(smp.Value)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue // no usable sample: the pod counts as missing
		}
		out = append(out, policy.PodSample{Pod: string(pod), Value: v, Timestamp: smp.Timestamp.Time()})
	}
	return out, nil
}

// Scalar implements metricsource.Queries.
func (s *Source) Scalar(ctx context.Context, q string) (float64, error) {
	vec, err := s.query(ctx, q)
	if err != nil {
		return 0, err
	}
	if len(vec) == 0 {
		return 0, fmt.Errorf("query %q returned no series (if absence means zero, append `or vector(0)`)", q)
	}
	var sum float64
	for _, smp := range vec {
		sum += float64(smp.Value)
	}
	if math.IsNaN(sum) || math.IsInf(sum, 0) {
		return 0, fmt.Errorf("query %q returned %v", q, sum)
	}
	return sum, nil
}
