package policy

import "time"

// Observation is everything one evaluation looks at, read at Time. It is small and serializable: the
// workflow records it, `explain` reads it from a JSON snapshot, the simulator builds it.
type Observation struct {
	Time time.Time `json:"time"`
	// SpecReplicas is the Deployment's spec.replicas: the HPA's "current replicas".
	SpecReplicas int32 `json:"specReplicas"`
	// Pods are the Deployment's pods, in any state.
	Pods []Pod `json:"pods,omitempty"`
	// Metrics holds one reading per spec metric, matched by name.
	Metrics []MetricReading `json:"metrics,omitempty"`
	// Activation is the scale-to-zero activation signal, when configured and read.
	Activation *float64 `json:"activation,omitempty"`
	// Nodes are the nodes of the model's node group.
	Nodes []Node `json:"nodes,omitempty"`
	// Group is the node group's size as its provider reports it.
	Group NodeGroup `json:"group"`
	// InProgress is the scaling action under way, if any (set by the workflow, not read from the cluster).
	InProgress *Action `json:"inProgress,omitempty"`
}

// PodPhase mirrors corev1.PodPhase.
type PodPhase string

const (
	PodPending   PodPhase = "Pending"
	PodRunning   PodPhase = "Running"
	PodSucceeded PodPhase = "Succeeded"
	PodFailed    PodPhase = "Failed"
	PodUnknown   PodPhase = "Unknown"
)

// Pod is what the policy needs of a pod.
type Pod struct {
	Name  string   `json:"name"`
	Phase PodPhase `json:"phase"`
	// Ready is the Ready condition; ReadyChanged is its lastTransitionTime (zero: no condition).
	Ready        bool      `json:"ready"`
	ReadyChanged time.Time `json:"readyChanged,omitempty"`
	// StartTime is status.startTime (zero: not started).
	StartTime time.Time `json:"startTime,omitempty"`
	// Deleting is true once the pod has a deletionTimestamp.
	Deleting bool   `json:"deleting,omitempty"`
	Node     string `json:"node,omitempty"`
	// Requests of the pod's containers summed; zero means a container lacks the request.
	CPURequest    float64 `json:"cpuRequest,omitempty"`
	MemoryRequest float64 `json:"memoryRequest,omitempty"`
}

// MetricReading is the value of one spec metric at observation time.
type MetricReading struct {
	Name string `json:"name"`
	// Pods holds per-pod samples (Resource and Pods metrics).
	Pods []PodSample `json:"pods,omitempty"`
	// Value holds the value of an Object or External metric.
	Value *float64 `json:"value,omitempty"`
	// Demand holds the readings of a Demand metric.
	Demand *DemandReading `json:"demand,omitempty"`
	// Error says why the metric could not be read; such a metric is invalid.
	Error string `json:"error,omitempty"`
}

// DemandReading is what a Demand metric read: arrivals per second, the mean service time in seconds
// (nil: use the spec's fixed value), the backlog (nil: none configured) and the peak arrival rate over the
// peak window (nil: none configured, or unreadable).
type DemandReading struct {
	Arrivals     float64  `json:"arrivals"`
	ServiceTime  *float64 `json:"serviceTime,omitempty"`
	Backlog      *float64 `json:"backlog,omitempty"`
	PeakArrivals *float64 `json:"peakArrivals,omitempty"`
}

// PodSample is one pod's value of a metric.
type PodSample struct {
	Pod   string  `json:"pod"`
	Value float64 `json:"value"`
	// Timestamp and Window describe the sample as the metrics API does (window zero for Prometheus).
	Timestamp time.Time `json:"timestamp,omitempty"`
	Window    Duration  `json:"window,omitempty"`
}

// Node is what the policy needs of a node of the group.
type Node struct {
	Name       string `json:"name"`
	InstanceID string `json:"instanceID,omitempty"`
	Ready      bool   `json:"ready"`
	// GPUsAllocatable is status.allocatable[nvidia.com/gpu]; zero until the device plugin registers.
	GPUsAllocatable int32     `json:"gpusAllocatable"`
	Cordoned        bool      `json:"cordoned,omitempty"`
	Deleting        bool      `json:"deleting,omitempty"`
	Protected       bool      `json:"protected,omitempty"`
	Created         time.Time `json:"created,omitempty"`
}

// Serving reports whether the node can run GPU pods now.
func (n Node) Serving() bool { return n.Ready && n.GPUsAllocatable > 0 && !n.Cordoned && !n.Deleting }

// NodeGroup is the provider's view of the group (an Auto Scaling Group, a kwok group).
type NodeGroup struct {
	Name string `json:"name,omitempty"`
	Min  int32  `json:"min"`
	Max  int32  `json:"max"`
	// Desired is the requested size, including instances still booting.
	Desired int32 `json:"desired"`
	// GPUsPerNode is what one node of the group's instance type offers.
	GPUsPerNode int32 `json:"gpusPerNode"`
}

// ActionKind names a scaling action.
type ActionKind string

const (
	NoAction ActionKind = ""
	ScaleOut ActionKind = "ScaleOut"
	ScaleIn  ActionKind = "ScaleIn"
)

// Action is a scaling action under way.
type Action struct {
	Kind           ActionKind `json:"kind"`
	TargetReplicas int32      `json:"targetReplicas"`
	TargetNodes    int32      `json:"targetNodes"`
	Started        time.Time  `json:"started"`
}

// Snapshot is a complete evaluation input as one document: the observation, the state the HPA keeps
// between evaluations, and the overrides in force. `llmscaler explain` reads it; the autoscaler workflow's
// "snapshot" query returns it, so any live decision can be replayed and examined.
type Snapshot struct {
	Observation
	State     State     `json:"state,omitempty"`
	Overrides Overrides `json:"overrides,omitempty"`
	// LeadTime and Waiting are the lead time the autoscaler measured and how long the capacity on its way
	// had waited (Input's): without them a Demand metric is explained with the 4-minute prior.
	LeadTime Duration `json:"leadTime,omitempty"`
	Waiting  Duration `json:"waiting,omitempty"`
}

// ReadyReplicas counts the Running and Ready pods, as the decision's ReadyReplicas does.
func (o Observation) ReadyReplicas() int32 { return int32(readyPodCount(o.Pods)) }
