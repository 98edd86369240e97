package policy

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// sawtoothMinutes is an hour of minute levels (61) of busy slots rising from 35 to 175 over 10 minutes and
// dropping back, with a little deterministic noise.
func sawtoothMinutes() []float64 {
	levels := make([]float64, 61)
	for i := range levels {
		levels[i] = 35 + 14*float64(i%10) + 2*math.Sin(float64(i*i))
	}
	return levels
}

func TestFindSeasonFindsTheLoadsPeriodAndNothingOnLoadsThatDoNotRepeat(t *testing.T) {
	lead := 3*time.Minute + 40*time.Second
	st := State{DemandMinutes: sawtoothMinutes()}
	se, ok := st.findSeason(lead)
	// Ten minutes, not a multiple (which repeats too, and whose error differs by the noise alone); shorter
	// than four lead times, so its rises are not forecast, only a projection past them capped.
	if !ok || se.period != 10 || se.forecasts(lead) {
		t.Fatalf("sawtooth: season %+v, found %v; want a period of 10 minutes, not forecast", se, ok)
	}
	// At the top of the ramp the next minutes, one period ago, were the drop; 4 minutes into it, a rise.
	if r := se.rise(st.DemandMinutes[:60], 5); r > 0 {
		t.Errorf("at the top of the ramp: a rise of %.1f one period ago, want none", r)
	}
	if r := se.rise(st.DemandMinutes[:55], 5); r < 50 {
		t.Errorf("4 minutes into the ramp: a rise of %.1f one period ago, want 5 more minutes of it (56 after noise)", r)
	}

	noise := make([]float64, 61)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = 6 * rng.NormFloat64()
	}
	for name, level := range map[string]func(i int) float64{
		// Noise, a steady ramp and the foot of a daily cycle compressed into two hours are not seasons: a
		// period back forecasts them worse than a lead time back.
		// (sin(i^2) is no noise here: (i+22)^2 = i^2 + 44i + 484, and 44 and 484 are within 0.2 of a
		// multiple of 2 pi, so it repeats every 22 minutes, nearly.)
		"flat": func(i int) float64 { return 100 + noise[i] },
		"ramp": func(i int) float64 { return 50 + 3*float64(i) + noise[i]/3 },
		"daily cycle's foot": func(i int) float64 {
			return 100 - 80*math.Cos(2*math.Pi*float64(i)/120) + noise[i]/3
		},
	} {
		st := State{DemandMinutes: make([]float64, 61)}
		for i := range st.DemandMinutes {
			st.DemandMinutes[i] = level(i)
		}
		if se, ok := st.findSeason(lead); ok {
			t.Errorf("%s: taken for a season of %d minutes (errors %.2f against %.2f)", name, se.period, se.seasonalError, se.persistenceError)
		}
	}
	// Spikes to twice the load for 90 s every 7 minutes: a period of 7 (21 fits the noise as well), too
	// short to follow.
	spikes := State{DemandMinutes: make([]float64, 61)}
	for i := range spikes.DemandMinutes {
		spikes.DemandMinutes[i] = 100 + 3*math.Sin(float64(i*i))
		if i%7 == 0 {
			spikes.DemandMinutes[i] += 100
		}
	}
	if se, ok := spikes.findSeason(lead); !ok || se.period != 7 || se.forecasts(lead) {
		t.Errorf("spikes: season %+v, found %v; want a period of 7 minutes, not forecast", se, ok)
	}
	// Noise whose last eight minutes happen to repeat the eight before them: judged on the last period's
	// minutes alone, an 8-minute season forecast them without error; judged on every minute a period back
	// forecasts, it is the noise it is.
	chance := State{DemandMinutes: make([]float64, 61)}
	for i := range chance.DemandMinutes {
		chance.DemandMinutes[i] = 300 + 6*noise[i]
	}
	// The last level is the minute under way and is not judged; the eight complete minutes before it repeat.
	for i := 52; i < 60; i++ {
		chance.DemandMinutes[i] = chance.DemandMinutes[i-8]
	}
	if se, ok := chance.findSeason(lead); ok {
		t.Errorf("noise that repeated for one period: taken for a season of %d minutes (errors %.2f against %.2f over %d minutes)",
			se.period, se.seasonalError, se.persistenceError, se.judged)
	}
	// Too little history for two periods longer than a lead time: none.
	if _, ok := (State{DemandMinutes: sawtoothMinutes()[:15]}).findSeason(lead); ok {
		t.Error("15 minutes of history were enough for a season")
	}
}

func TestASeasonVetoesTheRiseOfARampThatDroppedOnePeriodAgo(t *testing.T) {
	// A sawtooth: 5 to 25 req/s over 10 minutes, then back, 7 s each. A trend follower projects the ramp past
	// its drop; once two periods are remembered, the top of each ramp projects nothing, and the record says
	// why.
	sawtooth := func(at time.Duration) float64 { return 5 + 20*math.Mod(at.Minutes(), 10)/10 }
	var st State
	current := int32(8)
	for at := time.Duration(0); at < time.Hour; at += 15 * time.Second {
		d := Evaluate(Input{Spec: demandSpec(3 * time.Minute), Observation: demandObs(current, sawtooth(at), 0)}, &st, t0.Add(at))
		current = d.DesiredReplicas
		if at%(10*time.Minute) != 9*time.Minute+45*time.Second {
			continue
		}
		m := d.Metrics[0]
		switch {
		// The first ramp's top, before a period is known: projected.
		case at < 10*time.Minute && (!strings.Contains(m.Note, "rising") || strings.Contains(m.Note, "repeats")):
			t.Fatalf("the first ramp's top was not projected:\n%s", m.Note)
		case at > 40*time.Minute && (!strings.Contains(m.Note, "no rise projected: the load repeats every 10 minutes") || m.Unprojected != nil):
			t.Fatalf("at %s, the ramp's top: proposal %d\n%s", at, d.Proposal, m.Note)
		}
	}
}

func TestALongSeasonForecastsTheNextRiseBeforeTheReadingsShowIt(t *testing.T) {
	// A sine of 10 +- 8 req/s every 24 minutes, 7 s each, with a 3-minute lead time. At the trough after two
	// periods, the readings are flat and no trend is projected; the season orders for the rise one period
	// ago saw next, and the record says so.
	sine := func(at time.Duration) float64 { return 10 - 8*math.Cos(2*math.Pi*at.Minutes()/24) }
	spec := demandSpec(3 * time.Minute)
	var st State
	current := int32(8)
	var d Decision
	for at := time.Duration(0); at <= 48*time.Minute+30*time.Second; at += 15 * time.Second {
		d = Evaluate(Input{Spec: spec, Observation: demandObs(current, sine(at), 0)}, &st, t0.Add(at))
		current = d.DesiredReplicas
	}
	m := d.Metrics[0]
	if !strings.Contains(m.Note, "forecast: the load repeats every 24 minutes") || m.Unprojected == nil || d.Proposal <= *m.Unprojected {
		t.Fatalf("at the trough: proposal %d\n%s", d.Proposal, m.Note)
	}
	// The same trough in the first period, before a season is known, projects nothing.
	var first State
	current = 8
	for at := time.Duration(0); at <= 24*time.Minute+30*time.Second; at += 15 * time.Second {
		d = Evaluate(Input{Spec: spec, Observation: demandObs(current, sine(at), 0)}, &first, t0.Add(at))
		current = d.DesiredReplicas
	}
	if strings.Contains(d.Metrics[0].Note, "rising") {
		t.Fatalf("the first trough projected a rise:\n%s", d.Metrics[0].Note)
	}
}

// One period ago the load rose from 50 to 150 busy slots within the next minutes. The season forecasts that
// rise from a reading at the level it rose from, the rest of it from a reading part of the way up (the rise
// came early this period), and none once the reading is at the level it reached; a reading below it (the
// load drifted down) still gets the whole rise.
func TestASeasonsForecastEndsAtTheLevelTheRiseReachedOnePeriodAgo(t *testing.T) {
	levels := make([]float64, 41)
	for i := range levels {
		levels[i] = 50
		if i%20 >= 3 && i%20 < 8 {
			levels[i] = 150
		}
	}
	se := season{period: 20}
	// 40 is the current minute; one period before it, 20, was 3 minutes before the rise.
	for _, c := range []struct {
		now, want float64
		says      string
	}{
		{50, 100, "it rose 100 busy slots over the next 4 minutes"},
		{20, 100, "it rose 100 busy slots"},
		{110, 40, "it rose to 150 busy slots over the next 4 minutes, 40 above the reading now"},
		{150, 0, "to 150 busy slots over the next 4 minutes, which the reading now has reached"},
		{180, 0, "which the reading now has reached"},
	} {
		got, why := se.forecast(levels, 3*time.Minute+40*time.Second, c.now)
		if got != c.want || !strings.Contains(why, c.says) {
			t.Errorf("reading %v: forecast %v (%s), want %v saying %q", c.now, got, why, c.want, c.says)
		}
	}
}

// Just after a sawtooth's drop the rate, read over its window, still reads the top for a minute. The
// season lets through a projected rise no further than the level the next ramp reached one period ago:
// none from a reading at the top, all of it from the trough, the rest of the way from halfway.
func TestASeasonCapsAProjectedRiseAtTheLevelTheLastPeriodReached(t *testing.T) {
	levels := sawtoothMinutes()[:51] // the last minute is a drop's: 35 busy slots, the top before it 161
	se := season{period: 10}
	horizon := 3*time.Minute + 40*time.Second
	seen := se.rise(levels, 4)
	top := levels[40] + seen
	for _, c := range []struct {
		now, projected, want float64
		says                 string
	}{
		{levels[49], 40, 0, "which the reading now has reached"},
		{levels[40], 40, 40, ""},
		{top - 25, 40, 25, "25 above the reading now, not the 40 projected"},
		// Below the level the ramp rose from (the load fell further this period): the whole rise, no more.
		{levels[40] - 30, 40, 40, ""},
		{levels[40] - 30, seen + 20, seen, fmt.Sprintf("then it rose %s busy slots over the next 4 minutes, not the %s projected",
			formatNumber(seen), formatNumber(seen+20))},
	} {
		got, why := se.cap(levels, c.projected, horizon, c.now)
		if math.Abs(got-c.want) > 1e-9 || !strings.Contains(why, c.says) || (c.says == "") != (why == "") {
			t.Errorf("reading %.1f, %.1f projected: rise %.1f (%q), want %.1f saying %q", c.now, c.projected, got, why, c.want, c.says)
		}
	}
}
