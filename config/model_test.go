package config

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/llmscaler/llmscaler/policy"
)

func TestLoadModelSpecReadsHPAStyleFieldsAndFillsDefaults(t *testing.T) {
	m, err := LoadModelSpec("testdata/model.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := m.Spec
	if m.WorkflowID() != "autoscaler/models/llama-3-8b" || s.Deployment != "lorax-llama-3-8b" || s.MinReplicas != 1 || s.MaxReplicas != 8 {
		t.Fatalf("unexpected spec: %+v", m)
	}
	if len(s.Metrics) != 2 || s.Metrics[0].Pods == nil || *s.Metrics[0].Pods.Target.AverageValue != 5 {
		t.Fatalf("metrics: %+v", s.Metrics)
	}
	if got := *s.Metrics[1].Resource.Target.AverageValue; got != 1.5 {
		t.Fatalf("the quantity 1500m read as %v, want 1.5", got)
	}
	if w := s.Behavior.ScaleDown.StabilizationWindowSeconds; w == nil || *w != 600 {
		t.Fatalf("scale-down window %v", w)
	}
	if s.DrainGracePeriod.D() != 120*time.Second || s.Timeouts.NodeReady.D() != 8*time.Minute {
		t.Fatalf("durations: drain %s nodeReady %s", s.DrainGracePeriod, s.Timeouts.NodeReady)
	}
	if s.EvaluationInterval.D() != 15*time.Second || s.Timeouts.Drain.D() != 15*time.Minute || s.LoadBalancer.Service != "lorax-llama-3-8b" {
		t.Fatalf("defaults not filled: %+v", s)
	}
}

func TestValidationReportsEveryProblemWithItsPath(t *testing.T) {
	_, err := ParseModelSpec([]byte(`
apiVersion: llmscaler.dev/v1alpha1
kind: ModelAutoscaler
metadata: {name: Llama_3}
spec:
  deployment: lorax
  minReplicas: 3
  maxReplicas: 2
  metrics:
  - type: Pods
    pods:
      metric: {name: queue, query: "q"}
      target: {type: AverageValue, averageValue: 5}
  - type: Pods
    pods:
      metric: {name: inflight}
      target: {type: AverageValue, averageValue: 0}
  - type: Resource
    resource: {name: gpu, target: {type: Value, value: 1}}
  - type: Demand
    demand: {arrivals: {name: arrivals, query: "q"}, serviceTimeSeconds: 8, concurrency: 16, rateWindow: -1m, keepAfterStop: -5m}
  - type: Demand
    demand: {arrivals: {name: arrivals2, query: "q"}, serviceTimeSeconds: 8, concurrency: 16, peakArrivals: {name: peak}, peakWindow: -10s}
  behavior:
    scaleUp:
      policies: [{type: Percent, value: 100, periodSeconds: 0}]
  nodeGroup: {provider: gce, name: pool}
  evaluationInterval: 100ms
`))
	if err == nil {
		t.Fatal("an invalid spec was accepted")
	}
	for _, want := range []string{
		`metadata.name: "Llama_3" is not a valid name`,
		"spec.maxReplicas: 2 is below minReplicas 3",
		"spec.metrics[1].pods.metric.query: is required",
		"spec.metrics[1].pods.target.averageValue: must be > 0",
		`spec.metrics[2].resource.name: must be cpu or memory (got "gpu")`,
		`spec.metrics[2].resource.target.type: must be Utilization or AverageValue (got "Value")`,
		"spec.behavior.scaleUp.policies[0].periodSeconds: must be between 1 and 1800",
		`spec.nodeGroup.provider: must be kwok or aws-asg (got "gce")`,
		"spec.nodeGroup: set gpusPerNode or instanceType",
		"spec.evaluationInterval: must be at least 1s",
		"spec.metrics[3].demand.rateWindow: must be >= 0 (got -1m0s)",
		"spec.metrics[3].demand.keepAfterStop: must be >= 0: how long capacity waits for a load that stopped abruptly to return (0s: not at all; got -5m0s)",
		`spec.metrics[4]: a second metric named "demand": names must be unique`,
		"spec.metrics[4].demand.peakArrivals.query: is required when peakArrivals is set",
		"spec.metrics[4].demand.peakWindow: must be >= 0 (got -10s)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestDecodeErrorsNameTheFieldAsWritten(t *testing.T) {
	_, err := ParseModelSpec([]byte(`
apiVersion: llmscaler.dev/v1alpha1
kind: ModelAutoscaler
metadata: {name: m}
spec:
  deployment: d
  minReplicas: 1
  maxReplica: 4
  metrics:
  - type: Pods
    pods:
      metric: {name: q, query: q}
      target: {type: AverageValue, averageValue: lots}
  nodeGroup: {provider: kwok, name: pool, gpusPerNode: 1}
  drainGracePeriod: soon
`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"spec.maxreplica: unknown field (did you mean maxReplicas?)",
		`spec.metrics[0].pods.target.averageValue`,
		`"lots" is not a number or a Kubernetes quantity`,
		`spec.drainGracePeriod`,
		`invalid duration "soon"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// What weakly typed decoding would turn into something else without a word is refused, by field: a bare
// number for a duration (120 nanoseconds: a drain grace of a second), a fraction or a boolean for a whole
// number, a number that is not finite, a single mapping for a list; and every unknown key of a section.
func TestDecodingRefusesWhatItWouldSilentlyChange(t *testing.T) {
	_, err := ParseModelSpec([]byte(`
apiVersion: llmscaler.dev/v1alpha1
kind: ModelAutoscaler
metadata: {name: m}
spec:
  deployment: d
  minReplicas: 1
  maxReplicas: 7.9
  gpusPerPod: true
  maxReplica: 4
  minReplica: 1
  metrics:
    type: Pods
    pods:
      metric: {name: q, query: q}
      target: {type: AverageValue, averageValue: .inf}
  nodeGroup: {provider: kwok, name: pool, gpusPerNode: 1}
  drainGracePeriod: 120
  panic: {threshold: .nan}
`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"spec.drainGracePeriod", "120 is a number without a unit: write a duration such as 120s",
		"spec.maxReplicas", "7.9 is not a whole number",
		"spec.gpusPerPod", "true is not a whole number",
		"spec.maxreplica: unknown field (did you mean maxReplicas?)",
		"spec.minreplica: unknown field (did you mean minReplicas?)",
		"spec.metrics", "a single mapping where a list belongs",
		"spec.panic.threshold", "NaN is not a finite number",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	_, err = ParseModelSpec([]byte(`
apiVersion: llmscaler.dev/v1alpha1
kind: ModelAutoscaler
metadata: {name: m}
spec:
  deployment: d
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Pods
    pods:
      metric: {name: q, query: q}
      target: {type: AverageValue, averageValue: "Inf"}
  nodeGroup: {provider: kwok, name: pool, gpusPerNode: 1}
`))
	if err == nil || !strings.Contains(err.Error(), `spec.metrics[0].pods.target.averageValue: "Inf" is not a finite number`) {
		t.Errorf("an infinite quantity: %v", err)
	}
}

func TestEnvironmentOverridesTheFile(t *testing.T) {
	t.Setenv("LLMSCALER_MODEL_SPEC_MAXREPLICAS", "12")
	v := NewModelViper()
	m, err := LoadModelSpec("testdata/model.yaml", v)
	if err != nil {
		t.Fatal(err)
	}
	if m.Spec.MaxReplicas != 12 {
		t.Fatalf("maxReplicas %d, want 12 from the environment", m.Spec.MaxReplicas)
	}
}

func TestMissingFileIsNamed(t *testing.T) {
	_, err := LoadModelSpec("testdata/nope.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), "testdata/nope.yaml") {
		t.Fatalf("error %v does not name the file", err)
	}
}

func FuzzParseModelSpec(f *testing.F) {
	good, err := os.ReadFile("testdata/model.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("spec: {metrics: [{type: Pods, pods: {target: {averageValue: 1Ki}}}]}"))
	f.Add([]byte("spec:\n  minReplicas: [1, 2]\n  behavior: {scaleUp: {selectPolicy: 7}}\n"))
	f.Add([]byte("\t: : -"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseModelSpec(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		// Whatever is accepted is valid and usable by the policy.
		if verr := m.Validate(); verr != nil {
			t.Fatalf("accepted a spec that does not validate: %v", verr)
		}
		var st policy.State
		policy.Evaluate(policy.Input{Spec: m.Spec.Spec, Observation: policy.Observation{SpecReplicas: m.Spec.MinReplicas}}, &st, time.Unix(0, 0))
	})
}

func TestKeepAfterStopIsUnsetZeroOrADuration(t *testing.T) {
	for _, c := range []struct {
		field string
		want  *time.Duration
	}{{"", nil}, {", keepAfterStop: 0s", new(time.Duration)}, {", keepAfterStop: 45m", func() *time.Duration { d := 45 * time.Minute; return &d }()}} {
		m, err := ParseModelSpec([]byte(`
apiVersion: llmscaler.dev/v1alpha1
kind: ModelAutoscaler
metadata: {name: m}
spec:
  deployment: d
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Demand
    demand: {arrivals: {name: arrivals, query: "q"}, serviceTimeSeconds: 8, concurrency: 16` + c.field + `}
  nodeGroup: {provider: kwok, name: pool, gpusPerNode: 1}
`))
		if err != nil {
			t.Fatalf("%q: %v", c.field, err)
		}
		got := m.Spec.Metrics[0].Demand.KeepAfterStop
		if (got == nil) != (c.want == nil) || (got != nil && got.D() != *c.want) {
			t.Errorf("%q: keepAfterStop %v, want %v", c.field, got, c.want)
		}
	}
}
