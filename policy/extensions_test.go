package policy

import (
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
	// Metrics down: never to zero on an unknown signal.
	if d := at(11*time.Minute, observeQueue(1, 0), nil); d.DesiredReplicas != 1 {
		t.Fatalf("activation unreadable: desired %d, want 1\n%s", d.DesiredReplicas, d.Summary)
	}
	d := at(11*time.Minute, observeQueue(1, 0), f64(0))
	if d.DesiredReplicas != 0 || !strings.Contains(d.Summary, "scaling to zero") {
		t.Fatalf("idle for 11m: desired %d, want 0\n%s", d.DesiredReplicas, d.Summary)
	}
	zero := Observation{SpecReplicas: 0, Group: bigGroup}
	if d := at(12*time.Minute, zero, f64(0)); d.DesiredReplicas != 0 {
		t.Fatalf("at zero, no demand: desired %d", d.DesiredReplicas)
	}
	d = at(13*time.Minute, zero, f64(4))
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
