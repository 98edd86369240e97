// Package endpoints follows a Service's EndpointSlices: a pod serves once its endpoint is ready.
//
// Kubernetes registers pods in EndpointSlices by itself, so Register is a no-op; and a pod leaves rotation
// when it starts terminating (its endpoint turns not ready), so Deregister is a no-op too: the eviction
// takes it out, and the pod's preStop pause covers the time proxies and load balancers need to notice.
package endpoints

import (
	"context"
	"fmt"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/llmscaler/llmscaler/traffic"
)

// LoadBalancer reads EndpointSlices.
type LoadBalancer struct {
	Kube kubernetes.Interface
}

var _ traffic.LoadBalancer = LoadBalancer{}

// Register implements traffic.LoadBalancer: the EndpointSlice controller registers pods.
func (LoadBalancer) Register(context.Context, traffic.Config, []traffic.Target) error { return nil }

// Deregister implements traffic.LoadBalancer: pods leave the slices when they start terminating.
func (LoadBalancer) Deregister(context.Context, traffic.Config, []traffic.Target) (time.Duration, error) {
	return 0, nil
}

// Serving implements traffic.LoadBalancer.
func (l LoadBalancer) Serving(ctx context.Context, cfg traffic.Config, targets []traffic.Target) ([]string, error) {
	want := map[string]bool{}
	for _, t := range targets {
		want[t.Pod] = true
	}
	slices, err := l.Kube.DiscoveryV1().EndpointSlices(cfg.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + cfg.Service,
	})
	if err != nil {
		return nil, fmt.Errorf("listing EndpointSlices of service %s/%s: %w", cfg.Namespace, cfg.Service, err)
	}
	seen := map[string]bool{}
	var serving []string
	for _, s := range slices.Items {
		for _, ep := range s.Endpoints {
			if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" || !want[ep.TargetRef.Name] || seen[ep.TargetRef.Name] {
				continue
			}
			// A nil ready condition means ready (discovery/v1).
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				seen[ep.TargetRef.Name] = true
				serving = append(serving, ep.TargetRef.Name)
			}
		}
	}
	return serving, nil
}
