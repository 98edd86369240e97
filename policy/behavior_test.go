package policy

import (
	"strings"
	"testing"
	"time"
)

// queueSpec scales on a per-pod queue with target 10, so a reading of 10*k per pod over n pods proposes n*k.
func queueSpec(minR, maxR int32, b *Behavior) Spec {
	return Spec{MinReplicas: minR, MaxReplicas: maxR, Metrics: []MetricSpec{podsAvg("queue", 10)}, Behavior: b}
}

// observeQueue builds an observation of n ready pods whose queue average makes the proposal `propose`.
func observeQueue(n int32, propose int32) Observation {
	pods := readyPods(int(n))
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = 10 * float64(propose) / float64(n)
	}
	return Observation{SpecReplicas: n, Pods: pods, Metrics: []MetricReading{{Name: "queue", Pods: samples(pods, vals...)}}, Group: bigGroup}
}

func TestBehaviorStabilizationAndPolicies(t *testing.T) {
	type step struct {
		at       time.Duration // since t0
		current  int32
		propose  int32
		want     int32
		limit    LimitKind
		scaledTo int32 // when set, the change is recorded as carried out
	}
	cases := []struct {
		name     string
		behavior *Behavior
		minR     int32
		maxR     int32
		steps    []step
	}{
		{
			name: "default scale-down window keeps the highest recommendation of the last 5 minutes",
			minR: 1, maxR: 50,
			steps: []step{
				{at: 0, current: 8, propose: 8, want: 8},
				{at: 100 * time.Second, current: 8, propose: 4, want: 8, limit: LimitStabilization},
				{at: 250 * time.Second, current: 8, propose: 3, want: 8, limit: LimitStabilization},
				// The 8 at t=0 left the window; the 4 at 100s is the highest left.
				{at: 301 * time.Second, current: 8, propose: 3, want: 4, limit: LimitStabilization},
				{at: 401 * time.Second, current: 4, propose: 3, want: 3},
			},
		},
		{
			name:     "a scale-up window keeps the lowest recommendation",
			behavior: &Behavior{ScaleUp: &ScalingRules{StabilizationWindowSeconds: i32(60)}},
			minR:     1, maxR: 50,
			steps: []step{
				{at: 0, current: 4, propose: 4, want: 4},
				{at: 15 * time.Second, current: 4, propose: 9, want: 4, limit: LimitStabilization},
				{at: 30 * time.Second, current: 4, propose: 6, want: 4, limit: LimitStabilization},
				{at: 61 * time.Second, current: 4, propose: 9, want: 6, limit: LimitStabilization},
			},
		},
		{
			name: "default scale-up policy: the larger of 4 pods and 100% per 15s",
			minR: 1, maxR: 100,
			steps: []step{
				{at: 0, current: 2, propose: 40, want: 6, limit: LimitScaleUpPolicy, scaledTo: 6},
				// 10s later, the period began at 2: at most max(2+4, 2x2) = 6 still.
				{at: 10 * time.Second, current: 6, propose: 40, want: 6, limit: LimitScaleUpPolicy},
				{at: 16 * time.Second, current: 6, propose: 40, want: 12, limit: LimitScaleUpPolicy, scaledTo: 12},
				{at: 32 * time.Second, current: 12, propose: 40, want: 24, limit: LimitScaleUpPolicy},
			},
		},
		{
			name:     "selectPolicy Min picks the smaller change",
			behavior: &Behavior{ScaleUp: &ScalingRules{SelectPolicy: ptr(SelectMin)}},
			minR:     1, maxR: 100,
			steps: []step{{at: 0, current: 10, propose: 40, want: 14, limit: LimitScaleUpPolicy}},
		},
		{
			name: "scale-down percent policy over a period",
			behavior: &Behavior{ScaleDown: &ScalingRules{StabilizationWindowSeconds: i32(0),
				Policies: []ScalingPolicy{{Type: PercentPolicy, Value: 50, PeriodSeconds: 60}}}},
			minR: 1, maxR: 100,
			steps: []step{
				{at: 0, current: 10, propose: 1, want: 5, limit: LimitScaleDownPolicy, scaledTo: 5},
				// Within the same minute the period still starts at 10: floor(10 x 0.5) = 5, no further.
				{at: 30 * time.Second, current: 5, propose: 1, want: 5, limit: LimitScaleDownPolicy},
				{at: 61 * time.Second, current: 5, propose: 1, want: 2, limit: LimitScaleDownPolicy},
			},
		},
		{
			name: "scale-down pods policy with selectPolicy Min",
			behavior: &Behavior{ScaleDown: &ScalingRules{StabilizationWindowSeconds: i32(0), SelectPolicy: ptr(SelectMin),
				Policies: []ScalingPolicy{{Type: PodsPolicy, Value: 1, PeriodSeconds: 60}, {Type: PercentPolicy, Value: 50, PeriodSeconds: 60}}}},
			minR: 1, maxR: 100,
			steps: []step{{at: 0, current: 10, propose: 1, want: 9, limit: LimitScaleDownPolicy}},
		},
		{
			name:     "a disabled direction never moves",
			behavior: &Behavior{ScaleDown: &ScalingRules{StabilizationWindowSeconds: i32(0), SelectPolicy: ptr(SelectDisabled)}},
			minR:     1, maxR: 100,
			steps: []step{{at: 0, current: 10, propose: 1, want: 10, limit: LimitScaleDownPolicy}},
		},
		{
			name: "stabilization then policies: the window holds, then the policy slows the drop",
			behavior: &Behavior{ScaleDown: &ScalingRules{StabilizationWindowSeconds: i32(60),
				Policies: []ScalingPolicy{{Type: PodsPolicy, Value: 2, PeriodSeconds: 30}}}},
			minR: 1, maxR: 100,
			steps: []step{
				{at: 0, current: 10, propose: 10, want: 10},
				{at: 61 * time.Second, current: 10, propose: 7, want: 8, limit: LimitScaleDownPolicy, scaledTo: 8},
				// The 7 at 61s is in the window: stabilized 7; the policy, from 10 at the period's start, allows 8.
				{at: 81 * time.Second, current: 8, propose: 2, want: 8, limit: LimitStabilization},
				// The 7 left the window; the 2 at 81s remains: stabilized 2, policy allows 8-2=6.
				{at: 122 * time.Second, current: 8, propose: 2, want: 6, limit: LimitScaleDownPolicy},
			},
		},
		{
			name: "max and min replicas bound the result",
			minR: 3, maxR: 7,
			behavior: &Behavior{ScaleDown: &ScalingRules{StabilizationWindowSeconds: i32(0)}},
			steps: []step{
				{at: 0, current: 5, propose: 9, want: 7, limit: LimitMaxReplicas},
				{at: time.Minute, current: 5, propose: 1, want: 3, limit: LimitMinReplicas},
			},
		},
		{
			name: "a count outside the bounds is brought inside without reading metrics",
			minR: 3, maxR: 7,
			steps: []step{
				{at: 0, current: 9, propose: 9, want: 7, limit: LimitReplicaBounds},
				{at: time.Minute, current: 1, propose: 1, want: 3, limit: LimitReplicaBounds},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var st State
			spec := queueSpec(c.minR, c.maxR, c.behavior)
			for i, s := range c.steps {
				now := t0.Add(s.at)
				obs := observeQueue(s.current, s.propose)
				obs.Time = now
				d := Evaluate(Input{Spec: spec, Observation: obs}, &st, now)
				if d.DesiredReplicas != s.want {
					t.Fatalf("step %d (at %s): desired %d, want %d\n%s", i, s.at, d.DesiredReplicas, s.want, d.Summary)
				}
				if s.limit != "" && !hasLimit(d, s.limit) {
					t.Errorf("step %d: limits %+v do not include %s", i, d.Limits, s.limit)
				}
				if s.scaledTo != 0 {
					st.RecordScale(s.current, s.scaledTo, now)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestStateStaysBounded(t *testing.T) {
	var st State
	spec := queueSpec(1, 100, nil)
	for i := range 1000 {
		now := t0.Add(time.Duration(i) * 15 * time.Second)
		obs := observeQueue(4, int32(2+i%5))
		Evaluate(Input{Spec: spec, Observation: obs}, &st, now)
		st.RecordScale(4, 5, now)
	}
	// Windows of 300s at one evaluation per 15s keep at most 21 recommendations; periods of 15s, 2 events.
	if len(st.Recommendations) > 21 || len(st.ScaleUpEvents) > 2 {
		t.Fatalf("state grew: %d recommendations, %d scale-up events", len(st.Recommendations), len(st.ScaleUpEvents))
	}
}

func TestSummaryNamesMetricRatioAndLimit(t *testing.T) {
	var st State
	spec := queueSpec(1, 100, nil)
	obs := observeQueue(3, 15) // 50 per pod vs target 10: proposes 15
	d := Evaluate(Input{Spec: spec, Observation: obs}, &st, t0)
	for _, want := range []string{"3 -> 7", "queue 50 per pod vs target 10 per pod", "ratio 5.00", "proposes 15", "capped at 7 by scale-up policy 4 pods per 15s"} {
		if !strings.Contains(d.Summary, want) {
			t.Errorf("summary %q lacks %q", d.Summary, want)
		}
	}
}

// Each direction's rate policies read both directions' events over their own periods, as the HPA's do: a
// scale-down policy of a pod per 10 minutes, a minute after a scale-up from 5 to 10, starts its period at
// 5 and lets the count go back to 5 (the events of the scale-up were dropped after the scale-up's 15 s
// period, and it let 10 go to 9); a scale-up policy of 4 pods per 2 minutes, a minute after a scale-down
// from 10 to 5, lets it go to 12.
func TestRatePoliciesReadTheOtherDirectionsEventsOverTheirPeriods(t *testing.T) {
	down := queueSpec(1, 20, &Behavior{ScaleDown: &ScalingRules{StabilizationWindowSeconds: i32(0),
		Policies: []ScalingPolicy{{Type: PodsPolicy, Value: 1, PeriodSeconds: 600}}}})
	var st State
	st.RecordScale(5, 10, t0)
	Evaluate(Input{Spec: down, Observation: observeQueue(10, 10)}, &st, t0.Add(30*time.Second)) // trims as it goes
	if d := Evaluate(Input{Spec: down, Observation: observeQueue(10, 5)}, &st, t0.Add(time.Minute)); d.DesiredReplicas != 5 {
		t.Errorf("back down a minute after a scale-up: desired %d, want 5\n%s", d.DesiredReplicas, d.Summary)
	}
	up := queueSpec(1, 20, &Behavior{ScaleUp: &ScalingRules{StabilizationWindowSeconds: i32(0),
		Policies: []ScalingPolicy{{Type: PodsPolicy, Value: 4, PeriodSeconds: 120}}}})
	st = State{}
	st.RecordScale(10, 5, t0)
	Evaluate(Input{Spec: up, Observation: observeQueue(5, 5)}, &st, t0.Add(30*time.Second))
	if d := Evaluate(Input{Spec: up, Observation: observeQueue(5, 12)}, &st, t0.Add(time.Minute)); d.DesiredReplicas != 12 {
		t.Errorf("up a minute after a scale-down: desired %d, want 12\n%s", d.DesiredReplicas, d.Summary)
	}
}
