package policy

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPanicModeOrdersAtOnceAndHoldsScaleDown(t *testing.T) {
	spec := queueSpec(1, 100, &Behavior{ScaleDown: &ScalingRules{StabilizationWindowSeconds: i32(0)}})
	spec.Panic = &PanicSpec{Threshold: 2, Hold: Duration(time.Minute)}
	var st State

	// A burst: 4 ready replicas, load for 20. Without panic the default policy allows max(4+4, 8) = 8.
	obs := observeQueue(4, 20)
	d := Evaluate(Input{Spec: spec, Observation: obs}, &st, t0)
	if !d.Panic || d.DesiredReplicas != 20 {
		t.Fatalf("burst: panic=%v desired=%d, want panic and 20\n%s", d.Panic, d.DesiredReplicas, d.Summary)
	}
	st.RecordScale(4, 20, t0)

	// The burst ends 30s later: panic holds the count.
	obs = observeQueue(20, 5)
	d = Evaluate(Input{Spec: spec, Observation: obs}, &st, t0.Add(30*time.Second))
	if d.DesiredReplicas != 20 || !hasLimit(d, LimitPanicHold) {
		t.Fatalf("inside the hold: desired %d, want 20 held by panic\n%s", d.DesiredReplicas, d.Summary)
	}
	// After the hold, scale-down resumes.
	d = Evaluate(Input{Spec: spec, Observation: obs}, &st, t0.Add(61*time.Second))
	if d.Panic || d.DesiredReplicas != 5 {
		t.Fatalf("after the hold: panic=%v desired=%d, want no panic and 5\n%s", d.Panic, d.DesiredReplicas, d.Summary)
	}
}

func TestPanicModeIsOptIn(t *testing.T) {
	var st State
	d := Evaluate(Input{Spec: queueSpec(1, 100, nil), Observation: observeQueue(4, 20)}, &st, t0)
	if d.Panic || d.DesiredReplicas != 8 {
		t.Fatalf("without panic mode: panic=%v desired=%d, want the policy's 8", d.Panic, d.DesiredReplicas)
	}
}

func TestScaleToZeroAfterIdleAndWakeOnActivation(t *testing.T) {
	spec := queueSpec(1, 10, &Behavior{ScaleDown: &ScalingRules{StabilizationWindowSeconds: i32(0)}})
	spec.ScaleToZero = &ScaleToZeroSpec{Idle: Duration(10 * time.Minute), Activation: MetricIdentifier{Name: "gateway_queue"}}
	var st State
	at := func(d time.Duration, obs Observation, activation *float64) Decision {
		obs.Activation = activation
		return Evaluate(Input{Spec: spec, Observation: obs}, &st, t0.Add(d))
	}
	// Busy, then quiet: min replicas hold until the idle period has passed.
	if d := at(0, observeQueue(2, 2), f64(3)); d.DesiredReplicas != 2 {
		t.Fatalf("busy: %d", d.DesiredReplicas)
	}
	if d := at(5*time.Minute, observeQueue(2, 0), f64(0)); d.DesiredReplicas != 1 {
		t.Fatalf("quiet for 5m: desired %d, want minReplicas 1\n%s", d.DesiredReplicas, d.Summary)
	}
	// Metrics down: never to zero on an unknown signal, and the idle period starts again after it (a
	// stretch of failed readings under load, then one reading 0, went straight to zero).
	if d := at(8*time.Minute, observeQueue(1, 0), nil); d.DesiredReplicas != 1 {
		t.Fatalf("activation unreadable: desired %d, want 1\n%s", d.DesiredReplicas, d.Summary)
	}
	if d := at(11*time.Minute, observeQueue(1, 0), f64(0)); d.DesiredReplicas != 1 {
		t.Fatalf("quiet for 3m since the unreadable signal: desired %d, want 1\n%s", d.DesiredReplicas, d.Summary)
	}
	d := at(18*time.Minute, observeQueue(1, 0), f64(0))
	if d.DesiredReplicas != 0 || !strings.Contains(d.Summary, "scaling to zero") {
		t.Fatalf("idle for 10m: desired %d, want 0\n%s", d.DesiredReplicas, d.Summary)
	}
	zero := Observation{SpecReplicas: 0, Group: bigGroup}
	if d := at(19*time.Minute, zero, f64(0)); d.DesiredReplicas != 0 {
		t.Fatalf("at zero, no demand: desired %d", d.DesiredReplicas)
	}
	d = at(20*time.Minute, zero, f64(4))
	if d.DesiredReplicas != 1 || !strings.Contains(d.Summary, "woken from zero") {
		t.Fatalf("at zero with demand: desired %d, want 1\n%s", d.DesiredReplicas, d.Summary)
	}
}

func TestWakingFromZeroSizesByExternalMetrics(t *testing.T) {
	spec := Spec{MinReplicas: 1, MaxReplicas: 10, Metrics: []MetricSpec{external("gateway_queue", AverageValueTarget, 5)},
		ScaleToZero: &ScaleToZeroSpec{Activation: MetricIdentifier{Name: "gateway_queue"}}}
	var st State
	obs := Observation{SpecReplicas: 0, Activation: f64(22), Metrics: []MetricReading{{Name: "gateway_queue", Value: f64(22)}}, Group: bigGroup}
	if d := Evaluate(Input{Spec: spec, Observation: obs}, &st, t0); d.DesiredReplicas != 5 {
		t.Fatalf("desired %d, want ceil(22/5) = 5\n%s", d.DesiredReplicas, d.Summary)
	}
}

func TestZeroReplicasWithoutScaleToZeroDisablesAutoscaling(t *testing.T) {
	d := evalOnce(queueSpec(1, 10, nil), Observation{SpecReplicas: 0})
	if d.DesiredReplicas != 0 || !hasLimit(d, LimitDisabled) {
		t.Fatalf("desired %d limits %+v, want 0 and autoscaling-disabled", d.DesiredReplicas, d.Limits)
	}
}

func TestCapacityOnItsWayPreventsCascadingScaleOuts(t *testing.T) {
	// A sustained surge during a three-minute GPU boot: the first tick orders a scale-out to 8; every later
	// tick sees the same load on the same 4 ready pods, and must not order more than the 8 on their way.
	spec := queueSpec(1, 100, nil)
	group := NodeGroup{Name: "gpu-pool", Min: 0, Max: 20, Desired: 4, GPUsPerNode: 1}
	var st State
	var inProgress *Action
	actions := 0
	for tick := range 12 { // 3 minutes of 15 s ticks
		now := t0.Add(time.Duration(tick) * 15 * time.Second)
		obs := observeQueue(4, 8)
		obs.Group = group
		obs.Nodes = servingNodes(4)
		obs.InProgress = inProgress
		d := Evaluate(Input{Spec: spec, Observation: obs}, &st, now)
		if d.Action == ScaleOut {
			actions++
			inProgress = &Action{Kind: ScaleOut, TargetReplicas: d.DesiredReplicas, TargetNodes: d.Nodes.Target, Started: now}
			st.RecordScale(d.CommittedReplicas, d.DesiredReplicas, now)
			group.Desired = d.Nodes.Target
		}
		if tick > 0 && d.ComingReplicas != 4 {
			t.Fatalf("tick %d: %d replicas on their way, want 4\n%s", tick, d.ComingReplicas, d.Summary)
		}
	}
	if actions != 1 {
		t.Fatalf("%d scale-outs during one boot, want 1", actions)
	}
}

func servingNodes(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{Name: readyPods(n)[i].Node, InstanceID: "i-" + string(rune('a'+i)), Ready: true, GPUsAllocatable: 1}
	}
	return nodes
}

func TestNodePlanAddsNodesForGPUs(t *testing.T) {
	spec := queueSpec(1, 100, nil)
	spec.GPUsPerPod = 2
	obs := observeQueue(4, 8)
	// 4 GPUs per node, 2 per pod: 2 replicas per node. 8 replicas need 4 nodes; 2 are requested.
	obs.Group = NodeGroup{Name: "gpu-pool", Min: 1, Max: 10, Desired: 2, GPUsPerNode: 4}
	d := evalOnce(spec, obs)
	if d.DesiredReplicas != 8 || d.Nodes.Needed != 4 || d.Nodes.Add != 2 || d.Action != ScaleOut {
		t.Fatalf("plan %+v desired %d action %s, want 8 replicas on 4 nodes, add 2", d.Nodes, d.DesiredReplicas, d.Action)
	}
}

func TestNodeGroupMaxBoundsReplicas(t *testing.T) {
	obs := observeQueue(4, 8)
	obs.Group = NodeGroup{Name: "gpu-pool", Min: 1, Max: 6, Desired: 4, GPUsPerNode: 1}
	d := evalOnce(queueSpec(1, 100, nil), obs)
	if d.DesiredReplicas != 6 || !hasLimit(d, LimitNodeGroupMax) {
		t.Fatalf("desired %d limits %+v, want 6 bounded by the group", d.DesiredReplicas, d.Limits)
	}
}

func TestScaleInPicksEmptyThenLeastBusyNeverProtectedNorBelowGroupMin(t *testing.T) {
	spec := queueSpec(1, 100, &Behavior{ScaleDown: &ScalingRules{StabilizationWindowSeconds: i32(0)}})
	pods := readyPods(4) // model-i on node-i
	nodes := servingNodes(4)
	nodes = append(nodes, Node{Name: "node-empty", InstanceID: "i-e", Ready: true, GPUsAllocatable: 1})
	nodes[0].Protected = true
	// Queue (busy) per pod: node-0 idle but protected; node-1 busiest; node-2 and node-3 light.
	obs := Observation{SpecReplicas: 4, Pods: pods, Nodes: nodes,
		Metrics: []MetricReading{{Name: "queue", Pods: samples(pods, 0, 9, 2, 1)}},
		Group:   NodeGroup{Name: "gpu-pool", Min: 2, Max: 10, Desired: 5, GPUsPerNode: 1}}
	// Average 3 vs target 10: ceil(0.3 x 4) = 2 replicas. 5 nodes requested, 2 needed.
	d := evalOnce(spec, obs)
	if d.DesiredReplicas != 2 || d.Action != ScaleIn {
		t.Fatalf("desired %d action %s\n%s", d.DesiredReplicas, d.Action, d.Summary)
	}
	var got []string
	for _, v := range d.Nodes.Victims {
		got = append(got, v.Node)
	}
	if strings.Join(got, ",") != "node-empty,node-3,node-2" {
		t.Fatalf("victims %v, want the empty node, then node-3 (1 in flight), then node-2 (2)", got)
	}
	if len(d.Nodes.VictimPods) != 0 {
		t.Errorf("extra victim pods %v", d.Nodes.VictimPods)
	}

	// A group minimum of 4 allows removing only the empty node; the pods come off alone.
	obs.Group.Min = 4
	d = evalOnce(spec, obs)
	if len(d.Nodes.Victims) != 1 || d.Nodes.Victims[0].Node != "node-empty" || len(d.Nodes.VictimPods) != 2 {
		t.Fatalf("with group min 4: victims %+v pods %v, want only node-empty and 2 single pods", d.Nodes.Victims, d.Nodes.VictimPods)
	}
}

func TestAScaleInThatCannotFreeANodeTakesPodsFromTheNodeWithFewest(t *testing.T) {
	// Three 4-GPU nodes hold 4, 3 and 2 replicas; one replica comes off and no node can go whole. It comes
	// off node-c, the node with fewest, though its pods are the busiest: node-c empties over the next
	// scale-ins and goes, where the least busy pod of any node would leave all three partly used. A
	// protected node cannot go: with node-c protected the pod comes off node-b.
	pods := readyPods(9)
	for i, node := range []string{"node-a", "node-a", "node-a", "node-a", "node-b", "node-b", "node-b", "node-c", "node-c"} {
		pods[i].Node = node
	}
	nodes := []Node{{Name: "node-a", Ready: true, GPUsAllocatable: 4}, {Name: "node-b", Ready: true, GPUsAllocatable: 4},
		{Name: "node-c", Ready: true, GPUsAllocatable: 4}}
	obs := Observation{SpecReplicas: 9, Pods: pods, Nodes: nodes,
		Metrics: []MetricReading{{Name: "queue", Pods: samples(pods, 1, 1, 1, 1, 2, 2, 2, 6, 5)}},
		Group:   NodeGroup{Name: "gpu-pool", Max: 10, Desired: 3, GPUsPerNode: 4}}
	spec := queueSpec(1, 100, nil)
	victims, rest := chooseVictims(spec, obs, 1, 1)
	if len(victims) != 0 || len(rest) != 1 || rest[0] != "model-8" {
		t.Fatalf("victims %+v, pods %v: want model-8, the less busy of node-c's", victims, rest)
	}
	obs.Nodes[2].Protected = true
	if _, rest = chooseVictims(spec, obs, 1, 1); len(rest) != 1 || rest[0] != "model-4" {
		t.Fatalf("node-c protected: pods %v, want model-4 of node-b", rest)
	}
	// Two idle nodes alike, 3 replicas each, two to come off: both from one node, not one from each.
	idle := readyPods(6)
	for i := range idle {
		idle[i].Node = []string{"node-a", "node-b"}[i%2]
	}
	obs = Observation{SpecReplicas: 6, Pods: idle, Nodes: nodes[:2], Metrics: []MetricReading{{Name: "queue", Pods: samples(idle, 0, 0, 0, 0, 0, 0)}},
		Group: NodeGroup{Name: "gpu-pool", Max: 10, Desired: 2, GPUsPerNode: 4}}
	if _, rest = chooseVictims(spec, obs, 2, 0); len(rest) != 2 || rest[0] != "model-0" || rest[1] != "model-2" {
		t.Fatalf("idle nodes alike: pods %v, want model-0 and model-2, both of node-a", rest)
	}
}

func TestOverrides(t *testing.T) {
	obs := observeQueue(4, 8)
	var st State
	d := Evaluate(Input{Spec: queueSpec(1, 100, nil), Observation: obs, Overrides: Overrides{Paused: true, PauseReason: "maintenance"}}, &st, t0)
	if d.DesiredReplicas != 4 || d.Action != NoAction || !strings.Contains(d.Summary, "paused by an operator: maintenance") {
		t.Fatalf("paused: desired %d action %q\n%s", d.DesiredReplicas, d.Action, d.Summary)
	}
	pin := int32(6)
	d = Evaluate(Input{Spec: queueSpec(1, 100, nil), Observation: obs, Overrides: Overrides{Pinned: &pin, PinnedUntil: t0.Add(time.Hour)}}, &st, t0)
	if d.DesiredReplicas != 6 || !hasLimit(d, LimitPinned) {
		t.Fatalf("pinned: desired %d\n%s", d.DesiredReplicas, d.Summary)
	}
	d = Evaluate(Input{Spec: queueSpec(1, 100, nil), Observation: obs, Overrides: Overrides{Pinned: &pin, PinnedUntil: t0.Add(-time.Second)}}, &st, t0)
	if hasLimit(d, LimitPinned) {
		t.Fatalf("an expired pin still applies\n%s", d.Summary)
	}
}

func demandSpec(lead time.Duration) Spec {
	return Spec{MinReplicas: 1, MaxReplicas: 50, Metrics: []MetricSpec{{Type: DemandMetric, Demand: &DemandSource{
		Arrivals: MetricIdentifier{Name: "arrivals", Query: "q"}, ServiceTimeSeconds: 7, Backlog: &MetricIdentifier{Name: "backlog", Query: "q"},
		Concurrency: 16, LeadTime: Duration(lead)}}}}
}

func demandObs(current int32, arrivals, backlog float64) Observation {
	o := Observation{SpecReplicas: current, Pods: readyPods(int(current)), Group: bigGroup}
	o.Metrics = []MetricReading{{Name: "demand", Demand: &DemandReading{Arrivals: arrivals, Backlog: &backlog}}}
	return o
}

func TestDemandSizesByLittlesLawAndSpreadsTheBacklogOverTheLeadTime(t *testing.T) {
	var st State
	// 10 req/s x 7 s = 70 busy slots; at 16 x 0.8 = 12.8 per replica: 5.47 -> 6.
	d := Evaluate(Input{Spec: demandSpec(3 * time.Minute), Observation: demandObs(6, 10, 0)}, &st, t0)
	if d.DesiredReplicas != 6 || d.Metrics[0].WithinTolerance {
		t.Fatalf("steady demand: desired %d\n%s", d.DesiredReplicas, d.Summary)
	}
	// No tolerance band: 7 replicas for 5.47 replicas' worth (ratio 0.78) drop to 6, and 5 (ratio 1.09,
	// inside the HPA's 10%) rise to 6.
	for _, current := range []int32{7, 5} {
		var st State
		if d := Evaluate(Input{Spec: demandSpec(3 * time.Minute), Observation: demandObs(current, 10, 0)}, &st, t0); d.Proposal != 6 {
			t.Fatalf("from %d: proposal %d, want 6\n%s", current, d.Proposal, d.Summary)
		}
	}
	// A backlog of 900 after a burst: a queue-length HPA would order ceil(900/4 per pod) replicas. Spread
	// over a 3-minute lead time it is 900 x 7 / 180 = 35 more busy slots: (70 + 35) / 12.8 -> 9.
	var st2 State
	d = Evaluate(Input{Spec: demandSpec(3 * time.Minute), Observation: demandObs(6, 10, 900)}, &st2, t0)
	if d.DesiredReplicas != 9 {
		t.Fatalf("with a backlog: desired %d, want 9\n%s", d.DesiredReplicas, d.Summary)
	}
	if !strings.Contains(d.Metrics[0].Note, "busy slots") {
		t.Fatalf("the note does not explain the demand: %q", d.Metrics[0].Note)
	}
}

// After a step the queue goes on growing until new capacity serves: the capacity ordered must drain the
// backlog it will meet, not the one of the order's time.
func TestTheBacklogIsSizedAsNewCapacityWillMeetIt(t *testing.T) {
	spec := demandSpec(4 * time.Minute)
	// 6 ready replicas serve 6 x 16 / 7 = 13.7 req/s of 25: 11.3 req/s more pile up for the 240 s lead
	// time, 2,709 on the 800 waiting. 25 x 7 + 3,509 x 7 / 240 = 277 busy slots at 12.8 -> 22 (16 for the
	// 800 alone).
	var st State
	d := Evaluate(Input{Spec: spec, Observation: demandObs(6, 25, 800)}, &st, t0)
	if d.Proposal != 22 || !strings.Contains(d.Metrics[0].Note, "by the time new capacity serves") {
		t.Fatalf("a growing backlog: proposal %d, want 22\n%s", d.Proposal, d.Summary)
	}
	// With 10 more replicas on their way for 3 minutes, the queue grows for one more minute only (16 serve
	// 36.6 req/s): 677 more, 25 x 7 + 1,477 x 7 / 240 = 218 busy slots -> 18.
	o := demandObs(16, 25, 800)
	for i := 6; i < 16; i++ {
		o.Pods[i].Phase, o.Pods[i].Ready = PodPending, false
	}
	var st2 State
	d = Evaluate(Input{Spec: spec, Observation: o, Waiting: Duration(3 * time.Minute)}, &st2, t0)
	if d.Proposal != 18 {
		t.Fatalf("capacity on its way: proposal %d, want 18\n%s", d.Proposal, d.Summary)
	}
	// No queue, no growth: arrivals the ready replicas could not serve would have queued. 175 / 12.8 -> 14.
	var st3 State
	if d = Evaluate(Input{Spec: spec, Observation: demandObs(6, 25, 0)}, &st3, t0); d.Proposal != 14 {
		t.Fatalf("no backlog: proposal %d, want 14\n%s", d.Proposal, d.Summary)
	}
}

// A step is read by the backlog before the rate's window: replicas serving full batches leave the rest
// waiting, so the arrivals are at least what they serve plus how fast the backlog grows.
func TestTheBacklogsGrowthReadsArrivalsTheRateWindowHasNotYet(t *testing.T) {
	spec := demandSpec(4 * time.Minute)
	interval := Duration(15 * time.Second)
	at := t0.Add(15 * time.Second)
	// 6 ready replicas serve 6 x 16 / 7 = 13.7 req/s at full batches; the backlog grew 200 in 15 s, 13.3 a
	// second: 27 req/s arrive, where the rate's window reads 15 so far. 27 x 7 + (300 + 13.3 x 240) x 7 /
	// 240 = 291 busy slots at 12.8 -> 23.
	var st State
	Evaluate(Input{Spec: spec, Observation: demandObs(6, 12, 100), EvaluationInterval: interval}, &st, t0)
	d := Evaluate(Input{Spec: spec, Observation: demandObs(6, 15, 300), EvaluationInterval: interval}, &st, at)
	if d.Proposal != 23 || !strings.Contains(d.Metrics[0].Note, "the backlog grows 13.333 a second") {
		t.Fatalf("a growing backlog on saturated replicas: proposal %d, want 23\n%s", d.Proposal, d.Summary)
	}
	// The rate read alone: 15 x 7 + (300 + 1.3 x 240) x 7 / 240 = 123 busy slots -> 10.
	for _, c := range []struct {
		why      string
		last     BacklogReading
		arrivals float64
		want     int32
	}{
		{"replicas became ready between the readings", BacklogReading{Waiting: 100, Ready: 5, Time: t0}, 15, 10},
		{"the backlog fell", BacklogReading{Waiting: 500, Ready: 6, Time: t0}, 15, 10},
		{"the last reading is older than two intervals", BacklogReading{Waiting: 100, Ready: 6, Time: t0.Add(-time.Minute)}, 15, 10},
		// 13 x 7 + 300 x 7 / 240 = 100 busy slots -> 8.
		{"the rate read is below the replicas' full batches", BacklogReading{Waiting: 100, Ready: 6, Time: t0}, 13, 8},
	} {
		st := State{LastBacklog: &c.last}
		if d := Evaluate(Input{Spec: spec, Observation: demandObs(6, c.arrivals, 300), EvaluationInterval: interval}, &st, at); d.Proposal != c.want {
			t.Errorf("%s: proposal %d, want %d\n%s", c.why, d.Proposal, c.want, d.Summary)
		}
	}
}

func TestDemandUsesTheMeasuredLeadTimeAndHoldsCapacityThroughTheCycle(t *testing.T) {
	spec := demandSpec(0) // lead time: measured
	lead := Duration(90 * time.Second)
	var st State
	d := Evaluate(Input{Spec: spec, Observation: demandObs(6, 10, 900), LeadTime: lead}, &st, t0)
	// 900 x 7 / 90 = 70 more slots: (70 + 70) / 12.8 -> 11.
	if d.DesiredReplicas != 11 {
		t.Fatalf("with a 90 s lead time: desired %d, want 11\n%s", d.DesiredReplicas, d.Summary)
	}
	st.RecordScale(6, 11, t0)
	// Once the backlog has drained, its drain is not held: the arrivals' 6 are.
	d = Evaluate(Input{Spec: spec, Observation: demandObs(11, 10, 0), LeadTime: lead}, &st, t0.Add(100*time.Second))
	if d.DesiredReplicas != 6 {
		t.Fatalf("100 s after, the backlog drained: desired %d, want the arrivals' 6\n%s", d.DesiredReplicas, d.Summary)
	}

	// 20 req/s x 7 s = 140 busy slots -> 11. Demand drops: held for twice the lead time (180 s) or the
	// scale-down window (the HPA's 300 s), whichever is longer, then released.
	var st2 State
	Evaluate(Input{Spec: spec, Observation: demandObs(11, 20, 0), LeadTime: lead}, &st2, t0)
	d = Evaluate(Input{Spec: spec, Observation: demandObs(11, 3, 0), LeadTime: lead}, &st2, t0.Add(100*time.Second))
	if d.DesiredReplicas != 11 || !hasLimit(d, LimitStabilization) {
		t.Fatalf("100 s after the peak: desired %d, want 11 held\n%s", d.DesiredReplicas, d.Summary)
	}
	d = Evaluate(Input{Spec: spec, Observation: demandObs(11, 3, 0), LeadTime: lead}, &st2, t0.Add(310*time.Second))
	if d.DesiredReplicas != 2 {
		t.Fatalf("310 s after the peak: desired %d, want 2\n%s", d.DesiredReplicas, d.Summary)
	}
	// With a short scale-down window, the hold of twice the lead time governs.
	short := demandSpec(0)
	zero := int32(0)
	short.Behavior = &Behavior{ScaleDown: &ScalingRules{StabilizationWindowSeconds: &zero}}
	var st3 State
	Evaluate(Input{Spec: short, Observation: demandObs(11, 20, 0), LeadTime: lead}, &st3, t0)
	if d = Evaluate(Input{Spec: short, Observation: demandObs(11, 3, 0), LeadTime: lead}, &st3, t0.Add(170*time.Second)); d.DesiredReplicas != 11 {
		t.Fatalf("170 s after, window 0: desired %d, want 11 held by the 180 s hold\n%s", d.DesiredReplicas, d.Summary)
	}
	if d = Evaluate(Input{Spec: short, Observation: demandObs(11, 3, 0), LeadTime: lead}, &st3, t0.Add(190*time.Second)); d.DesiredReplicas != 2 {
		t.Fatalf("190 s after, window 0: desired %d, want 2\n%s", d.DesiredReplicas, d.Summary)
	}
}

func TestErlangCMatchesKnownValues(t *testing.T) {
	// M/M/1: C = rho. M/M/2 with a = 1: C = 1/3.
	if c := erlangC(1, 0.5); math.Abs(c-0.5) > 1e-9 {
		t.Fatalf("C(1, 0.5) = %v, want 0.5", c)
	}
	if c := erlangC(2, 1); math.Abs(c-1.0/3) > 1e-9 {
		t.Fatalf("C(2, 1) = %v, want 1/3", c)
	}
}

func TestDemandSLOSizesForTheQueueingDelayTarget(t *testing.T) {
	spec := demandSpec(time.Minute)
	spec.Metrics[0].Demand.SLO = &QueueSLO{QueueDelay: Duration(time.Second), Attainment: 0.99}
	var st State
	// 12 req/s x 7 s = 84 busy slots: 6.6 replicas at 80%; a 1 s queueing target for 99% needs more.
	d := Evaluate(Input{Spec: spec, Observation: demandObs(7, 12, 0)}, &st, t0)
	if d.DesiredReplicas <= 7 || d.DesiredReplicas > 10 || !strings.Contains(d.Metrics[0].Note, "queueing delay within 1s for 99% of requests") {
		t.Fatalf("desired %d; want 8-10 for the SLO\n%s\n%s", d.DesiredReplicas, d.Summary, d.Metrics[0].Note)
	}
	// The sizing meets the model's own target and one fewer does not.
	n := int(d.DesiredReplicas)
	miss := func(n int) float64 {
		lambda, mu := 12/float64(n), 1/7.0
		return erlangC(16, lambda/mu) * math.Exp(-(16*mu-lambda)*1)
	}
	if miss(n) > 0.01 || miss(n-1) <= 0.01 {
		t.Fatalf("%d replicas miss %.4f, %d miss %.4f", n, miss(n), n-1, miss(n-1))
	}
}

func TestLeastRequestBalancingPoolsTheReplicasForTheSLO(t *testing.T) {
	// 40 req/s x 9.6 s = 384 busy slots of 16 per replica: at least 24 replicas to keep up.
	random := replicasForSLO(40, 9.6, 16, 1, 0.01, false)
	pooled := replicasForSLO(40, 9.6, 16, 1, 0.01, true)
	if pooled < 25 || pooled >= random {
		t.Fatalf("pooled %d, random %d: want 25 <= pooled < random", pooled, random)
	}
	// The pooled sizing meets the target and one replica fewer does not.
	miss := func(n int) float64 {
		c, mu := float64(16*n), 1/9.6
		return erlangC(16*n, 40/mu) * math.Exp(-(c*mu-40)*1)
	}
	if n := int(pooled); miss(n) > 0.01 || miss(n-1) <= 0.01 {
		t.Fatalf("%d replicas miss %.4f, %d miss %.4f", n, miss(n), n-1, miss(n-1))
	}
	spec := demandSpec(time.Minute)
	spec.Metrics[0].Demand.SLO = &QueueSLO{QueueDelay: Duration(time.Second), LoadBalancing: LeastRequestBalancing}
	var st State
	d := Evaluate(Input{Spec: spec, Observation: demandObs(7, 12, 0)}, &st, t0)
	if !strings.Contains(d.Metrics[0].Note, "least-request") && d.DesiredReplicas > 7 {
		t.Fatalf("the record does not name the pooled model:\n%s", d.Metrics[0].Note)
	}
}

func TestDemandOrdersForTheDemandAtTheEndOfTheLeadTimeOnARamp(t *testing.T) {
	lead := 3 * time.Minute
	var ramp, flat State
	var d, f Decision
	// Eight minutes of readings every 15 s: a ramp of 1 req/s per minute (with a little noise), and a flat
	// load with the same noise.
	for i := range 32 {
		now := t0.Add(time.Duration(i) * 15 * time.Second)
		noise := 0.3 * float64(i%3-1)
		d = Evaluate(Input{Spec: demandSpec(lead), Observation: demandObs(8, 10+float64(i)/4+noise, 0)}, &ramp, now)
		f = Evaluate(Input{Spec: demandSpec(lead), Observation: demandObs(8, 10+noise, 0)}, &flat, now)
	}
	// The ramp reads 17.75 req/s now and rises 3 more over the lead time: (17.75 + ~3) x 7 / 12.8 -> 12.
	if !strings.Contains(d.Metrics[0].Note, "rising") || d.Proposal < 12 {
		t.Fatalf("ramp: proposal %d\n%s", d.Proposal, d.Metrics[0].Note)
	}
	if strings.Contains(f.Metrics[0].Note, "rising") || f.Proposal != 6 {
		t.Fatalf("flat: proposal %d\n%s", f.Proposal, f.Metrics[0].Note)
	}
}

func TestAStepIsNotProjectedAsARamp(t *testing.T) {
	// 10 req/s for eight minutes, then 14 (too small a step to be taken for a burst), read through a
	// 1-minute rate: the readings climb over the minute after the step, and a line over the last two lead
	// times through them is steep beyond doubt. A level shift explains them: no rise is projected, and the
	// order is for the new level, 14 x 7 / 12.8 = 7.66 -> 8.
	var st State
	current := int32(6)
	step := 8 * time.Minute
	explained := false
	for at := time.Duration(0); at <= step+3*time.Minute; at += 15 * time.Second {
		rate := 10 + 4*min(max((at-step).Minutes(), 0), 1) + 0.3*float64(int(at/(15*time.Second))%3-1)
		d := Evaluate(Input{Spec: demandSpec(3 * time.Minute), Observation: demandObs(current, rate, 0)}, &st, t0.Add(at))
		if strings.Contains(d.Metrics[0].Note, "rising") || d.Proposal > 8 {
			t.Fatalf("at %s a step was projected as a ramp: proposal %d\n%s", at, d.Proposal, d.Metrics[0].Note)
		}
		// The record says why the rise the readings show was not projected.
		explained = explained || strings.Contains(d.Metrics[0].Note, "(no rise projected: a step read through the arrivals' rate window")
		current = d.DesiredReplicas
	}
	if current != 8 || !explained {
		t.Fatalf("after the step: %d replicas, want 8; the record said why nothing was projected: %v", current, explained)
	}
}

// bursts evaluates a Demand spec every 15 s for the given time, the arrival rate from rate(t).
func bursts(st *State, spec Spec, from, to time.Duration, rate func(time.Duration) float64, current *int32) Decision {
	return run(st, spec, from, to, current, func(at time.Duration, current int32) Observation { return demandObs(current, rate(at), 0) })
}

// burstsEvery20Minutes is 2 req/s with bursts of 20 req/s for 4 minutes every 20 minutes (from minute 10).
func burstsEvery20Minutes(at time.Duration) float64 {
	if at%(20*time.Minute) >= 10*time.Minute && at%(20*time.Minute) < 14*time.Minute {
		return 20
	}
	return 2
}

func TestDemandNeitherExtrapolatesABurstNorMissesTheNextOfRecurringBursts(t *testing.T) {
	// 2 req/s, with bursts of 20 req/s for 4 minutes every 20 minutes; lead time 3 minutes.
	rate := burstsEvery20Minutes
	spec := demandSpec(3 * time.Minute)
	var st State
	current := int32(2)
	d := bursts(&st, spec, 0, 11*time.Minute, rate, &current)
	// 20 req/s x 7 s / 12.8 -> 11: sized for the burst's level, not for its slope.
	if strings.Contains(d.Metrics[0].Note, "rising") || d.Proposal != 11 {
		t.Fatalf("a minute into the first burst: proposal %d\n%s", d.Proposal, d.Metrics[0].Note)
	}
	// Once the readings rise beyond doubt, the record says why nothing is projected.
	if d = bursts(&st, spec, 11*time.Minute, 12*time.Minute, rate, &current); !strings.Contains(d.Metrics[0].Note, "(no rise projected: a burst began 1m45s ago") {
		t.Fatalf("two minutes into the first burst:\n%s", d.Metrics[0].Note)
	}
	// After the first burst the hold (twice the lead time) ends, but a scale-in keeps room for the rise
	// seen: 14 busy slots now and the burst's rise of 126 over a lead time, at 16 a replica, keep 9 (the
	// next burst of a cycle then finds them).
	if d = bursts(&st, spec, 12*time.Minute, 26*time.Minute, rate, &current); d.DesiredReplicas != 9 || !hasLimit(d, LimitRiseHeadroom) {
		t.Fatalf("12 minutes after the first burst: %d replicas\n%s", d.DesiredReplicas, d.Summary)
	}
	// The second burst makes a cycle of 20 minutes, but one gap does not make it regular: the holds stay,
	// and the second burst's capacity is kept for the third.
	if d = bursts(&st, spec, 26*time.Minute, 39*time.Minute+30*time.Second, rate, &current); d.DesiredReplicas < 9 {
		t.Fatalf("5.5 minutes after the second burst: %d replicas\n%s", d.DesiredReplicas, d.Summary)
	}
	// The third burst (at 50 minutes) makes two gaps that agree. Between bursts capacity goes once the
	// spec's own window (the HPA's 300 s) is over: the cycle's forecast, not the demand hold of twice the
	// lead time (6 min), brings it back for the next burst, and one cycle ago the next 4.5 minutes were quiet.
	if d = bursts(&st, spec, 39*time.Minute+30*time.Second, 59*time.Minute+30*time.Second, rate, &current); d.DesiredReplicas > 2 {
		t.Fatalf("5.5 minutes after the third burst: %d replicas\n%s", d.DesiredReplicas, d.Summary)
	}
	if d = bursts(&st, spec, 59*time.Minute+30*time.Second, 62*time.Minute, rate, &current); d.DesiredReplicas > 2 {
		t.Fatalf("8 minutes after the third burst: %d replicas\n%s", d.DesiredReplicas, d.Summary)
	}
	// It comes back ahead of the fourth burst (at 70 minutes): 4.5 minutes ahead, one cycle ago, was a burst.
	// A cycle this regular is a season of the minute levels too (policy/season.go), whose forecast asks for
	// the same 11 by then.
	if d = bursts(&st, spec, 62*time.Minute, 67*time.Minute, rate, &current); d.DesiredReplicas != 11 || !forecastsTheCycle(d, 20) ||
		burstCycleForecast(&st, 67*time.Minute-15*time.Second, 3*time.Minute) != 11 {
		t.Fatalf("3 minutes before the fourth burst: %d replicas (the burst cycle alone %d)\n%s", d.DesiredReplicas,
			burstCycleForecast(&st, 67*time.Minute-15*time.Second, 3*time.Minute), d.Summary)
	}
	// When the bursts stop, two cycles after the last one nothing is forecast.
	if d = bursts(&st, spec, 67*time.Minute, 130*time.Minute, func(time.Duration) float64 { return 2 }, &current); d.DesiredReplicas > 2 {
		t.Fatalf("long after the last burst: %d replicas\n%s", d.DesiredReplicas, d.Summary)
	}
}

// burstsAtIrregularTimes is 2 req/s with bursts for 4 minutes at minutes 10, 35, 64 and 90 (gaps of 25, 29
// and 26 minutes), of 20 req/s but the second's 30.
func burstsAtIrregularTimes(at time.Duration) float64 {
	for _, start := range []time.Duration{10, 35, 64, 90} {
		if at >= start*time.Minute && at < (start+4)*time.Minute {
			if start == 35 {
				return 30
			}
			return 20
		}
	}
	return 2
}

func TestBurstsAtIrregularTimesKeepTheHighestBurstsCapacity(t *testing.T) {
	// Gaps of 25 to 29 minutes: the bursts recur, but 4 minutes apart, more than a forecast's spare of half
	// a lead time. The next may come as soon as any gap seen and be as high as any burst seen: the forecast
	// keeps the highest burst of the last hour, as a static size would, where a regular cycle's capacity
	// goes between bursts (above).
	spec := demandSpec(3 * time.Minute)
	var st State
	current := int32(2)
	d := bursts(&st, spec, 0, 88*time.Minute, burstsAtIrregularTimes, &current)
	c := st.cycle(t0.Add(88 * time.Minute))
	if c.gaps != 2 || c.shortest > 25*time.Minute+30*time.Second || c.longest < 28*time.Minute+30*time.Second || c.regular(3*time.Minute) {
		t.Fatalf("cycle %+v from burst starts %v", c, st.BurstStarts)
	}
	// 24 minutes after the third burst's start, the second's 30 req/s x 7 s / 12.8 -> 17.
	if d.DesiredReplicas != 17 || !strings.Contains(d.Summary, "at irregular times") {
		t.Fatalf("before the fourth burst: %d replicas\n%s", d.DesiredReplicas, d.Summary)
	}
	// Once the second burst is more than an hour old, the others' 11.
	d = bursts(&st, spec, 88*time.Minute, 104*time.Minute, burstsAtIrregularTimes, &current)
	if d.DesiredReplicas != 11 || !hasLimit(d, LimitBurstCycle) {
		t.Fatalf("14 minutes after the fourth burst: %d replicas\n%s", d.DesiredReplicas, d.Summary)
	}
}

func TestTheBurstThatMakesTheCycleKnownFindsItsForecast(t *testing.T) {
	// The second burst (at 30 minutes) makes the cycle known, and from then on the scale-in's holds give way
	// to the cycle's forecast: it must be there at once. The first burst's recommendations are kept after it
	// (they went with the stabilization window, the forecast was empty at the second burst, and a scale-in
	// came as it rose).
	spec := demandSpec(3 * time.Minute)
	var st State
	current := int32(2)
	bursts(&st, spec, 0, 30*time.Minute+30*time.Second, burstsEvery20Minutes, &current)
	now := t0.Add(30*time.Minute + 30*time.Second)
	cycle := st.cycle(now)
	if cycle.shortest != 20*time.Minute || cycle.spread() != 0 {
		t.Fatalf("cycle %s after the second burst's start, burst starts %v", cycle, st.BurstStarts)
	}
	if want := st.cycleForecast(cycle.forecastWindow(now, 3*time.Minute)); want != 11 {
		t.Fatalf("the forecast at the second burst: %d, want the first burst's 11", want)
	}
}

func TestMeasuredLeadTimeIsTheMedianOfRecentScaleOuts(t *testing.T) {
	if d := MeasuredLeadTime(nil); d != 0 {
		t.Fatalf("no scale-out: %s", d)
	}
	got := MeasuredLeadTime([]time.Duration{200 * time.Second, 20 * time.Minute, 220 * time.Second})
	if got != Duration(220*time.Second) {
		t.Fatalf("median %s, want 3m40s: one slow launch must not set it", got)
	}
}

func TestTheLeadTimeIsAtLeastHowLongCapacityHasWaited(t *testing.T) {
	// Capacity ordered 6 minutes ago is not serving yet: the lead time is at least 6 minutes, whether the
	// 4-minute prior or a 3m40s measurement said less. A shorter wait changes nothing; a lead time the spec
	// sets is the lead time.
	spec := demandSpec(0)
	for _, c := range []struct {
		measured, waiting time.Duration
		want              time.Duration
	}{
		{0, 6 * time.Minute, 6 * time.Minute},
		{220 * time.Second, 6 * time.Minute, 6 * time.Minute},
		{220 * time.Second, time.Minute, 220 * time.Second},
		{0, time.Minute, DefaultLeadTime},
	} {
		if got := leadTime(spec, Duration(c.measured), Duration(c.waiting)); got != c.want {
			t.Errorf("measured %s, waiting %s: lead time %s, want %s", c.measured, c.waiting, got, c.want)
		}
	}
	if got := leadTime(demandSpec(3*time.Minute), 0, Duration(6*time.Minute)); got != 3*time.Minute {
		t.Errorf("the spec's 3m: %s", got)
	}
	var st State
	d := Evaluate(Input{Spec: spec, Observation: demandObs(6, 10, 0), Waiting: Duration(6 * time.Minute)}, &st, t0)
	if !strings.Contains(d.Summary, "over lead time 6m0s") {
		t.Errorf("the record does not show the lead time used: %s", d.Summary)
	}
}

func TestNoRampIsProjectedBeforeTheTrendsWindowHasFilled(t *testing.T) {
	// A ramp of 2 req/s a minute from an autoscaler's first evaluation, with a 3-minute lead time: beyond
	// doubt after a lead time of readings, but the trend is fitted over two, and a slope seen over less than
	// that (a load that rises as a trace, or an autoscaler, starts) is not projected until it has.
	var st State
	current := int32(12)
	spec := demandSpec(3 * time.Minute)
	firstProjected := time.Duration(-1)
	for at := time.Duration(0); at < 10*time.Minute; at += 15 * time.Second {
		d := Evaluate(Input{Spec: spec, Observation: demandObs(current, 20+2*at.Minutes(), 0)}, &st, t0.Add(at))
		if d.Metrics[0].Unprojected != nil && firstProjected < 0 {
			firstProjected = at
		}
		current = d.DesiredReplicas
	}
	if firstProjected < 6*time.Minute || firstProjected > 7*time.Minute {
		t.Fatalf("first projected at %s, want once two lead times (6m) have passed", firstProjected)
	}
}

func TestNextStepRunsOneActionAtATime(t *testing.T) {
	out := &Action{Kind: ScaleOut, TargetReplicas: 5, TargetNodes: 5}
	in := &Action{Kind: ScaleIn, TargetReplicas: 3, TargetNodes: 3}
	dec := func(action ActionKind, replicas, nodes int32) Decision {
		return Decision{Action: action, DesiredReplicas: replicas, Nodes: NodePlan{Target: nodes, Requested: 4}}
	}
	for _, c := range []struct {
		name    string
		running *Action
		d       Decision
		want    Step
	}{
		{"idle, no change", nil, dec(NoAction, 4, 4), Step{}},
		{"idle, scale out", nil, dec(ScaleOut, 6, 6), Step{Kind: StepStart, Replicas: 6, Nodes: 6}},
		{"idle, scale in", nil, dec(ScaleIn, 2, 2), Step{Kind: StepStart, Replicas: 2, Nodes: 2}},
		{"idle, replicas up but the group already larger", nil, dec(ScaleOut, 5, 3), Step{Kind: StepStart, Replicas: 5, Nodes: 4}},
		{"scale-out under way, more wanted", out, dec(ScaleOut, 7, 7), Step{Kind: StepRaise, Replicas: 7, Nodes: 7}},
		{"scale-out under way, fewer wanted: it finishes", out, dec(ScaleIn, 3, 3), Step{}},
		{"scale-out under way, nodes only", out, dec(ScaleOut, 5, 6), Step{Kind: StepRaise, Replicas: 5, Nodes: 6}},
		{"scale-in under way, load returns", in, dec(ScaleOut, 4, 4), Step{Kind: StepCancel}},
		{"scale-in under way, still falling", in, dec(ScaleIn, 2, 2), Step{}},
	} {
		if got := NextStep(c.running, c.d); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// run evaluates a Demand spec every 15 s from `from` to `to`, the readings from obs(t), carrying the
// desired count into the next evaluation as the Deployment would.
func run(st *State, spec Spec, from, to time.Duration, current *int32, obs func(at time.Duration, current int32) Observation) Decision {
	var d Decision
	for at := from; at < to; at += 15 * time.Second {
		d = Evaluate(Input{Spec: spec, Observation: obs(at, *current)}, st, t0.Add(at))
		*current = d.DesiredReplicas
	}
	return d
}

func TestDemandTrendFollowsBusySlotsNotTheArrivalRate(t *testing.T) {
	// Requests come faster but shorter (as on the Azure conversation trace): 10 -> 20 req/s over eight
	// minutes while the service time falls from 8 s to 4 s. The slots they hold stay at 80: no ramp.
	var st State
	current := int32(7)
	d := run(&st, demandSpec(3*time.Minute), 0, 8*time.Minute, &current, func(at time.Duration, current int32) Observation {
		arrivals := 10 + 10*at.Minutes()/8
		service := 80 / arrivals
		o := demandObs(current, arrivals, 0)
		o.Metrics[0].Demand.ServiceTime = &service
		return o
	})
	if strings.Contains(d.Metrics[0].Note, "rising") || d.Proposal != 7 {
		t.Fatalf("faster, shorter requests: proposal %d\n%s", d.Proposal, d.Metrics[0].Note)
	}
}

func TestDemandProjectsNoTrendFromLessThanALeadTimeOfReadings(t *testing.T) {
	// A ramp seen for two minutes (eight readings): too short to extrapolate over three minutes.
	var st State
	current := int32(6)
	d := run(&st, demandSpec(3*time.Minute), 0, 2*time.Minute, &current, func(at time.Duration, current int32) Observation {
		return demandObs(current, 10+1.5*at.Minutes(), 0)
	})
	if strings.Contains(d.Metrics[0].Note, "rising") {
		t.Fatalf("two minutes of readings projected a trend over three:\n%s", d.Metrics[0].Note)
	}
}

func TestDemandTrendIgnoresSlowWanderingNoise(t *testing.T) {
	// A flat load read through a 1-minute rate every 15 s wanders slowly (each reading shares three
	// quarters of its samples with the last): a 5-minute wave of +-1.5 req/s around 15. Taken as
	// independent readings, its rising half looks like a ramp; it is not one.
	var st State
	current := int32(9)
	spec := demandSpec(3 * time.Minute)
	for at := time.Duration(0); at < 30*time.Minute; at += 15 * time.Second {
		d := Evaluate(Input{Spec: spec, Observation: demandObs(current, 15+1.5*math.Sin(2*math.Pi*at.Minutes()/5), 0)}, &st, t0.Add(at))
		if strings.Contains(d.Metrics[0].Note, "rising") {
			t.Fatalf("at %s a wave was projected as a ramp:\n%s", at, d.Metrics[0].Note)
		}
		current = d.DesiredReplicas
	}
}

func TestDemandHoldsTheDemandSeenNotTheProjection(t *testing.T) {
	// A ramp of 1 req/s per minute for eight minutes orders for the demand a lead time ahead; then the load
	// stays flat. A projection is held for a lead time (until the time it was made for), the demand seen for
	// the whole hold (six minutes): the replicas the projection ordered are not kept through the hold.
	lead := 3 * time.Minute
	spec := demandSpec(lead)
	rate := func(at time.Duration) float64 { return 10 + min(at, 8*time.Minute).Minutes() }
	obs := func(at time.Duration, current int32) Observation { return demandObs(current, rate(at), 0) }
	var st State
	current := int32(6)
	peak, lastProjected := int32(0), time.Duration(0)
	for at := time.Duration(0); at < 13*time.Minute; at += 15 * time.Second {
		d := Evaluate(Input{Spec: spec, Observation: obs(at, current)}, &st, t0.Add(at))
		current = d.DesiredReplicas
		peak = max(peak, d.DesiredReplicas)
		if d.Metrics[0].Unprojected != nil {
			lastProjected = at
		}
	}
	// 18 req/s x 7 s / 12.8 = 9.84 -> 10 at the top of the ramp; the projection ordered more.
	if peak <= 10 {
		t.Fatalf("the ramp was not projected: peak %d", peak)
	}
	// The trend stays significant for a while after the ramp stops; a lead time after its last projection,
	// within the hold of the seen demand, the count is what the demand needs. Over four lead times the minute
	// levels still rise beyond doubt then, but the last two lead times' are flat, below that rise beyond
	// doubt: the ramp has ended, and the scale-in is not held for it (holdWhileDemandRises).
	d := run(&st, spec, 13*time.Minute, lastProjected+lead+30*time.Second, &current, obs)
	if d.DesiredReplicas != 10 {
		t.Fatalf("a lead time after the last projection (%s): %d replicas, want the 10 the demand needs\n%s", lastProjected, d.DesiredReplicas, d.Summary)
	}
}

func TestANoisyRampIsNotScaledDownOnEveryDipOfItsSlope(t *testing.T) {
	// A ramp of 1 req/s per minute from 20, read through a 1-minute rate (each reading shares three quarters
	// of its samples with the last, so the noise wanders by a few req/s): the projection comes and goes with
	// the noise. Had only the demand seen been held, each time it went the replicas it had ordered would go
	// too (27 scale-downs in these 30 minutes); the projection is held for a lead time.
	var st State
	current := int32(12)
	spec := demandSpec(4 * time.Minute)
	noise, downs := 0.0, 0
	rng := uint64(1)
	for at := time.Duration(0); at < 30*time.Minute; at += 15 * time.Second {
		rng = rng*6364136223846793005 + 1442695040888963407
		noise = 0.75*noise + 4*(float64(rng>>11)/float64(1<<53)-0.5)
		d := Evaluate(Input{Spec: spec, Observation: demandObs(current, 20+at.Minutes()+noise, 0)}, &st, t0.Add(at))
		if d.DesiredReplicas < current {
			downs++
		}
		current = d.DesiredReplicas
	}
	if downs > 2 {
		t.Fatalf("%d scale-downs on a rising ramp", downs)
	}
}

func TestABurstThatRisesInTwoStepsIsOneBurst(t *testing.T) {
	// 2 req/s, then 6 for half a minute (past twice the low), back to 3, then 20: one burst start, not a
	// cycle of a minute.
	var st State
	current := int32(2)
	run(&st, demandSpec(3*time.Minute), 0, 10*time.Minute, &current, func(at time.Duration, current int32) Observation {
		switch {
		case at >= 7*time.Minute:
			return demandObs(current, 20, 0)
		case at >= 6*time.Minute+30*time.Second:
			return demandObs(current, 3, 0)
		case at >= 6*time.Minute:
			return demandObs(current, 6, 0)
		}
		return demandObs(current, 2, 0)
	})
	if len(st.BurstStarts) != 1 {
		t.Fatalf("burst starts %v, want one", st.BurstStarts)
	}
}

func TestASteepRampIsARampNotABurst(t *testing.T) {
	// 4 req/s rising 2 req/s a minute: demand doubles within a lead time, yet over minutes, not in one
	// step. It is projected like any ramp, and no burst is recorded.
	var st State
	current := int32(3)
	d := run(&st, demandSpec(3*time.Minute), 0, 8*time.Minute, &current, func(at time.Duration, current int32) Observation {
		return demandObs(current, 4+2*at.Minutes(), 0)
	})
	if !strings.Contains(d.Metrics[0].Note, "rising") || len(st.BurstStarts) != 0 {
		t.Fatalf("a steep ramp: bursts %v\n%s", st.BurstStarts, d.Metrics[0].Note)
	}
}

func TestARampIsProjectedToWhenTheNextOrderCouldServe(t *testing.T) {
	// Busy slots rise 7 a minute (1 req/s a minute at 7 s). Capacity ordered now serves a lead time (3 min)
	// from now; the 1-minute rate describes the arrivals of 30 s ago; and what the next evaluation orders
	// serves 15 s after this: 7/60 x 225 s = 26.25 slots.
	var st State
	current := int32(6)
	spec := demandSpec(3 * time.Minute)
	var d Decision
	for at := time.Duration(0); at <= 6*time.Minute; at += 15 * time.Second {
		d = Evaluate(Input{Spec: spec, Observation: demandObs(current, 10+at.Minutes(), 0), EvaluationInterval: Duration(15 * time.Second)}, &st, t0.Add(at))
		current = d.DesiredReplicas
	}
	if !strings.Contains(d.Metrics[0].Note, "rising: +26.25 busy slots") {
		t.Fatalf("the projection is not over lead + half the rate window + the interval:\n%s", d.Metrics[0].Note)
	}
}

func TestRecommendationsOlderThanTheWindowsAreKeptOneAMinute(t *testing.T) {
	// Recurring bursts keep a cycle (20 minutes) of recommendations for the forecast once it is regular, and
	// those since the first burst before; past the windows one a minute, the highest, is kept: the state
	// every evaluation records stays small.
	rate := burstsEvery20Minutes
	spec := demandSpec(3 * time.Minute)
	var st State
	current := int32(2)
	bursts(&st, spec, 0, 47*time.Minute, rate, &current)
	// The scale-down window (the hold of 6 min) at 15 s: 24; 38 minutes back to a minute before the first
	// burst, the rest one a minute.
	if n := len(st.Recommendations); n > 24+33 {
		t.Fatalf("%d recommendations kept 37 minutes after the first burst", n)
	}
	bursts(&st, spec, 47*time.Minute, 67*time.Minute, rate, &current)
	if c := st.cycle(t0.Add(67 * time.Minute)); c.shortest != 20*time.Minute || !c.regular(3*time.Minute) {
		t.Fatalf("no cycle learned: %v", st.BurstStarts)
	}
	// The scale-down window (the HPA's 300 s) at 15 s: 20; the rest of the cycle: 15 minutes.
	if n := len(st.Recommendations); n > 20+15 {
		t.Fatalf("%d recommendations kept for a 20-minute cycle", n)
	}
	for i := 1; i < len(st.Recommendations); i++ {
		if !st.Recommendations[i].Time.After(st.Recommendations[i-1].Time) {
			t.Fatalf("recommendations out of order at %d", i)
		}
	}
}

func TestNoScaleInWhileMoreRequestsWaitThanReplicasServe(t *testing.T) {
	// 10 req/s x 7 s need 6 replicas of the 10 running, but 30 requests wait: the count stays while they do.
	spec := demandSpec(3 * time.Minute)
	var st State
	current := int32(10)
	d := run(&st, spec, 0, 10*time.Minute, &current, func(time.Duration, int32) Observation { return demandObs(current, 10, 30) })
	if d.DesiredReplicas != 10 || !hasLimit(d, LimitWaitingRequests) {
		t.Fatalf("30 requests waiting on 10 replicas: %d replicas\n%s", d.DesiredReplicas, d.Summary)
	}
	if !strings.Contains(d.Summary, "held at 10 by waiting requests: 30 wait") {
		t.Fatalf("the record does not say why: %s", d.Summary)
	}
	// A few waiting (no more than one per ready replica) is a busy pool's normal queue: the scale-in goes on.
	d = run(&st, spec, 10*time.Minute, 11*time.Minute, &current, func(time.Duration, int32) Observation { return demandObs(current, 10, 10) })
	if d.DesiredReplicas != 6 || hasLimit(d, LimitWaitingRequests) {
		t.Fatalf("10 requests waiting on 10 replicas: %d replicas\n%s", d.DesiredReplicas, d.Summary)
	}
}

func TestARiseFromATroughIsProjectedAtItsOwnSlope(t *testing.T) {
	// A sine of 10 +- 8 req/s every 30 minutes, lead time 3 minutes: at 25m45s it has risen from its trough
	// (22m30s) for three minutes, and will rise 4.8 req/s more over the next 3.5 (the lead time and half the
	// rate window): 34 busy slots at 7 s a request. The line through the last two lead times' readings, the
	// trough and the rise, is not beyond doubt until 26m30s, and nothing was projected before it; the line
	// since the turn is, a lead time's worth of readings sooner on a noisy load (see rampSinceTurn). The last
	// evaluation is at 25m45s.
	spec := demandSpec(3 * time.Minute)
	var st State
	current := int32(9)
	d := run(&st, spec, 0, 26*time.Minute, &current, func(at time.Duration, current int32) Observation {
		return demandObs(current, 10+8*math.Sin(2*math.Pi*at.Minutes()/30), 0)
	})
	note := d.Metrics[0].Note
	i := strings.Index(note, "rising: +")
	if i < 0 || !strings.Contains(note, "the slope since the readings turned to a rise at 12:2") {
		t.Fatalf("the rise from the trough was not projected from the turn:\n%s", note)
	}
	var rise float64
	if _, err := fmt.Sscanf(note[i+len("rising: +"):], "%g", &rise); err != nil || rise < 10 || rise > 34 {
		t.Fatalf("projected rise %.1f busy slots, want a part of the 34 to come\n%s", rise, note)
	}
}

func TestARampThatAcceleratesIsProjectedAtItsRecentSlope(t *testing.T) {
	// 10 + m²/2 req/s at minute m (a daily cycle's foot), lead time 4 minutes. At minute 8 the slope over the
	// last two lead times is the slope at minute 4 (4 req/s a minute); the last lead time's is the slope at
	// minute 6 (6 req/s a minute), nearer the 8 of now. The rise is projected over 4.5 minutes (the lead
	// time and half the rate window): x 7 s a request, 6 req/s a minute makes 189 busy slots, 4 would make 126.
	spec := demandSpec(4 * time.Minute)
	var st State
	current := int32(2)
	d := run(&st, spec, 0, 8*time.Minute+15*time.Second, &current, func(at time.Duration, current int32) Observation {
		return demandObs(current, 10+at.Minutes()*at.Minutes()/2, 0)
	})
	var rise float64
	if _, err := fmt.Sscanf(d.Metrics[0].Note[strings.Index(d.Metrics[0].Note, "rising: +")+len("rising: +"):], "%g", &rise); err != nil {
		t.Fatalf("no rise projected: %v\n%s", err, d.Metrics[0].Note)
	}
	if rise < 170 || rise > 210 {
		t.Fatalf("projected rise %.1f busy slots, want about 189 (the last lead time's slope)\n%s", rise, d.Metrics[0].Note)
	}
	// A straight ramp of 4 req/s a minute, with noise of up to 5 req/s: the last lead time's slope is not
	// steeper beyond doubt, and the two-lead-time slope is projected (4 x 7 x 4.5 = 126 busy slots, give or
	// take the noise's effect on the fit: 117 here). Merely steeper, as it is here by chance, would project
	// 148.
	st = State{}
	rng := uint64(2)
	d = run(&st, spec, 0, 8*time.Minute+15*time.Second, &current, func(at time.Duration, current int32) Observation {
		rng = rng*6364136223846793005 + 1442695040888963407
		return demandObs(current, 10+4*at.Minutes()+10*(float64(rng>>11)/float64(1<<53)-0.5), 0)
	})
	note := d.Metrics[0].Note
	if _, err := fmt.Sscanf(note[strings.Index(note, "rising: +")+len("rising: +"):], "%g", &rise); err != nil {
		t.Fatalf("no rise projected on a straight ramp: %v\n%s", err, note)
	}
	if rise < 110 || rise > 142 {
		t.Fatalf("projected rise %.1f busy slots on a straight ramp, want about 126 (its slope)\n%s", rise, note)
	}
}

func TestABurstCycleForecastsTheArrivalsNotTheBacklogOfALateBurst(t *testing.T) {
	// The second burst (minutes 30 to 34) is served late: 1,800 requests wait through it, and draining them
	// over the 3-minute lead time takes 70 busy slots more (17 replicas, not 11). The third burst, ordered
	// ahead of time, meets no backlog: the forecast asks for the 11 its arrivals need.
	spec := demandSpec(3 * time.Minute)
	var st State
	current := int32(2)
	d := run(&st, spec, 0, 47*time.Minute, &current, func(at time.Duration, current int32) Observation {
		backlog := 0.0
		if at >= 30*time.Minute && at < 34*time.Minute {
			backlog = 1800
		}
		return demandObs(current, burstsEvery20Minutes(at), backlog)
	})
	if alone := burstCycleForecast(&st, 47*time.Minute-15*time.Second, 3*time.Minute); d.DesiredReplicas != 11 || !forecastsTheCycle(d, 20) || alone != 11 {
		t.Fatalf("3 minutes before the third burst: %d replicas (the burst cycle alone %d), want the 11 of its arrivals\n%s", d.DesiredReplicas, alone, d.Summary)
	}
}

// forecastsTheCycle says whether the decision's count comes from a forecast of a cycle of that many
// minutes: the burst cycle's, or the season's (a regular burst cycle is a season of the minute levels
// too, and either orders the next burst's capacity ahead of it).
func forecastsTheCycle(d Decision, minutes int) bool {
	return hasLimit(d, LimitBurstCycle) || strings.Contains(d.Metrics[0].Note, fmt.Sprintf("forecast: the load repeats every %d minutes", minutes))
}

// burstCycleForecast is the replicas the burst cycle alone asks for at `at` (0 when no cycle is known),
// whichever forecast the decision took: with a season found as well, the burst cycle's is not in the
// record, and this keeps it tested.
func burstCycleForecast(st *State, at time.Duration, lead time.Duration) int32 {
	now := t0.Add(at)
	c := st.cycle(now)
	if !c.known() {
		return 0
	}
	return st.cycleForecast(c.forecastWindow(now, lead))
}

func TestAScaleInKeepsRoomForTheRisesOfTheLastHour(t *testing.T) {
	// A load that jumps from 8 to 14 req/s for five minutes in every ten: a rise of 42 busy slots (6 req/s x
	// 7 s) within a 3-minute lead time, in three windows of ten. After it settles at 8 for ten minutes, past
	// the hold, the proposal is 5 (56 slots at 12.8 a replica), but a scale-in keeps room for the rise:
	// (56 + 42) / 16 -> 7.
	spec := demandSpec(3 * time.Minute)
	var st State
	current := int32(7)
	jumpy := func(at time.Duration, current int32) Observation {
		if at < 40*time.Minute && at%(10*time.Minute) >= 5*time.Minute {
			return demandObs(current, 14, 0)
		}
		return demandObs(current, 8, 0)
	}
	d := run(&st, spec, 0, 50*time.Minute, &current, jumpy)
	if d.Proposal != 5 || d.DesiredReplicas != 7 || !hasLimit(d, LimitRiseHeadroom) {
		t.Fatalf("after the jumps: proposal %d, %d replicas\n%s", d.Proposal, d.DesiredReplicas, d.Summary)
	}
	if !strings.Contains(d.Summary, "held at 7 by rises seen: 56 busy slots (the highest of the last 3 minutes) + 42 (the rise within 3 "+
		"minutes, the lead time rounded up, that one window in 10 of the last 49 minutes exceeded) need 7 replicas at their full 16 slots") {
		t.Fatalf("the record does not say why: %s", d.Summary)
	}
	// Once the older jumps are past the hour, the last one alone is fewer than a tenth of the windows: the
	// count is what the demand needs.
	if d = run(&st, spec, 50*time.Minute, 101*time.Minute, &current, jumpy); d.DesiredReplicas != 5 || hasLimit(d, LimitRiseHeadroom) {
		t.Fatalf("an hour later: %d replicas\n%s", d.DesiredReplicas, d.Summary)
	}

	// With a queueing SLO (1 s for 99% of requests, each replica a queue) the room kept is what the SLO needs
	// for those 98 slots (14 req/s): 11 replicas, as the proposal was during the jumps; at their full slots,
	// 7 would queue the next jump. At 8 req/s the SLO's proposal is 7.
	spec.Metrics[0].Demand.SLO = &QueueSLO{QueueDelay: Duration(time.Second)}
	st, current = State{}, 11
	d = run(&st, spec, 0, 50*time.Minute, &current, jumpy)
	if d.Proposal != 7 || d.DesiredReplicas != 11 || !strings.Contains(d.Summary, "need 11 replicas to keep the modelled queueing delay within 1s for 99% of requests") {
		t.Fatalf("after the jumps, with an SLO: proposal %d, %d replicas\n%s", d.Proposal, d.DesiredReplicas, d.Summary)
	}
}

func TestTheRiseSeenIsTheLastHoursRiseOverALeadTimeAtItsQuantile(t *testing.T) {
	var st State
	at := t0
	note := func(v float64) {
		st.noteDemandMinute(v, at)
		at = at.Add(time.Minute)
	}
	// A lead time is rounded up to whole minutes; fewer than ten rises over it are not read.
	for i := 0; i < 13; i++ {
		note(float64(i))
	}
	if r, level, _, ok := st.riseSeen(2*time.Minute+30*time.Second, 0.9); !ok || r != 3 || level != 12 {
		t.Fatalf("13 minutes rising 1 a minute, lead 2m30s: %v at %v (%v), want ten rises of 3 over 3 minutes at 12", r, level, ok)
	}
	if _, _, _, ok := st.riseSeen(4*time.Minute, 0.9); ok {
		t.Fatal("13 minutes, lead 4m: 9 rises, fewer than ten, read anyway")
	}
	// A skipped minute repeats the one before; a reading within the minute replaces its last.
	st = State{}
	at = t0
	note(10)
	at = at.Add(time.Minute) // minute 1 skipped
	note(30)
	st.noteDemandMinute(20, at.Add(-30*time.Second))
	if want := []float64{10, 10, 20}; !slices.Equal(st.DemandMinutes, want) {
		t.Fatalf("minutes %v, want %v", st.DemandMinutes, want)
	}
	// An hour is kept: rises of 0 but one of 50 in every twelve minutes over two hours; a rise over a minute.
	st = State{}
	at = t0
	v := 0.0
	for i := 0; i < 120; i++ {
		if i%12 == 11 {
			v += 50
		}
		note(v)
	}
	if len(st.DemandMinutes) != 61 {
		t.Fatalf("%d levels kept, want 61 (an hour of one-minute rises)", len(st.DemandMinutes))
	}
	// 60 rises over a minute, 5 of them 50: the 0.9 quantile (the 54th of 60) is 0, the 0.95 (the 57th) 50.
	if r, _, _, _ := st.riseSeen(time.Minute, 0.9); r != 0 {
		t.Fatalf("0.9 quantile %v, want 0", r)
	}
	if r, _, minutes, _ := st.riseSeen(time.Minute, 0.95); r != 50 || minutes != 60 {
		t.Fatalf("0.95 quantile %v over %d minutes, want 50 over 60", r, minutes)
	}
	// A rise is remembered for an hour after it ended: a step at minute 10, read at its highest (quantile 1).
	st = State{}
	at = t0
	for i := 0; i <= 70; i++ {
		v := 0.0
		if i >= 10 {
			v = 50
		}
		note(v)
		switch r, _, _, _ := st.riseSeen(time.Minute, 1); {
		case i >= 20 && i <= 69 && r != 50:
			t.Fatalf("minute %d: the step at minute 10 forgotten", i)
		case i == 70 && r != 0:
			t.Fatalf("minute 70: the step at minute 10 still seen (%v)", r)
		}
	}
	if r, _, _, _ := (State{DemandMinutes: []float64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 50}}).riseSeen(time.Minute, 0.95); r != 50 {
		t.Fatalf("0.95 quantile %v, want 50", r)
	}
	// A swing within the lead time: 10, 30, 10, 30, ... over a 2-minute lead time. Every window ends where
	// it began, but within it the demand rises 20; and the level is the swing's top, not a trough reading.
	st = State{DemandMinutes: []float64{10, 30, 10, 30, 10, 30, 10, 30, 10, 30, 10, 30, 10}}
	if r, level, _, _ := st.riseSeen(2*time.Minute, 0.9); r != 20 || level != 30 {
		t.Fatalf("a swing of 20 within the lead time: rise %v at level %v, want 20 at 30", r, level)
	}
}

func TestNotToZeroWhileARequestWaits(t *testing.T) {
	// Idle by its activation signal (a request rate, say), but one request waits for a batch slot: scaling
	// to zero would leave it to a cold start or drop it with its replica.
	spec := demandSpec(3 * time.Minute)
	spec.MinReplicas = 0
	spec.ScaleToZero = &ScaleToZeroSpec{Idle: Duration(5 * time.Minute), Activation: MetricIdentifier{Name: "requests"}}
	var st State
	current := int32(1)
	idle := func(backlog float64) func(time.Duration, int32) Observation {
		return func(_ time.Duration, current int32) Observation {
			o := demandObs(current, 0, backlog)
			o.Activation = f64(0)
			return o
		}
	}
	if d := run(&st, spec, 0, 10*time.Minute, &current, idle(1)); d.DesiredReplicas != 1 || hasLimit(d, LimitScaleToZero) {
		t.Fatalf("idle with a request waiting: %d replicas\n%s", d.DesiredReplicas, d.Summary)
	}
	if d := run(&st, spec, 10*time.Minute, 11*time.Minute, &current, idle(0)); d.DesiredReplicas != 0 {
		t.Fatalf("idle with none waiting: %d replicas\n%s", d.DesiredReplicas, d.Summary)
	}
}

func TestASetHoldIsKeptWhileBurstsRecur(t *testing.T) {
	// The same bursts as above, with the hold set to 8 minutes: once the cycle is known the default hold
	// gives way to the forecast, a hold the spec sets does not. 5.5 minutes after the second burst (at 34)
	// the replicas are still there.
	spec := demandSpec(3 * time.Minute)
	spec.Metrics[0].Demand.HoldFor = Duration(8 * time.Minute)
	var st State
	current := int32(2)
	if d := bursts(&st, spec, 0, 39*time.Minute+30*time.Second, burstsEvery20Minutes, &current); d.DesiredReplicas != 11 {
		t.Fatalf("5.5 minutes after the second burst with an 8-minute hold: %d replicas\n%s", d.DesiredReplicas, d.Summary)
	}
	if c := st.cycle(t0.Add(39 * time.Minute)); c.shortest != 20*time.Minute || c.spread() != 0 {
		t.Fatalf("no cycle learned: %v", st.BurstStarts)
	}
}

func TestOneReplicaMoreIsNotABurst(t *testing.T) {
	// A small deployment's noise: the demand for one replica, then for two, twice within the hour. Doubling,
	// but a step of one replica: no burst, so no cycle replaces the hold.
	var st State
	current := int32(1)
	run(&st, demandSpec(3*time.Minute), 0, 40*time.Minute, &current, func(at time.Duration, current int32) Observation {
		if at%(20*time.Minute) >= 10*time.Minute && at%(20*time.Minute) < 12*time.Minute {
			return demandObs(current, 3, 0) // 21 slots: 2 replicas
		}
		return demandObs(current, 1, 0) // 7 slots: 1 replica
	})
	if len(st.BurstStarts) != 0 {
		t.Fatalf("burst starts %v for steps of one replica", st.BurstStarts)
	}
}

func TestTheMinuteHistoryIgnoresAClockSetBackAndSharesNoArray(t *testing.T) {
	var st State
	for i := 0; i < 5; i++ {
		st.noteDemandMinute(float64(10*i), t0.Add(time.Duration(i)*time.Minute))
	}
	copied := st
	// A reading from minute 2 after minute 4: ignored, the last minute is still 4.
	st.noteDemandMinute(99, t0.Add(2*time.Minute))
	if !st.LastDemandMinute.Equal(t0.Add(4*time.Minute)) || st.DemandMinutes[4] != 40 {
		t.Fatalf("after a clock set back: last %s, levels %v", st.LastDemandMinute, st.DemandMinutes)
	}
	// A second reading in minute 4 replaces its level, and a new minute appends: the copy sees neither.
	st.noteDemandMinute(45, t0.Add(4*time.Minute+30*time.Second))
	st.noteDemandMinute(50, t0.Add(5*time.Minute))
	copied.noteDemandMinute(77, t0.Add(5*time.Minute))
	if want := []float64{0, 10, 20, 30, 45, 50}; !slices.Equal(st.DemandMinutes, want) {
		t.Fatalf("levels %v, want %v", st.DemandMinutes, want)
	}
	if want := []float64{0, 10, 20, 30, 40, 77}; !slices.Equal(copied.DemandMinutes, want) {
		t.Fatalf("the copy's levels %v, want %v", copied.DemandMinutes, want)
	}
}

func TestNoScaleInWhileTheDemandRisesBeyondDoubt(t *testing.T) {
	// A slow ramp, 0.3 req/s a minute from 20 (a replica's worth every 6 minutes), read through a 1-minute
	// rate whose noise hides it from the scale-out's trend over two lead times: the proposal dips below the
	// count now and then: without the guard 33 of those dips were taken for scale-ins over these eight runs
	// of an hour. Over four lead times of minute levels the rise is beyond doubt most of the time (7 left).
	downs, held := 0, 0
	for seed := uint64(1); seed <= 8; seed++ {
		var st State
		current := int32(12)
		spec := demandSpec(4 * time.Minute)
		noise, rng := 0.0, seed
		for at := time.Duration(0); at < 60*time.Minute; at += 15 * time.Second {
			rng = rng*6364136223846793005 + 1442695040888963407
			noise = 0.75*noise + 2*(float64(rng>>11)/float64(1<<53)-0.5)
			d := Evaluate(Input{Spec: spec, Observation: demandObs(current, 20+0.3*at.Minutes()+noise, 0)}, &st, t0.Add(at))
			if d.DesiredReplicas < current {
				downs++
				t.Logf("seed %d, %s: %s", seed, at, d.Summary)
			}
			for _, l := range d.Limits {
				if l.Kind == LimitRisingDemand {
					held++
					if !strings.Contains(d.Summary, "held at") || !strings.Contains(l.Detail, "demand rising: +") {
						t.Fatalf("the record does not say why: %s", d.Summary)
					}
				}
			}
			current = d.DesiredReplicas
		}
	}
	if downs > 10 || held == 0 {
		t.Fatalf("%d scale-ins on a rising ramp (the guard held %d times)", downs, held)
	}
}

func TestTheFirstRatesOfAServiceThatJustStartedAreNotABurst(t *testing.T) {
	// A service starts: its first rate reads a window of few requests (1 req/s) before the load's 8; then,
	// six minutes in, a real burst to 30 req/s. Only the real one is a burst start: the climb of the first
	// readings, taken for one, hid it (one burst is one start within two lead times).
	rate := func(at time.Duration) float64 {
		switch {
		case at < 15*time.Second:
			return 1
		case at >= 6*time.Minute && at < 10*time.Minute:
			return 30
		}
		return 8
	}
	var st State
	current := int32(5)
	bursts(&st, demandSpec(3*time.Minute), 0, 7*time.Minute, rate, &current)
	if len(st.BurstStarts) != 1 || !st.BurstStarts[0].Equal(t0.Add(6*time.Minute)) {
		t.Fatalf("burst starts %v, want the one at %s", st.BurstStarts, t0.Add(6*time.Minute))
	}
}

// keepAfterStopRun evaluates a Demand spec every 15 s from `from` to `to` at arrivals(t) req/s, carrying the
// count over, and returns every decision.
func keepAfterStopRun(st *State, spec Spec, from, to time.Duration, current *int32, arrivals func(time.Duration) float64) []Decision {
	var ds []Decision
	for at := from; at < to; at += 15 * time.Second {
		d := Evaluate(Input{Spec: spec, Observation: demandObs(*current, arrivals(at), 0)}, st, t0.Add(at))
		*current = d.DesiredReplicas
		ds = append(ds, d)
	}
	return ds
}

func TestAnAbruptStopKeepsTheCapacityForTheLoadsReturn(t *testing.T) {
	// 12 req/s x 7 s = 84 busy slots: 7 replicas at 12.8 a replica. The load stops at 20 minutes, past
	// the 6-minute hold.
	spec := demandSpec(3 * time.Minute)
	// The rate read over its one-minute window climbs back over a minute when the load returns.
	stopsAt20 := func(until time.Duration) func(time.Duration) float64 {
		return func(at time.Duration) float64 {
			switch {
			case at >= 20*time.Minute && at < until:
				return 0
			case at >= until:
				return 12 * min(1, (at-until).Minutes())
			}
			return 12
		}
	}
	var st State
	current := int32(7)
	ds := keepAfterStopRun(&st, spec, 0, 30*time.Minute, &current, stopsAt20(30*time.Minute))
	d := ds[len(ds)-1]
	if d.Proposal >= 7 || d.DesiredReplicas != 7 || !hasLimit(d, LimitLoadStopped) {
		t.Fatalf("ten minutes into the stop: proposal %d, %d replicas\n%s", d.Proposal, d.DesiredReplicas, d.Summary)
	}
	if want := "the load stopped abruptly at 12:20:00 (the demand seen fell to half or less within a quarter of a lead time): " +
		"the 7 replicas it had before are kept for its return until 12:50:00 (keepAfterStop 30m0s)"; !strings.Contains(d.Summary, want) {
		t.Fatalf("the record does not say why: %s", d.Summary)
	}
	// The load returns at 30 minutes; at 30:15 its rate reads a quarter of it (3 req/s: 2 replicas, two above
	// the stop's lowest): the stop is let go a rate window later, when the scale-down window holds the
	// return's own readings.
	ds = keepAfterStopRun(&st, spec, 30*time.Minute, 33*time.Minute, &current, stopsAt20(30*time.Minute))
	if d = ds[1]; d.Proposal != 2 || d.DesiredReplicas != 7 ||
		!strings.Contains(d.Summary, "it returned at 12:30:15, and they are kept until its readings fill the rate window (12:31:15)") {
		t.Fatalf("at the return: %d replicas\n%s", d.DesiredReplicas, d.Summary)
	}
	if d = ds[len(ds)-1]; d.DesiredReplicas != 7 || hasLimit(d, LimitLoadStopped) || st.Stop != nil {
		t.Fatalf("three minutes after the return: %d replicas, stop %+v\n%s", d.DesiredReplicas, st.Stop, d.Summary)
	}

	// A load that stays away is let go after keepAfterStop.
	st, current = State{}, 7
	ds = keepAfterStopRun(&st, spec, 0, 52*time.Minute, &current, stopsAt20(2*time.Hour))
	for _, d := range ds {
		if at := d.Time.Sub(t0); at < 50*time.Minute && d.DesiredReplicas != 7 {
			t.Fatalf("at %s: %d replicas\n%s", at, d.DesiredReplicas, d.Summary)
		}
	}
	if d = ds[len(ds)-1]; d.DesiredReplicas >= 7 || hasLimit(d, LimitLoadStopped) {
		t.Fatalf("32 minutes into the stop: %d replicas\n%s", d.DesiredReplicas, d.Summary)
	}

	// The deployment is kept as it was: a count above the load's need (here the 9 a new autoscaler holds
	// through its first window) is what the return finds.
	st, current = State{}, 9
	ds = keepAfterStopRun(&st, spec, 0, 15*time.Minute, &current, func(at time.Duration) float64 {
		if at >= 4*time.Minute {
			return 0
		}
		return 12
	})
	if d = ds[len(ds)-1]; d.DesiredReplicas != 9 || !hasLimit(d, LimitLoadStopped) || !strings.Contains(d.Summary, "the 9 replicas it had before") {
		t.Fatalf("eleven minutes into a stop at 9 replicas: %d\n%s", d.DesiredReplicas, d.Summary)
	}

	// keepAfterStop: 0s turns it off: the stop is scaled in after the hold.
	off := demandSpec(3 * time.Minute)
	off.Metrics[0].Demand.KeepAfterStop = new(Duration)
	st, current = State{}, 7
	ds = keepAfterStopRun(&st, off, 0, 30*time.Minute, &current, stopsAt20(time.Hour))
	if d = ds[len(ds)-1]; d.DesiredReplicas >= 7 || hasLimit(d, LimitLoadStopped) {
		t.Fatalf("with keepAfterStop 0s, ten minutes into the stop: %d replicas\n%s", d.DesiredReplicas, d.Summary)
	}
}

func TestTheEndOfABurstIsNotAStop(t *testing.T) {
	// 2 req/s with a burst to 14 for four minutes, shorter than the 6-minute hold: the burst's end is the
	// burst cycle's and the hold's concern, not a load that stopped.
	spec := demandSpec(3 * time.Minute)
	var st State
	current := int32(2)
	for _, d := range keepAfterStopRun(&st, spec, 0, 40*time.Minute, &current, func(at time.Duration) float64 {
		if at >= 15*time.Minute && at < 19*time.Minute {
			return 14
		}
		return 2
	}) {
		if hasLimit(d, LimitLoadStopped) {
			t.Fatalf("at %s: %s", d.Time.Sub(t0), d.Summary)
		}
	}
}

func TestBurstsShorterThanTheRateWindowAreSizedAtTheirPeak(t *testing.T) {
	// 13.3 req/s over the minute (10 req/s, and 30 for 10 s of it) x 7 s = 93 busy slots: 8 replicas at 12.8
	// a replica. The peak over 10 s, 30 req/s, brings 300 requests a window where a Poisson stream at 13.3
	// req/s brings 133 (sd 11.5): bursts, whose 210 busy slots need 14 replicas at full batches.
	spec := demandSpec(3 * time.Minute)
	spec.Metrics[0].Demand.PeakArrivals = &MetricIdentifier{Name: "peak", Query: "q"}
	obs := func(peak float64) Observation {
		o := demandObs(8, 13.3, 0)
		o.Metrics[0].Demand.PeakArrivals = &peak
		return o
	}
	var st State
	d := Evaluate(Input{Spec: spec, Observation: obs(30)}, &st, t0)
	if d.Proposal != 14 || !strings.Contains(d.Summary, "arrivals peak at 30 req/s over 10s, 300 a window where a Poisson stream "+
		"at 13.3 req/s (the highest rate read over the last minute) brings 133 (more than 6 standard deviations above): bursts the rate's window averages away, whose 210 busy slots need 14 replicas at full batches") {
		t.Fatalf("proposal %d\n%s", d.Proposal, d.Summary)
	}
	// A peak a Poisson stream brings (200 a window: 5.8 standard deviations above 133) is the SLO model's to
	// size for: the minute's mean.
	st = State{}
	if d = Evaluate(Input{Spec: spec, Observation: obs(20)}, &st, t0); d.Proposal != 8 || strings.Contains(d.Summary, "peak") {
		t.Fatalf("a Poisson peak: proposal %d\n%s", d.Proposal, d.Summary)
	}
	// Unread (not configured, or unreadable), nothing changes.
	st = State{}
	if d = Evaluate(Input{Spec: spec, Observation: demandObs(8, 13.3, 0)}, &st, t0); d.Proposal != 8 {
		t.Fatalf("no peak reading: proposal %d\n%s", d.Proposal, d.Summary)
	}
	// After a fall from 13.3 req/s to 4 within the minute, the peak is the fall's start, which the rate
	// read 30 s ago explains: not bursts (weighed against 4 req/s, it would hold 7 replicas, where 4 req/s
	// needs 3, for a load that has gone).
	st = State{}
	Evaluate(Input{Spec: spec, Observation: obs(14)}, &st, t0)
	fell := demandObs(8, 4, 0)
	peak := 14.0
	fell.Metrics[0].Demand.PeakArrivals = &peak
	if d = Evaluate(Input{Spec: spec, Observation: fell}, &st, t0.Add(30*time.Second)); strings.Contains(d.Summary, "arrivals peak") {
		t.Fatalf("a fall taken for bursts: proposal %d\n%s", d.Proposal, d.Summary)
	}
}

// An External metric with a Value target over a Deployment with no pods at all (their creation refused by
// a quota or an admission webhook) is invalid, as in the HPA, whose ready-pod count fails there: the ratio
// times no pods proposed 0, and the count went to minReplicas once the window had passed.
func TestAValueTargetWithNoPodsIsInvalid(t *testing.T) {
	spec := Spec{MinReplicas: 1, MaxReplicas: 10, Metrics: []MetricSpec{external("gateway_queue", ValueTarget, 10)},
		Behavior: &Behavior{ScaleDown: &ScalingRules{StabilizationWindowSeconds: i32(0)}}}
	var st State
	obs := Observation{SpecReplicas: 3, Metrics: []MetricReading{{Name: "gateway_queue", Value: f64(50)}}, Group: bigGroup}
	d := Evaluate(Input{Spec: spec, Observation: obs}, &st, t0)
	if d.DesiredReplicas != 3 || d.Metrics[0].Invalid == "" {
		t.Fatalf("desired %d (metric invalid: %q), want 3 kept with the metric invalid\n%s", d.DesiredReplicas, d.Metrics[0].Invalid, d.Summary)
	}
}

// A reading that is not a number makes its metric invalid (no scale-down on it); read as 0 it could drive
// one.
func TestAReadingThatIsNotANumberIsInvalid(t *testing.T) {
	spec := queueSpec(1, 10, &Behavior{ScaleDown: &ScalingRules{StabilizationWindowSeconds: i32(0)}})
	obs := observeQueue(4, 4)
	obs.Metrics[0].Pods[1].Value = math.NaN()
	var st State
	d := Evaluate(Input{Spec: spec, Observation: obs}, &st, t0)
	if d.DesiredReplicas != 4 || !strings.Contains(d.Metrics[0].Invalid, "is not a number") {
		t.Fatalf("desired %d (invalid %q), want 4 kept with the metric invalid", d.DesiredReplicas, d.Metrics[0].Invalid)
	}
	ext := Spec{MinReplicas: 1, MaxReplicas: 10, Metrics: []MetricSpec{external("gateway_queue", ValueTarget, 10)},
		Behavior: &Behavior{ScaleDown: &ScalingRules{StabilizationWindowSeconds: i32(0)}}}
	st = State{}
	d = Evaluate(Input{Spec: ext, Observation: Observation{SpecReplicas: 3, Pods: readyPods(3),
		Metrics: []MetricReading{{Name: "gateway_queue", Value: f64(math.Inf(1))}}, Group: bigGroup}}, &st, t0)
	if d.DesiredReplicas != 3 || !strings.Contains(d.Metrics[0].Invalid, "is not a number") {
		t.Fatalf("external +Inf: desired %d (invalid %q), want 3 kept", d.DesiredReplicas, d.Metrics[0].Invalid)
	}
}
