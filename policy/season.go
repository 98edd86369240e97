package policy

import (
	"fmt"
	"math"
	"time"
)

// A season is a repeating pattern in the Demand metric's minute levels (DemandMinutes, the last hour).
// When the load repeats, the same point of the last period is a better forecast of the next lead time than
// a trend fitted over the last two:
//   - a cycle long enough to follow (seasonCycles lead times and more) has its rise forecast from the
//     last period's, in the trend's place: capacity is ordered a lead time before the rise, not a lead
//     time after the trend sees it. A sine of 10 +- 8 req/s every 30 minutes met 91% (each rise from a
//     trough was fitted with the flat part before it and projected late), 93% with the forecast (from its
//     third cycle: a period is known once the hour's minutes hold two), for 3.5% fewer node-hours;
//   - a shorter cycle only vetoes a projected rise the last period did not see (season.cap): a trend
//     follower projects a sawtooth's ramp past its drop, and the capacity ordered at the top serves the
//     trough after it (5 to 25 req/s every 10 minutes: 26% more node-hours than the cheapest static size,
//     16% with the veto, for the same requests served late). Forecasting such a cycle's rises orders
//     capacity that is never given back: spikes every 7 minutes cost 6% more than without, 3.5% more than
//     the static size, for a tenth of a point.
type season struct {
	period int // minutes
	// seasonalError and persistenceError are the mean absolute errors, in busy slots, over the minutes that
	// have one a period before them, of forecasting each by the minute one period before and by the minute
	// a lead time before.
	seasonalError, persistenceError float64
	// judged is how many minutes the errors are over.
	judged int
}

const (
	// seasonSkill is how many times smaller a season's error must be than the level's: a season that
	// merely matches it is noise, fitted by choosing the best of the periods tried.
	seasonSkill = 2
	// seasonMultiple: the shortest period whose error is within this factor of the best one's is the
	// season's. A multiple of the period repeats as well, and the noise picks among them (spikes every 7
	// minutes were best fitted by 21), but only the period itself tells how soon capacity can be given back.
	seasonMultiple = 1.5
	// seasonCycles is the shortest cycle, in lead times, whose rises are forecast: one to order capacity
	// ahead of a rise, two to hold it (the Demand hold), one to give it back before the next.
	seasonCycles = 4
)

// findSeason looks for the period of the minute levels among the periods from a lead time and a minute
// (a lag within the lead time is no test: on any smooth load it beats the level a lead time back) to half
// the history: the shortest whose seasonal naive forecast (the level one period before) erred within
// seasonMultiple of the least error, kept when the least beat persistence (the level a lead time before,
// what a reactive policy has) seasonSkill-fold. Both are judged on every minute of the history a period
// back can forecast: judged on the last period's minutes only, an 8-minute period of short,
// prefill-heavy requests beat persistence by chance on its eight and vetoed the projection of a real rise
// for three minutes before a surge (99.05% of them met, 100% since), and bursts that ramp, taken for
// short seasons now and then, met 76.7% (81.7% since). On a load without a repeating shape (the
// conversation trace, a flat Poisson load) a period back forecasts worse than a lead time back, and on a
// smooth ramp or a daily cycle's hour so does every period of the hour. The seasonal forecast is not
// level-adjusted here: adjusted (plus the change over the lead time one period before) it is a lagged
// trend, which beats persistence on any smooth curve, and it took a daily cycle's foot for a season and
// capped its accelerating ramp.
func (s State) findSeason(lead time.Duration) (season, bool) {
	h := leadMinutes(lead)
	// Complete minutes only: the last level is the current minute's reading so far, at another phase of
	// the load than the minutes a period before it.
	m := s.DemandMinutes[:max(len(s.DemandMinutes)-1, 0)]
	n := len(m)
	var found []season
	best := -1
	for p := h + 1; 2*p <= n; p++ {
		se := season{period: p, judged: n - p}
		// Every minute a period back can forecast, not only the last period's: judged on the last p
		// minutes, a short period's few minutes can beat persistence by chance, and the best of the
		// twenty-odd periods tried often does.
		for i := p; i < n; i++ {
			se.seasonalError += math.Abs(m[i] - m[i-p])
			se.persistenceError += math.Abs(m[i] - m[i-h])
		}
		se.seasonalError /= float64(n - p)
		se.persistenceError /= float64(n - p)
		if best < 0 || se.seasonalError < found[best].seasonalError {
			best = len(found)
		}
		found = append(found, se)
	}
	if best < 0 || found[best].seasonalError*seasonSkill >= found[best].persistenceError {
		return season{}, false
	}
	for _, se := range found {
		if se.seasonalError <= seasonMultiple*found[best].seasonalError {
			return se, true
		}
	}
	return found[best], true
}

// forecasts says whether the season's rises are forecast (a cycle of seasonCycles lead times or more)
// rather than only capping the trend's.
func (s season) forecasts(lead time.Duration) bool { return s.period >= seasonCycles*leadMinutes(lead) }

// rise is how far the minute levels went above the level of one period ago within the next minutes after
// it (zero or below when they did not rise).
func (s season) rise(levels []float64, minutes int) float64 {
	from := len(levels) - 1 - s.period
	top := math.Inf(-1)
	for k := 1; k <= minutes && from+k < len(levels); k++ {
		top = max(top, levels[from+k])
	}
	return top - levels[from]
}

// ahead is the rise the season saw over the horizon's minutes (rounded up) one period ago, ending at the
// level it reached then: a load repeats at about its period, not to the minute, and a rise that came early
// this period, or a reading that lags a drop (a rate over its window), is not a base to add it to again.
// The account says what the season saw, to follow "one period ago" or "then" in the record.
func (s season) ahead(levels []float64, horizon time.Duration, now float64) (rise float64, account string) {
	minutes := int(math.Ceil(horizon.Minutes()))
	seen := s.rise(levels, minutes)
	top := levels[len(levels)-1-s.period] + seen
	rise = min(seen, top-now)
	switch {
	case seen <= 0:
		return 0, fmt.Sprintf("it did not rise over the next %d minutes", minutes)
	case rise <= 0:
		return 0, fmt.Sprintf("it rose to %s busy slots over the next %d minutes, which the reading now has reached", formatNumber(top), minutes)
	case rise < seen:
		return rise, fmt.Sprintf("it rose to %s busy slots over the next %d minutes, %s above the reading now", formatNumber(top), minutes, formatNumber(rise))
	}
	return rise, fmt.Sprintf("it rose %s busy slots over the next %d minutes", formatNumber(rise), minutes)
}

// why is the record's account of the season.
func (s season) why() string {
	return fmt.Sprintf("the load repeats every %d minutes (one period back forecast the last %d minutes within %s busy slots, "+
		"a lead time back within %s)", s.period, s.judged, formatNumber(s.seasonalError), formatNumber(s.persistenceError))
}

// forecast is the rise over the horizon's minutes (rounded up) that the season saw at the same point one
// period ago, ending at the level it reached (ahead), and the record's account of it. Added to the
// reading whatever it was, bursts at random times, taken for a 17-minute season, had the last period's
// burst ordered on top of the one under way (19 replicas where 13 served it): 4.9% more node-hours for the
// same requests in time, 3.4% on bursts whose cycle jitters, about 1% on a sine on a slow rise. Bursts
// that ramp over 4 minutes lost 0.9 points of the 77.6% met: their projection, early or not, serves late.
func (s season) forecast(levels []float64, horizon time.Duration, now float64) (float64, string) {
	rise, account := s.ahead(levels, horizon, now)
	if rise <= 0 {
		return 0, fmt.Sprintf("no rise forecast: %s, and one period ago %s", s.why(), account)
	}
	return rise, fmt.Sprintf("forecast: %s, and one period ago %s", s.why(), account)
}

// cap lowers a projected rise to the rise the season saw at the same point one period ago over the
// horizon's minutes (rounded up), ending at the level it reached (ahead), and says why; it returns the
// rise unchanged when the season saw as much. Capped at one period ago's rise from wherever the reading
// was, a sawtooth's drop (5 req/s after 25, every 10 minutes), read through the rate's window as the top
// for a minute, had the next ramp's rise ordered on top of it each period: nodes launched for a ramp that
// had not begun, 16% more node-hours than the static size; 7% with the rise ending at the ramp's top
// (95.8% met either way).
func (s season) cap(levels []float64, projected float64, horizon time.Duration, now float64) (float64, string) {
	rise, account := s.ahead(levels, horizon, now)
	switch {
	case rise >= projected:
		return projected, ""
	case rise <= 0:
		return 0, fmt.Sprintf("no rise projected: %s, and one period ago %s", s.why(), account)
	}
	return rise, fmt.Sprintf("rise capped at one period ago's: %s, and then %s, not the %s projected", s.why(), account, formatNumber(projected))
}
