package activities

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/llmscaler/llmscaler/cloudapi"
	"github.com/llmscaler/llmscaler/nodegroup"
	"github.com/llmscaler/llmscaler/traffic"
)

// Providers are the node providers of a worker, by name (kwok, aws-asg).
type Providers map[string]nodegroup.Provider

func (p Providers) get(name string) (nodegroup.Provider, error) {
	if prov, ok := p[name]; ok {
		return prov, nil
	}
	return nil, temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("node provider %q is not configured in this worker (configured: %s)", name, strings.Join(sortedNames(p), ", ")), ErrNotFound, nil)
}

// LoadBalancers are the load balancer modes of a worker, by name (endpoints, aws-target-group).
type LoadBalancers map[string]traffic.LoadBalancer

func (l LoadBalancers) get(mode string) (traffic.LoadBalancer, error) {
	if lb, ok := l[mode]; ok {
		return lb, nil
	}
	return nil, temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("load balancer mode %q is not configured in this worker (configured: %s)", mode, strings.Join(sortedNames(l), ", ")), ErrNotFound, nil)
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// throttleDelay is how long to wait after a provider throttled us before the next attempt.
const throttleDelay = 5 * time.Second

// cloudError turns a cloud adapter's failure into a Temporal error the retry policy understands: errors
// that a retry cannot fix (bounds, capacity, validation, protection, a missing group) are non-retryable and
// carry their kind as the error type, so the workflow can compensate and the history says what happened
// with the provider's error code; throttling is retried after a pause (the SDK's own retryer has already
// tried a few times: the activity's retries space out beyond it instead of multiplying blindly); anything
// else is retried with the activity's backoff.
func cloudError(what string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if what != "" {
		msg = what + ": " + msg
	}
	var ce *cloudapi.Error
	if !errors.As(err, &ce) {
		return errors.New(msg)
	}
	switch ce.Kind {
	case cloudapi.Throttled:
		return temporal.NewApplicationErrorWithOptions(msg, string(ce.Kind), temporal.ApplicationErrorOptions{NextRetryDelay: throttleDelay, Cause: err})
	case "":
		return errors.New(msg)
	}
	return temporal.NewNonRetryableApplicationError(msg, string(ce.Kind), err)
}
