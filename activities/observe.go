package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/llmscaler/llmscaler/internal/gpunode"
	"github.com/llmscaler/llmscaler/metricsource"
	"github.com/llmscaler/llmscaler/nodegroup"
	"github.com/llmscaler/llmscaler/policy"
)

// Observer reads everything one evaluation looks at. Observe runs as a local activity: it is a few quick
// reads, and a local activity adds one marker to the history instead of three events.
type Observer struct {
	Kube      kubernetes.Interface
	Metrics   metricsource.Router
	Providers Providers
}

// ObserveInput names what to read.
type ObserveInput struct {
	Deployment  DeploymentRef            `json:"deployment"`
	Group       NodeGroupRef             `json:"group"`
	GPUsPerNode int32                    `json:"gpusPerNode,omitempty"`
	Metrics     []policy.MetricSpec      `json:"metrics,omitempty"`
	Activation  *policy.MetricIdentifier `json:"activation,omitempty"`
}

// Observe reads the Deployment, its pods, the metrics and the node group into one Observation. A metric
// that cannot be read is recorded as invalid in the observation (the policy then forbids a scale-down on
// it); the Deployment or the group being unreadable fails the activity.
func (o *Observer) Observe(ctx context.Context, in ObserveInput) (policy.Observation, error) {
	obs := policy.Observation{Time: time.Now().UTC()}
	dep, selector, err := deploymentSelector(ctx, o.Kube, in.Deployment)
	if err != nil {
		return obs, err
	}
	if dep.Spec.Replicas != nil {
		obs.SpecReplicas = *dep.Spec.Replicas
	}
	pods, err := o.Kube.CoreV1().Pods(in.Deployment.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return obs, fmt.Errorf("listing pods of %s/%s: %w", in.Deployment.Namespace, in.Deployment.Name, err)
	}
	for _, p := range pods.Items {
		obs.Pods = append(obs.Pods, podOf(&p))
	}
	target := metricsource.Pods{Namespace: in.Deployment.Namespace, Selector: selector}
	for _, m := range in.Metrics {
		obs.Metrics = append(obs.Metrics, o.Metrics.Read(ctx, target, m))
	}
	if in.Activation != nil {
		obs.Activation, _ = o.Metrics.Activation(ctx, *in.Activation)
	}
	group, nodes, err := groupNodes(ctx, o.Kube, o.Providers, in.Group)
	if err != nil {
		return obs, err
	}
	obs.Group = policy.NodeGroup{Name: group.Name, Min: group.Min, Max: group.Max, Desired: group.Desired, GPUsPerNode: in.GPUsPerNode}
	if obs.Group.GPUsPerNode == 0 {
		if it, err := gpunode.LookupInstanceType(group.InstanceType); err == nil {
			obs.Group.GPUsPerNode = int32(it.GPUs)
		}
	}
	for _, gn := range nodes {
		obs.Nodes = append(obs.Nodes, gn.policyNode())
	}
	return obs, nil
}

// podOf reduces a pod to what the policy needs.
func podOf(p *corev1.Pod) policy.Pod {
	out := policy.Pod{Name: p.Name, Phase: policy.PodPhase(p.Status.Phase), Deleting: p.DeletionTimestamp != nil, Node: p.Spec.NodeName}
	if p.Status.StartTime != nil {
		out.StartTime = p.Status.StartTime.Time
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			out.Ready = c.Status == corev1.ConditionTrue
			out.ReadyChanged = c.LastTransitionTime.Time
		}
	}
	// As the HPA does, a pod's request is known only if every container states one: a container without
	// one leaves the pod's request unknown (0: the utilization metric is then invalid, "missing request"),
	// not the sum of the others, which would read its utilization high.
	cpuKnown, memoryKnown := true, true
	for _, c := range p.Spec.Containers {
		cpu, hasCPU := c.Resources.Requests[corev1.ResourceCPU]
		memory, hasMemory := c.Resources.Requests[corev1.ResourceMemory]
		cpuKnown, memoryKnown = cpuKnown && hasCPU, memoryKnown && hasMemory
		out.CPURequest += float64(cpu.MilliValue()) / 1000
		out.MemoryRequest += float64(memory.Value())
	}
	if !cpuKnown {
		out.CPURequest = 0
	}
	if !memoryKnown {
		out.MemoryRequest = 0
	}
	return out
}

// groupNode is a node of a group, with its instance.
type groupNode struct {
	node     *corev1.Node // nil: the instance has no Node yet
	instance nodegroup.Instance
}

func (g groupNode) policyNode() policy.Node {
	n := policy.Node{InstanceID: g.instance.ID, Protected: g.instance.Protected}
	if g.node != nil {
		n.Name = g.node.Name
		n.Ready = gpunode.IsReady(g.node)
		n.GPUsAllocatable = int32(gpunode.GPUsAllocatable(g.node))
		n.Cordoned = g.node.Spec.Unschedulable
		n.Deleting = g.node.DeletionTimestamp != nil
		n.Created = g.node.CreationTimestamp.Time
	}
	return n
}

func (g groupNode) serving() bool {
	return g.node != nil && g.policyNode().Serving()
}

func (g groupNode) ref() NodeRef {
	r := NodeRef{InstanceID: g.instance.ID}
	if g.node != nil {
		r.Name = g.node.Name
	}
	return r
}

// groupNodes describes the group and pairs each of its instances with its Node, through the Node's
// providerID (aws:///<zone>/<instance-id>).
func groupNodes(ctx context.Context, kube kubernetes.Interface, providers Providers, ref NodeGroupRef) (nodegroup.Group, []groupNode, error) {
	p, err := providers.get(ref.Provider)
	if err != nil {
		return nodegroup.Group{}, nil, err
	}
	group, err := p.Describe(ctx, ref.Group)
	if err != nil {
		return group, nil, cloudError(fmt.Sprintf("describing node group %s", ref.Group), err)
	}
	list, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return group, nil, fmt.Errorf("listing nodes: %w", err)
	}
	byInstance := map[string]*corev1.Node{}
	for i := range list.Items {
		n := &list.Items[i]
		if _, id, err := gpunode.ParseProviderID(n.Spec.ProviderID); err == nil {
			byInstance[id] = n
		}
	}
	out := make([]groupNode, 0, len(group.Instances))
	for _, in := range group.Instances {
		out = append(out, groupNode{node: byInstance[in.ID], instance: in})
	}
	return group, out, nil
}

// deploymentSelector returns a Deployment and its pod selector.
func deploymentSelector(ctx context.Context, kube kubernetes.Interface, ref DeploymentRef) (*appsv1.Deployment, string, error) {
	dep, err := kube.AppsV1().Deployments(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "", temporal.NewNonRetryableApplicationError(fmt.Sprintf("deployment %s/%s not found", ref.Namespace, ref.Name), ErrNotFound, err)
		}
		return nil, "", fmt.Errorf("reading deployment %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil {
		return nil, "", temporal.NewNonRetryableApplicationError(fmt.Sprintf("deployment %s/%s has an invalid selector", ref.Namespace, ref.Name), ErrNotFound, err)
	}
	return dep, sel.String(), nil
}
