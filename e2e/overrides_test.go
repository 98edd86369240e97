package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/llmscaler/llmscaler/policy"
	"github.com/llmscaler/llmscaler/workflows"
)

func (e *env) update(name string, arg any, out any) error {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var args []any
	if arg != nil {
		args = []any{arg}
	}
	h, err := e.tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: e.spec.WorkflowID(), UpdateName: name, Args: args, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return err
	}
	return h.Get(ctx, out)
}

// updateEvents counts the update events in the autoscaler's history: a rejected update leaves none.
func (e *env) updateEvents() int {
	it := e.tc.GetWorkflowHistory(context.Background(), e.spec.WorkflowID(), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			e.t.Fatal(err)
		}
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED:
			n++
		}
	}
	return n
}

func TestOverridesAreValidatedAndApplied(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{nodes: 2, replicas: 2})
	e.setLoad(10)
	e.startWorker()
	e.start()
	e.waitFor("a first evaluation", 30*time.Second, func() bool { return e.status().Evaluations > 0 })

	// Invalid overrides are rejected with a reason and leave no trace; the workflow carries on.
	rejected := []struct {
		name string
		arg  any
		want string
	}{
		{workflows.UpdatePin, workflows.PinRequest{Replicas: 99, For: policy.Duration(time.Hour)}, "must be between 0 and maxReplicas 6"},
		{workflows.UpdatePin, workflows.PinRequest{Replicas: 2}, "a duration above zero is required"},
		{workflows.UpdatePause, workflows.PauseRequest{}, "a reason is required"},
		{workflows.UpdateResume, workflows.PauseRequest{Reason: "x"}, "not paused"},
		{workflows.UpdateBounds, workflows.BoundsRequest{Min: ptr(int32(5)), Max: ptr(int32(3))}, "max 3 is below min 5"},
		{workflows.UpdateTargets, workflows.TargetsRequest{Targets: []workflows.TargetChange{{Metric: "gpu_temp", Value: 3}}}, `metric "gpu_temp" is not in the spec`},
		{workflows.UpdateDrainNode, workflows.DrainNodeRequest{Node: "no-such-node"}, "is not in node group"},
		{workflows.UpdateUnpin, nil, "not pinned"},
	}
	before := e.updateEvents()
	for _, r := range rejected {
		err := e.update(r.name, r.arg, nil)
		if err == nil || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%s %+v: got %v, want a rejection saying %q", r.name, r.arg, err, r.want)
		}
	}
	if after := e.updateEvents(); after != before {
		t.Errorf("rejected updates left %d events in the history", after-before)
	}

	// Valid ones apply at once and show in the status and the decisions.
	var st workflows.Status
	if err := e.update(workflows.UpdatePause, workflows.PauseRequest{Reason: "GPU driver upgrade"}, &st); err != nil {
		t.Fatal(err)
	}
	if !st.Overrides.Paused || st.State != workflows.StatePaused {
		t.Fatalf("after pause: %+v", st)
	}
	e.setLoad(40) // would scale out, but paused
	var d policy.Decision
	if err := e.update(workflows.UpdateEvaluateNow, nil, &d); err != nil {
		t.Fatal(err)
	}
	if d.Action != policy.NoAction || !strings.Contains(d.Summary, "paused by an operator: GPU driver upgrade") {
		t.Fatalf("decision while paused: %s (action %q)", d.Summary, d.Action)
	}
	if err := e.update(workflows.UpdateResume, workflows.PauseRequest{Reason: "upgrade done"}, &st); err != nil {
		t.Fatal(err)
	}
	e.setLoad(10)
	if err := e.update(workflows.UpdatePin, workflows.PinRequest{Replicas: 2, For: policy.Duration(time.Hour), Reason: "benchmark"}, &st); err != nil {
		t.Fatal(err)
	}
	if st.Overrides.Pinned == nil || *st.Overrides.Pinned != 2 {
		t.Fatalf("after pin: %+v", st.Overrides)
	}
	if err := e.update(workflows.UpdateUnpin, nil, &st); err != nil {
		t.Fatal(err)
	}
	if err := e.update(workflows.UpdateTargets, workflows.TargetsRequest{Targets: []workflows.TargetChange{{Metric: "lorax_queue_length", Value: 10}}}, &st); err != nil {
		t.Fatal(err)
	}
	// (A scrape that failed under load makes the series stale for a moment: evaluate until it is read.)
	e.waitFor("a decision on the new target", 30*time.Second, func() bool {
		if err := e.update(workflows.UpdateEvaluateNow, nil, &d); err != nil {
			t.Fatal(err)
		}
		return strings.Contains(d.Summary, "vs target 10 per pod")
	})
	if err := e.update(workflows.UpdateBounds, workflows.BoundsRequest{Max: ptr(int32(3)), Reason: "quota"}, &st); err != nil {
		t.Fatal(err)
	}
	if st.MaxReplicas != 3 {
		t.Fatalf("max replicas %d after set-bounds, want 3", st.MaxReplicas)
	}

	// Draining a named node removes it and its pod.
	victim := st.Nodes[0].Name
	if err := e.update(workflows.UpdateDrainNode, workflows.DrainNodeRequest{Node: victim, Reason: "ECC errors"}, &st); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the operator's drain to finish", 60*time.Second, func() bool {
		for _, a := range e.status().Actions {
			if strings.Contains(a.WorkflowID, "/drain/") && a.Result != "running" {
				return true
			}
		}
		return false
	})
	for _, n := range e.groupNodes() {
		if n.Name == victim {
			t.Fatalf("node %s is still there after its drain", victim)
		}
	}
	for _, a := range e.status().Actions {
		if strings.Contains(a.WorkflowID, "/drain/") && a.Result != "succeeded" {
			t.Fatalf("drain action: %+v", a)
		}
	}
	e.exportActions("overrides")
}
