// Package policy decides how many replicas a model should run and which nodes to add or remove.
//
// It is pure: inputs in, decision out, the clock passed in, no I/O and no imports beyond the standard
// library. The per-model Temporal workflow, the tests, the `explain` command and the trace simulator all run
// this same code.
//
// The replica recommendation follows the Kubernetes HPA v2 controller rule for rule (pkg/controller/
// podautoscaler: replica_calculator.go and horizontal.go): metric types Resource, Pods, Object and External;
// tolerance per direction; missing and unready pods with recomputation; the max over metrics with invalid
// metrics forbidding a scale-down; stabilization windows; rate policies with selectPolicy. On top, opt-in
// extensions for LLM serving: panic mode for bursts, scale to zero with an activation signal, and capacity
// already on its way. Every evaluation returns a Record that says why.
package policy

import (
	"fmt"
	"time"
)

// MetricSourceType is the kind of metric, as in autoscaling/v2.
type MetricSourceType string

const (
	ResourceMetric MetricSourceType = "Resource"
	PodsMetric     MetricSourceType = "Pods"
	ObjectMetric   MetricSourceType = "Object"
	ExternalMetric MetricSourceType = "External"
	// DemandMetric is our extension: replicas from the arrival rate, the service time and the backlog.
	DemandMetric MetricSourceType = "Demand"
)

// MetricTargetType is how a metric's target is expressed, as in autoscaling/v2.
type MetricTargetType string

const (
	UtilizationTarget  MetricTargetType = "Utilization"
	ValueTarget        MetricTargetType = "Value"
	AverageValueTarget MetricTargetType = "AverageValue"
)

// Spec is the scaling part of a model spec, named as in HorizontalPodAutoscaler v2 where it means the same.
type Spec struct {
	// MinReplicas is the lower bound while the model serves; ScaleToZero may go below it when idle.
	MinReplicas int32 `json:"minReplicas"`
	// MaxReplicas is the upper bound of replicas.
	MaxReplicas int32 `json:"maxReplicas"`
	// Metrics to scale on; the largest proposal wins. Default: CPU at 80% utilization, as the HPA's.
	Metrics []MetricSpec `json:"metrics,omitempty"`
	// Behavior sets stabilization windows, rate policies and tolerances per direction (HPA defaults when unset).
	Behavior *Behavior `json:"behavior,omitempty"`

	// CPUInitializationPeriod: CPU samples of pods started less than this ago are trusted only after a
	// full metric window of readiness (HPA: --horizontal-pod-autoscaler-cpu-initialization-period, 5m).
	CPUInitializationPeriod Duration `json:"cpuInitializationPeriod,omitempty"`
	// InitialReadinessDelay: an unready pod whose readiness last changed within this of its start is
	// treated as not yet ready (HPA: --horizontal-pod-autoscaler-initial-readiness-delay, 30s).
	InitialReadinessDelay Duration `json:"initialReadinessDelay,omitempty"`

	// Panic enables panic mode for bursts (opt-in).
	Panic *PanicSpec `json:"panic,omitempty"`
	// ScaleToZero enables scaling to zero after an idle period (opt-in).
	ScaleToZero *ScaleToZeroSpec `json:"scaleToZero,omitempty"`

	// GPUsPerPod is what one replica requests of nvidia.com/gpu.
	GPUsPerPod int32 `json:"gpusPerPod,omitempty"`
	// BusyMetric names the Pods metric that says how busy a pod is (in-flight requests, queue length):
	// scale-in removes the least busy first. Default: the first Pods metric.
	BusyMetric string `json:"busyMetric,omitempty"`
}

// MetricSpec is one metric to scale on; exactly the member named by Type is set.
type MetricSpec struct {
	// Type is Resource, Pods, Object, External or Demand; the member of that name is set.
	Type MetricSourceType `json:"type"`
	// Resource is cpu or memory of the pods, from the Kubernetes metrics API.
	Resource *ResourceMetricSource `json:"resource,omitempty"`
	// Pods is a per-pod metric from Prometheus, averaged over the pods.
	Pods *PodsMetricSource `json:"pods,omitempty"`
	// Object is a metric of one Kubernetes object, from Prometheus.
	Object *ObjectMetricSource `json:"object,omitempty"`
	// External is a metric of something outside the cluster's objects, from Prometheus.
	External *ExternalMetricSource `json:"external,omitempty"`
	// Demand sizes replicas from arrivals, service time and backlog (our extension).
	Demand *DemandSource `json:"demand,omitempty"`
}

// DemandSource sizes replicas from demand rather than from a per-replica average (opt-in, type Demand).
// By Little's law the busy slots are arrivals x service time; the backlog is sized to drain over the lead
// time (the time from ordering capacity to it serving), so a queue built during a burst does not order
// capacity that would arrive after it has drained; capacity is held for HoldFor after load falls; and when
// bursts recur, capacity for the next one is ordered a lead time ahead of it. The backlog is the one the
// capacity will meet: while requests wait it grows by the arrivals beyond what the replicas serve at full
// batches until the capacity on its way serves; and while they are saturated, the arrivals are at least
// what they serve plus the backlog's growth (read an evaluation after a step, where the rate's window takes
// a window).
//
//	replicas = ceil((arrivals x serviceTime + (backlog + its growth until capacity serves) x serviceTime / leadTime)
//	                / (concurrency x targetUtilization))
type DemandSource struct {
	// Arrivals is the request rate in requests per second, e.g. sum(rate(lorax_request_count[1m])).
	Arrivals MetricIdentifier `json:"arrivals"`
	// ServiceTime reads the mean time a request holds a batch slot, in seconds; ServiceTimeSeconds is used
	// when it is unset or reads nothing (no request finished lately).
	ServiceTime *MetricIdentifier `json:"serviceTime,omitempty"`
	// ServiceTimeSeconds is the fixed mean service time, used when serviceTime is unset or reads nothing.
	ServiceTimeSeconds float64 `json:"serviceTimeSeconds,omitempty"`
	// Backlog reads the requests waiting (replicas' queues, a gateway's queue).
	Backlog *MetricIdentifier `json:"backlog,omitempty"`
	// PeakArrivals reads the highest arrival rate over PeakWindow within the last minute, such as
	// max_over_time(sum(rate(requests[10s]))[1m:2s]) (Prometheus must scrape at least twice a window).
	// Optional. When its count over the window stands more than peakSigmas standard deviations above what a
	// Poisson stream would bring at the highest arrival rate read over that minute, the requests come in
	// bursts the rate's window averages away (a client firing on the minute, a batch submitted at once),
	// and the replicas are at least those that hold the peak's busy slots (the peak rate x the service
	// time) at full batches. Unreadable, it is left out.
	PeakArrivals *MetricIdentifier `json:"peakArrivals,omitempty"`
	// PeakWindow is the range of PeakArrivals's rate() (default 10s).
	PeakWindow Duration `json:"peakWindow,omitempty"`
	// Concurrency is the sequences one replica serves at once (LoRAX's batch).
	Concurrency int32 `json:"concurrency"`
	// TargetUtilization of those slots (default 0.8): an upper bound on how busy replicas run.
	TargetUtilization float64 `json:"targetUtilization,omitempty"`
	// SLO, when set, sizes for the queueing delay target instead of a fixed utilization alone: the fewest
	// replicas whose modelled share of requests waiting longer than QueueDelay is at most 1 - Attainment.
	SLO *QueueSLO `json:"slo,omitempty"`
	// LeadTime from ordering a replica to it serving; default: measured from this model's scale-outs (each
	// order, a start or a raise, to its replicas ready), and at least as long as capacity ordered has been
	// waiting; else 4m (EC2 GPU node Ready 70-100 s, GPUs 60 s later, a mirrored image pull and a model load:
	// a prior that errs long, as capacity ordered early costs minutes and capacity ordered late costs requests).
	LeadTime Duration `json:"leadTime,omitempty"`
	// RateWindow is the range of the arrivals query's rate(), such as 1m for rate(x[1m]) (default 1m). A rate
	// over a window describes the arrivals of about half a window ago, so a ramp is projected that much
	// further.
	RateWindow Duration `json:"rateWindow,omitempty"`
	// HoldFor keeps capacity after the demand falls (default twice the lead time; the scale-in's headroom for
	// the rises seen keeps the last lead time's highest level, so a shorter hold is in effect a lead time).
	// When bursts recur (the last two began at most an hour apart), capacity for the next one is ordered
	// ahead of it (the arrivals seen one cycle ago over the next lead time and a half, the window widened by
	// how much the gaps between bursts differ). Once the cycle is regular (two gaps or more, within half a
	// lead time of each other), that forecast takes the place of the default hold: the behavior's own
	// scale-down window applies (a HoldFor set here still does).
	HoldFor Duration `json:"holdFor,omitempty"`
	// KeepAfterStop keeps the replicas there were before an abrupt stop of the load (the demand falling to half
	// or less within a quarter of a lead time, after a load that lasted longer than the hold: an outage
	// upstream, a paused client, a failover; a shorter burst's end is the burst cycle's) while the load stays
	// away, for up to this long (default 30m; 0s turns it off). Such a load comes back as abruptly, and a
	// return to a scaled-in deployment queues it all on the few replicas left, where capacity arriving a
	// lead time later cannot take those queues over. It is let go a rate window after the load's demand rises
	// again (its own readings hold it then; a ramp's capacity is the trend's to order), when the time is up,
	// and while a regular burst cycle's forecast orders capacity ahead of each burst. A load that ended for
	// good costs this long of its capacity.
	KeepAfterStop *Duration `json:"keepAfterStop,omitempty"`
}

// QueueSLO is a target on the queueing delay: Attainment of requests start within QueueDelay of arriving.
type QueueSLO struct {
	// QueueDelay is the longest a request should wait before its prefill starts.
	QueueDelay Duration `json:"queueDelay"`
	// Attainment is the share of requests that must meet it (default 0.99).
	Attainment float64 `json:"attainment,omitempty"`
	// LoadBalancing says how requests reach the replicas, which decides the queueing model: Random (a
	// Kubernetes Service through kube-proxy: each replica is its own queue, M/M/c per replica; the default)
	// or LeastRequest (a gateway or proxy that sends each request to the replica with the fewest in flight:
	// the replicas behave as one pool, M/M/(n x c), which needs fewer replicas for the same target).
	LoadBalancing LoadBalancing `json:"loadBalancing,omitempty"`
}

// LoadBalancing is how requests are spread over the replicas.
type LoadBalancing string

const (
	RandomBalancing       LoadBalancing = "Random"
	LeastRequestBalancing LoadBalancing = "LeastRequest"
)

// Demand defaults.
const (
	DefaultDemandUtilization = 0.8
	DefaultLeadTime          = 4 * time.Minute // see DemandSource.LeadTime
	DefaultRateWindow        = time.Minute
	DefaultPeakWindow        = 10 * time.Second
	DefaultKeepAfterStop     = 30 * time.Minute // see DemandSource.KeepAfterStop and State.keepAfterStop
)

// ResourceMetricSource is a resource of the pods (cpu, memory) as the Kubernetes metrics API reports it.
type ResourceMetricSource struct {
	// Name is cpu or memory.
	Name string `json:"name"`
	// Target is a Utilization (percent of the request) or an AverageValue (cores, bytes).
	Target MetricTarget `json:"target"`
}

// PodsMetricSource is a per-pod metric averaged over the pods (queue length, in-flight requests).
type PodsMetricSource struct {
	// Metric names the metric and its PromQL (one series per pod, labelled pod).
	Metric MetricIdentifier `json:"metric"`
	// Target is an AverageValue per pod.
	Target MetricTarget `json:"target"`
}

// ObjectMetricSource is a metric describing one Kubernetes object (an Ingress's request rate).
type ObjectMetricSource struct {
	// DescribedObject is the object the metric describes.
	DescribedObject ObjectReference `json:"describedObject"`
	// Metric names the metric and its PromQL (its series are summed).
	Metric MetricIdentifier `json:"metric"`
	// Target is a Value, or an AverageValue per pod.
	Target MetricTarget `json:"target"`
}

// ExternalMetricSource is a metric not tied to any Kubernetes object (a gateway's queue).
type ExternalMetricSource struct {
	// Metric names the metric and its PromQL (its series are summed).
	Metric MetricIdentifier `json:"metric"`
	// Target is a Value, or an AverageValue per pod.
	Target MetricTarget `json:"target"`
}

// ObjectReference names the object an Object metric describes.
type ObjectReference struct {
	// APIVersion of the object.
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind of the object (Service, Ingress...).
	Kind string `json:"kind"`
	// Name of the object, in the model's namespace.
	Name string `json:"name"`
}

// MetricIdentifier names a metric; Query (PromQL) says how to read it from Prometheus.
type MetricIdentifier struct {
	// Name of the metric, as records and overrides refer to it.
	Name string `json:"name"`
	// Query is the PromQL expression. For Pods metrics it returns one series per pod, labelled "pod";
	// for Object and External metrics its series are summed.
	Query string `json:"query,omitempty"`
}

// MetricTarget is the value to hold the metric at. Quantities are plain numbers here ("500m" is 0.5);
// the config loader converts Kubernetes quantity strings.
type MetricTarget struct {
	// Type is Utilization, Value or AverageValue.
	Type MetricTargetType `json:"type"`
	// Value is the target of the whole (Value targets).
	Value *float64 `json:"value,omitempty"`
	// AverageValue is the target per pod (AverageValue targets).
	AverageValue *float64 `json:"averageValue,omitempty"`
	// AverageUtilization is the target in percent of the pods' requests (Utilization targets).
	AverageUtilization *int32 `json:"averageUtilization,omitempty"`
}

// Behavior configures scaling in each direction, as HorizontalPodAutoscalerBehavior.
type Behavior struct {
	// ScaleUp rules (default: no window; max of 4 pods and 100% per 15 s).
	ScaleUp *ScalingRules `json:"scaleUp,omitempty"`
	// ScaleDown rules (default: 300 s window; 100% per 15 s).
	ScaleDown *ScalingRules `json:"scaleDown,omitempty"`
}

// SelectPolicy chooses among rate policies.
type SelectPolicy string

const (
	SelectMax      SelectPolicy = "Max"
	SelectMin      SelectPolicy = "Min"
	SelectDisabled SelectPolicy = "Disabled"
)

// ScalingPolicyType is the unit of a rate policy.
type ScalingPolicyType string

const (
	PodsPolicy    ScalingPolicyType = "Pods"
	PercentPolicy ScalingPolicyType = "Percent"
)

// ScalingRules configure one direction, as HPAScalingRules.
type ScalingRules struct {
	// StabilizationWindowSeconds: scale-up takes the lowest recommendation of this window, scale-down the
	// highest (0-3600).
	StabilizationWindowSeconds *int32 `json:"stabilizationWindowSeconds,omitempty"`
	// SelectPolicy picks among the policies: Max (the largest change, default), Min, or Disabled.
	SelectPolicy *SelectPolicy `json:"selectPolicy,omitempty"`
	// Policies limit the change per period.
	Policies []ScalingPolicy `json:"policies,omitempty"`
	// Tolerance is the ratio deviation ignored in this direction (default 0.1), as in Kubernetes 1.33+.
	Tolerance *float64 `json:"tolerance,omitempty"`
}

// ScalingPolicy limits the change within a period.
type ScalingPolicy struct {
	// Type is Pods (a count) or Percent (of the replicas at the period's start).
	Type ScalingPolicyType `json:"type"`
	// Value is the count or percentage allowed per period.
	Value int32 `json:"value"`
	// PeriodSeconds is the period (1-1800).
	PeriodSeconds int32 `json:"periodSeconds"`
}

// PanicSpec configures panic mode (after Knative's KPA): when the load read in one evaluation reaches
// Threshold times what the ready replicas are sized for, the scale-up stabilization window and rate
// policies are lifted so capacity is ordered at once, and no scale-down happens until Hold has passed
// since the last such reading.
type PanicSpec struct {
	// Threshold is the ratio of desired to ready replicas that starts a panic (default 2.0, Knative's 200%).
	Threshold float64 `json:"threshold,omitempty"`
	// Hold keeps panic mode on after the last panic-level reading (default 60s, Knative's stable window).
	Hold Duration `json:"hold,omitempty"`
}

// ScaleToZeroSpec configures scaling to zero: after Idle with the activation signal at or below its
// threshold the model goes to zero replicas; at zero, a reading above the threshold wakes it.
type ScaleToZeroSpec struct {
	// Idle is how long the activation signal must stay at or below the threshold (default 10m).
	Idle Duration `json:"idle,omitempty"`
	// Activation measures traffic with or without pods, and is read while at zero: typically the gateway's
	// request rate or requests in flight. Idleness is judged on it too, so a queue alone will not do: it is
	// empty while the replicas serve.
	Activation MetricIdentifier `json:"activation"`
	// ActivationThreshold: readings above it count as demand (default 0).
	ActivationThreshold float64 `json:"activationThreshold,omitempty"`
}

// HPA defaults (autoscaling/v2 defaulting and kube-controller-manager flags).
const (
	DefaultTolerance                 = 0.1
	DefaultScaleDownWindowSeconds    = 300
	DefaultCPUUtilization            = 80
	DefaultCPUInitializationPeriod   = 5 * time.Minute
	DefaultInitialReadinessDelay     = 30 * time.Second
	DefaultPanicThreshold            = 2.0
	DefaultPanicHold                 = 60 * time.Second
	DefaultScaleToZeroIdle           = 10 * time.Minute
	defaultScaleUpPodsPolicyValue    = 4
	defaultScaleUpPercentPolicyValue = 100
	defaultPolicyPeriodSeconds       = 15
)

// WithDefaults returns a copy of the spec with every unset field at the HPA's default.
func (s Spec) WithDefaults() Spec {
	out := s
	if len(out.Metrics) == 0 {
		util := int32(DefaultCPUUtilization)
		out.Metrics = []MetricSpec{{Type: ResourceMetric, Resource: &ResourceMetricSource{
			Name: "cpu", Target: MetricTarget{Type: UtilizationTarget, AverageUtilization: &util}}}}
	}
	if out.CPUInitializationPeriod == 0 {
		out.CPUInitializationPeriod = Duration(DefaultCPUInitializationPeriod)
	}
	if out.InitialReadinessDelay == 0 {
		out.InitialReadinessDelay = Duration(DefaultInitialReadinessDelay)
	}
	if out.GPUsPerPod == 0 {
		out.GPUsPerPod = 1
	}
	b := Behavior{}
	if out.Behavior != nil {
		b = *out.Behavior
	}
	b.ScaleUp = defaultRules(b.ScaleUp, 0, SelectMax, []ScalingPolicy{
		{Type: PodsPolicy, Value: defaultScaleUpPodsPolicyValue, PeriodSeconds: defaultPolicyPeriodSeconds},
		{Type: PercentPolicy, Value: defaultScaleUpPercentPolicyValue, PeriodSeconds: defaultPolicyPeriodSeconds},
	})
	b.ScaleDown = defaultRules(b.ScaleDown, DefaultScaleDownWindowSeconds, SelectMax, []ScalingPolicy{
		{Type: PercentPolicy, Value: 100, PeriodSeconds: defaultPolicyPeriodSeconds},
	})
	out.Behavior = &b
	if out.Panic != nil {
		p := *out.Panic
		if p.Threshold == 0 {
			p.Threshold = DefaultPanicThreshold
		}
		if p.Hold == 0 {
			p.Hold = Duration(DefaultPanicHold)
		}
		out.Panic = &p
	}
	if out.ScaleToZero != nil {
		z := *out.ScaleToZero
		if z.Idle == 0 {
			z.Idle = Duration(DefaultScaleToZeroIdle)
		}
		out.ScaleToZero = &z
	}
	return out
}

func defaultRules(r *ScalingRules, window int32, sel SelectPolicy, policies []ScalingPolicy) *ScalingRules {
	out := ScalingRules{}
	if r != nil {
		out = *r
	}
	if out.StabilizationWindowSeconds == nil {
		out.StabilizationWindowSeconds = &window
	}
	if out.SelectPolicy == nil {
		out.SelectPolicy = &sel
	}
	if len(out.Policies) == 0 {
		out.Policies = policies
	}
	if out.Tolerance == nil {
		t := DefaultTolerance
		out.Tolerance = &t
	}
	return &out
}

// Name returns the metric's display name: the resource for Resource metrics, else the metric name.
func (m MetricSpec) Name() string {
	switch m.Type {
	case ResourceMetric:
		if m.Resource != nil {
			return m.Resource.Name
		}
	case PodsMetric:
		if m.Pods != nil {
			return m.Pods.Metric.Name
		}
	case ObjectMetric:
		if m.Object != nil {
			return m.Object.Metric.Name
		}
	case ExternalMetric:
		if m.External != nil {
			return m.External.Metric.Name
		}
	case DemandMetric:
		return "demand"
	}
	return string(m.Type)
}

// Target returns the metric's target.
func (m MetricSpec) Target() MetricTarget {
	switch {
	case m.Type == ResourceMetric && m.Resource != nil:
		return m.Resource.Target
	case m.Type == PodsMetric && m.Pods != nil:
		return m.Pods.Target
	case m.Type == ObjectMetric && m.Object != nil:
		return m.Object.Target
	case m.Type == ExternalMetric && m.External != nil:
		return m.External.Target
	case m.Type == DemandMetric && m.Demand != nil:
		u := m.Demand.TargetUtilization
		if u == 0 {
			u = DefaultDemandUtilization
		}
		per := float64(m.Demand.Concurrency) * u
		return MetricTarget{Type: AverageValueTarget, AverageValue: &per}
	}
	return MetricTarget{}
}

// String describes a target for people: "70% of request", "5 per pod", "10".
func (t MetricTarget) String() string {
	switch t.Type {
	case UtilizationTarget:
		if t.AverageUtilization != nil {
			return fmt.Sprintf("%d%% of request", *t.AverageUtilization)
		}
	case AverageValueTarget:
		if t.AverageValue != nil {
			return formatNumber(*t.AverageValue) + " per pod"
		}
	case ValueTarget:
		if t.Value != nil {
			return formatNumber(*t.Value)
		}
	}
	return "unset"
}

// Duration is a time.Duration that reads and writes as "90s" in JSON and YAML.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes "1m30s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads Go durations ("90s", "1m30s").
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q: use a number with a unit, such as 90s or 5m", string(b))
	}
	*d = Duration(v)
	return nil
}
