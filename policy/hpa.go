package policy

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// The per-metric replica calculation of the HPA (replica_calculator.go). Values are handled in milli-units
// with integer averages, as the HPA does, so that results match it to the replica.

// MetricProposal is what one metric proposes, and why.
type MetricProposal struct {
	Name   string           `json:"name"`
	Type   MetricSourceType `json:"type"`
	Target string           `json:"target"`
	// Current is the metric's value in the target's terms: utilization in percent, the per-pod average,
	// or the object's or external value.
	Current float64 `json:"current"`
	// Ratio is current over target (the usage ratio).
	Ratio           float64 `json:"ratio"`
	WithinTolerance bool    `json:"withinTolerance"`
	// Replicas is the proposal; meaningful unless Invalid is set.
	Replicas int32 `json:"replicas"`
	// Unprojected is a Demand metric's proposal for the demand as read, without the rise projected over the
	// lead time (set when there is a projected rise); the scale-down window holds it for its whole length,
	// the projection for a lead time (see State.stabilize).
	Unprojected *int32 `json:"unprojected,omitempty"`
	// Arrivals is a Demand metric's proposal for the arrivals as read alone, without a backlog to drain or a
	// projected rise (set when there is either): what a burst cycle's forecast orders for the next burst,
	// which capacity ordered ahead of it meets without a backlog.
	Arrivals    *int32 `json:"arrivals,omitempty"`
	ReadyPods   int    `json:"readyPods,omitempty"`
	MissingPods int    `json:"missingPods,omitempty"`
	UnreadyPods int    `json:"unreadyPods,omitempty"`
	IgnoredPods int    `json:"ignoredPods,omitempty"`
	// RecomputedRatio is the ratio after counting missing and unready pods, when that step ran.
	RecomputedRatio *float64 `json:"recomputedRatio,omitempty"`
	// Note explains a proposal that differs from plain ceil(ratio x pods).
	Note string `json:"note,omitempty"`
	// Invalid says why the metric gave no proposal.
	Invalid string `json:"invalid,omitempty"`
}

type tolerances struct{ up, down float64 }

func (t tolerances) within(ratio float64) bool {
	return (1.0-t.down) <= ratio && ratio <= (1.0+t.up)
}

// milli converts to milli-units, saturating instead of overflowing on absurd values.
func milli(v float64) int64 {
	m := math.Round(v * 1000)
	switch {
	case m != m:
		return 0
	case m >= math.MaxInt64/1024:
		return math.MaxInt64 / 1024
	case m <= -math.MaxInt64/1024:
		return -math.MaxInt64 / 1024
	}
	return int64(m)
}

// ceilReplicas is int32(math.Ceil(x)) that saturates rather than wrapping on huge or undefined ratios.
func ceilReplicas(x float64) int32 {
	c := math.Ceil(x)
	switch {
	case c != c || c <= 0:
		return 0
	case c >= math.MaxInt32:
		return math.MaxInt32
	}
	return int32(c)
}

// podGroups sorts pods the way the HPA's groupPods does.
type podGroups struct {
	ready   int
	unready []string
	missing []string
	ignored []string
}

// groupPods: deleting and failed pods are ignored, pending pods are unready (as the HPA's code does, under
// its comment "Pending pods are ignored": on a scale-up they count as 0, and the recomputed ratio may keep
// the count), pods without a sample are missing; for CPU only, pods not yet ready (or whose sample predates
// a full window of readiness while they initialise) are unready.
func groupPods(pods []Pod, samples map[string]PodSample, cpu bool, now time.Time, initPeriod, readinessDelay time.Duration) podGroups {
	var g podGroups
	for _, p := range pods {
		if p.Deleting || p.Phase == PodFailed {
			g.ignored = append(g.ignored, p.Name)
			continue
		}
		if p.Phase == PodPending {
			g.unready = append(g.unready, p.Name)
			continue
		}
		sample, found := samples[p.Name]
		if !found {
			g.missing = append(g.missing, p.Name)
			continue
		}
		if cpu {
			var unready bool
			if p.ReadyChanged.IsZero() || p.StartTime.IsZero() {
				unready = true
			} else if p.StartTime.Add(initPeriod).After(now) {
				unready = !p.Ready || sample.Timestamp.Before(p.ReadyChanged.Add(sample.Window.D()))
			} else {
				unready = !p.Ready && p.StartTime.Add(readinessDelay).After(p.ReadyChanged)
			}
			if unready {
				g.unready = append(g.unready, p.Name)
				continue
			}
		}
		g.ready++
	}
	return g
}

// readyPodCount counts Running and Ready pods (the HPA's getReadyPodsCount, for Object and External).
func readyPodCount(pods []Pod) int {
	n := 0
	for _, p := range pods {
		if p.Phase == PodRunning && p.Ready {
			n++
		}
	}
	return n
}

// sampleMap keys the samples of known pods by pod name. Samples of pods not in the list (a deleted pod's
// stale series) are dropped: the HPA never sees them because the metrics API lists by selector.
func sampleMap(pods []Pod, samples []PodSample) map[string]PodSample {
	known := make(map[string]bool, len(pods))
	for _, p := range pods {
		known[p.Name] = true
	}
	m := make(map[string]PodSample, len(samples))
	for _, s := range samples {
		if known[s.Pod] {
			m[s.Pod] = s
		}
	}
	return m
}

// sortedKeys gives map keys in a fixed order, so every sum is computed the same way each time.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

type calcInput struct {
	pods           []Pod
	current        int32 // spec replicas
	tol            tolerances
	now            time.Time
	initPeriod     time.Duration
	readinessDelay time.Duration
	// leadTime is the time from ordering capacity to it serving (Demand metrics); waiting is how long the
	// oldest capacity on its way has waited (zero: none is).
	leadTime, waiting time.Duration
	// backlogRise is how fast a Demand metric's backlog grew since the last evaluation, in requests per
	// second, over the same replicas (see State.backlogRise).
	backlogRise float64
	// demandRise is the rise in busy slots expected over the lead time (Demand metrics; see demandTrend);
	// unprojected says why a rise the readings show was not projected, or was projected lower.
	demandRise  float64
	unprojected string
	// slotsHeld is the highest busy slots the Demand metric's readings held over the peak arrivals'
	// range (State.busySlotsHeld): what the peak is weighed against.
	slotsHeld float64
}

// readyPodMetrics is the per-pod samples (in milli-units) the HPA averages: the pods grouped as ready,
// missing, unready and ignored (the counts go on the proposal), without the ignored and unready pods' samples;
// false, with the proposal invalid, when no sample is left.
func readyPodMetrics(in calcInput, reading MetricReading, cpu bool, p *MetricProposal) (map[string]int64, podGroups, bool) {
	samples := sampleMap(in.pods, reading.Pods)
	metrics := map[string]int64{}
	for name, s := range samples {
		metrics[name] = milli(s.Value)
	}
	g := groupPods(in.pods, samples, cpu, in.now, in.initPeriod, in.readinessDelay)
	p.ReadyPods, p.MissingPods, p.UnreadyPods, p.IgnoredPods = g.ready, len(g.missing), len(g.unready), len(g.ignored)
	for _, n := range g.ignored {
		delete(metrics, n)
	}
	for _, n := range g.unready {
		delete(metrics, n)
	}
	if len(metrics) == 0 {
		p.Invalid = "no samples for the pods (they may be unready)"
		return nil, g, false
	}
	return metrics, g, true
}

// plainMetricReplicas is calcPlainMetricReplicas: the average of per-pod values against a per-pod target.
// For Resource AverageValue on cpu, the unready rules apply.
func plainMetricReplicas(in calcInput, reading MetricReading, targetMilli int64, cpu bool, p *MetricProposal) {
	metrics, g, ok := readyPodMetrics(in, reading, cpu, p)
	if !ok {
		return
	}
	usageRatio, usage := averageRatio(metrics, targetMilli)
	p.Current, p.Ratio = float64(usage)/1000, usageRatio

	scaleUpWithUnready := len(g.unready) > 0 && usageRatio > 1.0
	if !scaleUpWithUnready && len(g.missing) == 0 {
		proposeFromReady(p, in, usageRatio, g.ready)
		return
	}
	if len(g.missing) > 0 {
		// On a scale-down, missing pods count as at target; on a scale-up, as idle.
		fallback := int64(0)
		if usageRatio < 1.0 {
			fallback = targetMilli
		}
		for _, n := range g.missing {
			metrics[n] = fallback
		}
	}
	if scaleUpWithUnready {
		for _, n := range g.unready {
			metrics[n] = 0
		}
	}
	newRatio, _ := averageRatio(metrics, targetMilli)
	recomputed(p, in, usageRatio, newRatio, len(metrics))
}

// proposeFromReady is the proposal when every pod has a usable sample (none missing, and none unready
// while the ratio asks to scale up): the current count within tolerance, else the ratio times the ready pods.
func proposeFromReady(p *MetricProposal, in calcInput, usageRatio float64, ready int) {
	if in.tol.within(usageRatio) {
		p.WithinTolerance, p.Replicas = true, in.current
		return
	}
	p.Replicas = ceilReplicas(usageRatio * float64(ready))
}

// recomputed finishes a calculation after missing and unready pods were filled in: no change when the new
// ratio is within tolerance or flips direction, and never a move against the ratio's direction.
func recomputed(p *MetricProposal, in calcInput, usageRatio, newRatio float64, count int) {
	p.RecomputedRatio = &newRatio
	if in.tol.within(newRatio) || (usageRatio < 1.0 && newRatio > 1.0) || (usageRatio > 1.0 && newRatio < 1.0) {
		p.WithinTolerance, p.Replicas = in.tol.within(newRatio), in.current
		p.Note = fmt.Sprintf("counting %d missing and %d unready pods moves the ratio to %.3f: keeping %d", p.MissingPods, p.UnreadyPods, newRatio, in.current)
		return
	}
	n := ceilReplicas(newRatio * float64(count))
	if (newRatio < 1.0 && n > in.current) || (newRatio > 1.0 && n < in.current) {
		p.Replicas = in.current
		p.Note = fmt.Sprintf("recomputed proposal %d goes against the ratio %.3f: keeping %d", n, newRatio, in.current)
		return
	}
	p.Replicas = n
	if p.MissingPods+p.UnreadyPods > 0 {
		p.Note = fmt.Sprintf("recomputed over %d pods, counting %d missing and %d unready", count, p.MissingPods, p.UnreadyPods)
	}
}

// averageRatio is GetMetricUsageRatio: integer average over the pods, divided by the target.
func averageRatio(metrics map[string]int64, targetMilli int64) (float64, int64) {
	var total int64
	for _, n := range sortedKeys(metrics) {
		total += metrics[n]
	}
	avg := total / int64(len(metrics))
	return float64(avg) / float64(targetMilli), avg
}

// resourceUtilizationReplicas is GetResourceReplicas: utilization of the pods' requests.
func resourceUtilizationReplicas(in calcInput, reading MetricReading, resource string, targetUtil int32, p *MetricProposal) {
	requests := map[string]int64{}
	for _, pod := range in.pods {
		r := pod.CPURequest
		if resource == "memory" {
			r = pod.MemoryRequest
		}
		if r <= 0 {
			p.Invalid = fmt.Sprintf("missing request for %s in pod %s", resource, pod.Name)
			return
		}
		requests[pod.Name] = milli(r)
	}
	if len(in.pods) == 0 {
		p.Invalid = "no pods to measure"
		return
	}
	metrics, g, ok := readyPodMetrics(in, reading, resource == "cpu", p)
	if !ok {
		return
	}
	usageRatio, util, ok := utilizationRatio(metrics, requests, targetUtil)
	if !ok {
		p.Invalid = "no samples matched pods with requests"
		return
	}
	p.Current, p.Ratio = float64(util), usageRatio

	scaleUpWithUnready := len(g.unready) > 0 && usageRatio > 1.0
	if !scaleUpWithUnready && len(g.missing) == 0 {
		proposeFromReady(p, in, usageRatio, g.ready)
		return
	}
	if len(g.missing) > 0 {
		if usageRatio < 1.0 {
			// On a scale-down, missing pods count as using all of their request (or the target, if higher).
			fallbackUtil := int64(max(100, targetUtil))
			for _, n := range g.missing {
				metrics[n] = requests[n] * fallbackUtil / 100
			}
		} else {
			for _, n := range g.missing {
				metrics[n] = 0
			}
		}
	}
	if scaleUpWithUnready {
		for _, n := range g.unready {
			metrics[n] = 0
		}
	}
	newRatio, _, _ := utilizationRatio(metrics, requests, targetUtil)
	recomputed(p, in, usageRatio, newRatio, len(metrics))
}

// utilizationRatio is GetResourceUtilizationRatio: integer percent of summed requests, over the target.
func utilizationRatio(metrics, requests map[string]int64, targetUtil int32) (float64, int32, bool) {
	var used, requested int64
	for _, n := range sortedKeys(metrics) {
		r, ok := requests[n]
		if !ok {
			continue
		}
		used += metrics[n]
		requested += r
	}
	if requested == 0 {
		return 0, 0, false
	}
	util := int32(used * 100 / requested)
	return float64(util) / float64(targetUtil), util, true
}

// usageRatioReplicas is getUsageRatioReplicaCount, for Object and External metrics with a Value target.
func usageRatioReplicas(in calcInput, usageRatio float64, p *MetricProposal) {
	p.Ratio = usageRatio
	if in.current != 0 {
		if in.tol.within(usageRatio) {
			p.WithinTolerance, p.Replicas = true, in.current
			return
		}
		if len(in.pods) == 0 {
			// The HPA's getReadyPodsCount fails on an empty pod list: a ratio times no pods would propose 0
			// for a Deployment whose pods cannot be created (a quota, an admission webhook).
			p.Invalid = "no pods returned by the selector while calculating the replica count"
			return
		}
		ready := readyPodCount(in.pods)
		p.ReadyPods = ready
		p.Replicas = ceilReplicas(usageRatio * float64(ready))
		return
	}
	// At zero replicas, the ratio alone says how many to start.
	p.Replicas = ceilReplicas(usageRatio)
}

// perPodTotalReplicas is GetObjectPerPodMetricReplicas / GetExternalPerPodMetricReplicas: a total divided
// by a per-pod target.
func perPodTotalReplicas(in calcInput, usageMilli, targetMilli int64, p *MetricProposal) {
	if in.current == 0 {
		// At zero replicas (waking from zero) the total in replicas' worth says how many to start; a ratio
		// to zero replicas would be infinite, and a decision must encode as JSON (it is recorded).
		p.Ratio = float64(usageMilli) / float64(targetMilli)
		p.Replicas = ceilReplicas(p.Ratio)
		return
	}
	replicas := in.current
	ratio := float64(usageMilli) / (float64(targetMilli) * float64(replicas))
	p.Ratio = ratio
	if in.tol.within(ratio) {
		p.WithinTolerance, p.Replicas = true, in.current
		return
	}
	p.Replicas = ceilReplicas(float64(usageMilli) / float64(targetMilli))
}

// computeMetric runs the calculation for one metric (computeReplicasForMetric).
func computeMetric(in calcInput, m MetricSpec, reading *MetricReading) MetricProposal {
	t := m.Target()
	p := MetricProposal{Name: m.Name(), Type: m.Type, Target: t.String()}
	if reading == nil {
		p.Invalid = "no reading"
		return p
	}
	if reading.Error != "" {
		p.Invalid = reading.Error
		return p
	}
	if m.Type == DemandMetric && m.Demand != nil {
		demandReplicas(in, m.Demand, reading.Demand, &p)
		return p
	}
	if msg := checkTarget(m, t); msg != "" {
		p.Invalid = msg
		return p
	}
	// A value that is not a number is no reading: read as 0 (milli's saturation), it could drive a
	// scale-down. The metric sources drop such samples; a snapshot or the simulator may not.
	if v := reading.Value; v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
		p.Invalid = fmt.Sprintf("the value %v is not a number", *v)
		return p
	}
	for _, s := range reading.Pods {
		if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
			p.Invalid = fmt.Sprintf("pod %s's value %v is not a number", s.Pod, s.Value)
			return p
		}
	}
	switch m.Type {
	case ResourceMetric:
		switch {
		case t.Type == UtilizationTarget && t.AverageUtilization != nil:
			resourceUtilizationReplicas(in, *reading, m.Resource.Name, *t.AverageUtilization, &p)
		case t.Type == AverageValueTarget && t.AverageValue != nil:
			plainMetricReplicas(in, *reading, milli(*t.AverageValue), m.Resource.Name == "cpu", &p)
		default:
			p.Invalid = "resource metrics need a Utilization or AverageValue target"
		}
	case PodsMetric:
		if t.Type != AverageValueTarget || t.AverageValue == nil {
			p.Invalid = "pods metrics need an AverageValue target"
			break
		}
		plainMetricReplicas(in, *reading, milli(*t.AverageValue), false, &p)
	case ObjectMetric, ExternalMetric:
		if reading.Value == nil {
			p.Invalid = "no value"
			break
		}
		usage := milli(*reading.Value)
		p.Current = float64(usage) / 1000
		switch {
		case t.Type == ValueTarget && t.Value != nil:
			usageRatioReplicas(in, float64(usage)/float64(milli(*t.Value)), &p)
		case t.Type == AverageValueTarget && t.AverageValue != nil:
			perPodTotalReplicas(in, usage, milli(*t.AverageValue), &p)
		default:
			p.Invalid = fmt.Sprintf("%s metrics need a Value or AverageValue target", m.Type)
		}
	default:
		p.Invalid = fmt.Sprintf("unknown metric type %q", m.Type)
	}
	return p
}

// checkTarget catches what config validation normally rejects, so that no input can make the calculation
// divide by zero or follow a nil source.
func checkTarget(m MetricSpec, t MetricTarget) string {
	if (m.Type == ResourceMetric && m.Resource == nil) || (m.Type == PodsMetric && m.Pods == nil) ||
		(m.Type == ObjectMetric && m.Object == nil) || (m.Type == ExternalMetric && m.External == nil) {
		return fmt.Sprintf("%s metric without its %s section", m.Type, strings.ToLower(string(m.Type)))
	}
	for _, v := range []*float64{t.Value, t.AverageValue} {
		if v != nil && milli(*v) <= 0 {
			return "target must be > 0"
		}
	}
	if t.AverageUtilization != nil && *t.AverageUtilization <= 0 {
		return "target utilization must be > 0"
	}
	return ""
}

// demandReplicas sizes by Little's law: busy slots = arrivals x service time, plus the backlog new capacity
// will meet spread over the lead time; replicas = busy slots / (concurrency x target utilization), or more
// if the SLO needs them.
func demandReplicas(in calcInput, d *DemandSource, r *DemandReading, p *MetricProposal) {
	if r == nil {
		p.Invalid = "no reading"
		return
	}
	service, ok := demandServiceTime(d, r)
	per := float64(d.Concurrency) * targetUtilization(d)
	if !ok || per <= 0 {
		p.Invalid = "demand needs a service time (serviceTime or serviceTimeSeconds), concurrency > 0 and an arrival rate"
		return
	}
	lead := max(in.leadTime, time.Second).Seconds()
	arrivalsNow := r.Arrivals
	var backlog, growth float64
	var fromBacklog string
	if r.Backlog != nil && *r.Backlog > 0 {
		backlog = *r.Backlog
		ready := readyPodCount(in.pods)
		perReplica := float64(d.Concurrency) / service // what one replica serves at full batches, req/s
		served := float64(ready) * perReplica
		// Saturated replicas serve their full batches, and the arrivals beyond that wait: the arrivals are
		// at least what they serve plus the backlog's growth. The rate read over its window reaches that
		// level a window after a step; the backlog shows it at the next evaluation. Only when the rate read
		// already exceeds what the replicas serve at full batches: below it, some replicas have free slots
		// and a backlog on others measures the balancer's spread and the requests' sizes, not the arrivals
		// (taken for arrivals, it cost 0.4-0.6% more node-hours on the conversation trace and 2.7% on a sine
		// of heavy-tailed requests).
		if arrivalsNow > served && served+in.backlogRise > arrivalsNow {
			arrivalsNow = served + in.backlogRise
			fromBacklog = fmt.Sprintf(" (the %s read over the rate's window is behind: %d ready replicas serve %s at full batches and the backlog grows %s a second)",
				formatNumber(r.Arrivals), ready, formatNumber(served), formatNumber(in.backlogRise))
		}
		growth = backlogGrowth(arrivalsNow, perReplica, ready, in.current, in.waiting.Seconds(), lead)
	}
	// The projected rise in slots, as requests of today's service time.
	arrivals := arrivalsNow + in.demandRise/service
	slots := arrivals*service + (backlog+growth)*service/lead
	want := slots / per
	p.Current = slots
	var trend []string
	if in.demandRise > 0 {
		trend = append(trend, fmt.Sprintf("rising: +%s busy slots by the time new capacity serves", formatNumber(in.demandRise)))
	}
	if in.unprojected != "" {
		trend = append(trend, in.unprojected)
	}
	rising := ""
	if len(trend) > 0 {
		rising = " (" + strings.Join(trend, "; ") + ")"
	}
	backlogNote := formatNumber(backlog)
	if growth > 0 {
		backlogNote += fmt.Sprintf(" (+%s by the time new capacity serves)", formatNumber(growth))
	}
	p.Note = fmt.Sprintf("%s req/s%s x %ss%s + backlog %s over lead time %s = %s busy slots, %s per replica",
		formatNumber(arrivalsNow), fromBacklog, formatNumber(service), rising, backlogNote, time.Duration(lead*float64(time.Second)).Round(time.Second),
		formatNumber(slots), formatNumber(per))
	if n, ok := d.sloReplicas(arrivals+(backlog+growth)/lead, service); ok && float64(n) > want {
		want = float64(n)
		model := "each replica a queue"
		if d.SLO.LoadBalancing == LeastRequestBalancing {
			model = "least-request balancing pools the replicas"
		}
		p.Note += fmt.Sprintf("; %d replicas keep the modelled queueing delay within %s for %s%% of requests (%s)",
			n, d.SLO.QueueDelay, formatNumber(100*d.SLO.attainment()), model)
	}
	if n, note, ok := d.peakReplicas(r, max(arrivalsNow, in.slotsHeld/service), service); ok && n > want {
		want = n
		p.Note += note
	}
	// No tolerance band: the demand model sizes its own headroom (target utilization, SLO) and the hold
	// keeps it from flapping; a 10% band on top would keep up to a tenth of the replicas idle on the way
	// down and let a tenth of the demand go unserved on the way up.
	if in.current > 0 {
		p.Ratio = want / float64(in.current)
	}
	p.Replicas = ceilReplicas(want)
	if in.demandRise > 0 {
		unprojected := in
		unprojected.demandRise = 0
		var q MetricProposal
		demandReplicas(unprojected, d, r, &q)
		p.Unprojected = &q.Replicas
	}
	if in.demandRise > 0 || backlog > 0 {
		alone := in
		alone.demandRise = 0
		noBacklog := *r
		noBacklog.Backlog = nil
		var q MetricProposal
		demandReplicas(alone, d, &noBacklog, &q)
		p.Arrivals = &q.Replicas
	}
}

// backlogGrowth is how far the backlog grows before capacity ordered now serves, a lead time from now,
// each replica serving perReplica requests a second at full batches. Arrivals beyond what the ready
// replicas serve pile up until the capacity on its way serves (its oldest wave has waited part of the lead
// time already), and beyond what every committed replica serves after that. The backlog read now is not all that capacity meets: after a step, the queue
// the replicas serving then build goes on growing for the whole lead time, and capacity sized for the
// backlog of the order's time drained the one it met over minutes more, late for every request behind it
// (a step from 10 to 25 req/s: 88.7% within the SLO, 92% sized for the backlog it meets).
func backlogGrowth(arrivals, perReplica float64, ready int, committed int32, waited, lead float64) float64 {
	onItsWay := min(waited, lead)
	return max(arrivals-float64(ready)*perReplica, 0)*(lead-onItsWay) + max(arrivals-float64(committed)*perReplica, 0)*onItsWay
}

// peakSigmas is how far above a Poisson stream's count over the peak window the peak must stand to be
// taken for bursts: the highest of a minute's sliding windows of a Poisson stream stands about three
// standard deviations above its mean, and the SLO's queueing model (Erlang C, Poisson arrivals) already
// sizes for that. At 4, the conversation trace's own bunching passed now and then (1.9% more node-hours at
// 10x, with an 8-second window); at 6 nothing there does, and a load of 10 req/s that brings 30 for 10 s
// each minute (a client firing on the minute) is still taken for bursts.
const peakSigmas = 6

// peakRange is the range the peak arrivals are the highest of (DemandSource.PeakArrivals: within the last
// minute).
const peakRange = time.Minute

// peakReplicas is the replicas that hold the peak arrivals' busy slots (the peak rate x the service time)
// at full batches, and the note that says why, when the peak over the window stands more than peakSigmas
// standard deviations above what a Poisson stream at the arrival rate brings (the highest rate read over
// the peak's range, so that the minute after a fall, whose peak is the fall's start, is not taken for
// bursts: weighed against the minute's last rate, each fall's minute read as bursts and held the fall's
// capacity a minute longer, for load that had gone): such bursts, shorter than
// the rate's window, are averaged away by it, and sized for the minute's mean the replicas queue every
// burst (10 req/s with 30 for 10 s each minute met 65% of its requests; sized for its peaks, 99.92%, for
// 15% more node-hours than the static size that meets it at 99.05%). Full batches, not the SLO's model:
// a burst lasts seconds and its queue drains with it, and sized for a Poisson stream at the peak rate the
// step-shaped loads, whose first minute after a step up reads as a burst, cost more than static.
func (d *DemandSource) peakReplicas(r *DemandReading, arrivals, service float64) (float64, string, bool) {
	if r.PeakArrivals == nil || d.Concurrency <= 0 || math.IsNaN(*r.PeakArrivals) || math.IsInf(*r.PeakArrivals, 0) {
		return 0, "", false
	}
	peak, window := *r.PeakArrivals, d.PeakRateWindow()
	mean := max(arrivals, 0) * window.Seconds()
	if peak*window.Seconds() <= mean+peakSigmas*math.Sqrt(mean) {
		return 0, "", false
	}
	n := peak * service / float64(d.Concurrency)
	return n, fmt.Sprintf("; arrivals peak at %s req/s over %s, %s a window where a Poisson stream at %s req/s "+
		"(the highest rate read over the last minute) brings %s (more than %d standard deviations above): "+
		"bursts the rate's window averages away, whose %s busy slots need %s replicas at full batches",
		formatNumber(peak), window, formatNumber(peak*window.Seconds()), formatNumber(arrivals), formatNumber(mean), peakSigmas,
		formatNumber(peak*service), formatNumber(math.Ceil(n))), true
}

// PeakRateWindow is the range of the peak arrivals' rate(): PeakWindow, or its default. The simulator
// reads its peak over the same.
func (d *DemandSource) PeakRateWindow() time.Duration {
	if w := d.PeakWindow.D(); w > 0 {
		return w
	}
	return DefaultPeakWindow
}

// sloReplicas is the fewest replicas whose modelled queueing delay meets the SLO at this arrival rate
// and service time; false when the source has no SLO.
func (d *DemandSource) sloReplicas(arrivals, service float64) (int32, bool) {
	slo := d.SLO
	if slo == nil || slo.QueueDelay <= 0 {
		return 0, false
	}
	return replicasForSLO(arrivals, service, int(d.Concurrency), slo.QueueDelay.D().Seconds(), 1-slo.attainment(),
		slo.LoadBalancing == LeastRequestBalancing), true
}

// attainment is the share of requests to serve within the delay (default 0.99).
func (s *QueueSLO) attainment() float64 {
	if s.Attainment <= 0 || s.Attainment >= 1 {
		return 0.99
	}
	return s.Attainment
}

// demandServiceTime is the time a request holds a batch slot: the reading, else the spec's constant; false
// when neither is usable or the arrival rate is not.
func demandServiceTime(d *DemandSource, r *DemandReading) (float64, bool) {
	service := d.ServiceTimeSeconds
	if r.ServiceTime != nil && *r.ServiceTime > 0 && !math.IsInf(*r.ServiceTime, 0) {
		service = *r.ServiceTime
	}
	return service, service > 0 && r.Arrivals >= 0 && !math.IsNaN(r.Arrivals) && !math.IsInf(r.Arrivals, 0)
}

func targetUtilization(d *DemandSource) float64 {
	if d.TargetUtilization > 0 {
		return d.TargetUtilization
	}
	return DefaultDemandUtilization
}

// replicasForSLO is the fewest replicas, each serving `slots` requests at once, such that a request waits
// longer than delay with probability at most miss, by Erlang C: P(W > t) = C(c, a) e^(-(c mu - lambda) t).
// Spread evenly over the replicas (random balancing) each replica is an M/M/slots queue with its share of
// the arrivals; pooled (least-request balancing) the n replicas are one M/M/(n x slots) queue. It stops at
// maxSLOReplicas.
func replicasForSLO(arrivals, service float64, slots int, delay, miss float64, pooled bool) int32 {
	if arrivals <= 0 || service <= 0 || slots <= 0 {
		return 0
	}
	mu := 1 / service
	first := max(int(arrivals/mu/float64(slots)), 1)
	for n := first; n <= maxSLOReplicas; n++ {
		c, lambda := slots, arrivals/float64(n)
		if pooled {
			c, lambda = n*slots, arrivals
		}
		a := lambda / mu
		if a >= float64(c) {
			continue // unstable: the queue grows without bound
		}
		if erlangC(c, a)*math.Exp(-(float64(c)*mu-lambda)*delay) <= miss {
			return int32(n)
		}
	}
	return maxSLOReplicas
}

const maxSLOReplicas = 10000

// erlangC is the probability that an arrival waits in an M/M/c queue with offered load a < c, through the
// Erlang B recursion (numerically stable).
func erlangC(c int, a float64) float64 {
	b := 1.0
	for k := 1; k <= c; k++ {
		b = a * b / (float64(k) + a*b)
	}
	return float64(c) * b / (float64(c) - a*(1-b))
}
