// Package cloudapi holds the typed errors of the cloud adapters (node groups, load balancers): the kinds
// of failure the workflows must tell apart, each keeping the provider's own error code for the record
// ("setting desired capacity of gpu-pool-a to 4: ValidationError: ..."). The activities map them to
// Temporal application errors, non-retryable where a retry cannot help.
package cloudapi

import (
	"errors"
	"fmt"
)

// Kind tells apart the failures a caller handles differently.
type Kind string

const (
	// NotFound: the group or target group does not exist.
	NotFound Kind = "NotFound"
	// OutOfBounds: the size asked for is outside the group's min and max.
	OutOfBounds Kind = "NodeGroupOutOfBounds"
	// CapacityUnavailable: the cloud has no capacity for the instance type right now.
	CapacityUnavailable Kind = "CapacityUnavailable"
	// Throttled: the provider's API rate limit; retry later.
	Throttled Kind = "Throttled"
	// Invalid: the request was rejected as invalid (bad name, bad parameter, bad target).
	Invalid Kind = "InvalidRequest"
	// Protected: the instance is protected from scale-in.
	Protected Kind = "ScaleInProtected"
	// LaunchFailed: an instance failed to launch for a reason other than capacity.
	LaunchFailed Kind = "LaunchFailed"
)

// Error is a failure of a known kind. Code carries the provider's own error code (an AWS error code such as
// ValidationError), for the record.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Code != "" {
		msg = e.Code + ": " + msg
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an Error of the given kind.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of an error, or "" for errors of no known kind.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}
