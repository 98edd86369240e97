package policy

import (
	"strings"
	"testing"
	"time"
)

// Cases written from the HPA's documented behaviour and its controller's rules; figures chosen so that each
// rule changes the result.
func TestHPAMetricRules(t *testing.T) {
	unreadyNew := func(pods []Pod, i int) []Pod {
		pods[i].Ready = false
		pods[i].StartTime = t0.Add(-time.Minute)
		pods[i].ReadyChanged = t0.Add(-time.Minute)
		return pods
	}
	cases := []struct {
		name     string
		spec     Spec
		pods     []Pod
		readings func(pods []Pod) []MetricReading
		current  int32
		want     int32
		check    func(t *testing.T, d Decision)
	}{
		{
			name: "cpu utilization scales up by the usage ratio",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{cpuUtil(30)}},
			pods: readyPods(3), current: 3,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{{Name: "cpu", Pods: samples(p, 0.3, 0.5, 0.7)}}
			},
			// 1500m of 3000m requested = 50% vs 30%: ceil(1.667 x 3) = 5.
			want: 5,
			check: func(t *testing.T, d Decision) {
				if m := d.Metrics[0]; m.Current != 50 || m.ReadyPods != 3 {
					t.Errorf("utilization %v over %d pods, want 50 over 3", m.Current, m.ReadyPods)
				}
			},
		},
		{
			name: "cpu utilization scales down",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{cpuUtil(50)}, Behavior: noWindows()},
			pods: readyPods(5), current: 5,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{{Name: "cpu", Pods: samples(p, 0.1, 0.3, 0.5, 0.25, 0.25)}}
			},
			// 28% vs 50%: ceil(0.56 x 5) = 3.
			want: 3,
		},
		{
			name: "utilization is an integer percent, as in the HPA",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{cpuUtil(30)}},
			pods: readyPods(3), current: 3,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{{Name: "cpu", Pods: samples(p, 0.3333, 0.3333, 0.3333)}}
			},
			// 33.33% truncates to 33%: ratio 1.1, within tolerance; unrounded it would be 1.111 and scale.
			want: 3,
		},
		{
			name: "within the default tolerance nothing changes",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{podsAvg("queue", 10)}},
			pods: readyPods(3), current: 3,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{{Name: "queue", Pods: samples(p, 10, 11, 12)}}
			},
			want: 3,
			check: func(t *testing.T, d Decision) {
				if !d.Metrics[0].WithinTolerance {
					t.Error("ratio 1.1 not reported within tolerance")
				}
			},
		},
		{
			name: "a per-direction tolerance of zero scales on a 5% excess",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{podsAvg("queue", 10)},
				Behavior: &Behavior{ScaleUp: &ScalingRules{Tolerance: f64(0)}}},
			pods: readyPods(3), current: 3,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{{Name: "queue", Pods: samples(p, 10.5, 10.5, 10.5)}}
			},
			want: 4,
		},
		{
			name: "a wide scale-down tolerance holds a 30% drop",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{podsAvg("queue", 10)},
				Behavior: &Behavior{ScaleDown: &ScalingRules{Tolerance: f64(0.35), StabilizationWindowSeconds: i32(0)}}},
			pods: readyPods(4), current: 4,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{{Name: "queue", Pods: samples(p, 7, 7, 7, 7)}}
			},
			want: 4,
		},
		{
			name: "on a scale-down, missing pods count as using their whole request",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{cpuUtil(50)}, Behavior: noWindows()},
			pods: readyPods(4), current: 4,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{{Name: "cpu", Pods: samples(p, 0.1, 0.1, 0.1, missing)}}
			},
			// Without the missing pod: 10% -> ceil(0.2 x 3) = 1. Counting it at 100%: 1300m/4000m = 32%,
			// ceil(0.64 x 4) = 3.
			want: 3,
			check: func(t *testing.T, d Decision) {
				m := d.Metrics[0]
				if m.MissingPods != 1 || m.RecomputedRatio == nil || *m.RecomputedRatio != 0.64 {
					t.Errorf("missing=%d recomputed=%v, want 1 and 0.64", m.MissingPods, m.RecomputedRatio)
				}
			},
		},
		{
			name: "on a scale-down with a target above 100%, missing pods count at the target",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{cpuUtil(200)}, Behavior: noWindows()},
			pods: readyPods(4), current: 4,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{{Name: "cpu", Pods: samples(p, 0.2, 0.2, 0.2, missing)}}
			},
			// 20% vs 200%; the missing pod at 200% of its request: 2600m/4000m = 65% -> ceil(0.325 x 4) = 2.
			want: 2,
		},
		{
			name: "on a scale-up, missing pods count as idle",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{cpuUtil(50)}},
			pods: readyPods(4), current: 4,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{{Name: "cpu", Pods: samples(p, 1, 1, 1, missing)}}
			},
			// 100% vs 50% over three pods; with the fourth at 0: 75% -> ceil(1.5 x 4) = 6.
			want: 6,
		},
		{
			name: "a recomputation that flips direction keeps the current count",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{cpuUtil(50)}},
			pods: readyPods(4), current: 4,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{{Name: "cpu", Pods: samples(p, 0.6, 0.6, missing, missing)}}
			},
			// 120% over two pods says up; counting two idle missing pods gives 60% (ratio 0.6), down: keep 4.
			want: 4,
			check: func(t *testing.T, d Decision) {
				if !strings.Contains(d.Metrics[0].Note, "keeping 4") {
					t.Errorf("note %q does not explain keeping 4", d.Metrics[0].Note)
				}
			},
		},
		{
			name: "a recomputation landing within tolerance keeps the current count",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{podsAvg("queue", 10)}},
			pods: readyPods(4), current: 4,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{{Name: "queue", Pods: samples(p, 14, 14, 14, missing)}}
			},
			// 14 vs 10 says up; with the missing pod at 0: 10.5, within tolerance.
			want: 4,
		},
		{
			name: "unready cpu pods count as idle on a scale-up",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{cpuUtil(50)}},
			pods: unreadyNew(readyPods(4), 3), current: 4,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{{Name: "cpu", Pods: samples(p, 1, 1, 1, 0.9)}}
			},
			// Ready pods: 100% vs 50%. The unready pod's 90% is replaced by 0: 75% -> ceil(1.5 x 4) = 6.
			want: 6,
			check: func(t *testing.T, d Decision) {
				if d.Metrics[0].UnreadyPods != 1 {
					t.Errorf("unready pods = %d, want 1", d.Metrics[0].UnreadyPods)
				}
			},
		},
		{
			name: "a cpu sample taken before a full window of readiness is ignored during initialization",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{cpuUtil(50)}},
			pods: func() []Pod {
				p := readyPods(2)
				p[1].StartTime = t0.Add(-2 * time.Minute)
				p[1].ReadyChanged = t0.Add(-20 * time.Second) // ready, but the 30s window began before it
				return p
			}(), current: 2,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{{Name: "cpu", Pods: samples(p, 1, 2)}}
			},
			// Only pod 0 counts at first (100% -> up); pod 1 then counts as 0: 50%: within tolerance -> keep 2.
			want: 2,
		},
		{
			name: "unready pods do not affect non-cpu metrics",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{podsAvg("queue", 5)}},
			pods: unreadyNew(readyPods(3), 2), current: 3,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{{Name: "queue", Pods: samples(p, 10, 10, 10)}}
			},
			want: 6,
		},
		{
			name: "deleting and failed pods are ignored, pending pods are unready",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{podsAvg("queue", 5)}},
			pods: func() []Pod {
				p := readyPods(5)
				p[2].Phase = PodPending
				p[3].Deleting = true
				p[4].Phase = PodFailed
				return p
			}(), current: 5,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{{Name: "queue", Pods: samples(p, 10, 10, 100, 100, 100)}}
			},
			// Pods 0 and 1 count: 10 vs 5, a scale-up; the pending pod then counts as 0 (the HPA's code, under
			// its comment "Pending pods are ignored"): 20/3 vs 5, ceil(1.33 x 3) = 4, below the 5 running
			// against a ratio above 1: keep 5.
			want: 5,
			check: func(t *testing.T, d Decision) {
				if m := d.Metrics[0]; m.Replicas != 5 || m.IgnoredPods != 2 || m.UnreadyPods != 1 {
					t.Errorf("proposal %d with %d ignored and %d unready, want 5 with 2 and 1", m.Replicas, m.IgnoredPods, m.UnreadyPods)
				}
			},
		},
		{
			// Two pods still Pending (a large image pulling) behind two overloaded ones: ignored, they made the
			// ratio over the two ready pods propose 3 of 4, a scale-down of an overloaded Deployment. As the
			// HPA does, they count as 0 on the scale-up: 30/4 vs 10 flips the ratio below 1: keep 4.
			name: "pending pods keep an overloaded deployment from a scale-down",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{podsAvg("queue", 10)}},
			pods: func() []Pod {
				p := readyPods(4)
				p[2].Phase, p[3].Phase = PodPending, PodPending
				return p
			}(), current: 4,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{{Name: "queue", Pods: samples(p[:2], 15, 15)}}
			},
			want: 4,
			check: func(t *testing.T, d Decision) {
				if m := d.Metrics[0]; m.Replicas != 4 || m.UnreadyPods != 2 {
					t.Errorf("proposal %d with %d unready, want 4 with 2", m.Replicas, m.UnreadyPods)
				}
			},
		},
		{
			name: "samples of pods that no longer exist are dropped",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{podsAvg("queue", 5)}},
			pods: readyPods(2), current: 2,
			readings: func(p []Pod) []MetricReading {
				s := samples(p, 5, 5)
				return []MetricReading{{Name: "queue", Pods: append(s, PodSample{Pod: "gone", Value: 500})}}
			},
			want: 2,
		},
		{
			name: "resource average value on memory",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{{Type: ResourceMetric, Resource: &ResourceMetricSource{
				Name: "memory", Target: MetricTarget{Type: AverageValueTarget, AverageValue: f64(1 << 30)}}}}},
			pods: readyPods(2), current: 2,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{{Name: "memory", Pods: samples(p, 3<<30, 3<<30)}}
			},
			want: 6, // 3 GiB vs 1 GiB: ceil(3 x 2) = 6, allowed by the default scale-up policy max(2+4, 2x2)
		},
		{
			name: "object value uses the ready pod count",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{object("requests_per_second", ValueTarget, 10)}},
			pods: unreadyNew(readyPods(3), 2), current: 3,
			readings: func([]Pod) []MetricReading { return []MetricReading{{Name: "requests_per_second", Value: f64(30)}} },
			// ratio 3 over 2 ready pods: 6.
			want: 6,
		},
		{
			name: "object average value divides the total by the per-pod target",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{object("requests_per_second", AverageValueTarget, 5)}},
			pods: readyPods(3), current: 3,
			readings: func([]Pod) []MetricReading { return []MetricReading{{Name: "requests_per_second", Value: f64(30)}} },
			want:     6,
		},
		{
			name: "external average value within tolerance keeps the count",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{external("gateway_queue", AverageValueTarget, 10)}},
			pods: readyPods(3), current: 3,
			readings: func([]Pod) []MetricReading { return []MetricReading{{Name: "gateway_queue", Value: f64(31)}} },
			want:     3,
		},
		{
			name: "external value",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{external("gateway_queue", ValueTarget, 20)}},
			pods: readyPods(2), current: 2,
			readings: func([]Pod) []MetricReading { return []MetricReading{{Name: "gateway_queue", Value: f64(50)}} },
			want:     5,
		},
		{
			name: "several metrics: the largest proposal wins",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{cpuUtil(50), podsAvg("queue", 5)}},
			pods: readyPods(4), current: 4,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{
					{Name: "cpu", Pods: samples(p, 0.6, 0.6, 0.6, 0.6)},
					{Name: "queue", Pods: samples(p, 9, 9, 9, 9)},
				}
			},
			want: 8, // cpu: ceil(1.2 x 4) = 5; queue: ceil(1.8 x 4) = 8
		},
		{
			name: "an invalid metric forbids a scale-down",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{cpuUtil(50), podsAvg("queue", 5)}, Behavior: noWindows()},
			pods: readyPods(4), current: 4,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{
					{Name: "cpu", Pods: samples(p, 0.1, 0.1, 0.1, 0.1)},
					{Name: "queue", Error: "prometheus: connection refused"},
				}
			},
			want: 4,
			check: func(t *testing.T, d Decision) {
				if !hasLimit(d, LimitInvalidMetric) || !strings.Contains(d.Summary, "connection refused") {
					t.Errorf("decision does not say the invalid metric held it: %s", d.Summary)
				}
			},
		},
		{
			name: "an invalid metric does not stop a scale-up",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{cpuUtil(50), podsAvg("queue", 5)}},
			pods: readyPods(4), current: 4,
			readings: func(p []Pod) []MetricReading {
				return []MetricReading{
					{Name: "cpu", Pods: samples(p, 1, 1, 1, 1)},
					{Name: "queue", Error: "prometheus: connection refused"},
				}
			},
			want: 8,
		},
		{
			name: "all metrics invalid keeps the count",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{podsAvg("queue", 5)}},
			pods: readyPods(4), current: 4,
			readings: func([]Pod) []MetricReading { return []MetricReading{{Name: "queue", Error: "timeout"}} },
			want:     4,
		},
		{
			name: "a missing cpu request makes the metric invalid",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20, Metrics: []MetricSpec{cpuUtil(50)}},
			pods: func() []Pod { p := readyPods(2); p[1].CPURequest = 0; return p }(), current: 2,
			readings: func(p []Pod) []MetricReading { return []MetricReading{{Name: "cpu", Pods: samples(p, 1, 1)}} },
			want:     2,
			check: func(t *testing.T, d Decision) {
				if !strings.Contains(d.Metrics[0].Invalid, "missing request for cpu in pod model-1") {
					t.Errorf("invalid reason %q", d.Metrics[0].Invalid)
				}
			},
		},
		{
			name: "no metrics default to cpu at 80%",
			spec: Spec{MinReplicas: 1, MaxReplicas: 20},
			pods: readyPods(2), current: 2,
			readings: func(p []Pod) []MetricReading { return []MetricReading{{Name: "cpu", Pods: samples(p, 1.6, 1.6)}} },
			want:     4,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := evalOnce(c.spec, Observation{Time: t0, SpecReplicas: c.current, Pods: c.pods, Metrics: c.readings(c.pods)})
			if d.DesiredReplicas != c.want {
				t.Fatalf("desired %d, want %d\n%s", d.DesiredReplicas, c.want, d.Summary)
			}
			if c.check != nil {
				c.check(t, d)
			}
		})
	}
}

func noWindows() *Behavior {
	return &Behavior{ScaleDown: &ScalingRules{StabilizationWindowSeconds: i32(0)}}
}

func hasLimit(d Decision, k LimitKind) bool {
	for _, l := range d.Limits {
		if l.Kind == k {
			return true
		}
	}
	return false
}
