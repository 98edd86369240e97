package cloudapi

import (
	"errors"
	"testing"

	"github.com/aws/smithy-go"
)

// AWS error codes by what to do about them: throttling waits, capacity is its own kind, a missing thing is
// not found, bad input and quotas are not retried (a retry raises no quota), the rest is retried.
func TestAWSErrorCodesAreClassifiedByWhatToDo(t *testing.T) {
	for code, want := range map[string]Kind{
		"Throttling": Throttled, "TooManyRequestsException": Throttled,
		"InsufficientInstanceCapacity": CapacityUnavailable,
		"TargetGroupNotFound":          NotFound,
		"ValidationError":              Invalid, "AccessDenied": Invalid,
		"TooManyTargets": Invalid, "TooManyRegistrationsForTargetId": Invalid, "LimitExceeded": Invalid,
		"ResourceContention": "", "ScalingActivityInProgress": "", "InternalFailure": "",
	} {
		err := FromAWS(&smithy.GenericAPIError{Code: code, Message: "m"})
		var e *Error
		if !errors.As(err, &e) || e.Kind != want || e.Code != code {
			t.Errorf("%s: %+v, want kind %q", code, err, want)
		}
	}
}
