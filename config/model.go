package config

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/llmscaler/llmscaler/policy"
)

// APIVersion and Kind of a model spec file.
const (
	APIVersion = "llmscaler.dev/v1alpha1"
	ModelKind  = "ModelAutoscaler"
)

// ModelSpec is one model's autoscaling spec, in a Kubernetes-style file.
type ModelSpec struct {
	// APIVersion is llmscaler.dev/v1alpha1.
	APIVersion string `json:"apiVersion"`
	// Kind is ModelAutoscaler.
	Kind string `json:"kind"`
	// Metadata names the model.
	Metadata Metadata `json:"metadata"`
	// Spec is what to scale and how.
	Spec ModelSpecBody `json:"spec"`
}

// Metadata names the model.
type Metadata struct {
	// Name of the model; the autoscaler's workflow ID is autoscaler/<namespace>/<name>.
	Name string `json:"name"`
	// Namespace of the model's Deployment (default "default").
	Namespace string `json:"namespace,omitempty"`
}

// ModelSpecBody holds the HPA-style scaling fields (minReplicas, maxReplicas, metrics, behavior, and our
// extensions) and what the autoscaler acts on.
type ModelSpecBody struct {
	policy.Spec
	// Deployment is the model server's Deployment in the model's namespace.
	Deployment string `json:"deployment"`
	// NodeGroup is the group of GPU nodes the model runs on (dedicated to it).
	NodeGroup NodeGroupSpec `json:"nodeGroup"`
	// LoadBalancer says how new replicas join the load balancer and old ones leave it.
	LoadBalancer LoadBalancerSpec `json:"loadBalancer,omitempty"`
	// EvaluationInterval between evaluations (default 15s, the HPA's sync period).
	EvaluationInterval policy.Duration `json:"evaluationInterval,omitempty"`
	// DrainGracePeriod given to each pod evicted on scale-in (default 0: the pod's own
	// terminationGracePeriodSeconds). LoRAX drains for up to 90s: give it more than that.
	DrainGracePeriod policy.Duration `json:"drainGracePeriod,omitempty"`
	// Timeouts bound the sagas' waits.
	Timeouts Timeouts `json:"timeouts,omitempty"`
}

// NodeGroupSpec names the node group and how its nodes are shaped.
type NodeGroupSpec struct {
	// Provider is kwok (simulated nodes, for local clusters) or aws-asg (an EC2 Auto Scaling Group).
	Provider string `json:"provider"`
	// Name of the group: the Auto Scaling Group's name, or the kwok group's.
	Name string `json:"name"`
	// InstanceType gives the GPUs per node when GPUsPerNode is not set.
	InstanceType string `json:"instanceType,omitempty"`
	// GPUsPerNode is what one node of the group offers of nvidia.com/gpu.
	GPUsPerNode int32 `json:"gpusPerNode,omitempty"`
}

// Node group providers.
const (
	ProviderKwok   = "kwok"
	ProviderAWSASG = "aws-asg"
)

// Load balancer modes.
const (
	// LoadBalancerEndpoints waits for the Service's EndpointSlices: the Kubernetes-native path (an AWS Load
	// Balancer Controller or any ingress follows them).
	LoadBalancerEndpoints = "endpoints"
	// LoadBalancerTargetGroup registers pod IPs (or instances) in an ELBv2 target group itself.
	LoadBalancerTargetGroup = "aws-target-group"
	// LoadBalancerNone skips the step.
	LoadBalancerNone = "none"
)

// LoadBalancerSpec configures the load balancer step.
type LoadBalancerSpec struct {
	// Mode is endpoints (default), aws-target-group or none.
	Mode string `json:"mode,omitempty"`
	// Service whose EndpointSlices carry the model's pods (default: the Deployment's name).
	Service string `json:"service,omitempty"`
	// TargetGroupARN for the aws-target-group mode.
	TargetGroupARN string `json:"targetGroupARN,omitempty"`
	// TargetType is ip (pod IPs, default) or instance.
	TargetType string `json:"targetType,omitempty"`
	// Port the targets are registered with (default: the first container port).
	Port int32 `json:"port,omitempty"`
}

// Timeouts bound each wait of the sagas.
type Timeouts struct {
	// NodeReady: from requesting a node to it being Ready with GPUs allocatable (default 10m; EC2 GPU nodes
	// take 1.5-3 min, plus image pulls).
	NodeReady policy.Duration `json:"nodeReady,omitempty"`
	// PodsReady: from scaling the Deployment to its new pods being Ready (default 15m: a 10-20 GB image pull
	// and the model load).
	PodsReady policy.Duration `json:"podsReady,omitempty"`
	// EndpointsReady: from pods Ready to ready endpoints or healthy targets (default 5m).
	EndpointsReady policy.Duration `json:"endpointsReady,omitempty"`
	// Drain: from the first eviction to the node being empty (default 15m, the Nomad Autoscaler's default).
	Drain policy.Duration `json:"drain,omitempty"`
}

// Defaults.
const (
	DefaultEvaluationInterval = 15 * time.Second
	DefaultNodeReadyTimeout   = 10 * time.Minute
	DefaultPodsReadyTimeout   = 15 * time.Minute
	DefaultEndpointsTimeout   = 5 * time.Minute
	DefaultDrainTimeout       = 15 * time.Minute
	DefaultNamespace          = "default"
)

// WithDefaults fills unset fields.
func (m ModelSpec) WithDefaults() ModelSpec {
	out := m
	s := &out.Spec
	if out.Metadata.Namespace == "" {
		out.Metadata.Namespace = DefaultNamespace
	}
	if s.EvaluationInterval == 0 {
		s.EvaluationInterval = policy.Duration(DefaultEvaluationInterval)
	}
	if s.GPUsPerPod == 0 {
		s.GPUsPerPod = 1
	}
	if s.LoadBalancer.Mode == "" {
		s.LoadBalancer.Mode = LoadBalancerEndpoints
	}
	if s.LoadBalancer.Service == "" {
		s.LoadBalancer.Service = s.Deployment
	}
	if s.LoadBalancer.Mode == LoadBalancerTargetGroup && s.LoadBalancer.TargetType == "" {
		s.LoadBalancer.TargetType = "ip"
	}
	setDuration(&s.Timeouts.NodeReady, DefaultNodeReadyTimeout)
	setDuration(&s.Timeouts.PodsReady, DefaultPodsReadyTimeout)
	setDuration(&s.Timeouts.EndpointsReady, DefaultEndpointsTimeout)
	setDuration(&s.Timeouts.Drain, DefaultDrainTimeout)
	return out
}

func setDuration(d *policy.Duration, def time.Duration) {
	if *d == 0 {
		*d = policy.Duration(def)
	}
}

// WorkflowID is the ID of the model's autoscaler workflow: exactly one runs per model.
func (m ModelSpec) WorkflowID() string {
	ns := m.Metadata.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	return "autoscaler/" + ns + "/" + m.Metadata.Name
}

// LoadModelSpec reads a model spec from a YAML file; env and flags (already bound to v, if any) override it.
// Pass a nil v to read the file alone. The spec is validated and returned with defaults filled in.
func LoadModelSpec(file string, v *viper.Viper) (ModelSpec, error) {
	if v == nil {
		v = viper.New()
	}
	if err := readFile(v, file); err != nil {
		return ModelSpec{}, err
	}
	return decodeModelSpec(v, file)
}

// ParseModelSpec reads a model spec from YAML bytes.
func ParseModelSpec(data []byte) (ModelSpec, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return ModelSpec{}, fmt.Errorf("reading model spec: %w", err)
	}
	return decodeModelSpec(v, "model spec")
}

func decodeModelSpec(v *viper.Viper, source string) (ModelSpec, error) {
	var m ModelSpec
	if err := decode(v, &m); err != nil {
		return ModelSpec{}, fmt.Errorf("%s is invalid:\n%w", source, err)
	}
	if err := m.Validate(); err != nil {
		return ModelSpec{}, fmt.Errorf("%s is invalid:\n%w", source, err)
	}
	return m.WithDefaults(), nil
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Validate checks every field and returns all problems at once (as Problems).
func (m ModelSpec) Validate() error {
	var p problems
	if m.APIVersion != APIVersion {
		p.add("apiVersion", "must be %s (got %q)", APIVersion, m.APIVersion)
	}
	if m.Kind != ModelKind {
		p.add("kind", "must be %s (got %q)", ModelKind, m.Kind)
	}
	checkName(&p, "metadata.name", m.Metadata.Name, true)
	checkName(&p, "metadata.namespace", m.Metadata.Namespace, false)
	s := m.Spec
	checkName(&p, "spec.deployment", s.Deployment, true)
	validateScaling(&p, "spec", s.Spec)

	ng := s.NodeGroup
	switch ng.Provider {
	case ProviderKwok, ProviderAWSASG:
	case "":
		p.add("spec.nodeGroup.provider", "is required: %s or %s", ProviderKwok, ProviderAWSASG)
	default:
		p.add("spec.nodeGroup.provider", "must be %s or %s (got %q)", ProviderKwok, ProviderAWSASG, ng.Provider)
	}
	if ng.Name == "" {
		p.add("spec.nodeGroup.name", "is required")
	}
	if ng.GPUsPerNode < 0 {
		p.add("spec.nodeGroup.gpusPerNode", "must be >= 0")
	}
	if ng.GPUsPerNode == 0 && ng.InstanceType == "" {
		p.add("spec.nodeGroup", "set gpusPerNode or instanceType, so node counts can be planned")
	}
	gpusPerPod := max(s.GPUsPerPod, 1)
	if ng.GPUsPerNode > 0 && ng.GPUsPerNode < gpusPerPod {
		p.add("spec.nodeGroup.gpusPerNode", "%d is fewer than gpusPerPod %d: no pod would fit on a node", ng.GPUsPerNode, gpusPerPod)
	}

	lb := s.LoadBalancer
	switch lb.Mode {
	case "", LoadBalancerEndpoints, LoadBalancerNone:
	case LoadBalancerTargetGroup:
		if !strings.HasPrefix(lb.TargetGroupARN, "arn:") || !strings.Contains(lb.TargetGroupARN, ":targetgroup/") {
			p.add("spec.loadBalancer.targetGroupARN", "must be a target group ARN (arn:aws:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>), got %q", lb.TargetGroupARN)
		}
		if lb.TargetType != "" && lb.TargetType != "ip" && lb.TargetType != "instance" {
			p.add("spec.loadBalancer.targetType", "must be ip or instance (got %q)", lb.TargetType)
		}
	default:
		p.add("spec.loadBalancer.mode", "must be %s, %s or %s (got %q)", LoadBalancerEndpoints, LoadBalancerTargetGroup, LoadBalancerNone, lb.Mode)
	}
	if lb.Service != "" {
		checkName(&p, "spec.loadBalancer.service", lb.Service, false)
	}
	if lb.Port < 0 || lb.Port > 65535 {
		p.add("spec.loadBalancer.port", "must be a port number (got %d)", lb.Port)
	}

	if s.EvaluationInterval != 0 && s.EvaluationInterval.D() < time.Second {
		p.add("spec.evaluationInterval", "must be at least 1s (Temporal timers have one-second resolution), got %s", s.EvaluationInterval)
	}
	if s.DrainGracePeriod < 0 {
		p.add("spec.drainGracePeriod", "must be >= 0")
	}
	for _, t := range []struct {
		name string
		d    policy.Duration
	}{{"nodeReady", s.Timeouts.NodeReady}, {"podsReady", s.Timeouts.PodsReady}, {"endpointsReady", s.Timeouts.EndpointsReady}, {"drain", s.Timeouts.Drain}} {
		if t.d < 0 {
			p.add("spec.timeouts."+t.name, "must be > 0")
		}
	}
	return p.err()
}

func checkName(p *problems, path, name string, required bool) {
	switch {
	case name == "":
		if required {
			p.add(path, "is required")
		}
	case len(name) > 63 || !dnsLabel.MatchString(name):
		p.add(path, "%q is not a valid name: lowercase letters, digits and '-', at most 63 characters", name)
	}
}

// validateScaling checks the HPA-style fields, with the API server's rules for HorizontalPodAutoscaler v2.
func validateScaling(p *problems, path string, s policy.Spec) {
	if s.MinReplicas < 1 {
		p.add(path+".minReplicas", "must be >= 1 (to go to zero when idle, configure scaleToZero)")
	}
	if s.MaxReplicas < 1 {
		p.add(path+".maxReplicas", "must be >= 1")
	}
	if s.MaxReplicas < s.MinReplicas {
		p.add(path+".maxReplicas", "%d is below minReplicas %d", s.MaxReplicas, s.MinReplicas)
	}
	if s.GPUsPerPod < 0 {
		p.add(path+".gpusPerPod", "must be >= 1")
	}
	if s.CPUInitializationPeriod < 0 {
		p.add(path+".cpuInitializationPeriod", "must be >= 0 (got %s)", s.CPUInitializationPeriod)
	}
	if s.InitialReadinessDelay < 0 {
		p.add(path+".initialReadinessDelay", "must be >= 0 (got %s)", s.InitialReadinessDelay)
	}
	names := map[string]bool{}
	podsMetrics := map[string]bool{}
	for i, m := range s.Metrics {
		mp := fmt.Sprintf("%s.metrics[%d]", path, i)
		validateMetric(p, mp, m)
		if n := m.Name(); names[n] {
			p.add(mp, "a second metric named %q: names must be unique", n)
		} else {
			names[n] = true
		}
		if m.Type == policy.PodsMetric {
			podsMetrics[m.Name()] = true
		}
	}
	if s.BusyMetric != "" && !podsMetrics[s.BusyMetric] {
		p.add(path+".busyMetric", "%q is not one of the Pods metrics", s.BusyMetric)
	}
	if s.Behavior != nil {
		validateRules(p, path+".behavior.scaleUp", s.Behavior.ScaleUp)
		validateRules(p, path+".behavior.scaleDown", s.Behavior.ScaleDown)
	}
	if pc := s.Panic; pc != nil {
		if pc.Threshold != 0 && pc.Threshold <= 1 {
			p.add(path+".panic.threshold", "must be > 1 (a ratio of desired to ready replicas; Knative uses 2)")
		}
		if pc.Hold < 0 {
			p.add(path+".panic.hold", "must be >= 0")
		}
	}
	if z := s.ScaleToZero; z != nil {
		if z.Activation.Name == "" {
			p.add(path+".scaleToZero.activation.name", "is required")
		}
		if z.Activation.Query == "" {
			p.add(path+".scaleToZero.activation.query", "is required: at zero replicas no pod can be measured, so the signal comes from Prometheus")
		}
		if z.Idle < 0 {
			p.add(path+".scaleToZero.idle", "must be >= 0")
		}
		if z.ActivationThreshold < 0 {
			p.add(path+".scaleToZero.activationThreshold", "must be >= 0")
		}
	}
}

func validateMetric(p *problems, path string, m policy.MetricSpec) {
	sections := map[policy.MetricSourceType]bool{
		policy.ResourceMetric: m.Resource != nil, policy.PodsMetric: m.Pods != nil,
		policy.ObjectMetric: m.Object != nil, policy.ExternalMetric: m.External != nil, policy.DemandMetric: m.Demand != nil,
	}
	section := strings.ToLower(string(m.Type))
	switch m.Type {
	case policy.ResourceMetric, policy.PodsMetric, policy.ObjectMetric, policy.ExternalMetric, policy.DemandMetric:
		if !sections[m.Type] {
			p.add(path+"."+section, "is required for type %s", m.Type)
			return
		}
	case "":
		p.add(path+".type", "is required: Resource, Pods, Object, External or Demand")
		return
	default:
		p.add(path+".type", "must be Resource, Pods, Object, External or Demand (got %q)", m.Type)
		return
	}
	for _, t := range []policy.MetricSourceType{policy.ResourceMetric, policy.PodsMetric, policy.ObjectMetric, policy.ExternalMetric, policy.DemandMetric} {
		if t != m.Type && sections[t] {
			p.add(path+"."+strings.ToLower(string(t)), "must not be set for type %s", m.Type)
		}
	}
	target := path + "." + section + ".target"
	switch m.Type {
	case policy.ResourceMetric:
		if m.Resource.Name != "cpu" && m.Resource.Name != "memory" {
			p.add(path+".resource.name", "must be cpu or memory (got %q)", m.Resource.Name)
		}
		validateTarget(p, target, m.Resource.Target, policy.UtilizationTarget, policy.AverageValueTarget)
	case policy.PodsMetric:
		validateIdentifier(p, path+".pods.metric", m.Pods.Metric)
		validateTarget(p, target, m.Pods.Target, policy.AverageValueTarget)
	case policy.ObjectMetric:
		if m.Object.DescribedObject.Kind == "" || m.Object.DescribedObject.Name == "" {
			p.add(path+".object.describedObject", "needs kind and name")
		}
		validateIdentifier(p, path+".object.metric", m.Object.Metric)
		validateTarget(p, target, m.Object.Target, policy.ValueTarget, policy.AverageValueTarget)
	case policy.ExternalMetric:
		validateIdentifier(p, path+".external.metric", m.External.Metric)
		validateTarget(p, target, m.External.Target, policy.ValueTarget, policy.AverageValueTarget)
	case policy.DemandMetric:
		validateDemand(p, path+".demand", m.Demand)
	}
}

func validateDemand(p *problems, path string, d *policy.DemandSource) {
	if d.Arrivals.Query == "" {
		p.add(path+".arrivals.query", "is required: the PromQL of the request rate, such as sum(rate(lorax_request_count[1m]))")
	}
	if (d.ServiceTime == nil || d.ServiceTime.Query == "") && d.ServiceTimeSeconds <= 0 {
		p.add(path, "give serviceTime (a query) or serviceTimeSeconds > 0")
	}
	if d.ServiceTimeSeconds < 0 {
		p.add(path+".serviceTimeSeconds", "must be >= 0")
	}
	if d.Backlog != nil && d.Backlog.Query == "" {
		p.add(path+".backlog.query", "is required when backlog is set")
	}
	if d.PeakArrivals != nil && d.PeakArrivals.Query == "" {
		p.add(path+".peakArrivals.query", "is required when peakArrivals is set, such as max_over_time(sum(rate(requests[10s]))[1m:2s])")
	}
	if d.Concurrency <= 0 {
		p.add(path+".concurrency", "must be > 0: the sequences one replica serves at once (LoRAX's batch)")
	}
	if d.TargetUtilization < 0 || d.TargetUtilization > 1 {
		p.add(path+".targetUtilization", "must be above 0 and at most 1 (got %v)", d.TargetUtilization)
	}
	for _, f := range []struct {
		name string
		v    policy.Duration
	}{{"leadTime", d.LeadTime}, {"holdFor", d.HoldFor}, {"rateWindow", d.RateWindow}, {"peakWindow", d.PeakWindow}} {
		if f.v < 0 {
			p.add(path+"."+f.name, "must be >= 0 (got %s)", f.v)
		}
	}
	if k := d.KeepAfterStop; k != nil && *k < 0 {
		p.add(path+".keepAfterStop", "must be >= 0: how long capacity waits for a load that stopped abruptly to return (0s: not at all; got %s)", *k)
	}
	if slo := d.SLO; slo != nil {
		if slo.QueueDelay <= 0 {
			p.add(path+".slo.queueDelay", "must be > 0, such as 1s")
		}
		if slo.Attainment < 0 || slo.Attainment >= 1 {
			p.add(path+".slo.attainment", "must be above 0 and below 1, such as 0.99 (got %v)", slo.Attainment)
		}
		switch slo.LoadBalancing {
		case "", policy.RandomBalancing, policy.LeastRequestBalancing:
		default:
			p.add(path+".slo.loadBalancing", "must be %s or %s (got %q)", policy.RandomBalancing, policy.LeastRequestBalancing, slo.LoadBalancing)
		}
	}
}

func validateIdentifier(p *problems, path string, id policy.MetricIdentifier) {
	if id.Name == "" {
		p.add(path+".name", "is required")
	}
	if id.Query == "" {
		p.add(path+".query", "is required: the PromQL that reads the metric")
	}
}

func validateTarget(p *problems, path string, t policy.MetricTarget, allowed ...policy.MetricTargetType) {
	ok := false
	for _, a := range allowed {
		ok = ok || t.Type == a
	}
	if !ok {
		names := make([]string, len(allowed))
		for i, a := range allowed {
			names[i] = string(a)
		}
		p.add(path+".type", "must be %s (got %q)", strings.Join(names, " or "), t.Type)
		return
	}
	switch t.Type {
	case policy.UtilizationTarget:
		if t.AverageUtilization == nil {
			p.add(path+".averageUtilization", "is required for a Utilization target")
		} else if *t.AverageUtilization <= 0 {
			p.add(path+".averageUtilization", "must be > 0")
		}
	case policy.AverageValueTarget:
		if t.AverageValue == nil {
			p.add(path+".averageValue", "is required for an AverageValue target")
		} else if *t.AverageValue <= 0 {
			p.add(path+".averageValue", "must be > 0")
		}
	case policy.ValueTarget:
		if t.Value == nil {
			p.add(path+".value", "is required for a Value target")
		} else if *t.Value <= 0 {
			p.add(path+".value", "must be > 0")
		}
	}
}

// validateRules applies the API server's limits on HPAScalingRules.
func validateRules(p *problems, path string, r *policy.ScalingRules) {
	if r == nil {
		return
	}
	if w := r.StabilizationWindowSeconds; w != nil && (*w < 0 || *w > 3600) {
		p.add(path+".stabilizationWindowSeconds", "must be between 0 and 3600 (got %d)", *w)
	}
	if s := r.SelectPolicy; s != nil && *s != policy.SelectMax && *s != policy.SelectMin && *s != policy.SelectDisabled {
		p.add(path+".selectPolicy", "must be Max, Min or Disabled (got %q)", *s)
	}
	if t := r.Tolerance; t != nil && (*t < 0 || *t >= 1) {
		p.add(path+".tolerance", "must be at least 0 and below 1 (got %v)", *t)
	}
	for i, pol := range r.Policies {
		pp := fmt.Sprintf("%s.policies[%d]", path, i)
		if pol.Type != policy.PodsPolicy && pol.Type != policy.PercentPolicy {
			p.add(pp+".type", "must be Pods or Percent (got %q)", pol.Type)
		}
		if pol.Value <= 0 {
			p.add(pp+".value", "must be > 0")
		}
		if pol.PeriodSeconds <= 0 || pol.PeriodSeconds > 1800 {
			p.add(pp+".periodSeconds", "must be between 1 and 1800 (got %d)", pol.PeriodSeconds)
		}
	}
}

// NewModelViper returns a viper that reads overrides of the model spec from LLMSCALER_MODEL_* environment
// variables: LLMSCALER_MODEL_SPEC_MAXREPLICAS=12 sets spec.maxReplicas.
func NewModelViper() *viper.Viper {
	v := viper.NewWithOptions(viper.ExperimentalBindStruct())
	v.SetEnvPrefix("LLMSCALER_MODEL")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	return v
}
