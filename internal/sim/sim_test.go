package sim

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/internal/trace"
	"github.com/llmscaler/llmscaler/policy"
)

// synthetic is a Poisson trace whose rate (requests per second) is rate(t), with the Azure trace's typical
// request shape (1,000 prompt tokens, outputs of 20-400 tokens).
func synthetic(d time.Duration, seed uint64, rate func(t time.Duration) float64) []trace.Request {
	return poisson(d, seed, rate, func(rng *rand.Rand) (int32, int32) { return 1000, int32(20 + rng.IntN(380)) })
}

// heavyTailed is a Poisson trace like synthetic's whose sizes are lognormal, as a conversation trace's are
// (prompts of about 1,100 tokens, answers of about 220 and one in a hundred past 1,200, capped at 8,000
// and 1,500): the service time and the busy slots then swing with the mix, not only with the arrivals.
func heavyTailed(d time.Duration, seed uint64, rate func(t time.Duration) float64) []trace.Request {
	return poisson(d, seed, rate, func(rng *rand.Rand) (int32, int32) {
		return int32(min(8000, math.Exp(6.5+rng.NormFloat64()))), int32(min(1500, max(1, math.Exp(5+0.9*rng.NormFloat64()))))
	})
}

// poisson is a Poisson trace whose rate (requests per second) is rate(t), each request's prompt and output
// tokens drawn by sizes.
func poisson(d time.Duration, seed uint64, rate func(t time.Duration) float64, sizes func(*rand.Rand) (prompt, output int32)) []trace.Request {
	rng := rand.New(rand.NewPCG(seed, 7))
	var out []trace.Request
	for t := time.Duration(0); t < d; {
		// Thinning against a bound of 200 req/s.
		t += time.Duration(rng.ExpFloat64() / 200 * float64(time.Second))
		if rng.Float64()*200 < rate(t) {
			prompt, output := sizes(rng)
			out = append(out, trace.Request{At: t, Prompt: prompt, Output: output})
		}
	}
	return out
}

// exampleModel is the LoRAX example's model spec, its maxReplicas raised so that no bound caps a scaled trace.
func exampleModel(tb testing.TB) config.ModelSpec {
	tb.Helper()
	spec, err := config.LoadModelSpec("../../deploy/examples/lorax/model.yaml", config.NewModelViper())
	if err != nil {
		tb.Fatal(err)
	}
	spec.Spec.Spec.MaxReplicas = 200
	return spec
}

func exampleSpec(tb testing.TB) policy.Spec { return exampleModel(tb).Spec.Spec }

func find(t *testing.T, rep Report, prefix string) Result {
	t.Helper()
	for _, p := range rep.Policies {
		if strings.HasPrefix(p.Name, prefix) {
			return p
		}
	}
	t.Fatalf("no policy %s in the report", prefix)
	return Result{}
}

func TestOracleCoversEachMinutesPeakOfRequestsInFlight(t *testing.T) {
	a := DefaultAssumptions()
	// 2 requests a second, each holding a slot for 1000/6000 s + 300/30 s = 10.17 s: about 20 in flight,
	// then from the third minute 8 a second (about 81): 2, 2 and then 6 replicas of 16.
	var reqs []trace.Request
	for i := range 240 {
		reqs = append(reqs, trace.Request{At: time.Duration(i) * 500 * time.Millisecond, Prompt: 1000, Output: 300})
	}
	for i := range 480 {
		reqs = append(reqs, trace.Request{At: 2*time.Minute + time.Duration(i)*125*time.Millisecond, Prompt: 1000, Output: 300})
	}
	got := OracleSchedule(reqs, a)
	want := []int{2, 2, 6}
	if len(got) != len(want) {
		t.Fatalf("schedule %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("schedule %v, want %v", got, want)
		}
	}
}

func TestStaticSearchFindsTheCheapestSizeThatMeetsTheSLO(t *testing.T) {
	a := DefaultAssumptions()
	a.Warmup = 0
	reqs := synthetic(20*time.Minute, 1, func(time.Duration) float64 { return 20 })
	best := cheapestStatic(reqs, a, 4)
	n := best.GPUNodeHours * 3 // 20 minutes
	if best.SLOAttainment < a.Attainment {
		t.Fatalf("%s meets %.4f, below the target", best.Name, best.SLOAttainment)
	}
	fewer := RunStatic(reqs, a, int(n+0.5)-1)
	if fewer.SLOAttainment >= a.Attainment {
		t.Fatalf("%s is not the cheapest: %s meets %.4f", best.Name, fewer.Name, fewer.SLOAttainment)
	}
}

func TestComparisonIsDeterministicAndReportsEveryField(t *testing.T) {
	reqs := synthetic(30*time.Minute, 2, func(t time.Duration) float64 { return 10 + 10*float64(t/(10*time.Minute)%2) })
	a := DefaultAssumptions()
	opt := Options{Assumptions: a, Trace: reqs, Policies: StandardPolicies(exampleSpec(t), a)}
	r1, err := Compare(opt)
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := Compare(opt)
	j1, _ := json.Marshal(r1)
	j2, _ := json.Marshal(r2)
	if !bytes.Equal(j1, j2) {
		t.Fatal("two runs of the same comparison differ")
	}
	var doc struct {
		Assumptions map[string]any   `json:"assumptions"`
		Oracle      float64          `json:"oracle_gpu_node_hours"`
		Policies    []map[string]any `json:"policies"`
	}
	if err := json.Unmarshal(j1, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"node_ready", "gpu_allocatable_after_ready", "image_pull", "model_load", "drain_grace", "serving", "lead_time", "warmup", "slo_queue_delay"} {
		if _, ok := doc.Assumptions[k]; !ok {
			t.Errorf("assumptions lack %s: %v", k, doc.Assumptions)
		}
	}
	if doc.Oracle <= 0 || len(doc.Policies) != 6 {
		t.Fatalf("oracle %v node-hours, %d policies", doc.Oracle, len(doc.Policies))
	}
	for _, p := range doc.Policies {
		for _, k := range []string{"name", "slo_attainment", "queue_delay_p99_s", "ttft_p50_s", "ttft_p99_s", "gpu_node_hours", "oracle_ratio", "scale_actions", "lost_requests"} {
			if _, ok := p[k]; !ok {
				t.Errorf("policy %v lacks %s", p["name"], k)
			}
		}
	}
	var svg, table bytes.Buffer
	if err := r1.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(svg.String(), "<polyline"); c != 3*len(r1.Policies) {
		t.Fatalf("the plot has %d lines, want 3 per policy", c)
	}
	r1.WriteTable(&table)
	if !strings.Contains(table.String(), "hpa+ca") || !strings.Contains(table.String(), "Lead time 3m40s") {
		t.Fatalf("table:\n%s", table.String())
	}
}

// A sustained surge (a step to almost four times the load) while GPU nodes boot gives one scale-out,
// raised if need be, not a cascade of them; the scale-in afterwards drains within the grace and loses
// nothing, where the HPA's 30 s termination grace cuts the longest requests. No reactive policy meets the
// SLO through such a step with a 220 s lead time (the oracle does, by foresight): this checks cost and
// safety, not attainment.
func TestSurgeGivesOneScaleOutAndTheScaleInLosesNothing(t *testing.T) {
	a := DefaultAssumptions()
	reqs := synthetic(50*time.Minute, 3, func(t time.Duration) float64 {
		if t >= 15*time.Minute && t < 35*time.Minute {
			return 30
		}
		return 8
	})
	// Outputs up to 1,000 tokens: a third of a minute and more to decode.
	for i := range reqs {
		if i%50 == 0 {
			reqs[i].Output = 1000
		}
	}
	spec := exampleSpec(t)
	ctrl := &autoscaler{spec: spec, sagas: true}
	ours := newSim(a, reqs, &startWith{initial: 8, next: ctrl}).run("ours")
	maxNodes := 0
	for _, p := range ours.Series {
		maxNodes = max(maxNodes, p.Nodes)
	}
	if ctrl.scaleOuts > 2 {
		t.Errorf("%d scale-outs for one surge, want at most 2 (one raised while it runs, one for the backlog)", ctrl.scaleOuts)
	}
	sched := OracleSchedule(reqs, a)
	peak := 0
	for _, n := range sched {
		peak = max(peak, n)
	}
	// The backlog built during the lead time is drained with extra capacity, sized over the lead time: 29
	// nodes for the oracle's 18, as the backlog the capacity meets (4,300 requests, about 10 replicas'
	// worth over a lead time) is sized 26 s after the step from the backlog's growth (27 nodes and 75.6%
	// met when the backlog of the order's time was sized and the step read over the rate's window; 83.2%
	// now). Capacity on its way ordered again would double the order.
	if maxNodes > peak*17/10 {
		t.Errorf("up to %d nodes for a peak the oracle covers with %d: capacity on its way was ordered again", maxNodes, peak)
	}
	if ours.LostRequests != 0 {
		t.Errorf("our scale-in lost %d requests", ours.LostRequests)
	}
	hpa := RunPolicy(reqs, a, Policy{Name: "hpa+ca", Spec: HPASpec(spec, a)}, 8)
	if hpa.LostRequests == 0 {
		t.Errorf("the HPA's 30 s grace lost nothing: the test does not exercise the drain")
	}
	if ours.SLOAttainment < 0.6 || ours.GPUNodeHours >= hpa.GPUNodeHours/2 {
		t.Errorf("ours %.4f at %.2f node-hours, hpa+ca %.4f at %.2f", ours.SLOAttainment, ours.GPUNodeHours, hpa.SLOAttainment, hpa.GPUNodeHours)
	}
}

// Shapes the policy was not tuned on, as regression guards: every one loses nothing on scale-in and costs
// fewer node-hours than the HPA with the Cluster Autoscaler and than the cheapest static size (within 5% of
// it on the swing and the square wave), and none falls more than a point or two below
// the attainment it reached when these were added. A daily cycle compressed into an hour (demand doubles
// within a lead time at its foot) was once taken for a burst and met 78%, then 93% with a straight line
// fitted over two lead times, which the accelerating ramp outran; about 95% with the last lead time's
// steeper slope projected, and about 97% once a scale-in kept room for the rises seen (its first cycle's
// foot is then kept for the second's). It starts at that foot: since no ramp is projected in an
// autoscaler's first two lead times (a startup's slope ordered twice the capacity on the conversation
// trace), about 95%. The HPA on in-flight requests meets 98.7% there, for 40% more node-hours.
func TestOnShapesItWasNotTunedOn(t *testing.T) {
	holdShapes(t, synthetic, 11, []shape{
		{"a daily cycle in an hour (5-35 req/s)", 2 * time.Hour, dailyInAnHour, 0.945, 1},
		{"spikes to twice the load for 90 s every 7 min", 90 * time.Minute, func(t time.Duration) float64 {
			if t%(7*time.Minute) < 90*time.Second {
				return 30
			}
			return 15
		}, 0.985, 1},
		// A scale-in on a slow ramp is ordered again a few lead times later, a lead time late: 98.7% until
		// no scale-in was made while the demand rises beyond doubt (holdWhileDemandRises).
		{"a slow ramp (5 to 35 req/s over two hours)", 2 * time.Hour, func(t time.Duration) float64 { return 5 + 30*t.Hours()/2 }, 0.988, 1},
		// Added with the scale-in's headroom for rises: a swing of 5 req/s every 3.7 minutes (about a lead
		// time) on one of 3 req/s every 17, and a square wave whose first high half no reactive policy serves.
		// The square wave cost 18% more than static (24.3 node-hours) while each step was projected as a
		// ramp; within 1% since a step is not (levelShiftExplains). It met 85% while the scale-in's room for
		// rises counted replicas at their full slots (10 kept where 20 req/s needs 11 within the SLO), 91%
		// sized for the SLO; the swing 99.3%, then 99.6%.
		{"a swing within the lead time (15 +- 5 req/s every 3.7 min, +- 3 every 17)", 90 * time.Minute, func(t time.Duration) float64 {
			return 15 + 5*math.Sin(t.Minutes()*1.7) + 3*math.Sin(t.Minutes()*0.37)
		}, 0.99, 1.05},
		{"a square wave (10 and 20 req/s, 7.5 min each)", 2 * time.Hour, func(t time.Duration) float64 {
			if t%(15*time.Minute) < 7*time.Minute+30*time.Second {
				return 10
			}
			return 20
		}, 0.925, 1.05},
		// Added from a later sweep of new shapes, unseen until then, with floors where they came out: the
		// weak spots docs/evaluation.md names. The sawtooth's first ramp and the sine's rises are met late (no ramp
		// is projected in the first two lead times, and a ramp from a trough is fitted with the flat part
		// before it); a step up after a quiet spell is met a lead time late and its queues, on the replicas
		// serving then, drain for minutes more, as for any reactive policy. The sawtooth's projected capacity
		// served after each drop, held for two lead times (26% more node-hours than static); 16% once the
		// season it repeats vetoes a projection one period ago contradicts; 7% since the rise it lets through
		// ends at the level the ramp reached one period ago (the drop, read through the rate's window, looked
		// like the top for a minute, and the next ramp's rise was ordered on top of it). The sine met 89.5-91% until its
		// season forecast its rises (policy/season.go), 93% for 3.5% fewer node-hours, 96.7% since a rise from
		// a trough is projected at its own slope (policy.rampSinceTurn), not a line's through the trough. The
		// step met 88.7%, the dip 90% and the square wave 91.2% while a backlog was sized as read at the
		// order, not as the capacity ordered meets it a lead time later (policy.backlogGrowth): 92%, 90.8%
		// and 92.4%; 93%, 92.2% and 93% since the arrivals are read from the backlog's growth while the
		// replicas are saturated, a window before the rate's window reads them. The dip met 92.2% before a
		// step's first minute could read as a burst the rate's window averages away (policy.peakReplicas),
		// 92.0% since.
		{"a sawtooth (5 to 25 req/s over 10 min, then back)", 2 * time.Hour, func(t time.Duration) float64 {
			return 5 + 20*math.Mod(t.Minutes(), 10)/10
		}, 0.945, 1.1},
		// 96.66% until a season was judged on every minute a period back forecasts (policy/season.go).
		{"a sine (10 +- 8 req/s, 30 min period)", 2 * time.Hour, func(t time.Duration) float64 {
			return 10 + 8*math.Sin(2*math.Pi*t.Minutes()/30)
		}, 0.975, 1},
		{"a dip (20 req/s, 10 for 20 min, 20 again)", 90 * time.Minute, func(t time.Duration) float64 {
			if t > 30*time.Minute && t < 50*time.Minute {
				return 10
			}
			return 20
		}, 0.915, 1.05},
		{"a step up (10 to 25 req/s at 40 min)", 90 * time.Minute, func(t time.Duration) float64 {
			if t > 40*time.Minute {
				return 25
			}
			return 10
		}, 0.925, 1},
	})
}

// shape is a synthetic load and what ours is held to on it.
type shape struct {
	name       string
	d          time.Duration
	rate       func(time.Duration) float64
	attainment float64
	// ofStatic bounds ours' node-hours as a multiple of the cheapest static size's.
	ofStatic float64
}

// holdShapes compares the policies on each shape's trace (made by gen with the seed): ours loses nothing,
// costs fewer node-hours than hpa+ca and at most ofStatic times the static size's, and meets its floor.
func holdShapes(t *testing.T, gen func(time.Duration, uint64, func(time.Duration) float64) []trace.Request, seed uint64, shapes []shape) {
	for _, c := range shapes {
		t.Run(c.name, func(t *testing.T) {
			rep := compareOn(t, gen(c.d, seed, c.rate))
			ours, hpa, static := find(t, rep, "ours"), find(t, rep, "hpa+ca"), find(t, rep, "static-")
			if ours.LostRequests != 0 || ours.GPUNodeHours >= hpa.GPUNodeHours || ours.SLOAttainment < c.attainment ||
				ours.GPUNodeHours > c.ofStatic*static.GPUNodeHours {
				t.Errorf("ours: %.4f (floor %.2f) at %.2f node-hours (at most %.2fx static's %.2f), %d lost; hpa+ca %.2f",
					ours.SLOAttainment, c.attainment, ours.GPUNodeHours, c.ofStatic, static.GPUNodeHours, ours.LostRequests, hpa.GPUNodeHours)
			}
		})
	}
}

// Shapes of a third sweep, with heavy-tailed sizes (heavyTailed), as regression guards with floors where
// they came out: every one loses nothing and costs fewer node-hours than static and than hpa+ca (whose
// pods' 30 s grace cuts long answers here). Loads that step up again and again are ours' weakest: each
// step is met a lead time late, and every request behind the queue it builds is late too; the scale-in's
// room for the rises seen (riseQuantile) covers the smaller steps of an hour, not the largest. Keeping
// room for one rise in twenty instead of one in ten met the square wave at 89% (for 2% more node-hours),
// the plateaus at 83% (9% more) and the sine at 98.5%, but cost the conversation trace 3.5% more and the
// single step of TestOnShapesItWasNotTunedOn 15%. Sizing a backlog as the capacity ordered meets it, grown
// for the lead time (policy.backlogGrowth), and not holding its drain once it has drained, met the square
// wave at 78% (74%) and the plateaus at 83.2% (81.9%), and 86-87% (73-75%) on three other seeds; reading
// the arrivals from the backlog's growth while the replicas are saturated, 88% and 84.6%. Sizing a burst
// shorter than the rate's window at its peak (policy.peakReplicas) weighed against the minute's last rate,
// not the highest it held, took the minute after each fall for bursts and held the fall's capacity a
// minute more: the plateaus met 89.5%, by accident (a fall's minute is not a burst).
func TestOnASweepOfHeavyTailedShapes(t *testing.T) {
	holdShapes(t, heavyTailed, 5, []shape{
		{"a square wave of 40 minutes (10 and 22 req/s)", 2 * time.Hour, func(t time.Duration) float64 {
			if t%(40*time.Minute) < 20*time.Minute {
				return 10
			}
			return 22
		}, 0.875, 1},
		{"plateaus of 15 minutes (8 to 20 req/s, +-15% within)", 2 * time.Hour, func(t time.Duration) float64 {
			return []float64{8, 14, 10, 20, 12, 16, 9, 18}[int(t/(15*time.Minute))%8] * (1 + 0.15*math.Sin(t.Minutes()*3.1))
		}, 0.84, 1},
		// 85% at 8% more node-hours before its season forecast the rises (policy/season.go); 95.4% until a
		// rise from a trough was projected at its own slope (policy.rampSinceTurn).
		{"a sine of 20 minutes on a slow rise (12 +- 6 req/s, +3 an hour)", 2 * time.Hour, func(t time.Duration) float64 {
			return 12 + 3*t.Hours() + 6*math.Sin(2*math.Pi*t.Minutes()/20)
		}, 0.96, 1},
		{"a decline (35 to 5 req/s over two hours)", 2 * time.Hour, func(t time.Duration) float64 {
			return 35 - 15*t.Hours()
		}, 0.995, 0.75},
		{"a ramp up and down (5 to 30 req/s over 40 min, 40 min flat, back over 40)", 2 * time.Hour, func(t time.Duration) float64 {
			m := t.Minutes()
			return 5 + 25*min(m/40, 1, max(0, (120-m)/40))
		}, 0.975, 0.9},
	})
}

// Bursts whose cycle jitters by minutes (6 -> 25 req/s for 4 minutes every 12 to 18, from a later sweep of
// shapes) on a trace whose first 40 seconds are sparse, as the conversation trace's are: the demand read
// climbs from them to the load's level. That climb was taken for a burst, whose start hid the first real
// one (one burst is one start within two lead times) and set the cycle off by minutes: two bursts were met
// by a scale-in: 70% in time, 84% since no burst is noted in an autoscaler's first lead time (the node-hours
// alike). Its gaps (12 to 16 minutes) also disagree by more than the forecast's spare: forecast from the last
// gap alone, with the holds let go between bursts, a burst that came early found a scale-in; 91% since the
// forecast's window spans the gaps seen and the holds stay until the gaps agree (3.3% more node-hours).
func TestOnJitteredBurstsTheTracesStartIsNotABurst(t *testing.T) {
	holdShapes(t, synthetic, 11, []shape{{"jittered bursts after a sparse start", 2 * time.Hour, func(t time.Duration) float64 {
		if t < 40*time.Second {
			return 1.5
		}
		for _, start := range []float64{8, 21.4, 36.7, 50.9, 66.5, 82.3, 94.7, 106.8} {
			if m := t.Minutes(); m >= start && m < start+4 {
				return 25
			}
		}
		return 6
	}, 0.9, 1.15}})
}

// burstsAtRandom is 5 req/s with bursts of 20 to 30 req/s for 3 to 5 minutes, from minute 8, each the next
// after a gap drawn between gapLo and gapHi minutes: bursts that recur, at no time a forecast can tell.
func burstsAtRandom(seed uint64, gapLo, gapHi float64) func(time.Duration) float64 {
	rng := rand.New(rand.NewPCG(seed, 99))
	type burst struct{ from, to, rate float64 }
	var bursts []burst
	for m := 8.0; m < 120; m += gapLo + (gapHi-gapLo)*rng.Float64() {
		bursts = append(bursts, burst{m, m + 3 + 2*rng.Float64(), 20 + 10*rng.Float64()})
	}
	return func(t time.Duration) float64 {
		for _, b := range bursts {
			if m := t.Minutes(); m >= b.from && m < b.to {
				return b.rate
			}
		}
		return 5
	}
}

// Bursts at random times (gaps of 10 to 20 minutes) are as short as the lead time: capacity ordered when
// one starts serves as it ends, and only the capacity kept between them meets the next. Ours keeps it
// (the scale-in's holds, and the highest burst of the last hour) until burst starts' gaps agree within
// half a lead time, which these never do. When one gap made a cycle, its forecast (the next burst a gap
// after the last) took the holds' place, the capacity went between bursts that came minutes early or
// late, and 51% of the requests were in time; 82% with the holds kept, and the last burst's capacity,
// short of a higher one; 92% now (the first burst, which no reactive policy meets, is 8% of the trace). A
// static size meets them all for less: it has the highest burst's capacity from the start, where ours
// pays for the first burst's backlog too.
func TestOnBurstsAtRandomTimesTheirCapacityIsKept(t *testing.T) {
	holdShapes(t, synthetic, 4, []shape{{"bursts at random times (20-30 req/s for 3-5 min, 10-20 min apart)", 2 * time.Hour,
		burstsAtRandom(4, 10, 20), 0.9, 1.2}})
}

// randomWalk is a load that drifts: from 15 req/s, each minute's rate is the last one's times e^(0.12 z) for
// a standard normal z (a rise or fall of about 12% a minute that does not come back), held between 4 and 35
// req/s.
func randomWalk(seed uint64) func(time.Duration) float64 {
	rng := rand.New(rand.NewPCG(seed, 3))
	levels := []float64{15}
	for range 200 {
		levels = append(levels, min(35, max(4, levels[len(levels)-1]*math.Exp(0.12*rng.NormFloat64()))))
	}
	return func(t time.Duration) float64 { return levels[int(t.Minutes())] }
}

// gradualBursts is 5 req/s with bursts that ramp to 25 req/s over 4 minutes, stay 6 and ramp down over 4,
// from minute 8, each the next after a gap (start to start) drawn between gapLo and gapHi minutes.
func gradualBursts(seed uint64, gapLo, gapHi float64) func(time.Duration) float64 {
	rng := rand.New(rand.NewPCG(seed, 99))
	var starts []float64
	for m := 8.0; m < 120; m += gapLo + (gapHi-gapLo)*rng.Float64() {
		starts = append(starts, m)
	}
	return func(t time.Duration) float64 {
		for _, start := range starts {
			switch into := t.Minutes() - start; {
			case into >= 0 && into < 4:
				return 5 + 5*into
			case into >= 4 && into < 10:
				return 25
			case into >= 10 && into < 14:
				return 25 - 5*(into-10)
			}
		}
		return 5
	}
}

// answersThatLengthen is a Poisson trace like synthetic's whose answers are 20-200 tokens for half an hour
// and 100-700 the next (a shift of the mix, say to summaries or code): the busy slots more than triple at
// the same arrival rate, and the service time, read from completed requests, follows a while later.
func answersThatLengthen(d time.Duration, seed uint64, rate func(t time.Duration) float64) []trace.Request {
	rng := rand.New(rand.NewPCG(seed, 7))
	var out []trace.Request
	for t := time.Duration(0); t < d; {
		// Thinning against a bound of 200 req/s, as poisson does.
		t += time.Duration(rng.ExpFloat64() / 200 * float64(time.Second))
		if rng.Float64()*200 < rate(t) {
			output := 20 + rng.IntN(180)
			if int(t/(30*time.Minute))%2 == 1 {
				output = 100 + rng.IntN(600)
			}
			out = append(out, trace.Request{At: t, Prompt: 1000, Output: int32(output)})
		}
	}
	return out
}

// A fourth sweep of shapes, unseen until they were run, kept as regression guards with floors where they
// came out, untuned. On every one ours loses nothing and costs fewer node-hours than hpa+ca; it is below
// 99% on all of them, and on some below the HPA's attainment: a load that drifts (a random walk) rises
// beyond the rises of its last hour, which the scale-in's room is read from, and a queue built on
// saturated replicas makes every request behind it late; bursts that ramp over 4 minutes are neither a
// burst (too slow to double within a quarter of a lead time) nor projected until they have lasted two
// (a level shift read through the rate window explains their start), and their projection then overshoots
// their top. See the fourth sweep in docs/evaluation.md for what was tried.
func TestOnAFourthSweepOfUntunedShapes(t *testing.T) {
	holdShapes(t, heavyTailed, 2, []shape{{"a random walk (15 req/s, +-12% a minute, held within 4-35)", 2 * time.Hour,
		randomWalk(2), 0.92, 0.9}})
	// 90.35% at 17.76 node-hours until the capacity before an abrupt stop (the busy slots falling by two
	// thirds as the answers shorten) waited for the load's return (policy.State.keepAfterStop).
	holdShapes(t, answersThatLengthen, 1, []shape{{"answers 4x longer every other half hour (10 req/s)", 2 * time.Hour,
		func(time.Duration) float64 { return 10 }, 0.95, 1}})
	holdShapes(t, synthetic, 1, []shape{
		{"upstream outages (15 req/s, 2 for 3 min every 20, then 25 for 1)", 2 * time.Hour, func(t time.Duration) float64 {
			switch m := t % (20 * time.Minute); {
			case m >= 10*time.Minute && m < 13*time.Minute:
				return 2
			case m >= 13*time.Minute && m < 14*time.Minute:
				return 25
			}
			return 15
		}, 0.96, 1.05},
		// 87.38% for 31.54 node-hours when the peak arrivals were weighed against the minute's last rate
		// (see TestOnASweepOfHeavyTailedShapes): the minute after each fall read as bursts and was held.
		// 77.58% until a season's forecast rise ended at the level it reached (policy/season.go): taken for
		// a season, the last burst's rise was added to a ramp under way, ordering earlier by accident.
		// 76.69% until a season was judged on every minute a period back forecasts, not the last period's
		// only: short seasons found by chance vetoed the projection of a burst's ramp now and then.
		{"bursts that ramp (5 -> 25 req/s over 4 min, 6 min at the top, 15-30 min apart)", 2 * time.Hour,
			gradualBursts(1, 15, 30), 0.81, 1.25},
		// 74.50% at 13.78 node-hours until the capacity before an abrupt stop waited for the load's return
		// (policy.State.keepAfterStop), now about static's node-hours.
		{"near idle, then busy (1 req/s for 25 min, 15 for 20)", 2 * time.Hour, func(t time.Duration) float64 {
			if t%(45*time.Minute) < 25*time.Minute {
				return 1
			}
			return 15
		}, 0.91, 1},
		{"bursts at random times 30-50 min apart (20-30 req/s for 3-5 min)", 2 * time.Hour, burstsAtRandom(1, 30, 50), 0.62, 0.9},
	})
}

// The conversation trace at 10x with a 10-minute outage upstream (no request from minute 25 to 35): the
// load comes back all at once. When the outage's scale-in had given its capacity back, the return queued on
// the replicas left, each its own queue that capacity arriving a lead time later could not take over:
// 86.61% met, for 33.75 node-hours (the return's backlog ordered capacity that was then held). The
// deployment as it was before an abrupt stop now waits for the load's return (policy.State.keepAfterStop):
// 99.84% for 28.47, run by the workflow too.
func TestOnTheConversationTraceAnOutagesCapacityWaitsForTheLoadsReturn(t *testing.T) {
	var reqs []trace.Request
	for _, r := range benchTrace(t) {
		if r.At < 25*time.Minute || r.At >= 35*time.Minute {
			reqs = append(reqs, r)
		}
	}
	rep := compareOn(t, reqs)
	ours, hpa, static := find(t, rep, "ours"), find(t, rep, "hpa+ca"), find(t, rep, "static-")
	if ours.SLOAttainment < 0.99 || ours.LostRequests != 0 || ours.GPUNodeHours >= hpa.GPUNodeHours || ours.GPUNodeHours > 1.05*static.GPUNodeHours {
		t.Errorf("ours: %.4f at %.2f node-hours, %d lost; hpa+ca %.2f, %s %.2f", ours.SLOAttainment, ours.GPUNodeHours, ours.LostRequests,
			hpa.GPUNodeHours, static.Name, static.GPUNodeHours)
	}
	theWorkflowAndItsImitationMeet(t, reqs, DefaultAssumptions(), 0.99)
}

// Loads that pause and come back. A load of 15 req/s that falls to 3 for 10 minutes every half hour met
// 88.95% for 18.68 node-hours (static 16.90), scaled in at each pause and met the return short; with the
// deployment kept for the return (policy.State.keepAfterStop), 99.67% for fewer node-hours than static. A
// load of 12 req/s with no request for 15 minutes at minute 20 and 10 at minute 70: 90.07%, now 99.93%,
// for 13% more than static.
func TestOnALoadThatPausesTheDeploymentWaitsForItsReturn(t *testing.T) {
	holdShapes(t, synthetic, 11, []shape{{"15 req/s, 3 for 10 min every 30", 2 * time.Hour, func(t time.Duration) float64 {
		if math.Mod(t.Minutes(), 30) < 20 {
			return 15
		}
		return 3
	}, 0.995, 1}})
	holdShapes(t, heavyTailed, 1, []shape{{"12 req/s, none for 15 min at 20 and 10 at 70", 2 * time.Hour, func(t time.Duration) float64 {
		if m := t.Minutes(); m >= 20 && m < 35 || m >= 70 && m < 80 {
			return 0
		}
		return 12
	}, 0.995, 1.15}})
}

// Bursts shorter than the rate's window: a client firing on the minute (10 req/s, 30 for 10 s of each
// minute), a job every five minutes (10 req/s, 40 for 30 s of each five) and batches of 400 requests
// submitted within 4 s every 20 minutes on 8 req/s. The minute's rate averages them away: sized for it,
// ours met 65.21%, 72.88% and 93.63%. Sized at the peak's busy slots once the peak over 10 s stands far
// above what a Poisson stream at the highest rate read over the minute brings (policy.peakReplicas):
// 99.92% (15% more node-hours than static, 7% more than hpa+ca, which meets 98.49%), 99.18% (1% more
// than static; hpa+ca 100% for 34% more) and 95.98% (a third fewer than static; hpa+ca 93.98% for 18%
// more).
func TestBurstsShorterThanTheRateWindowAreSizedAtTheirPeak(t *testing.T) {
	onTheMinute := func(t time.Duration) float64 {
		if math.Mod(t.Seconds(), 60) < 10 {
			return 30
		}
		return 10
	}
	everyFive := func(t time.Duration) float64 {
		if math.Mod(t.Seconds(), 300) < 30 {
			return 40
		}
		return 10
	}
	batches := synthetic(2*time.Hour, 3, func(time.Duration) float64 { return 8 })
	for k := 1; k < 6; k++ {
		for i := range 400 {
			batches = append(batches, trace.Request{At: time.Duration(k)*20*time.Minute + time.Duration(i)*10*time.Millisecond, Prompt: 1000, Output: 200})
		}
	}
	slices.SortStableFunc(batches, func(a, b trace.Request) int { return int(a.At - b.At) })
	for _, c := range []struct {
		name     string
		reqs     []trace.Request
		floor    float64
		ofStatic float64
		// unpeaked is the most ours meets without the peak arrivals read: what the peak's sizing is for.
		unpeaked float64
		// workflow: the workflow itself reads the peak as its imitation does (one such run is enough).
		workflow bool
	}{
		{"10 req/s, 30 for 10 s each minute", synthetic(2*time.Hour, 3, onTheMinute), 0.995, 1.2, 0.7, true},
		{"10 req/s, 40 for 30 s every 5 min", synthetic(2*time.Hour, 3, everyFive), 0.99, 1.05, 0.8, false},
		// 96.03% until a season's forecast rise ended at the level it reached (policy/season.go: the batches
		// are taken for a season), now 95.98% for 1% fewer node-hours.
		{"8 req/s, 400 requests within 4 s every 20 min", batches, 0.955, 0.7, 0.95, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			rep := compareOn(t, c.reqs)
			ours, static := find(t, rep, "ours"), find(t, rep, "static-")
			if ours.SLOAttainment < c.floor || ours.LostRequests != 0 || ours.GPUNodeHours > c.ofStatic*static.GPUNodeHours {
				t.Errorf("ours: %.4f (floor %.3f) at %.2f node-hours (at most %.2fx static's %.2f), %d lost",
					ours.SLOAttainment, c.floor, ours.GPUNodeHours, c.ofStatic, static.GPUNodeHours, ours.LostRequests)
			}
			spec, a := exampleSpec(t), DefaultAssumptions()
			spec.Metrics = slices.Clone(spec.Metrics)
			for i, m := range spec.Metrics {
				if m.Demand != nil {
					d := *m.Demand
					d.PeakArrivals = nil
					spec.Metrics[i].Demand = &d
				}
			}
			unpeaked := RunPolicy(c.reqs, a, Policy{Name: "unpeaked", Spec: spec, Sagas: true}, StartingReplicas(OracleSchedule(c.reqs, a), a))
			if unpeaked.SLOAttainment > c.unpeaked {
				t.Errorf("without the peak arrivals read, ours met %.4f (expected at most %.2f): the load no longer tests the peak's sizing",
					unpeaked.SLOAttainment, c.unpeaked)
			}
			if c.workflow {
				theWorkflowAndItsImitationMeet(t, c.reqs, a, c.floor)
			}
		})
	}
}

// The conversation trace's arrivals more than double over its first four minutes and then level off. A
// slope fitted over those minutes, before the trend's two lead times had filled, ordered twice the
// replicas the oracle ever needs (68 for its 36) and held them for a lead time: 4% of the hour's
// node-hours. No ramp is projected before the window has filled.
func TestOnTheConversationTraceTheStartIsNotTakenForARamp(t *testing.T) {
	reqs, a := benchTrace(t), DefaultAssumptions()
	sched := OracleSchedule(reqs, a)
	ours := RunPolicy(reqs, a, Policy{Name: "ours", Spec: exampleSpec(t), Sagas: true}, StartingReplicas(sched, a))
	most := 0
	for _, p := range ours.Series {
		most = max(most, p.Ready)
	}
	t.Logf("ours %.4f at %.2f node-hours; at most %d replicas ready, the oracle %d", ours.SLOAttainment, ours.GPUNodeHours, most, slices.Max(sched))
	if ours.SLOAttainment < 0.99 || most > slices.Max(sched)*13/10 {
		t.Errorf("ours %.4f, at most %d replicas ready for an oracle peak of %d", ours.SLOAttainment, most, slices.Max(sched))
	}
}

// Short, prefill-heavy requests (the conversation trace's arrivals at 30x, each prompt five times longer and
// each answer a tenth: the shape of a code-completion load) hold their slots for about 2 s, so the busy
// slots follow the arrivals' jumps (on the conversation trace longer answers when requests come faster
// smooth them). Ten minutes from its scale-in at a trough the demand rises 40% in three minutes; when a
// scale-in gave back all but a 10% utilization headroom, that left every request for four minutes late
// (93% met). A scale-in keeps room for the rises the last hour showed, and the policy meets the SLO for
// fewer node-hours than the HPA with the Cluster Autoscaler (99.05% for a while, when an 8-minute season,
// judged on its last eight minutes only, vetoed the projection of a rise from the 22nd minute to the 25th,
// ahead of the 28th minute's surge; 100% since a season is judged on every minute a period back
// forecasts).
func TestOnShortPrefillHeavyRequestsAScaleInKeepsRoomForTheRisesSeen(t *testing.T) {
	conv, err := trace.ReadFile("../../deploy/examples/traces/AzureLLMInferenceTrace_conv.csv")
	if err != nil {
		t.Fatal(err)
	}
	reqs := trace.Scale(conv, 30, 1)
	for i := range reqs {
		reqs[i].Prompt = reqs[i].Prompt*5 + 500
		reqs[i].Output = reqs[i].Output/10 + 5
	}
	a := DefaultAssumptions()
	initial := StartingReplicas(OracleSchedule(reqs, a), a)
	spec := exampleSpec(t)
	ours := RunPolicy(reqs, a, Policy{Name: "ours", Spec: spec, Sagas: true}, initial)
	hpa := RunPolicy(reqs, a, Policy{Name: "hpa+ca", Spec: HPASpec(spec, a)}, initial)
	t.Logf("ours %.4f at %.2f node-hours (%d actions); hpa+ca %.4f at %.2f", ours.SLOAttainment, ours.GPUNodeHours, ours.ScaleActions, hpa.SLOAttainment, hpa.GPUNodeHours)
	if ours.SLOAttainment < 0.999 || ours.LostRequests != 0 || ours.GPUNodeHours >= hpa.GPUNodeHours {
		t.Errorf("ours: %.4f at %.2f node-hours, %d lost; hpa+ca %.2f", ours.SLOAttainment, ours.GPUNodeHours, ours.LostRequests, hpa.GPUNodeHours)
	}
}

// diurnal swings between 5 and 35 req/s over a two-hour period: a day's shape, compressed.
func diurnal(t time.Duration) float64 {
	return 20 - 15*math.Cos(2*math.Pi*t.Hours()/2)
}

// dailyInAnHour is the daily shape's swing compressed into an hour: demand doubles within a lead time at its
// foot.
func dailyInAnHour(t time.Duration) float64 { return 20 - 15*math.Cos(2*math.Pi*t.Hours()) }

// bursty is 4 req/s with bursts to 28 req/s for 5 minutes every 20 minutes: gaps longer than the lead time.
func bursty(t time.Duration) float64 {
	if t%(20*time.Minute) >= 12*time.Minute && t%(20*time.Minute) < 17*time.Minute {
		return 28
	}
	return 4
}

func compareOn(t *testing.T, reqs []trace.Request) Report {
	t.Helper()
	a := DefaultAssumptions()
	rep, err := Compare(Options{Assumptions: a, Trace: reqs, Policies: StandardPolicies(exampleSpec(t), a)})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	rep.WriteTable(&b)
	t.Log("\n" + b.String())
	return rep
}

// On a load that follows a daily shape, a constant size pays for the peak all day; ours follows the load
// with the SLO met, for fewer node-hours than both the static size and the HPA with the Cluster Autoscaler.
func TestOnADailyShapeOursBeatsTheBaselineAndTheStaticSize(t *testing.T) {
	rep := compareOn(t, synthetic(2*time.Hour, 5, diurnal))
	ours, hpa, static := find(t, rep, "ours"), find(t, rep, "hpa+ca"), find(t, rep, "static")
	if ours.SLOAttainment < 0.99 || ours.LostRequests != 0 || ours.GPUNodeHours >= hpa.GPUNodeHours || ours.GPUNodeHours >= static.GPUNodeHours {
		t.Errorf("ours: %.4f at %.2f node-hours, %d lost; hpa+ca %.2f, %s %.2f", ours.SLOAttainment, ours.GPUNodeHours, ours.LostRequests, hpa.GPUNodeHours, static.Name, static.GPUNodeHours)
	}
}

// On bursts after idle gaps longer than the lead time, no reactive policy serves a burst's start; the HPA
// fed a queue of in-flight requests orders far too much, too late. Ours sizes from demand, learns the burst
// cycle from two bursts and then orders capacity a lead time ahead of each burst, serving the later bursts
// in full, and lets it go between them: for fewer node-hours than the static size that serves every burst.
// Before the cycle is known, the first burst's capacity is kept (the rise seen) and meets most of the second.
func TestOnRecurringBurstsOursLearnsTheCycleAndScalesAheadOfEachBurst(t *testing.T) {
	reqs := synthetic(140*time.Minute, 4, bursty)
	rep := compareOn(t, reqs)
	ours, hpa, static := find(t, rep, "ours"), find(t, rep, "hpa+ca"), find(t, rep, "static")
	if ours.LostRequests != 0 || ours.GPUNodeHours >= hpa.GPUNodeHours/3 || ours.SLOAttainment <= hpa.SLOAttainment || ours.GPUNodeHours >= static.GPUNodeHours {
		t.Errorf("ours: %.4f at %.2f node-hours, %d lost; hpa+ca %.4f at %.2f; %s %.2f", ours.SLOAttainment, ours.GPUNodeHours, ours.LostRequests,
			hpa.SLOAttainment, hpa.GPUNodeHours, static.Name, static.GPUNodeHours)
	}
	// After the second burst the cycle is known: the later bursts meet the SLO.
	late := 0
	for _, p := range ours.Series {
		if p.T >= 50*60 {
			late += p.Late
		}
	}
	after := 0
	for _, r := range reqs {
		if r.At >= 50*time.Minute {
			after++
		}
	}
	if float64(late) > 0.01*float64(after) {
		t.Errorf("%d of %d requests late after the cycle was learned, above the 1%% budget", late, after)
	}
	// The second burst (minutes 32 to 37) finds most of the first one's capacity: a scale-in keeps room for
	// the rise seen over the last hour, and no reactive policy serves the first.
	secondLate, second := 0, 0
	for _, p := range ours.Series {
		if p.T >= 32*60 && p.T < 45*60 {
			secondLate += p.Late
		}
	}
	for _, r := range reqs {
		if r.At >= 32*time.Minute && r.At < 37*time.Minute {
			second++
		}
	}
	if float64(secondLate) > 0.25*float64(second) {
		t.Errorf("%d of the second burst's %d requests late: its capacity was not kept from the first", secondLate, second)
	}
	// Between bursts the capacity goes, and it is ordered again a lead time ahead of the next burst: in the
	// quiet part of each later cycle (minutes 5 to 8 of it) fewer than half the burst's replicas serve.
	for cycle := 3; cycle < 7; cycle++ {
		from, to := float64(cycle*20+5)*60, float64(cycle*20+8)*60
		low := math.MaxInt
		for _, p := range ours.Series {
			if p.T >= from && p.T < to {
				low = min(low, p.Ready)
			}
		}
		if low > 7 {
			t.Errorf("cycle %d: at least %d replicas through its quiet part: capacity was held between bursts", cycle, low)
		}
	}
}

// Before the trace's first instant Prometheus has no sample: the arrival rate is unreadable (an invalid
// metric keeps the count), not zero (a zero would read as a ramp from nothing to the trace's load).
func TestTheArrivalRateIsUnreadableBeforeTheFirstSample(t *testing.T) {
	spec := exampleSpec(t)
	s := newSim(DefaultAssumptions(), synthetic(5*time.Minute, 1, func(time.Duration) float64 { return 10 }), &static{replicas: 2})
	var demand policy.MetricSpec
	for _, m := range spec.Metrics {
		if m.Type == policy.DemandMetric {
			demand = m
		}
	}
	if r := s.read(demand); r.Error == "" || r.Demand != nil {
		t.Fatalf("at the trace's start: %+v", r)
	}
	s.advance(epoch.Add(30 * time.Second))
	if r := s.read(demand); r.Error != "" || r.Demand == nil {
		t.Fatalf("30 s in: %+v", r)
	}
}

// The autoscaler workflow itself (its child sagas, their retries and timers, under Temporal's test
// environment) measures what the simulator's imitation of it measures, so the imitation's numbers stand for
// the workflow. It found two costs in the workflow that the imitation did not have. A scale-in drained its
// victims one after another, each waiting for its own requests: 6% more node-hours on the conversation trace
// at 10x, 20% at 30x. A scale-out raised while it ran scaled the Deployment for the raise only after the
// wave before was serving, and then for every node asked for meanwhile at once: 11 points of attainment
// lost on the bursts, 9 on the daily cycle in an hour.
func TestTheWorkflowItselfMeasuresWhatItsImitationDoes(t *testing.T) {
	a := DefaultAssumptions()
	for _, c := range []struct {
		name string
		reqs []trace.Request
	}{
		{"conversation trace at 10x", benchTrace(t)},
		{"daily shape", synthetic(2*time.Hour, 5, diurnal)},
		{"recurring bursts", synthetic(140*time.Minute, 4, bursty)},
		{"a daily cycle in an hour", synthetic(2*time.Hour, 6, dailyInAnHour)},
	} {
		t.Run(c.name, func(t *testing.T) {
			sched := OracleSchedule(c.reqs, a)
			initial := StartingReplicas(sched, a)
			imitation := RunPolicy(c.reqs, a, Policy{Name: "ours", Spec: exampleSpec(t), Sagas: true}, initial)
			wf, err := RunWorkflow(c.reqs, a, WorkflowPolicy(exampleModel(t), 0), initial)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("imitation %.4f at %.2f node-hours (%d actions); workflow %.4f at %.2f (%d)",
				imitation.SLOAttainment, imitation.GPUNodeHours, imitation.ScaleActions, wf.SLOAttainment, wf.GPUNodeHours, wf.ScaleActions)
			if math.Abs(wf.SLOAttainment-imitation.SLOAttainment) > 0.005 || math.Abs(wf.GPUNodeHours/imitation.GPUNodeHours-1) > 0.03 ||
				wf.LostRequests != 0 || wf.ScaleActions < imitation.ScaleActions/2 {
				t.Errorf("the workflow: %.4f at %.2f node-hours, %d actions, %d lost; its imitation: %.4f at %.2f, %d actions",
					wf.SLOAttainment, wf.GPUNodeHours, wf.ScaleActions, wf.LostRequests, imitation.SLOAttainment, imitation.GPUNodeHours, imitation.ScaleActions)
			}
		})
	}
}

// With a 5-minute image pull capacity takes 8m10s to serve, twice the 4-minute prior. On a ramp a scale-out
// is raised every few evaluations and ends only with the ramp, so when the lead time was measured on whole
// scale-outs it stayed at the prior through the daily shape's rise, which met 83%. It is measured on each
// wave (the start and each raise, from its order to its replicas ready), and is at least how long the oldest
// wave not yet serving has waited: both the workflow and its imitation meet 95% there.
func TestTheLeadTimeIsLearnedOnARampFromEachWave(t *testing.T) {
	a := DefaultAssumptions()
	a.ImagePull = policy.Duration(5 * time.Minute)
	a.Warmup = a.DefaultWarmup()
	theWorkflowAndItsImitationMeet(t, synthetic(2*time.Hour, 5, diurnal), a, 0.95)
}

// theWorkflowAndItsImitationMeet runs ours on reqs, imitated and run by the workflow itself, and fails
// unless both meet the attainment and lose nothing.
func theWorkflowAndItsImitationMeet(t *testing.T, reqs []trace.Request, a Assumptions, attainment float64) {
	t.Helper()
	initial := StartingReplicas(OracleSchedule(reqs, a), a)
	imitation := RunPolicy(reqs, a, Policy{Name: "ours", Spec: exampleSpec(t), Sagas: true}, initial)
	wf, err := RunWorkflow(reqs, a, WorkflowPolicy(exampleModel(t), 0), initial)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("imitation %.4f at %.2f node-hours; workflow %.4f at %.2f", imitation.SLOAttainment, imitation.GPUNodeHours, wf.SLOAttainment, wf.GPUNodeHours)
	for _, r := range []Result{imitation, wf} {
		if r.SLOAttainment < attainment || r.LostRequests != 0 {
			t.Errorf("%s: %.4f (floor %.3f), %d lost", r.Name, r.SLOAttainment, attainment, r.LostRequests)
		}
	}
}

// On 4-GPU nodes a replica that fits on a node already there serves in a model load's time (40 s): when
// such waves counted as lead times, the lead time fell to 40 s, the scale-in's hold and headroom shrank to
// match, and the next spike, which needed nodes, was met short (96.3%). Only the waves that asked for nodes
// measure the lead time.
func TestOnMultiGPUNodesTheLeadTimeIsMeasuredOnWavesThatAskedForNodes(t *testing.T) {
	a := DefaultAssumptions()
	a.GPUsPerNode = 4
	theWorkflowAndItsImitationMeet(t, synthetic(90*time.Minute, 11, func(t time.Duration) float64 {
		if t%(7*time.Minute) < 90*time.Second {
			return 30
		}
		return 15
	}), a, 0.985)
}

// On 8-GPU nodes a declining load's scale-ins took the least busy pod of any node, leaving every node partly
// used: a third node stayed 50 minutes after the pods fitted on two, and ours cost 17% more node-hours than
// the static size. A scale-in that cannot free a node takes its pods from the node with fewest.
func TestOnMultiGPUNodesAScaleInEmptiesANodeToRemoveIt(t *testing.T) {
	a := DefaultAssumptions()
	a.GPUsPerNode = 8
	reqs := synthetic(2*time.Hour, 31, func(t time.Duration) float64 { return 35 - 30*t.Hours()/2 })
	sched := OracleSchedule(reqs, a)
	ours := RunPolicy(reqs, a, Policy{Name: "ours", Spec: exampleSpec(t), Sagas: true}, StartingReplicas(sched, a))
	static := cheapestStatic(reqs, a, slices.Max(sched))
	t.Logf("ours %.4f at %.2f node-hours; %s %.4f at %.2f", ours.SLOAttainment, ours.GPUNodeHours, static.Name, static.SLOAttainment, static.GPUNodeHours)
	if ours.SLOAttainment < 0.99 || ours.LostRequests != 0 || ours.GPUNodeHours >= static.GPUNodeHours {
		t.Errorf("ours %.4f at %.2f node-hours, %d lost; %s %.2f", ours.SLOAttainment, ours.GPUNodeHours, ours.LostRequests, static.Name, static.GPUNodeHours)
	}
}

// Run by the workflow, nodes slower than the spec's nodeReady timeout are given up on as the activity gives
// up on them: the scale-out fails at the deadline and removes them, so no capacity beyond the start ever
// serves, however long the nodes would have taken.
func TestTheWorkflowGivesUpOnNodesSlowerThanItsTimeout(t *testing.T) {
	a := DefaultAssumptions()
	spec := exampleModel(t)
	a.NodeReady = spec.Spec.Timeouts.NodeReady + policy.Duration(2*time.Minute)
	a.Warmup = policy.Duration(time.Minute)
	reqs := synthetic(40*time.Minute, 5, func(t time.Duration) float64 { return 5 + 20*t.Hours() })
	r, err := RunWorkflow(reqs, a, WorkflowPolicy(spec, 0), 3)
	if err != nil {
		t.Fatal(err)
	}
	most := 0
	for _, p := range r.Series {
		most = max(most, p.Ready)
	}
	if most != 3 || r.ScaleActions == 0 {
		t.Fatalf("%d scale actions, at most %d replicas ready: want scale-outs tried and none serving beyond the 3 at the start", r.ScaleActions, most)
	}
}

// A request refused by full queues waits at the gateway, which retries it when a replica has room: at
// first it was retried only when a replica was added, and with a bounded queue (LoRAX's) a fixed size
// left a burst's overflow waiting to the end.
func TestTheGatewayRetriesARefusedRequestWhenAReplicaHasRoom(t *testing.T) {
	a := DefaultAssumptions()
	a.Serving.MaxQueue = 2
	a.Warmup = 0
	// 200 requests in the first two seconds on two replicas of 16 slots and a queue of 2 each, then one
	// every 10 s or so for ten minutes.
	reqs := synthetic(10*time.Minute, 3, func(t time.Duration) float64 {
		if t < 2*time.Second {
			return 100
		}
		return 0.1
	})
	r := RunStatic(reqs, a, 2)
	if r.Unserved != 0 || r.Requests < 150 {
		t.Fatalf("%d of %d requests never reached a replica", r.Unserved, r.Requests)
	}
}

// An oracle that misses the SLO is named in a warning: its node-hours are then a floor, not the SLO's cost.
func TestAnOracleShortOfTheSLOIsWarnedOf(t *testing.T) {
	a := DefaultAssumptions()
	if w := oracleShort(Result{SLOAttainment: 0.995}, a); w != nil {
		t.Errorf("at 99.5%%: %v", w)
	}
	if w := oracleShort(Result{SLOAttainment: 0.9794}, a); len(w) != 1 || !strings.Contains(w[0], "oracle met 97.94%, short of the 99.00% target") {
		t.Errorf("at 97.94%%: %v", w)
	}
}
