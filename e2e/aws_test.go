package e2e

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/llmscaler/llmscaler/internal/awsemu"
	"github.com/llmscaler/llmscaler/policy"
)

func (e *env) emuGroup() awsemu.GroupState {
	e.t.Helper()
	s, err := e.emu.State()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, g := range s.Groups {
		if g.Name == e.group {
			return g
		}
	}
	e.t.Fatalf("the emulator has no group %s", e.group)
	return awsemu.GroupState{}
}

func (e *env) emuTargets() []awsemu.TargetState {
	s, err := e.emu.State()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, tg := range s.TargetGroups {
		if tg.Name == e.group {
			return tg.Targets
		}
	}
	return nil
}

func (e *env) callCount(action string) int {
	calls, err := e.emu.Calls(e.group)
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, c := range calls {
		if c.Action == action && c.Error == "" {
			n++
		}
	}
	return n
}

// scaleOutAndIn drives load up (three replicas) then down (one) and checks both sagas.
func (e *env) scaleOutAndIn() {
	e.setLoad(15)
	e.waitFor("three replicas on three nodes", 2*time.Minute, func() bool {
		s := e.status()
		return s.InProgress == nil && e.deploymentReplicas() == 3 && e.readyPods() == 3 && e.servingNodes() == 3
	})
	e.setLoad(5)
	e.waitFor("one replica on one node", 2*time.Minute, func() bool {
		s := e.status()
		return s.InProgress == nil && s.CurrentReplicas == 1 && len(e.groupNodes()) == 1
	})
	for _, a := range e.status().Actions {
		if a.Result != "succeeded" {
			e.t.Fatalf("action %s: %s %s", a.WorkflowID, a.Result, a.Error)
		}
	}
	g := e.emuGroup()
	live := 0
	for _, in := range g.Instances {
		if in.State == "InService" || in.State == "Pending" {
			live++
		}
	}
	if g.Desired != 1 || live != 1 {
		e.t.Fatalf("the Auto Scaling group ended at desired %d with %d live instances; want 1 and 1", g.Desired, live)
	}
	// Every launch was asked for: one at the start, and what each scale-out added (no retry launched twice).
	asked := 1
	for _, a := range e.status().Actions {
		if a.Kind == policy.ScaleOut {
			asked += int(a.ToNodes - a.FromNodes)
		}
	}
	if g.Launched != asked {
		e.t.Fatalf("%d instances were launched in all; the scale-outs asked for %d", g.Launched, asked)
	}
}

func TestAWSAutoScalingGroupSagasWithEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{nodes: 1, replicas: 1, aws: true})
	e.setLoad(5)
	e.startWorker()
	e.start()
	e.scaleOutAndIn()
	if n := e.callCount("TerminateInstanceInAutoScalingGroup"); n != 2 {
		t.Fatalf("%d instances terminated through the API, want 2", n)
	}
	e.exportActions("aws-endpoints")
}

// With the target group mode, new pods are registered and healthy before the scale-out ends, and a
// victim's pods are deregistered (and the deregistration delay waited) before it is drained.
func TestAWSAutoScalingGroupSagasWithTargetGroup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{nodes: 1, replicas: 1, aws: true, targetGroup: true})
	e.setLoad(5)
	e.startWorker()
	e.start()
	e.setLoad(10)
	e.waitFor("two replicas", 2*time.Minute, func() bool {
		a := lastAction(e.status())
		return a != nil && a.Kind == policy.ScaleOut && a.Result != "running"
	})
	if a := lastAction(e.status()); a.Result != "succeeded" {
		t.Fatalf("scale-out: %+v", *a)
	}
	healthy := 0
	for _, tg := range e.emuTargets() {
		if tg.State == "healthy" {
			healthy++
		}
	}
	if healthy != 2 {
		t.Fatalf("%d healthy targets after the scale-out, want 2: %+v", healthy, e.emuTargets())
	}
	e.setLoad(5)
	e.waitFor("the scale-in", 2*time.Minute, func() bool {
		a := lastAction(e.status())
		return a != nil && a.Kind == policy.ScaleIn && a.Result != "running"
	})
	a := lastAction(e.status())
	if a.Result != "succeeded" {
		t.Fatalf("scale-in: %+v", *a)
	}
	// The saga's steps, in order: out of the load balancer before the drain.
	var order []string
	it := e.tc.GetWorkflowHistory(context.Background(), a.WorkflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if attrs := ev.GetActivityTaskScheduledEventAttributes(); attrs != nil {
			order = append(order, attrs.GetActivityType().GetName())
		}
	}
	want := "CheckRemovable,PodTargets,DeregisterTargets,Cordon,DrainNode,TerminateNode"
	if strings.Join(order, ",") != want {
		t.Fatalf("scale-in steps %v, want %s", order, want)
	}
	e.waitFor("the victim's target to finish draining", 30*time.Second, func() bool {
		healthy := 0
		for _, tg := range e.emuTargets() {
			if tg.State != "healthy" {
				return false
			}
			healthy++
		}
		return healthy == 1
	})
	e.exportActions("aws-target-group")
}

// With 30% of calls throttled or failing with 5xx, every saga completes and the group ends at exactly the
// intended size.
func TestAWSSagasCompleteWithThrottlingAndServerErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{nodes: 1, replicas: 1, aws: true})
	if err := e.emu.AddFault(awsemu.Fault{Match: e.group, ThrottleRate: 0.15, ServerErrorRate: 0.15}); err != nil {
		t.Fatal(err)
	}
	e.setLoad(5)
	e.startWorker()
	e.start()
	e.scaleOutAndIn()
	calls, err := e.emu.Calls(e.group)
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, c := range calls {
		if c.Error == "Throttling" || c.Error == "ServiceUnavailable" {
			failed++
		}
	}
	if failed == 0 || failed*10 < len(calls) {
		t.Fatalf("only %d of %d calls failed: the faults were not in force", failed, len(calls))
	}
	t.Logf("%d of %d AWS calls were throttled or failed with 503; every saga completed", failed, len(calls))
}

// With no capacity for the instance type, the scale-out stops, gives back the size it asked for, and the
// history says why, with the AWS error code.
func TestAWSCapacityErrorStopsAndCompensatesTheScaleOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{nodes: 1, replicas: 1, aws: true})
	if err := e.emu.AddFault(awsemu.Fault{Match: e.group, CapacityFailures: 1000}); err != nil {
		t.Fatal(err)
	}
	e.setLoad(15)
	e.startWorker()
	e.start()
	e.waitFor("the scale-out to fail", 2*time.Minute, func() bool {
		a := lastAction(e.status())
		return a != nil && a.Kind == policy.ScaleOut && a.Result != "running"
	})
	a := lastAction(e.status())
	if a.Result != "failed" || !strings.Contains(a.Error, "CapacityUnavailable") || !strings.Contains(a.Error, "InsufficientInstanceCapacity") ||
		!strings.Contains(a.Error, "group set back to 1") {
		t.Fatalf("scale-out record: %+v", *a)
	}
	if g := e.emuGroup(); g.Desired != 1 || g.Launched != 1 {
		t.Fatalf("after the compensation the group is at desired %d with %d launched; want 1 and 1", g.Desired, g.Launched)
	}
	if r := e.deploymentReplicas(); r != 1 {
		t.Fatalf("%d replicas, want 1", r)
	}
	e.exportActions("aws-capacity")
}

// The worker killed between SetDesiredCapacity and the node joining, then restarted: no second instance.
func TestAWSWorkerKilledBeforeTheNodeJoinsLaunchesNoSecondInstance(t *testing.T) {
	t.Parallel()
	// New instances boot for 8 s, so the kill lands before the node joins.
	e := newEnv(t, envOptions{nodes: 1, replicas: 1, aws: true, bootDelay: 8 * time.Second})
	cfg := e.workerConfig()
	first := e.startWorkerProcess(cfg, "worker-1.log")
	e.setLoad(10) // two replicas: one more node
	e.start()
	e.waitFor("SetDesiredCapacity", time.Minute, func() bool { return e.callCount("SetDesiredCapacity") > 0 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	g := e.emuGroup()
	if len(e.groupNodes()) != 1 {
		t.Fatalf("the new node joined before the kill (instances %+v): the test did not test the window", g.Instances)
	}
	t.Logf("worker killed after SetDesiredCapacity, before the node joined; instances: %+v", g.Instances)
	time.Sleep(2 * time.Second)
	e.startWorkerProcess(cfg, "worker-2.log")
	e.waitFor("the scale-out to finish on the new worker", 2*time.Minute, func() bool {
		a := lastAction(e.status())
		return a != nil && a.Kind == policy.ScaleOut && a.Result != "running"
	})
	if a := lastAction(e.status()); a.Result != "succeeded" {
		t.Fatalf("scale-out after the restart: %+v", *a)
	}
	g = e.emuGroup()
	if g.Desired != 2 || g.Launched != 2 || len(g.Instances) != 2 {
		t.Fatalf("group desired %d, launched %d, instances %d; want 2, 2, 2 (no second launch)", g.Desired, g.Launched, len(g.Instances))
	}
}

// A protected instance, or a group at its minimum, is never drained.
func TestAWSProtectedInstanceOrGroupAtMinimumIsNeverDrained(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{nodes: 3, replicas: 3, aws: true, minNodes: 2})
	asg, _ := e.awsClients()
	// Protect every instance but one: with the minimum at 2, no node may go.
	g := e.emuGroup()
	var protect []string
	for _, in := range g.Instances[1:] {
		protect = append(protect, in.ID)
	}
	if _, err := asg.SetInstanceProtection(context.Background(), &autoscaling.SetInstanceProtectionInput{
		AutoScalingGroupName: aws.String(e.group), InstanceIds: protect, ProtectedFromScaleIn: aws.Bool(true),
	}); err != nil {
		t.Fatal(err)
	}
	e.setLoad(5) // one replica would do
	e.startWorker()
	e.start()
	e.waitFor("the replicas to come down", 2*time.Minute, func() bool {
		s := e.status()
		return s.InProgress == nil && s.CurrentReplicas == 1
	})
	// Another minute of evaluations: still no drain.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range e.groupNodes() {
			if n.Spec.Unschedulable {
				t.Fatalf("node %s was cordoned", n.Name)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if n := e.callCount("TerminateInstanceInAutoScalingGroup"); n > 1 {
		t.Fatalf("%d instances terminated; at most the unprotected one above the minimum may go", n)
	}
	if n := len(e.groupNodes()); n < 2 {
		t.Fatalf("%d nodes left, below the group's minimum 2", n)
	}
	for _, a := range e.status().Actions {
		if a.Result == "failed" {
			t.Fatalf("action failed: %+v", a)
		}
	}
	for _, n := range e.groupNodes() {
		for _, id := range protect {
			if strings.HasSuffix(n.Spec.ProviderID, id) && n.Spec.Unschedulable {
				t.Fatalf("protected instance %s was cordoned", id)
			}
		}
	}
}
