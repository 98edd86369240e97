package cloudapi

import (
	"errors"
	"strings"

	"github.com/aws/smithy-go"
)

// FromAWS classifies an AWS SDK error (after the SDK's own retries) by its error code, keeping the code and
// message; errors that are not AWS API errors (network, context) come back unchanged.
func FromAWS(err error) error {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return err
	}
	code := api.ErrorCode()
	kind := Kind("")
	switch {
	case code == "Throttling" || code == "ThrottlingException" || code == "RequestLimitExceeded" || code == "TooManyRequestsException":
		kind = Throttled
	case code == "InsufficientInstanceCapacity" || strings.Contains(api.ErrorMessage(), "InsufficientInstanceCapacity"):
		kind = CapacityUnavailable
	case strings.HasSuffix(code, "NotFound") || strings.HasSuffix(code, "NotFoundException"):
		kind = NotFound
	case code == "ValidationError" || code == "InvalidTarget" || code == "InvalidParameterValue" || code == "InvalidConfigurationRequest" ||
		strings.HasPrefix(code, "Invalid") || code == "AccessDenied" || code == "UnauthorizedOperation":
		kind = Invalid
	case strings.HasPrefix(code, "TooMany") || code == "LimitExceeded":
		// A quota (TooManyTargets, TooManyRegistrationsForTargetId, an Auto Scaling LimitExceeded): retrying
		// does not raise it.
		kind = Invalid
	default:
		return &Error{Code: code, Message: api.ErrorMessage(), Err: err} // kept retryable: 5xx, contention
	}
	return &Error{Kind: kind, Code: code, Message: api.ErrorMessage(), Err: err}
}

// IsCapacityMessage reports whether a launch failure message says the capacity ran out.
func IsCapacityMessage(msg string) bool {
	return strings.Contains(msg, "InsufficientInstanceCapacity") ||
		(strings.Contains(msg, "do not have sufficient") && strings.Contains(msg, "capacity"))
}
