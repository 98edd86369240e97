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

// Serving implements traffic.LoadBalancer: the pods that are ready endpoints of the Service; the others say
// whether they are endpoints at all.
func (l LoadBalancer) Serving(ctx context.Context, cfg traffic.Config, targets []traffic.Target) (traffic.Health, error) {
	slices, err := l.Kube.DiscoveryV1().EndpointSlices(cfg.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + cfg.Service,
	})
	if err != nil {
		return traffic.Health{}, fmt.Errorf("listing EndpointSlices of service %s/%s: %w", cfg.Namespace, cfg.Service, err)
	}
	// A pod may be in more than one slice (one per address type): ready in any is ready.
	ready, terminating, listed := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, s := range slices.Items {
		for _, ep := range s.Endpoints {
			if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" {
				continue
			}
			name := ep.TargetRef.Name
			listed[name] = true
			// A nil ready condition means ready (discovery/v1).
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				ready[name] = true
			}
			if ep.Conditions.Terminating != nil && *ep.Conditions.Terminating {
				terminating[name] = true
			}
		}
	}
	var res traffic.Health
	for _, t := range targets {
		switch {
		case ready[t.Pod]:
			res.Serving = append(res.Serving, t.Pod)
		case terminating[t.Pod]:
			res.NotServing = append(res.NotServing, traffic.NotServing{Pod: t.Pod, Why: "endpoint terminating"})
		case listed[t.Pod]:
			res.NotServing = append(res.NotServing, traffic.NotServing{Pod: t.Pod, Why: "endpoint not ready"})
		default:
			res.NotServing = append(res.NotServing, traffic.NotServing{Pod: t.Pod,
				Why: fmt.Sprintf("not an endpoint of service %s: does its selector match the pod's labels?", cfg.Service)})
		}
	}
	return res, nil
}
