package workflows_test

import (
	"path/filepath"
	"testing"
	"time"

	sdkworker "go.temporal.io/sdk/worker"

	"github.com/llmscaler/llmscaler/policy"
	"github.com/llmscaler/llmscaler/worker"
	"github.com/llmscaler/llmscaler/workflows"
)

// TestReplayRecordedHistories replays histories recorded on the dev server (make replay-histories) against
// the current workflow code: a change that would break running workflows fails here.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/histories/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no recorded histories in testdata/histories: run `make replay-histories`")
	}
	r := sdkworker.NewWorkflowReplayer()
	worker.RegisterWorkflows(r)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replaying %s: %v", f, err)
			}
		})
	}
}

// TestRecordedDecisionsReplayUnderAnotherPolicy replays the autoscaler histories under a policy that decides
// otherwise (every evaluation wants five more replicas): each decision is read from its record in the
// history, so a release that changes the policy does not break the autoscalers running across the upgrade.
// The runs from before decisions were recorded (v0-*-before-recorded-decisions) decide in workflow code,
// and fail under it: the check has teeth.
func TestRecordedDecisionsReplayUnderAnotherPolicy(t *testing.T) {
	restore := workflows.SetPolicyForTest(func(in policy.Input, st *policy.State, now time.Time) policy.Decision {
		d := policy.Evaluate(in, st, now)
		// (The state it leaves cannot be checked by a replay: it changes no command until the next decision.)
		d.DesiredReplicas = d.CommittedReplicas + 5
		d.Action = policy.ScaleOut
		d.Nodes.Target, d.Nodes.Add = d.Nodes.Requested+5, 5
		return d
	})
	defer restore()
	recorded, err := filepath.Glob("testdata/histories/*-autoscaler.json")
	if err != nil {
		t.Fatal(err)
	}
	old, err := filepath.Glob("testdata/histories/v0-*-autoscaler-before-recorded-decisions.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(recorded) == 0 || len(old) == 0 {
		t.Fatalf("want autoscaler histories with and without recorded decisions; have %d and %d", len(recorded), len(old))
	}
	r := sdkworker.NewWorkflowReplayer()
	worker.RegisterWorkflows(r)
	for _, f := range recorded {
		if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
			t.Errorf("%s under another policy: %v", filepath.Base(f), err)
		}
	}
	for _, f := range old {
		if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err == nil {
			t.Errorf("%s (decisions not recorded) replayed under another policy: the test has no teeth", filepath.Base(f))
		}
	}
}
