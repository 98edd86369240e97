package activities

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/llmscaler/llmscaler/cloudapi"
	"github.com/llmscaler/llmscaler/nodegroup"
)

// Nodes resizes node groups and waits for their nodes.
type Nodes struct {
	Kube      kubernetes.Interface
	Providers Providers
	// Poll is the interval of waits (default 2s).
	Poll time.Duration
}

func (n *Nodes) poll() time.Duration {
	if n.Poll > 0 {
		return n.Poll
	}
	return 2 * time.Second
}

// SetGroupSize requests an absolute size; a group already at that size is left alone.
func (n *Nodes) SetGroupSize(ctx context.Context, in SetGroupSizeInput) (SetGroupSizeResult, error) {
	p, err := n.Providers.get(in.Group.Provider)
	if err != nil {
		return SetGroupSizeResult{}, err
	}
	g, err := p.Describe(ctx, in.Group.Group)
	if err != nil {
		return SetGroupSizeResult{}, cloudError("describing node group "+in.Group.Group, err)
	}
	size := in.Size
	if in.NotBelowLive {
		size = max(size, int32(len(g.Instances)))
	}
	if g.Desired == size {
		return SetGroupSizeResult{Previous: g.Desired}, nil
	}
	if err := p.SetDesiredSize(ctx, in.Group.Group, size); err != nil {
		return SetGroupSizeResult{}, cloudError(fmt.Sprintf("setting the size of node group %s to %d", in.Group.Group, size), err)
	}
	return SetGroupSizeResult{Previous: g.Desired}, nil
}

// WaitNodesReady waits until the group has in.Want nodes Ready with GPUs allocatable. Past the deadline it
// fails with ErrNodesNotReady, naming the instances that are not serving (details: WaitNodesResult).
func (n *Nodes) WaitNodesReady(ctx context.Context, in WaitNodesInput) (WaitNodesResult, error) {
	var last WaitNodesResult // what the wait last saw, in this attempt or (from its heartbeat) an earlier one
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &last)
	}
	for {
		group, nodes, err := groupNodes(ctx, n.Kube, n.Providers, in.Group)
		if err != nil {
			return last, pastDeadline(in.Deadline, err, ErrNodesNotReady, "node group "+in.Group.Group+" could not be read", last)
		}
		var res WaitNodesResult
		for _, gn := range nodes {
			switch {
			case gn.serving():
				res.Serving = append(res.Serving, gn.ref())
			case gn.node != nil && gn.node.CreationTimestamp.Time.Before(in.Since.Add(-creationSlack)):
				res.Unserving = append(res.Unserving, gn.ref())
			case gn.node == nil || !gn.node.Spec.Unschedulable:
				res.NotReady = append(res.NotReady, gn.ref())
			}
		}
		activity.RecordHeartbeat(ctx, res)
		last = res
		if int32(len(res.Serving)) >= in.Want {
			return res, nil
		}
		if failed, n, ok := failedLaunch(group, in.Since, time.Now()); ok {
			typ, code := ErrLaunchFailed, "LaunchFailed"
			if cloudapi.IsCapacityMessage(failed.Message) {
				typ, code = ErrCapacityUnavailable, "InsufficientInstanceCapacity"
			}
			return res, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("node group %s: %s: %d launch(es) failed in a row over %s or more, the last (scaling activity %s) at %s: %s (%d of %d nodes serving)",
					in.Group.Group, code, n, launchRetryGrace, failed.ID, failed.Start.UTC().Format(time.TimeOnly), failed.Message, len(res.Serving), in.Want), typ, nil, res)
		}
		if time.Now().After(in.Deadline) {
			msg := fmt.Sprintf("node group %s: %d of %d nodes Ready with GPUs allocatable at the deadline; not ready: %s",
				in.Group.Group, len(res.Serving), in.Want, nodeList(res.NotReady))
			if len(res.Unserving) > 0 {
				msg += "; not serving, from before the scale-out: " + nodeList(res.Unserving)
			}
			return res, temporal.NewNonRetryableApplicationError(msg, ErrNodesNotReady, nil, res)
		}
		if err := sleep(ctx, n.poll()); err != nil {
			return res, err
		}
	}
}

// creationSlack is how long before the nodes were asked for a Node may have been created and still count
// as one of them: its creation time is the API server's clock, in whole seconds, and the request's is the
// worker's (a node created 0.5 s after the request showed 0.4 s before it). A node from before the
// scale-out is far older, and one created within the slack cannot be serving pods yet.
const creationSlack = 10 * time.Second

// pastDeadline is a wait's read that failed (err) once its deadline has passed: the wait's own verdict, typ
// with details, as at its deadline. Retried instead, the attempts would go on failing until the activity's
// overall limit, whose failure carries the last attempt's error and nothing the saga can compensate from.
// Before the deadline err is returned as it is.
func pastDeadline(deadline time.Time, err error, typ, what string, details ...any) error {
	if err == nil || !time.Now().After(deadline) {
		return err
	}
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s at the deadline: %v", what, err), typ, err, details...)
}

// nodeList names instances, with their Node's name where they have one.
func nodeList(refs []NodeRef) string {
	ids := make([]string, len(refs))
	for i, r := range refs {
		ids[i] = r.InstanceID
		if r.Name != "" {
			ids[i] += " (" + r.Name + ")"
		}
	}
	return strings.Join(ids, ", ")
}

// TerminateNode removes the instance from its group (lowering the group's size) and deletes its Node. An
// instance or Node already gone is done.
func (n *Nodes) TerminateNode(ctx context.Context, in TerminateNodeInput) error {
	p, err := n.Providers.get(in.Group.Provider)
	if err != nil {
		return err
	}
	if err := p.TerminateInstance(ctx, in.Group.Group, in.Node.InstanceID); err != nil {
		return cloudError(fmt.Sprintf("terminating instance %s of node group %s", in.Node.InstanceID, in.Group.Group), err)
	}
	if in.Node.Name != "" {
		// The cloud's node lifecycle controller would delete it too, later; it is drained already.
		err := n.Kube.CoreV1().Nodes().Delete(ctx, in.Node.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting node %s: %w", in.Node.Name, err)
		}
	}
	return nil
}

// CheckRemovable fails with ErrNotRemovable when the group would refuse to remove the node: a protected
// instance, or a group at its minimum size. Checked before draining, so that no node is drained for nothing.
func (n *Nodes) CheckRemovable(ctx context.Context, in CheckRemovableInput) error {
	p, err := n.Providers.get(in.Group.Provider)
	if err != nil {
		return err
	}
	g, err := p.Describe(ctx, in.Group.Group)
	if err != nil {
		return cloudError("describing node group "+in.Group.Group, err)
	}
	inst, ok := g.Instance(in.Node.InstanceID)
	switch {
	case !ok:
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("instance %s is not in node group %s", in.Node.InstanceID, g.Name), ErrNotRemovable, nil)
	case inst.Protected:
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("instance %s (node %s) is protected from scale-in", inst.ID, in.Node.Name), ErrNotRemovable, nil)
	case g.Desired-1 < g.Min:
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("node group %s is at its minimum size %d", g.Name, g.Min), ErrNotRemovable, nil)
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// launchRetryGrace is how long launches may go on failing, none started since the first of them failed,
// before a node wait gives up. A group retries a launch that failed (for capacity, in another zone: on AWS
// within seconds), and ending the wait at the first failure set the group back, stopping a scale-out the
// group was about to satisfy.
const launchRetryGrace = 30 * time.Second

// failedLaunch returns the last of the launches that have failed in a row since the last one that did not
// (among those since the nodes were asked for) and how many, once the first of them is launchRetryGrace old.
func failedLaunch(g nodegroup.Group, since, now time.Time) (nodegroup.Activity, int, bool) {
	var launches []nodegroup.Activity
	for _, a := range g.Activities {
		if !a.Start.Before(since) && strings.Contains(a.Description, "Launching") {
			launches = append(launches, a)
		}
	}
	slices.SortStableFunc(launches, func(a, b nodegroup.Activity) int { return a.Start.Compare(b.Start) })
	first := -1 // the first of the failures in a row, up to the newest launch
	for i, a := range launches {
		switch {
		case a.Status != "Failed":
			first = -1
		case first < 0:
			first = i
		}
	}
	if first < 0 || now.Sub(launches[first].Start) < launchRetryGrace {
		return nodegroup.Activity{}, 0, false
	}
	return launches[len(launches)-1], len(launches) - first, true
}
