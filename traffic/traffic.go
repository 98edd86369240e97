// Package traffic is the load balancer step of the sagas: on scale-out, new replicas must serve traffic
// before the action counts as done; on scale-in, a victim must stop receiving new requests before it is
// evicted. Two implementations: endpoints (the Service's EndpointSlices, which in-cluster proxies and the AWS
// Load Balancer Controller follow) and targetgroup (an ELBv2 target group the autoscaler registers pods in).
package traffic

import (
	"context"
	"strings"
	"time"
)

// Config says which load balancer a model's pods are behind.
type Config struct {
	Namespace string `json:"namespace"`
	// Service whose EndpointSlices list the pods (endpoints mode).
	Service string `json:"service,omitempty"`
	// TargetGroupARN, TargetType (ip or instance) and Port (target-group mode).
	TargetGroupARN string `json:"targetGroupARN,omitempty"`
	TargetType     string `json:"targetType,omitempty"`
	Port           int32  `json:"port,omitempty"`
}

// Target is one pod as a load balancer target.
type Target struct {
	Pod        string `json:"pod"`
	IP         string `json:"ip,omitempty"`
	Port       int32  `json:"port,omitempty"`
	Node       string `json:"node,omitempty"`
	InstanceID string `json:"instanceID,omitempty"`
}

// LoadBalancer adds and removes targets.
type LoadBalancer interface {
	// Register adds targets; a no-op where the platform registers them itself.
	Register(ctx context.Context, cfg Config, targets []Target) error
	// Serving says which of the targets' pods receive traffic now, and why each other one does not.
	Serving(ctx context.Context, cfg Config, targets []Target) (Health, error)
	// Deregister takes targets out of rotation; it returns how long in-flight requests may still need (a
	// target group's deregistration delay) before the pods can be evicted.
	Deregister(ctx context.Context, cfg Config, targets []Target) (time.Duration, error)
}

// Health is what a load balancer says of a set of targets: the pods it sends traffic to, and for each other
// pod why not, in its own words (a target group's state and reason), so that a scale-out that times out
// waiting for them says what to fix.
type Health struct {
	Serving    []string     `json:"serving"`
	NotServing []NotServing `json:"notServing,omitempty"`
}

// NotServing is a pod that receives no traffic, and why.
type NotServing struct {
	Pod string `json:"pod"`
	Why string `json:"why"`
}

// Explain lists the pods not serving with their reasons: "a (unhealthy: Target.FailedHealthChecks), b (...)".
func (h Health) Explain() string {
	parts := make([]string, 0, len(h.NotServing))
	for _, n := range h.NotServing {
		parts = append(parts, n.Pod+" ("+n.Why+")")
	}
	return strings.Join(parts, ", ")
}
