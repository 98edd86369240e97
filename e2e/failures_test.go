package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/llmscaler/llmscaler/activities"
	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/policy"
	"github.com/llmscaler/llmscaler/traffic"
)

// podUIDs maps the model's live pods to their UIDs.
func (e *env) podUIDs() map[string]types.UID {
	pods, err := e.kube.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=llm"})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]types.UID{}
	for _, p := range pods.Items {
		out[p.Name] = p.UID
	}
	return out
}

// A node that never becomes Ready is removed again by compensation; the failure is recorded and the next
// scale-out waits (backoff).
func TestNodeThatNeverBecomesReadyIsRemovedAndTheFailureRecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{nodes: 1, replicas: 1, neverReady: true})
	e.spec.Spec.Timeouts.NodeReady = policy.Duration(6 * time.Second)
	e.setLoad(10) // two replicas
	e.startWorker()
	e.start()
	e.waitFor("the scale-out to fail", 60*time.Second, func() bool {
		a := lastAction(e.status())
		return a != nil && a.Kind == policy.ScaleOut && a.Result != "running"
	})
	s := e.status()
	a := lastAction(s)
	if a.Result != "failed" || !strings.Contains(a.Error, activities.ErrNodesNotReady) || !strings.Contains(a.Error, "removed again") {
		t.Fatalf("scale-out record: %+v", *a)
	}
	if s.OutBackoff.Failures != 1 || s.OutBackoff.Until.IsZero() {
		t.Fatalf("no backoff after the failure: %+v", s.OutBackoff)
	}
	e.waitFor("the never-ready node to be removed", 20*time.Second, func() bool { return len(e.groupNodes()) == 1 })
	if r := e.deploymentReplicas(); r != 1 {
		t.Fatalf("the Deployment was scaled to %d before its nodes were ready; want 1", r)
	}
	// While backing off, decisions say so instead of starting another scale-out.
	e.waitFor("a decision held by the backoff", 20*time.Second, func() bool {
		d := e.status().LastDecision
		return d != nil && strings.Contains(d.Summary, "scale-out backing off")
	})
	if n := len(e.status().Actions); n != 1 {
		t.Fatalf("%d actions during the backoff, want 1", n)
	}
	e.exportActions("never-ready")
}

// A PodDisruptionBudget that blocks the drain leads to an uncordon and no pod deleted by force.
func TestPDBBlockingTheDrainRestoresTheNodeAndDeletesNoPod(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{nodes: 2, replicas: 2})
	e.spec.Spec.Timeouts.Drain = policy.Duration(5 * time.Second)
	two := intstr.FromInt32(2)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "llm", Namespace: e.ns},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &two, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "llm"}}},
	}
	if _, err := e.kube.PolicyV1().PodDisruptionBudgets(e.ns).Create(context.Background(), pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := e.podUIDs()
	e.setLoad(2) // one replica would do
	e.startWorker()
	e.start()
	e.waitFor("the scale-in to end", 60*time.Second, func() bool {
		a := lastAction(e.status())
		return a != nil && a.Kind == policy.ScaleIn && a.Result != "running"
	})
	s := e.status()
	a := lastAction(s)
	if a.Result != "failed" || !strings.Contains(a.Error, activities.ErrDrainBlocked) || !strings.Contains(a.Error, "disruption budget") {
		t.Fatalf("scale-in record: %+v", *a)
	}
	e.waitFor("the victim to be uncordoned", 10*time.Second, func() bool {
		for _, n := range e.groupNodes() {
			if n.Spec.Unschedulable {
				return false
			}
		}
		return true
	})
	after := e.podUIDs()
	for name, uid := range before {
		if after[name] != uid {
			t.Errorf("pod %s was deleted (before %v, after %v)", name, before, after)
		}
	}
	if r := e.deploymentReplicas(); r != 2 {
		t.Fatalf("%d replicas after a blocked drain, want 2", r)
	}
	if n := len(e.groupNodes()); n != 2 {
		t.Fatalf("%d nodes after a blocked drain, want 2", n)
	}
	if s.InBackoff.Failures != 1 {
		t.Fatalf("no scale-in backoff after the failure: %+v", s.InBackoff)
	}
	e.exportActions("pdb-blocked")
}

// Load returning while a scale-in drains cancels it and restores the node to service.
func TestLoadReturningMidDrainCancelsTheScaleIn(t *testing.T) {
	t.Parallel()
	// Evicted pods take 20-40 s to finish (kwok's delete stage), long enough to change our mind.
	e := newEnv(t, envOptions{nodes: 2, replicas: 2, grace: 40, deleteDelay: "20s"})
	e.setLoad(10) // at target for two
	e.startWorker()
	e.start()
	e.waitFor("a first evaluation", 30*time.Second, func() bool { return e.status().Evaluations > 0 })
	e.setLoad(2)
	e.waitFor("the drain to start", 30*time.Second, func() bool {
		for _, n := range e.groupNodes() {
			if n.Spec.Unschedulable {
				return true
			}
		}
		return false
	})
	e.setLoad(10)
	e.waitFor("the scale-in to be cancelled", 60*time.Second, func() bool {
		a := lastAction(e.status())
		return a != nil && a.Kind == policy.ScaleIn && a.Result != "running"
	})
	a := lastAction(e.status())
	if a.Result != "cancelled" || !strings.Contains(a.Error, "load returned") {
		t.Fatalf("scale-in record: %+v", *a)
	}
	e.waitFor("the node restored and two pods ready again", 90*time.Second, func() bool {
		for _, n := range e.groupNodes() {
			if n.Spec.Unschedulable {
				return false
			}
		}
		return len(e.groupNodes()) == 2 && e.readyPods() == 2 && e.deploymentReplicas() == 2
	})
	e.exportActions("load-returned")
}

// A wait for pods to serve that ends at its deadline names each pod not serving and why, in the load
// balancer's words: not an endpoint of the Service (the real EndpointSlice controller's slices), or a target
// failing its health checks (the emulated target group's).
func TestAWaitForServingThatTimesOutSaysWhyEachPodIsNotServing(t *testing.T) {
	e := newEnv(t, envOptions{aws: true, nodes: 1, replicas: 1, targetGroup: true})
	pods, err := e.kube.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=llm"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods: %v %v", pods, err)
	}
	pod := pods.Items[0]
	e.waitFor("the pod to be an endpoint", time.Minute, func() bool {
		h, err := e.deps().LoadBalancers[config.LoadBalancerEndpoints].Serving(context.Background(),
			traffic.Config{Namespace: e.ns, Service: "llm"}, []traffic.Target{{Pod: pod.Name}})
		return err == nil && len(h.Serving) == 1
	})
	waitServing := func(in activities.TrafficInput) error {
		var ts testsuite.WorkflowTestSuite
		env := ts.NewTestActivityEnvironment()
		traf := &activities.Traffic{LoadBalancers: e.deps().LoadBalancers, Poll: 200 * time.Millisecond}
		env.RegisterActivity(traf)
		_, err := env.ExecuteActivity(traf.WaitServing, in)
		return err
	}

	err = waitServing(activities.TrafficInput{Mode: config.LoadBalancerEndpoints, Config: traffic.Config{Namespace: e.ns, Service: "llm"},
		Targets: []traffic.Target{{Pod: pod.Name}, {Pod: "llm-elsewhere"}}, Deadline: time.Now().Add(time.Second)})
	if err == nil || !strings.Contains(err.Error(), "1 of 2 pods serving at the deadline; not serving: llm-elsewhere (not an endpoint of service llm") {
		t.Fatalf("endpoints: %v", err)
	}

	lb := e.spec.Spec.LoadBalancer
	cfg := traffic.Config{Namespace: e.ns, TargetGroupARN: lb.TargetGroupARN, TargetType: lb.TargetType, Port: 8000}
	targets := []traffic.Target{{Pod: pod.Name, IP: pod.Status.PodIP}, {Pod: "llm-no-such-ip", IP: "10.255.255.254"}}
	if err := e.deps().LoadBalancers[config.LoadBalancerTargetGroup].Register(context.Background(), cfg, targets); err != nil {
		t.Fatal(err)
	}
	// The target group's first check comes a second after registration: past it, the pod is healthy and the
	// address that no pod has fails.
	err = waitServing(activities.TrafficInput{Mode: config.LoadBalancerTargetGroup, Config: cfg, Targets: targets, Deadline: time.Now().Add(4 * time.Second)})
	if err == nil || !strings.Contains(err.Error(), "1 of 2 pods serving at the deadline; not serving: llm-no-such-ip (unhealthy: Target.FailedHealthChecks)") {
		t.Fatalf("target group: %v", err)
	}
}
