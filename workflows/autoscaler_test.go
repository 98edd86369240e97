package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/llmscaler/llmscaler/activities"
	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/policy"
	"github.com/llmscaler/llmscaler/workflows"
)

func testSpec() config.ModelSpec {
	five := 5.0
	m := config.ModelSpec{
		APIVersion: config.APIVersion, Kind: config.ModelKind,
		Metadata: config.Metadata{Name: "llm", Namespace: "models"},
		Spec: config.ModelSpecBody{
			Spec: policy.Spec{MinReplicas: 1, MaxReplicas: 8, Metrics: []policy.MetricSpec{{Type: policy.PodsMetric, Pods: &policy.PodsMetricSource{
				Metric: policy.MetricIdentifier{Name: "queue", Query: "q"},
				Target: policy.MetricTarget{Type: policy.AverageValueTarget, AverageValue: &five}}}}},
			Deployment: "llm",
			NodeGroup:  config.NodeGroupSpec{Provider: "kwok", Name: "gpu-pool", GPUsPerNode: 1},
		},
	}
	return m.WithDefaults()
}

// steady is an observation of two ready pods at target, on two nodes.
func steady(now time.Time) policy.Observation {
	o := policy.Observation{Time: now, SpecReplicas: 2, Group: policy.NodeGroup{Name: "gpu-pool", Min: 0, Max: 8, Desired: 2, GPUsPerNode: 1}}
	for _, n := range []string{"a", "b"} {
		o.Pods = append(o.Pods, policy.Pod{Name: "llm-" + n, Phase: policy.PodRunning, Ready: true, Node: "node-" + n,
			StartTime: now.Add(-time.Hour), ReadyChanged: now.Add(-time.Hour)})
		o.Nodes = append(o.Nodes, policy.Node{Name: "node-" + n, InstanceID: "i-" + n, Ready: true, GPUsAllocatable: 1})
		o.Metrics = []policy.MetricReading{{Name: "queue", Pods: []policy.PodSample{{Pod: "llm-a", Value: 5}, {Pod: "llm-b", Value: 5}}}}
	}
	return o
}

// steadyAutoscalerEnv is a test environment running the Autoscaler workflow on an observation of steady load.
func steadyAutoscalerEnv() *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.Autoscaler, workflow.RegisterOptions{Name: workflows.AutoscalerWorkflowName})
	env.RegisterActivity(&activities.Observer{})
	var o *activities.Observer
	env.OnActivity(o.Observe, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ activities.ObserveInput) (policy.Observation, error) {
			return steady(env.Now()), nil
		})
	return env
}

func TestAutoscalerContinuesAsNewCarryingItsState(t *testing.T) {
	env := steadyAutoscalerEnv()

	var rejected, accepted error
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(workflows.UpdatePause, "bad", &testsuite.TestUpdateCallback{OnReject: func(err error) { rejected = err }},
			workflows.PauseRequest{})
		env.UpdateWorkflow(workflows.UpdatePause, "good", &testsuite.TestUpdateCallback{OnReject: func(err error) { accepted = err }},
			workflows.PauseRequest{Reason: "maintenance"})
	}, 20*time.Second)
	env.RegisterDelayedCallback(func() { env.SetContinueAsNewSuggested(true) }, 50*time.Second)

	env.ExecuteWorkflow(workflows.AutoscalerWorkflowName, workflows.AutoscalerInput{Spec: testSpec()})
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("workflow ended with %v, want continue-as-new", err)
	}
	if rejected == nil || accepted != nil {
		t.Fatalf("pause without a reason: %v (want rejected); with one: %v (want accepted)", rejected, accepted)
	}
	var next workflows.AutoscalerInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	c := next.Carried
	if c == nil || c.Evaluations < 3 || !c.Overrides.Paused || c.Overrides.PauseReason != "maintenance" || len(c.Decisions) != c.Evaluations {
		t.Fatalf("carried state: %+v", c)
	}
	if len(c.Policy.Recommendations) == 0 {
		t.Fatal("the stabilization window's recommendations were not carried")
	}
	if next.Spec.WorkflowID() != "autoscaler/models/llm" {
		t.Fatalf("carried spec for %s", next.Spec.WorkflowID())
	}
}

// A tick whose observation fails is skipped: the status says ObservationFailing with the activity's own
// words (not the SDK's "activity error (type: ...)" wrapper), and a later tick recovers on its own.
func TestAutoscalerSkipsAFailedObservationAndRecovers(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.Autoscaler, workflow.RegisterOptions{Name: workflows.AutoscalerWorkflowName})
	env.RegisterActivity(&activities.Observer{})
	failUntil := env.Now().Add(40 * time.Second) // the ticks at 15 s and 30 s fail, every attempt
	var o *activities.Observer
	env.OnActivity(o.Observe, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ activities.ObserveInput) (policy.Observation, error) {
			if env.Now().Before(failUntil) {
				return policy.Observation{}, fmt.Errorf("listing pods of models/llm: %w", errors.New("connection refused"))
			}
			return steady(env.Now()), nil
		})

	status := func() workflows.Status {
		t.Helper()
		v, err := env.QueryWorkflow(workflows.QueryStatus)
		if err != nil {
			t.Fatal(err)
		}
		var st workflows.Status
		if err := v.Get(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	var failing, recovered workflows.Status
	env.RegisterDelayedCallback(func() { failing = status() }, 35*time.Second)
	env.RegisterDelayedCallback(func() { recovered = status() }, 70*time.Second)
	env.RegisterDelayedCallback(env.CancelWorkflow, 75*time.Second)

	env.ExecuteWorkflow(workflows.AutoscalerWorkflowName, workflows.AutoscalerInput{Spec: testSpec()})
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("workflow ended with %v, want cancelled", err)
	}
	if want := "observing: listing pods of models/llm: connection refused"; failing.State != workflows.StateObservationFailing || failing.LastError != want {
		t.Fatalf("while observing fails: state %q, last error %q; want %q, %q", failing.State, failing.LastError, workflows.StateObservationFailing, want)
	}
	if failing.LastDecision != nil {
		t.Fatalf("a failed tick decided: %+v", failing.LastDecision)
	}
	if recovered.State != workflows.StateIdle || recovered.LastError != "" || recovered.LastDecision == nil {
		t.Fatalf("after observing works again: state %q, last error %q, last decision %v", recovered.State, recovered.LastError, recovered.LastDecision)
	}
}

// Stopping the autoscaler (llmscaler model stop cancels it) leaves a scale-out under way to finish: cancelled
// with its parent, it would end with its nodes launched and nothing scaled onto them.
func TestStoppingTheAutoscalerLetsAScaleOutUnderWayFinish(t *testing.T) {
	restore := workflows.SetPolicyForTest(func(in policy.Input, st *policy.State, now time.Time) policy.Decision {
		d := policy.Evaluate(in, st, now)
		if in.Observation.InProgress == nil {
			d.DesiredReplicas, d.Action = d.CommittedReplicas+2, policy.ScaleOut
			d.Nodes.Target, d.Nodes.Add = d.Nodes.Requested+2, 2
		}
		return d
	})
	defer restore()
	env := steadyAutoscalerEnv()
	var started, cancelled bool
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in workflows.ScaleOutInput) (workflows.ScaleResult, error) {
		started = true
		err := workflow.Sleep(ctx, 10*time.Minute)
		cancelled = temporal.IsCanceledError(err)
		return workflows.ScaleResult{}, err
	}, workflow.RegisterOptions{Name: workflows.ScaleOutWorkflowName})
	env.RegisterDelayedCallback(env.CancelWorkflow, 40*time.Second)
	env.ExecuteWorkflow(workflows.AutoscalerWorkflowName, workflows.AutoscalerInput{Spec: testSpec()})
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("workflow ended with %v, want cancelled", err)
	}
	if !started || cancelled {
		t.Fatalf("scale-out started %v, cancelled with the autoscaler %v: want started and not cancelled", started, cancelled)
	}
}

// A drain queued while observations fail waits for the ticks like everything else (it skipped the timer,
// and an observation failing fast spun the loop, one after another at the same instant), is carried over
// a continue-as-new, and starts once an observation succeeds.
func TestADrainQueuedWhileObservationsFailWaitsForTheTicks(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.Autoscaler, workflow.RegisterOptions{Name: workflows.AutoscalerWorkflowName})
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in workflows.ScaleInInput) (workflows.ScaleResult, error) {
		return workflows.ScaleResult{}, nil
	}, workflow.RegisterOptions{Name: workflows.ScaleInWorkflowName})
	env.RegisterActivity(&activities.Observer{})
	failFrom, failUntil := env.Now().Add(16*time.Second), env.Now().Add(100*time.Second)
	observations := 0
	var o *activities.Observer
	env.OnActivity(o.Observe, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ activities.ObserveInput) (policy.Observation, error) {
			observations++
			if now := env.Now(); now.After(failFrom) && now.Before(failUntil) {
				return policy.Observation{}, temporal.NewNonRetryableApplicationError("deployment models/llm not found", activities.ErrNotFound, nil)
			}
			return steady(env.Now()), nil
		})
	var accepted bool
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(workflows.UpdateDrainNode, "drain", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { t.Errorf("drain rejected: %v", err) }, OnAccept: func() { accepted = true }, OnComplete: func(any, error) {}},
			workflows.DrainNodeRequest{Node: "node-a", Reason: "maintenance"})
	}, 20*time.Second)
	var queued workflows.Status
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.QueryStatus)
		if err == nil {
			err = v.Get(&queued)
		}
		if err != nil {
			t.Error(err)
		}
		env.SetContinueAsNewSuggested(true)
	}, 60*time.Second)
	env.ExecuteWorkflow(workflows.AutoscalerWorkflowName, workflows.AutoscalerInput{Spec: testSpec()})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow ended with %v, want continue-as-new (with the drain queued)", err)
	}
	if !accepted || len(queued.PendingDrains) != 1 {
		t.Fatalf("drain accepted %v, queued %v", accepted, queued.PendingDrains)
	}
	// One observation a tick (15 s) over the minute and the continue-as-new's tick, not hundreds.
	if observations > 6 {
		t.Fatalf("%d observations in about a minute of 15 s ticks", observations)
	}
	var next workflows.AutoscalerInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.Carried == nil || len(next.Carried.Drains) != 1 || next.Carried.Drains[0].Node != "node-a" {
		t.Fatalf("carried over: %+v", next.Carried)
	}
}

// The operator's overrides and the bounds keep each other sound: a max below an active pin is refused, a
// spec whose bounds the operator's would invert is refused, and a Demand metric's target (its concurrency
// x targetUtilization, from the spec) cannot be set as a number.
func TestOverridesAndBoundsCannotContradictEachOther(t *testing.T) {
	env := steadyAutoscalerEnv()
	spec := testSpec()
	concurrency := 16.0
	spec.Spec.Metrics = append(spec.Spec.Metrics, policy.MetricSpec{Type: policy.DemandMetric, Demand: &policy.DemandSource{
		Arrivals: policy.MetricIdentifier{Name: "arrivals", Query: "a"}, ServiceTimeSeconds: 8, Concurrency: int32(concurrency)}})
	results := map[string]error{}
	send := func(name, update string, arg any) {
		env.UpdateWorkflow(update, name, &testsuite.TestUpdateCallback{
			OnReject: func(err error) { results[name] = err }, OnAccept: func() {}, OnComplete: func(any, error) {}}, arg)
	}
	tooSmall := testSpec()
	tooSmall.Spec.MinReplicas, tooSmall.Spec.MaxReplicas = 5, 8
	two, three := int32(2), int32(3)
	env.RegisterDelayedCallback(func() {
		send("pin", workflows.UpdatePin, workflows.PinRequest{Replicas: 6, For: policy.Duration(time.Hour), Reason: "load test"})
		send("max below the pin", workflows.UpdateBounds, workflows.BoundsRequest{Max: &three, Reason: "budget"})
		send("unpin", workflows.UpdateUnpin, nil)
		send("max 2", workflows.UpdateBounds, workflows.BoundsRequest{Max: &two, Reason: "budget"})
		send("spec with min 5", workflows.UpdateSpec, workflows.SpecRequest{Spec: tooSmall})
		send("demand target", workflows.UpdateTargets, workflows.TargetsRequest{Targets: []workflows.TargetChange{{Metric: "demand", Value: 10}}})
	}, 20*time.Second)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Minute)
	env.ExecuteWorkflow(workflows.AutoscalerWorkflowName, workflows.AutoscalerInput{Spec: spec})
	for name, want := range map[string]string{
		"pin": "", "unpin": "", "max 2": "",
		"max below the pin": "max 3 is below the pin to 6 replicas",
		"spec with min 5":   "with the bounds an operator set (max 2), min 5 would be above max 2",
		"demand target":     "metric demand is a Demand metric",
	} {
		err := results[name]
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
}

// An evaluate-now that arrives while an evaluation observes is answered by the next evaluation, from an
// observation made after the request (the one under way observed before it), and that one evaluation
// answers it: the next comes at the tick.
func TestEvaluateNowDuringAnEvaluationIsAnsweredFromALaterObservation(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.Autoscaler, workflow.RegisterOptions{Name: workflows.AutoscalerWorkflowName})
	env.RegisterActivity(&activities.Observer{})
	var o *activities.Observer
	var observed []time.Time // written by the observation, read after it by the workflow's callbacks
	var mu sync.Mutex
	env.OnActivity(o.Observe, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ activities.ObserveInput) (policy.Observation, error) {
			mu.Lock()
			observed = append(observed, env.Now())
			first := len(observed) == 1
			mu.Unlock()
			if first {
				time.Sleep(300 * time.Millisecond) // the request arrives meanwhile
			}
			return steady(env.Now()), nil
		})
	interval := testSpec().Spec.EvaluationInterval.D()
	var asked time.Time
	var answer *policy.Decision
	env.RegisterDelayedCallback(func() {
		asked = env.Now()
		env.UpdateWorkflow(workflows.UpdateEvaluateNow, "now", &testsuite.TestUpdateCallback{OnReject: func(error) {}, OnAccept: func() {},
			OnComplete: func(v any, err error) {
				if d, ok := v.(policy.Decision); ok && err == nil {
					answer = &d
				}
			}})
	}, interval+time.Millisecond)
	env.RegisterDelayedCallback(env.CancelWorkflow, interval*3+interval/2)
	env.ExecuteWorkflow(workflows.AutoscalerWorkflowName, workflows.AutoscalerInput{Spec: testSpec()})
	mu.Lock()
	defer mu.Unlock()
	if answer == nil || len(observed) < 2 || !observed[0].Before(asked) || answer.Time.Before(asked) {
		t.Fatalf("asked at %s, answered %+v; observations %v: want an answer observed after the ask", asked, answer, observed)
	}
	// The first observation at the first tick, the answer's at once, then the ticks: no evaluation between.
	if len(observed) != 4 || observed[2].Sub(observed[1]) < interval-time.Millisecond {
		t.Fatalf("observations at %v: want one more at the ask, then one each %s", observed, interval)
	}
}
