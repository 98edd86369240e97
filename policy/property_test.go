package policy

import (
	"encoding/json"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// genCase draws a valid spec (one Pods metric, optionally CPU too) and an observation of n pods.
func genCase(t *rapid.T) (Spec, Observation) {
	minR := rapid.Int32Range(1, 10).Draw(t, "min")
	maxR := rapid.Int32Range(minR, 60).Draw(t, "max")
	n := rapid.IntRange(1, 40).Draw(t, "pods")
	target := rapid.Float64Range(0.5, 50).Draw(t, "target")
	spec := Spec{MinReplicas: minR, MaxReplicas: maxR, Metrics: []MetricSpec{podsAvg("queue", target)}}
	if rapid.Bool().Draw(t, "withWindowsOff") {
		spec.Behavior = noWindows()
	}
	pods := readyPods(n)
	vals := make([]float64, n)
	for i := range vals {
		if rapid.IntRange(0, 9).Draw(t, "missing") == 0 {
			vals[i] = missing
		} else {
			vals[i] = rapid.Float64Range(0, 200).Draw(t, "value")
		}
	}
	if allMissing(vals) {
		vals[0] = 1
	}
	obs := Observation{Time: t0, SpecReplicas: int32(n), Pods: pods,
		Metrics: []MetricReading{{Name: "queue", Pods: samples(pods, vals...)}}, Group: bigGroup}
	return spec, obs
}

func allMissing(vals []float64) bool {
	for _, v := range vals {
		if v == v {
			return false
		}
	}
	return true
}

func TestPropertyResultStaysWithinBounds(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		spec, obs := genCase(t)
		var st State
		d := Evaluate(Input{Spec: spec, Observation: obs}, &st, t0)
		if d.DesiredReplicas < spec.MinReplicas || d.DesiredReplicas > spec.MaxReplicas {
			t.Fatalf("desired %d outside [%d, %d]: %s", d.DesiredReplicas, spec.MinReplicas, spec.MaxReplicas, d.Summary)
		}
	})
}

func TestPropertyMoreLoadNeverGivesFewerReplicas(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		spec, obs := genCase(t)
		factor := rapid.Float64Range(1, 5).Draw(t, "factor")
		more := obs
		more.Metrics = []MetricReading{{Name: "queue"}}
		for _, s := range obs.Metrics[0].Pods {
			s.Value *= factor
			more.Metrics[0].Pods = append(more.Metrics[0].Pods, s)
		}
		var a, b State
		low := Evaluate(Input{Spec: spec, Observation: obs}, &a, t0)
		high := Evaluate(Input{Spec: spec, Observation: more}, &b, t0)
		if high.DesiredReplicas < low.DesiredReplicas {
			t.Fatalf("load x%.2f gave %d replicas, fewer than %d\nlow:  %s\nhigh: %s", factor, high.DesiredReplicas, low.DesiredReplicas, low.Summary, high.Summary)
		}
	})
}

func TestPropertySteadyLoadGivesSteadyReplicas(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		minR := rapid.Int32Range(1, 5).Draw(t, "min")
		maxR := rapid.Int32Range(minR, 80).Draw(t, "max")
		target := rapid.Float64Range(1, 20).Draw(t, "target")
		total := rapid.Float64Range(0, 1000).Draw(t, "total load")
		current := rapid.Int32Range(minR, maxR).Draw(t, "start")
		spec := Spec{MinReplicas: minR, MaxReplicas: maxR, Metrics: []MetricSpec{podsAvg("queue", target)}}
		var st State
		var history []int32
		// The total load stays the same; it spreads over whatever replicas run. Changes are carried out.
		for tick := range 60 {
			now := t0.Add(time.Duration(tick) * 15 * time.Second)
			pods := readyPods(int(current))
			vals := make([]float64, current)
			for i := range vals {
				vals[i] = total / float64(current)
			}
			obs := Observation{Time: now, SpecReplicas: current, Pods: pods, Group: bigGroup,
				Metrics: []MetricReading{{Name: "queue", Pods: samples(pods, vals...)}}}
			d := Evaluate(Input{Spec: spec, Observation: obs}, &st, now)
			st.RecordScale(current, d.DesiredReplicas, now)
			current = d.DesiredReplicas
			history = append(history, current)
		}
		last := history[len(history)-20:]
		for _, r := range last {
			if r != last[0] {
				t.Fatalf("steady load %.1f did not settle: %v", total, history)
			}
		}
	})
}

// FuzzEvaluate feeds arbitrary inputs (decoded from JSON) to the policy: it must never panic, and with a
// valid spec the result stays within the spec's bounds or at the current count.
func FuzzEvaluate(f *testing.F) {
	seed := func(spec Spec, obs Observation) {
		b, _ := json.Marshal(Input{Spec: spec, Observation: obs})
		f.Add(b)
	}
	seed(queueSpec(1, 10, nil), observeQueue(3, 7))
	seed(Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{cpuUtil(50), external("q", ValueTarget, 3)},
		Panic: &PanicSpec{}, ScaleToZero: &ScaleToZeroSpec{Activation: MetricIdentifier{Name: "q"}}}, observeQueue(4, 9))
	// Waking from zero on an External AverageValue metric: once a ratio to zero replicas (+Inf).
	wake := Spec{MinReplicas: 1, MaxReplicas: 10, Metrics: []MetricSpec{external("gateway_queue", AverageValueTarget, 5)},
		ScaleToZero: &ScaleToZeroSpec{Activation: MetricIdentifier{Name: "gateway_queue"}}}
	seed(wake, Observation{SpecReplicas: 0, Activation: f64(22), Metrics: []MetricReading{{Name: "gateway_queue", Value: f64(22)}}, Group: bigGroup})
	seed(wake, Observation{SpecReplicas: 0, Activation: f64(1), Metrics: []MetricReading{{Name: "gateway_queue", Value: f64(0)}}, Group: bigGroup})
	f.Add([]byte(`{"spec":{"minReplicas":2,"maxReplicas":1,"metrics":[{"type":"Resource"}]},"observation":{"specReplicas":-3}}`))
	f.Add([]byte(`{"spec":{"maxReplicas":5,"metrics":[{"type":"Pods","pods":{"metric":{"name":"q"},"target":{"type":"AverageValue","averageValue":0}}}]},"observation":{"specReplicas":2,"pods":[{"name":"a","phase":"Running"}],"metrics":[{"name":"q","pods":[{"pod":"a","value":1e308}]}]}}`))
	// A Demand reading so large that rounding it to a hundredth of a slot for the minute history would
	// overflow to +Inf (a State that then could not be recorded).
	demand := Spec{MinReplicas: 1, MaxReplicas: 50, Metrics: []MetricSpec{{Type: DemandMetric, Demand: &DemandSource{
		Arrivals: MetricIdentifier{Name: "arrivals", Query: "q"}, ServiceTimeSeconds: 7, Concurrency: 16}}}}
	seed(demand, Observation{SpecReplicas: 3, Pods: readyPods(3), Group: bigGroup,
		Metrics: []MetricReading{{Name: "demand", Demand: &DemandReading{Arrivals: 1e306}}}})
	f.Fuzz(func(t *testing.T, data []byte) {
		var in Input
		if err := json.Unmarshal(data, &in); err != nil {
			return
		}
		if len(in.Observation.Pods) > 500 || len(in.Spec.Metrics) > 20 || len(in.Observation.Nodes) > 500 {
			return
		}
		var st State
		d := Evaluate(in, &st, t0)
		s := in.Spec
		validSpec := s.MinReplicas >= 1 && s.MaxReplicas >= s.MinReplicas && s.ScaleToZero == nil
		current := in.Observation.SpecReplicas
		if validSpec && current > 0 && in.Overrides.Pinned == nil &&
			(d.DesiredReplicas < s.MinReplicas || d.DesiredReplicas > s.MaxReplicas) && d.DesiredReplicas != current {
			t.Fatalf("desired %d outside [%d, %d] and not current %d: %s", d.DesiredReplicas, s.MinReplicas, s.MaxReplicas, current, d.Summary)
		}
		if d.Summary == "" {
			t.Fatal("no summary")
		}
		// The workflow records every decision and the state it leaves in its history, as JSON: no NaN or Inf.
		if _, err := json.Marshal(d); err != nil {
			t.Fatalf("the decision does not encode: %v\n%s", err, d.Summary)
		}
		if _, err := json.Marshal(st); err != nil {
			t.Fatalf("the state does not encode: %v", err)
		}
	})
}
