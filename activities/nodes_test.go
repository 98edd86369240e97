package activities_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/llmscaler/llmscaler/activities"
	"github.com/llmscaler/llmscaler/internal/gpunode"
	"github.com/llmscaler/llmscaler/nodegroup"
)

// fixedGroup is a node provider whose group is whatever the test says; it records the sizes asked for.
type fixedGroup struct {
	group nodegroup.Group
	sized []int32
}

func (f *fixedGroup) Describe(context.Context, string) (nodegroup.Group, error) { return f.group, nil }
func (f *fixedGroup) TerminateInstance(context.Context, string, string) error   { return nil }
func (f *fixedGroup) SetDesiredSize(_ context.Context, _ string, n int32) error {
	f.sized = append(f.sized, n)
	return nil
}

// gpuNode is a Node of instance id, created at created, Ready with a GPU allocatable or not.
func gpuNode(id string, created time.Time, serving bool) *corev1.Node {
	status := corev1.ConditionFalse
	gpus := resource.MustParse("0")
	if serving {
		status, gpus = corev1.ConditionTrue, resource.MustParse("1")
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-" + id, CreationTimestamp: metav1.NewTime(created)},
		Spec:       corev1.NodeSpec{ProviderID: gpunode.ProviderID("us-east-1a", id)},
		Status: corev1.NodeStatus{
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}},
			Allocatable: corev1.ResourceList{gpunode.ResourceGPU: gpus},
		},
	}
}

func waitNodes(t *testing.T, group nodegroup.Group, in activities.WaitNodesInput, nodes ...runtime.Object) (activities.WaitNodesResult, error) {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	n := &activities.Nodes{Kube: fake.NewClientset(nodes...), Providers: activities.Providers{"test": &fixedGroup{group: group}}, Poll: 10 * time.Millisecond}
	env.RegisterActivity(n)
	in.Group = activities.NodeGroupRef{Provider: "test", Group: "gpu"}
	v, err := env.ExecuteActivity(n.WaitNodesReady, in)
	var res activities.WaitNodesResult
	if err == nil {
		err = v.Get(&res)
	} else {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			_ = appErr.Details(&res)
		}
	}
	return res, err
}

// A node that was serving before the scale-out asked for nodes and is not serving now (its kubelet stopped
// reporting) is not the scale-out's: the wait does not list it among the nodes a failed scale-out removes
// again (terminating it would cut off the requests its pods serve), and names it apart. A node created
// for the scale-out may show a creation time a moment before the request (the API server's clock, in
// whole seconds): it is still the scale-out's.
func TestANodeFromBeforeTheScaleOutIsNeverItsToRemove(t *testing.T) {
	asked := time.Now().Add(-time.Minute)
	group := nodegroup.Group{Name: "gpu", Desired: 3, Instances: []nodegroup.Instance{{ID: "i-old"}, {ID: "i-new"}, {ID: "i-pending"}}}
	res, err := waitNodes(t, group, activities.WaitNodesInput{Want: 3, Since: asked, Deadline: time.Now().Add(50 * time.Millisecond)},
		gpuNode("i-old", asked.Add(-time.Hour), false), gpuNode("i-new", asked.Truncate(time.Second).Add(-time.Second), false))
	if err == nil || !strings.Contains(err.Error(), activities.ErrNodesNotReady) {
		t.Fatalf("error %v, want the nodes not ready", err)
	}
	var notReady, unserving []string
	for _, r := range res.NotReady {
		notReady = append(notReady, r.InstanceID)
	}
	for _, r := range res.Unserving {
		unserving = append(unserving, r.InstanceID)
	}
	if strings.Join(notReady, ",") != "i-new,i-pending" || strings.Join(unserving, ",") != "i-old" {
		t.Fatalf("not ready %v, unserving %v: want the new and the pending instance, and the old node apart", notReady, unserving)
	}
	if !strings.Contains(err.Error(), "not serving, from before the scale-out: i-old (node-i-old)") {
		t.Fatalf("error %v does not name the old node apart", err)
	}
}

// A failed launch the group then retries (in another zone) does not end the wait; launches that go on
// failing, none started since the first, end it after launchRetryGrace with the last one's reason.
func TestANodeWaitGivesUpOnLaunchesThatGoOnFailingNotOnOne(t *testing.T) {
	asked := time.Now().Add(-2 * time.Minute)
	capacity := "InsufficientInstanceCapacity: We currently do not have sufficient g5.2xlarge capacity in the Availability Zone you requested (us-east-1a)."
	launch := func(id string, at time.Duration, status string) nodegroup.Activity {
		return nodegroup.Activity{ID: id, Description: "Launching a new EC2 instance", Status: status, Message: capacity, Start: asked.Add(at)}
	}
	in := activities.WaitNodesInput{Want: 1, Since: asked, Deadline: time.Now().Add(50 * time.Millisecond)}

	// Failed at once, then launched elsewhere: the wait goes on to its deadline (the node is not ready yet).
	retried := nodegroup.Group{Name: "gpu", Desired: 1, Instances: []nodegroup.Instance{{ID: "i-b"}},
		Activities: []nodegroup.Activity{launch("b", 10*time.Second, "InProgress"), launch("a", 5*time.Second, "Failed")}}
	if _, err := waitNodes(t, retried, in); err == nil || !strings.Contains(err.Error(), activities.ErrNodesNotReady) {
		t.Fatalf("a launch retried elsewhere: error %v, want the wait to run to its deadline", err)
	}
	// Failing in a row for a minute and a half since the last launch that did not: capacity unavailable.
	failing := nodegroup.Group{Name: "gpu", Desired: 1, Activities: []nodegroup.Activity{
		launch("d", 100*time.Second, "Failed"), launch("c", 30*time.Second, "Failed"), launch("b", 20*time.Second, "Successful"), launch("a", 5*time.Second, "Failed")}}
	_, err := waitNodes(t, failing, activities.WaitNodesInput{Want: 2, Since: asked, Deadline: time.Now().Add(time.Minute)})
	if err == nil || !strings.Contains(err.Error(), activities.ErrCapacityUnavailable) || !strings.Contains(err.Error(), "2 launch(es) failed in a row") ||
		!strings.Contains(err.Error(), "scaling activity d") {
		t.Fatalf("launches failing in a row: error %v, want capacity unavailable naming the last of two", err)
	}
	// Failing for less than the grace: still waiting.
	recent := nodegroup.Group{Name: "gpu", Desired: 1, Activities: []nodegroup.Activity{{ID: "a", Description: "Launching a new EC2 instance",
		Status: "Failed", Message: capacity, Start: time.Now().Add(-5 * time.Second)}}}
	if _, err := waitNodes(t, recent, in); err == nil || !strings.Contains(err.Error(), activities.ErrNodesNotReady) {
		t.Fatalf("a failure 5 s old: error %v, want the wait to run to its deadline", err)
	}
}

// A compensation's size never goes below the instances the group holds: below them the group picks which
// to terminate, without a drain (an instance it launched after the wait's last look, or a serving node).
func TestACompensationsSizeKeepsTheInstancesTheGroupHolds(t *testing.T) {
	g := &fixedGroup{group: nodegroup.Group{Name: "gpu", Desired: 4, Instances: []nodegroup.Instance{{ID: "i-1"}, {ID: "i-2"}, {ID: "i-3"}}}}
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	n := &activities.Nodes{Kube: fake.NewClientset(), Providers: activities.Providers{"test": g}}
	env.RegisterActivity(n)
	ref := activities.NodeGroupRef{Provider: "test", Group: "gpu"}
	if _, err := env.ExecuteActivity(n.SetGroupSize, activities.SetGroupSizeInput{Group: ref, Size: 2, NotBelowLive: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.ExecuteActivity(n.SetGroupSize, activities.SetGroupSizeInput{Group: ref, Size: 2}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(g.sized) != "[3 2]" {
		t.Fatalf("sizes asked for %v, want 3 (the instances held) then 2 (no floor asked)", g.sized)
	}
}

// failingGroup is a node group that cannot be read (a permission taken away, an API down).
type failingGroup struct{ fixedGroup }

func (f *failingGroup) Describe(context.Context, string) (nodegroup.Group, error) {
	return nodegroup.Group{}, errors.New("AccessDenied: not authorized to perform autoscaling:DescribeAutoScalingGroups")
}

// A node wait that cannot read the group gives its own verdict at the deadline, with what it saw last (an
// earlier attempt's heartbeat), so that the saga compensates from it; before the deadline the error is
// retried. Retried past it, the attempts ended at the overall limit with the last error alone, and the
// instances asked for were left running.
func TestANodeWaitThatCannotReadGivesItsVerdictAtTheDeadline(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	n := &activities.Nodes{Kube: fake.NewClientset(), Providers: activities.Providers{"test": &failingGroup{}}, Poll: 10 * time.Millisecond}
	env.RegisterActivity(n)
	env.SetHeartbeatDetails(activities.WaitNodesResult{NotReady: []activities.NodeRef{{InstanceID: "i-new"}}})
	in := activities.WaitNodesInput{Group: activities.NodeGroupRef{Provider: "test", Group: "gpu"}, Want: 2, Deadline: time.Now().Add(-time.Second)}
	_, err := env.ExecuteActivity(n.WaitNodesReady, in)
	var appErr *temporal.ApplicationError
	var late activities.WaitNodesResult
	if !errors.As(err, &appErr) || appErr.Type() != activities.ErrNodesNotReady || !appErr.NonRetryable() || appErr.Details(&late) != nil ||
		len(late.NotReady) != 1 || late.NotReady[0].InstanceID != "i-new" {
		t.Fatalf("past the deadline: %v (details %+v), want NodesNotReady with i-new not ready", err, late)
	}
	in.Deadline = time.Now().Add(time.Hour)
	if _, err := env.ExecuteActivity(n.WaitNodesReady, in); err == nil || (errors.As(err, &appErr) && appErr.NonRetryable()) {
		t.Fatalf("before the deadline: %v, want a retryable error", err)
	}
}
