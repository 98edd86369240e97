package sim

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/internal/trace"
	"github.com/llmscaler/llmscaler/policy"
)

// Result is one policy's measurements over a run.
type Result struct {
	Name string `json:"name"`
	// Requests is the trace's request count; SLOAttainment the share of them that started within the SLO's
	// queueing delay (lost and never-served requests count as misses).
	Requests      int     `json:"requests"`
	SLOAttainment float64 `json:"slo_attainment"`
	QueueDelayP50 float64 `json:"queue_delay_p50_s"`
	QueueDelayP99 float64 `json:"queue_delay_p99_s"`
	TTFTP50       float64 `json:"ttft_p50_s"`
	TTFTP99       float64 `json:"ttft_p99_s"`
	GPUNodeHours  float64 `json:"gpu_node_hours"`
	OracleRatio   float64 `json:"oracle_ratio"`
	ScaleActions  int     `json:"scale_actions"`
	// LostRequests were running or queued on a replica that went away before they finished.
	LostRequests int `json:"lost_requests"`
	// Unserved never reached a replica (still at the gateway when the simulation ended).
	Unserved int     `json:"unserved,omitempty"`
	Series   []Point `json:"-"`
	// LateSpells explain the policy's lateness when it was asked to (Policy.Explain; an empty list: no
	// request was late after the warm-up).
	LateSpells []LateSpell `json:"late_spells,omitzero"`
}

// Policy is one autoscaler to compare: our policy.Spec run with the workflow's semantics (Sagas) or as the
// HPA beside the Cluster Autoscaler; or, with Workflow, the autoscaler workflow itself on that model spec
// (RunWorkflow).
type Policy struct {
	Name     string
	Spec     policy.Spec
	Sagas    bool
	Workflow *config.ModelSpec
	// Explain is how many late spells to explain, with the decisions that shaped them (Result.LateSpells).
	Explain int
}

// WorkflowPolicy is the autoscaler workflow itself, run under Temporal's test environment on the model spec
// (its maxReplicas replaced by maxReplicas when that is > 0).
func WorkflowPolicy(spec config.ModelSpec, maxReplicas int32) Policy {
	if maxReplicas > 0 {
		spec.Spec.Spec.MaxReplicas = maxReplicas
	}
	return Policy{Name: "ours-workflow", Spec: spec.Spec.Spec, Sagas: true, Workflow: &spec}
}

// Options are one comparison's inputs.
type Options struct {
	Assumptions Assumptions
	// Trace is the requests, already windowed and rate-scaled.
	Trace []trace.Request
	// Policies are the autoscalers to run besides the static size and the oracle (see StandardPolicies).
	Policies []Policy
}

// Report is the comparison: every assumption, the oracle's node-hours and each policy's measurements.
type Report struct {
	Assumptions        ReportAssumptions `json:"assumptions"`
	OracleGPUNodeHours float64           `json:"oracle_gpu_node_hours"`
	Policies           []Result          `json:"policies"`
	// Warnings name what makes a result measure something other than the policy: an autoscaler that
	// reached its maxReplicas or the node group's maximum.
	Warnings []string `json:"warnings,omitempty"`
}

// ReportAssumptions are the run's assumptions and a description of the trace it ran.
type ReportAssumptions struct {
	Assumptions
	LeadTime      policy.Duration `json:"lead_time"`
	Trace         string          `json:"trace,omitempty"`
	RateScale     float64         `json:"rate_scale,omitempty"`
	Window        string          `json:"window,omitempty"`
	TraceRequests int             `json:"trace_requests"`
	TraceDuration policy.Duration `json:"trace_duration"`
	// Start says how every autoscaler starts: with the oracle's first minute of replicas serving.
	Start string `json:"start"`
	// StaticSearch says how the static size was found.
	StaticSearch string `json:"static_search"`
}

// StandardPolicies are the comparison's autoscalers: (a) the HPA on in-flight requests at 70% of the batch
// with default behavior beside the Cluster Autoscaler; (d) ours, the given spec with the workflow's sagas;
// and variants that tell the parts apart: ours without SLO sizing, and the HPA's rule on our sagas.
func StandardPolicies(ours policy.Spec, a Assumptions) []Policy {
	hpa := HPASpec(ours, a)
	out := []Policy{{Name: "hpa+ca", Spec: hpa}, {Name: "ours", Spec: ours, Sagas: true}}
	if noSLO, ok := withoutSLO(ours); ok {
		out = append(out, Policy{Name: "ours-no-slo-sizing", Spec: noSLO, Sagas: true})
	}
	return append(out, Policy{Name: "hpa-rule+sagas", Spec: hpa, Sagas: true})
}

// HPASpec is the HPA the seed would run with the best signal it had: in-flight requests per pod at 70% of
// the batch, the HPA's default behavior, the model's bounds.
func HPASpec(ours policy.Spec, a Assumptions) policy.Spec {
	target := 0.7 * float64(a.Serving.MaxBatch)
	return policy.Spec{MinReplicas: ours.MinReplicas, MaxReplicas: ours.MaxReplicas, GPUsPerPod: a.GPUsPerPod,
		Metrics: []policy.MetricSpec{{Type: policy.PodsMetric, Pods: &policy.PodsMetricSource{
			Metric: policy.MetricIdentifier{Name: "in_flight"},
			Target: policy.MetricTarget{Type: policy.AverageValueTarget, AverageValue: &target}}}}}
}

func withoutSLO(s policy.Spec) (policy.Spec, bool) {
	out := s
	out.Metrics = slices.Clone(s.Metrics)
	found := false
	for i, m := range out.Metrics {
		if m.Type == policy.DemandMetric && m.Demand != nil && m.Demand.SLO != nil {
			d := *m.Demand
			d.SLO = nil
			out.Metrics[i].Demand = &d
			found = true
		}
	}
	return out, found
}

// Compare runs the static size (the cheapest that meets the SLO, by bisection), the oracle and every
// policy on the same trace, two at a time.
func Compare(opt Options) (Report, error) {
	a := opt.Assumptions
	if err := a.Validate(); err != nil {
		return Report{}, err
	}
	if len(opt.Trace) == 0 {
		return Report{}, errors.New("the trace holds no request")
	}
	if d := trace.Duration(opt.Trace); a.Warmup.D() >= d {
		return Report{}, fmt.Errorf("the warm-up (%s) is not shorter than the trace (%s): nothing would be measured; lower --warmup or use a longer --window", a.Warmup, d.Round(time.Second))
	}
	sched := OracleSchedule(opt.Trace, a)
	initial := StartingReplicas(sched, a)
	rep := Report{Assumptions: ReportAssumptions{Assumptions: a, LeadTime: policy.Duration(a.LeadTime()),
		TraceRequests: len(opt.Trace), TraceDuration: policy.Duration(trace.Duration(opt.Trace)),
		Start: fmt.Sprintf("every autoscaler starts with %d replicas serving: the oracle's peak over the first lead time, "+
			"the steady state of a service already sized for its load", initial),
		StaticSearch: "bisection on the replica count for the fewest that meet the SLO attainment target (attainment taken as non-decreasing in replicas)"}}

	results := make([]Result, len(opt.Policies)+2)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	run := func(i int, f func() Result) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = f()
		}()
	}
	run(0, func() Result { return cheapestStatic(opt.Trace, a, slices.Max(sched)) })
	run(1, func() Result { return RunOracle(opt.Trace, a, sched) })
	errs := make([]error, len(opt.Policies))
	for i, p := range opt.Policies {
		run(i+2, func() Result {
			if p.Workflow != nil {
				r, err := RunWorkflow(opt.Trace, a, p, initial)
				errs[i] = err
				return r
			}
			return RunPolicy(opt.Trace, a, p, initial)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Report{}, err
	}
	for i, p := range opt.Policies {
		rep.Warnings = append(rep.Warnings, boundsReached(results[i+2], p, a)...)
	}
	rep.Warnings = append(rep.Warnings, oracleShort(results[1], a)...)
	rep.OracleGPUNodeHours = results[1].GPUNodeHours
	for i := range results {
		if rep.OracleGPUNodeHours > 0 {
			results[i].OracleRatio = results[i].GPUNodeHours / rep.OracleGPUNodeHours
		}
	}
	// Order: the baseline first, then static, oracle, ours and the variants.
	order := []int{}
	for i, p := range opt.Policies {
		if !p.Sagas {
			order = append(order, i+2)
		}
	}
	order = append(order, 0, 1)
	for i, p := range opt.Policies {
		if p.Sagas {
			order = append(order, i+2)
		}
	}
	for _, i := range order {
		rep.Policies = append(rep.Policies, results[i])
	}
	return rep, nil
}

// boundsReached warns when an autoscaler's replicas reached its maxReplicas or its nodes the group's
// maximum: its attainment then measures that bound, not the policy.
func boundsReached(r Result, p Policy, a Assumptions) []string {
	bound := p.Spec.MaxReplicas
	if p.Workflow != nil {
		bound = p.Workflow.Spec.Spec.MaxReplicas
	}
	var ready, nodes int
	for _, pt := range r.Series {
		ready, nodes = max(ready, pt.Ready), max(nodes, pt.Nodes)
	}
	switch {
	case bound > 0 && ready >= int(bound):
		return []string{fmt.Sprintf("%s reached its maxReplicas (%d): its attainment measures that bound, not the policy (raise --max-replicas)", r.Name, bound)}
	case nodes >= int(a.MaxNodes):
		return []string{fmt.Sprintf("%s reached the node group's maximum (%d nodes): its attainment measures that bound, not the policy", r.Name, a.MaxNodes)}
	}
	return nil
}

// oracleShort warns when the oracle misses the SLO it is the yardstick for: it covers each minute's peak of
// requests in flight at full batches, as if the replicas pooled them perfectly, and behind the balancer's two
// random choices queues form at higher loads (about 98% at 20x the conversation trace): its node-hours are
// then a floor below what meeting the SLO costs, and every ratio to it reads high.
func oracleShort(r Result, a Assumptions) []string {
	if r.SLOAttainment >= a.Attainment {
		return nil
	}
	return []string{fmt.Sprintf("oracle met %.2f%%, short of the %.2f%% target (sized at full batches for each minute's peak, its replicas do not pool "+
		"requests perfectly behind the balancer): its node-hours are a floor below the SLO's cost, and the x ORACLE ratios read high",
		100*r.SLOAttainment, 100*a.Attainment)}
}

// StartingReplicas is what every autoscaler starts with, serving: the oracle's peak over the first lead
// time (sched is OracleSchedule's), the steady state of a service already sized for its load.
func StartingReplicas(sched []int, a Assumptions) int {
	return slices.Max(sched[:min(len(sched), int(math.Ceil(a.LeadTime().Minutes())))])
}

// RunPolicy runs one autoscaler, starting with initial replicas serving (not a Workflow policy: see
// RunWorkflow).
func RunPolicy(reqs []trace.Request, a Assumptions, p Policy, initial int) Result {
	spec := p.Spec
	spec.GPUsPerPod = a.GPUsPerPod
	ctrl := &autoscaler{spec: spec, sagas: p.Sagas, record: p.Explain > 0}
	s := newSim(a, reqs, &startWith{initial: initial, next: ctrl})
	r := s.run(p.Name)
	if p.Explain > 0 {
		r.LateSpells = explained(lateSpells(r.Series, ctrl.notes, a.Warmup.D(), a.LeadTime(), a.EvaluationInterval.D(), p.Explain))
	}
	return r
}

// explained is an explained run's late spells: an empty list, not nil, when none (the JSON then says that
// nothing was late, where an unexplained run has no late_spells).
func explained(spells []LateSpell) []LateSpell {
	if spells == nil {
		return []LateSpell{}
	}
	return spells
}

// startWith provisions the initial replicas, then hands over to the autoscaler.
type startWith struct {
	initial int
	next    *autoscaler
}

func (c *startWith) init(s *sim) {
	s.provision(c.initial)
	c.next.init(s)
}
func (c *startWith) changed(s *sim)    { c.next.changed(s) }
func (c *startWith) scaleActions() int { return c.next.scaleActions() }

// RunStatic runs a constant replica count.
func RunStatic(reqs []trace.Request, a Assumptions, replicas int) Result {
	return newSim(a, reqs, &static{replicas: replicas}).run(fmt.Sprintf("static-%d", replicas))
}

// cheapestStatic finds the fewest constant replicas that meet the attainment target, by bisection.
func cheapestStatic(reqs []trace.Request, a Assumptions, hint int) Result {
	hi := max(hint, 1)
	best := RunStatic(reqs, a, hi)
	for best.SLOAttainment < a.Attainment && hi < int(a.MaxNodes)*a.podsPerNode() {
		hi = min(hi*2, int(a.MaxNodes)*a.podsPerNode())
		best = RunStatic(reqs, a, hi)
	}
	lo := 0 // lo fails (or is nothing)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if r := RunStatic(reqs, a, mid); r.SLOAttainment >= a.Attainment {
			hi, best = mid, r
		} else {
			lo = mid
		}
	}
	best.Name = fmt.Sprintf("static-%d", hi)
	return best
}

// OracleSchedule is, for each minute of the trace, the replicas that cover that minute's peak of requests in
// flight, each request in flight from its arrival for its service time (prefill and decode) with no wait.
func OracleSchedule(reqs []trace.Request, a Assumptions) []int {
	type edge struct {
		at    time.Duration
		delta int
	}
	edges := make([]edge, 0, 2*len(reqs))
	for _, r := range reqs {
		_, total := a.Serving.ServiceTime(r.Prompt, r.Output)
		edges = append(edges, edge{r.At, 1}, edge{r.At + total, -1})
	}
	slices.SortFunc(edges, func(x, y edge) int {
		if x.at != y.at {
			return int(x.at - y.at)
		}
		return x.delta - y.delta // departures first at the same instant
	})
	minutes := int(trace.Duration(reqs)/time.Minute) + 1
	peak := make([]int, minutes)
	cur := 0
	m := 0
	for _, e := range edges {
		for m < minutes && e.at >= time.Duration(m+1)*time.Minute {
			m++
			if m < minutes {
				peak[m] = cur
			}
		}
		if m >= minutes {
			break
		}
		cur += e.delta
		peak[m] = max(peak[m], cur)
	}
	out := make([]int, minutes)
	per := float64(a.Serving.MaxBatch)
	for i, p := range peak {
		out[i] = max(int(math.Ceil(float64(p)/per)), 1)
	}
	return out
}

// RunOracle runs the oracle's schedule; its node-hours are the schedule's (nodes exist exactly for the
// minutes they serve).
func RunOracle(reqs []trace.Request, a Assumptions, sched []int) Result {
	r := newSim(a, reqs, &oracle{schedule: sched}).run("oracle")
	nodeMinutes := 0.0
	end, from := trace.Duration(reqs).Minutes(), a.Warmup.D().Minutes()
	per := a.podsPerNode()
	for m, n := range sched {
		// The part of minute m after the warm-up and before the end.
		if part := math.Min(float64(m+1), end) - math.Max(float64(m), from); part > 0 {
			nodeMinutes += float64((n+per-1)/per) * part
		}
	}
	r.GPUNodeHours = nodeMinutes / 60
	return r
}
