package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/kubectl/pkg/drain"

	"github.com/llmscaler/llmscaler/internal/gpunode"
	"github.com/llmscaler/llmscaler/traffic"
)

// AnnotationDeletionCost is the ReplicaSet controller's pod-deletion-cost: lower goes first on scale-down.
const AnnotationDeletionCost = "controller.kubernetes.io/pod-deletion-cost"

// AnnotationEvictedBy marks a replica a drain is about to evict, with the drain's mark (drainMark).
const AnnotationEvictedBy = "llmscaler.dev/evicted-by"

// drainMark names one drain of a node in one saga run, the same on every attempt of its activity.
func drainMark(ctx context.Context, node string) string {
	return activity.GetInfo(ctx).WorkflowExecution.RunID + "/" + node
}

// Cluster scales Deployments and cordons and drains nodes.
type Cluster struct {
	Kube kubernetes.Interface
	// Poll is the interval of waits and of eviction retries (default 2s).
	Poll time.Duration
}

func (c *Cluster) poll() time.Duration {
	if c.Poll > 0 {
		return c.Poll
	}
	return 2 * time.Second
}

// ScaleDeployment sets the Deployment's replicas through its scale subresource, as the HPA does. Pods named
// as deletion candidates are marked first, so a scale-down removes them rather than others.
func (c *Cluster) ScaleDeployment(ctx context.Context, in ScaleDeploymentInput) (ScaleDeploymentResult, error) {
	for _, pod := range in.DeletionCandidates {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"-1000"}}}`, AnnotationDeletionCost)
		_, err := c.Kube.CoreV1().Pods(in.Deployment.Namespace).Patch(ctx, pod, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return ScaleDeploymentResult{}, fmt.Errorf("marking pod %s for deletion: %w", pod, err)
		}
	}
	prev, err := setReplicas(ctx, c.Kube, in.Deployment, in.Replicas)
	return ScaleDeploymentResult{Previous: prev}, err
}

// setReplicas writes the Deployment's replicas and returns the count it replaced. Another writer (the drain's
// own earlier write, kubectl scale, a rollout) can change the object between the read and the write; the
// update is then refused with a conflict, so it is retried on a fresh read rather than failing the step.
func setReplicas(ctx context.Context, kube kubernetes.Interface, ref DeploymentRef, replicas int32) (int32, error) {
	deployments := kube.AppsV1().Deployments(ref.Namespace)
	var prev int32
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		scale, err := deployments.GetScale(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return temporal.NewNonRetryableApplicationError(fmt.Sprintf("deployment %s/%s not found", ref.Namespace, ref.Name), ErrNotFound, err)
			}
			return fmt.Errorf("reading the scale of %s/%s: %w", ref.Namespace, ref.Name, err)
		}
		prev = scale.Spec.Replicas
		if prev == replicas {
			return nil
		}
		scale.Spec.Replicas = replicas
		if _, err := deployments.UpdateScale(ctx, ref.Name, scale, metav1.UpdateOptions{}); err != nil {
			// Wrapped with %w, a conflict is still a conflict to RetryOnConflict.
			return fmt.Errorf("scaling %s/%s from %d to %d: %w", ref.Namespace, ref.Name, prev, replicas, err)
		}
		return nil
	})
	return prev, err
}

// WaitPodsReady waits until the Deployment has in.Replicas Ready pods and returns them as load balancer
// targets. Past the deadline it fails with ErrPodsNotReady.
func (c *Cluster) WaitPodsReady(ctx context.Context, in WaitPodsInput) (WaitPodsResult, error) {
	for {
		targets, notReady, err := c.podTargets(ctx, in.Deployment, func(p *corev1.Pod) bool { return true })
		if err != nil {
			return WaitPodsResult{}, pastDeadline(in.Deadline, err, ErrPodsNotReady,
				fmt.Sprintf("the pods of %s/%s could not be read", in.Deployment.Namespace, in.Deployment.Name))
		}
		activity.RecordHeartbeat(ctx, map[string]any{"ready": len(targets), "want": in.Replicas, "notReady": notReady})
		if int32(len(targets)) >= in.Replicas {
			return WaitPodsResult{Ready: targets}, nil
		}
		if time.Now().After(in.Deadline) {
			return WaitPodsResult{Ready: targets}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("deployment %s/%s: %d of %d pods Ready at the deadline; not ready: %s",
					in.Deployment.Namespace, in.Deployment.Name, len(targets), in.Replicas, strings.Join(notReady, ", ")), ErrPodsNotReady, nil)
		}
		if err := sleep(ctx, c.poll()); err != nil {
			return WaitPodsResult{}, err
		}
	}
}

// PodTargets returns the Deployment's Ready pods, by name or on a node, as load balancer targets.
func (c *Cluster) PodTargets(ctx context.Context, in PodTargetsInput) ([]traffic.Target, error) {
	staying := map[string]bool{} // nodes running a pod that is not selected and not on its way out
	targets, _, err := c.podTargets(ctx, in.Deployment, func(p *corev1.Pod) bool {
		selected := (in.Node == "" || p.Spec.NodeName == in.Node) && (len(in.Pods) == 0 || slices.Contains(in.Pods, p.Name))
		if !selected && p.DeletionTimestamp == nil && p.Spec.NodeName != "" {
			staying[p.Spec.NodeName] = true
		}
		return selected
	})
	if in.SharedNodesStay {
		targets = slices.DeleteFunc(targets, func(t traffic.Target) bool { return staying[t.Node] })
	}
	return targets, err
}

// podTargets lists the Deployment's pods that match keep: the Ready ones as targets, the others by name.
func (c *Cluster) podTargets(ctx context.Context, ref DeploymentRef, keep func(*corev1.Pod) bool) ([]traffic.Target, []string, error) {
	_, selector, err := deploymentSelector(ctx, c.Kube, ref)
	if err != nil {
		return nil, nil, err
	}
	pods, err := c.Kube.CoreV1().Pods(ref.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, nil, fmt.Errorf("listing pods of %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	instances := map[string]string{}
	var targets []traffic.Target
	var notReady []string
	for i := range pods.Items {
		p := &pods.Items[i]
		if !keep(p) || p.DeletionTimestamp != nil {
			continue
		}
		if pp := podOf(p); pp.Phase != "Running" || !pp.Ready {
			notReady = append(notReady, p.Name)
			continue
		}
		if _, ok := instances[p.Spec.NodeName]; !ok && p.Spec.NodeName != "" {
			n, err := c.Kube.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
			switch {
			case err == nil:
				_, instances[p.Spec.NodeName], _ = gpunode.ParseProviderID(n.Spec.ProviderID)
			case !apierrors.IsNotFound(err):
				// Retried: without its node's instance, a target group in instance mode refuses the pod for good.
				return nil, nil, fmt.Errorf("reading node %s of pod %s/%s: %w", p.Spec.NodeName, p.Namespace, p.Name, err)
			}
		}
		targets = append(targets, traffic.Target{Pod: p.Name, IP: p.Status.PodIP, Port: firstPort(p), Node: p.Spec.NodeName, InstanceID: instances[p.Spec.NodeName]})
	}
	slices.SortFunc(targets, func(a, b traffic.Target) int { return strings.Compare(a.Pod, b.Pod) })
	slices.Sort(notReady)
	return targets, notReady, nil
}

func firstPort(p *corev1.Pod) int32 {
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			return port.ContainerPort
		}
	}
	return 0
}

func (c *Cluster) drainHelper(ctx context.Context, grace time.Duration) *drain.Helper {
	seconds := -1 // the pod's own terminationGracePeriodSeconds
	if grace > 0 {
		seconds = int(math.Ceil(grace.Seconds())) // a grace under a second is a second, not 0 (a kill at once)
	}
	return &drain.Helper{
		Ctx: ctx, Client: c.Kube,
		// Never force: a pod without a controller blocks the drain rather than being deleted.
		Force:               false,
		GracePeriodSeconds:  seconds,
		IgnoreAllDaemonSets: true,
		DeleteEmptyDirData:  true,
		Out:                 io.Discard,
		ErrOut:              io.Discard,
	}
}

// Cordon marks a node unschedulable (or schedulable again), with kubectl's cordon.
func (c *Cluster) Cordon(ctx context.Context, in CordonInput) error {
	node, err := c.Kube.CoreV1().Nodes().Get(ctx, in.Node, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) && !in.Unschedule {
			return nil // nothing to restore
		}
		return fmt.Errorf("reading node %s: %w", in.Node, err)
	}
	if err := drain.RunCordonOrUncordon(c.drainHelper(ctx, 0), node, in.Unschedule); err != nil {
		verb := "cordoning"
		if !in.Unschedule {
			verb = "uncordoning"
		}
		return fmt.Errorf("%s node %s: %w", verb, in.Node, err)
	}
	return nil
}

// drainProgress is carried in heartbeats so that a retried drain knows what it already evicted (every
// heartbeat carries it: a retry reads only the last one).
type drainProgress struct {
	Evicted []string `json:"evicted"`
	// Blocked is the pod whose eviction is being refused, and why (a PodDisruptionBudget).
	Blocked string `json:"blocked,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// DrainNode drains a cordoned node with kubectl's drain library: its pods (DaemonSet pods aside) are evicted
// through the Eviction API with the grace period, so PodDisruptionBudgets are honoured and in-flight
// requests finish. A refused eviction is retried until the deadline, then the drain fails with
// ErrDrainBlocked; no pod is ever deleted by force. Each evicted pod of the Deployment lowers its replicas by
// one (absolute: in.FromReplicas minus the evicted count), so the ReplicaSet does not replace it. The drain
// ends when the evicted pods are gone; past the deadline it fails with ErrDrainTimeout.
func (c *Cluster) DrainNode(ctx context.Context, in DrainInput) (DrainResult, error) {
	var progress drainProgress
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &progress)
	}
	if time.Now().After(in.Deadline) {
		// An attempt that starts past the deadline evicts nothing: the saga restores the node on this error,
		// and pods evicted now would only be started again elsewhere.
		return DrainResult{Evicted: progress.Evicted}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("node %s: the drain's deadline %s passed before this attempt began", in.Node, in.Deadline.UTC().Format(time.TimeOnly)), ErrDrainTimeout, nil)
	}
	_, selector, err := deploymentSelector(ctx, c.Kube, in.Deployment)
	if err != nil {
		return DrainResult{}, err
	}
	sel, _ := labels.Parse(selector)
	helper := c.drainHelper(ctx, in.GracePeriod)
	list, errs := helper.GetPodsForDeletion(in.Node)
	if list == nil {
		// The pods could not be listed (the API server's error, not the pods'): retried.
		return DrainResult{}, fmt.Errorf("listing the pods of node %s: %w", in.Node, errors.Join(errs...))
	}
	if len(errs) > 0 {
		return DrainResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("node %s cannot be drained without force: %v", in.Node, errs), ErrDrainBlocked, nil)
	}
	gv, err := drain.CheckEvictionSupport(c.Kube)
	if err != nil {
		return DrainResult{}, fmt.Errorf("checking the Eviction API: %w", err)
	}
	pods := list.Pods()
	// A replica of the model: a pod that ended (Failed after a kubelet's eviction under node pressure,
	// Succeeded) was replaced by its ReplicaSet already, and is removed without lowering the count.
	isReplica := func(p *corev1.Pod) bool {
		return p.Namespace == in.Deployment.Namespace && sel.Matches(labels.Set(p.Labels)) &&
			p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
	}
	evicted := map[string]bool{} // replicas this drain evicted, in this attempt or an earlier one
	for _, name := range progress.Evicted {
		evicted[name] = true
	}
	noteEvicted := func(p *corev1.Pod) {
		evicted[p.Name] = true
		progress.Evicted = append(progress.Evicted, p.Name)
		activity.RecordHeartbeat(ctx, progress)
	}
	replicas := func() int32 { return max(in.FromReplicas-int32(len(evicted)), 0) }
	// The drain marks each replica before it evicts it: a retry whose predecessor's last heartbeat was lost
	// (they are throttled, and a worker that dies loses the last one) counts the replicas terminating with
	// this drain's mark, and no other (one a kubelet, a preemption or an earlier scale-in is removing was
	// replaced by its ReplicaSet, or counted, already).
	mark := drainMark(ctx, in.Node)
	for i := range pods {
		p := pods[i]
		if evicted[p.Name] {
			continue
		}
		if p.DeletionTimestamp != nil {
			if isReplica(&p) && p.Annotations[AnnotationEvictedBy] == mark {
				noteEvicted(&p)
			}
			continue
		}
		if isReplica(&p) {
			patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, AnnotationEvictedBy, mark)
			if _, err := c.Kube.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return DrainResult{Evicted: progress.Evicted}, fmt.Errorf("marking pod %s/%s for eviction: %w", p.Namespace, p.Name, err)
			}
		}
		if err := c.evict(ctx, helper, gv, p, in, &progress); err != nil {
			return DrainResult{Evicted: progress.Evicted}, err
		}
		if isReplica(&p) {
			noteEvicted(&p)
			if _, err := setReplicas(ctx, c.Kube, in.Deployment, replicas()); err != nil {
				return DrainResult{Evicted: progress.Evicted}, err
			}
		}
	}
	// Again, absolute and so harmless to repeat: a count written for a pod an earlier attempt recorded as
	// evicted may never have landed (the write failed, or the worker died between the two).
	if len(evicted) > 0 {
		if _, err := setReplicas(ctx, c.Kube, in.Deployment, replicas()); err != nil {
			return DrainResult{Evicted: progress.Evicted}, err
		}
	}
	// Wait for the evicted pods to finish their in-flight work and go.
	for {
		left := 0
		var waiting []string
		for _, p := range pods {
			cur, err := c.Kube.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) || (err == nil && cur.UID != p.UID) {
				continue
			}
			if err != nil {
				return DrainResult{Evicted: progress.Evicted}, fmt.Errorf("reading pod %s/%s: %w", p.Namespace, p.Name, err)
			}
			left++
			waiting = append(waiting, p.Name)
		}
		activity.RecordHeartbeat(ctx, progress)
		if left == 0 {
			return DrainResult{Evicted: progress.Evicted, Replicas: replicas()}, nil
		}
		if time.Now().After(in.Deadline) {
			return DrainResult{Evicted: progress.Evicted}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("node %s: evicted pods still terminating at the deadline: %s", in.Node, strings.Join(waiting, ", ")), ErrDrainTimeout, nil)
		}
		if err := sleep(ctx, c.poll()); err != nil {
			return DrainResult{Evicted: progress.Evicted}, err
		}
	}
}

// evict asks the Eviction API to evict a pod, retrying while a PodDisruptionBudget refuses, until the
// deadline.
func (c *Cluster) evict(ctx context.Context, helper *drain.Helper, gv schema.GroupVersion, p corev1.Pod, in DrainInput, progress *drainProgress) error {
	defer func() { progress.Blocked, progress.Reason = "", "" }()
	for {
		err := helper.EvictPod(p, gv)
		switch {
		case err == nil || apierrors.IsNotFound(err):
			return nil
		case apierrors.IsTooManyRequests(err):
			progress.Blocked, progress.Reason = p.Name, err.Error()
			activity.RecordHeartbeat(ctx, *progress)
			if time.Now().After(in.Deadline) {
				return temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("node %s: eviction of pod %s/%s refused until the deadline: %v", in.Node, p.Namespace, p.Name, err), ErrDrainBlocked, nil)
			}
			if err := sleep(ctx, c.poll()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("evicting pod %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
}
