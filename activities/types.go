// Package activities holds what the workflows do to the world: read the cluster and the metrics, resize
// node groups, scale Deployments, drain nodes, move load balancer targets. One struct per adapter family,
// built once in the worker with its clients; workflows call the methods through nil pointers so the
// compiler checks the names. Inputs and outputs are small (names, counts), never whole Kubernetes objects.
//
// Every activity is idempotent (sizes are absolute, instances and pods are named, "already gone" is done)
// and every wait is a poll that heartbeats, with an absolute deadline so that a retried attempt resumes the
// same wait instead of starting a new one.
package activities

import (
	"time"

	"github.com/llmscaler/llmscaler/cloudapi"
	"github.com/llmscaler/llmscaler/traffic"
)

// Application error types the workflows tell apart. Those marked non-retryable are raised as such.
const (
	// ErrNodesNotReady: requested nodes did not become Ready with GPUs allocatable by the deadline.
	ErrNodesNotReady = "NodesNotReady"
	// ErrLaunchFailed and ErrCapacityUnavailable: the group's launches failed (its scaling activities say
	// why); the details carry the wait's WaitNodesResult, like ErrNodesNotReady.
	ErrLaunchFailed        = string(cloudapi.LaunchFailed)
	ErrCapacityUnavailable = string(cloudapi.CapacityUnavailable)
	// ErrPodsNotReady: new pods did not become Ready by the deadline.
	ErrPodsNotReady = "PodsNotReady"
	// ErrNotServing: ready pods did not become serving endpoints or healthy targets by the deadline.
	ErrNotServing = "NotServing"
	// ErrDrainBlocked: an eviction kept being refused (a PodDisruptionBudget) until the deadline.
	ErrDrainBlocked = "DrainBlocked"
	// ErrDrainTimeout: evicted pods did not terminate by the deadline.
	ErrDrainTimeout = "DrainTimeout"
	// ErrNotRemovable: the node group would refuse to remove the node (protection, minimum size).
	ErrNotRemovable = "NotRemovable"
	// ErrNotFound: a Deployment or group the spec names does not exist.
	ErrNotFound = "NotFound"
)

// NodeGroupRef names a node group and its provider.
type NodeGroupRef struct {
	Provider string `json:"provider"`
	Group    string `json:"group"`
}

// DeploymentRef names a Deployment.
type DeploymentRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// NodeRef names a node and its instance.
type NodeRef struct {
	Name       string `json:"name,omitempty"`
	InstanceID string `json:"instanceID"`
}

// SetGroupSizeInput asks for an absolute group size.
type SetGroupSizeInput struct {
	Group NodeGroupRef `json:"group"`
	Size  int32        `json:"size"`
	// NotBelowLive keeps the size at least the instances the group holds (those not on their way out): a
	// size below them lets the group pick which to terminate, without a drain, perhaps a serving node. For
	// a compensation, which means to drop the launches that never happened, not an instance that did.
	NotBelowLive bool `json:"notBelowLive,omitempty"`
}

// SetGroupSizeResult reports the size before.
type SetGroupSizeResult struct {
	Previous int32 `json:"previous"`
}

// WaitNodesInput waits until the group has Want nodes Ready with GPUs allocatable.
type WaitNodesInput struct {
	Group    NodeGroupRef `json:"group"`
	Want     int32        `json:"want"`
	Deadline time.Time    `json:"deadline"`
	// Since is when the nodes were asked for: failed launches after it end the wait.
	Since time.Time `json:"since"`
}

// WaitNodesResult lists the group's nodes when the wait ended.
type WaitNodesResult struct {
	Serving []NodeRef `json:"serving"`
	// NotReady are instances that are not serving yet (including those without a Node): the ones asked for,
	// which a failed scale-out removes again.
	NotReady []NodeRef `json:"notReady,omitempty"`
	// Unserving are nodes that joined before the nodes were asked for (WaitNodesInput.Since) and are not
	// serving now (a kubelet that stopped reporting, GPUs gone from allocatable): not the scale-out's, and
	// never removed by it, as they may be running the model's pods.
	Unserving []NodeRef `json:"unserving,omitempty"`
}

// TerminateNodeInput removes one instance (and its Node) from a group.
type TerminateNodeInput struct {
	Group NodeGroupRef `json:"group"`
	Node  NodeRef      `json:"node"`
}

// CheckRemovableInput asks whether the group will let a node go.
type CheckRemovableInput struct {
	Group NodeGroupRef `json:"group"`
	Node  NodeRef      `json:"node"`
}

// ScaleDeploymentInput sets a Deployment's replicas.
type ScaleDeploymentInput struct {
	Deployment DeploymentRef `json:"deployment"`
	Replicas   int32         `json:"replicas"`
	// DeletionCandidates get the lowest pod-deletion-cost, so that a scale-down removes them first.
	DeletionCandidates []string `json:"deletionCandidates,omitempty"`
}

// ScaleDeploymentResult reports the replicas before.
type ScaleDeploymentResult struct {
	Previous int32 `json:"previous"`
}

// WaitPodsInput waits until the Deployment has Replicas ready pods.
type WaitPodsInput struct {
	Deployment DeploymentRef `json:"deployment"`
	Replicas   int32         `json:"replicas"`
	Deadline   time.Time     `json:"deadline"`
}

// WaitPodsResult lists the ready pods as load balancer targets.
type WaitPodsResult struct {
	Ready []traffic.Target `json:"ready"`
}

// CordonInput marks a node (un)schedulable.
type CordonInput struct {
	Node       string `json:"node"`
	Unschedule bool   `json:"unschedule"`
}

// DrainInput drains a node: evicts its pods through the Eviction API and waits until they are gone. Each
// evicted pod of the Deployment lowers its replicas by one, so the ReplicaSet does not recreate it.
type DrainInput struct {
	Deployment DeploymentRef `json:"deployment"`
	Node       string        `json:"node"`
	// FromReplicas is the Deployment's replicas when this node's drain began.
	FromReplicas int32 `json:"fromReplicas"`
	// GracePeriod for each pod; zero uses the pod's own terminationGracePeriodSeconds.
	GracePeriod time.Duration `json:"gracePeriod,omitempty"`
	Deadline    time.Time     `json:"deadline"`
}

// DrainResult reports what the drain did.
type DrainResult struct {
	Evicted  []string `json:"evicted,omitempty"`
	Replicas int32    `json:"replicas"`
}

// TrafficInput names targets of a model's load balancer.
type TrafficInput struct {
	Mode    string           `json:"mode"`
	Config  traffic.Config   `json:"config"`
	Targets []traffic.Target `json:"targets"`
	// Deadline of a wait (WaitServing).
	Deadline time.Time `json:"deadline,omitzero"`
}

// PodTargetsInput asks for the load balancer targets of named pods.
type PodTargetsInput struct {
	Deployment DeploymentRef `json:"deployment"`
	Pods       []string      `json:"pods,omitempty"`
	// Node selects the Deployment's pods on that node instead of by name.
	Node string `json:"node,omitempty"`
	// SharedNodesStay is for targets that are whole nodes (a target group in instance mode): a selected pod
	// on a node where a pod of the Deployment that is not selected stays is left out, as taking its node
	// out of the load balancer would take that pod out too, for good.
	SharedNodesStay bool `json:"sharedNodesStay,omitempty"`
}
