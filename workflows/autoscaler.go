package workflows

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/llmscaler/llmscaler/activities"
	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/policy"
)

// Bounds of what the loop keeps.
const (
	keepDecisions = 50
	keepActions   = 30
	keepWaves     = 10
	// historyCap continues-as-new even if the server never suggests it (it does near 4K events).
	historyCap = 10000
	// backoffBase and backoffMax space out scale-outs after failures: 1m, 2m, 4m ... 15m.
	backoffBase = time.Minute
	backoffMax  = 15 * time.Minute
	// observeBudget bounds one observation, retries included. A workflow task stays open while a local
	// activity runs and queries (status, the CLI) wait for it, so a slow API (throttled AWS calls backing
	// off in the SDK's retryer) must cost a skipped tick, not minutes of unanswered queries.
	observeBudget = 6 * time.Second
	// observeAttempt bounds one attempt, leaving room for a quick second one within the budget.
	observeAttempt = 4 * time.Second
)

// StartOptions are the options to start a model's autoscaler: its fixed ID (one per model), a static summary
// for the Web UI, the model's search attribute, and "use the existing run" on conflict.
func StartOptions(spec config.ModelSpec, taskQueue string) client.StartWorkflowOptions {
	s := spec.Spec
	return client.StartWorkflowOptions{
		ID:                       spec.WorkflowID(),
		TaskQueue:                taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary: fmt.Sprintf("Autoscaler for %s/%s: Deployment %s on node group %s (%s), %d-%d replicas",
			spec.Metadata.Namespace, spec.Metadata.Name, s.Deployment, s.NodeGroup.Name, s.NodeGroup.Provider, s.MinReplicas, s.MaxReplicas),
		StaticDetails: fmt.Sprintf("Evaluates every %s. Queries: `%s`, `%s`, `%s`. Updates: `%s`, `%s`, `%s`, `%s`, `%s`, `%s`, `%s`, `%s`.",
			s.EvaluationInterval, QueryStatus, QueryDecisions, QuerySnapshot, UpdatePause, UpdateResume, UpdatePin, UpdateUnpin,
			UpdateBounds, UpdateTargets, UpdateDrainNode, UpdateEvaluateNow),
		TypedSearchAttributes: temporal.NewSearchAttributes(AttrModelName.ValueSet(modelName(spec))),
	}
}

func modelName(spec config.ModelSpec) string {
	return spec.Metadata.Namespace + "/" + spec.Metadata.Name
}

// Autoscaler is the per-model control loop. Each evaluation period it observes (one local activity), runs
// the policy, and when the decision changes anything starts a ScaleOut or ScaleIn child workflow, so that
// every action has its own readable history. While a child runs the loop keeps evaluating: a scale-out's
// target is raised when load grows further, a scale-in is cancelled (and its node restored) when load
// returns. It continues-as-new when the server suggests it, carrying the policy's windows, the overrides and
// the recent history.
func Autoscaler(ctx workflow.Context, in AutoscalerInput) error {
	a := &autoscaler{spec: in.Spec.WithDefaults(), wake: workflow.NewBufferedChannel(ctx, 16)}
	if in.Carried != nil {
		a.c = *in.Carried
	}
	a.c.Runs++
	// Runs older than the marker let an evaluate-now or an override that arrived during an evaluation be
	// answered by it, from an observation older than the request, and not evaluated again.
	a.freshAnswers = workflow.GetVersion(ctx, "requests-during-evaluation-evaluate-again", workflow.DefaultVersion, 1) >= 1
	if err := a.registerHandlers(ctx); err != nil {
		return err
	}
	a.publish(ctx)
	for {
		a.waitForTick(ctx)
		if ctx.Err() != nil {
			return a.stop(ctx)
		}
		a.evaluate(ctx)
		if err := a.maybeContinueAsNew(ctx); err != nil {
			return err
		}
	}
}

type autoscaler struct {
	spec  config.ModelSpec
	c     Carried
	child *runningChild
	wake  workflow.Channel
	// evalReq counts the requests for an evaluation (evaluate-now, overrides) not yet answered by one;
	// evaluating is set while an evaluation runs, and freshAnswers is the version of this run: requests that
	// arrive meanwhile wait for the next evaluation, which observes after them.
	evalReq      int
	evaluating   bool
	freshAnswers bool
	lastObs      *policy.Observation
	// lastInputState is the policy state the last evaluation started from (the snapshot's state);
	// lastLead and lastWaiting its lead time inputs.
	lastInputState        policy.State
	lastLead, lastWaiting policy.Duration
	lastErr               string
	published             published
}

type runningChild struct {
	id           string
	kind         policy.ActionKind
	future       workflow.ChildWorkflowFuture
	cancel       workflow.CancelFunc
	target       int32
	targetNodes  int32
	manual       bool
	cancelReason string
}

type published struct {
	done             bool
	state            string
	current, desired int64
	paused           bool
	lastScale        time.Time
}

func (a *autoscaler) workflowID() string { return a.spec.WorkflowID() }

// waitForTick sleeps until the next evaluation, an evaluate-now, a queued drain, or a child's end.
func (a *autoscaler) waitForTick(ctx workflow.Context) {
	// A queued drain starts at once, from a fresh observation. After a failed one it waits for the tick
	// like the rest: only a decision takes it off the queue, and an observation failing fast (a Deployment
	// deleted) spun the loop, an observation after another at the same instant, without a timer.
	drainNow := a.child == nil && len(a.c.Drains) > 0
	if drainNow && a.lastErr != "" && workflow.GetVersion(ctx, "drain-waits-after-failed-observation", workflow.DefaultVersion, 1) >= 1 {
		drainNow = false
	}
	if a.evalReq > 0 || drainNow {
		if a.freshAnswers {
			// The wakes of the requests this evaluation answers: left in the channel, each would make
			// the wait after it return at once, for an evaluation nobody asked for.
			for a.wake.ReceiveAsync(nil) {
			}
		}
		return
	}
	interval := a.spec.Spec.EvaluationInterval.D()
	tctx, cancel := workflow.WithCancel(ctx)
	timer := workflow.NewTimerWithOptions(tctx, interval, workflow.TimerOptions{Summary: "next evaluation in " + interval.String()})
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(timer, func(workflow.Future) {})
	sel.AddReceive(a.wake, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
	if a.child != nil {
		sel.AddFuture(a.child.future, func(f workflow.Future) { a.childDone(ctx, f) })
	}
	sel.Select(ctx)
	cancel()
	for a.wake.ReceiveAsync(nil) {
	}
}

// effectiveSpec is the spec with the operator's bound and target overrides applied.
func (a *autoscaler) effectiveSpec() config.ModelSpec {
	s := a.spec
	o := a.c.Overrides
	if o.MinReplicas != nil {
		s.Spec.MinReplicas = *o.MinReplicas
	}
	if o.MaxReplicas != nil {
		s.Spec.MaxReplicas = *o.MaxReplicas
	}
	if len(o.Targets) > 0 {
		metrics := make([]policy.MetricSpec, len(s.Spec.Metrics))
		copy(metrics, s.Spec.Metrics)
		for i := range metrics {
			for _, t := range o.Targets {
				if metrics[i].Name() == t.Metric {
					metrics[i] = withTarget(metrics[i], t.Value)
				}
			}
		}
		s.Spec.Metrics = metrics
	}
	return s
}

// withTarget returns a copy of m whose target value is v (in the unit its target type uses).
func withTarget(m policy.MetricSpec, v float64) policy.MetricSpec {
	t := m.Target()
	switch t.Type {
	case policy.UtilizationTarget:
		u := int32(v)
		t.AverageUtilization = &u
	case policy.AverageValueTarget:
		t.AverageValue = &v
	case policy.ValueTarget:
		t.Value = &v
	}
	switch m.Type {
	case policy.ResourceMetric:
		r := *m.Resource
		r.Target = t
		m.Resource = &r
	case policy.PodsMetric:
		p := *m.Pods
		p.Target = t
		m.Pods = &p
	case policy.ObjectMetric:
		o := *m.Object
		o.Target = t
		m.Object = &o
	case policy.ExternalMetric:
		e := *m.External
		e.Target = t
		m.External = &e
	}
	return m
}

func (a *autoscaler) observeInput(spec config.ModelSpec) activities.ObserveInput {
	s := spec.Spec
	in := activities.ObserveInput{
		Deployment:  activities.DeploymentRef{Namespace: spec.Metadata.Namespace, Name: s.Deployment},
		Group:       activities.NodeGroupRef{Provider: s.NodeGroup.Provider, Group: s.NodeGroup.Name},
		GPUsPerNode: s.NodeGroup.GPUsPerNode,
		Metrics:     s.Metrics,
	}
	if len(in.Metrics) == 0 {
		in.Metrics = s.Spec.WithDefaults().Metrics
	}
	if z := s.ScaleToZero; z != nil {
		act := z.Activation
		in.Activation = &act
	}
	return in
}

// evaluate is one period: observe, decide, act, record, publish.
func (a *autoscaler) evaluate(ctx workflow.Context) {
	answered := a.evalReq
	a.evaluating = true
	defer func() {
		a.c.Evaluations++
		a.evaluating = false
		if a.freshAnswers {
			a.evalReq -= answered
		} else {
			a.evalReq = 0
		}
	}()
	now := workflow.Now(ctx)
	spec := a.effectiveSpec()
	if o := &a.c.Overrides; o.Pinned != nil && !now.Before(o.PinnedUntil) {
		o.Pinned, o.PinnedUntil, o.PinReason = nil, time.Time{}, ""
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: observeBudget,
		StartToCloseTimeout:    observeAttempt,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: time.Second},
		Summary:                "observe " + modelName(spec),
	})
	var obs policy.Observation
	if err := workflow.ExecuteLocalActivity(lctx, observer.Observe, a.observeInput(spec)).Get(lctx, &obs); err != nil {
		// Skip this tick rather than wait: the state says ObservationFailing with the reason, and the next
		// tick is the retry.
		a.lastErr = "observing: " + errorText(err)
		if temporal.IsTimeoutError(err) {
			a.lastErr = fmt.Sprintf("observing: timed out after %s (%s)", observeBudget, errorText(err))
		}
		a.publish(ctx)
		return
	}
	a.lastErr = ""
	obs.InProgress = a.inProgress()
	a.lastObs = &obs
	a.lastInputState = a.c.Policy
	a.noteWavesServed(obs.ReadyReplicas(), now)
	a.lastLead, a.lastWaiting = a.leadTime(ctx, now)
	d := a.decide(ctx, policy.Input{Spec: spec.Spec.Spec, Observation: obs, Overrides: a.policyOverrides(), LeadTime: a.lastLead,
		Waiting: a.lastWaiting, EvaluationInterval: spec.Spec.EvaluationInterval}, now)
	a.act(ctx, spec, &d)
	a.c.Decisions = append(a.c.Decisions, d)
	if len(a.c.Decisions) > keepDecisions {
		a.c.Decisions = a.c.Decisions[len(a.c.Decisions)-keepDecisions:]
	}
	a.publish(ctx)
}

// evaluatePolicy is the policy the loop runs (a variable so that a test can replay a history under another).
var evaluatePolicy = policy.Evaluate

// decided is one evaluation's decision and the policy state it leaves, as recorded in the history.
type decided struct {
	Decision policy.Decision `json:"decision"`
	State    policy.State    `json:"state"`
}

// decide runs the policy and records its decision and the state it leaves in the history (a side-effect
// marker). A worker running a newer policy then replays this run's past decisions as they were made, instead
// of deciding them anew: a decision that came out differently would start a different action and fail the
// replay, so without the record every policy change would break the autoscalers running across the upgrade.
// Runs that began before decisions were recorded (no version marker) still decide in workflow code, until
// they continue-as-new. Only the policy's evaluation is recorded: policy.NextStep and the lead time
// measurement still run in workflow code, and a change to them still needs a version.
func (a *autoscaler) decide(ctx workflow.Context, in policy.Input, now time.Time) policy.Decision {
	if workflow.GetVersion(ctx, "recorded-decisions", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return evaluatePolicy(in, &a.c.Policy, now)
	}
	from := a.c.Policy
	var out decided
	err := workflow.SideEffect(ctx, func(workflow.Context) any {
		st := from
		d := evaluatePolicy(in, &st, now)
		return decided{Decision: d, State: st}
	}).Get(&out)
	if err != nil {
		// A record this code cannot read (a field whose type changed): deciding again would be the replay
		// failure the record is there to prevent, so fail the workflow task, visibly, until a worker that
		// reads it takes over.
		panic(fmt.Sprintf("reading the recorded decision: %v", err))
	}
	a.c.Policy = out.State
	return out.Decision
}

// leadTime is the lead time measured from the last scale-outs: the median of the last five waves served
// that asked for nodes, each from its order (a scale-out's start or a raise) to its replicas first seen
// ready (a wave whose replicas fit on nodes already there serves in a model load's time: on 4-GPU nodes
// one such wave set a 40 s lead time, the scale-in's headroom and hold shrank to match, and the next
// spike, which needed nodes, was met short); and how long the running scale-out's oldest wave not yet
// served has waited (the lead time is at least that). Demand metrics size the backlog and project the
// trend with it. Zero when none served yet.
//
// Measured on waves, not on whole scale-outs: on a sustained ramp a scale-out is raised every few
// evaluations and ends only when the ramp does, so the lead time would stay at its prior for the whole ramp
// (the prior is 4 min; with a 5-minute image pull the capacity took 8 and the simulated daily cycle met 83%).
// Runs older than the waves (no version marker) measured whole scale-outs, from the last raise.
func (a *autoscaler) leadTime(ctx workflow.Context, now time.Time) (measured, waiting policy.Duration) {
	var ds []time.Duration
	if workflow.GetVersion(ctx, "wave-lead-times", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		for i := len(a.c.Actions) - 1; i >= 0 && len(ds) < 5; i-- {
			if d, ok := a.c.Actions[i].wholeLeadTime(); ok {
				ds = append(ds, d)
			}
		}
		return policy.MeasuredLeadTime(ds), 0
	}
	for i := len(a.c.Actions) - 1; i >= 0 && len(ds) < 5; i-- {
		r := a.c.Actions[i]
		if d, ok := r.wholeLeadTime(); ok && r.Waves == nil {
			// Recorded before the waves (carried across the upgrade): its whole span, as it was measured.
			ds = append(ds, d)
			continue
		}
		for j := len(r.Waves) - 1; j >= 0 && len(ds) < 5; j-- {
			if w := r.Waves[j]; !w.Served.IsZero() && w.Nodes > 0 {
				ds = append(ds, w.Served.Sub(w.Ordered))
			}
		}
	}
	if rec := a.runningScaleOut(); rec != nil {
		for _, w := range rec.Waves {
			if w.Served.IsZero() {
				waiting = policy.Duration(now.Sub(w.Ordered))
				break
			}
		}
	}
	return policy.MeasuredLeadTime(ds), waiting
}

// wholeLeadTime is a succeeded scale-out's span from the last capacity it ordered (its start, or its
// target's last raise) to its end: the lead time before waves were measured.
func (r ActionRecord) wholeLeadTime() (time.Duration, bool) {
	if r.Kind != policy.ScaleOut || r.Result != "succeeded" || r.Finished.IsZero() {
		return 0, false
	}
	from := r.Started
	if r.Raised.After(from) {
		from = r.Raised
	}
	return r.Finished.Sub(from), true
}

// runningScaleOut is the record of the scale-out under way (nil: none).
func (a *autoscaler) runningScaleOut() *ActionRecord {
	if a.child == nil || a.child.kind != policy.ScaleOut {
		return nil
	}
	return a.action(a.child.id)
}

// keepRecentWaves drops the oldest waves served beyond keepWaves: a long ramp raises a scale-out many
// times. Waves serve in order, so those come first; a wave not yet served stays, as the oldest of them
// tells how long capacity has waited.
func keepRecentWaves(waves []Wave) []Wave {
	drop := 0
	for len(waves)-drop > keepWaves && !waves[drop].Served.IsZero() {
		drop++
	}
	return slices.Clone(waves[drop:])
}

// noteWavesServed marks the running scale-out's waves whose replicas are ready (each wave's count includes
// the ones before it, so they are served in order).
func (a *autoscaler) noteWavesServed(ready int32, now time.Time) {
	if rec := a.runningScaleOut(); rec != nil {
		for i := range rec.Waves {
			if w := &rec.Waves[i]; w.Served.IsZero() && ready >= w.Replicas {
				w.Served = now
			}
		}
	}
}

func (a *autoscaler) policyOverrides() policy.Overrides {
	o := a.c.Overrides
	return policy.Overrides{Paused: o.Paused, PauseReason: o.PauseReason, Pinned: o.Pinned, PinnedUntil: o.PinnedUntil}
}

func (a *autoscaler) inProgress() *policy.Action {
	if a.child == nil {
		return nil
	}
	return &policy.Action{Kind: a.child.kind, TargetReplicas: a.child.target, TargetNodes: a.child.targetNodes}
}

// act carries out a decision: start a saga, raise a running scale-out, or cancel a scale-in that load
// has overtaken.
func (a *autoscaler) act(ctx workflow.Context, spec config.ModelSpec, d *policy.Decision) {
	now := workflow.Now(ctx)
	if ch := a.child; ch != nil {
		switch step := policy.NextStep(a.inProgress(), *d); {
		case step.Kind == policy.StepRaise:
			r := Retarget{Replicas: step.Replicas, Nodes: step.Nodes}
			if err := ch.future.SignalChildWorkflow(ctx, SignalRetarget, r).Get(ctx, nil); err == nil {
				a.c.Policy.RecordScale(ch.target, r.Replicas, now)
				asked := max(r.Nodes-ch.targetNodes, 0)
				ch.target, ch.targetNodes = r.Replicas, r.Nodes
				if rec := a.action(ch.id); rec != nil {
					rec.ToReplicas, rec.ToNodes, rec.Raised = r.Replicas, r.Nodes, now
					rec.Waves = keepRecentWaves(append(rec.Waves, Wave{Replicas: r.Replicas, Nodes: asked, Ordered: now}))
				}
				d.Summary += fmt.Sprintf("; raised the scale-out under way to %d replicas, %d nodes", r.Replicas, r.Nodes)
				d.Acted = true
			}
		case step.Kind == policy.StepCancel && !ch.manual && ch.cancelReason == "":
			ch.cancelReason = "load returned: " + d.Summary
			ch.cancel()
			d.Summary += "; cancelling the scale-in under way and restoring its node"
			d.Acted = true
		}
		return
	}
	if len(a.c.Drains) > 0 {
		req := a.c.Drains[0]
		a.c.Drains = a.c.Drains[1:]
		a.startDrain(ctx, spec, req, d)
		return
	}
	b, word := a.c.OutBackoff, "scale-out"
	if d.Action == policy.ScaleIn {
		b, word = a.c.InBackoff, "scale-in"
	}
	if d.Action != policy.NoAction && b.Active(now) {
		detail := fmt.Sprintf("%s backing off until %s after %d failure(s)", word, b.Until.UTC().Format(time.TimeOnly), b.Failures)
		d.Limits = append(d.Limits, policy.Limit{Kind: policy.LimitBackoff, From: d.DesiredReplicas, To: d.CommittedReplicas, Detail: detail})
		d.Summary += "; held: " + detail
		return
	}
	switch d.Action {
	case policy.ScaleOut:
		d.Acted = true
		a.startScaleOut(ctx, spec, *d)
	case policy.ScaleIn:
		d.Acted = true
		a.startScaleIn(ctx, spec, *d)
	}
}

func (a *autoscaler) startScaleOut(ctx workflow.Context, spec config.ModelSpec, d policy.Decision) {
	s := spec.Spec
	in := ScaleOutInput{
		Model: modelRef(spec), FromReplicas: d.CurrentReplicas, TargetReplicas: d.DesiredReplicas,
		FromNodes: d.Nodes.Requested, TargetNodes: policy.NextStep(nil, d).Nodes, Reason: d.Summary,
		NodeReady: s.Timeouts.NodeReady, PodsReady: s.Timeouts.PodsReady, EndpointsReady: s.Timeouts.EndpointsReady,
	}
	summary := fmt.Sprintf("scale out %s: %d -> %d replicas, %d -> %d nodes", modelName(spec), in.FromReplicas, in.TargetReplicas, in.FromNodes, in.TargetNodes)
	a.startChild(ctx, policy.ScaleOut, "scale-out", summary, d, ScaleOutWorkflowName, in, in.TargetReplicas, in.TargetNodes, false)
}

func (a *autoscaler) startScaleIn(ctx workflow.Context, spec config.ModelSpec, d policy.Decision) {
	in := ScaleInInput{
		Model: modelRef(spec), FromReplicas: d.CurrentReplicas, TargetReplicas: d.DesiredReplicas,
		Victims: d.Nodes.Victims, VictimPods: d.Nodes.VictimPods, DrainGrace: spec.Spec.DrainGracePeriod,
		DrainTimeout: spec.Spec.Timeouts.Drain, Reason: d.Summary,
	}
	summary := fmt.Sprintf("scale in %s: %d -> %d replicas, remove %d node(s)", modelName(spec), in.FromReplicas, in.TargetReplicas, len(in.Victims))
	a.startChild(ctx, policy.ScaleIn, "scale-in", summary, d, ScaleInWorkflowName, in, in.TargetReplicas, d.Nodes.Target, false)
}

// startDrain starts an operator's drain of one node: its pods leave (the count drops by them; the next
// evaluations add capacity back if load or minReplicas need it) and the node is removed.
func (a *autoscaler) startDrain(ctx workflow.Context, spec config.ModelSpec, req DrainNodeRequest, d *policy.Decision) {
	var victim *policy.Victim
	if a.lastObs != nil {
		for _, n := range a.lastObs.Nodes {
			if n.Name == req.Node {
				victim = &policy.Victim{Node: n.Name, InstanceID: n.InstanceID, Reason: "drain requested by an operator: " + req.Reason}
			}
		}
		for _, p := range a.lastObs.Pods {
			if victim != nil && p.Node == req.Node && !p.Deleting {
				victim.Pods = append(victim.Pods, p.Name)
			}
		}
	}
	if victim == nil {
		d.Summary += fmt.Sprintf("; drain of %s dropped: the node is no longer in group %s", req.Node, spec.Spec.NodeGroup.Name)
		return
	}
	target := max(d.CurrentReplicas-int32(len(victim.Pods)), 0)
	in := ScaleInInput{
		Model: modelRef(spec), FromReplicas: d.CurrentReplicas, TargetReplicas: target, Victims: []policy.Victim{*victim},
		DrainGrace: spec.Spec.DrainGracePeriod, DrainTimeout: spec.Spec.Timeouts.Drain, Manual: true,
		Reason: fmt.Sprintf("operator drain of %s: %s", req.Node, req.Reason),
	}
	d.Summary += "; draining " + req.Node + " as an operator asked"
	d.Acted = true
	summary := fmt.Sprintf("drain node %s of %s (operator: %s)", req.Node, modelName(spec), req.Reason)
	dd := *d
	dd.Summary = in.Reason
	a.startChild(ctx, policy.ScaleIn, "drain", summary, dd, ScaleInWorkflowName, in, target, d.Nodes.Requested-1, true)
}

func (a *autoscaler) startChild(ctx workflow.Context, kind policy.ActionKind, label, summary string, d policy.Decision, wf string, input any, target, targetNodes int32, manual bool) {
	now := workflow.Now(ctx)
	a.c.ActionSeq++
	id := a.actionID(ctx, label)
	parent := ctx
	if kind == policy.ScaleOut && workflow.GetVersion(ctx, "scale-out-outlives-stop", workflow.DefaultVersion, 1) >= 1 {
		// Stopping the autoscaler cancels its context, and every child started from it with it: a scale-out
		// would end with its nodes launched and nothing scaled onto them, and no autoscaler left to remove
		// them. It finishes on its own (the close policy below only covers a parent that ends).
		parent, _ = workflow.NewDisconnectedContext(ctx)
	}
	cctx, cancel := workflow.WithCancel(parent)
	closePolicy := enumspb.PARENT_CLOSE_POLICY_ABANDON // a scale-out finishes on its own
	if kind == policy.ScaleIn {
		closePolicy = enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL // a scale-in restores its node
	}
	cctx = workflow.WithChildOptions(cctx, workflow.ChildWorkflowOptions{
		WorkflowID:          id,
		StaticSummary:       summary,
		StaticDetails:       "Decided at " + now.UTC().Format(time.DateTime) + " UTC: " + d.Summary,
		ParentClosePolicy:   closePolicy,
		WaitForCancellation: true,
	})
	f := workflow.ExecuteChildWorkflow(cctx, wf, input)
	a.child = &runningChild{id: id, kind: kind, future: f, cancel: cancel, target: target, targetNodes: targetNodes, manual: manual}
	rec := ActionRecord{
		WorkflowID: id, Kind: kind, FromReplicas: d.CurrentReplicas, ToReplicas: target, FromNodes: d.Nodes.Requested, ToNodes: targetNodes,
		Reason: d.Summary, Started: now, Result: "running",
	}
	if kind == policy.ScaleOut {
		rec.Waves = []Wave{{Replicas: target, Nodes: max(targetNodes-d.Nodes.Requested, 0), Ordered: now}}
	}
	a.c.Actions = append(a.c.Actions, rec)
	if len(a.c.Actions) > keepActions {
		a.c.Actions = a.c.Actions[len(a.c.Actions)-keepActions:]
	}
	a.c.Policy.RecordScale(d.CurrentReplicas, target, now)
	a.c.LastScale = now
}

// actionID names a saga's workflow: the autoscaler's, the saga's kind and its number. The number counts from
// 1 again when a model's autoscaler is stopped and started, while a scale-out of the one stopped may still
// run (it outlives the stop): the first run of the autoscaler's chain (kept through continue-as-new) makes
// the name its own. Runs older than the marker named sagas by their number only.
func (a *autoscaler) actionID(ctx workflow.Context, label string) string {
	if workflow.GetVersion(ctx, "action-ids-name-the-run", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return fmt.Sprintf("%s/%s/%d", a.workflowID(), label, a.c.ActionSeq)
	}
	info := workflow.GetInfo(ctx)
	run := cmp.Or(info.FirstRunID, info.WorkflowExecution.RunID) // the test environment leaves FirstRunID empty
	// The run ID's end: the server's are UUIDv7, whose first digits are the time, alike for minutes.
	return fmt.Sprintf("%s/%s/%d-%s", a.workflowID(), label, a.c.ActionSeq, run[max(len(run)-8, 0):])
}

func (a *autoscaler) backoff(kind policy.ActionKind) *Backoff {
	if kind == policy.ScaleIn {
		return &a.c.InBackoff
	}
	return &a.c.OutBackoff
}

func (a *autoscaler) action(id string) *ActionRecord {
	for i := range a.c.Actions {
		if a.c.Actions[i].WorkflowID == id {
			return &a.c.Actions[i]
		}
	}
	return nil
}

// childDone records how a saga ended; a failure starts (or lengthens) its direction's backoff.
func (a *autoscaler) childDone(ctx workflow.Context, f workflow.Future) {
	ch := a.child
	a.child = nil
	var res ScaleResult
	err := f.Get(ctx, &res)
	now := workflow.Now(ctx)
	rec := a.action(ch.id)
	if rec == nil {
		return
	}
	rec.Finished = now
	switch {
	case err == nil:
		rec.Result = "succeeded"
		*a.backoff(ch.kind) = Backoff{}
		// A scale-out ends when every wave serves: those no evaluation saw served, served now.
		for i := range rec.Waves {
			if rec.Waves[i].Served.IsZero() {
				rec.Waves[i].Served = now
			}
		}
	case temporal.IsCanceledError(err):
		rec.Result = "cancelled"
		rec.Error = ch.cancelReason
	default:
		rec.Result = "failed"
		rec.Error = errorText(err)
		if !ch.manual {
			b := a.backoff(ch.kind)
			b.fail(now)
			rec.Error += fmt.Sprintf(" (no new %s before %s)", ch.kind, b.Until.UTC().Format(time.TimeOnly))
		}
	}
	if len(res.Skipped) > 0 {
		rec.Error += fmt.Sprintf("; not drained (the group would refuse to remove them): %v", res.Skipped)
	}
}

// errorText is what went wrong in the failing code's own words, never the SDK's wrapper text ("activity
// error (type: ..., scheduledEventID: ...)"): the outermost application error (a saga's own summary, or the
// activity's error) with its type, the timeout that fired with the last attempt's error if any, or the
// activity's plain Go error.
func errorText(err error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch e := e.(type) {
		case *temporal.ActivityError, *temporal.ChildWorkflowExecutionError:
			// The SDK's wrappers: what went wrong is their cause.
		case *temporal.ApplicationError:
			return applicationErrorText(e)
		case *temporal.TimeoutError:
			text := e.TimeoutType().String() + " timeout"
			var last *temporal.ApplicationError
			if errors.As(e.Unwrap(), &last) {
				text += ", last attempt: " + applicationErrorText(last)
			}
			return text
		case *temporal.CanceledError:
			return "cancelled"
		default:
			return e.Error()
		}
	}
	return err.Error()
}

// applicationErrorText is an application error's message, after its type when the type is one of ours
// (NodesNotReady, Throttled ...). A plain Go error crosses the SDK as an application error typed with its Go
// type's name (errorString, wrapError, StatusError), which says nothing to an operator: left out.
func applicationErrorText(e *temporal.ApplicationError) string {
	t := e.Type()
	if t == "" || unicode.IsLower(rune(t[0])) || strings.HasSuffix(t, "Error") {
		return e.Message()
	}
	return t + ": " + e.Message()
}

// stop ends the loop when the workflow is cancelled (llmscaler model stop): a scale-in under way is
// cancelled so it restores its node; a scale-out is left to finish.
func (a *autoscaler) stop(ctx workflow.Context) error {
	if a.child != nil && a.child.kind == policy.ScaleIn {
		a.child.cancelReason = "the autoscaler was stopped"
		a.child.cancel()
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		_ = a.child.future.Get(dctx, nil)
	}
	return ctx.Err()
}

// maybeContinueAsNew starts a fresh run when the history grows long, between actions, once no handler is
// running; an evaluate-now that arrives meanwhile is served first.
func (a *autoscaler) maybeContinueAsNew(ctx workflow.Context) error {
	info := workflow.GetInfo(ctx)
	if !info.GetContinueAsNewSuggested() && info.GetCurrentHistoryLength() < historyCap {
		return nil
	}
	// Queued drains are carried over; runs before that waited for them, and could not continue as new
	// while observations failed with a drain queued (the history grew to the server's limit).
	drainsWait := func() bool {
		return len(a.c.Drains) > 0 && workflow.GetVersion(ctx, "continue-as-new-carries-drains", workflow.DefaultVersion, 1) == workflow.DefaultVersion
	}
	if a.child != nil || drainsWait() || a.evalReq > 0 {
		return nil
	}
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) || a.evalReq > 0 })
	if a.evalReq > 0 || a.child != nil || drainsWait() {
		return nil
	}
	return workflow.NewContinueAsNewError(ctx, AutoscalerWorkflowName, AutoscalerInput{Spec: a.spec, Carried: &a.c})
}

// state is the ScalingState search attribute's value.
func (a *autoscaler) state(now time.Time) string {
	switch {
	case a.child != nil && a.child.kind == policy.ScaleOut:
		return StateScalingOut
	case a.child != nil:
		return StateScalingIn
	case a.c.Overrides.Paused:
		return StatePaused
	case a.lastErr != "":
		return StateObservationFailing
	case a.c.OutBackoff.Active(now) || a.c.InBackoff.Active(now):
		return StateBackoff
	}
	return StateIdle
}

// publish keeps the search attributes (only when they change: each upsert is a history event) and the
// markdown details of the Web UI current.
func (a *autoscaler) publish(ctx workflow.Context) {
	now := workflow.Now(ctx)
	p := published{done: true, state: a.state(now), paused: a.c.Overrides.Paused, lastScale: a.c.LastScale}
	if a.lastObs != nil {
		p.current = int64(a.lastObs.SpecReplicas)
	}
	if d := a.lastDecision(); d != nil {
		p.desired = int64(d.DesiredReplicas)
	}
	if p != a.published {
		updates := []temporal.SearchAttributeUpdate{
			AttrScalingState.ValueSet(p.state),
			AttrCurrentReplicas.ValueSet(p.current),
			AttrDesiredReplicas.ValueSet(p.desired),
			AttrPaused.ValueSet(p.paused),
		}
		if !a.published.done {
			updates = append(updates, AttrModelName.ValueSet(modelName(a.spec)))
		}
		if !p.lastScale.IsZero() {
			updates = append(updates, AttrLastScaleTime.ValueSet(p.lastScale))
		}
		if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
			workflow.GetLogger(ctx).Warn("search attributes not updated (are they registered on the server?)", "error", err)
		}
		a.published = p
	}
	workflow.SetCurrentDetails(ctx, a.details(now))
}

func (a *autoscaler) lastDecision() *policy.Decision {
	if len(a.c.Decisions) == 0 {
		return nil
	}
	return &a.c.Decisions[len(a.c.Decisions)-1]
}
