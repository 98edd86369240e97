package activities_test

import (
	"context"
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	ktesting "k8s.io/client-go/testing"

	"github.com/llmscaler/llmscaler/activities"
)

// A scale write that loses a race with another writer is retried on a fresh read, not failed.
func TestScaleDeploymentRetriesAConflictOnAFreshRead(t *testing.T) {
	replicas := int32(3)
	kube := fake.NewClientset(&appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "llm", Namespace: "models", ResourceVersion: "1"},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas},
	})
	gvr := appsv1.SchemeGroupVersion.WithResource("deployments")
	deployment := func() *appsv1.Deployment {
		obj, err := kube.Tracker().Get(gvr, "models", "llm")
		if err != nil {
			t.Fatal(err)
		}
		return obj.(*appsv1.Deployment)
	}
	write := func(replicas int32, rv string) {
		d := deployment().DeepCopy()
		d.Spec.Replicas, d.ResourceVersion = &replicas, rv
		if err := kube.Tracker().Update(gvr, d, "models"); err != nil {
			t.Fatal(err)
		}
	}
	// The fake clientset does not serve the scale subresource: these reactors do, from the Deployment.
	gets, updates := 0, 0
	kube.PrependReactor("get", "deployments", func(a ktesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		gets++
		d := deployment()
		return true, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: d.Namespace, ResourceVersion: d.ResourceVersion},
			Spec: autoscalingv1.ScaleSpec{Replicas: *d.Spec.Replicas}}, nil
	})
	kube.PrependReactor("update", "deployments", func(a ktesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		updates++
		s := a.(ktesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
		if updates == 1 {
			write(4, "2") // another writer got there between our read and our write
		}
		if s.ResourceVersion != deployment().ResourceVersion {
			return true, nil, apierrors.NewConflict(gvr.GroupResource(), s.Name,
				errors.New("the object has been modified; please apply your changes to the latest version and try again"))
		}
		write(s.Spec.Replicas, "3")
		return true, s, nil
	})

	c := &activities.Cluster{Kube: kube}
	res, err := c.ScaleDeployment(context.Background(), activities.ScaleDeploymentInput{
		Deployment: activities.DeploymentRef{Namespace: "models", Name: "llm"}, Replicas: 2})
	if err != nil {
		t.Fatalf("scaling after one conflict: %v", err)
	}
	if got := *deployment().Spec.Replicas; got != 2 {
		t.Fatalf("replicas %d, want 2", got)
	}
	if gets != 2 || updates != 2 {
		t.Fatalf("%d reads and %d writes of the scale, want 2 and 2 (a fresh read before the second write)", gets, updates)
	}
	if res.Previous != 4 {
		t.Fatalf("previous replicas %d, want 4 (the other writer's, from the fresh read)", res.Previous)
	}
}
