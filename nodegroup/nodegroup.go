// Package nodegroup is the interface to whatever adds and removes GPU nodes: an EC2 Auto Scaling Group
// (nodegroup/awsasg) or simulated kwok nodes for local clusters (nodegroup/kwok). Like Cluster Autoscaler's
// and Karpenter's cloud providers, it is small: describe the group, set its size, remove one instance.
//
// Errors are cloudapi.Errors where their kind matters (out of bounds, capacity, throttling...).
//
// Every call is idempotent. SetDesiredSize takes an absolute size, never a delta, so a retried call never
// adds twice; TerminateInstance names the instance, and an instance already gone counts as done.
package nodegroup

import (
	"context"
	"time"
)

// Provider manages node groups.
type Provider interface {
	// Describe returns the group's bounds, requested size and instances.
	Describe(ctx context.Context, group string) (Group, error)
	// SetDesiredSize requests exactly n instances. It refuses sizes outside [Min, Max] (cloudapi.OutOfBounds).
	SetDesiredSize(ctx context.Context, group string, n int32) error
	// TerminateInstance removes the named instance and lowers the requested size by one. An instance that
	// is already gone is not an error.
	TerminateInstance(ctx context.Context, group, instanceID string) error
}

// Group is a node group as its provider sees it.
type Group struct {
	Name string `json:"name"`
	Min  int32  `json:"min"`
	Max  int32  `json:"max"`
	// Desired is the requested size, counting instances that are still booting.
	Desired      int32      `json:"desired"`
	InstanceType string     `json:"instanceType,omitempty"`
	Instances    []Instance `json:"instances,omitempty"`
	// Activities are the group's recent scaling activities, newest first (where the provider has them).
	Activities []Activity `json:"activities,omitempty"`
}

// Activity is a scaling activity: a launch or a termination, and how it went.
type Activity struct {
	ID          string `json:"id"`
	Description string `json:"description"`
	// Status is InProgress, Successful, Failed or Cancelled.
	Status  string    `json:"status"`
	Message string    `json:"message,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end,omitzero"`
}

// Instance is one machine of a group.
type Instance struct {
	ID   string `json:"id"`
	Zone string `json:"zone,omitempty"`
	// State is the provider's lifecycle state (Pending, InService, Terminating...).
	State string `json:"state,omitempty"`
	// Protected instances are never removed by scale-in.
	Protected bool `json:"protected,omitempty"`
}

// Instance returns the instance with the given ID.
func (g Group) Instance(id string) (Instance, bool) {
	for _, in := range g.Instances {
		if in.ID == id {
			return in, true
		}
	}
	return Instance{}, false
}
