package workflows

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
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
// heartbeat timeout and the wait resumes on another attempt, up to the deadline. The wait fails with its
// own typed error at the deadline, also when it cannot read what it waits for then (a permission taken
// away, an API down: see activities' pastDeadline); all attempts together end a little after the deadline
// (waitOverrun) in any case, so that nothing retries for ever, holding the saga and the autoscaler's
// continue-as-new.
func waiting(ctx workflow.Context, summary string, deadline time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    deadline + time.Minute,
		ScheduleToCloseTimeout: deadline + waitOverrun,
		HeartbeatTimeout:       15 * time.Second,
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

// waitOverrun is how long past its deadline a wait's attempts may go on, together: time for the attempt
// under way at the deadline to see it and fail with the wait's own error.
const waitOverrun = 2 * time.Minute

// ScaleOut is the scale-out saga: request the node count from the node group (an absolute size), wait until
// the nodes are Ready with GPUs allocatable, scale the Deployment, wait until the new pods are Ready, and
// wait until they serve behind the load balancer. Nodes that never become ready are removed again and the
// saga fails with the reason; the autoscaler retries later with backoff.
//
// A Retarget signal raises the target while the saga runs: the extra nodes are requested at once, so they
// boot in parallel, and they make another wave: as soon as they are Ready the Deployment is scaled for
// them, while the waves before still wait for their pods to load and serve. Capacity that has arrived is
// put to work without waiting for the last node, nor does the last node wait for the first pods.
func ScaleOut(ctx workflow.Context, in ScaleOutInput) (ScaleResult, error) {
	s := &scaleOut{in: in, retarget: workflow.GetSignalChannel(ctx, SignalRetarget), started: workflow.Now(ctx),
		target: Retarget{Replicas: in.TargetReplicas, Nodes: in.TargetNodes}, requested: in.FromNodes}
	var result ScaleResult
	// Runs started before the waves overlapped scaled the Deployment for a raised target only after the
	// wave before had loaded its model and was serving: a model load's time late.
	if workflow.GetVersion(ctx, "waves-overlap", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return result, s.oneWaveAtATime(ctx, &result)
	}
	return result, s.overlappingWaves(ctx, &result)
}

// oneWaveAtATime runs each wave to its end (nodes, Deployment, pods, load balancer) before the next.
func (s *scaleOut) oneWaveAtATime(ctx workflow.Context, result *ScaleResult) error {
	replicas := s.in.FromReplicas
	for wave := s.target; ; wave = s.target {
		if err := s.nodesFor(ctx, wave, result); err != nil {
			return err
		}
		if err := s.scaleDeployment(ctx, wave, &replicas); err != nil {
			return err
		}
		if err := s.serve(ctx, wave, s.waitTakingRaises(ctx)); err != nil {
			return s.givePodsBack(ctx, err, *result)
		}
		replicas = max(replicas, wave.Replicas)
		result.Replicas = replicas
		s.drainSignals(ctx)
		if !s.raisedPast(wave) {
			return nil
		}
	}
}

// overlappingWaves makes a wave of each request to the node group (the first target and each raise that
// asks for nodes): when a wave's nodes are Ready the Deployment is scaled for it and its pods are left to
// load and serve in the background, while the next wave waits for its own nodes. It ends when every wave
// serves.
func (s *scaleOut) overlappingWaves(ctx workflow.Context, result *ScaleResult) error {
	replicas := s.in.FromReplicas
	// Each wave's coroutine sends on served when its pods serve (or fail to); pending counts those still out.
	served := workflow.NewChannel(ctx)
	pending := 0
	var serveFailed error
	receive := func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		pending--
	}
	last := Retarget{Replicas: s.in.FromReplicas, Nodes: s.in.FromNodes}
	failed := s.request(ctx)
	// A wave whose pods failed stops the saga: no wave starts after it.
	for failed == nil && serveFailed == nil {
		var wave Retarget
		switch {
		case len(s.asked) > 0:
			wave, s.asked = s.asked[0], s.asked[1:]
		case s.raisedPast(last):
			wave = s.target // raised without asking for nodes
		case pending == 0:
			return nil
		default:
			// Every wave is started: wait until they serve, or a Retarget asks for more.
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(served, receive)
			sel.AddReceive(s.retarget, func(c workflow.ReceiveChannel, _ bool) { s.raise(c, ctx) })
			sel.Select(ctx)
			s.drainSignals(ctx)
			if serveFailed == nil {
				failed = s.request(ctx)
			}
			continue
		}
		wave.Replicas, wave.Nodes = max(wave.Replicas, last.Replicas), max(wave.Nodes, last.Nodes)
		if failed = s.nodesFor(ctx, wave, result); failed != nil || serveFailed != nil {
			break // serveFailed: a wave before failed while this one's nodes booted
		}
		if failed = s.scaleDeployment(ctx, wave, &replicas); failed != nil {
			break
		}
		last = wave
		pending++
		workflow.Go(ctx, func(gctx workflow.Context) {
			if err := s.serve(gctx, wave, executeAndGet(gctx)); err != nil {
				serveFailed = cmp.Or(serveFailed, err)
			} else {
				result.Replicas = max(result.Replicas, wave.Replicas)
			}
			served.Send(gctx, nil)
		})
		s.drainSignals(ctx)
		if serveFailed == nil { // no nodes for waves that will not start
			failed = s.request(ctx)
		}
	}
	for pending > 0 {
		receive(served, true)
	}
	serveFailed = s.givePodsBack(ctx, serveFailed, *result)
	return cmp.Or(failed, serveFailed)
}

// givePodsBack answers pods that never became Ready (err ErrPodsNotReady, also when their wait could not
// read them at its deadline) by setting the Deployment back to
// what served (its count before the saga, or the largest wave that went on to serve): replicas that cannot
// start only hold GPUs and confuse the next evaluation, and pods that serve stay. It returns err (nil:
// nothing to do).
func (s *scaleOut) givePodsBack(ctx workflow.Context, err error, served ScaleResult) error {
	if isType(err, activities.ErrPodsNotReady) {
		m := s.in.Model
		back := max(s.in.FromReplicas, served.Replicas)
		restore(ctx, fmt.Sprintf("scale %s back to %d replicas (pods not Ready)", m.Deployment.Name, back),
			clusterActs.ScaleDeployment, activities.ScaleDeploymentInput{Deployment: m.Deployment, Replicas: back})
	}
	return err
}

// nodesFor requests the target's nodes and waits until the wave's are Ready with GPUs allocatable; nodes
// that never become ready are removed again.
func (s *scaleOut) nodesFor(ctx workflow.Context, wave Retarget, result *ScaleResult) error {
	// Nodes first: pods scheduled before their GPUs exist would only sit Pending (and call in any other
	// autoscaler watching for pending pods).
	if err := s.request(ctx); err != nil {
		return err
	}
	m := s.in.Model
	nodeDeadline := workflow.Now(ctx).Add(s.in.NodeReady.D())
	summary := fmt.Sprintf("wait for %d node(s) of %s Ready with GPUs allocatable (until %s)", wave.Nodes, m.Group.Group, nodeDeadline.UTC().Format(time.TimeOnly))
	var nodes activities.WaitNodesResult
	err := s.waitTakingRaises(ctx)(waiting(ctx, summary, s.in.NodeReady.D()), nodesActs.WaitNodesReady,
		activities.WaitNodesInput{Group: m.Group, Want: wave.Nodes, Deadline: nodeDeadline, Since: s.started}, &nodes)
	if err != nil {
		return s.compensateNodes(ctx, err, result)
	}
	return nil
}

// scaleDeployment raises the Deployment to the wave's replicas, if above what this saga set.
func (s *scaleOut) scaleDeployment(ctx workflow.Context, wave Retarget, replicas *int32) error {
	if wave.Replicas <= *replicas {
		return nil
	}
	m := s.in.Model
	summary := fmt.Sprintf("scale %s to %d replicas (%d -> %d)", m.Deployment.Name, wave.Replicas, *replicas, wave.Replicas)
	if err := workflow.ExecuteActivity(quick(ctx, summary), clusterActs.ScaleDeployment,
		activities.ScaleDeploymentInput{Deployment: m.Deployment, Replicas: wave.Replicas}).Get(ctx, nil); err != nil {
		return err
	}
	*replicas = wave.Replicas
	return nil
}

// waitFunc runs a wait activity and reads its result into out.
type waitFunc func(actx workflow.Context, fn, arg, out any) error

// executeAndGet waits for an activity and nothing else.
func executeAndGet(ctx workflow.Context) waitFunc {
	return func(actx workflow.Context, fn, arg, out any) error {
		return workflow.ExecuteActivity(actx, fn, arg).Get(ctx, out)
	}
}

// serve waits until the wave's pods are Ready, then registers them with the load balancer and waits until
// they serve there.
func (s *scaleOut) serve(ctx workflow.Context, wave Retarget, wait waitFunc) error {
	m := s.in.Model
	podDeadline := workflow.Now(ctx).Add(s.in.PodsReady.D())
	var pods activities.WaitPodsResult
	summary := fmt.Sprintf("wait for %d Ready pod(s) of %s", wave.Replicas, m.Deployment.Name)
	if err := wait(waiting(ctx, summary, s.in.PodsReady.D()), clusterActs.WaitPodsReady,
		activities.WaitPodsInput{Deployment: m.Deployment, Replicas: wave.Replicas, Deadline: podDeadline}, &pods); err != nil {
		return err
	}
	if m.LoadBalancer.Mode == "none" {
		return nil
	}
	lb := activities.TrafficInput{Mode: m.LoadBalancer.Mode, Config: m.LoadBalancer.Config, Targets: pods.Ready}
	if err := workflow.ExecuteActivity(quick(ctx, fmt.Sprintf("register %d target(s) with the load balancer (%s)", len(pods.Ready), m.LoadBalancer.Mode)),
		trafficActs.RegisterTargets, lb).Get(ctx, nil); err != nil {
		return err
	}
	lb.Deadline = workflow.Now(ctx).Add(s.in.EndpointsReady.D())
	summary = fmt.Sprintf("wait until %d pod(s) serve behind the load balancer (%s)", len(pods.Ready), lbName(m.LoadBalancer))
	return wait(waiting(ctx, summary, s.in.EndpointsReady.D()), trafficActs.WaitServing, lb, nil)
}

// scaleOut is a ScaleOut saga's running state.
type scaleOut struct {
	in        ScaleOutInput
	retarget  workflow.ReceiveChannel
	started   time.Time
	target    Retarget
	requested int32
	// asked are the targets the node group was asked for, in order, not yet taken as waves.
	asked []Retarget
}

// raisedPast says whether the target has been raised past the wave.
func (s *scaleOut) raisedPast(wave Retarget) bool {
	return s.target.Replicas > wave.Replicas || s.target.Nodes > wave.Nodes
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
	s.asked = append(s.asked, s.target)
	return nil
}

// raise takes a Retarget signal into the target.
func (s *scaleOut) raise(c workflow.ReceiveChannel, ctx workflow.Context) {
	var r Retarget
	c.Receive(ctx, &r)
	s.target.Replicas = max(s.target.Replicas, r.Replicas)
	s.target.Nodes = max(s.target.Nodes, r.Nodes)
}

// waitTakingRaises runs a wait activity; a Retarget signal meanwhile raises the target and requests the
// extra nodes at once, and the wait goes on.
func (s *scaleOut) waitTakingRaises(ctx workflow.Context) waitFunc {
	return func(actx workflow.Context, fn, arg, out any) error {
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
	var late activities.WaitNodesResult
	var appErr *temporal.ApplicationError
	var timeout *temporal.TimeoutError
	var typ, what string // the failure's type and words, as the wait gave them
	switch {
	case errors.As(err, &appErr) && (appErr.Type() == activities.ErrNodesNotReady || appErr.Type() == activities.ErrCapacityUnavailable || appErr.Type() == activities.ErrLaunchFailed):
		typ, what = appErr.Type(), appErr.Message()
		_ = appErr.Details(&late)
	case errors.As(err, &timeout) && timeout.HasLastHeartbeatDetails():
		// The wait's attempts outlasted their overall limit without its deadline's verdict (an attempt hung
		// past it; one whose reads fail gives the verdict itself at the deadline): its last heartbeat says
		// which instances it saw not serving.
		typ, what = activities.ErrNodesNotReady, "the wait for the nodes gave up: "+errorText(err)
		_ = timeout.LastHeartbeatDetails(&late)
	default:
		return err
	}
	m := s.in.Model
	result.Removed = removeNodes(ctx, m.Group, late.NotReady, "not Ready with GPUs allocatable when the scale-out gave up")
	ids := make([]string, len(result.Removed))
	for i, n := range result.Removed {
		ids[i] = n.InstanceID
	}
	var kept []string // instances whose termination failed: still there, still in the group
	for _, n := range late.NotReady {
		if !slices.Contains(result.Removed, n) {
			kept = append(kept, n.InstanceID)
		}
	}
	// Launches that never happened still count in the group's size: bring it to the instances there, so
	// that the group has none to launch and none to pick for termination itself (it would pick without a
	// drain, perhaps a serving node). (Versioned: runs that failed before this step existed replay without it.)
	size := max(int32(len(late.Serving)+len(late.Unserving)+len(kept)), s.in.FromNodes)
	restored := false
	if workflow.GetVersion(ctx, "restore-group-size", workflow.DefaultVersion, 1) >= 1 {
		restored = restore(ctx, fmt.Sprintf("set %s back to %d node(s)", m.Group.Group, size), nodesActs.SetGroupSize,
			activities.SetGroupSizeInput{Group: m.Group, Size: size, NotBelowLive: true})
	}
	// A failed workflow returns no result: the error itself says what the compensation did.
	msg := what + "; removed again: " + strings.Join(ids, ", ")
	if len(ids) == 0 {
		msg = what + "; no instance removed"
	}
	if len(kept) > 0 {
		msg += "; could not remove: " + strings.Join(kept, ", ") + " (see the saga's history)"
	}
	if restored {
		msg += fmt.Sprintf("; group set back to %d", size)
	}
	return temporal.NewNonRetryableApplicationError(msg, typ, err, *result)
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
