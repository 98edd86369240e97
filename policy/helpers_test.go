package policy

import (
	"fmt"
	"time"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func f64(v float64) *float64 { return &v }
func i32(v int32) *int32     { return &v }

// readyPods returns n Running, Ready pods started long ago, each requesting 1 CPU and 1 GiB.
func readyPods(n int) []Pod {
	pods := make([]Pod, n)
	for i := range pods {
		pods[i] = Pod{
			Name: fmt.Sprintf("model-%d", i), Phase: PodRunning, Ready: true,
			StartTime: t0.Add(-time.Hour), ReadyChanged: t0.Add(-time.Hour + time.Minute),
			CPURequest: 1, MemoryRequest: 1 << 30, Node: fmt.Sprintf("node-%d", i),
		}
	}
	return pods
}

// samples gives pods[i] the value vals[i]; NaN leaves a pod without a sample.
func samples(pods []Pod, vals ...float64) []PodSample {
	var out []PodSample
	for i, v := range vals {
		if v != v {
			continue
		}
		out = append(out, PodSample{Pod: pods[i].Name, Value: v, Timestamp: t0.Add(-15 * time.Second), Window: Duration(30 * time.Second)})
	}
	return out
}

var missing = func() float64 { z := 0.0; return z / z }()

func cpuUtil(target int32) MetricSpec {
	return MetricSpec{Type: ResourceMetric, Resource: &ResourceMetricSource{Name: "cpu", Target: MetricTarget{Type: UtilizationTarget, AverageUtilization: i32(target)}}}
}

func podsAvg(name string, target float64) MetricSpec {
	return MetricSpec{Type: PodsMetric, Pods: &PodsMetricSource{Metric: MetricIdentifier{Name: name}, Target: MetricTarget{Type: AverageValueTarget, AverageValue: f64(target)}}}
}

func external(name string, tt MetricTargetType, target float64) MetricSpec {
	t := MetricTarget{Type: tt}
	if tt == ValueTarget {
		t.Value = f64(target)
	} else {
		t.AverageValue = f64(target)
	}
	return MetricSpec{Type: ExternalMetric, External: &ExternalMetricSource{Metric: MetricIdentifier{Name: name}, Target: t}}
}

func object(name string, tt MetricTargetType, target float64) MetricSpec {
	e := external(name, tt, target)
	return MetricSpec{Type: ObjectMetric, Object: &ObjectMetricSource{
		DescribedObject: ObjectReference{Kind: "Service", Name: "gateway"}, Metric: e.External.Metric, Target: e.External.Target}}
}

// bigGroup is a node group large enough never to bound a test about replicas.
var bigGroup = NodeGroup{Name: "gpu-pool", Min: 0, Max: 1000, GPUsPerNode: 1}

func evalOnce(spec Spec, obs Observation) Decision {
	if obs.Group == (NodeGroup{}) {
		obs.Group = bigGroup
	}
	var st State
	return Evaluate(Input{Spec: spec, Observation: obs}, &st, t0)
}
