package main

import (
	"context"
	"errors"
	"fmt"
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
