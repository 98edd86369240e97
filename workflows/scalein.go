package workflows

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/llmscaler/llmscaler/activities"
	"github.com/llmscaler/llmscaler/policy"
	"github.com/llmscaler/llmscaler/traffic"
)

// ScaleIn is the scale-in saga. Every victim node is first taken out of service at once: the group is asked
// whether it will let the node go (a node it would refuse to terminate is never drained), its pods leave the
// load balancer, and it is cordoned. Their requests then finish in parallel, with no new ones arriving, while
// the nodes are drained one at a time through the Eviction API with grace (PodDisruptionBudgets honoured,
// each evicted replica taken off the Deployment), each terminated and the group shrunk. Extra pods to remove
// come off last, through the Deployment with pod-deletion-cost.
//
// If a victim cannot be taken out or drained before its deadline, or the saga is cancelled because load
// returned, that node and every victim not yet drained are restored to service (uncordoned, the
// Deployment's count put back, targets registered again) and the reason recorded. No pod is ever deleted by
// force.
func ScaleIn(ctx workflow.Context, in ScaleInInput) (ScaleResult, error) {
	m := in.Model
	replicas := in.FromReplicas
	result := ScaleResult{Replicas: replicas}
	lbOn := m.LoadBalancer.Mode != "none"

	// Runs started before the victims were taken out together drained each node from start to end in turn:
	// a large scale-in waited for every node's requests one node after another.
	if workflow.GetVersion(ctx, "victims-out-together", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		if err := scaleInOneNodeAtATime(ctx, in, &replicas, &result); err != nil {
			return result, err
		}
	} else if err := scaleInVictims(ctx, in, &replicas, &result); err != nil {
		return result, err
	}

	if in.TargetReplicas < replicas {
		// Runs before this left the victim pods out of the load balancer when the step failed or was
		// cancelled (load returned while a target group's deregistration delay ran): Ready, counted as
		// capacity, and serving nothing until a scale-out registered every pod again.
		putBack := workflow.GetVersion(ctx, "scale-in-pods-back-in-service", workflow.DefaultVersion, 1) >= 1
		var deregistered []traffic.Target
		undo := func(err error) (ScaleResult, error) {
			if putBack {
				registerAgain(ctx, m, deregistered, "of the scale-in")
			}
			return result, err
		}
		if lbOn && len(in.VictimPods) > 0 {
			var targets []traffic.Target
			if err := workflow.ExecuteActivity(quick(ctx, "list the load balancer targets of "+strings.Join(in.VictimPods, ", ")), clusterActs.PodTargets,
				activities.PodTargetsInput{Deployment: m.Deployment, Pods: in.VictimPods, SharedNodesStay: m.LoadBalancer.Config.TargetType == "instance"}).Get(ctx, &targets); err != nil {
				return result, err
			}
			if len(targets) > 0 {
				deregistered = targets
				if err := workflow.ExecuteActivity(waiting(ctx, fmt.Sprintf("take %d pod(s) out of the load balancer", len(targets)), deregistrationLimit(in)),
					trafficActs.DeregisterTargets, activities.TrafficInput{Mode: m.LoadBalancer.Mode, Config: m.LoadBalancer.Config, Targets: targets}).Get(ctx, nil); err != nil {
					return undo(err)
				}
			}
		}
		summary := fmt.Sprintf("scale %s to %d replicas (%d -> %d), removing %s first", m.Deployment.Name, in.TargetReplicas, replicas, in.TargetReplicas, strings.Join(in.VictimPods, ", "))
		sctx := quick(ctx, summary)
		if putBack {
			// Cancelled, the saga waits for the scale to stop or land before it answers, so that it never
			// scales the Deployment down after saying it was cancelled.
			sctx = workflow.WithWaitForCancellation(sctx, true)
		}
		if err := workflow.ExecuteActivity(sctx, clusterActs.ScaleDeployment,
			activities.ScaleDeploymentInput{Deployment: m.Deployment, Replicas: in.TargetReplicas, DeletionCandidates: in.VictimPods}).Get(ctx, nil); err != nil {
			return undo(err)
		}
		result.Replicas = in.TargetReplicas
	}
	if len(result.Skipped) > 0 && len(result.Removed) == 0 && in.TargetReplicas >= in.FromReplicas {
		return result, temporal.NewNonRetryableApplicationError("no victim could be removed: "+strings.Join(result.Skipped, "; "), activities.ErrNotRemovable, nil)
	}
	return result, nil
}

// scaleInOneNodeAtATime is the saga's victim loop before victims were taken out together: each node is taken
// out of service, drained and terminated before the next one starts.
func scaleInOneNodeAtATime(ctx workflow.Context, in ScaleInInput, replicas *int32, result *ScaleResult) error {
	for _, v := range in.Victims {
		o := takeOutOfService(ctx, in, v, *replicas, false)
		if o.skipped != "" {
			result.Skipped = append(result.Skipped, o.skipped)
			continue
		}
		if o.err != nil {
			return o.err
		}
		if err := drainAndTerminate(ctx, in, v, o.targets, replicas, result, false); err != nil {
			return err
		}
	}
	return nil
}

// outOfService is one victim after the saga's first step.
type outOfService struct {
	skipped string
	targets []traffic.Target
	err     error
}

// scaleInVictims takes every victim out of service at once, then drains and terminates them one at a time;
// the first failure (or the saga's cancellation) restores the victims not yet drained.
func scaleInVictims(ctx workflow.Context, in ScaleInInput, replicas *int32, result *ScaleResult) error {
	out := make([]outOfService, len(in.Victims))
	wg := workflow.NewWaitGroup(ctx)
	for i, v := range in.Victims {
		wg.Add(1)
		workflow.Go(ctx, func(gctx workflow.Context) {
			defer wg.Done()
			out[i] = takeOutOfService(gctx, in, v, in.FromReplicas, true)
		})
	}
	wg.Wait(ctx)

	// One victim that could not be taken out (restored already) fails the saga: the others are restored too,
	// whatever their order.
	var failed error
	for _, o := range out {
		failed = cmp.Or(failed, o.err)
	}
	removed := 0
	for i, v := range in.Victims {
		o := out[i]
		if o.skipped != "" {
			result.Skipped = append(result.Skipped, o.skipped)
			continue
		}
		if o.err != nil {
			continue
		}
		if failed == nil && removed > 0 {
			// The group was asked about every victim at its size before any left: ask again now that it is
			// smaller (a group at its minimum keeps the rest).
			if skipped, err := checkRemovable(ctx, in, v); skipped != "" || err != nil {
				restoreNode(ctx, in.Model, v.Node, *replicas, o.targets)
				if skipped != "" {
					result.Skipped = append(result.Skipped, skipped)
				}
				failed = err
				continue
			}
		}
		if failed != nil || ctx.Err() != nil {
			restoreNode(ctx, in.Model, v.Node, *replicas, o.targets)
			// A cancelled saga ends cancelled, not as if it had done what it was asked.
			failed = cmp.Or(failed, ctx.Err())
			continue
		}
		if failed = drainAndTerminate(ctx, in, v, o.targets, replicas, result, true); failed == nil {
			removed++
		}
	}
	return failed
}

// checkRemovable asks the group whether the victim may leave: skipped says why not (never drained); err is
// the call's own failure.
func checkRemovable(ctx workflow.Context, in ScaleInInput, v policy.Victim) (skipped string, err error) {
	m := in.Model
	node := activities.NodeRef{Name: v.Node, InstanceID: v.InstanceID}
	err = workflow.ExecuteActivity(quick(ctx, fmt.Sprintf("check that %s may leave %s", v.Node, m.Group.Group)),
		nodesActs.CheckRemovable, activities.CheckRemovableInput{Group: m.Group, Node: node}).Get(ctx, nil)
	if isType(err, activities.ErrNotRemovable) {
		return v.Node + ": " + appMessage(err), nil
	}
	return "", err
}

// takeOutOfService is a victim's first step: the group's consent, its pods out of the load balancer, the
// node cordoned. A failure restores what was done (the Deployment to replicas). together marks the saga
// that takes its victims out together (version victims-out-together): runs from before it replay their
// own commands, so what it changed in the shared steps is behind it.
func takeOutOfService(ctx workflow.Context, in ScaleInInput, v policy.Victim, replicas int32, together bool) outOfService {
	m := in.Model
	if skipped, err := checkRemovable(ctx, in, v); skipped != "" || err != nil {
		return outOfService{skipped: skipped, err: err}
	}
	var o outOfService
	if m.LoadBalancer.Mode != "none" && len(v.Pods) > 0 {
		if err := workflow.ExecuteActivity(quick(ctx, "list the load balancer targets on "+v.Node), clusterActs.PodTargets,
			activities.PodTargetsInput{Deployment: m.Deployment, Node: v.Node}).Get(ctx, &o.targets); err != nil {
			return outOfService{err: err}
		}
		if len(o.targets) > 0 {
			err := workflow.ExecuteActivity(waiting(ctx, fmt.Sprintf("take %d target(s) on %s out of the load balancer", len(o.targets), v.Node), deregistrationLimit(in)),
				trafficActs.DeregisterTargets, activities.TrafficInput{Mode: m.LoadBalancer.Mode, Config: m.LoadBalancer.Config, Targets: o.targets}).Get(ctx, nil)
			if err != nil {
				restoreNode(ctx, m, v.Node, replicas, o.targets)
				return outOfService{err: err}
			}
		}
	}
	// A cancelled saga waits for a cordon under way to end before it uncordons: else the cordon could land
	// after the uncordon and leave the node cordoned.
	cordon := workflow.WithWaitForCancellation(quick(ctx, "cordon "+v.Node), together)
	if err := workflow.ExecuteActivity(cordon, clusterActs.Cordon,
		activities.CordonInput{Node: v.Node, Unschedule: true}).Get(ctx, nil); err != nil {
		restoreNode(ctx, m, v.Node, replicas, o.targets)
		return outOfService{err: err}
	}
	return o
}

// drainAndTerminate drains a victim taken out of service (restoring it if the drain fails), then terminates
// it and shrinks the group.
func drainAndTerminate(ctx workflow.Context, in ScaleInInput, v policy.Victim, targets []traffic.Target, replicas *int32, result *ScaleResult, together bool) error {
	m := in.Model
	grace := "the pods' own grace period"
	if in.DrainGrace > 0 {
		grace = "grace " + in.DrainGrace.String()
	}
	var drained activities.DrainResult
	err := workflow.ExecuteActivity(waiting(ctx, fmt.Sprintf("drain node %s, %s", v.Node, grace), in.DrainTimeout.D()), clusterActs.DrainNode,
		activities.DrainInput{Deployment: m.Deployment, Node: v.Node, FromReplicas: *replicas, GracePeriod: in.DrainGrace.D(),
			Deadline: workflow.Now(ctx).Add(in.DrainTimeout.D())}).Get(ctx, &drained)
	if err != nil {
		restoreNode(ctx, m, v.Node, *replicas, targets)
		return err
	}
	*replicas = drained.Replicas
	result.Replicas = drained.Replicas
	node := activities.NodeRef{Name: v.Node, InstanceID: v.InstanceID}
	// A drained node is terminated even if the saga is cancelled meanwhile (runs from before
	// victims-out-together aside): its replicas are off the Deployment already, and an empty cordoned node
	// left in the group would count as capacity it is not.
	dctx := ctx
	if together {
		dctx, _ = workflow.NewDisconnectedContext(ctx)
	}
	if err := workflow.ExecuteActivity(quick(dctx, fmt.Sprintf("terminate %s (%s) and shrink %s", v.Node, v.InstanceID, m.Group.Group)),
		nodesActs.TerminateNode, activities.TerminateNodeInput{Group: m.Group, Node: node}).Get(dctx, nil); err != nil {
		// The node is empty and cordoned: leave it so; the next evaluation sees it and tries again.
		return err
	}
	result.Removed = append(result.Removed, node)
	return nil
}

// restoreNode puts a victim back into service after a drain that could not finish or a cancelled saga:
// uncordon it, give the Deployment back its count from before this node's drain (evicted pods are replaced,
// on this node again), and register again the node's pods that were taken out of the load balancer and are
// still there (a replacement pod's IP is registered by the next scale-out's load balancer step).
func restoreNode(ctx workflow.Context, m ModelRef, node string, replicas int32, deregistered []traffic.Target) {
	restore(ctx, "uncordon "+node+" (restoring it to service)", clusterActs.Cordon, activities.CordonInput{Node: node, Unschedule: false})
	restore(ctx, fmt.Sprintf("scale %s back to %d replicas", m.Deployment.Name, replicas), clusterActs.ScaleDeployment,
		activities.ScaleDeploymentInput{Deployment: m.Deployment, Replicas: replicas})
	registerAgain(ctx, m, deregistered, "on "+node)
}

// registerAgain puts the pods of deregistered targets that are still there back into the load balancer, in a
// context a cancelled saga cannot stop; where says which pods, for the step's summary.
func registerAgain(ctx workflow.Context, m ModelRef, deregistered []traffic.Target, where string) {
	if len(deregistered) == 0 {
		return
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	pods := make([]string, len(deregistered))
	for i, t := range deregistered {
		pods[i] = t.Pod
	}
	var still []traffic.Target
	if err := workflow.ExecuteActivity(quick(dctx, "list the pods "+where+" still there"), clusterActs.PodTargets,
		activities.PodTargetsInput{Deployment: m.Deployment, Pods: pods}).Get(dctx, &still); err != nil || len(still) == 0 {
		return
	}
	restore(ctx, fmt.Sprintf("register %d target(s) %s again", len(still), where), trafficActs.RegisterTargets,
		activities.TrafficInput{Mode: m.LoadBalancer.Mode, Config: m.LoadBalancer.Config, Targets: still})
}

// maxDeregistrationDelay is the longest deregistration delay a target group can have (ELBv2's 3600 s).
const maxDeregistrationDelay = time.Hour

// deregistrationLimit is how long taking targets out of the load balancer may take: its wait is the
// target group's deregistration delay (300 s by default), which the drain timeout does not bound; limited
// to the drain timeout, a 2-minute one ended every such wait (and the scale-in) before its delay.
func deregistrationLimit(in ScaleInInput) time.Duration {
	return max(in.DrainTimeout.D(), maxDeregistrationDelay)
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
