package workflows

import (
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/llmscaler/llmscaler/activities"
	"github.com/llmscaler/llmscaler/traffic"
)

// ScaleIn is the scale-in saga, one victim node at a time: check that the group will let the node go (never
// drain a node the group would refuse to terminate), take its pods out of the load balancer, cordon it,
// drain it through the Eviction API with grace (PodDisruptionBudgets honoured, in-flight requests finish,
// each evicted replica taken off the Deployment), then terminate it and shrink the group. Extra pods to
// remove come off last, through the Deployment with pod-deletion-cost.
//
// If a drain cannot finish before its deadline, or the saga is cancelled because load returned, the node
// is restored to service (uncordoned, the Deployment's count put back, targets registered again) and the
// reason recorded. No pod is ever deleted by force.
func ScaleIn(ctx workflow.Context, in ScaleInInput) (ScaleResult, error) {
	m := in.Model
	replicas := in.FromReplicas
	result := ScaleResult{Replicas: replicas}
	lbOn := m.LoadBalancer.Mode != "none"

	for _, v := range in.Victims {
		node := activities.NodeRef{Name: v.Node, InstanceID: v.InstanceID}
		err := workflow.ExecuteActivity(quick(ctx, fmt.Sprintf("check that %s may leave %s", v.Node, m.Group.Group)),
			nodesActs.CheckRemovable, activities.CheckRemovableInput{Group: m.Group, Node: node}).Get(ctx, nil)
		if isType(err, activities.ErrNotRemovable) {
			result.Skipped = append(result.Skipped, v.Node+": "+appMessage(err))
			continue
		}
		if err != nil {
			return result, err
		}

		var targets []traffic.Target
		if lbOn && len(v.Pods) > 0 {
			if err := workflow.ExecuteActivity(quick(ctx, "list the load balancer targets on "+v.Node), clusterActs.PodTargets,
				activities.PodTargetsInput{Deployment: m.Deployment, Node: v.Node}).Get(ctx, &targets); err != nil {
				return result, err
			}
			if len(targets) > 0 {
				err := workflow.ExecuteActivity(waiting(ctx, fmt.Sprintf("take %d target(s) on %s out of the load balancer", len(targets), v.Node), in.DrainTimeout.D()),
					trafficActs.DeregisterTargets, activities.TrafficInput{Mode: m.LoadBalancer.Mode, Config: m.LoadBalancer.Config, Targets: targets}).Get(ctx, nil)
				if err != nil {
					restoreNode(ctx, m, v.Node, replicas, targets)
					return result, err
				}
			}
		}
		if err := workflow.ExecuteActivity(quick(ctx, "cordon "+v.Node), clusterActs.Cordon,
			activities.CordonInput{Node: v.Node, Unschedule: true}).Get(ctx, nil); err != nil {
			restoreNode(ctx, m, v.Node, replicas, targets)
			return result, err
		}
		grace := "the pods' own grace period"
		if in.DrainGrace > 0 {
			grace = "grace " + in.DrainGrace.String()
		}
		var drained activities.DrainResult
		err = workflow.ExecuteActivity(waiting(ctx, fmt.Sprintf("drain node %s, %s", v.Node, grace), in.DrainTimeout.D()), clusterActs.DrainNode,
			activities.DrainInput{Deployment: m.Deployment, Node: v.Node, FromReplicas: replicas, GracePeriod: in.DrainGrace.D(),
				Deadline: workflow.Now(ctx).Add(in.DrainTimeout.D())}).Get(ctx, &drained)
		if err != nil {
			restoreNode(ctx, m, v.Node, replicas, targets)
			return result, err
		}
		replicas = drained.Replicas
		result.Replicas = replicas
		if err := workflow.ExecuteActivity(quick(ctx, fmt.Sprintf("terminate %s (%s) and shrink %s", v.Node, v.InstanceID, m.Group.Group)),
			nodesActs.TerminateNode, activities.TerminateNodeInput{Group: m.Group, Node: node}).Get(ctx, nil); err != nil {
			// The node is empty and cordoned: leave it so; the next evaluation sees it and tries again.
			return result, err
		}
		result.Removed = append(result.Removed, node)
	}

	if in.TargetReplicas < replicas {
		if lbOn && len(in.VictimPods) > 0 {
			var targets []traffic.Target
			if err := workflow.ExecuteActivity(quick(ctx, "list the load balancer targets of "+strings.Join(in.VictimPods, ", ")), clusterActs.PodTargets,
				activities.PodTargetsInput{Deployment: m.Deployment, Pods: in.VictimPods}).Get(ctx, &targets); err != nil {
				return result, err
			}
			if len(targets) > 0 {
				if err := workflow.ExecuteActivity(waiting(ctx, fmt.Sprintf("take %d pod(s) out of the load balancer", len(targets)), in.DrainTimeout.D()),
					trafficActs.DeregisterTargets, activities.TrafficInput{Mode: m.LoadBalancer.Mode, Config: m.LoadBalancer.Config, Targets: targets}).Get(ctx, nil); err != nil {
					return result, err
				}
			}
		}
		summary := fmt.Sprintf("scale %s to %d replicas (%d -> %d), removing %s first", m.Deployment.Name, in.TargetReplicas, replicas, in.TargetReplicas, strings.Join(in.VictimPods, ", "))
		if err := workflow.ExecuteActivity(quick(ctx, summary), clusterActs.ScaleDeployment,
			activities.ScaleDeploymentInput{Deployment: m.Deployment, Replicas: in.TargetReplicas, DeletionCandidates: in.VictimPods}).Get(ctx, nil); err != nil {
			return result, err
		}
		result.Replicas = in.TargetReplicas
	}
	if len(result.Skipped) > 0 && len(result.Removed) == 0 && in.TargetReplicas >= in.FromReplicas {
		return result, temporal.NewNonRetryableApplicationError("no victim could be removed: "+strings.Join(result.Skipped, "; "), activities.ErrNotRemovable, nil)
	}
	return result, nil
}

// restoreNode puts a victim back into service after a drain that could not finish or a cancelled saga:
// uncordon it, give the Deployment back its count from before this node's drain (evicted pods are replaced,
// on this node again), and register again the node's pods that were taken out of the load balancer and are
// still there (a replacement pod's IP is registered by the next scale-out's load balancer step).
func restoreNode(ctx workflow.Context, m ModelRef, node string, replicas int32, deregistered []traffic.Target) {
	restore(ctx, "uncordon "+node+" (restoring it to service)", clusterActs.Cordon, activities.CordonInput{Node: node, Unschedule: false})
	restore(ctx, fmt.Sprintf("scale %s back to %d replicas", m.Deployment.Name, replicas), clusterActs.ScaleDeployment,
		activities.ScaleDeploymentInput{Deployment: m.Deployment, Replicas: replicas})
	if len(deregistered) == 0 {
		return
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	pods := make([]string, len(deregistered))
	for i, t := range deregistered {
		pods[i] = t.Pod
	}
	var still []traffic.Target
	if err := workflow.ExecuteActivity(quick(dctx, "list the pods on "+node+" still there"), clusterActs.PodTargets,
		activities.PodTargetsInput{Deployment: m.Deployment, Pods: pods}).Get(dctx, &still); err != nil || len(still) == 0 {
		return
	}
	restore(ctx, fmt.Sprintf("register %d target(s) on %s again", len(still), node), trafficActs.RegisterTargets,
		activities.TrafficInput{Mode: m.LoadBalancer.Mode, Config: m.LoadBalancer.Config, Targets: still})
}

func isType(err error, typ string) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == typ
}

func appMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}
