package activities_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	ktesting "k8s.io/client-go/testing"

	"github.com/llmscaler/llmscaler/activities"
	"github.com/llmscaler/llmscaler/traffic"
)

// scaleServer answers the Deployment models/llm's scale subresource from the Deployment itself (the fake
// clientset does not serve it), counting reads and writes; beforeWrite may change the Deployment first (another
// writer).
type scaleServer struct {
	t             *testing.T
	kube          *fake.Clientset
	gets, updates int
	beforeWrite   func()
}

var deploymentsGVR = appsv1.SchemeGroupVersion.WithResource("deployments")

func serveScale(t *testing.T, kube *fake.Clientset) *scaleServer {
	s := &scaleServer{t: t, kube: kube}
	kube.PrependReactor("get", "deployments", func(a ktesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		s.gets++
		d := s.deployment()
		return true, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: d.Namespace, ResourceVersion: d.ResourceVersion},
			Spec: autoscalingv1.ScaleSpec{Replicas: *d.Spec.Replicas}}, nil
	})
	kube.PrependReactor("update", "deployments", func(a ktesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		s.updates++
		sc := a.(ktesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
		if s.beforeWrite != nil {
			s.beforeWrite()
		}
		if sc.ResourceVersion != s.deployment().ResourceVersion {
			return true, nil, apierrors.NewConflict(deploymentsGVR.GroupResource(), sc.Name,
				errors.New("the object has been modified; please apply your changes to the latest version and try again"))
		}
		s.write(sc.Spec.Replicas, sc.ResourceVersion+"+")
		return true, sc, nil
	})
	return s
}

func (s *scaleServer) deployment() *appsv1.Deployment {
	obj, err := s.kube.Tracker().Get(deploymentsGVR, "models", "llm")
	if err != nil {
		s.t.Fatal(err)
	}
	return obj.(*appsv1.Deployment)
}

func (s *scaleServer) write(replicas int32, rv string) {
	d := s.deployment().DeepCopy()
	d.Spec.Replicas, d.ResourceVersion = &replicas, rv
	if err := s.kube.Tracker().Update(deploymentsGVR, d, "models"); err != nil {
		s.t.Fatal(err)
	}
}

// A scale write that loses a race with another writer is retried on a fresh read, not failed.
func TestScaleDeploymentRetriesAConflictOnAFreshRead(t *testing.T) {
	replicas := int32(3)
	kube := fake.NewClientset(&appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "llm", Namespace: "models", ResourceVersion: "1"},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas},
	})
	scale := serveScale(t, kube)
	scale.beforeWrite = func() {
		if scale.updates == 1 {
			scale.write(4, "2") // another writer got there between our read and our write
		}
	}

	c := &activities.Cluster{Kube: kube}
	res, err := c.ScaleDeployment(context.Background(), activities.ScaleDeploymentInput{
		Deployment: activities.DeploymentRef{Namespace: "models", Name: "llm"}, Replicas: 2})
	if err != nil {
		t.Fatalf("scaling after one conflict: %v", err)
	}
	if got := *scale.deployment().Spec.Replicas; got != 2 {
		t.Fatalf("replicas %d, want 2", got)
	}
	if scale.gets != 2 || scale.updates != 2 {
		t.Fatalf("%d reads and %d writes of the scale, want 2 and 2 (a fresh read before the second write)", scale.gets, scale.updates)
	}
	if res.Previous != 4 {
		t.Fatalf("previous replicas %d, want 4 (the other writer's, from the fresh read)", res.Previous)
	}
}

// Every heartbeat of a drain carries the pods it has evicted, also while a PodDisruptionBudget refuses the
// next eviction: a retry reads only the last heartbeat, and without them it would count the Deployment's
// replicas from the pods it evicts itself, one too many.
// drainFixture is a Deployment models/llm of 3 replicas and its pods on node n1, whose evictions succeed
// (the pod goes) unless refuse names the pod (a PodDisruptionBudget's refusal).
type drainFixture struct {
	kube   *fake.Clientset
	scale  *scaleServer
	refuse string
}

func newDrainFixture(t *testing.T, pods ...*corev1.Pod) *drainFixture {
	replicas := int32(3)
	objs := []runtime.Object{&appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "llm", Namespace: "models", ResourceVersion: "1"},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "llm"}}},
	}}
	for _, p := range pods {
		objs = append(objs, p)
	}
	f := &drainFixture{kube: fake.NewClientset(objs...)}
	f.kube.Resources = []*metav1.APIResourceList{{GroupVersion: "v1", APIResources: []metav1.APIResource{
		{Name: "pods", Kind: "Pod", Namespaced: true}, {Name: "pods/eviction", Kind: "Eviction", Group: "policy", Version: "v1"}}}}
	f.scale = serveScale(t, f.kube)
	f.kube.PrependReactor("create", "pods", func(a ktesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		name := a.(ktesting.CreateAction).GetObject().(*policyv1.Eviction).Name
		if name == f.refuse {
			return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
		}
		return true, nil, f.kube.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), "models", name)
	})
	return f
}

// modelPod is a running pod of the Deployment on node n1.
func modelPod(name string) *corev1.Pod {
	controller := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "models", Labels: map[string]string{"app": "llm"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "llm-1", UID: "rs", Controller: &controller}}},
		Spec:   corev1.PodSpec{NodeName: "n1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

func drainInput(deadline time.Duration) activities.DrainInput {
	return activities.DrainInput{Deployment: activities.DeploymentRef{Namespace: "models", Name: "llm"},
		Node: "n1", FromReplicas: 3, Deadline: time.Now().Add(deadline)}
}

// drain runs DrainNode, resuming from heartbeat details when given, and returns its result.
func (f *drainFixture) drain(t *testing.T, resume any, onHeartbeat func(map[string]any)) (activities.DrainResult, error) {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	c := &activities.Cluster{Kube: f.kube, Poll: 10 * time.Millisecond}
	env.RegisterActivity(c)
	if resume != nil {
		env.SetHeartbeatDetails(resume)
	}
	if onHeartbeat != nil {
		env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
			var last map[string]any
			_ = details.Get(&last)
			onHeartbeat(last)
		})
	}
	v, err := env.ExecuteActivity(c.DrainNode, drainInput(500*time.Millisecond))
	var r activities.DrainResult
	if err == nil {
		err = v.Get(&r)
	}
	return r, err
}

func TestDrainHeartbeatsWhatItEvictedWhileAnEvictionIsRefused(t *testing.T) {
	f := newDrainFixture(t, modelPod("p1"), modelPod("p2"))
	f.refuse = "p2"
	var last map[string]any
	_, err := f.drain(t, nil, func(h map[string]any) { last = h })
	if err == nil || !strings.Contains(err.Error(), activities.ErrDrainBlocked) {
		t.Fatalf("error %v, want the drain blocked", err)
	}
	if fmt.Sprint(last["evicted"]) != "[p1]" || last["blocked"] != "p2" {
		t.Fatalf("last heartbeat %v: want p1 evicted and p2 blocked", last)
	}
	if got := *f.scale.deployment().Spec.Replicas; got != 2 {
		t.Fatalf("replicas %d after evicting one of three pods, want 2", got)
	}
}

// A pod that ended (Failed after a kubelet's eviction under node pressure) was replaced by its ReplicaSet
// already: the drain removes it without taking a replica off the Deployment.
func TestDrainDoesNotCountAPodThatEndedAsAReplica(t *testing.T) {
	failed := modelPod("failed")
	failed.Status.Phase = corev1.PodFailed
	f := newDrainFixture(t, modelPod("running"), failed)
	r, err := f.drain(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := *f.scale.deployment().Spec.Replicas; got != 2 || r.Replicas != 2 {
		t.Fatalf("replicas %d (result %d) after draining one running and one failed pod of three, want 2", got, r.Replicas)
	}
}

// A retry resumes from the heartbeat: a pod recorded as evicted whose count never landed (the write failed,
// or the worker died between the two) is counted again, and the Deployment gets it.
func TestARetriedDrainWritesTheCountAnEarlierAttemptRecorded(t *testing.T) {
	f := newDrainFixture(t) // p1, evicted by the earlier attempt, is gone
	r, err := f.drain(t, map[string]any{"evicted": []string{"p1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := *f.scale.deployment().Spec.Replicas; got != 2 || r.Replicas != 2 {
		t.Fatalf("replicas %d (result %d), want 2: the earlier attempt evicted p1", got, r.Replicas)
	}
}

// A retry whose predecessor's last heartbeat was lost finds the replica it evicted still terminating on the
// node, marked by it, and counts it; a replica terminating without this drain's mark (a kubelet's eviction,
// an earlier scale-in's removal, another run's drain) was replaced or counted already, and is not.
func TestARetriedDrainCountsTheReplicaItsPredecessorMarked(t *testing.T) {
	for _, c := range []struct {
		mark string
		want int32
	}{
		{"default-test-run-id/n1", 1}, // the test environment's run, this node
		{"", 2},
		{"another-run/n1", 2},
	} {
		t.Run(fmt.Sprintf("mark=%q", c.mark), func(t *testing.T) {
			terminating := modelPod("p2")
			now := metav1.Now()
			terminating.DeletionTimestamp, terminating.Finalizers = &now, []string{"example.com/slow"}
			if c.mark != "" {
				terminating.Annotations = map[string]string{activities.AnnotationEvictedBy: c.mark}
			}
			f := newDrainFixture(t, modelPod("p1"), terminating)
			// p2 finishes terminating once the drain has listed the pods and evicts p1.
			f.kube.PrependReactor("create", "pods", func(a ktesting.Action) (bool, runtime.Object, error) {
				if a.GetSubresource() == "eviction" {
					_ = f.kube.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), "models", "p2")
				}
				return false, nil, nil
			})
			r, err := f.drain(t, map[string]any{"evicted": []string{}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := *f.scale.deployment().Spec.Replicas; got != c.want || r.Replicas != c.want {
				t.Fatalf("replicas %d (result %d), want %d", got, r.Replicas, c.want)
			}
		})
	}
}

// The drain marks each replica before it evicts it, so that a retry can tell its own evictions.
func TestADrainMarksEachReplicaBeforeItEvictsIt(t *testing.T) {
	f := newDrainFixture(t, modelPod("p1"))
	var marked string
	f.kube.PrependReactor("create", "pods", func(a ktesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "eviction" {
			p, err := f.kube.Tracker().Get(corev1.SchemeGroupVersion.WithResource("pods"), "models", "p1")
			if err == nil {
				marked = p.(*corev1.Pod).Annotations[activities.AnnotationEvictedBy]
			}
		}
		return false, nil, nil
	})
	if _, err := f.drain(t, nil, nil); err != nil {
		t.Fatal(err)
	}
	if marked != "default-test-run-id/n1" {
		t.Fatalf("p1 was evicted marked %q, want this drain's mark", marked)
	}
}

// The node's pods could not be listed (the API server's error): the drain is retried, not refused.
func TestADrainThatCannotListThePodsIsRetried(t *testing.T) {
	f := newDrainFixture(t, modelPod("p1"))
	f.kube.PrependReactor("list", "pods", func(ktesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("etcd leader changed")
	})
	_, err := f.drain(t, nil, nil)
	var appErr *temporal.ApplicationError
	if err == nil || !strings.Contains(err.Error(), "listing the pods of node n1") || (errors.As(err, &appErr) && appErr.NonRetryable()) {
		t.Fatalf("error %v, want a retryable error naming the listing", err)
	}
}

// readyPodOn is a Ready pod of the Deployment on node.
func readyPodOn(name, node string) *corev1.Pod {
	p := modelPod(name)
	p.Spec.NodeName = node
	p.Status.PodIP = "10.0.0." + name[1:]
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	return p
}

func podTargets(t *testing.T, kube *fake.Clientset, in activities.PodTargetsInput) ([]string, error) {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	c := &activities.Cluster{Kube: kube}
	env.RegisterActivity(c)
	in.Deployment = activities.DeploymentRef{Namespace: "models", Name: "llm"}
	v, err := env.ExecuteActivity(c.PodTargets, in)
	if err != nil {
		return nil, err
	}
	var targets []traffic.Target
	if err := v.Get(&targets); err != nil {
		t.Fatal(err)
	}
	var pods []string
	for _, tg := range targets {
		pods = append(pods, tg.Pod+"@"+tg.Node+"/"+tg.InstanceID)
	}
	return pods, nil
}

func podFixture(pods ...*corev1.Pod) *fake.Clientset {
	replicas := int32(3)
	objs := []runtime.Object{&appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "llm", Namespace: "models"},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "llm"}}},
	}}
	for _, n := range []string{"n1", "n2"} {
		objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}, Spec: corev1.NodeSpec{ProviderID: "aws:///us-east-1a/i-" + n}})
	}
	for _, p := range pods {
		objs = append(objs, p)
	}
	return fake.NewClientset(objs...)
}

// In instance mode a target is a whole node: a pod removed from a node where another pod stays is left in
// the load balancer (taking its node out would take the other pod out too, for good); one alone on its
// node goes out with it.
func TestPodTargetsLeaveOutANodeThatKeepsAPodWhenTargetsAreNodes(t *testing.T) {
	kube := podFixture(readyPodOn("p1", "n1"), readyPodOn("p2", "n1"), readyPodOn("p3", "n2"))
	got, err := podTargets(t, kube, activities.PodTargetsInput{Pods: []string{"p1", "p3"}, SharedNodesStay: true})
	if err != nil || strings.Join(got, ",") != "p3@n2/i-n2" {
		t.Fatalf("instance mode: targets %v (%v), want p3 on n2 only", got, err)
	}
	got, err = podTargets(t, kube, activities.PodTargetsInput{Pods: []string{"p1", "p3"}})
	if err != nil || strings.Join(got, ",") != "p1@n1/i-n1,p3@n2/i-n2" {
		t.Fatalf("ip mode: targets %v (%v), want p1 and p3", got, err)
	}
}

// A node that cannot be read for a moment fails the listing, retried: a target without its instance is
// refused for good by a target group in instance mode.
func TestPodTargetsRetryANodeThatCannotBeRead(t *testing.T) {
	kube := podFixture(readyPodOn("p1", "n1"))
	kube.PrependReactor("get", "nodes", func(ktesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("etcd leader changed")
	})
	_, err := podTargets(t, kube, activities.PodTargetsInput{Pods: []string{"p1"}})
	var appErr *temporal.ApplicationError
	if err == nil || !strings.Contains(err.Error(), "reading node n1 of pod models/p1") || (errors.As(err, &appErr) && appErr.NonRetryable()) {
		t.Fatalf("error %v, want a retryable error naming the node", err)
	}
}

// An attempt that begins past the drain's deadline (a retry after a lost worker) evicts nothing: the saga
// restores the node on its error, and a pod evicted then would only start again elsewhere.
func TestADrainAttemptPastTheDeadlineEvictsNothing(t *testing.T) {
	f := newDrainFixture(t, modelPod("p1"))
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	c := &activities.Cluster{Kube: f.kube, Poll: 10 * time.Millisecond}
	env.RegisterActivity(c)
	_, err := env.ExecuteActivity(c.DrainNode, drainInput(-time.Second))
	if err == nil || !strings.Contains(err.Error(), activities.ErrDrainTimeout) {
		t.Fatalf("error %v, want the drain's deadline passed", err)
	}
	if _, err := f.kube.CoreV1().Pods("models").Get(context.Background(), "p1", metav1.GetOptions{}); err != nil {
		t.Fatalf("p1 was evicted: %v", err)
	}
	if got := *f.scale.deployment().Spec.Replicas; got != 3 {
		t.Fatalf("replicas %d, want 3 untouched", got)
	}
}
