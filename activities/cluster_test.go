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
func TestDrainHeartbeatsWhatItEvictedWhileAnEvictionIsRefused(t *testing.T) {
	replicas := int32(3)
	controller := true
	pod := func(name string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "models", Labels: map[string]string{"app": "llm"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "llm-1", UID: "rs", Controller: &controller}}},
			Spec: corev1.PodSpec{NodeName: "n1"},
		}
	}
	kube := fake.NewClientset(&appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "llm", Namespace: "models", ResourceVersion: "1"},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "llm"}}},
	}, pod("p1"), pod("p2"))
	kube.Resources = []*metav1.APIResourceList{{GroupVersion: "v1", APIResources: []metav1.APIResource{
		{Name: "pods", Kind: "Pod", Namespaced: true}, {Name: "pods/eviction", Kind: "Eviction", Group: "policy", Version: "v1"}}}}
	scale := serveScale(t, kube)
	// p1 is evicted (and goes); p2's eviction is refused, as a PodDisruptionBudget does.
	kube.PrependReactor("create", "pods", func(a ktesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		name := a.(ktesting.CreateAction).GetObject().(*policyv1.Eviction).Name
		if name == "p2" {
			return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
		}
		return true, nil, kube.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), "models", name)
	})

	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	c := &activities.Cluster{Kube: kube, Poll: 10 * time.Millisecond}
	env.RegisterActivity(c)
	var last map[string]any
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
		last = nil
		_ = details.Get(&last)
	})
	_, err := env.ExecuteActivity(c.DrainNode, activities.DrainInput{Deployment: activities.DeploymentRef{Namespace: "models", Name: "llm"},
		Node: "n1", FromReplicas: 3, Deadline: time.Now().Add(100 * time.Millisecond)})
	if err == nil || !strings.Contains(err.Error(), activities.ErrDrainBlocked) {
		t.Fatalf("error %v, want the drain blocked", err)
	}
	if fmt.Sprint(last["evicted"]) != "[p1]" || last["blocked"] != "p2" {
		t.Fatalf("last heartbeat %v: want p1 evicted and p2 blocked", last)
	}
	if got := *scale.deployment().Spec.Replicas; got != 2 {
		t.Fatalf("replicas %d after evicting one of three pods, want 2", got)
	}
}
