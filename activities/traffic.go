package activities

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
		serving, err := lb.Serving(ctx, in.Config, in.Targets)
		if err != nil {
			return nil, pastDeadline(in.Deadline, cloudError("", err), ErrNotServing, "the targets' health could not be read")
		}
		activity.RecordHeartbeat(ctx, serving)
		if len(serving) >= len(in.Targets) {
			return serving, nil
		}
		if time.Now().After(in.Deadline) {
			var missing []string
			for _, tg := range in.Targets {
				if !slices.Contains(serving, tg.Pod) {
					missing = append(missing, tg.Pod)
				}
			}
			return serving, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("%d of %d pods serving at the deadline; not serving: %s", len(serving), len(in.Targets), strings.Join(missing, ", ")), ErrNotServing, nil)
		}
		if err := sleep(ctx, t.poll()); err != nil {
			return serving, err
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
