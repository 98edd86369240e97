package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// Traffic moves load balancer targets.
type Traffic struct {
	LoadBalancers LoadBalancers
	// Poll is the interval of waits (default 2s).
	Poll time.Duration
}

func (t *Traffic) poll() time.Duration {
	if t.Poll > 0 {
		return t.Poll
	}
	return 2 * time.Second
}

// RegisterTargets adds the targets to the load balancer (idempotent).
func (t *Traffic) RegisterTargets(ctx context.Context, in TrafficInput) error {
	lb, err := t.LoadBalancers.get(in.Mode)
	if err != nil {
		return err
	}
	return cloudError("", lb.Register(ctx, in.Config, in.Targets))
}

// WaitServing waits until every target serves traffic (a ready endpoint, a healthy target). Past the
// deadline it fails with ErrNotServing.
func (t *Traffic) WaitServing(ctx context.Context, in TrafficInput) ([]string, error) {
	lb, err := t.LoadBalancers.get(in.Mode)
	if err != nil {
		return nil, err
	}
	for {
		health, err := lb.Serving(ctx, in.Config, in.Targets)
		if err != nil {
			return nil, pastDeadline(in.Deadline, cloudError("", err), ErrNotServing, "the targets' health could not be read")
		}
		activity.RecordHeartbeat(ctx, health.Serving)
		if len(health.Serving) >= len(in.Targets) {
			return health.Serving, nil
		}
		if time.Now().After(in.Deadline) {
			return health.Serving, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("%d of %d pods serving at the deadline; not serving: %s", len(health.Serving), len(in.Targets), health.Explain()), ErrNotServing, nil)
		}
		if err := sleep(ctx, t.poll()); err != nil {
			return health.Serving, err
		}
	}
}

// DeregisterTargets takes the targets out of rotation and waits for the load balancer's drain delay, so
// that no new request reaches them and those in flight finish before any pod is evicted.
func (t *Traffic) DeregisterTargets(ctx context.Context, in TrafficInput) error {
	lb, err := t.LoadBalancers.get(in.Mode)
	if err != nil {
		return err
	}
	delay, err := lb.Deregister(ctx, in.Config, in.Targets)
	if err != nil {
		return cloudError("", err)
	}
	deadline := time.Now().Add(delay)
	if activity.HasHeartbeatDetails(ctx) {
		var earlier time.Time
		if activity.GetHeartbeatDetails(ctx, &earlier) == nil && !earlier.IsZero() {
			deadline = earlier // a retry resumes the same wait
		}
	}
	for time.Now().Before(deadline) {
		activity.RecordHeartbeat(ctx, deadline)
		if err := sleep(ctx, min(t.poll(), time.Until(deadline))); err != nil {
			return err
		}
	}
	return nil
}
