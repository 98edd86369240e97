package workflows

import (
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/llmscaler/llmscaler/policy"
)

// A run started before the waves (no wave-lead-times marker) keeps measuring whole scale-outs, from the last
// raise to the end, as it did when its history was written; a newer run measures each wave that asked for
// nodes. One scale-out, started at 0 and raised at 1m and 2m, ends at 9m: its waves served in 3m, 3m and
// 7m (median 3m); the whole, from the last raise, took 7m.
func TestTheLeadTimeOfARunBeforeTheWavesIsMeasuredOnWholeScaleOuts(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	actions := []ActionRecord{{Kind: policy.ScaleOut, Result: "succeeded", Started: at(0), Raised: at(2), Finished: at(9),
		Waves: []Wave{{Replicas: 3, Nodes: 1, Ordered: at(0), Served: at(3)}, {Replicas: 4, Nodes: 1, Ordered: at(1), Served: at(4)},
			{Replicas: 5, Nodes: 1, Ordered: at(2), Served: at(9)}}}}
	for _, c := range []struct {
		version workflow.Version
		want    time.Duration
	}{{workflow.DefaultVersion, 7 * time.Minute}, {1, 3 * time.Minute}} {
		var s testsuite.WorkflowTestSuite
		env := s.NewTestWorkflowEnvironment()
		env.RegisterWorkflowWithOptions(func(ctx workflow.Context) (policy.Duration, error) {
			a := &autoscaler{c: Carried{Actions: actions}}
			lead, _ := a.leadTime(ctx, workflow.Now(ctx))
			return lead, nil
		}, workflow.RegisterOptions{Name: "leadTime"})
		env.OnGetVersion("wave-lead-times", workflow.DefaultVersion, 1).Return(c.version)
		env.ExecuteWorkflow("leadTime")
		var got policy.Duration
		if err := env.GetWorkflowResult(&got); err != nil {
			t.Fatal(err)
		}
		if got.D() != c.want {
			t.Errorf("version %d: lead time %s, want %s", c.version, got, c.want)
		}
	}
}

// Waves not yet served stay on the record however many raises come (the oldest tells how long capacity
// has waited); the oldest served ones go beyond keepWaves.
func TestAScaleOutKeepsItsUnservedWavesAndTheLastServed(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := &ActionRecord{Kind: policy.ScaleOut}
	for i := range 3 {
		rec.Waves = append(rec.Waves, Wave{Replicas: int32(i + 1), Nodes: 1, Ordered: t0, Served: t0.Add(time.Minute)})
	}
	for i := range 2 * keepWaves {
		rec.Waves = keepRecentWaves(append(rec.Waves, Wave{Replicas: int32(10 + i), Nodes: 1, Ordered: t0.Add(time.Duration(i) * 15 * time.Second)}))
	}
	if len(rec.Waves) != 2*keepWaves || !rec.Waves[0].Served.IsZero() || rec.Waves[0].Ordered != t0 {
		t.Fatalf("%d waves, the first %+v: want the %d unserved, from the first ordered", len(rec.Waves), rec.Waves[0], 2*keepWaves)
	}
}
