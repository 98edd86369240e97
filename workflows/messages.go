package workflows

import (
	"time"

	"github.com/llmscaler/llmscaler/activities"
	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/policy"
	"github.com/llmscaler/llmscaler/traffic"
)

// Names of the autoscaler workflow's updates (manual overrides, each with a validator: a rejected one
// leaves no trace in the history), queries and signals.
const (
	UpdatePause       = "pause"
	UpdateResume      = "resume"
	UpdatePin         = "pin"
	UpdateUnpin       = "unpin"
	UpdateBounds      = "set-bounds"
	UpdateTargets     = "set-targets"
	UpdateDrainNode   = "drain-node"
	UpdateEvaluateNow = "evaluate-now"
	// UpdateSpec replaces the model spec (llmscaler model start on a running model).
	UpdateSpec = "set-spec"

	QueryStatus    = "status"
	QueryDecisions = "decisions"
	// QuerySnapshot returns the latest evaluation's input, for `llmscaler explain`.
	QuerySnapshot = "snapshot"

	// SignalRetarget raises a running scale-out's target (capacity on its way grows instead of a second
	// scale-out starting).
	SignalRetarget = "retarget"
)

// AutoscalerWorkflowName, ScaleOutWorkflowName and ScaleInWorkflowName are the registered workflow types.
const (
	AutoscalerWorkflowName = "Autoscaler"
	ScaleOutWorkflowName   = "ScaleOut"
	ScaleInWorkflowName    = "ScaleIn"
)

// AutoscalerInput starts (or continues) a model's autoscaler.
type AutoscalerInput struct {
	Spec config.ModelSpec `json:"spec"`
	// Carried is the state of the previous run after a continue-as-new.
	Carried *Carried `json:"carried,omitempty"`
}

// Carried is what crosses a continue-as-new: the HPA's memory, the overrides, the recent history.
type Carried struct {
	Policy    policy.State      `json:"policy"`
	Overrides Overrides         `json:"overrides"`
	Decisions []policy.Decision `json:"decisions,omitempty"`
	Actions   []ActionRecord    `json:"actions,omitempty"`
	// OutBackoff and InBackoff space out new attempts after failed scale-outs and scale-ins.
	OutBackoff  Backoff            `json:"outBackoff,omitzero"`
	InBackoff   Backoff            `json:"inBackoff,omitzero"`
	Evaluations int                `json:"evaluations"`
	ActionSeq   int                `json:"actionSeq"`
	Runs        int                `json:"runs"`
	LastScale   time.Time          `json:"lastScale,omitzero"`
	Drains      []DrainNodeRequest `json:"drains,omitempty"`
}

// Overrides are the operator's instructions in force.
type Overrides struct {
	Paused      bool      `json:"paused,omitempty"`
	PauseReason string    `json:"pauseReason,omitempty"`
	PausedAt    time.Time `json:"pausedAt,omitzero"`
	Pinned      *int32    `json:"pinned,omitempty"`
	PinnedUntil time.Time `json:"pinnedUntil,omitzero"`
	PinReason   string    `json:"pinReason,omitempty"`
	MinReplicas *int32    `json:"minReplicas,omitempty"`
	MaxReplicas *int32    `json:"maxReplicas,omitempty"`
	// Targets replace metric targets by metric name.
	Targets      []TargetChange `json:"targets,omitempty"`
	BoundsReason string         `json:"boundsReason,omitempty"`
}

// Backoff counts consecutive failures of one direction and says when to try again.
type Backoff struct {
	Failures int       `json:"failures,omitempty"`
	Until    time.Time `json:"until,omitzero"`
}

// Active reports whether attempts must wait at now.
func (b Backoff) Active(now time.Time) bool { return now.Before(b.Until) }

// fail records one more failure: the wait doubles from backoffBase up to backoffMax.
func (b *Backoff) fail(now time.Time) {
	b.Failures++
	b.Until = now.Add(min(backoffBase<<min(b.Failures-1, 10), backoffMax))
}

// PauseRequest pauses or resumes scaling.
type PauseRequest struct {
	Reason string `json:"reason"`
}

// PinRequest holds the replica count for a while.
type PinRequest struct {
	Replicas int32           `json:"replicas"`
	For      policy.Duration `json:"for"`
	Reason   string          `json:"reason,omitempty"`
}

// BoundsRequest changes min and/or max replicas (nil leaves one as it is).
type BoundsRequest struct {
	Min    *int32 `json:"min,omitempty"`
	Max    *int32 `json:"max,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// TargetChange sets one metric's target value (averageValue, value or averageUtilization, whichever the
// metric's target type uses).
type TargetChange struct {
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
}

// TargetsRequest changes metric targets.
type TargetsRequest struct {
	Targets []TargetChange `json:"targets"`
	Reason  string         `json:"reason,omitempty"`
}

// DrainNodeRequest drains and removes one node of the group.
type DrainNodeRequest struct {
	Node   string `json:"node"`
	Reason string `json:"reason,omitempty"`
}

// SpecRequest replaces the model spec.
type SpecRequest struct {
	Spec config.ModelSpec `json:"spec"`
}

// ActionRecord is one scaling action, as the status and `model history` show it.
type ActionRecord struct {
	WorkflowID   string            `json:"workflowID"`
	Kind         policy.ActionKind `json:"kind"`
	FromReplicas int32             `json:"fromReplicas"`
	ToReplicas   int32             `json:"toReplicas"`
	FromNodes    int32             `json:"fromNodes"`
	ToNodes      int32             `json:"toNodes"`
	Reason       string            `json:"reason"`
	Started      time.Time         `json:"started"`
	// Raised is when a running scale-out's target was last raised (zero: never).
	Raised   time.Time `json:"raised,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Result is running, succeeded, failed or cancelled.
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
	// Waves are a scale-out's capacity orders, its first target and each raise, and when each served: the
	// lead times the policy measures.
	Waves []Wave `json:"waves,omitempty"`
}

// Wave is capacity ordered by a scale-out (its start or a raise): the replica count ordered, the nodes it
// asked the group for (0: its replicas fit on nodes there or on their way), when, and when that many
// replicas were first seen ready (zero: not yet).
type Wave struct {
	Replicas int32     `json:"replicas"`
	Nodes    int32     `json:"nodes,omitempty"`
	Ordered  time.Time `json:"ordered"`
	Served   time.Time `json:"served,omitzero"`
}

// Status is what the status query returns.
type Status struct {
	Model           string             `json:"model"`
	Namespace       string             `json:"namespace"`
	Deployment      string             `json:"deployment"`
	State           string             `json:"state"`
	CurrentReplicas int32              `json:"currentReplicas"`
	ReadyReplicas   int32              `json:"readyReplicas"`
	DesiredReplicas int32              `json:"desiredReplicas"`
	MinReplicas     int32              `json:"minReplicas"`
	MaxReplicas     int32              `json:"maxReplicas"`
	Group           policy.NodeGroup   `json:"group"`
	Nodes           []policy.Node      `json:"nodes,omitempty"`
	InProgress      *ActionRecord      `json:"inProgress,omitempty"`
	Overrides       Overrides          `json:"overrides"`
	LastDecision    *policy.Decision   `json:"lastDecision,omitempty"`
	LastError       string             `json:"lastError,omitempty"`
	OutBackoff      Backoff            `json:"outBackoff,omitzero"`
	InBackoff       Backoff            `json:"inBackoff,omitzero"`
	Evaluations     int                `json:"evaluations"`
	Actions         []ActionRecord     `json:"actions,omitempty"`
	PendingDrains   []DrainNodeRequest `json:"pendingDrains,omitempty"`
}

// Scaling states, as the ScalingState search attribute and the status show them.
const (
	StateIdle       = "Idle"
	StateScalingOut = "ScalingOut"
	StateScalingIn  = "ScalingIn"
	StatePaused     = "Paused"
	StateBackoff    = "BackingOff"
	// StateObservationFailing: the last observation failed or ran past its budget, so that tick was skipped;
	// the status's lastError says why, and the next tick retries.
	StateObservationFailing = "ObservationFailing"
)

// ModelRef is what the sagas need to know about a model.
type ModelRef struct {
	Namespace    string                   `json:"namespace"`
	Name         string                   `json:"name"`
	Deployment   activities.DeploymentRef `json:"deployment"`
	Group        activities.NodeGroupRef  `json:"group"`
	LoadBalancer LoadBalancerRef          `json:"loadBalancer"`
}

// LoadBalancerRef is the load balancer step's configuration.
type LoadBalancerRef struct {
	Mode   string         `json:"mode"`
	Config traffic.Config `json:"config"`
}

func modelRef(spec config.ModelSpec) ModelRef {
	s := spec.Spec
	lb := s.LoadBalancer
	return ModelRef{
		Namespace:  spec.Metadata.Namespace,
		Name:       spec.Metadata.Name,
		Deployment: activities.DeploymentRef{Namespace: spec.Metadata.Namespace, Name: s.Deployment},
		Group:      activities.NodeGroupRef{Provider: s.NodeGroup.Provider, Group: s.NodeGroup.Name},
		LoadBalancer: LoadBalancerRef{Mode: lb.Mode, Config: traffic.Config{
			Namespace: spec.Metadata.Namespace, Service: lb.Service, TargetGroupARN: lb.TargetGroupARN, TargetType: lb.TargetType, Port: lb.Port,
		}},
	}
}

// ScaleOutInput is one scale-out saga.
type ScaleOutInput struct {
	Model          ModelRef        `json:"model"`
	FromReplicas   int32           `json:"fromReplicas"`
	TargetReplicas int32           `json:"targetReplicas"`
	FromNodes      int32           `json:"fromNodes"`
	TargetNodes    int32           `json:"targetNodes"`
	Reason         string          `json:"reason"`
	NodeReady      policy.Duration `json:"nodeReady"`
	PodsReady      policy.Duration `json:"podsReady"`
	EndpointsReady policy.Duration `json:"endpointsReady"`
}

// Retarget raises a running scale-out's target.
type Retarget struct {
	Replicas int32 `json:"replicas"`
	Nodes    int32 `json:"nodes"`
}

// ScaleInInput is one scale-in saga.
type ScaleInInput struct {
	Model          ModelRef        `json:"model"`
	FromReplicas   int32           `json:"fromReplicas"`
	TargetReplicas int32           `json:"targetReplicas"`
	Victims        []policy.Victim `json:"victims,omitempty"`
	VictimPods     []string        `json:"victimPods,omitempty"`
	DrainGrace     policy.Duration `json:"drainGrace,omitempty"`
	DrainTimeout   policy.Duration `json:"drainTimeout"`
	Reason         string          `json:"reason"`
	// Manual marks an operator's drain-node: load returning does not cancel it.
	Manual bool `json:"manual,omitempty"`
}

// ScaleResult is what a saga did.
type ScaleResult struct {
	Replicas int32                `json:"replicas"`
	Added    []activities.NodeRef `json:"added,omitempty"`
	Removed  []activities.NodeRef `json:"removed,omitempty"`
	// Skipped are victims the group would not let go (protected, at its minimum): never drained.
	Skipped []string `json:"skipped,omitempty"`
}
