package policy

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Input is one evaluation's input besides the state and the clock.
type Input struct {
	Spec        Spec        `json:"spec"`
	Observation Observation `json:"observation"`
	Overrides   Overrides   `json:"overrides,omitempty"`
	// LeadTime is the measured time from ordering capacity to it serving (the caller's recent
	// scale-outs); Demand metrics use it unless their spec sets one.
	LeadTime Duration `json:"leadTime,omitempty"`
	// Waiting is how long the oldest capacity ordered and not yet serving has been on its way: the lead
	// time is at least that. Before any scale-out served (the lead time is then a prior), or when launches
	// have become slower than measured, it tells the lead time sooner than the next measurement.
	Waiting Duration `json:"waiting,omitempty"`
	// EvaluationInterval is the time to the next evaluation: what is ordered now carries the demand until
	// what the next evaluation orders can serve, so a Demand metric's ramp is projected that much further.
	EvaluationInterval Duration `json:"evaluationInterval,omitempty"`
}

// Overrides are an operator's manual instructions in force (bounds and targets are applied to the spec
// by the caller; these two change the outcome itself).
type Overrides struct {
	Paused      bool      `json:"paused,omitempty"`
	PauseReason string    `json:"pauseReason,omitempty"`
	Pinned      *int32    `json:"pinned,omitempty"`
	PinnedUntil time.Time `json:"pinnedUntil,omitempty"`
}

// LimitKind names what bounded a decision.
type LimitKind string

const (
	LimitReplicaBounds   LimitKind = "replica-bounds"
	LimitMaxReplicas     LimitKind = "max-replicas"
	LimitMinReplicas     LimitKind = "min-replicas"
	LimitStabilization   LimitKind = "stabilization-window"
	LimitScaleUpPolicy   LimitKind = "scale-up-policy"
	LimitScaleDownPolicy LimitKind = "scale-down-policy"
	LimitInvalidMetric   LimitKind = "invalid-metric"
	LimitPanicHold       LimitKind = "panic-hold"
	// LimitBurstCycle: bursts recur, and capacity is ordered a lead time ahead of the next one.
	LimitBurstCycle LimitKind = "burst-cycle"
	// LimitRisingDemand: no scale-in while the demand rises beyond doubt.
	LimitRisingDemand LimitKind = "rising-demand"
	// LimitRiseHeadroom: a scale-in keeps room for the rises of demand seen over the last hour.
	LimitRiseHeadroom LimitKind = "rise-headroom"
	// LimitLoadStopped: after an abrupt stop of the load, its capacity waits for its return.
	LimitLoadStopped LimitKind = "load-stopped"
	// LimitWaitingRequests: no scale-in while requests wait for a batch slot.
	LimitWaitingRequests LimitKind = "waiting-requests"
	LimitScaleToZero     LimitKind = "scale-to-zero"
	LimitDisabled        LimitKind = "autoscaling-disabled"
	LimitNodeGroupMax    LimitKind = "node-group-max"
	LimitPaused          LimitKind = "paused"
	LimitPinned          LimitKind = "pinned"
	// LimitBackoff is added by the autoscaler workflow: scale-outs wait after a failed one.
	LimitBackoff LimitKind = "scale-out-backoff"
)

// Limit is one step that changed (or held) the recommendation, from From to To.
type Limit struct {
	Kind   LimitKind `json:"kind"`
	From   int32     `json:"from"`
	To     int32     `json:"to"`
	Detail string    `json:"detail"`
}

// Decision is the result of one evaluation and the record of why.
type Decision struct {
	Time time.Time `json:"time"`
	// CurrentReplicas is the Deployment's spec.replicas; Committed adds the action under way.
	CurrentReplicas   int32 `json:"currentReplicas"`
	CommittedReplicas int32 `json:"committedReplicas"`
	ReadyReplicas     int32 `json:"readyReplicas"`
	// ComingReplicas are replicas asked for but not yet ready (pending pods, a scale-out under way).
	ComingReplicas int32 `json:"comingReplicas"`
	// ComingNodes are nodes requested but not yet Ready with GPUs allocatable.
	ComingNodes int32            `json:"comingNodes"`
	Metrics     []MetricProposal `json:"metrics,omitempty"`
	// Proposal is the max over valid metric proposals (before windows, policies and bounds).
	Proposal int32   `json:"proposal"`
	Panic    bool    `json:"panic,omitempty"`
	Limits   []Limit `json:"limits,omitempty"`
	// DesiredReplicas is the outcome.
	DesiredReplicas int32      `json:"desiredReplicas"`
	Action          ActionKind `json:"action,omitempty"`
	Nodes           NodePlan   `json:"nodes"`
	Summary         string     `json:"summary"`
	// Acted says the autoscaler acted on the decision: started, raised or cancelled an action. The policy
	// only decides; the workflow sets it as it acts, so that a late spell's records can be told apart.
	Acted bool `json:"acted,omitempty"`
}

// Evaluate decides the replica count and node plan. It updates st (the recommendation history and the
// panic and idle clocks) and never does I/O; now is the evaluation time.
func Evaluate(in Input, st *State, now time.Time) Decision {
	spec := in.Spec.WithDefaults()
	lead := leadTime(spec, in.LeadTime, in.Waiting)
	cycle := st.cycle(now)
	spec = holdForDemand(spec, lead, cycle.regular(lead))
	obs := in.Observation
	forecastFrom, _ := cycle.forecastWindow(now, lead)
	st.trim(spec, now, forecastFrom)

	d := Decision{Time: now, CurrentReplicas: obs.SpecReplicas, ReadyReplicas: obs.ReadyReplicas()}
	committed := obs.SpecReplicas
	if ip := obs.InProgress; ip != nil && ip.Kind != NoAction {
		committed = ip.TargetReplicas
	}
	d.CommittedReplicas = committed
	d.ComingReplicas = max(committed-d.ReadyReplicas, 0)
	// Nodes requested but not serving yet: the group's requested size less the serving nodes and the
	// nodes on their way out.
	leaving, serving := int32(0), int32(0)
	for _, n := range obs.Nodes {
		switch {
		case n.Cordoned || n.Deleting:
			leaving++
		case n.Serving():
			serving++
		}
	}
	d.ComingNodes = max(obs.Group.Desired-serving-leaving, 0)

	desired := d.decideReplicas(spec, obs, st, committed, now, lead, in.Waiting.D(), in.EvaluationInterval.D(), cycle)

	// The node group's max bounds what can actually run: more replicas would stay Pending.
	if capacity := replicaCapacity(spec, obs); obs.Group.Max > 0 && desired > capacity && desired > committed {
		d.limit(LimitNodeGroupMax, desired, max(capacity, committed),
			fmt.Sprintf("node group %s holds at most %d nodes x %d replicas", obs.Group.Name, obs.Group.Max, podsPerNode(spec, obs)))
		desired = max(capacity, committed)
	}
	desired = d.applyOverrides(in.Overrides, committed, desired, now)

	d.DesiredReplicas = desired
	d.Nodes = planNodes(spec, obs, committed, desired)
	switch {
	case desired > committed || d.Nodes.Add > 0:
		d.Action = ScaleOut
	case desired < committed || len(d.Nodes.Victims) > 0:
		d.Action = ScaleIn
	}
	if in.Overrides.Paused {
		d.Action = NoAction
	}
	d.Summary = d.summarize()
	return d
}

// decideReplicas runs the HPA's reconcile step and our extensions, recording limits as it goes.
func (d *Decision) decideReplicas(spec Spec, obs Observation, st *State, current int32, now time.Time, lead, onItsWay, interval time.Duration, cycle burstCycle) int32 {
	z := spec.ScaleToZero
	activationKnown := obs.Activation != nil
	if z != nil {
		// An unreadable signal counts as activity: the idle period is one of readings at or below the
		// threshold, not of silence (a stretch of failed readings under load, then one reading 0, scaled a
		// busy model to zero).
		if st.LastActive.IsZero() || !activationKnown || *obs.Activation > z.ActivationThreshold {
			st.LastActive = now
		}
	}
	if current == 0 {
		if z == nil {
			d.limit(LimitDisabled, 0, 0, "the Deployment is at 0 replicas and scale to zero is off: autoscaling is disabled, as with the HPA")
			return 0
		}
		if activationKnown && *obs.Activation > z.ActivationThreshold {
			want := max(spec.MinReplicas, 1)
			for _, m := range spec.Metrics {
				if m.Type == ExternalMetric || m.Type == ObjectMetric {
					p := computeMetric(d.calcInput(spec, obs, 0, now), m, findReading(obs, m.Name()))
					d.Metrics = append(d.Metrics, p)
					if p.Invalid == "" {
						want = max(want, p.Replicas)
					}
				}
			}
			want = min(want, spec.MaxReplicas)
			d.Proposal = want
			d.limit(LimitScaleToZero, 0, want, fmt.Sprintf("woken from zero: %s is %s, above %s",
				z.Activation.Name, formatNumber(*obs.Activation), formatNumber(z.ActivationThreshold)))
			return want
		}
		reading := "unknown"
		if activationKnown {
			reading = formatNumber(*obs.Activation)
		}
		d.limit(LimitScaleToZero, 0, 0, fmt.Sprintf("scaled to zero: %s is %s, not above %s", z.Activation.Name, reading, formatNumber(z.ActivationThreshold)))
		return 0
	}
	if current > spec.MaxReplicas {
		d.Proposal = spec.MaxReplicas
		d.limit(LimitReplicaBounds, current, spec.MaxReplicas, fmt.Sprintf("current %d is above maxReplicas %d", current, spec.MaxReplicas))
		return spec.MaxReplicas
	}
	if current < spec.MinReplicas {
		d.Proposal = spec.MinReplicas
		d.limit(LimitReplicaBounds, current, spec.MinReplicas, fmt.Sprintf("current %d is below minReplicas %d", current, spec.MinReplicas))
		return spec.MinReplicas
	}

	// computeReplicasForMetrics: the max over metrics; an invalid metric forbids a scale-down.
	in := d.calcInput(spec, obs, current, now)
	in.leadTime, in.waiting = lead, onItsWay
	if src, r := demandReading(spec, obs); r != nil {
		if service, ok := demandServiceTime(src, r); ok {
			in.demandRise, in.unprojected = st.demandTrend(r.Arrivals*service, now, lead, projectionHorizon(src, lead, interval), src.rateWindow())
			in.slotsHeld = st.busySlotsHeld(now.Add(-peakRange))
		}
		if r.Backlog != nil {
			in.backlogRise = st.backlogRise(*r.Backlog, d.ReadyReplicas, now, interval)
		}
	}
	// seen is the proposal for the demand as read (no projected rise); forecastable for the arrivals alone
	// (no backlog either), what a burst cycle's forecast orders for the next burst.
	var proposal, seen, forecastable int32
	invalid := 0
	var firstInvalid string
	for _, m := range spec.Metrics {
		p := computeMetric(in, m, findReading(obs, m.Name()))
		d.Metrics = append(d.Metrics, p)
		if p.Invalid != "" {
			if invalid == 0 {
				firstInvalid = fmt.Sprintf("%s: %s", p.Name, p.Invalid)
			}
			invalid++
			continue
		}
		if proposal == 0 || p.Replicas > proposal {
			proposal = p.Replicas
		}
		u := p.Replicas
		if p.Unprojected != nil {
			u = *p.Unprojected
		}
		seen = max(seen, u)
		if p.Arrivals != nil {
			u = *p.Arrivals
		}
		forecastable = max(forecastable, u)
	}
	d.Proposal = proposal
	if invalid >= len(spec.Metrics) {
		d.limit(LimitInvalidMetric, current, current, "no metric could be read ("+firstInvalid+"): keeping the current count")
		return current
	}
	if invalid > 0 && proposal < current {
		d.limit(LimitInvalidMetric, proposal, current, "metric "+firstInvalid+": no scale-down while a metric is invalid")
		return current
	}

	panicking := false
	if pc := spec.Panic; pc != nil {
		ready := float64(d.ReadyReplicas)
		if ready > 0 && float64(proposal)/ready >= pc.Threshold {
			st.PanicUntil = now.Add(pc.Hold.D())
		}
		panicking = now.Before(st.PanicUntil)
		d.Panic = panicking
	}

	var projectionHold time.Duration
	var stopKeep int32
	demand := demandSource(spec)
	if demand != nil {
		// Seen demand against seen demand: a projection switching on is not a burst, nor one switching off a
		// stop.
		st.noteBurst(seen, now, lead)
		stopKeep = st.keepAfterStop(seen, current, now, lead, demand.rateWindow(), demand.keepAfterStop())
		projectionHold = lead
	}
	stabilized, l := st.stabilize(spec, current, proposal, seen, forecastable, projectionHold, now)
	if panicking && proposal > stabilized {
		// A burst cannot wait for the scale-up window.
		stabilized = proposal
	} else if l.Kind != "" {
		d.Limits = append(d.Limits, l)
	}
	if cycle.known() {
		from, to := cycle.forecastWindow(now, lead)
		if want := st.cycleForecast(from, to); want > stabilized {
			var seen string
			switch ahead := cycleAhead(lead); {
			case !cycle.regular(lead):
				seen = fmt.Sprintf("at irregular times (a regular cycle has two gaps or more, within %s of each other): the arrivals seen "+
					"from %s (the oldest burst of the last hour) to %s (one shortest gap ago, plus %s and the gaps' spread)",
					(lead / 2).Round(time.Second), from.Add(time.Minute).UTC().Format(time.TimeOnly), to.UTC().Format(time.TimeOnly), ahead.Round(time.Second))
			case cycle.spread() == 0:
				seen = "one cycle ago the arrivals of the next " + ahead.Round(time.Second).String()
			default:
				end := "now"
				if to.Before(now) {
					end = now.Sub(to).Round(time.Second).String() + " ago"
				}
				seen = fmt.Sprintf("the arrivals seen from %s ago (the longest gap) to %s (one shortest gap ago, plus %s and the gaps' spread)",
					cycle.longest.Round(time.Second), end, ahead.Round(time.Second))
			}
			d.limit(LimitBurstCycle, stabilized, want, fmt.Sprintf("bursts recur %s: %s needed %d", cycle, seen, want))
			stabilized = want
		}
	}
	if panicking && stabilized < current {
		d.limit(LimitPanicHold, stabilized, current, fmt.Sprintf("panic mode until %s: no scale-down", st.PanicUntil.UTC().Format(time.TimeOnly)))
		stabilized = current
	}
	desired, l := st.applyRateAndBounds(spec, current, stabilized, spec.MinReplicas, now, panicking)
	if l.Kind != "" {
		d.Limits = append(d.Limits, l)
	}

	// A regular cycle's forecast orders capacity ahead of each burst, in place of these holds.
	if desired < current && !cycle.regular(lead) {
		desired = d.holdWhileDemandRises(st, current, desired, lead)
	}
	if desired < current && !cycle.regular(lead) {
		desired = d.keepHeadroomForRises(spec, obs, st, current, desired, lead)
	}
	// After an abrupt stop the capacity for the load before it waits for the load's return; a regular
	// cycle's forecast orders it ahead of each burst instead.
	if keep := min(stopKeep, current); desired < keep && !cycle.regular(lead) {
		d.limit(LimitLoadStopped, desired, keep, st.Stop.describe(demand.keepAfterStop(), demand.rateWindow()))
		desired = keep
	}
	waiting := waitingRequests(spec, obs)
	if desired < current && waiting > float64(d.ReadyReplicas) {
		d.limit(LimitWaitingRequests, desired, current, fmt.Sprintf("waiting requests: %s wait, %d replicas ready, more than one "+
			"each; no scale-in until they are served (a victim's own queue could outlast its drain)", formatNumber(waiting), d.ReadyReplicas))
		desired = current
	}
	// Not to zero while a request waits: it would wait for a cold start, or be dropped with its replica.
	if z != nil && !panicking && activationKnown && now.Sub(st.LastActive) >= z.Idle.D() && !(waiting > 0) {
		d.limit(LimitScaleToZero, desired, 0, fmt.Sprintf("idle since %s (%s at or below %s for %s): scaling to zero",
			st.LastActive.UTC().Format(time.TimeOnly), z.Activation.Name, formatNumber(z.ActivationThreshold), z.Idle))
		return 0
	}
	return desired
}

// holdWhileDemandRises keeps the current count while the Demand metric's minute levels over the last
// risingLookback lead times (at least 12 minutes) rise beyond doubt (95% confidence): on a sustained ramp a
// proposal below the current count is the noise of a minute, and the capacity given back would be ordered
// again within a few lead times, a lead time late (on a slow ramp every scale-in was followed by late
// requests). A ramp too slow to matter is also too slow to be told from noise over that span.
//
// A ramp that has ended is let go: when the slope of the span's second half is below the whole span's
// lower bound beyond doubt (its upper bound lower), the levels have flattened, and the span would
// otherwise hold them for up to its length. Against the whole span's slope itself, the test ended a
// noisy slow ramp three times in its hour; against the lower bound it needs the flattening to be clear.
func (d *Decision) holdWhileDemandRises(st *State, current, desired int32, lead time.Duration) int32 {
	// At least minTrendPoints minutes in the second half, twice that in the whole: with a lead time of a
	// minute or two, four lead times are too few readings to tell a rise, or its end, from noise.
	half := max(risingLookback*lead/2, minTrendPoints*time.Minute)
	slope, lower, minutes := st.minuteTrend(2 * half)
	if lower <= 0 {
		return desired
	}
	if recent, recentLower, _ := st.minuteTrend(half); 2*recent-recentLower < lower {
		return desired
	}
	d.limit(LimitRisingDemand, desired, current, fmt.Sprintf("demand rising: +%s busy slots a minute over the last %d minutes "+
		"(at least +%s at 95%% confidence); no scale-in on a rise, whose capacity would be ordered again",
		formatNumber(slope*60), minutes, formatNumber(lower*60)))
	return current
}

// keepHeadroomForRises bounds a scale-in: it keeps the slots for the demand's level (the highest of the last
// lead time's minutes, or the reading now if higher) plus the rise over a lead time that one window in ten
// exceeded over the last hour (riseQuantile; see riseSeen), an empirical safety stock. With a queueing SLO
// the replicas are as many as the SLO needs for that demand, as the proposal's are: at their full slots a
// square wave's high halves (10 and 20 req/s) were kept 10 replicas where 20 req/s needs 11 within the
// SLO, and every high half was served late (85% met, 91% sized for the SLO, for 1% more node-hours).
// Capacity given back below that is missing, a lead time long, when such a rise comes: on a volatile load a
// reactive policy otherwise scales in at a trough and meets the next rise short. The headroom follows the
// load's own volatility (a fixed utilization target is too much for a smooth load and too little for a
// jumpy one). A burst is a rise too: early in the history (see riseQuantile) the first burst's capacity is
// kept through the next of a cycle; once the cycle is regular its forecast does this instead (the caller
// skips this), and bursts at irregular times keep theirs.
func (d *Decision) keepHeadroomForRises(spec Spec, obs Observation, st *State, current, desired int32, lead time.Duration) int32 {
	src, r := demandReading(spec, obs)
	if r == nil || src.Concurrency <= 0 {
		return desired
	}
	service, ok := demandServiceTime(src, r)
	if !ok {
		return desired
	}
	rise, level, minutes, ok := st.riseSeen(lead, riseQuantile)
	if !ok {
		return desired
	}
	slots := max(r.Arrivals*service, level)
	need := ceilReplicas((slots + rise) / float64(src.Concurrency))
	sizing := fmt.Sprintf("at their full %d slots", src.Concurrency)
	if n, ok := src.sloReplicas((slots+rise)/service, service); ok && n > need {
		need = n
		sizing = fmt.Sprintf("to keep the modelled queueing delay within %s for %s%% of requests", src.SLO.QueueDelay, formatNumber(100*src.SLO.attainment()))
	}
	if keep := min(need, current); keep > desired {
		lag := leadMinutes(lead)
		d.limit(LimitRiseHeadroom, desired, keep, fmt.Sprintf("rises seen: %s busy slots (the highest of the last %d minutes) "+
			"+ %s (the rise within %d minutes, the lead time rounded up, that one window in %d of the last %d minutes exceeded) "+
			"need %d replicas %s", formatNumber(slots), lag, formatNumber(rise),
			lag, int(math.Round(1/(1-riseQuantile))), minutes, need, sizing))
		return keep
	}
	return desired
}

func (d *Decision) applyOverrides(o Overrides, current, desired int32, now time.Time) int32 {
	if o.Pinned != nil && now.Before(o.PinnedUntil) {
		d.limit(LimitPinned, desired, *o.Pinned, fmt.Sprintf("pinned by an operator to %d until %s", *o.Pinned, o.PinnedUntil.UTC().Format(time.DateTime)))
		desired = *o.Pinned
	}
	if o.Paused {
		reason := o.PauseReason
		if reason == "" {
			reason = "no reason given"
		}
		d.limit(LimitPaused, desired, current, "paused by an operator: "+reason)
		desired = current
	}
	return desired
}

func (d *Decision) calcInput(spec Spec, obs Observation, current int32, now time.Time) calcInput {
	b := spec.Behavior
	return calcInput{
		pods: obs.Pods, current: current, now: now,
		tol:            tolerances{up: *b.ScaleUp.Tolerance, down: *b.ScaleDown.Tolerance},
		initPeriod:     spec.CPUInitializationPeriod.D(),
		readinessDelay: spec.InitialReadinessDelay.D(),
	}
}

func (d *Decision) limit(kind LimitKind, from, to int32, detail string) {
	d.Limits = append(d.Limits, Limit{Kind: kind, From: from, To: to, Detail: detail})
}

func findReading(obs Observation, name string) *MetricReading {
	for i := range obs.Metrics {
		if obs.Metrics[i].Name == name {
			return &obs.Metrics[i]
		}
	}
	return nil
}

// summarize writes the one human sentence: "3 -> 5: queue_length 14.2 per pod vs target 5 per pod;
// capped by scale-up policy 100% per 15s".
func (d *Decision) summarize() string {
	var b strings.Builder
	from := strconv.Itoa(int(d.CurrentReplicas))
	if d.CommittedReplicas != d.CurrentReplicas {
		from = fmt.Sprintf("%d (%d after the action under way)", d.CurrentReplicas, d.CommittedReplicas)
	}
	fmt.Fprintf(&b, "%s -> %d", from, d.DesiredReplicas)
	var reasons []string
	if m, ok := d.drivingMetric(); ok {
		switch {
		case m.WithinTolerance:
			reasons = append(reasons, fmt.Sprintf("%s %s vs target %s is within tolerance (ratio %.2f)", m.Name, m.currentText(), m.Target, m.Ratio))
		default:
			reasons = append(reasons, fmt.Sprintf("%s %s vs target %s (ratio %.2f) proposes %d", m.Name, m.currentText(), m.Target, m.Ratio, m.Replicas))
		}
		if m.Note != "" {
			reasons = append(reasons, m.Note)
		}
	}
	for _, m := range d.Metrics {
		if m.Invalid != "" {
			reasons = append(reasons, fmt.Sprintf("%s unreadable (%s)", m.Name, m.Invalid))
		}
	}
	if d.Panic {
		reasons = append(reasons, "panic mode")
	}
	for _, l := range d.Limits {
		if l.From == l.To && l.Kind != LimitInvalidMetric && l.Kind != LimitDisabled && l.Kind != LimitScaleToZero && l.Kind != LimitPaused && l.Kind != LimitPinned {
			continue
		}
		reasons = append(reasons, limitVerb(l)+l.Detail)
	}
	if d.ComingReplicas > 0 || d.ComingNodes > 0 {
		reasons = append(reasons, fmt.Sprintf("on its way: %d replica(s), %d node(s)", d.ComingReplicas, d.ComingNodes))
	}
	if d.Nodes.Add > 0 {
		reasons = append(reasons, fmt.Sprintf("add %d node(s) (%d -> %d)", d.Nodes.Add, d.Nodes.Requested, d.Nodes.Target))
	}
	if len(d.Nodes.Victims) > 0 {
		names := make([]string, len(d.Nodes.Victims))
		for i, v := range d.Nodes.Victims {
			names[i] = v.Node + " (" + v.Reason + ")"
		}
		reasons = append(reasons, "remove "+strings.Join(names, ", "))
	}
	if len(reasons) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(reasons, "; "))
	}
	return b.String()
}

func limitVerb(l Limit) string {
	switch {
	case l.Kind == LimitPaused || l.Kind == LimitPinned || l.Kind == LimitScaleToZero || l.Kind == LimitDisabled || l.Kind == LimitInvalidMetric:
		return ""
	case l.To < l.From:
		return fmt.Sprintf("capped at %d by ", l.To)
	case l.To > l.From:
		return fmt.Sprintf("held at %d by ", l.To)
	}
	return ""
}

// drivingMetric is the valid metric whose proposal won (the first one at the max).
func (d *Decision) drivingMetric() (MetricProposal, bool) {
	var best MetricProposal
	found := false
	for _, m := range d.Metrics {
		if m.Invalid != "" {
			continue
		}
		if !found || m.Replicas > best.Replicas {
			best, found = m, true
		}
	}
	return best, found
}

func (m MetricProposal) currentText() string {
	switch {
	case m.Type == ResourceMetric && strings.HasSuffix(m.Target, "of request"):
		return fmt.Sprintf("%s%% of request", formatNumber(m.Current))
	case m.Type == ResourceMetric || m.Type == PodsMetric:
		return formatNumber(m.Current) + " per pod"
	}
	return formatNumber(m.Current)
}

// formatNumber prints at most three decimals and no trailing zeros: 14.2, 0.5, 3.
func formatNumber(v float64) string {
	s := strconv.FormatFloat(v, 'f', 3, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// MeasuredLeadTime is the lead time measured from recent scale-outs (decision to serving): their median,
// so one slow launch does not set it; zero when there are none.
func MeasuredLeadTime(recent []time.Duration) Duration {
	if len(recent) == 0 {
		return 0
	}
	ds := slices.Clone(recent)
	slices.Sort(ds)
	return Duration(ds[len(ds)/2])
}

// leadTime is the Demand metric's lead time: the spec's, else the measured one (else the default), or how
// long capacity ordered has been waiting when that is longer.
func leadTime(spec Spec, measured, waiting Duration) time.Duration {
	for _, m := range spec.Metrics {
		if m.Type == DemandMetric && m.Demand != nil && m.Demand.LeadTime > 0 {
			return m.Demand.LeadTime.D()
		}
	}
	lead := DefaultLeadTime
	if measured > 0 {
		lead = measured.D()
	}
	return max(lead, waiting.D())
}

// projectionHorizon is how far ahead a Demand metric's ramp is projected: to when capacity ordered now
// serves (the lead time), from when the rate reading describes (half its window ago), until what the next
// evaluation orders can serve (one interval on).
func projectionHorizon(d *DemandSource, lead, interval time.Duration) time.Duration {
	return lead + d.rateWindow()/2 + interval
}

// rateWindow is the arrivals' rate window, or the default.
func (d *DemandSource) rateWindow() time.Duration {
	if w := d.RateWindow.D(); w > 0 {
		return w
	}
	return DefaultRateWindow
}

// holdForDemand lengthens the scale-down stabilization window to a Demand metric's hold (default twice the
// lead time): capacity that took a lead time to arrive is not given back at the first dip. While bursts
// recur on a regular cycle the default hold gives way to the cycle's forecast; a hold the spec sets is kept.
func holdForDemand(spec Spec, lead time.Duration, regularBursts bool) Spec {
	for _, m := range spec.Metrics {
		if m.Type != DemandMetric || m.Demand == nil {
			continue
		}
		hold := m.Demand.HoldFor.D()
		if hold == 0 && regularBursts {
			// While bursts recur on a regular cycle, its forecast orders capacity ahead of the next one:
			// holding the last burst's capacity beyond the spec's own window would pay for most of the quiet
			// part of each cycle (a hold the spec sets itself is kept).
			continue
		}
		if hold == 0 {
			hold = 2 * lead
		}
		down := *spec.Behavior.ScaleDown
		if w := int32(hold.Seconds()); w > *down.StabilizationWindowSeconds {
			down.StabilizationWindowSeconds = &w
			b := *spec.Behavior
			b.ScaleDown = &down
			spec.Behavior = &b
		}
	}
	return spec
}

// demandReading is the Demand metric's source and reading (nil when the spec has none or it was not read;
// a model has one Demand metric: config rejects a second metric of the same name).
func demandReading(spec Spec, obs Observation) (*DemandSource, *DemandReading) {
	for _, m := range spec.Metrics {
		if r := findReading(obs, m.Name()); m.Type == DemandMetric && m.Demand != nil && r != nil && r.Demand != nil {
			return m.Demand, r.Demand
		}
	}
	return nil, nil
}

// waitingRequests is the Demand metric's backlog reading, the requests waiting for a batch slot (0 without
// one).
func waitingRequests(spec Spec, obs Observation) float64 {
	if _, r := demandReading(spec, obs); r != nil && r.Backlog != nil {
		return *r.Backlog
	}
	return 0
}

func hasDemand(spec Spec) bool { return demandSource(spec) != nil }

// demandSource is the spec's Demand metric's source (nil without one).
func demandSource(spec Spec) *DemandSource {
	for _, m := range spec.Metrics {
		if m.Type == DemandMetric && m.Demand != nil {
			return m.Demand
		}
	}
	return nil
}

// keepAfterStop is how long capacity is kept after an abrupt stop of the load (see
// DemandSource.KeepAfterStop).
func (d *DemandSource) keepAfterStop() time.Duration {
	if d.KeepAfterStop == nil {
		return DefaultKeepAfterStop
	}
	return d.KeepAfterStop.D()
}
