package sim

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"time"
)

// LateSpell is a stretch of a run in which requests started later than the SLO, with the decisions that
// shaped it: the answer to "why was it late?" that the decision records give, as the workflow's give an
// operator in the Web UI.
type LateSpell struct {
	// From and To are seconds into the trace: the sample before the first late request's and the sample of
	// the last one.
	From float64 `json:"from_s"`
	To   float64 `json:"to_s"`
	Late int     `json:"late_requests"`
	// ReadyReplicas were serving as it began; PeakLoad is the most requests in flight during it, in
	// replicas' worth (over the batch).
	ReadyReplicas int     `json:"ready_replicas"`
	PeakLoad      float64 `json:"peak_load_replicas"`
	// fewestReady is the fewest replicas serving during it.
	fewestReady int
	// Decisions are the autoscaler's records that shaped it: the last one a lead time or more before it
	// began (the capacity that could serve it was ordered then or earlier), the last one as it began, and
	// each one during it the autoscaler acted on.
	Decisions []DecisionNote `json:"decisions"`
}

// DecisionNote is one evaluation's record: when (seconds into the trace), whether the autoscaler acted on
// it (started, raised or cancelled an action, or changed the count), and its summary
// (policy.Decision.Summary).
type DecisionNote struct {
	At      float64 `json:"at_s"`
	Acted   bool    `json:"acted"`
	Summary string  `json:"summary"`
}

// spellGap is how long a run may serve every request in time and still be in the same late spell (at
// least a sample interval): a queue that drains and builds again within a minute is one shortage.
const spellGap = time.Minute

// lateSpells is the n spells with the most late requests after the warm-up, in time order, each with the
// decisions that shaped it (notes are every evaluation's, in time order; series' Late counts the late
// requests by the sample interval they arrived in, interval long).
func lateSpells(series []Point, notes []DecisionNote, warmup, lead, interval time.Duration, n int) []LateSpell {
	var spells []LateSpell
	gap := max(spellGap, interval).Seconds()
	lastLate := -1 // the index of the last late point
	for i, p := range series {
		if p.Late == 0 || p.T < warmup.Seconds() {
			continue
		}
		if k := len(spells) - 1; k >= 0 && p.T-series[lastLate].T <= gap {
			spells[k].To, spells[k].Late = p.T, spells[k].Late+p.Late
			for _, q := range series[lastLate+1 : i+1] {
				spells[k].PeakLoad = max(spells[k].PeakLoad, q.Load)
				spells[k].fewestReady = min(spells[k].fewestReady, q.Ready)
			}
		} else {
			from := p
			if i > 0 {
				from = series[i-1]
			}
			spells = append(spells, LateSpell{From: from.T, To: p.T, Late: p.Late, ReadyReplicas: from.Ready, PeakLoad: max(from.Load, p.Load),
				fewestReady: min(from.Ready, p.Ready)})
		}
		lastLate = i
	}
	slices.SortStableFunc(spells, func(a, b LateSpell) int { return cmp.Compare(b.Late, a.Late) })
	spells = spells[:min(n, len(spells))]
	slices.SortFunc(spells, func(a, b LateSpell) int { return cmp.Compare(a.From, b.From) })
	for i := range spells {
		spells[i].Decisions = shapedBy(notes, spells[i], lead)
	}
	return spells
}

// shapedBy picks the decisions that shaped a spell (see LateSpell.Decisions).
func shapedBy(notes []DecisionNote, sp LateSpell, lead time.Duration) []DecisionNote {
	var out []DecisionNote
	before, began := -1, -1
	for i, d := range notes {
		if d.At <= sp.From-lead.Seconds() {
			before = i
		}
		if d.At <= sp.From {
			began = i
		}
	}
	if before >= 0 {
		out = append(out, notes[before])
	}
	if began >= 0 && began != before {
		out = append(out, notes[began])
	}
	for _, d := range notes[began+1:] {
		if d.At > sp.To {
			break
		}
		if d.Acted {
			out = append(out, d)
		}
	}
	return out
}

// clock is seconds into the trace as the decision records write times: the simulated wall clock.
func clock(seconds float64) string {
	return epoch.Add(time.Duration(seconds * float64(time.Second))).UTC().Format(time.TimeOnly)
}

// writeSpells prints each explained policy's late spells for people.
func (r Report) writeSpells(w io.Writer) {
	for _, p := range r.Policies {
		if p.LateSpells == nil {
			continue
		}
		if len(p.LateSpells) == 0 {
			fmt.Fprintf(w, "\n%s served every request in time after the warm-up.\n", p.Name)
			continue
		}
		fmt.Fprintf(w, "\nWhy %s was late: the %d spell(s) with the most late requests after the warm-up, with the decisions that shaped each\n"+
			"(the last a lead time or more before it, the one as it began, and each during it that it acted on):\n", p.Name, len(p.LateSpells))
		for _, sp := range p.LateSpells {
			fmt.Fprintf(w, "  %s-%s: %d late; %d replicas serving as it began, the load peaked at %.1f replicas' worth%s\n",
				clock(sp.From), clock(sp.To), sp.Late, sp.ReadyReplicas, sp.PeakLoad, sp.spread())
			for _, d := range sp.Decisions {
				fmt.Fprintf(w, "    %s %s\n", clock(d.At), d.Summary)
			}
		}
	}
}

// spread says, when the requests in flight never outgrew the replicas serving, that the late ones waited
// on busy replicas while others had room: the balancer's spread (two random choices), not a shortage.
func (sp LateSpell) spread() string {
	if sp.PeakLoad > float64(sp.fewestReady) {
		return ""
	}
	return " (never more than the replicas serving hold: the late requests waited on busy replicas while others had room, the balancer's spread, not a shortage)"
}
