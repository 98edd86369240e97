// Package nodegroup is the interface to whatever adds and removes GPU nodes: an EC2 Auto Scaling Group
// (nodegroup/awsasg) or simulated kwok nodes for local clusters (nodegroup/kwok). Like Cluster Autoscaler's
// and Karpenter's cloud providers, it is small: describe the group, set its size, remove one instance.
//
// Every call is idempotent. SetDesiredSize takes an absolute size, never a delta, so a retried call never
// adds twice; TerminateInstance names the instance, and an instance already gone counts as done.
package nodegroup

import (
	"context"
	"errors"
	"fmt"
)

// Provider manages node groups.
type Provider interface {
	// Describe returns the group's bounds, requested size and instances.
	Describe(ctx context.Context, group string) (Group, error)
	// SetDesiredSize requests exactly n instances. It refuses sizes outside [Min, Max] with ErrOutOfBounds.
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

// ErrorKind tells apart the failures a caller handles differently.
type ErrorKind string

const (
	// NotFound: the group does not exist.
	NotFound ErrorKind = "NodeGroupNotFound"
	// OutOfBounds: the size asked for is outside the group's min and max.
	OutOfBounds ErrorKind = "NodeGroupOutOfBounds"
	// CapacityUnavailable: the cloud has no capacity for the instance type right now.
	CapacityUnavailable ErrorKind = "CapacityUnavailable"
	// Throttled: the provider's API rate limit; retry later.
	Throttled ErrorKind = "Throttled"
	// Invalid: the request was rejected as invalid (bad name, bad parameter).
	Invalid ErrorKind = "InvalidRequest"
	// Protected: the instance is protected from scale-in.
	Protected ErrorKind = "ScaleInProtected"
)

// Error is a provider failure of a known kind. Code carries the provider's own error code (an AWS error
// code such as ValidationError), for the record.
type Error struct {
	Kind    ErrorKind
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Code != "" {
		msg = e.Code + ": " + msg
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an Error of the given kind.
func Errorf(kind ErrorKind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of a provider error, or "" for other errors.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}
