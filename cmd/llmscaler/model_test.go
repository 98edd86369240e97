package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"

	"github.com/llmscaler/llmscaler/workflows"
)

func TestHistoryShowsHowLongEachScaleOutTookToServe(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	served := func(ordered, after time.Duration) workflows.Wave {
		return workflows.Wave{Replicas: 3, Nodes: 1, Ordered: t0.Add(ordered), Served: t0.Add(ordered + after)}
	}
	for _, c := range []struct {
		waves []workflows.Wave
		want  string
	}{
		{nil, "-"},
		{[]workflows.Wave{served(0, 220*time.Second)}, "3m40s"},
		{[]workflows.Wave{served(0, 220*time.Second), served(time.Minute, 8*time.Minute), {Ordered: t0.Add(2 * time.Minute)}}, "3m40s-8m0s +1 waiting"},
		{[]workflows.Wave{{Ordered: t0}}, "+1 waiting"},
	} {
		if got := servedIn(c.waves); got != c.want {
			t.Errorf("%+v: %q, want %q", c.waves, got, c.want)
		}
	}
}

// Temporal's errors become what to do about them: a missing autoscaler, a refusal, and a query that found
// no worker to answer it, whether the client's deadline or the server's ran out first.
func TestTemporalErrorsSayWhatToDo(t *testing.T) {
	id := "autoscaler/models/llm"
	for _, c := range []struct {
		err  error
		want string
	}{
		{serviceerror.NewNotFound("workflow not found"), "no autoscaler autoscaler/models/llm is running (start it with"},
		{temporal.NewApplicationError("replicas 99: must be between 0 and maxReplicas 6", "Invalid"), "autoscaler/models/llm refused: replicas 99"},
		{fmt.Errorf("querying: %w", context.DeadlineExceeded), "no answer in time (is a worker running on the task queue?"},
		{serviceerror.NewDeadlineExceeded("context deadline exceeded"), "no answer in time (is a worker running on the task queue?"},
		{errors.New("connection refused"), "autoscaler/models/llm: connection refused"},
	} {
		if got := explain(id, c.err).Error(); !strings.Contains(got, c.want) {
			t.Errorf("%v: %q, want it to say %q", c.err, got, c.want)
		}
	}
}

// A target that is not a finite number is refused before anything is sent (Sscan read "8,5" as 8).
func TestModelTargetsRefusesWhatIsNotAFiniteNumber(t *testing.T) {
	for _, v := range []string{"8,5", "8abc", "NaN", "Inf", ""} {
		_, errOut, code := runCLI(t, "", "model", "targets", "llm", "q="+v)
		if code == exitOK || !strings.Contains(errOut, "write METRIC=VALUE with a finite number") {
			t.Errorf("q=%s: exit %d, stderr %q", v, code, errOut)
		}
	}
}

// The operator's bounds and targets are in the status, as they outlast a new spec.
func TestStatusShowsTheOperatorsBoundsAndTargets(t *testing.T) {
	two := int32(2)
	st := workflows.Status{Model: "llm", Namespace: "models", Evaluations: 1, Overrides: workflows.Overrides{
		MaxReplicas: &two, BoundsReason: "budget", Targets: []workflows.TargetChange{{Metric: "q", Value: 8.5}}}}
	var b strings.Builder
	if err := writeStatus(&b, st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Bounds:     max 2 set by an operator, in place of the spec's: budget", "Targets:    q=8.5 set by an operator"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}

// A spec without metadata.namespace is for the namespace -n names (it went to "default" whatever -n said);
// one that names its own must agree with an -n given.
func TestModelStartTakesTheNamespaceFromTheSpecOrDashN(t *testing.T) {
	dir := t.TempDir()
	example, err := os.ReadFile("../../deploy/examples/lorax/model.yaml")
	if err != nil {
		t.Fatal(err)
	}
	without := filepath.Join(dir, "model.yaml")
	if err := os.WriteFile(without, []byte(strings.Replace(string(example), "  namespace: models\n", "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if spec, err := loadSpecIn(without, "prod", true); err != nil || spec.WorkflowID() != "autoscaler/prod/llama-3-8b" {
		t.Errorf("no namespace in the spec, -n prod: %s, %v", spec.WorkflowID(), err)
	}
	if spec, err := loadSpecIn(without, "default", false); err != nil || spec.WorkflowID() != "autoscaler/default/llama-3-8b" {
		t.Errorf("no namespace anywhere: %s, %v", spec.WorkflowID(), err)
	}
	if spec, err := loadSpecIn("../../deploy/examples/lorax/model.yaml", "default", false); err != nil || spec.WorkflowID() != "autoscaler/models/llama-3-8b" {
		t.Errorf("the spec's own namespace: %s, %v", spec.WorkflowID(), err)
	}
	if _, err := loadSpecIn("../../deploy/examples/lorax/model.yaml", "prod", true); err == nil || !strings.Contains(err.Error(), "is for namespace models (metadata.namespace), -n says prod") {
		t.Errorf("the spec's namespace against -n prod: %v", err)
	}
}

// Stopping an autoscaler that is still finishing when --timeout runs out says so (the cancellation was
// delivered), not that no worker answers.
func TestStopSaysTheAutoscalerIsFinishingWhenTheWaitRunsOut(t *testing.T) {
	id := "autoscaler/models/llm"
	if err := stopped(temporal.NewCanceledError(), id, "llm", 30*time.Second); err != nil {
		t.Errorf("cancelled: %v", err)
	}
	err := stopped(fmt.Errorf("waiting: %w", context.DeadlineExceeded), id, "llm", 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "asked to stop, and still finishing after 30s") || strings.Contains(err.Error(), "is a worker running") {
		t.Errorf("past the deadline: %v", err)
	}
	if err := stopped(serviceerror.NewNotFound("gone"), id, "llm", time.Second); err == nil || !strings.Contains(err.Error(), "no autoscaler") {
		t.Errorf("not found: %v", err)
	}
}
