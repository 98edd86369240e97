package sim

import (
	"testing"

	"github.com/llmscaler/llmscaler/internal/trace"
)

// The simulator's speed on an hour of the Azure conversation trace at ten times its rate (about 194,000
// requests): our policy against a constant size (the same serving work with no controller), and the whole
// comparison. `make bench` prints them; the ratio of ours to static is the controller's cost.
func benchTrace(tb testing.TB) []trace.Request {
	tb.Helper()
	reqs, err := trace.ReadFile("../../deploy/examples/traces/AzureLLMInferenceTrace_conv.csv")
	if err != nil {
		tb.Fatal(err)
	}
	return trace.Scale(reqs, 10, 1)
}

func BenchmarkSimulateHourStatic(b *testing.B) {
	reqs, a := benchTrace(b), DefaultAssumptions()
	b.ResetTimer()
	for range b.N {
		RunStatic(reqs, a, 31)
	}
}

func BenchmarkSimulateHourOurs(b *testing.B) {
	reqs, a, spec := benchTrace(b), DefaultAssumptions(), exampleSpec(b)
	b.ResetTimer()
	for range b.N {
		RunPolicy(reqs, a, Policy{Name: "ours", Spec: spec, Sagas: true}, 32)
	}
}

func BenchmarkSimulateHourWorkflow(b *testing.B) {
	reqs, a, spec := benchTrace(b), DefaultAssumptions(), exampleModel(b)
	b.ResetTimer()
	for range b.N {
		if _, err := RunWorkflow(reqs, a, WorkflowPolicy(spec, 0), 32); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompareHour(b *testing.B) {
	reqs, a, spec := benchTrace(b), DefaultAssumptions(), exampleSpec(b)
	b.ResetTimer()
	for range b.N {
		if _, err := Compare(Options{Assumptions: a, Trace: reqs, Policies: StandardPolicies(spec, a)}); err != nil {
			b.Fatal(err)
		}
	}
}
