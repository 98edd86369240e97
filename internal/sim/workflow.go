package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/llmscaler/llmscaler/activities"
	"github.com/llmscaler/llmscaler/internal/trace"
	"github.com/llmscaler/llmscaler/policy"
	"github.com/llmscaler/llmscaler/traffic"
	"github.com/llmscaler/llmscaler/worker"
	"github.com/llmscaler/llmscaler/workflows"
)

// RunWorkflow runs the autoscaler workflow itself (workflows.Autoscaler, its ScaleOut and ScaleIn child
// workflows, the policy, the sagas' steps, retries and timeouts) under Temporal's test environment with
// time skipping, its activities backed by the simulated cluster: Observe reads it as RunPolicy's autoscaler
// does, SetGroupSize launches nodes, the waits end when the simulated nodes and pods are there, the drain
// when the victim's pods have finished their requests. The simulated cluster is played up to the
// workflow's clock before each activity acts, so the two clocks are one.
//
// It measures what RunPolicy measures, with nothing of the workflow re-implemented: RunPolicy's action rule
// is an imitation of the workflow, this is the workflow.
//
// With p.Explain, its late spells are explained from the workflow's own decision records (its decisions
// query, read as it runs, since it keeps only the latest).
func RunWorkflow(reqs []trace.Request, a Assumptions, p Policy, initial int) (Result, error) {
	if p.Workflow == nil {
		return Result{}, fmt.Errorf("policy %s has no model spec to run the workflow on", p.Name)
	}
	spec := p.Workflow.WithDefaults()
	spec.Spec.GPUsPerPod = a.GPUsPerPod
	spec.Spec.EvaluationInterval = a.EvaluationInterval
	spec.Spec.DrainGracePeriod = a.DrainGrace
	spec.Spec.NodeGroup.GPUsPerNode = a.GPUsPerNode
	c := &workflowCluster{initial: initial, grace: a.DrainGrace.D()}
	s := newSim(a, reqs, c)
	c.s = s
	s.start()

	in := workflows.AutoscalerInput{Spec: spec}
	start := epoch
	// The test environment does not suggest continuing as new, but the workflow continues by itself at its
	// history cap: a long trace runs as several runs, each carrying the state of the one before.
	for {
		env := c.newEnvironment(start)
		if p.Explain > 0 {
			c.collectDecisions(start, s.end)
		}
		env.RegisterDelayedCallback(env.CancelWorkflow, s.end.Sub(start))
		env.ExecuteWorkflow(workflows.AutoscalerWorkflowName, in)
		err := env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
				return Result{}, fmt.Errorf("reading the continue-as-new input: %w", err)
			}
			start = env.Now()
			continue
		}
		if err != nil && !temporal.IsCanceledError(err) {
			return Result{}, fmt.Errorf("the autoscaler workflow failed at %s: %w", env.Now().Sub(epoch), err)
		}
		break
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s.runUntil(s.end)
	r := s.finish(p.Name)
	if p.Explain > 0 {
		if c.queryErr != nil {
			return Result{}, fmt.Errorf("reading the workflow's decision records: %w", c.queryErr)
		}
		r.LateSpells = explained(lateSpells(r.Series, c.notes, a.Warmup.D(), a.LeadTime(), a.EvaluationInterval.D(), p.Explain))
	}
	return r, nil
}

// collectDecisions reads the workflow's decision records through its decisions query as it runs, every
// collectEvery of its evaluations (it keeps only the latest), and once more just before the run's end.
func (c *workflowCluster) collectDecisions(start, end time.Time) {
	env := c.env
	every := time.Duration(collectEvery) * c.s.a.EvaluationInterval.D()
	read := func() {
		v, err := env.QueryWorkflow(workflows.QueryDecisions, 0)
		var ds []policy.Decision
		if err == nil {
			err = v.Get(&ds)
		}
		if err != nil {
			c.queryErr = err
			return
		}
		// The reads come in time order and overlap, each with the latest records in time order: the ones
		// after the last kept are new.
		for _, d := range ds {
			at := d.Time.Sub(epoch).Seconds()
			if k := len(c.notes); k == 0 || at > c.notes[k-1].At {
				c.notes = append(c.notes, DecisionNote{At: at, Acted: d.Acted, Summary: d.Summary})
			}
		}
	}
	for t := every; t < end.Sub(start); t += every {
		env.RegisterDelayedCallback(read, t)
	}
	env.RegisterDelayedCallback(read, end.Sub(start)-time.Nanosecond)
}

// collectEvery is how many evaluations apart the decision records are read: fewer than the workflow keeps
// (workflows' keepDecisions, 50).
const collectEvery = 40

// workflowCluster is the simulated cluster behind the workflow's activities. The activities run on the
// test environment's goroutines, so every one takes the lock (acting).
type workflowCluster struct {
	mu      sync.Mutex
	s       *sim
	env     *testsuite.TestWorkflowEnvironment
	initial int
	grace   time.Duration
	sagas   int
	// notes are the workflow's decision records in time order, as the simulator's own autoscaler writes
	// them, read when explaining (collectDecisions), and queryErr the last failure to read them.
	notes    []DecisionNote
	queryErr error
}

func (c *workflowCluster) init(s *sim)       { s.provision(c.initial) }
func (c *workflowCluster) changed(*sim)      {}
func (c *workflowCluster) scaleActions() int { return c.sagas }

// waited is the end of a wait's attempt that found have of the want it waits for: nil when there are
// enough; at the deadline the activity's own non-retryable error (with details); before it a retryable
// "not yet" whose next attempt comes when the want-th earliest of the times at (when the nodes or pods
// will be there) comes, or at the deadline when fewer are on their way. The test environment gives up on
// an activity after ten attempts, so the waits do not poll.
func waited(s *sim, have, want int, at []time.Time, deadline time.Time, what, errType string, details ...any) error {
	switch {
	case have >= want:
		return nil
	case !s.now.Before(deadline):
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%d of %d %s at the deadline", have, want, what), errType, nil, details...)
	}
	next := deadline
	if len(at) >= want {
		slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
		if at[want-1].Before(deadline) { // else the last attempt is at the deadline, as the activity's
			next = at[want-1]
		}
	}
	return temporal.NewApplicationErrorWithOptions("not there yet in the simulated cluster", "NotYet",
		temporal.ApplicationErrorOptions{NextRetryDelay: max(next.Sub(s.now), time.Millisecond)})
}

func (c *workflowCluster) newEnvironment(start time.Time) *testsuite.TestWorkflowEnvironment {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestWorkflowEnvironment()
	env.SetStartTime(start)
	worker.Register(env, worker.Deps{})
	c.env = env
	env.SetOnChildWorkflowStartedListener(func(*workflow.Info, workflow.Context, converter.EncodedValues) {
		c.mu.Lock()
		c.sagas++
		c.mu.Unlock()
	})

	var (
		observer *activities.Observer
		nodes    *activities.Nodes
		cluster  *activities.Cluster
		lb       *activities.Traffic
	)
	env.OnActivity(observer.Observe, mock.Anything, mock.Anything).Return(
		acting(c, func(s *sim, in activities.ObserveInput) (policy.Observation, error) {
			return s.observe(policy.Spec{Metrics: in.Metrics}, nil), nil
		}))
	env.OnActivity(nodes.SetGroupSize, mock.Anything, mock.Anything).Return(
		acting(c, func(s *sim, in activities.SetGroupSizeInput) (activities.SetGroupSizeResult, error) {
			prev := int32(s.liveNodes())
			s.setGroupSize(int(in.Size))
			// A lower size (a compensation) ends instances, those not serving yet first, newest first.
			for i := len(s.nodes) - 1; i >= 0 && s.liveNodes() > int(in.Size); i-- {
				if n := s.nodes[i]; !n.gone && !n.serving(s.now) {
					s.terminateNode(n)
				}
			}
			for i := len(s.nodes) - 1; i >= 0 && s.liveNodes() > int(in.Size); i-- {
				s.terminateNode(s.nodes[i])
			}
			return activities.SetGroupSizeResult{Previous: prev}, nil
		}))
	env.OnActivity(nodes.WaitNodesReady, mock.Anything, mock.Anything).Return(
		acting(c, func(s *sim, in activities.WaitNodesInput) (activities.WaitNodesResult, error) {
			var out activities.WaitNodesResult
			var at []time.Time
			for _, n := range s.nodes {
				if n.gone || n.cordoned {
					continue // a cordoned node is neither serving nor on its way, as for the activity
				}
				at = append(at, n.gpus)
				ref := activities.NodeRef{Name: n.name, InstanceID: n.name}
				if n.serving(s.now) {
					out.Serving = append(out.Serving, ref)
				} else {
					out.NotReady = append(out.NotReady, ref)
				}
			}
			return out, waited(s, len(out.Serving), int(in.Want), at, in.Deadline, "nodes Ready with GPUs allocatable", activities.ErrNodesNotReady, out)
		}))
	env.OnActivity(nodes.TerminateNode, mock.Anything, mock.Anything).Return(
		actingOnly(c, func(s *sim, in activities.TerminateNodeInput) error {
			if n := s.nodeNamed(in.Node.Name); n != nil {
				s.terminateNode(n) // an instance already gone is success
			}
			return nil
		}))
	env.OnActivity(nodes.CheckRemovable, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(cluster.ScaleDeployment, mock.Anything, mock.Anything).Return(
		acting(c, func(s *sim, in activities.ScaleDeploymentInput) (activities.ScaleDeploymentResult, error) {
			prev := s.replicas
			// The candidates' pod-deletion-cost makes the ReplicaSet remove them first.
			surplus := len(s.activePods()) - int(in.Replicas)
			for _, name := range in.DeletionCandidates {
				if p := s.podNamed(name); p != nil && surplus > 0 && !p.deleting {
					s.deletePod(p, c.grace)
					surplus--
				}
			}
			s.setReplicas(in.Replicas, c.grace)
			s.schedule()
			return activities.ScaleDeploymentResult{Previous: prev}, nil
		}))
	env.OnActivity(cluster.WaitPodsReady, mock.Anything, mock.Anything).Return(
		acting(c, func(s *sim, in activities.WaitPodsInput) (activities.WaitPodsResult, error) {
			var out activities.WaitPodsResult
			var at []time.Time
			for _, p := range s.activePods() {
				if p.node != nil {
					at = append(at, p.ready)
				}
				if p.isReady(s.now) {
					out.Ready = append(out.Ready, traffic.Target{Pod: p.name, Node: p.node.name})
				}
			}
			return out, waited(s, len(out.Ready), int(in.Replicas), at, in.Deadline, "pods Ready", activities.ErrPodsNotReady)
		}))
	env.OnActivity(cluster.PodTargets, mock.Anything, mock.Anything).Return(
		acting(c, func(s *sim, in activities.PodTargetsInput) ([]traffic.Target, error) {
			var out []traffic.Target
			for _, p := range s.pods {
				// The Deployment's Ready pods (not terminating), on the node or by name, as the activity lists them.
				if !p.isReady(s.now) || p.deleting || (in.Node != "" && p.node.name != in.Node) || (in.Node == "" && !slices.Contains(in.Pods, p.name)) {
					continue
				}
				out = append(out, traffic.Target{Pod: p.name, Node: p.node.name})
			}
			return out, nil
		}))
	env.OnActivity(cluster.Cordon, mock.Anything, mock.Anything).Return(
		actingOnly(c, func(s *sim, in activities.CordonInput) error {
			if n := s.nodeNamed(in.Node); n != nil {
				n.cordoned = in.Unschedule
				s.schedule() // an uncordoned node takes pending pods
			}
			return nil
		}))
	env.OnActivity(cluster.DrainNode, mock.Anything, mock.Anything).Return(
		acting(c, func(s *sim, in activities.DrainInput) (activities.DrainResult, error) {
			n := s.nodeNamed(in.Node)
			var out activities.DrainResult
			var gone []time.Time
			for _, p := range s.pods {
				if n == nil || p.node != n || p.gone {
					continue
				}
				if !p.deleting {
					// Evicted with the drain's grace (none: the pod's own, the chart's); the Deployment loses the
					// replica (no replacement).
					grace := in.GracePeriod
					if grace <= 0 {
						grace = s.a.BaselineGrace.D()
					}
					s.deletePod(p, grace)
					out.Evicted = append(out.Evicted, p.name)
				}
				if !p.gone {
					// It goes when its requests have finished, or at the end of its grace.
					at := p.deadline
					if idle := p.srv.IdleAt(); !idle.IsZero() && idle.Before(at) {
						at = idle
					}
					gone = append(gone, at)
				}
			}
			s.replicas = int32(len(s.activePods()))
			out.Replicas = s.replicas
			// Each pod goes by the end of its grace: the drain never waits past the last one.
			return out, waited(s, 0, len(gone), gone, in.Deadline, "evicted pods gone", activities.ErrDrainTimeout)
		}))
	env.OnActivity(lb.RegisterTargets, mock.Anything, mock.Anything).Return(
		actingOnly(c, func(s *sim, in activities.TrafficInput) error {
			for _, t := range in.Targets {
				if p := s.podNamed(t.Pod); p != nil && p.deregistered {
					p.deregistered = false
					s.balancedStale = true
				}
			}
			s.flushGateway()
			return nil
		}))
	env.OnActivity(lb.WaitServing, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.TrafficInput) ([]string, error) {
			out := make([]string, len(in.Targets))
			for i, t := range in.Targets {
				out[i] = t.Pod
			}
			return out, nil
		})
	env.OnActivity(lb.DeregisterTargets, mock.Anything, mock.Anything).Return(
		actingOnly(c, func(s *sim, in activities.TrafficInput) error {
			for _, t := range in.Targets {
				if p := s.podNamed(t.Pod); p != nil {
					p.deregistered = true
					s.balancedStale = true
				}
			}
			return nil
		}))
	return env
}

// acting is the mock of an activity: fn acts on the simulated cluster, played up to the workflow's clock,
// under the lock (the test environment runs activities on goroutines of their own).
func acting[In, Out any](c *workflowCluster, fn func(*sim, In) (Out, error)) func(context.Context, In) (Out, error) {
	return func(_ context.Context, in In) (Out, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.s.runUntil(c.env.Now())
		return fn(c.s, in)
	}
}

// actingOnly is acting for an activity that returns only an error.
func actingOnly[In any](c *workflowCluster, fn func(*sim, In) error) func(context.Context, In) error {
	act := acting(c, func(s *sim, in In) (struct{}, error) { return struct{}{}, fn(s, in) })
	return func(ctx context.Context, in In) error {
		_, err := act(ctx, in)
		return err
	}
}
