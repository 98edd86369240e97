// Package metricsapi reads pod resource usage from the Kubernetes metrics API (metrics.k8s.io), as the HPA
// does.
package metricsapi

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/llmscaler/llmscaler/metricsource"
	"github.com/llmscaler/llmscaler/policy"
)

// Source reads PodMetrics.
type Source struct {
	Client metricsclient.Interface
}

var _ metricsource.PodMetrics = Source{}

// Resource implements metricsource.PodMetrics.
func (s Source) Resource(ctx context.Context, pods metricsource.Pods, resource string) ([]policy.PodSample, error) {
	name := corev1.ResourceName(resource)
	if name != corev1.ResourceCPU && name != corev1.ResourceMemory {
		return nil, fmt.Errorf("the metrics API has no resource %q (it serves cpu and memory)", resource)
	}
	list, err := s.Client.MetricsV1beta1().PodMetricses(pods.Namespace).List(ctx, metav1.ListOptions{LabelSelector: pods.Selector})
	if err != nil {
		return nil, fmt.Errorf("reading %s from metrics.k8s.io in %s: %w", resource, pods.Namespace, err)
	}
	out := make([]policy.PodSample, 0, len(list.Items))
	for _, pm := range list.Items {
		var total float64
		for _, c := range pm.Containers {
			q := c.Usage[name]
			if name == corev1.ResourceCPU {
				total += float64(q.MilliValue()) / 1000
			} else {
				total += float64(q.Value())
			}
		}
		out = append(out, policy.PodSample{Pod: pm.Name, Value: total, Timestamp: pm.Timestamp.Time, Window: policy.Duration(pm.Window.Duration)})
	}
	return out, nil
}
