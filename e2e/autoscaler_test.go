package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/llmscaler/llmscaler/activities"
	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/internal/testbed"
	"github.com/llmscaler/llmscaler/policy"
	"github.com/llmscaler/llmscaler/workflows"
)

// runAutoscalerWithFakes runs a worker on its own task queue with the real Autoscaler workflow, observe as its
// Observe, and a scale-out that runs until it is terminated, as one waiting for its nodes would.
func runAutoscalerWithFakes(t *testing.T, observe func(context.Context, activities.ObserveInput) (policy.Observation, error)) (string, config.ModelSpec) {
	tc := testbed.TemporalClient(t)
	taskQueue := testbed.TaskQueue(t)
	w := sdkworker.New(tc, taskQueue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(workflows.Autoscaler, workflow.RegisterOptions{Name: workflows.AutoscalerWorkflowName})
	w.RegisterWorkflowWithOptions(func(ctx workflow.Context, _ workflows.ScaleOutInput) (workflows.ScaleResult, error) {
		return workflows.ScaleResult{}, workflow.Await(ctx, func() bool { return false })
	}, workflow.RegisterOptions{Name: workflows.ScaleOutWorkflowName})
	w.RegisterActivityWithOptions(observe, activity.RegisterOptions{Name: observeActivityName})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return taskQueue, scaleModelSpec(t, testbed.Namespace(t), 0, time.Second, 2)
}

// A scale-out outlives `model stop` (it finishes what it launched). Started again at once, the model's new
// autoscaler numbers its sagas from 1 again: its first scale-out must not be refused because the stopped
// autoscaler's first one, with the same number, still runs. On the real server, which enforces the names.
func TestAutoscalerStartedAgainDoesNotCollideWithTheStoppedOnesScaleOut(t *testing.T) {
	tc := testbed.TemporalClient(t)
	// An observation at four times the target: it scales out at once.
	taskQueue, spec := runAutoscalerWithFakes(t, func(_ context.Context, in activities.ObserveInput) (policy.Observation, error) {
		o := steadyObservation(time.Now(), in, 2)
		for i := range o.Metrics[0].Pods {
			o.Metrics[0].Pods[i].Value = 20
		}
		return o, nil
	})
	var sagas []string
	t.Cleanup(func() {
		for _, id := range sagas {
			_ = tc.TerminateWorkflow(context.Background(), id, "", "test over")
		}
	})
	// runUntilScaleOut starts the autoscaler, waits for its first scale-out to start, and stops it as
	// `model stop` does.
	runUntilScaleOut := func(which string) workflows.ActionRecord {
		ctx := context.Background()
		run, err := tc.ExecuteWorkflow(ctx, workflows.StartOptions(spec, taskQueue), workflows.AutoscalerWorkflowName, workflows.AutoscalerInput{Spec: spec})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = tc.CancelWorkflow(ctx, spec.WorkflowID(), run.GetRunID())
			_ = run.Get(ctx, nil)
		}()
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			var s workflows.Status
			if v, err := tc.QueryWorkflow(ctx, spec.WorkflowID(), run.GetRunID(), workflows.QueryStatus); err == nil && v.Get(&s) == nil {
				for _, a := range s.Actions {
					sagas = append(sagas, a.WorkflowID)
					if a.Kind == policy.ScaleOut && a.Result != "running" {
						t.Fatalf("the %s autoscaler's scale-out %s %s: %s", which, a.WorkflowID, a.Result, a.Error)
					}
					if a.Kind == policy.ScaleOut {
						return a
					}
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("the %s autoscaler started no scale-out within a minute", which)
		return workflows.ActionRecord{}
	}
	first := runUntilScaleOut("first")
	second := runUntilScaleOut("second")
	if first.WorkflowID == second.WorkflowID || !strings.Contains(second.WorkflowID, "/scale-out/1-") {
		t.Fatalf("scale-outs %s and %s: want the first of each autoscaler, named apart", first.WorkflowID, second.WorkflowID)
	}
	for _, a := range []workflows.ActionRecord{first, second} {
		d, err := tc.DescribeWorkflowExecution(context.Background(), a.WorkflowID, "")
		if err != nil || d.WorkflowExecutionInfo.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			t.Fatalf("scale-out %s: %v %v, want running", a.WorkflowID, err, d.GetWorkflowExecutionInfo().GetStatus())
		}
	}
}
