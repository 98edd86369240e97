package sim

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestLateSpellsAreTheWorstStretchesWithTheDecisionsThatShapedThem(t *testing.T) {
	// A point every 15 s for 20 minutes; late requests in the warm-up (up to 2 minutes, the point at 2
	// minutes is after it), a small spell at 3.25 minutes, a large one from 8 to 9.5 minutes whose late
	// points are up to a minute apart (one spell), and a middle one at 15 minutes.
	late := map[int]int{4: 50, 8: 7, 12: 3, 32: 40, 34: 30, 38: 60, 60: 20, 61: 5}
	var series []Point
	for i := range 80 {
		series = append(series, Point{T: float64(15 * i), Load: 10, Ready: 12, Late: late[i]})
	}
	// Within the large spell, between its late points: the load peaks at 14 and a replica is away.
	series[36].Load, series[35].Ready = 14, 11
	// In the middle spell the load (10) stays within the 12 replicas: the balancer's spread.
	// A decision every 15 s, acted on at 8m30s (the scale-out) and not at 8m45s.
	var notes []DecisionNote
	for i := range 80 {
		d := DecisionNote{At: float64(15*i) - 1, Summary: "12 -> 12"}
		switch i {
		case 34:
			d.Acted, d.Summary = true, "12 -> 16: the scale-out"
		case 35:
			d.Summary = "16 -> 16: on its way"
		}
		notes = append(notes, d)
	}
	spells := lateSpells(series, notes, 2*time.Minute, 3*time.Minute, 15*time.Second, 2)
	if len(spells) != 2 {
		t.Fatalf("%d spells: %+v", len(spells), spells)
	}
	big, middle := spells[0], spells[1]
	if big.From != 465 || big.To != 570 || big.Late != 130 || big.ReadyReplicas != 12 || big.PeakLoad != 14 || big.fewestReady != 11 {
		t.Errorf("the large spell: %+v", big)
	}
	if middle.From != 885 || middle.To != 915 || middle.Late != 25 {
		t.Errorf("the middle spell: %+v", middle)
	}
	// Its decisions: the last at or before 465 - 180 s, the last as it began, and the one acted on.
	var at []float64
	for _, d := range big.Decisions {
		at = append(at, d.At)
	}
	if len(at) != 3 || at[0] != 284 || at[1] != 464 || at[2] != 509 || !strings.Contains(big.Decisions[2].Summary, "the scale-out") {
		t.Errorf("the large spell's decisions at %v", at)
	}
	// The load (14) outgrew the 11 replicas: a shortage; the middle one's did not.
	if big.spread() != "" || middle.spread() == "" {
		t.Errorf("spread: %q and %q", big.spread(), middle.spread())
	}
	// The small spell is the third: asked for three, it is there, and the warm-up's point is not.
	three := lateSpells(series, notes, 2*time.Minute, 3*time.Minute, 15*time.Second, 3)
	if len(three) != 3 || three[0].From != 105 || three[0].Late != 10 {
		t.Errorf("three spells: %+v", three)
	}
	if got := lateSpells(series[:8], notes, 2*time.Minute, 3*time.Minute, 15*time.Second, 3); got != nil {
		t.Errorf("late only in the warm-up: %+v", got)
	}
	// Sampled every 90 s, late points 90 s apart are one spell.
	sparse := []Point{{T: 0}, {T: 90, Late: 1}, {T: 180, Late: 2}, {T: 270}}
	if got := lateSpells(sparse, nil, 0, time.Minute, 90*time.Second, 3); len(got) != 1 || got[0].Late != 3 {
		t.Errorf("every 90 s: %+v", got)
	}
}

// The workflow explains its late spells from its own decision records, read as it runs (it keeps only its
// latest 50, and a long run continues as new): over three hours of a load that steps up twice, every
// evaluation's record is there, and its spells are those of the simulator's imitation of it.
func TestTheWorkflowExplainsItsLateSpellsFromItsOwnRecords(t *testing.T) {
	a := DefaultAssumptions()
	reqs := synthetic(3*time.Hour, 5, func(t time.Duration) float64 {
		switch {
		case t > 2*time.Hour:
			return 30
		case t > 40*time.Minute:
			return 20
		}
		return 8
	})
	spec := exampleModel(t)
	sched := OracleSchedule(reqs, a)
	initial := StartingReplicas(sched, a)
	p := WorkflowPolicy(spec, 0)
	p.Explain = 2
	wf, err := RunWorkflow(reqs, a, p, initial)
	if err != nil {
		t.Fatal(err)
	}
	ours := RunPolicy(reqs, a, Policy{Name: "ours", Spec: spec.Spec.Spec, Sagas: true, Explain: 2}, initial)
	if len(wf.LateSpells) != 2 || len(ours.LateSpells) != 2 {
		t.Fatalf("spells: the workflow's %+v, ours' %+v", wf.LateSpells, ours.LateSpells)
	}
	for i, sp := range wf.LateSpells {
		// Each step's spell, as the imitation has it, within a minute.
		// Each step's spell, as the imitation has it: its end within a minute, its late requests within 5%
		// (a few late requests before the step join it in one run and not in the other).
		if o := ours.LateSpells[i]; math.Abs(sp.To-o.To) > 60 || math.Abs(float64(sp.Late-o.Late)) > 0.05*float64(o.Late) {
			t.Errorf("spell %d: %.0f-%.0f s, %d late; ours' %.0f-%.0f s, %d late", i, sp.From, sp.To, sp.Late, o.From, o.To, o.Late)
		}
		var acted int
		for _, d := range sp.Decisions {
			if d.Acted {
				acted++
			}
		}
		// The record a lead time before it (within an evaluation of that: none is missing there), the one as
		// it began, and the scale-out started or raised in it.
		lead, every := a.LeadTime().Seconds(), a.EvaluationInterval.D().Seconds()
		if len(sp.Decisions) < 3 || sp.Decisions[0].At > sp.From-lead || sp.Decisions[0].At < sp.From-lead-every-1 || acted == 0 {
			t.Errorf("spell %d (%.0f-%.0f s): %d records, %d acted on, the first at %.0f s", i, sp.From, sp.To, len(sp.Decisions), acted, sp.Decisions[0].At)
		}
	}
}
