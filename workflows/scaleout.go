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
// saga fails with the reason; the autoscaler retries later with backoff. A Retarget signal raises the
// target while the saga runs.
func ScaleOut(ctx workflow.Context, in ScaleOutInput) (ScaleResult, error) {
	retarget := workflow.GetSignalChannel(ctx, SignalRetarget)
	target := Retarget{Replicas: in.TargetReplicas, Nodes: in.TargetNodes}
	m := in.Model
	started := workflow.Now(ctx)
	nodeDeadline := started.Add(in.NodeReady.D())
	var result ScaleResult
	fromNodes := in.FromNodes

	// Nodes first: pods scheduled before their GPUs exist would only sit Pending.
	for {
		if target.Nodes > fromNodes {
			summary := fmt.Sprintf("add %d node(s) to %s (%d -> %d)", target.Nodes-fromNodes, m.Group.Group, fromNodes, target.Nodes)
			var res activities.SetGroupSizeResult
			if err := workflow.ExecuteActivity(quick(ctx, summary), nodesActs.SetGroupSize,
				activities.SetGroupSizeInput{Group: m.Group, Size: target.Nodes}).Get(ctx, &res); err != nil {
				return result, err
			}
		}
		requested := max(target.Nodes, fromNodes)
		summary := fmt.Sprintf("wait for %d node(s) of %s Ready with GPUs allocatable (until %s)", target.Nodes, m.Group.Group, nodeDeadline.UTC().Format(time.TimeOnly))
		var nodes activities.WaitNodesResult
		raised, err := waitOrRetarget(ctx, retarget, &target, waiting(ctx, summary, nodeDeadline.Sub(workflow.Now(ctx))), nodesActs.WaitNodesReady,
			activities.WaitNodesInput{Group: m.Group, Want: target.Nodes, Deadline: nodeDeadline, Since: started}, &nodes)
		if raised {
			fromNodes = requested
			continue
		}
		if err != nil {
			var appErr *temporal.ApplicationError
			if errors.As(err, &appErr) && (appErr.Type() == activities.ErrNodesNotReady || appErr.Type() == activities.ErrCapacityUnavailable || appErr.Type() == activities.ErrLaunchFailed) {
				var late activities.WaitNodesResult
				_ = appErr.Details(&late)
				result.Removed = removeNodes(ctx, m.Group, late.NotReady, "not Ready with GPUs allocatable when the scale-out gave up")
				ids := make([]string, len(result.Removed))
				for i, n := range result.Removed {
					ids[i] = n.InstanceID
				}
				// Launches that never happened still count in the group's size: bring it to what serves.
				// (Versioned: runs that failed before this step existed replay without it.)
				size := max(int32(len(late.Serving)), fromNodes)
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
				return result, temporal.NewNonRetryableApplicationError(msg, appErr.Type(), err, result)
			}
			return result, err
		}
		break
	}

	if target.Replicas > in.FromReplicas {
		summary := fmt.Sprintf("scale %s to %d replicas (%d -> %d)", m.Deployment.Name, target.Replicas, in.FromReplicas, target.Replicas)
		if err := workflow.ExecuteActivity(quick(ctx, summary), clusterActs.ScaleDeployment,
			activities.ScaleDeploymentInput{Deployment: m.Deployment, Replicas: target.Replicas}).Get(ctx, nil); err != nil {
			return result, err
		}
	}
	podDeadline := workflow.Now(ctx).Add(in.PodsReady.D())
	var pods activities.WaitPodsResult
	summary := fmt.Sprintf("wait for %d Ready pod(s) of %s", target.Replicas, m.Deployment.Name)
	if err := workflow.ExecuteActivity(waiting(ctx, summary, in.PodsReady.D()), clusterActs.WaitPodsReady,
		activities.WaitPodsInput{Deployment: m.Deployment, Replicas: target.Replicas, Deadline: podDeadline}).Get(ctx, &pods); err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == activities.ErrPodsNotReady {
			// Give the count back: replicas that cannot start only hold GPUs and confuse the next evaluation.
			restore(ctx, fmt.Sprintf("scale %s back to %d replicas (pods not Ready)", m.Deployment.Name, in.FromReplicas),
				clusterActs.ScaleDeployment, activities.ScaleDeploymentInput{Deployment: m.Deployment, Replicas: in.FromReplicas})
		}
		return result, err
	}
	result.Replicas = target.Replicas

	if m.LoadBalancer.Mode != "none" {
		lb := activities.TrafficInput{Mode: m.LoadBalancer.Mode, Config: m.LoadBalancer.Config, Targets: pods.Ready}
		if err := workflow.ExecuteActivity(quick(ctx, fmt.Sprintf("register %d target(s) with the load balancer (%s)", len(pods.Ready), m.LoadBalancer.Mode)),
			trafficActs.RegisterTargets, lb).Get(ctx, nil); err != nil {
			return result, err
		}
		lb.Deadline = workflow.Now(ctx).Add(in.EndpointsReady.D())
		summary := fmt.Sprintf("wait until %d pod(s) serve behind the load balancer (%s)", len(pods.Ready), lbName(m.LoadBalancer))
		if err := workflow.ExecuteActivity(waiting(ctx, summary, in.EndpointsReady.D()), trafficActs.WaitServing, lb).Get(ctx, nil); err != nil {
			return result, err
		}
	}
	return result, nil
}

func lbName(lb LoadBalancerRef) string {
	if lb.Mode == "aws-target-group" {
		return "target group " + lb.Config.TargetGroupARN
	}
	return "service " + lb.Config.Service
}

// waitOrRetarget runs a wait activity; a Retarget signal with a higher target cancels the wait and reports
// raised, so the caller asks for the new size and waits again.
func waitOrRetarget(ctx workflow.Context, ch workflow.ReceiveChannel, target *Retarget, actx workflow.Context, fn any, arg any, out any) (raised bool, err error) {
	wctx, cancel := workflow.WithCancel(actx)
	defer cancel()
	f := workflow.ExecuteActivity(wctx, fn, arg)
	for {
		sel := workflow.NewSelector(ctx)
		done := false
		sel.AddFuture(f, func(f workflow.Future) { err = f.Get(ctx, out); done = true })
		sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
			var r Retarget
			c.Receive(ctx, &r)
			if r.Replicas > target.Replicas || r.Nodes > target.Nodes {
				target.Replicas = max(target.Replicas, r.Replicas)
				target.Nodes = max(target.Nodes, r.Nodes)
				raised = true
			}
		})
		sel.Select(ctx)
		if done {
			return false, err
		}
		if raised {
			cancel()
			_ = f.Get(ctx, nil) // let the cancelled wait finish
			return true, nil
		}
	}
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
