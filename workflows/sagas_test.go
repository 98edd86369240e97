package workflows_test

import (
	"context"
	"errors"
	"fmt"
	enumspb "go.temporal.io/api/enums/v1"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/llmscaler/llmscaler/activities"
	"github.com/llmscaler/llmscaler/policy"
	"github.com/llmscaler/llmscaler/traffic"
	"github.com/llmscaler/llmscaler/worker"
	"github.com/llmscaler/llmscaler/workflows"
)

var (
	nodes   *activities.Nodes
	cluster *activities.Cluster
	traf    *activities.Traffic
)

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	worker.Register(env, worker.Deps{})
	t.Cleanup(func() { env.AssertExpectations(t) })
	return env
}

var model = workflows.ModelRef{
	Namespace: "models", Name: "llm",
	Deployment:   activities.DeploymentRef{Namespace: "models", Name: "llm"},
	Group:        activities.NodeGroupRef{Provider: "kwok", Group: "gpu-pool"},
	LoadBalancer: workflows.LoadBalancerRef{Mode: "endpoints", Config: traffic.Config{Namespace: "models", Service: "llm"}},
}

func scaleOutInput() workflows.ScaleOutInput {
	return workflows.ScaleOutInput{Model: model, FromReplicas: 2, TargetReplicas: 4, FromNodes: 2, TargetNodes: 4,
		NodeReady: policy.Duration(10 * time.Minute), PodsReady: policy.Duration(10 * time.Minute), EndpointsReady: policy.Duration(time.Minute)}
}

func TestScaleOutAsksForAbsoluteSizesInOrder(t *testing.T) {
	env := newEnv(t)
	var order []string
	env.OnActivity(nodes.SetGroupSize, mock.Anything, activities.SetGroupSizeInput{Group: model.Group, Size: 4}).
		Run(func(mock.Arguments) { order = append(order, "nodes") }).Return(activities.SetGroupSizeResult{Previous: 2}, nil).Once()
	env.OnActivity(nodes.WaitNodesReady, mock.Anything, mock.MatchedBy(func(in activities.WaitNodesInput) bool { return in.Want == 4 })).
		Run(func(mock.Arguments) { order = append(order, "wait-nodes") }).Return(activities.WaitNodesResult{}, nil).Once()
	env.OnActivity(cluster.ScaleDeployment, mock.Anything, activities.ScaleDeploymentInput{Deployment: model.Deployment, Replicas: 4}).
		Run(func(mock.Arguments) { order = append(order, "deployment") }).Return(activities.ScaleDeploymentResult{Previous: 2}, nil).Once()
	ready := []traffic.Target{{Pod: "a"}, {Pod: "b"}, {Pod: "c"}, {Pod: "d"}}
	env.OnActivity(cluster.WaitPodsReady, mock.Anything, mock.MatchedBy(func(in activities.WaitPodsInput) bool { return in.Replicas == 4 })).
		Run(func(mock.Arguments) { order = append(order, "wait-pods") }).Return(activities.WaitPodsResult{Ready: ready}, nil).Once()
	env.OnActivity(traf.RegisterTargets, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(traf.WaitServing, mock.Anything, mock.Anything).
		Run(func(mock.Arguments) { order = append(order, "serving") }).Return([]string{"a", "b", "c", "d"}, nil).Once()

	env.ExecuteWorkflow(workflows.ScaleOutWorkflowName, scaleOutInput())
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	want := []string{"nodes", "wait-nodes", "deployment", "wait-pods", "serving"}
	if len(order) != len(want) {
		t.Fatalf("steps %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("steps %v, want %v", order, want)
		}
	}
}

func TestScaleOutRemovesNodesThatNeverBecameReady(t *testing.T) {
	env := newEnv(t)
	late := activities.WaitNodesResult{NotReady: []activities.NodeRef{{Name: "n3", InstanceID: "i-3"}, {InstanceID: "i-4"}}}
	env.OnActivity(nodes.SetGroupSize, mock.Anything, mock.Anything).Return(activities.SetGroupSizeResult{Previous: 2}, nil)
	env.OnActivity(nodes.WaitNodesReady, mock.Anything, mock.Anything).
		Return(activities.WaitNodesResult{}, temporal.NewNonRetryableApplicationError("2 of 4 ready", activities.ErrNodesNotReady, nil, late))
	var removed []string
	env.OnActivity(nodes.TerminateNode, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		removed = append(removed, args.Get(1).(activities.TerminateNodeInput).Node.InstanceID)
	}).Return(nil).Twice()

	env.ExecuteWorkflow(workflows.ScaleOutWorkflowName, scaleOutInput())
	err := env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != activities.ErrNodesNotReady {
		t.Fatalf("error %v, want %s", err, activities.ErrNodesNotReady)
	}
	if len(removed) != 2 || removed[0] != "i-3" || removed[1] != "i-4" {
		t.Fatalf("removed %v, want i-3 and i-4", removed)
	}
	env.AssertNotCalled(t, "ScaleDeployment", mock.Anything, mock.Anything)
}

// A node from before the scale-out that is not serving is never removed; an instance whose termination
// fails stays in the group's size (set to what it holds, the group would pick an instance to terminate
// itself, undrained), and the error names it.
func TestScaleOutCompensationKeepsWhatItCouldNotRemoveInTheGroupsSize(t *testing.T) {
	env := newEnv(t)
	late := activities.WaitNodesResult{
		Serving:   []activities.NodeRef{{Name: "n1", InstanceID: "i-1"}},
		Unserving: []activities.NodeRef{{Name: "n2", InstanceID: "i-2"}},
		NotReady:  []activities.NodeRef{{Name: "n3", InstanceID: "i-3"}, {InstanceID: "i-4"}},
	}
	env.OnActivity(nodes.SetGroupSize, mock.Anything, activities.SetGroupSizeInput{Group: model.Group, Size: 4}).Return(activities.SetGroupSizeResult{Previous: 2}, nil).Once()
	env.OnActivity(nodes.WaitNodesReady, mock.Anything, mock.Anything).
		Return(activities.WaitNodesResult{}, temporal.NewNonRetryableApplicationError("1 of 4 ready", activities.ErrNodesNotReady, nil, late))
	var asked []string
	env.OnActivity(nodes.TerminateNode, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.TerminateNodeInput) error {
		asked = append(asked, in.Node.InstanceID)
		if in.Node.InstanceID == "i-4" {
			return temporal.NewNonRetryableApplicationError("UnauthorizedOperation: not allowed", "AccessDenied", nil)
		}
		return nil
	})
	// i-1 serves, i-2 is there (not the saga's), i-4 could not be removed: three instances.
	env.OnActivity(nodes.SetGroupSize, mock.Anything, activities.SetGroupSizeInput{Group: model.Group, Size: 3, NotBelowLive: true}).Return(activities.SetGroupSizeResult{Previous: 4}, nil).Once()

	env.ExecuteWorkflow(workflows.ScaleOutWorkflowName, scaleOutInput())
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "removed again: i-3; could not remove: i-4") || !strings.Contains(err.Error(), "group set back to 3") {
		t.Fatalf("error %v: want i-3 removed, i-4 named as not, and the group at 3", err)
	}
	if strings.Join(asked, ",") != "i-3,i-4" {
		t.Fatalf("terminations asked for %v, want i-3 and i-4 (never i-2)", asked)
	}
}

// A node wait whose attempts outlasted their overall limit (an attempt hung past it, heartbeating) is
// compensated from its last heartbeat: the instances it saw not serving go again.
func TestScaleOutCompensatesANodeWaitThatRanOutOfTime(t *testing.T) {
	env := newEnv(t)
	late := activities.WaitNodesResult{NotReady: []activities.NodeRef{{Name: "n3", InstanceID: "i-3"}}}
	env.OnActivity(nodes.SetGroupSize, mock.Anything, mock.Anything).Return(activities.SetGroupSizeResult{Previous: 2}, nil)
	env.OnActivity(nodes.WaitNodesReady, mock.Anything, mock.Anything).
		Return(activities.WaitNodesResult{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, nil, late))
	var removed []string
	env.OnActivity(nodes.TerminateNode, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		removed = append(removed, args.Get(1).(activities.TerminateNodeInput).Node.InstanceID)
	}).Return(nil).Once()

	env.ExecuteWorkflow(workflows.ScaleOutWorkflowName, scaleOutInput())
	err := env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != activities.ErrNodesNotReady || !strings.Contains(err.Error(), "the wait for the nodes gave up") {
		t.Fatalf("error %v, want %s saying the wait gave up", err, activities.ErrNodesNotReady)
	}
	if strings.Join(removed, ",") != "i-3" {
		t.Fatalf("removed %v, want i-3", removed)
	}
}

func TestScaleOutRetargetRequestsMoreNodesAtOnceAndRunsASecondWave(t *testing.T) {
	env := newEnv(t)
	var sizes, waits, scales []int32
	env.OnActivity(nodes.SetGroupSize, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		sizes = append(sizes, args.Get(1).(activities.SetGroupSizeInput).Size)
	}).Return(activities.SetGroupSizeResult{}, nil)
	env.OnActivity(nodes.WaitNodesReady, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.WaitNodesInput) (activities.WaitNodesResult, error) {
			waits = append(waits, in.Want)
			if len(waits) == 1 {
				// Load grows while the first nodes boot.
				env.SignalWorkflow(workflows.SignalRetarget, workflows.Retarget{Replicas: 6, Nodes: 6})
				time.Sleep(200 * time.Millisecond)
			}
			return activities.WaitNodesResult{}, nil
		})
	env.OnActivity(cluster.ScaleDeployment, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		scales = append(scales, args.Get(1).(activities.ScaleDeploymentInput).Replicas)
	}).Return(activities.ScaleDeploymentResult{}, nil)
	env.OnActivity(cluster.WaitPodsReady, mock.Anything, mock.Anything).Return(activities.WaitPodsResult{}, nil)
	env.OnActivity(traf.RegisterTargets, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(traf.WaitServing, mock.Anything, mock.Anything).Return([]string{}, nil)

	env.ExecuteWorkflow(workflows.ScaleOutWorkflowName, scaleOutInput())
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res workflows.ScaleResult
	_ = env.GetWorkflowResult(&res)
	// The extra nodes were asked for while the first wave waited; the first wave's replicas went to work
	// before the second wave's nodes arrived.
	if fmt.Sprint(sizes) != "[4 6]" || fmt.Sprint(waits) != "[4 6]" || fmt.Sprint(scales) != "[4 6]" || res.Replicas != 6 {
		t.Fatalf("sizes %v, waits %v, deployment scales %v, replicas %d; want [4 6] each and 6", sizes, waits, scales, res.Replicas)
	}
}

func scaleInInput() workflows.ScaleInInput {
	return workflows.ScaleInInput{Model: model, FromReplicas: 3, TargetReplicas: 2,
		Victims:      []policy.Victim{{Node: "n1", InstanceID: "i-1", Pods: []string{"p1"}}},
		DrainTimeout: policy.Duration(5 * time.Minute), DrainGrace: policy.Duration(120 * time.Second)}
}

func TestScaleInNeverDrainsANodeTheGroupWouldKeep(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(nodes.CheckRemovable, mock.Anything, mock.Anything).
		Return(temporal.NewNonRetryableApplicationError("instance i-1 is protected from scale-in", activities.ErrNotRemovable, nil))
	env.OnActivity(cluster.PodTargets, mock.Anything, mock.Anything).Return([]traffic.Target{{Pod: "p9"}}, nil).Maybe()
	env.OnActivity(traf.DeregisterTargets, mock.Anything, mock.Anything).Return(nil).Maybe()
	env.OnActivity(cluster.ScaleDeployment, mock.Anything, mock.Anything).Return(activities.ScaleDeploymentResult{}, nil).Maybe()
	env.ExecuteWorkflow(workflows.ScaleInWorkflowName, scaleInInput())
	env.AssertNotCalled(t, "Cordon", mock.Anything, mock.Anything)
	env.AssertNotCalled(t, "DrainNode", mock.Anything, mock.Anything)
	env.AssertNotCalled(t, "TerminateNode", mock.Anything, mock.Anything)
	var res workflows.ScaleResult
	if err := env.GetWorkflowError(); err == nil {
		_ = env.GetWorkflowResult(&res)
		if len(res.Skipped) != 1 {
			t.Fatalf("skipped %v", res.Skipped)
		}
	}
}

func TestScaleInCancelledMidDrainRestoresTheNode(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(nodes.CheckRemovable, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(cluster.PodTargets, mock.Anything, mock.Anything).Return([]traffic.Target{{Pod: "p1", IP: "10.0.0.1"}}, nil)
	env.OnActivity(traf.DeregisterTargets, mock.Anything, mock.Anything).Return(nil)
	var cordons []bool
	env.OnActivity(cluster.Cordon, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		cordons = append(cordons, args.Get(1).(activities.CordonInput).Unschedule)
	}).Return(nil)
	env.OnActivity(cluster.DrainNode, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.DrainInput) (activities.DrainResult, error) {
			go env.CancelWorkflow() // load returns while the drain waits
			for ctx.Err() == nil {  // a drain waiting on terminating pods, heartbeating
				activity.RecordHeartbeat(ctx)
				time.Sleep(20 * time.Millisecond)
			}
			return activities.DrainResult{}, ctx.Err()
		})
	var restored int32
	env.OnActivity(cluster.ScaleDeployment, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		restored = args.Get(1).(activities.ScaleDeploymentInput).Replicas
	}).Return(activities.ScaleDeploymentResult{}, nil)
	env.OnActivity(traf.RegisterTargets, mock.Anything, mock.Anything).Return(nil)

	env.ExecuteWorkflow(workflows.ScaleInWorkflowName, scaleInInput())
	if err := env.GetWorkflowError(); !temporal.IsCanceledError(err) {
		t.Fatalf("error %v, want cancelled", err)
	}
	if len(cordons) != 2 || !cordons[0] || cordons[1] {
		t.Fatalf("cordon calls %v, want cordon then uncordon", cordons)
	}
	if restored != 3 {
		t.Fatalf("the Deployment was put back to %d replicas, want 3", restored)
	}
	env.AssertNotCalled(t, "TerminateNode", mock.Anything, mock.Anything)
}

// A scale-in of pods only (no node to remove), cancelled while the pods leave the load balancer (a target
// group's deregistration delay), puts them back in: they stay, Ready, and would serve nothing.
func TestScaleInOfPodsCancelledPutsThemBackInTheLoadBalancer(t *testing.T) {
	env := newEnv(t)
	in := scaleInInput()
	in.Victims, in.VictimPods = nil, []string{"p1", "p2"}
	in.FromReplicas, in.TargetReplicas = 4, 2
	env.OnActivity(cluster.PodTargets, mock.Anything, mock.Anything).Return(targetsOn)
	env.OnActivity(traf.DeregisterTargets, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, _ activities.TrafficInput) error {
			go env.CancelWorkflow() // load returns during the deregistration delay
			for ctx.Err() == nil {
				activity.RecordHeartbeat(ctx)
				time.Sleep(20 * time.Millisecond)
			}
			return ctx.Err()
		})
	var registered []string
	env.OnActivity(traf.RegisterTargets, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		for _, t := range args.Get(1).(activities.TrafficInput).Targets {
			registered = append(registered, t.Pod)
		}
	}).Return(nil).Once()

	env.ExecuteWorkflow(workflows.ScaleInWorkflowName, in)
	if err := env.GetWorkflowError(); !temporal.IsCanceledError(err) {
		t.Fatalf("error %v, want cancelled", err)
	}
	if strings.Join(registered, ",") != "p1,p2" {
		t.Fatalf("registered again %v, want p1 and p2", registered)
	}
	env.AssertNotCalled(t, "ScaleDeployment", mock.Anything, mock.Anything)
}

func twoVictims() workflows.ScaleInInput {
	in := scaleInInput()
	in.FromReplicas, in.TargetReplicas = 4, 2
	in.Victims = []policy.Victim{{Node: "n1", InstanceID: "i-1", Pods: []string{"p1"}}, {Node: "n2", InstanceID: "i-2", Pods: []string{"p2"}}}
	return in
}

// targetsOn answers PodTargets with the pod named after the node (n1: p1).
func targetsOn(_ context.Context, in activities.PodTargetsInput) ([]traffic.Target, error) {
	if in.Node != "" {
		return []traffic.Target{{Pod: "p" + in.Node[1:], Node: in.Node}}, nil
	}
	var out []traffic.Target
	for _, p := range in.Pods {
		out = append(out, traffic.Target{Pod: p})
	}
	return out, nil
}

// Every victim leaves the load balancer and is cordoned before the first drain, so that their requests
// finish in parallel; the drains then run one at a time, each from the count the one before left.
func TestScaleInTakesEveryVictimOutOfServiceBeforeTheFirstDrain(t *testing.T) {
	env := newEnv(t)
	var mu sync.Mutex // the victims are taken out at once
	var steps []string
	step := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		steps = append(steps, s)
	}
	env.OnActivity(nodes.CheckRemovable, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(cluster.PodTargets, mock.Anything, mock.Anything).Return(targetsOn)
	env.OnActivity(traf.DeregisterTargets, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		step("deregister " + args.Get(1).(activities.TrafficInput).Targets[0].Pod)
	}).Return(nil)
	env.OnActivity(cluster.Cordon, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		step("cordon " + args.Get(1).(activities.CordonInput).Node)
	}).Return(nil)
	env.OnActivity(cluster.DrainNode, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DrainInput) (activities.DrainResult, error) {
			step(fmt.Sprintf("drain %s from %d", in.Node, in.FromReplicas))
			return activities.DrainResult{Evicted: []string{"p" + in.Node[1:]}, Replicas: in.FromReplicas - 1}, nil
		})
	env.OnActivity(nodes.TerminateNode, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		step("terminate " + args.Get(1).(activities.TerminateNodeInput).Node.Name)
	}).Return(nil)

	env.ExecuteWorkflow(workflows.ScaleInWorkflowName, twoVictims())
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res workflows.ScaleResult
	_ = env.GetWorkflowResult(&res)
	firstDrain := slices.IndexFunc(steps, func(s string) bool { return strings.HasPrefix(s, "drain") })
	before := steps[:max(firstDrain, 0)]
	for _, want := range []string{"deregister p1", "deregister p2", "cordon n1", "cordon n2"} {
		if !slices.Contains(before, want) {
			t.Fatalf("%q did not happen before the first drain: %v", want, steps)
		}
	}
	if after := strings.Join(steps[firstDrain:], ", "); after != "drain n1 from 4, terminate n1, drain n2 from 3, terminate n2" {
		t.Fatalf("after taking the victims out: %s", after)
	}
	if res.Replicas != 2 || len(res.Removed) != 2 {
		t.Fatalf("result %+v, want 2 replicas and both nodes removed", res)
	}
}

// putBack is what a scale-in put back into service: the nodes uncordoned, the pods registered again.
type putBack struct {
	mu         sync.Mutex // victims are taken out, and can be put back, at once
	uncordoned map[string]bool
	registered []string
}

// takingOut answers the steps that take victims out of service and put them back (load balancer targets,
// cordon) and records what was put back.
func takingOut(env *testsuite.TestWorkflowEnvironment) *putBack {
	back := &putBack{uncordoned: map[string]bool{}}
	env.OnActivity(cluster.PodTargets, mock.Anything, mock.Anything).Return(targetsOn)
	env.OnActivity(traf.DeregisterTargets, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(cluster.Cordon, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		back.mu.Lock()
		defer back.mu.Unlock()
		if in := args.Get(1).(activities.CordonInput); !in.Unschedule {
			back.uncordoned[in.Node] = true
		}
	}).Return(nil)
	env.OnActivity(traf.RegisterTargets, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		back.mu.Lock()
		defer back.mu.Unlock()
		for _, tg := range args.Get(1).(activities.TrafficInput).Targets {
			back.registered = append(back.registered, tg.Pod)
		}
	}).Return(nil)
	return back
}

// A drain that cannot finish restores its node and every victim not drained yet; nothing is terminated.
func TestScaleInRestoresTheVictimsNotDrainedWhenADrainFails(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(nodes.CheckRemovable, mock.Anything, mock.Anything).Return(nil)
	back := takingOut(env)
	env.OnActivity(cluster.DrainNode, mock.Anything, mock.Anything).Return(activities.DrainResult{},
		temporal.NewNonRetryableApplicationError("node n1: evicted pods still terminating at the deadline: p1", activities.ErrDrainTimeout, nil)).Once()
	var counts []int32
	env.OnActivity(cluster.ScaleDeployment, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		counts = append(counts, args.Get(1).(activities.ScaleDeploymentInput).Replicas)
	}).Return(activities.ScaleDeploymentResult{}, nil)

	env.ExecuteWorkflow(workflows.ScaleInWorkflowName, twoVictims())
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "still terminating") {
		t.Fatalf("error %v, want the drain's", err)
	}
	slices.Sort(back.registered)
	if !back.uncordoned["n1"] || !back.uncordoned["n2"] || fmt.Sprint(back.registered) != "[p1 p2]" {
		t.Fatalf("uncordoned %v, registered again %v: want both victims back in service", back.uncordoned, back.registered)
	}
	for _, c := range counts {
		if c != 4 {
			t.Fatalf("the Deployment was set to %v, want it kept at 4", counts)
		}
	}
	env.AssertNotCalled(t, "TerminateNode", mock.Anything, mock.Anything)
}

// notYetUntil is a wait's retryable "not yet", retried when the simulated time comes.
func notYetUntil(env *testsuite.TestWorkflowEnvironment, at time.Time) error {
	return temporal.NewApplicationErrorWithOptions("not yet", "NotYet", temporal.ApplicationErrorOptions{NextRetryDelay: at.Sub(env.Now())})
}

// nodesBootIn answers the node group: the nodes asked for by a SetGroupSize are Ready boot later (a wait
// for them retries until then).
func nodesBootIn(env *testsuite.TestWorkflowEnvironment, boot time.Duration) {
	nodesAt := map[int32]time.Time{} // node count -> when that many are Ready
	env.OnActivity(nodes.SetGroupSize, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		nodesAt[args.Get(1).(activities.SetGroupSizeInput).Size] = env.Now().Add(boot)
	}).Return(activities.SetGroupSizeResult{}, nil)
	env.OnActivity(nodes.WaitNodesReady, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.WaitNodesInput) (activities.WaitNodesResult, error) {
			if at := nodesAt[in.Want]; env.Now().Before(at) {
				return activities.WaitNodesResult{}, notYetUntil(env, at)
			}
			return activities.WaitNodesResult{}, nil
		})
}

// Each request to the node group is a wave of its own: when its nodes are Ready the Deployment is scaled
// for it at once, while the waves before are still loading their model and the waves after still booting.
func TestScaleOutScalesEachWaveAsItsNodesArrive(t *testing.T) {
	env := newEnv(t)
	start := env.Now()
	const boot, load = 150 * time.Second, 70 * time.Second
	nodesBootIn(env, boot)
	scaledAt := map[int32]time.Duration{} // replicas -> when the Deployment was scaled to them
	env.OnActivity(cluster.ScaleDeployment, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		scaledAt[args.Get(1).(activities.ScaleDeploymentInput).Replicas] = env.Now().Sub(start)
	}).Return(activities.ScaleDeploymentResult{}, nil)
	env.OnActivity(cluster.WaitPodsReady, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.WaitPodsInput) (activities.WaitPodsResult, error) {
			if at := start.Add(scaledAt[in.Replicas] + load); env.Now().Before(at) {
				return activities.WaitPodsResult{}, notYetUntil(env, at)
			}
			return activities.WaitPodsResult{}, nil
		})
	env.OnActivity(traf.RegisterTargets, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(traf.WaitServing, mock.Anything, mock.Anything).Return([]string{}, nil)
	// Load grows while the first nodes boot: a node more at 15 s, another at 30 s.
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.SignalRetarget, workflows.Retarget{Replicas: 5, Nodes: 5}) }, 15*time.Second)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.SignalRetarget, workflows.Retarget{Replicas: 6, Nodes: 6}) }, 30*time.Second)

	in := scaleOutInput()
	in.FromReplicas, in.TargetReplicas, in.FromNodes, in.TargetNodes = 3, 4, 3, 4
	env.ExecuteWorkflow(workflows.ScaleOutWorkflowName, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res workflows.ScaleResult
	_ = env.GetWorkflowResult(&res)
	want := map[int32]time.Duration{4: 150 * time.Second, 5: 165 * time.Second, 6: 180 * time.Second}
	if fmt.Sprint(scaledAt) != fmt.Sprint(want) || res.Replicas != 6 {
		t.Fatalf("the Deployment was scaled at %v, want each wave as its nodes arrived %v; result %d replicas", scaledAt, want, res.Replicas)
	}
	// The saga ends when the last wave serves: its nodes' boot and its pods' load after it was asked for.
	if took := env.Now().Sub(start); took != 30*time.Second+boot+load {
		t.Fatalf("the saga took %s, want %s", took, 30*time.Second+boot+load)
	}
}

// A wave whose pods never become Ready stops the saga: no wave starts after it, and the Deployment goes back
// to what served (its count before the saga, or a wave before that went on to serve).
func TestScaleOutStopsAtAWaveWhosePodsFailAndGivesTheCountBack(t *testing.T) {
	for _, c := range []struct {
		name      string
		failsFrom int32 // the pods of waves of at least this many replicas never become Ready
		scales    string
	}{
		{"the first wave fails while the raised one's nodes boot", 4, "[4 3]"},
		{"the raised wave fails after the first served", 6, "[4 6 4]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := newEnv(t)
			nodesBootIn(env, 150*time.Second)
			var scales []int32
			env.OnActivity(cluster.ScaleDeployment, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
				scales = append(scales, args.Get(1).(activities.ScaleDeploymentInput).Replicas)
			}).Return(activities.ScaleDeploymentResult{}, nil)
			env.OnActivity(cluster.WaitPodsReady, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.WaitPodsInput) (activities.WaitPodsResult, error) {
					if in.Replicas >= c.failsFrom {
						return activities.WaitPodsResult{}, temporal.NewNonRetryableApplicationError(
							fmt.Sprintf("deployment models/llm: 3 of %d pods Ready at the deadline", in.Replicas), activities.ErrPodsNotReady, nil)
					}
					return activities.WaitPodsResult{}, nil
				})
			env.OnActivity(traf.RegisterTargets, mock.Anything, mock.Anything).Return(nil).Maybe()
			env.OnActivity(traf.WaitServing, mock.Anything, mock.Anything).Return([]string{}, nil).Maybe()
			env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.SignalRetarget, workflows.Retarget{Replicas: 6, Nodes: 6}) }, 15*time.Second)

			in := scaleOutInput()
			in.FromReplicas, in.TargetReplicas, in.FromNodes, in.TargetNodes = 3, 4, 3, 4
			env.ExecuteWorkflow(workflows.ScaleOutWorkflowName, in)
			if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "pods Ready at the deadline") {
				t.Fatalf("error %v, want the pods' failure", err)
			}
			if fmt.Sprint(scales) != c.scales {
				t.Fatalf("the Deployment was scaled to %v, want %s", scales, c.scales)
			}
		})
	}
}

// A victim that cannot be taken out of service fails the saga and no victim is drained, whichever it is:
// the others are put back too.
func TestScaleInDrainsNothingWhenAVictimCannotBeTakenOut(t *testing.T) {
	for _, failing := range []string{"n1", "n2"} {
		t.Run(failing, func(t *testing.T) {
			env := newEnv(t)
			env.OnActivity(nodes.CheckRemovable, mock.Anything, mock.Anything).Return(nil)
			env.OnActivity(cluster.PodTargets, mock.Anything, mock.Anything).Return(targetsOn)
			env.OnActivity(traf.DeregisterTargets, mock.Anything, mock.Anything).Return(nil)
			uncordoned := map[string]bool{}
			env.OnActivity(cluster.Cordon, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.CordonInput) error {
				if !in.Unschedule {
					uncordoned[in.Node] = true
					return nil
				}
				if in.Node == failing {
					return temporal.NewNonRetryableApplicationError("nodes \""+failing+"\" is forbidden", "Forbidden", nil)
				}
				return nil
			})
			env.OnActivity(cluster.ScaleDeployment, mock.Anything, mock.Anything).Return(activities.ScaleDeploymentResult{}, nil)
			env.OnActivity(traf.RegisterTargets, mock.Anything, mock.Anything).Return(nil)

			env.ExecuteWorkflow(workflows.ScaleInWorkflowName, twoVictims())
			if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "forbidden") {
				t.Fatalf("error %v, want the cordon's", err)
			}
			if !uncordoned["n1"] || !uncordoned["n2"] {
				t.Fatalf("uncordoned %v: want both victims back in service", uncordoned)
			}
			env.AssertNotCalled(t, "DrainNode", mock.Anything, mock.Anything)
			env.AssertNotCalled(t, "TerminateNode", mock.Anything, mock.Anything)
		})
	}
}

// The group is asked about every victim at its size before any leaves; once one has left it is asked again
// before the next is drained, and a group that now refuses keeps that node, back in service.
func TestScaleInAsksTheGroupAgainOnceAVictimHasLeft(t *testing.T) {
	env := newEnv(t)
	var checks atomic.Int32 // the first two run at once
	env.OnActivity(nodes.CheckRemovable, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.CheckRemovableInput) error {
		if checks.Add(1) > 2 {
			return temporal.NewNonRetryableApplicationError("group gpu-pool is at its minimum size (1)", activities.ErrNotRemovable, nil)
		}
		return nil
	})
	back := takingOut(env)
	env.OnActivity(cluster.DrainNode, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DrainInput) (activities.DrainResult, error) {
			return activities.DrainResult{Evicted: []string{"p" + in.Node[1:]}, Replicas: in.FromReplicas - 1}, nil
		}).Once()
	env.OnActivity(nodes.TerminateNode, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(cluster.ScaleDeployment, mock.Anything, mock.Anything).Return(activities.ScaleDeploymentResult{}, nil)

	env.ExecuteWorkflow(workflows.ScaleInWorkflowName, twoVictims())
	var res workflows.ScaleResult
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	_ = env.GetWorkflowResult(&res)
	if checks.Load() != 3 || len(res.Removed) != 1 || res.Removed[0].Name != "n1" || len(res.Skipped) != 1 || !strings.HasPrefix(res.Skipped[0], "n2: ") {
		t.Fatalf("%d checks, result %+v: want n1 removed and n2 kept after a third check", checks.Load(), res)
	}
	if !back.uncordoned["n2"] || fmt.Sprint(back.registered) != "[p2]" {
		t.Fatalf("uncordoned %v, registered again %v: want n2 back in service", back.uncordoned, back.registered)
	}
}

// A scale-in cancelled while a drained node is being terminated lets the termination finish: the node's
// replicas are off the Deployment already, and the victims not drained yet are put back.
func TestScaleInCancelledWhileTerminatingFinishesTheTermination(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(nodes.CheckRemovable, mock.Anything, mock.Anything).Return(nil)
	back := takingOut(env)
	env.OnActivity(cluster.DrainNode, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DrainInput) (activities.DrainResult, error) {
			return activities.DrainResult{Evicted: []string{"p" + in.Node[1:]}, Replicas: in.FromReplicas - 1}, nil
		}).Once()
	env.OnActivity(nodes.TerminateNode, mock.Anything, mock.Anything).Return(func(context.Context, activities.TerminateNodeInput) error {
		go env.CancelWorkflow() // load returns while the instance is being terminated
		time.Sleep(100 * time.Millisecond)
		return nil
	}).Once()
	env.OnActivity(cluster.ScaleDeployment, mock.Anything, mock.Anything).Return(activities.ScaleDeploymentResult{}, nil)
	var cancelled []string
	env.SetOnActivityCanceledListener(func(info *activity.Info) { cancelled = append(cancelled, info.ActivityType.Name) })

	env.ExecuteWorkflow(workflows.ScaleInWorkflowName, twoVictims())
	if err := env.GetWorkflowError(); !temporal.IsCanceledError(err) {
		t.Fatalf("error %v, want cancelled", err)
	}
	if slices.Contains(cancelled, "TerminateNode") {
		t.Fatalf("activities cancelled %v: the termination of the drained node must finish", cancelled)
	}
	if !back.uncordoned["n2"] || back.uncordoned["n1"] {
		t.Fatalf("uncordoned %v: want n2 (not drained) back in service and n1 (terminated) not", back.uncordoned)
	}
}

// Taking targets out of the load balancer waits out the target group's deregistration delay (300 s by
// default), which a 2-minute drain timeout does not bound: the wait's limits leave room for the longest.
func TestTheDeregistrationWaitOutlastsAShortDrainTimeout(t *testing.T) {
	env := newEnv(t)
	in := scaleInInput()
	in.DrainTimeout = policy.Duration(2 * time.Minute)
	env.OnActivity(nodes.CheckRemovable, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(cluster.PodTargets, mock.Anything, mock.Anything).Return([]traffic.Target{{Pod: "p1", IP: "10.0.0.1"}}, nil)
	var room time.Duration
	env.OnActivity(traf.DeregisterTargets, mock.Anything, mock.Anything).Return(func(ctx context.Context, _ activities.TrafficInput) error {
		info := activity.GetInfo(ctx)
		room = info.Deadline.Sub(info.StartedTime)
		return nil
	})
	env.OnActivity(cluster.Cordon, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(cluster.DrainNode, mock.Anything, mock.Anything).Return(activities.DrainResult{Replicas: 2}, nil)
	env.OnActivity(nodes.TerminateNode, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(cluster.ScaleDeployment, mock.Anything, mock.Anything).Return(activities.ScaleDeploymentResult{}, nil).Maybe()
	env.ExecuteWorkflow(workflows.ScaleInWorkflowName, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if room < 300*time.Second {
		t.Fatalf("the deregistration wait may take %s, less than a target group's default 300 s delay", room)
	}
}
