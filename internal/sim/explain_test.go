package sim

import (
	"strings"
	"testing"
	"time"
)

func TestLateSpellsAreTheWorstStretchesWithTheDecisionsThatShapedThem(t *testing.T) {
	// A point every 15 s for 20 minutes; late requests in the warm-up (first 2 minutes), a small spell at
	// 4 minutes, a large one from 8 to 9.5 minutes whose late points are up to a minute apart (one spell),
	// and a middle one at 15 minutes.
	late := map[int]int{4: 50, 16: 3, 32: 40, 34: 30, 38: 60, 60: 20, 61: 5}
	var series []Point
	for i := range 80 {
		series = append(series, Point{T: float64(15 * i), Load: 10, Ready: 12, Late: late[i]})
	}
	series[36].Load = 14
	// A decision every 15 s: 12 -> 12, but a scale-out from 12 to 16 at 8m30s.
	var notes []DecisionNote
	for i := range 80 {
		d := DecisionNote{At: float64(15*i) - 1, Committed: 12, Desired: 12, Summary: "12 -> 12"}
		if i == 34 {
			d.Desired, d.Summary = 16, "12 -> 16: the scale-out"
		}
		notes = append(notes, d)
	}
	spells := lateSpells(series, notes, 2*time.Minute, 3*time.Minute, 2)
	if len(spells) != 2 {
		t.Fatalf("%d spells: %+v", len(spells), spells)
	}
	big, middle := spells[0], spells[1]
	if big.From != 465 || big.To != 570 || big.Late != 130 || big.ReadyReplicas != 12 || big.PeakLoad != 14 {
		t.Errorf("the large spell: %+v", big)
	}
	if middle.From != 885 || middle.To != 915 || middle.Late != 25 {
		t.Errorf("the middle spell: %+v", middle)
	}
	// Its decisions: the last at or before 465 - 180 s, the last as it began, and the scale-out during it.
	var at []float64
	for _, d := range big.Decisions {
		at = append(at, d.At)
	}
	if len(at) != 3 || at[0] != 284 || at[1] != 464 || at[2] != 509 || !strings.Contains(big.Decisions[2].Summary, "the scale-out") {
		t.Errorf("the large spell's decisions at %v", at)
	}
	// The load (14) outgrew the 12 replicas: a shortage; the middle one's did not.
	if big.spread() != "" || middle.spread() == "" {
		t.Errorf("spread: %q and %q", big.spread(), middle.spread())
	}
	if got := lateSpells(series[:10], notes, 2*time.Minute, 3*time.Minute, 3); got != nil {
		t.Errorf("late only in the warm-up: %+v", got)
	}
}
