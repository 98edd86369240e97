package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
)

// historyLength is the autoscaler's current number of history events.
func (e *env) historyLength() int64 {
	d, err := e.tc.DescribeWorkflowExecution(context.Background(), e.spec.WorkflowID(), "")
	if err != nil {
		e.t.Fatal(err)
	}
	return d.WorkflowExecutionInfo.GetHistoryLength()
}

// eventTypes counts the autoscaler's history events by type.
func (e *env) eventTypes() map[enumspb.EventType]int {
	it := e.tc.GetWorkflowHistory(context.Background(), e.spec.WorkflowID(), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	out := map[enumspb.EventType]int{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			e.t.Fatal(err)
		}
		out[ev.GetEventType()]++
	}
	return out
}

// BenchmarkNoOpTickHistoryEvents measures the history events that an evaluation with nothing to do adds
// to the autoscaler's history on the dev server: the floor is 7 (workflow task scheduled, started and
// completed; the local activity's marker; the recorded decision's marker; timer started and fired).
func BenchmarkNoOpTickHistoryEvents(b *testing.B) {
	e := newEnv(b, envOptions{nodes: 2, replicas: 2})
	e.setLoad(10) // at target: nothing to do
	e.startWorker()
	e.start()
	e.waitFor("a steady state", time.Minute, func() bool { return e.status().Evaluations >= 3 })
	const ticks = 20
	evals0, events0 := e.status().Evaluations, e.historyLength()
	e.waitFor(fmt.Sprintf("%d more evaluations", ticks), 2*time.Minute, func() bool { return e.status().Evaluations >= evals0+ticks })
	evals1, events1 := e.status().Evaluations, e.historyLength()
	perTick := float64(events1-events0) / float64(evals1-evals0)
	b.ReportMetric(perTick, "events/tick")
	b.ReportMetric(7, "floor-events/tick")
	b.Logf("%d evaluations added %d history events: %.2f per no-op tick (floor 7); events by type: %v",
		evals1-evals0, events1-events0, perTick, e.eventTypes())
	if len(e.status().Actions) != 0 {
		b.Fatalf("the steady model scaled: %+v", e.status().Actions)
	}
}
