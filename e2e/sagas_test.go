package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/llmscaler/llmscaler/policy"
	"github.com/llmscaler/llmscaler/workflows"
)

func (e *env) readyEndpoints() int {
	slices, err := e.kube.DiscoveryV1().EndpointSlices(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=llm"})
	if err != nil {
		return -1
	}
	n := 0
	for _, s := range slices.Items {
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				n++
			}
		}
	}
	return n
}

// Load rises: a node is added, pods turn Ready, endpoints serve, the decision is recorded. Load falls: the
// victims are cordoned, drained and removed, and the replicas reduced.
func TestScaleOutThenScaleInOnTheRealStack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{nodes: 1, replicas: 1})
	e.setLoad(5) // at target: steady
	e.startWorker()
	e.start()
	e.waitFor("a first evaluation", 30*time.Second, func() bool { return e.status().Evaluations > 0 })

	e.setLoad(15) // 15 per pod vs 5: three replicas
	e.waitFor("the scale-out to finish", 90*time.Second, func() bool {
		s := e.status()
		a := lastAction(s)
		return a != nil && a.Kind == policy.ScaleOut && a.Result != "running"
	})
	s := e.status()
	a := lastAction(s)
	if a.Result != "succeeded" || a.ToReplicas != 3 || a.ToNodes != 3 {
		t.Fatalf("scale-out: %+v", *a)
	}
	if got := len(e.groupNodes()); got != 3 {
		t.Fatalf("%d nodes in the group after the scale-out, want 3", got)
	}
	if r, p, ep := e.deploymentReplicas(), e.readyPods(), e.readyEndpoints(); r != 3 || p != 3 || ep != 3 {
		t.Fatalf("after the scale-out: %d replicas, %d ready pods, %d ready endpoints; want 3 each", r, p, ep)
	}
	if !strings.Contains(a.Reason, "lorax_queue_length") || !strings.Contains(a.Reason, "1 -> 3") {
		t.Errorf("the action's recorded reason does not explain it: %q", a.Reason)
	}
	// Its capacity order is on the record, with when it served: the lead time the policy measures.
	if len(a.Waves) == 0 || a.Waves[0].Nodes != 2 || a.Waves[0].Replicas != 3 || a.Waves[0].Served.IsZero() ||
		!a.Waves[0].Served.After(a.Waves[0].Ordered) || a.Waves[0].Served.After(a.Finished) {
		t.Errorf("the scale-out's waves do not record its lead time: %+v (finished %s)", a.Waves, a.Finished)
	}

	e.setLoad(5) // 5 in all: back to one replica (ceil(0.33 x 3) = 2 first, as the HPA would, then 1)
	e.waitFor("the scale-in to one replica", 90*time.Second, func() bool {
		s := e.status()
		return s.CurrentReplicas == 1 && s.InProgress == nil && len(e.groupNodes()) == 1
	})
	for _, a := range e.status().Actions {
		if a.Kind == policy.ScaleIn && a.Result != "succeeded" {
			t.Fatalf("scale-in: %+v", a)
		}
	}
	if r := e.deploymentReplicas(); r != 1 {
		t.Fatalf("%d replicas after the scale-in, want 1", r)
	}
	for _, n := range e.groupNodes() {
		if n.Spec.Unschedulable {
			t.Errorf("the remaining node %s is cordoned", n.Name)
		}
	}

	// The decisions are there to be read, with their reasons.
	var decisions []policy.Decision
	if err := e.query(workflows.QueryDecisions, &decisions, 200); err != nil {
		t.Fatalf("decisions query: %v", err)
	}
	// The ones it acted on say so: each action started within the records kept (the latest 50) was started
	// on the evaluation before it (the last record at or before its start, which comes after the tick's
	// observation), marked acted; and not every record is (the evaluations between ask for nothing, or for
	// what is under way).
	acted := 0
	for _, d := range decisions {
		if d.Acted {
			acted++
		}
	}
	if acted == 0 || acted == len(decisions) {
		t.Fatalf("%d of %d decision records acted on", acted, len(decisions))
	}
	checked := 0
	for _, a := range e.status().Actions {
		i := len(decisions) - 1
		for i >= 0 && decisions[i].Time.After(a.Started) {
			i--
		}
		if i < 0 {
			continue // its decision is older than the records kept
		}
		if d := decisions[i]; !d.Acted || d.Action != a.Kind {
			t.Errorf("the %s started at %s: the decision before it (%s, %s, acted %v) is not one acted on for it",
				a.Kind, a.Started.Format(time.StampMilli), d.Time.Format(time.StampMilli), d.Action, d.Acted)
		}
		checked++
	}
	if checked == 0 {
		t.Fatalf("no action started within the %d decision records kept", len(decisions))
	}
	e.exportActions("scale-out-in")
}

// activitySteps are the activity types a workflow scheduled, in order.
func (e *env) activitySteps(workflowID string) []string {
	it := e.tc.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var steps []string
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			e.t.Fatalf("reading the history of %s: %v", workflowID, err)
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			steps = append(steps, a.GetActivityType().GetName())
		}
	}
	return steps
}

// A scale-in of several nodes takes every victim out of service (out of the load balancer, cordoned)
// before it drains the first, so that their requests finish together; then each is drained and
// terminated, and no node is left cordoned.
func TestAScaleInTakesEveryVictimOutOfServiceBeforeTheFirstDrain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{nodes: 3, replicas: 3})
	e.setLoad(15) // 5 per pod: steady at three
	e.startWorker()
	e.start()
	e.waitFor("a first evaluation", 30*time.Second, func() bool { return e.status().Evaluations > 0 })

	e.setLoad(1) // one replica is enough: two victims in one scale-in
	e.waitFor("the scale-in to one replica on one node", 90*time.Second, func() bool {
		s := e.status()
		return s.InProgress == nil && s.CurrentReplicas == 1 && len(e.groupNodes()) == 1
	})
	var scaleIn *workflows.ActionRecord
	for _, a := range e.status().Actions {
		if a.Kind == policy.ScaleIn {
			scaleIn = &a
			break
		}
	}
	if scaleIn == nil || scaleIn.Result != "succeeded" || scaleIn.FromReplicas != 3 || scaleIn.ToReplicas != 1 {
		t.Fatalf("want one scale-in from 3 to 1 replicas that succeeded; actions: %+v", e.status().Actions)
	}
	steps := e.activitySteps(scaleIn.WorkflowID)
	firstDrain := slices.Index(steps, "DrainNode")
	if firstDrain < 0 {
		t.Fatalf("the scale-in drained nothing: %v", steps)
	}
	count := func(steps []string, name string) int {
		n := 0
		for _, s := range steps {
			if s == name {
				n++
			}
		}
		return n
	}
	before := steps[:firstDrain]
	if count(before, "DeregisterTargets") != 2 || count(before, "Cordon") != 2 || count(steps, "DrainNode") != 2 || count(steps, "TerminateNode") != 2 {
		t.Fatalf("steps %v: want both victims out of the load balancer and cordoned before the first drain, then two drains and two terminations", steps)
	}
	if r, p := e.deploymentReplicas(), e.readyPods(); r != 1 || p != 1 {
		t.Fatalf("after the scale-in: %d replicas, %d ready pods; want 1 each", r, p)
	}
	for _, n := range e.groupNodes() {
		if n.Spec.Unschedulable {
			t.Errorf("the remaining node %s is cordoned", n.Name)
		}
	}
	e.exportActions("two-victims")
}
