package workflows

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/llmscaler/llmscaler/policy"
)

// maxPin bounds how long a pin may hold.
const maxPin = 7 * 24 * time.Hour

// registerHandlers sets the queries and the updates. Every update has a validator: a rejected update is not
// written to the history and its caller gets the reason.
func (a *autoscaler) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) { return a.status(workflow.Now(ctx)), nil }); err != nil {
		return err
	}
	if err := workflow.SetQueryHandler(ctx, QueryDecisions, func(n int) ([]policy.Decision, error) {
		if n <= 0 || n > len(a.c.Decisions) {
			n = len(a.c.Decisions)
		}
		return a.c.Decisions[len(a.c.Decisions)-n:], nil
	}); err != nil {
		return err
	}
	if err := workflow.SetQueryHandler(ctx, QuerySnapshot, func() (policy.Snapshot, error) {
		if a.lastObs == nil {
			return policy.Snapshot{}, errors.New("no observation yet")
		}
		return policy.Snapshot{Observation: *a.lastObs, State: a.lastInputState, Overrides: a.policyOverrides(),
			LeadTime: a.lastLead, Waiting: a.lastWaiting}, nil
	}); err != nil {
		return err
	}

	type handler struct {
		name      string
		fn        any
		validator any
	}
	for _, h := range []handler{
		{UpdatePause, a.pause, a.validatePause},
		{UpdateResume, a.resume, a.validateResume},
		{UpdatePin, a.pin, a.validatePin},
		{UpdateUnpin, a.unpin, a.validateUnpin},
		{UpdateBounds, a.setBounds, a.validateBounds},
		{UpdateTargets, a.setTargets, a.validateTargets},
		{UpdateDrainNode, a.drainNode, a.validateDrainNode},
		{UpdateSpec, a.setSpec, a.validateSpec},
	} {
		if err := workflow.SetUpdateHandlerWithOptions(ctx, h.name, h.fn, workflow.UpdateHandlerOptions{Validator: h.validator}); err != nil {
			return err
		}
	}
	return workflow.SetUpdateHandler(ctx, UpdateEvaluateNow, func(ctx workflow.Context) (policy.Decision, error) {
		seq := a.c.Evaluations
		if a.freshAnswers && a.evaluating {
			seq++ // the evaluation under way observed before the request: the next one answers it
		}
		a.evalReq++
		a.wake.SendAsync(struct{}{})
		if err := workflow.Await(ctx, func() bool { return a.c.Evaluations > seq }); err != nil {
			return policy.Decision{}, err
		}
		if a.lastErr != "" {
			return policy.Decision{}, errors.New(a.lastErr)
		}
		return *a.lastDecision(), nil
	})
}

// changed publishes the new state and wakes the loop to evaluate with it.
func (a *autoscaler) changed(ctx workflow.Context) Status {
	a.evalReq++
	a.wake.SendAsync(struct{}{})
	a.publish(ctx)
	return a.status(workflow.Now(ctx))
}

func (a *autoscaler) validatePause(_ workflow.Context, r PauseRequest) error {
	if r.Reason == "" {
		return errors.New("a reason is required to pause: it is recorded with every decision while paused")
	}
	return nil
}

func (a *autoscaler) pause(ctx workflow.Context, r PauseRequest) (Status, error) {
	o := &a.c.Overrides
	if !o.Paused {
		o.PausedAt = workflow.Now(ctx)
	}
	o.Paused, o.PauseReason = true, r.Reason
	return a.changed(ctx), nil
}

func (a *autoscaler) validateResume(_ workflow.Context, r PauseRequest) error {
	if !a.c.Overrides.Paused {
		return errors.New("not paused")
	}
	if r.Reason == "" {
		return errors.New("a reason is required to resume")
	}
	return nil
}

func (a *autoscaler) resume(ctx workflow.Context, _ PauseRequest) (Status, error) {
	o := &a.c.Overrides
	o.Paused, o.PauseReason, o.PausedAt = false, "", time.Time{}
	return a.changed(ctx), nil
}

func (a *autoscaler) validatePin(_ workflow.Context, r PinRequest) error {
	max := a.effectiveSpec().Spec.MaxReplicas
	switch {
	case r.Replicas < 0 || r.Replicas > max:
		return fmt.Errorf("replicas %d: must be between 0 and maxReplicas %d", r.Replicas, max)
	case r.For.D() <= 0:
		return errors.New("for: a duration above zero is required, such as 30m")
	case r.For.D() > maxPin:
		return fmt.Errorf("for: %s is longer than the %s a pin may last", r.For, maxPin)
	}
	return nil
}

func (a *autoscaler) pin(ctx workflow.Context, r PinRequest) (Status, error) {
	o := &a.c.Overrides
	n := r.Replicas
	o.Pinned, o.PinnedUntil, o.PinReason = &n, workflow.Now(ctx).Add(r.For.D()), r.Reason
	return a.changed(ctx), nil
}

func (a *autoscaler) validateUnpin(_ workflow.Context) error {
	if a.c.Overrides.Pinned == nil {
		return errors.New("not pinned")
	}
	return nil
}

func (a *autoscaler) unpin(ctx workflow.Context) (Status, error) {
	o := &a.c.Overrides
	o.Pinned, o.PinnedUntil, o.PinReason = nil, time.Time{}, ""
	return a.changed(ctx), nil
}

func (a *autoscaler) validateBounds(ctx workflow.Context, r BoundsRequest) error {
	if r.Min == nil && r.Max == nil {
		return errors.New("give min, max or both")
	}
	s := a.effectiveSpec().Spec
	lo, hi := s.MinReplicas, s.MaxReplicas
	if r.Min != nil {
		lo = *r.Min
	}
	if r.Max != nil {
		hi = *r.Max
	}
	switch {
	case lo < 1:
		return fmt.Errorf("min %d: must be >= 1", lo)
	case hi < lo:
		return fmt.Errorf("max %d is below min %d", hi, lo)
	}
	if o := a.c.Overrides; o.Pinned != nil && workflow.Now(ctx).Before(o.PinnedUntil) && *o.Pinned > hi {
		return fmt.Errorf("max %d is below the pin to %d replicas (until %s): unpin first, or give a max of %d or more",
			hi, *o.Pinned, o.PinnedUntil.UTC().Format(time.DateTime), *o.Pinned)
	}
	return nil
}

func (a *autoscaler) setBounds(ctx workflow.Context, r BoundsRequest) (Status, error) {
	o := &a.c.Overrides
	if r.Min != nil {
		v := *r.Min
		o.MinReplicas = &v
	}
	if r.Max != nil {
		v := *r.Max
		o.MaxReplicas = &v
	}
	o.BoundsReason = r.Reason
	return a.changed(ctx), nil
}

func (a *autoscaler) validateTargets(_ workflow.Context, r TargetsRequest) error {
	if len(r.Targets) == 0 {
		return errors.New("give at least one metric=value")
	}
	for _, t := range r.Targets {
		found := false
		for _, m := range a.spec.Spec.Metrics {
			if m.Name() == t.Metric {
				found = true
				if m.Type == policy.DemandMetric {
					return fmt.Errorf("metric %s is a Demand metric: its target is its concurrency x targetUtilization, set in the spec (llmscaler model start -f)", t.Metric)
				}
				if m.Target().Type == policy.UtilizationTarget && t.Value != float64(int32(t.Value)) {
					return fmt.Errorf("metric %s: a utilization target is a whole percent, got %v", t.Metric, t.Value)
				}
			}
		}
		if !found {
			return fmt.Errorf("metric %q is not in the spec (metrics: %s)", t.Metric, metricNames(a.spec.Spec.Metrics))
		}
		if !(t.Value > 0) || math.IsInf(t.Value, 0) {
			return fmt.Errorf("metric %s: target must be a number > 0, got %v", t.Metric, t.Value)
		}
	}
	return nil
}

func metricNames(ms []policy.MetricSpec) string {
	s := ""
	for i, m := range ms {
		if i > 0 {
			s += ", "
		}
		s += m.Name()
	}
	return s
}

func (a *autoscaler) setTargets(ctx workflow.Context, r TargetsRequest) (Status, error) {
	o := &a.c.Overrides
	for _, t := range r.Targets {
		replaced := false
		for i := range o.Targets {
			if o.Targets[i].Metric == t.Metric {
				o.Targets[i].Value, replaced = t.Value, true
			}
		}
		if !replaced {
			o.Targets = append(o.Targets, t)
		}
	}
	return a.changed(ctx), nil
}

func (a *autoscaler) validateDrainNode(_ workflow.Context, r DrainNodeRequest) error {
	if r.Node == "" {
		return errors.New("name the node to drain")
	}
	if a.lastObs == nil {
		return errors.New("no observation yet: retry after the first evaluation")
	}
	for _, d := range a.c.Drains {
		if d.Node == r.Node {
			return fmt.Errorf("node %s is already queued for draining", r.Node)
		}
	}
	for _, n := range a.lastObs.Nodes {
		if n.Name != r.Node {
			continue
		}
		if n.Protected {
			return fmt.Errorf("node %s is protected from scale-in: its group would refuse to remove it", r.Node)
		}
		if n.Deleting {
			return fmt.Errorf("node %s is already being deleted", r.Node)
		}
		return nil
	}
	var names []string
	for _, n := range a.lastObs.Nodes {
		if n.Name != "" {
			names = append(names, n.Name)
		}
	}
	return fmt.Errorf("node %s is not in node group %s (its nodes: %v)", r.Node, a.spec.Spec.NodeGroup.Name, names)
}

func (a *autoscaler) drainNode(ctx workflow.Context, r DrainNodeRequest) (Status, error) {
	a.c.Drains = append(a.c.Drains, r)
	return a.changed(ctx), nil
}

func (a *autoscaler) validateSpec(ctx workflow.Context, r SpecRequest) error {
	if err := r.Spec.Validate(); err != nil {
		return err
	}
	if r.Spec.WorkflowID() != a.spec.WorkflowID() {
		return fmt.Errorf("the spec is for %s, this autoscaler is %s", r.Spec.WorkflowID(), a.spec.WorkflowID())
	}
	// The operator's bounds replace the spec's: together they must still make sense.
	o := a.c.Overrides
	lo, hi := r.Spec.Spec.MinReplicas, r.Spec.Spec.MaxReplicas
	if o.MinReplicas != nil {
		lo = *o.MinReplicas
	}
	if o.MaxReplicas != nil {
		hi = *o.MaxReplicas
	}
	if hi < lo {
		return fmt.Errorf("with the bounds an operator set (%s), min %d would be above max %d: change them first (llmscaler model bounds)",
			boundsText(o), lo, hi)
	}
	if o.Pinned != nil && workflow.Now(ctx).Before(o.PinnedUntil) && *o.Pinned > hi {
		return fmt.Errorf("maxReplicas %d is below the pin to %d replicas: unpin first (llmscaler model unpin)", hi, *o.Pinned)
	}
	return nil
}

// boundsText is the bounds an operator set, for messages: "min 2, max 8".
func boundsText(o Overrides) string {
	var parts []string
	if o.MinReplicas != nil {
		parts = append(parts, fmt.Sprintf("min %d", *o.MinReplicas))
	}
	if o.MaxReplicas != nil {
		parts = append(parts, fmt.Sprintf("max %d", *o.MaxReplicas))
	}
	return strings.Join(parts, ", ")
}

func (a *autoscaler) setSpec(ctx workflow.Context, r SpecRequest) (Status, error) {
	a.spec = r.Spec.WithDefaults()
	return a.changed(ctx), nil
}

// status is the status query's answer.
func (a *autoscaler) status(now time.Time) Status {
	s := a.effectiveSpec()
	st := Status{
		Model: s.Metadata.Name, Namespace: s.Metadata.Namespace, Deployment: s.Spec.Deployment,
		State: a.state(now), MinReplicas: s.Spec.MinReplicas, MaxReplicas: s.Spec.MaxReplicas,
		Overrides: a.c.Overrides, LastError: a.lastErr, Evaluations: a.c.Evaluations, Actions: a.c.Actions,
		PendingDrains: a.c.Drains,
	}
	if a.c.OutBackoff.Active(now) {
		st.OutBackoff = a.c.OutBackoff
	}
	if a.c.InBackoff.Active(now) {
		st.InBackoff = a.c.InBackoff
	}
	if o := a.lastObs; o != nil {
		st.CurrentReplicas = o.SpecReplicas
		st.Group = o.Group
		st.Nodes = o.Nodes
		for _, p := range o.Pods {
			if p.Ready && !p.Deleting {
				st.ReadyReplicas++
			}
		}
	}
	if d := a.lastDecision(); d != nil {
		st.DesiredReplicas = d.DesiredReplicas
		st.LastDecision = d
	}
	if a.child != nil {
		if rec := a.action(a.child.id); rec != nil {
			r := *rec
			st.InProgress = &r
		}
	}
	return st
}
