package policy

import (
	"testing"
	"time"
)

func benchInput(pods int) Input {
	p := readyPods(pods)
	queue := make([]float64, pods)
	cpu := make([]float64, pods)
	inflight := make([]float64, pods)
	for i := range p {
		queue[i] = float64(5 + i%7)
		cpu[i] = 0.5 + float64(i%5)/10
		inflight[i] = float64(10 + i%13)
	}
	nodes := make([]Node, pods)
	for i := range nodes {
		nodes[i] = Node{Name: p[i].Node, InstanceID: "i-x", Ready: true, GPUsAllocatable: 1}
	}
	return Input{
		Spec: Spec{MinReplicas: 1, MaxReplicas: 500, Metrics: []MetricSpec{cpuUtil(70), podsAvg("lorax_queue_length", 5), podsAvg("inflight", 16)},
			Panic: &PanicSpec{}},
		Observation: Observation{SpecReplicas: int32(pods), Pods: p, Nodes: nodes,
			Group: NodeGroup{Name: "gpu-pool", Min: 1, Max: 500, Desired: int32(pods), GPUsPerNode: 1},
			Metrics: []MetricReading{
				{Name: "cpu", Pods: samples(p, cpu...)},
				{Name: "lorax_queue_length", Pods: samples(p, queue...)},
				{Name: "inflight", Pods: samples(p, inflight...)},
			}},
	}
}

func benchmarkEvaluate(b *testing.B, pods int) {
	in := benchInput(pods)
	var st State
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// One evaluation per 15 s tick, as in the workflow: the state's windows stay at their real size.
		Evaluate(in, &st, t0.Add(time.Duration(i)*15*time.Second))
		i++
	}
}

// BenchmarkEvaluate100Pods3Metrics is one evaluation of a model with 100 pods and 3 metrics (the README's
// figure); BenchmarkEvaluate1Pod3Metrics is the baseline of the same work on one pod.
func BenchmarkEvaluate100Pods3Metrics(b *testing.B) { benchmarkEvaluate(b, 100) }
func BenchmarkEvaluate1Pod3Metrics(b *testing.B)    { benchmarkEvaluate(b, 1) }
