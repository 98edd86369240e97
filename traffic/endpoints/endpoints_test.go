package endpoints_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/llmscaler/llmscaler/traffic"
	"github.com/llmscaler/llmscaler/traffic/endpoints"
)

func endpoint(pod string, ready, terminating *bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: pod},
		Conditions: discoveryv1.EndpointConditions{Ready: ready, Terminating: terminating}}
}

// A pod serves when it is a ready endpoint in any of the Service's slices (a nil condition is ready); the
// others say whether they are endpoints at all.
func TestServingSaysWhyEachOtherPodIsNot(t *testing.T) {
	slice := func(name string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "models",
			Labels: map[string]string{discoveryv1.LabelServiceName: "llm"}}, AddressType: discoveryv1.AddressTypeIPv4, Endpoints: eps}
	}
	kube := fake.NewClientset(
		slice("llm-v4", endpoint("ready", nil, nil), endpoint("starting", ptr.To(false), nil), endpoint("leaving", ptr.To(false), ptr.To(true)),
			endpoint("both", ptr.To(false), nil)),
		slice("llm-v6", endpoint("both", ptr.To(true), nil)),
	)
	h, err := endpoints.LoadBalancer{Kube: kube}.Serving(context.Background(), traffic.Config{Namespace: "models", Service: "llm"},
		[]traffic.Target{{Pod: "ready"}, {Pod: "starting"}, {Pod: "leaving"}, {Pod: "both"}, {Pod: "absent"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "starting (endpoint not ready), leaving (endpoint terminating), absent (not an endpoint of service llm: does its selector match the pod's labels?)"
	if strings.Join(h.Serving, ",") != "ready,both" || h.Explain() != want {
		t.Fatalf("serving %v, not serving %q; want ready,both and %q", h.Serving, h.Explain(), want)
	}
}
