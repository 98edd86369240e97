package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/llmscaler/llmscaler/activities"
)

// Activity stubs: called through nil pointers so the compiler checks the names.
var (
	nodesActs   *activities.Nodes
	clusterActs *activities.Cluster
	trafficActs *activities.Traffic
	observer    *activities.Observer
)

// quick is the options of short API calls: retried with backoff, throttling honoured through the error's
// NextRetryDelay, non-retryable errors (bounds, capacity, validation) stop at once.
func quick(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
			MaximumAttempts:    10,
		},
	})
}

// waiting is the options of a heartbeating wait with its own deadline: a lost worker is noticed within the
// heartbeat timeout and the wait resumes on another attempt, up to the deadline.
func waiting(ctx workflow.Context, summary string, deadline time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: deadline + time.Minute,
		HeartbeatTimeout:    15 * time.Second,
		// A cancelled saga waits until the wait has stopped before it compensates: a drain still running
		// could otherwise lower the Deployment after the compensation restored it.
		WaitForCancellation: true,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    15 * time.Second,
		},
	})
}

// ScaleOut is the scale-out saga: request the node count from the node group (an absolute size), wait until
// the nodes are Ready with GPUs allocatable, scale the Deployment, wait until the new pods are Ready, and
// wait until they serve behind the load balancer. Nodes that never become ready are removed again and the
// saga fails with the reason; the autoscaler retries later with backoff.
//
// A Retarget signal raises the target while the saga runs: the extra nodes are requested at once, so they
// boot in parallel, while the saga finishes the wave under way with the nodes it was waiting for, then runs
// another wave for the rest. Capacity that has arrived is put to work without waiting for the last node.
func ScaleOut(ctx workflow.Context, in ScaleOutInput) (ScaleResult, error) {
	retarget := workflow.GetSignalChannel(ctx, SignalRetarget)
	m := in.Model
	started := workflow.Now(ctx)
	var result ScaleResult
	s := &scaleOut{in: in, retarget: retarget, target: Retarget{Replicas: in.TargetReplicas, Nodes: in.TargetNodes}, requested: in.FromNodes}
	replicas := in.FromReplicas
	for wave := s.target; ; wave = s.target {
		// Nodes first: pods scheduled before their GPUs exist would only sit Pending.
		if err := s.request(ctx); err != nil {
			return result, err
		}
		nodeDeadline := workflow.Now(ctx).Add(in.NodeReady.D())
		summary := fmt.Sprintf("wait for %d node(s) of %s Ready with GPUs allocatable (until %s)", wave.Nodes, m.Group.Group, nodeDeadline.UTC().Format(time.TimeOnly))
		var nodes activities.WaitNodesResult
		err := s.wait(ctx, waiting(ctx, summary, in.NodeReady.D()), nodesActs.WaitNodesReady,
			activities.WaitNodesInput{Group: m.Group, Want: wave.Nodes, Deadline: nodeDeadline, Since: started}, &nodes)
		if err != nil {
			return result, s.compensateNodes(ctx, err, &result)
		}

		if wave.Replicas > replicas {
			summary := fmt.Sprintf("scale %s to %d replicas (%d -> %d)", m.Deployment.Name, wave.Replicas, replicas, wave.Replicas)
			if err := workflow.ExecuteActivity(quick(ctx, summary), clusterActs.ScaleDeployment,
				activities.ScaleDeploymentInput{Deployment: m.Deployment, Replicas: wave.Replicas}).Get(ctx, nil); err != nil {
				return result, err
			}
		}
		podDeadline := workflow.Now(ctx).Add(in.PodsReady.D())
		var pods activities.WaitPodsResult
		summary = fmt.Sprintf("wait for %d Ready pod(s) of %s", wave.Replicas, m.Deployment.Name)
		if err := s.wait(ctx, waiting(ctx, summary, in.PodsReady.D()), clusterActs.WaitPodsReady,
			activities.WaitPodsInput{Deployment: m.Deployment, Replicas: wave.Replicas, Deadline: podDeadline}, &pods); err != nil {
			if isType(err, activities.ErrPodsNotReady) {
				// Give the count back: replicas that cannot start only hold GPUs and confuse the next evaluation.
				restore(ctx, fmt.Sprintf("scale %s back to %d replicas (pods not Ready)", m.Deployment.Name, in.FromReplicas),
					clusterActs.ScaleDeployment, activities.ScaleDeploymentInput{Deployment: m.Deployment, Replicas: in.FromReplicas})
			}
			return result, err
		}
		replicas = max(replicas, wave.Replicas)
		result.Replicas = replicas

		if m.LoadBalancer.Mode != "none" {
			lb := activities.TrafficInput{Mode: m.LoadBalancer.Mode, Config: m.LoadBalancer.Config, Targets: pods.Ready}
			if err := workflow.ExecuteActivity(quick(ctx, fmt.Sprintf("register %d target(s) with the load balancer (%s)", len(pods.Ready), m.LoadBalancer.Mode)),
				trafficActs.RegisterTargets, lb).Get(ctx, nil); err != nil {
				return result, err
			}
			lb.Deadline = workflow.Now(ctx).Add(in.EndpointsReady.D())
			summary := fmt.Sprintf("wait until %d pod(s) serve behind the load balancer (%s)", len(pods.Ready), lbName(m.LoadBalancer))
			if err := s.wait(ctx, waiting(ctx, summary, in.EndpointsReady.D()), trafficActs.WaitServing, lb, nil); err != nil {
				return result, err
			}
		}
		s.drainSignals(ctx)
		if s.target.Replicas <= wave.Replicas && s.target.Nodes <= wave.Nodes {
			return result, nil
		}
	}
}

// scaleOut is a ScaleOut saga's running state.
type scaleOut struct {
	in        ScaleOutInput
	retarget  workflow.ReceiveChannel
	target    Retarget
	requested int32
}

// request asks the node group for the target's node count, if more than asked for so far.
func (s *scaleOut) request(ctx workflow.Context) error {
	if s.target.Nodes <= s.requested {
		return nil
	}
	g := s.in.Model.Group.Group
	summary := fmt.Sprintf("add %d node(s) to %s (%d -> %d)", s.target.Nodes-s.requested, g, s.requested, s.target.Nodes)
	if err := workflow.ExecuteActivity(quick(ctx, summary), nodesActs.SetGroupSize,
		activities.SetGroupSizeInput{Group: s.in.Model.Group, Size: s.target.Nodes}).Get(ctx, nil); err != nil {
		return err
	}
	s.requested = s.target.Nodes
	return nil
}

// raise takes a Retarget signal into the target.
func (s *scaleOut) raise(c workflow.ReceiveChannel, ctx workflow.Context) {
	var r Retarget
	c.Receive(ctx, &r)
	s.target.Replicas = max(s.target.Replicas, r.Replicas)
	s.target.Nodes = max(s.target.Nodes, r.Nodes)
}

// wait runs a wait activity; a Retarget signal meanwhile raises the target and requests the extra nodes at
// once, and the wait goes on.
func (s *scaleOut) wait(ctx, actx workflow.Context, fn, arg, out any) error {
	f := workflow.ExecuteActivity(actx, fn, arg)
	for {
		done := false
		var err error
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(f, func(f workflow.Future) { err, done = f.Get(ctx, out), true })
		sel.AddReceive(s.retarget, func(c workflow.ReceiveChannel, _ bool) { s.raise(c, ctx) })
		sel.Select(ctx)
		if done {
			return err
		}
		if err := s.request(ctx); err != nil {
			return err
		}
	}
}

// drainSignals takes in Retarget signals that arrived between waits.
func (s *scaleOut) drainSignals(ctx workflow.Context) {
	for {
		var r Retarget
		if !s.retarget.ReceiveAsync(&r) {
			return
		}
		s.target.Replicas = max(s.target.Replicas, r.Replicas)
		s.target.Nodes = max(s.target.Nodes, r.Nodes)
	}
}

// compensateNodes undoes a node wait that failed (nodes not ready, launches failed): terminate the
// instances that did not become ready, set the group back to what serves, and fail with what was done.
func (s *scaleOut) compensateNodes(ctx workflow.Context, err error, result *ScaleResult) error {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || (appErr.Type() != activities.ErrNodesNotReady && appErr.Type() != activities.ErrCapacityUnavailable && appErr.Type() != activities.ErrLaunchFailed) {
		return err
	}
	m := s.in.Model
	var late activities.WaitNodesResult
	_ = appErr.Details(&late)
	result.Removed = removeNodes(ctx, m.Group, late.NotReady, "not Ready with GPUs allocatable when the scale-out gave up")
	ids := make([]string, len(result.Removed))
	for i, n := range result.Removed {
		ids[i] = n.InstanceID
	}
	// Launches that never happened still count in the group's size: bring it to what serves.
	// (Versioned: runs that failed before this step existed replay without it.)
	size := max(int32(len(late.Serving)), s.in.FromNodes)
	restored := false
	if workflow.GetVersion(ctx, "restore-group-size", workflow.DefaultVersion, 1) >= 1 {
		restored = restore(ctx, fmt.Sprintf("set %s back to %d node(s)", m.Group.Group, size), nodesActs.SetGroupSize,
			activities.SetGroupSizeInput{Group: m.Group, Size: size})
	}
	// A failed workflow returns no result: the error itself says what the compensation did.
	msg := appErr.Message() + "; removed again: " + strings.Join(ids, ", ")
	if len(ids) == 0 {
		msg = appErr.Message() + "; no instance to remove"
	}
	if restored {
		msg += fmt.Sprintf("; group set back to %d", size)
	}
	return temporal.NewNonRetryableApplicationError(msg, appErr.Type(), err, *result)
}

func lbName(lb LoadBalancerRef) string {
	if lb.Mode == "aws-target-group" {
		return "target group " + lb.Config.TargetGroupARN
	}
	return "service " + lb.Config.Service
}

// removeNodes is the compensation for nodes that never became ready: terminate each, in a context that a
// cancelled saga cannot stop.
func removeNodes(ctx workflow.Context, group activities.NodeGroupRef, nodes []activities.NodeRef, why string) []activities.NodeRef {
	var removed []activities.NodeRef
	for _, n := range nodes {
		name := n.InstanceID
		if n.Name != "" {
			name = n.Name + " (" + n.InstanceID + ")"
		}
		if restore(ctx, fmt.Sprintf("remove %s from %s: %s", name, group.Group, why), nodesActs.TerminateNode,
			activities.TerminateNodeInput{Group: group, Node: n}) {
			removed = append(removed, n)
		}
	}
	return removed
}

// restore runs a compensating activity in a disconnected context, so it runs even when the saga was
// cancelled; it reports whether it succeeded (a failure is in the history with its reason).
func restore(ctx workflow.Context, summary string, fn any, arg any) bool {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	err := workflow.ExecuteActivity(quick(dctx, summary), fn, arg).Get(dctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Error("compensation failed", "step", summary, "error", err)
	}
	return err == nil
}
