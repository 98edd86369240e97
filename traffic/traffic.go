// Package traffic is the load balancer step of the sagas: on scale-out, new replicas must serve traffic
// before the action counts as done; on scale-in, a victim must stop receiving new requests before it is
// evicted. Two implementations: endpoints (the Service's EndpointSlices, which in-cluster proxies and the AWS
// Load Balancer Controller follow) and targetgroup (an ELBv2 target group the autoscaler registers pods in).
package traffic

import (
	"context"
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
	// Serving returns the pods of targets that receive traffic now.
	Serving(ctx context.Context, cfg Config, targets []Target) ([]string, error)
	// Deregister takes targets out of rotation; it returns how long in-flight requests may still need (a
	// target group's deregistration delay) before the pods can be evicted.
	Deregister(ctx context.Context, cfg Config, targets []Target) (time.Duration, error)
}
