package policy

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// State is what the HPA keeps in memory between evaluations, plus what our extensions need. The workflow
// keeps it and carries it across continue-as-new; it stays small because old entries are trimmed (the
// longest kept are the recommendations of one burst cycle, at most an hour of them, one a minute, while
// bursts recur or after a burst).
type State struct {
	// Recommendations are the unstabilized recommendations of recent evaluations.
	Recommendations []TimedRecommendation `json:"recommendations,omitempty"`
	// ScaleUpEvents and ScaleDownEvents are the changes made, for the rate policies.
	ScaleUpEvents   []ScaleEvent `json:"scaleUpEvents,omitempty"`
	ScaleDownEvents []ScaleEvent `json:"scaleDownEvents,omitempty"`
	// PanicUntil is when panic mode ends unless renewed.
	PanicUntil time.Time `json:"panicUntil,omitempty"`
	// LastActive is the last time the activation signal was above its threshold (scale to zero).
	LastActive time.Time `json:"lastActive,omitempty"`
	// Started is when the first evaluation ran.
	Started time.Time `json:"started,omitempty"`
	// Demand are a Demand metric's recent readings of busy slots (arrivals x service time), for its trend
	// (two lead times of them).
	Demand []TimedValue `json:"demand,omitempty"`
	// DemandMinutes are the Demand metric's busy slots a minute apart, the last reading of each minute, over
	// the last hour (riseSeen reads the rises over a lead time among them); LastDemandMinute is the minute of
	// the last one.
	DemandMinutes    []float64 `json:"demandMinutes,omitempty"`
	LastDemandMinute time.Time `json:"lastDemandMinute,omitzero"`
	// BurstStarts are the times of the last burst starts seen by a Demand metric (at most burstHistory).
	BurstStarts []time.Time `json:"burstStarts,omitempty"`
	// LastBacklog is the Demand metric's last backlog reading and the replicas ready then, for the
	// backlog's growth (see backlogRise).
	LastBacklog *BacklogReading `json:"lastBacklog,omitempty"`
	// Stop is the last abrupt stop of a Demand metric's load while its capacity is kept (see keepAfterStop).
	Stop *LoadStop `json:"stop,omitempty"`
}

// LoadStop is an abrupt stop of the load: the replicas there were before it, when it stopped, the lowest
// proposal for the demand seen since, and when the load came back (zero while it stays away).
type LoadStop struct {
	Replicas int32     `json:"replicas"`
	At       time.Time `json:"at"`
	Low      int32     `json:"low"`
	Returned time.Time `json:"returned,omitzero"`
}

// BacklogReading is a backlog read at a time, with the replicas ready then.
type BacklogReading struct {
	Waiting float64   `json:"waiting"`
	Ready   int32     `json:"ready"`
	Time    time.Time `json:"time"`
}

// backlogRise records a Demand metric's backlog and returns how fast it grew since the last reading, in
// requests per second: 0 when it did not grow, and when the growth does not measure the arrivals. That is
// when the replicas serving changed between the readings (replicas that just became ready take requests
// the backlog would have held; counted at full batches they would read as arrivals), or when the last
// reading is older than two evaluation intervals (a pause, a restart) or none is kept.
func (s *State) backlogRise(waiting float64, ready int32, now time.Time, interval time.Duration) float64 {
	last := s.LastBacklog
	s.LastBacklog = &BacklogReading{Waiting: waiting, Ready: ready, Time: now}
	if last == nil || last.Ready != ready {
		return 0
	}
	elapsed := now.Sub(last.Time)
	if elapsed <= 0 || (interval > 0 && elapsed > 2*interval) {
		return 0
	}
	return max(waiting-last.Waiting, 0) / elapsed.Seconds()
}

// TimedValue is a reading at a time.
type TimedValue struct {
	Value float64   `json:"value"`
	Time  time.Time `json:"time"`
}

// minTrendPoints is the fewest readings a trend is fitted on.
const minTrendPoints = 6

// busySlotsHeld is the highest busy slots the Demand metric's readings held since from (the last
// reading's at least, once demandTrend has kept it).
func (s State) busySlotsHeld(from time.Time) float64 {
	held := 0.0
	for _, v := range s.Demand {
		if !v.Time.Before(from) {
			held = max(held, v.Value)
		}
	}
	return held
}

// demandTrend records a Demand metric's busy slots (arrival rate x service time) and returns the rise
// expected over the horizon (the lead time and a little more: see projectionHorizon). Capacity ordered now
// serves a lead time from now; on a sustained ramp it must be sized for the demand then. The trend is the
// demand, not the arrival rate: when requests come faster but shorter (as on the Azure conversation trace)
// the slots they hold need not rise at all.
//
// It projects only a ramp the readings show beyond doubt: the least-squares slope over the last two lead
// times must be positive at 95% confidence, with the standard error widened for the readings'
// autocorrelation (a rate over a 1-minute window read every 15 s shares most of its samples with the
// previous reading, so n readings hold far fewer than n independent ones); and the readings must span at
// least a lead time, as a trend is not extrapolated past the time it was seen over. Nothing is projected in
// an autoscaler's first two lead times, before the window has filled: the conversation trace's arrivals
// more than double over its first four minutes (its first seconds are sparse) and then level off, and a
// slope fitted over those four minutes ordered twice the replicas for a lead time (4% of the hour's
// node-hours at 10x). A ramp under way as the autoscaler starts is met later (the hour-long daily cycle,
// which starts at its foot, lost 1 to 3 points). Then it projects the
// slope itself, the best estimate of the ramp: a ramp that is real but under-projected is served late (the
// last lead time's slope when that is steeper beyond doubt: the ramp is accelerating; the slope since the
// readings turned to a rise, when a fall or a flat stretch and a rise explain them far better than one
// line: see rampSinceTurn). Within two lead
// times of a burst start it projects nothing: a burst is a step, not a ramp, and extrapolating it would
// order capacity far past its level. Nor does it when a level shift explains the readings far better than
// the line (levelShiftExplains): a step too small to be taken for a burst, read through the arrivals'
// rate window, is a short ramp in the readings. When the load repeats (a season), the rise seen at the
// same point one period ago is forecast in the trend's place, or on a short cycle caps the projection
// (see season).
func (s *State) demandTrend(slots float64, now time.Time, lead, horizon, window time.Duration) (rise float64, unprojected string) {
	s.Demand = keepAfter(s.Demand, now.Add(-2*lead), func(v TimedValue) time.Time { return v.Time })
	if math.IsNaN(slots) || math.IsInf(slots, 0) {
		return 0, ""
	}
	s.Demand = append(s.Demand, TimedValue{Value: slots, Time: now})
	s.noteDemandMinute(slots, now)
	se, repeats := s.findSeason(lead)
	if repeats && se.forecasts(lead) {
		return se.forecast(s.DemandMinutes, horizon, slots)
	}
	if now.Sub(s.Demand[0].Time) < lead || s.Started.IsZero() || now.Sub(s.Started) < 2*lead {
		return 0, ""
	}
	slope, lower := fitSlope(s.Demand)
	turned, turnedOK := rampSinceTurn(s.Demand)
	if lower <= 0 && !turnedOK {
		return 0, ""
	}
	// The readings rise beyond doubt, and a step is not projected: its backlog is sized over the lead time
	// instead. The record says so, as an operator reading a rise with nothing projected asks why.
	if n := len(s.BurstStarts); n > 0 && now.Sub(s.BurstStarts[n-1]) < 2*lead {
		return 0, fmt.Sprintf("no rise projected: a burst began %s ago, a step, not a ramp", now.Sub(s.BurstStarts[n-1]).Round(time.Second))
	}
	if levelShiftExplains(s.Demand, window) {
		return 0, "no rise projected: a step read through the arrivals' rate window explains the readings, not a ramp"
	}
	// A ramp that accelerates (a daily cycle's foot) outruns the slope fitted over two lead times, which is
	// the slope of a lead time ago: the last lead time's own slope, when it is steeper beyond doubt (its
	// lower bound above that slope), is the better estimate of the rise to come. Merely steeper is not
	// enough: on a noisy ramp the last lead time's slope is steeper half the time, and projecting it would
	// order capacity the next reading gives back.
	if recent, recentLower := fitSlope(since(s.Demand, now.Add(-lead))); recentLower > slope {
		slope = recent
	}
	// A rise that began within the window (after a fall or a flat stretch) is steeper than the line through
	// both, and is its best estimate (see rampSinceTurn).
	why := ""
	if turnedOK && turned.slope > slope {
		slope = turned.slope
		why = fmt.Sprintf("the slope since the readings turned to a rise at %s", turned.at.UTC().Format(time.TimeOnly))
	}
	if repeats {
		if rise, capped := se.cap(s.DemandMinutes, slope*horizon.Seconds(), horizon, slots); capped != "" {
			return rise, capped
		}
	}
	return slope * horizon.Seconds(), why
}

// riseMemory is how long the rises of demand are remembered for the scale-in's headroom: as long as bursts
// a cycle apart are taken for a cycle (maxBurstCycle).
const riseMemory = maxBurstCycle

// noteDemandMinute keeps the last reading of each minute, over riseMemory (a level for each minute of it
// and the one before, so a rise that ended an hour ago is still seen). A minute without a reading (a
// skipped evaluation) repeats the one before; a reading older than the last minute kept (a clock set back)
// is ignored. The slice is always a new one: copies of a State (the workflow's, the decision's record)
// must not share an array one of them writes.
func (s *State) noteDemandMinute(slots float64, now time.Time) {
	// A hundredth of a slot is finer than any rise that matters, and keeps the hour short in every decision's
	// record (432.05, not 432.0499999999); a reading past 1e15 is not rounded, as x100 could overflow.
	if math.Abs(slots) < 1e15 {
		slots = math.Round(slots*100) / 100
	}
	minute := now.Truncate(time.Minute)
	n := len(s.DemandMinutes)
	switch {
	case n > 0 && minute.Before(s.LastDemandMinute):
		return
	case n > 0 && minute.Equal(s.LastDemandMinute):
		s.DemandMinutes = slices.Clone(s.DemandMinutes)
		s.DemandMinutes[n-1] = slots
	case n > 0 && minute.Sub(s.LastDemandMinute) <= riseMemory:
		levels := slices.Clone(s.DemandMinutes)
		for m := s.LastDemandMinute.Add(time.Minute); m.Before(minute); m = m.Add(time.Minute) {
			levels = append(levels, levels[len(levels)-1])
		}
		s.DemandMinutes = append(levels, slots)
	default:
		s.DemandMinutes = []float64{slots}
	}
	s.LastDemandMinute = minute
	if keep := int(riseMemory/time.Minute) + 1; len(s.DemandMinutes) > keep {
		s.DemandMinutes = slices.Clone(s.DemandMinutes[len(s.DemandMinutes)-keep:])
	}
}

// minRiseSamples is the fewest rises riseSeen reads a quantile from.
const minRiseSamples = 10

// riseQuantile is the share of the rises over a lead time that a scale-in keeps room for. The rises that
// come often are answered by headroom kept; the rarer ones by the trend, the hold and the SLO sizing, as a
// scale-out. Higher keeps one surge's (or a one-off step's) capacity for the whole hour: measured on the
// conversation trace, the synthetic shapes and a variant of the conversation trace with short,
// prefill-heavy requests, 0.9 loses nothing against 0.95 or 0.99 but on the step, where 0.95 pays 16% more
// node-hours for a quarter of a point.
//
// The rises are read over every window of a lead time that starts on a minute, so windows overlap and one
// step counts in a lead time's worth of them: with a 4-minute lead time, a lone step is above the quantile
// while its windows are more than a tenth of those seen, the first 40-odd minutes of history. A new
// autoscaler, knowing little, keeps room for a lone burst (and meets the next of a cycle); after a quiet
// hour one burst is not enough, and the second of a cycle is met by scaling out.
const riseQuantile = 0.9

// riseSeen reads the minute history for the scale-in's headroom. The rise is how far the demand went
// above a minute's level within the lead time after it (in whole minutes, rounded up), at the quantile of
// the remembered rises: the highest within the window, not its end, as a load that swings within a lead
// time comes back to its start by the window's end. The level is the highest of the last lead time's
// minutes: a reading in the trough of such a swing is not the load's level. Minutes is the history read;
// false before minRiseSamples rises were seen.
//
// It errs on the side of capacity, knowingly. On a swing the rise is read from troughs and added to a
// crest, so the headroom is the crest plus the swing's height; the consistent reading (the next window's
// highest over the last window's highest) was measured and lost the short, prefill-heavy requests (99.99%
// back to 93%). After a genuine fall the level keeps the last lead time's highest, so capacity goes up to
// a lead time later than the hold alone would let it (which matters only with a HoldFor shorter than a
// lead time). Minutes filled in for a skipped evaluation repeat the reading before them.
func (s State) riseSeen(lead time.Duration, quantile float64) (rise, level float64, minutes int, ok bool) {
	lag := leadMinutes(lead)
	n := len(s.DemandMinutes)
	if lead <= 0 || n-lag < minRiseSamples {
		return 0, 0, 0, false
	}
	rises := make([]float64, 0, n-lag)
	for i := lag; i < n; i++ {
		rises = append(rises, slices.Max(s.DemandMinutes[i-lag+1:i+1])-s.DemandMinutes[i-lag])
	}
	slices.Sort(rises)
	// The nearest rank: the least rise that at least a quantile share of the rises are at or below.
	rank := int(math.Ceil(quantile*float64(len(rises)))) - 1
	return max(rises[min(max(rank, 0), len(rises)-1)], 0), slices.Max(s.DemandMinutes[n-lag:]), n - 1, true
}

// leadMinutes is the lead time in whole minutes, rounded up (at least one): the minute levels' lag for a
// lead time.
func leadMinutes(lead time.Duration) int { return max(int(math.Ceil(lead.Minutes())), 1) }

// risingLookback is how far back, in lead times, a scale-in looks for a rising demand: twice the span of
// the scale-out's trend (two lead times), so a ramp too slow for that trend to see beyond doubt (a steady
// rise of a replica's worth every few lead times, lost in a minute's noise) still stops a scale-in.
// Measured with a 3m40s lead time over 10, 15, 20, 30 and 60 minutes on the synthetic shapes and the
// conversation traces: 10 misses most of the slow ramp; 15 (this) and 20 serve it, for fewer node-hours than
// without the guard; 30 and 60 keep a daily cycle's peak or a step's capacity longer (up to 5% more
// node-hours) for no gain.
const risingLookback = 4

// minuteTrend is the least-squares slope (busy slots per second) of the Demand metric's minute levels over
// the last span (rounded up to whole minutes; all of them while there are fewer), its 95% lower bound (see
// fitSlope; -Inf when too few to tell) and the minutes read. The minute levels are a minute's rate apart,
// so unlike the readings the scale-out's trend reads they share no samples.
func (s State) minuteTrend(span time.Duration) (slope, lower float64, minutes int) {
	n := len(s.DemandMinutes)
	minutes = min(n, int(math.Ceil(span.Minutes())))
	vs := make([]TimedValue, 0, minutes)
	for i := n - minutes; i < n; i++ {
		vs = append(vs, TimedValue{Value: s.DemandMinutes[i], Time: s.LastDemandMinute.Add(time.Duration(i-n+1) * time.Minute)})
	}
	slope, lower = fitSlope(vs)
	return slope, lower, minutes
}

// since is the readings at or after from (they are in time order).
func since(vs []TimedValue, from time.Time) []TimedValue {
	i := 0
	for i < len(vs) && vs[i].Time.Before(from) {
		i++
	}
	return vs[i:]
}

// fitSlope is the least-squares slope (per second) of the readings and the lower end of its 95% confidence
// interval, the standard error widened by (1+r)/(1-r) for the residuals' lag-1 autocorrelation r (the
// effective sample size of an AR(1) series); the bound is -Inf when the readings are too few to tell.
func fitSlope(vs []TimedValue) (slope, lower float64) {
	l, ok := fitLine(vs)
	if !ok {
		return 0, math.Inf(-1)
	}
	var sse, lagged, prev float64
	for i, v := range vs {
		e := v.Value - l.at(v.Time)
		sse += e * e
		if i > 0 {
			lagged += e * prev
		}
		prev = e
	}
	widen := 1.0
	if sse > 0 {
		r := min(max(lagged/sse, 0), maxAutocorrelation)
		widen = (1 + r) / (1 - r)
	}
	return l.slope, l.slope - 2*math.Sqrt(widen*sse/float64(len(vs)-2)/l.sxx)
}

// line is a least-squares line through readings: value = mean + slope x (seconds - meanSeconds), seconds
// counted from the first reading.
type line struct {
	first                  time.Time
	meanSeconds, mean, sxx float64
	slope                  float64
}

// fitLine fits a line to at least minTrendPoints readings that are not all at one time.
func fitLine(vs []TimedValue) (line, bool) {
	if len(vs) < minTrendPoints {
		return line{}, false
	}
	n := float64(len(vs))
	l := line{first: vs[0].Time}
	for _, v := range vs {
		l.meanSeconds += v.Time.Sub(l.first).Seconds()
		l.mean += v.Value
	}
	l.meanSeconds, l.mean = l.meanSeconds/n, l.mean/n
	var sxy float64
	for _, v := range vs {
		dx := v.Time.Sub(l.first).Seconds() - l.meanSeconds
		l.sxx += dx * dx
		sxy += dx * (v.Value - l.mean)
	}
	if l.sxx == 0 {
		return line{}, false
	}
	l.slope = sxy / l.sxx
	return l, true
}

func (l line) at(t time.Time) float64 {
	return l.mean + l.slope*(t.Sub(l.first).Seconds()-l.meanSeconds)
}

// levelShiftFit is how much of a line's squared error a level shift must leave, at most, to be taken for
// a step rather than a ramp. A rate over a window reads a step as a ramp of the window's length, and a
// line fitted over two lead times through it is steep beyond doubt: on a square wave of 10 and 20 req/s
// (7.5-minute halves) each rise was projected as a ramp for three minutes after the step, ordering 15
// replicas where 11 serve 20 req/s and holding them into the low half (24.3 node-hours, 85.1% met; 20.7
// and the same attainment when steps were not projected). On a noisy ramp both fits leave the noise, and
// the shift's error is not far below the line's; at a half, the slow ramp's noise was now and then taken
// for steps and its rise met late (98.7-98.8% met, against 99.1%).
const levelShiftFit = 0.3

// levelShiftExplains reports whether a shift from one level to another, read through a rate over window
// (the readings move from the first level to the second over the window after the shift), explains the
// readings with at most levelShiftFit of the squared error the least-squares line leaves. Every reading
// time but the first and last is tried as the shift's start.
func levelShiftExplains(vs []TimedValue, window time.Duration) bool {
	l, ok := fitLine(vs)
	if !ok || window <= 0 {
		return false
	}
	lineSSE := squaredError(vs, l.at)
	for _, start := range vs[1 : len(vs)-1] {
		// The share of the way from the first level to the second at t: 0 before the shift, 1 once the
		// window has passed it.
		shifted := func(t time.Time) float64 {
			return min(max(t.Sub(start.Time).Seconds()/window.Seconds(), 0), 1)
		}
		// Least squares for value = before x (1 - u) + after x u: the 2x2 normal equations.
		var s11, s12, s22, s1y, s2y float64
		for _, v := range vs {
			u := shifted(v.Time)
			s11 += (1 - u) * (1 - u)
			s12 += (1 - u) * u
			s22 += u * u
			s1y += (1 - u) * v.Value
			s2y += u * v.Value
		}
		det := s11*s22 - s12*s12
		if det == 0 {
			continue
		}
		before, after := (s1y*s22-s2y*s12)/det, (s2y*s11-s1y*s12)/det
		shiftSSE := squaredError(vs, func(t time.Time) float64 {
			u := shifted(t)
			return before*(1-u) + after*u
		})
		if shiftSSE < levelShiftFit*lineSSE {
			return true
		}
	}
	return false
}

// turnFit is how much of a line's squared error two lines split at one reading must leave, at most, to be
// taken for a turn to a rise (rampSinceTurn). Two lines have twice the parameters of one and the split is
// searched for, so noise alone leaves less than one line does, and more so on fewer readings: at 0.2 the
// conversation trace's jumps were taken for turns when the lead time, and with it the window, was shorter
// (1-2.6% more node-hours with nodes Ready in 60 s or on 8-GPU nodes); at 0.1 none was (0.4% more with the
// whole lead time at 2m10s), for the same gain on the sines; at 0.05 the sines lost most of it.
const turnFit = 0.1

// rampSinceTurn reports the slope of a rise that began within the readings, and when it began: split at
// some reading, a line before and a steeper one after explain the readings with at most turnFit of one
// line's squared error, the later line (at least minTrendPoints readings) rises beyond doubt, and the
// readings are now above every level they held before the turn. One line through a fall or a flat stretch
// and the rise after it is flatter than the rise, and not beyond doubt until the rise is well under way: on
// a sine of 10 +- 8 req/s every 30 minutes each rise from a trough was ordered three minutes after it
// showed, a lead time late (92.9% met; 96.7% with the turn's slope, for the same node-hours; over three
// other seeds 0-4.9 points more), and a sine of 20 minutes on a slow rise met 95.4% (96.5%). On the
// conversation trace at every rate one line explains the readings about as well as two, and nothing
// changed. A step read through the rate window is a turn too, for the window's length: when a level shift
// explains the readings the caller projects nothing, as before (taking the turn for a ramp when it explains
// them better still met a square wave of 40 minutes at 80% instead of 74%, for 20% more node-hours).
func rampSinceTurn(vs []TimedValue) (turn, bool) {
	l, fits := fitLine(vs)
	if !fits {
		return turn{}, false
	}
	// The split that explains the readings best is where the rise began.
	bestSSE, split := turnFit*squaredError(vs, l.at), 0
	for k := minTrendPoints; k+minTrendPoints <= len(vs); k++ {
		before, after := vs[:k], vs[k:]
		lb, fitsBefore := fitLine(before)
		la, fitsAfter := fitLine(after)
		if !fitsBefore || !fitsAfter || la.slope <= lb.slope {
			continue
		}
		if sse := squaredError(before, lb.at) + squaredError(after, la.at); sse < bestSSE {
			bestSSE, split = sse, k
		}
	}
	if split == 0 {
		return turn{}, false
	}
	// A rise back to a level the readings held before the turn is a swing, not yet a new rise: a flat
	// load's rate wanders up and down by a tenth over minutes, and two lines fit each rise from a trough.
	top := math.Inf(-1)
	for _, v := range vs[:split] {
		top = max(top, v.Value)
	}
	if vs[len(vs)-1].Value <= top {
		return turn{}, false
	}
	slope, lower := fitSlope(vs[split:])
	return turn{slope: slope, at: vs[split].Time}, lower > 0
}

// turn is a rise that began within the readings: its slope (per second) and when it began.
type turn struct {
	slope float64
	at    time.Time
}

// squaredError is the sum of the squared differences between the readings and a fit.
func squaredError(vs []TimedValue, fit func(time.Time) float64) float64 {
	var sse float64
	for _, v := range vs {
		e := v.Value - fit(v.Time)
		sse += e * e
	}
	return sse
}

// maxAutocorrelation caps the estimated autocorrelation: near 1 the widening would grow without bound on a
// handful of readings.
const maxAutocorrelation = 0.9

// Burst detection for Demand metrics: a burst starts when the proposal for the demand seen (without its
// projection) reaches burstRatio times the lowest of the last quarter of a lead time; bursts that recur
// within maxBurstCycle are forecast (cycleForecast). A burst is a step, too fast for a trend to follow (a
// one-minute rate reading spreads a step over about a minute); demand that doubles over a whole lead time is
// a steep ramp, and its trend is projected.
const (
	burstRatio    = 2
	maxBurstCycle = time.Hour
	// minBurstStep: a burst adds at least two replicas. One replica to two is the noise of a small
	// deployment, and taken for bursts a cycle apart it would set the forecast in the place of the hold and
	// of the scale-in's headroom.
	minBurstStep = 2
	// burstHistory is how many burst starts are kept: their four gaps tell a cycle from bursts that come
	// at irregular times (see burstCycle.regular).
	burstHistory = 5
)

// noteBurst records a burst start when the proposal crosses burstRatio times the lowest recommendation of
// the last quarter of a lead time, from the autoscaler's second lead time on.
func (s *State) noteBurst(proposal int32, now time.Time, lead time.Duration) {
	// Not in an autoscaler's first lead time: with the service just started, its first rates read a
	// window of few requests, and their climb to the load's level was taken for a burst, whose start then
	// hid the first real burst (one burst is one start, below) and set a cycle off by minutes: on bursts
	// every 12 to 18 minutes, two were met unprepared (70% of requests in time; 84% since).
	if s.Started.IsZero() || now.Sub(s.Started) < lead {
		return
	}
	low, prev, seen := proposal, int32(0), false
	for _, r := range s.Recommendations {
		if r.Time.After(now.Add(-lead / 4)) {
			low, prev, seen = min(low, r.Replicas), r.Replicas, true
		}
	}
	// One burst is one start: a ramp that crosses the ratio again within two lead times (a first step, then
	// the rest) would otherwise be taken for a cycle of a minute.
	if n := len(s.BurstStarts); n > 0 && now.Sub(s.BurstStarts[n-1]) < 2*lead {
		return
	}
	if seen && low > 0 && proposal >= burstRatio*low && proposal-low >= minBurstStep && prev < burstRatio*low {
		s.BurstStarts = append(s.BurstStarts, now)
		if len(s.BurstStarts) > burstHistory {
			s.BurstStarts = slices.Clone(s.BurstStarts[len(s.BurstStarts)-burstHistory:])
		}
	}
}

// keepAfterStop notes an abrupt stop of the load and returns the replicas to keep for its return (0: none).
// A stop is a burst in reverse: the proposal for the demand seen falls to 1/burstRatio or less of the
// highest of the last quarter of a lead time, by at least minBurstStep (a decline over minutes, a night's,
// is not one), after a load that lasted longer than the hold (a shorter burst's end is the burst cycle's).
// An outage upstream, a paused client or a failover ends as abruptly, and the load then queues on the
// replicas left, each its own queue that capacity arriving a lead time later cannot take over: the
// conversation trace at 10x with a 10-minute outage met 86.61% of its requests, scaled in through the
// outage, for 33.75 node-hours (the return's backlog ordered capacity it then held); 99.84% for 28.47 with
// the deployment kept as it was (its count, with the room for rises it kept: kept at the demand's need
// alone, 99.56% for 27.93, but a retry surge after an outage met a scale-in, 95.0% against 96.6%, and a
// mix of answers that lengthen every other half hour 90.4% against 95.3%). The stop is kept until the
// load comes back (the proposal for the demand seen minBurstStep above its lowest since the stop), and a
// rate window after that, when the return's own readings are in the scale-down window (let go at the
// return, the readings still climbing through the rate's window, it scaled in as the load came back), or
// until keepFor has passed. A load that comes back as a ramp lets it go as the ramp begins, as the trend
// orders a ramp's capacity (kept until the ramp reached half the stop's count, the sawtooth's peaks were
// kept through each drop: 12% more node-hours for 0.4 points).
//
// keepFor is a trade: the capacity of a load that ended for good is paid for that long. Measured with 15,
// 30 and 60 minutes (DefaultKeepAfterStop is 30): a load that stops for good after 40 minutes costs 13%,
// 38% and 91% more node-hours (the HPA with the Cluster Autoscaler, whose nodes go 15 minutes after,
// costs what 30 minutes does); gaps of 10 and 15 minutes in a load of 12 req/s meet 99.9% at every length
// (90.07% before), quiet spells of 25 minutes at 1 req/s 74.8%, 91.3% and 91.3% (74.5%), and a 40-minute
// gap 93.8% until 60 minutes (99.66%; at 30 it pays 19% more node-hours for nothing).
func (s *State) keepAfterStop(seen, current int32, now time.Time, lead, window, keepFor time.Duration) int32 {
	if keepFor <= 0 {
		s.Stop = nil
		return 0
	}
	// Not in an autoscaler's first lead time: its first recommendation is the running count, and the first
	// rates read a window of few requests.
	if !s.Started.IsZero() && now.Sub(s.Started) >= lead {
		high := int32(0)
		for _, r := range s.Recommendations {
			if r.Time.After(now.Add(-lead / 4)) {
				high = max(high, r.Replicas)
			}
		}
		stopped := seen*burstRatio <= high && high-seen >= minBurstStep
		// The end of a burst shorter than the hold (twice the lead time) is not a load that stopped: the hold
		// and the burst cycle keep a burst's capacity (kept 30 minutes, bursts 30-50 minutes apart paid 29%
		// more node-hours for nothing).
		if n := len(s.BurstStarts); n > 0 && now.Sub(s.BurstStarts[n-1]) < 2*lead {
			stopped = false
		}
		// The deployment as it was: the count then (with the room for rises it kept), or the demand's own
		// need if more (a scale-out under way).
		if keep := max(high, current); stopped && (s.Stop == nil || !s.Stop.Returned.IsZero() || s.Stop.Replicas < keep) {
			s.Stop = &LoadStop{Replicas: keep, At: now, Low: seen}
		}
	}
	stop := s.Stop
	if stop == nil {
		return 0
	}
	if now.Sub(stop.At) > keepFor || (!stop.Returned.IsZero() && now.Sub(stop.Returned) > window) {
		s.Stop = nil
		return 0
	}
	// A new LoadStop, not the one a copy of the State (the workflow's record) may share.
	if stop.Returned.IsZero() {
		if seen >= stop.Low+minBurstStep {
			s.Stop = &LoadStop{Replicas: stop.Replicas, At: stop.At, Low: stop.Low, Returned: now}
		} else if seen < stop.Low {
			s.Stop = &LoadStop{Replicas: stop.Replicas, At: stop.At, Low: seen}
		}
	}
	return stop.Replicas
}

// describe says what the stop keeps and until when, for the decision's record.
func (l LoadStop) describe(keepFor, window time.Duration) string {
	text := fmt.Sprintf("the load stopped abruptly at %s (the demand seen fell to half or less within a quarter of a lead time): "+
		"the %d replicas it had before are kept for its return", l.At.UTC().Format(time.TimeOnly), l.Replicas)
	if l.Returned.IsZero() {
		return text + fmt.Sprintf(" until %s (keepAfterStop %s)", l.At.Add(keepFor).UTC().Format(time.TimeOnly), keepFor)
	}
	return text + fmt.Sprintf("; it returned at %s, and they are kept until its readings fill the rate window (%s)",
		l.Returned.UTC().Format(time.TimeOnly), l.Returned.Add(window).UTC().Format(time.TimeOnly))
}

// burstCycle is what the recent burst starts tell of their recurrence: the shortest and the longest of the
// gaps between consecutive starts (zero when bursts do not recur), over how many gaps; and the oldest of
// those starts within maxBurstCycle (the last one when none is).
type burstCycle struct {
	shortest, longest time.Duration
	gaps              int
	firstInTheHour    time.Time
}

// cycle reads the burst cycle from the starts kept: the gaps back from the last start, up to the first
// longer than maxBurstCycle. Bursts that stopped recurring (none for two longest gaps) make no cycle.
func (s State) cycle(now time.Time) burstCycle {
	var c burstCycle
	n := len(s.BurstStarts)
	if n > 0 {
		c.firstInTheHour = s.BurstStarts[n-1]
	}
	for i := n - 1; i > 0; i-- {
		gap := s.BurstStarts[i].Sub(s.BurstStarts[i-1])
		if gap <= 0 || gap > maxBurstCycle {
			break
		}
		if c.gaps == 0 || gap < c.shortest {
			c.shortest = gap
		}
		c.longest = max(c.longest, gap)
		c.gaps++
		if now.Sub(s.BurstStarts[i-1]) < maxBurstCycle {
			c.firstInTheHour = s.BurstStarts[i-1]
		}
	}
	if c.gaps == 0 || now.Sub(s.BurstStarts[n-1]) > 2*c.longest {
		return burstCycle{}
	}
	return c
}

func (c burstCycle) known() bool { return c.gaps > 0 }

// spread is how far the gaps differ: how early or late the next burst may come.
func (c burstCycle) spread() time.Duration { return c.longest - c.shortest }

// regular says the cycle's forecast can take the place of the scale-in's holds: at least two gaps, within
// half a lead time of each other (the spare the forecast's window keeps for a start seen an evaluation or
// two late). One gap cannot tell a cycle from two bursts that happened to come twice, and bursts at
// irregular times are met only by the capacity kept between them (they are as short as the lead time, or
// shorter): when a second burst's gap alone made the cycle, bursts 10 to 20 minutes apart met 47-75% of
// their requests, the capacity let go between them; 74-84% with the holds kept until the gaps agree (three
// seeds), for 3-4% more node-hours on bursts that do come every 20 minutes, held one cycle longer.
func (c burstCycle) regular(lead time.Duration) bool { return c.gaps >= 2 && c.spread() <= lead/2 }

func (c burstCycle) String() string {
	if c.spread() == 0 {
		return "every " + c.shortest.Round(time.Second).String()
	}
	return fmt.Sprintf("every %s to %s", c.shortest.Round(time.Second), c.longest.Round(time.Second))
}

// forecastWindow is the span of recommendations a burst cycle's forecast reads (zero times without a
// cycle): the demand seen then, not a projection, is what the next burst asks for. Capacity ordered now
// serves a lead time from now, so a burst that recurs is met by capacity ordered for it ahead of time.
//
// On a regular cycle the window runs from one longest gap ago to one shortest gap ago plus cycleAhead and
// the gaps' spread: capacity is ordered as early as the shortest gap (less the spread again: four gaps
// are a small sample of the cycle's jitter), kept until the longest has passed, and goes between bursts
// (where holding it through the whole cycle would cost as much as a static size).
//
// At irregular times (the gaps disagree, or there is one) the next burst may come as soon as any gap seen
// and be as high as any burst seen: the window reaches back to the oldest burst that began in the last
// hour, a minute before its start (older recommendations are kept one a minute, at the minute's first
// time), and keeps the highest of them, as a static size would. Bursts of 20 to 30 req/s at random times
// 10 to 20 minutes apart met 74-84% of their requests with the last burst's capacity kept (three seeds),
// 82-92% with the highest's, for 0-4% more node-hours; the first burst, which no reactive policy meets, is
// 8% of them.
func (c burstCycle) forecastWindow(now time.Time, lead time.Duration) (from, to time.Time) {
	if !c.known() {
		return time.Time{}, time.Time{}
	}
	to = now.Add(-c.shortest + cycleAhead(lead) + c.spread())
	if c.regular(lead) {
		return now.Add(-c.longest), to
	}
	return c.firstInTheHour.Add(-time.Minute), to
}

// cycleForecast is the seasonal forecast of a burst cycle: the highest recommendation for the arrivals
// alone within its forecastWindow, after from.
func (s State) cycleForecast(from, to time.Time) int32 {
	var want int32
	for _, r := range s.Recommendations {
		// After `from`, as trim keeps them: a recommendation exactly one cycle old is already gone.
		if r.Time.After(from) && !r.Time.After(to) {
			want = max(want, r.arrivalsAlone())
		}
	}
	return want
}

// cycleAhead is how far ahead a burst cycle's forecast looks: the lead time, and half of it again to spare
// for the cycle's jitter (burst starts are seen to an evaluation or two).
func cycleAhead(lead time.Duration) time.Duration { return lead * 3 / 2 }

// TimedRecommendation is one evaluation's recommendation: for the demand seen, and with a Demand metric's
// projected rise when that differs.
type TimedRecommendation struct {
	Replicas  int32 `json:"replicas"`
	Projected int32 `json:"projected,omitempty"`
	// Forecastable is the recommendation for a Demand metric's arrivals alone, when a backlog to drain made
	// Replicas higher. The scale-down window holds it, not Replicas: capacity that drains a backlog is
	// needed while there is one, and each evaluation reads the backlog then (held, a step's drain kept its
	// replicas a window after the backlog had gone). And a burst served late leaves a backlog, and the next
	// burst, met by capacity ordered ahead of it, needs none of the replicas that drained it.
	Forecastable *int32    `json:"forecastable,omitempty"`
	Time         time.Time `json:"time"`
}

// arrivalsAlone is the recommendation without a backlog to drain: what the scale-down window holds, and
// what a burst cycle's forecast asks of the same time one cycle later.
func (r TimedRecommendation) arrivalsAlone() int32 {
	if r.Forecastable != nil {
		return *r.Forecastable
	}
	return r.Replicas
}

// ScaleEvent is one change of the replica count.
type ScaleEvent struct {
	Change int32     `json:"change"`
	Time   time.Time `json:"time"`
}

// RecordScale notes a change of the replica count that was carried out, for the rate policies (the HPA's
// storeScaleEvent, which runs only after a successful rescale).
func (s *State) RecordScale(from, to int32, now time.Time) {
	switch {
	case to > from:
		s.ScaleUpEvents = append(s.ScaleUpEvents, ScaleEvent{Change: to - from, Time: now})
	case to < from:
		s.ScaleDownEvents = append(s.ScaleDownEvents, ScaleEvent{Change: from - to, Time: now})
	}
}

// trim drops what no window or policy period can reach any more.
func (s *State) trim(spec Spec, now time.Time, forecastFrom time.Time) {
	b := spec.Behavior
	window := time.Duration(max(*b.ScaleUp.StabilizationWindowSeconds, *b.ScaleDown.StabilizationWindowSeconds)) * time.Second
	// A burst cycle's forecast reads the recommendations from forecastFrom on (one longest gap ago, or the
	// oldest burst of the last hour: see burstCycle.forecastWindow). After a burst, those from its start on
	// are kept for as long as a cycle can be (maxBurstCycle), so the forecast can speak at the next burst, the
	// one that makes the cycle known (when they went, the second burst found no forecast, and the holds it
	// replaces were off: the second burst of 4 -> 28 req/s every 20 minutes was scaled in as it rose).
	keep := window
	if !forecastFrom.IsZero() {
		keep = max(keep, now.Sub(forecastFrom))
	}
	if n := len(s.BurstStarts); n > 0 && now.Sub(s.BurstStarts[n-1]) < maxBurstCycle {
		keep = max(keep, now.Sub(s.BurstStarts[n-1]))
	}
	s.Recommendations = keepAfter(s.Recommendations, now.Add(-keep), func(r TimedRecommendation) time.Time { return r.Time })
	s.Recommendations = compactBefore(s.Recommendations, now.Add(-window))
	// Each direction's rate policies read both directions' events over their periods (the replicas at a
	// period's start undo the changes since in both): both are kept over the longest period of either.
	events := max(longestPeriod(b.ScaleUp), longestPeriod(b.ScaleDown))
	s.ScaleUpEvents = keepAfter(s.ScaleUpEvents, now.Add(-events), func(e ScaleEvent) time.Time { return e.Time })
	s.ScaleDownEvents = keepAfter(s.ScaleDownEvents, now.Add(-events), func(e ScaleEvent) time.Time { return e.Time })
}

// compactBefore keeps one recommendation a minute, the highest at the minute's first time, of those at or
// before cutoff. Older than the stabilization windows, recommendations serve only the burst cycle's
// forecast, the highest over a lead time and a half one cycle ago, where a minute's highest is as good; an
// hour of them is then 60 entries, not 240, in the state every evaluation records.
func compactBefore(recs []TimedRecommendation, cutoff time.Time) []TimedRecommendation {
	n := 0
	for n < len(recs) && !recs[n].Time.After(cutoff) {
		n++
	}
	if n < 2 {
		return recs
	}
	out := make([]TimedRecommendation, 0, len(recs))
	for _, r := range recs[:n] {
		r.Projected = 0 // a projection is held for a lead time only, within the windows
		if last := len(out) - 1; last >= 0 && out[last].Time.Truncate(time.Minute).Equal(r.Time.Truncate(time.Minute)) {
			// At the minute's first time: the forecast then sees a burst start early rather than late.
			forecast := max(out[last].arrivalsAlone(), r.arrivalsAlone())
			out[last].Replicas = max(out[last].Replicas, r.Replicas)
			out[last].Forecastable = nil
			if forecast < out[last].Replicas {
				out[last].Forecastable = &forecast
			}
			continue
		}
		out = append(out, r)
	}
	return append(out, recs[n:]...)
}

func keepAfter[T any](items []T, cutoff time.Time, at func(T) time.Time) []T {
	out := items[:0:0]
	for _, it := range items {
		if at(it).After(cutoff) {
			out = append(out, it)
		}
	}
	return out
}

func longestPeriod(r *ScalingRules) time.Duration {
	var p int32
	for _, pol := range r.Policies {
		p = max(p, pol.PeriodSeconds)
	}
	return time.Duration(p) * time.Second
}

// stabilize is stabilizeRecommendationWithBehaviors: within the scale-up window take the lowest recent
// recommendation, within the scale-down window the highest, and bring the current count between them. It
// records the new (unstabilized) recommendation.
//
// For a Demand metric's projected rise it records both the recommendation for the demand seen and the
// projected one. The window holds the demand seen (the arrivals, not a backlog's drain, which the current
// evaluation sizes while there is a backlog); a projection is held only for projectionHold (the lead
// time), until the time it was made for: capacity ordered for a ramp is not given back before it serves
// (nor on every dip of a noisy ramp's slope), and capacity ordered for a ramp that then stopped is not kept
// through the whole window.
func (s *State) stabilize(spec Spec, current, desired, seen, forecastable int32, projectionHold time.Duration, now time.Time) (int32, Limit) {
	b := spec.Behavior
	if s.Started.IsZero() {
		// A new autoscaler knows nothing of the load before it started: it treats the running count as its
		// own recent recommendation, so it does not scale down before a full window of evidence. (The HPA
		// scales down at once after a controller restart, a known surprise; this is where we differ.)
		s.Started = now
		s.Recommendations = append(s.Recommendations, TimedRecommendation{Replicas: current, Time: now})
	}
	upWindow := time.Duration(*b.ScaleUp.StabilizationWindowSeconds) * time.Second
	downWindow := time.Duration(*b.ScaleDown.StabilizationWindowSeconds) * time.Second
	upCutoff, downCutoff, projectionCutoff := now.Add(-upWindow), now.Add(-downWindow), now.Add(-projectionHold)
	upRec, downRec := desired, desired
	for _, r := range s.Recommendations {
		if r.Time.After(upCutoff) {
			upRec = min(upRec, r.Replicas)
		}
		if r.Time.After(downCutoff) {
			downRec = max(downRec, r.arrivalsAlone())
		}
		if r.Time.After(projectionCutoff) {
			downRec = max(downRec, r.Projected)
		}
	}
	rec := current
	if rec < upRec {
		rec = upRec
	}
	if rec > downRec {
		rec = downRec
	}
	r := TimedRecommendation{Replicas: seen, Time: now}
	if desired != seen {
		r.Projected = desired
	}
	if forecastable < seen {
		r.Forecastable = &forecastable
	}
	s.Recommendations = append(s.Recommendations, r)
	var l Limit
	if rec != desired {
		if desired >= current {
			l = Limit{Kind: LimitStabilization, From: desired, To: rec,
				Detail: fmt.Sprintf("scale-up stabilization window %s: lowest recent recommendation is %d", upWindow, rec)}
		} else {
			l = Limit{Kind: LimitStabilization, From: desired, To: rec,
				Detail: fmt.Sprintf("scale-down stabilization window %s: highest recent recommendation is %d", downWindow, rec)}
		}
	}
	return rec, l
}

// applyRateAndBounds is convertDesiredReplicasWithBehaviorRate: the rate policies of the direction, then
// min/max replicas.
func (s *State) applyRateAndBounds(spec Spec, current, desired, minReplicas int32, now time.Time, skipUpPolicies bool) (int32, Limit) {
	b := spec.Behavior
	switch {
	case desired > current:
		upper := spec.MaxReplicas
		kind, detail := LimitMaxReplicas, fmt.Sprintf("maxReplicas %d", spec.MaxReplicas)
		if !skipUpPolicies {
			limit, desc := scaleUpLimit(current, s.ScaleUpEvents, s.ScaleDownEvents, b.ScaleUp, now)
			if limit < current {
				limit = current
			}
			if upper > limit {
				upper, kind, detail = limit, LimitScaleUpPolicy, "scale-up policy "+desc
			}
		}
		if desired > upper {
			return upper, Limit{Kind: kind, From: desired, To: upper, Detail: detail}
		}
	case desired < current:
		limit, desc := scaleDownLimit(current, s.ScaleUpEvents, s.ScaleDownEvents, b.ScaleDown, now)
		if limit > current {
			limit = current
		}
		lower := minReplicas
		kind, detail := LimitMinReplicas, fmt.Sprintf("minReplicas %d", minReplicas)
		if lower < limit {
			lower, kind, detail = limit, LimitScaleDownPolicy, "scale-down policy "+desc
		}
		if desired < lower {
			return lower, Limit{Kind: kind, From: desired, To: lower, Detail: detail}
		}
	}
	return desired, Limit{}
}

func changeInPeriod(periodSeconds int32, events []ScaleEvent, now time.Time) int32 {
	cutoff := now.Add(-time.Duration(periodSeconds) * time.Second)
	var n int32
	for _, e := range events {
		if e.Time.After(cutoff) {
			n += e.Change
		}
	}
	return n
}

// scaleUpLimit is calculateScaleUpLimitWithScalingRules; it also describes the policy that set the limit.
func scaleUpLimit(current int32, up, down []ScaleEvent, rules *ScalingRules, now time.Time) (int32, string) {
	sel := *rules.SelectPolicy
	if sel == SelectDisabled {
		return current, "Disabled"
	}
	result, pick := int32(math.MinInt32), func(a, b int32) bool { return b > a }
	if sel == SelectMin {
		result, pick = math.MaxInt32, func(a, b int32) bool { return b < a }
	}
	var desc string
	for _, pol := range rules.Policies {
		start := current - changeInPeriod(pol.PeriodSeconds, up, now) + changeInPeriod(pol.PeriodSeconds, down, now)
		var proposed int32
		switch pol.Type {
		case PodsPolicy:
			proposed = clamp32(int64(start) + int64(pol.Value))
		case PercentPolicy:
			// Rounded up, or a small count could never grow.
			proposed = ceilReplicas(float64(start) * (1 + float64(pol.Value)/100))
		}
		if pick(result, proposed) {
			result, desc = proposed, policyText(pol, start)
		}
	}
	return result, desc
}

// scaleDownLimit is calculateScaleDownLimitWithBehaviors.
func scaleDownLimit(current int32, up, down []ScaleEvent, rules *ScalingRules, now time.Time) (int32, string) {
	sel := *rules.SelectPolicy
	if sel == SelectDisabled {
		return current, "Disabled"
	}
	result, pick := int32(math.MaxInt32), func(a, b int32) bool { return b < a }
	if sel == SelectMin {
		result, pick = math.MinInt32, func(a, b int32) bool { return b > a }
	}
	var desc string
	for _, pol := range rules.Policies {
		start := current - changeInPeriod(pol.PeriodSeconds, up, now) + changeInPeriod(pol.PeriodSeconds, down, now)
		var proposed int32
		switch pol.Type {
		case PodsPolicy:
			proposed = clamp32(int64(start) - int64(pol.Value))
		case PercentPolicy:
			proposed = clamp32(int64(float64(start) * (1 - float64(pol.Value)/100)))
		}
		if pick(result, proposed) {
			result, desc = proposed, policyText(pol, start)
		}
	}
	return result, desc
}

func policyText(p ScalingPolicy, start int32) string {
	unit := " pods"
	if p.Type == PercentPolicy {
		unit = "%"
	}
	return fmt.Sprintf("%d%s per %ds (from %d at the period's start)", p.Value, unit, p.PeriodSeconds, start)
}

func clamp32(v int64) int32 {
	return int32(min(max(v, math.MinInt32), math.MaxInt32))
}
