package workflows

import (
	"fmt"
	"strings"
	"time"
)

// details is the markdown the Web UI shows as the run's current details, rewritten every evaluation.
func (a *autoscaler) details(now time.Time) string {
	st := a.status(now)
	var b strings.Builder
	fmt.Fprintf(&b, "### %s/%s · Deployment `%s`\n\n", st.Namespace, st.Model, st.Deployment)
	fmt.Fprintf(&b, "**State:** %s · **Replicas:** %d current, %d ready, %d desired (min %d, max %d)\n\n",
		st.State, st.CurrentReplicas, st.ReadyReplicas, st.DesiredReplicas, st.MinReplicas, st.MaxReplicas)
	serving, coming := 0, int32(0)
	for _, n := range st.Nodes {
		if n.Serving() {
			serving++
		}
	}
	if d := st.LastDecision; d != nil {
		coming = d.ComingNodes
	}
	fmt.Fprintf(&b, "**Nodes** (%s, %s): %d requested, %d serving, %d on their way (group min %d, max %d)\n\n",
		a.spec.Spec.NodeGroup.Name, a.spec.Spec.NodeGroup.Provider, st.Group.Desired, serving, coming, st.Group.Min, st.Group.Max)
	if o := st.Overrides; o.Paused {
		fmt.Fprintf(&b, "**Paused** since %s UTC: %s\n\n", o.PausedAt.UTC().Format(time.DateTime), o.PauseReason)
	}
	if o := st.Overrides; o.Pinned != nil {
		fmt.Fprintf(&b, "**Pinned** to %d replicas until %s UTC: %s\n\n", *o.Pinned, o.PinnedUntil.UTC().Format(time.DateTime), o.PinReason)
	}
	if st.LastError != "" {
		fmt.Fprintf(&b, "**Last evaluation failed:** %s\n\n", st.LastError)
	}
	for _, bo := range []struct {
		word string
		b    Backoff
	}{{"Scale-out", st.OutBackoff}, {"Scale-in", st.InBackoff}} {
		if !bo.b.Until.IsZero() {
			fmt.Fprintf(&b, "**%s backing off** until %s UTC after %d failure(s)\n\n", bo.word, bo.b.Until.UTC().Format(time.TimeOnly), bo.b.Failures)
		}
	}
	if d := st.LastDecision; d != nil {
		fmt.Fprintf(&b, "**Last decision** (%s UTC): %s\n\n", d.Time.UTC().Format(time.TimeOnly), d.Summary)
	}
	if p := st.InProgress; p != nil {
		fmt.Fprintf(&b, "**In progress:** %s to %d replicas / %d nodes, `%s`, since %s UTC\n\n", p.Kind, p.ToReplicas, p.ToNodes, p.WorkflowID, p.Started.UTC().Format(time.TimeOnly))
	}
	if len(st.Actions) > 0 {
		b.WriteString("**Recent actions**\n\n| started (UTC) | action | replicas | nodes | result |\n|---|---|---|---|---|\n")
		for i := len(st.Actions) - 1; i >= 0 && i >= len(st.Actions)-5; i-- {
			r := st.Actions[i]
			result := r.Result
			if r.Error != "" {
				result += ": " + r.Error
			}
			fmt.Fprintf(&b, "| %s | %s | %d -> %d | %d -> %d | %s |\n", r.Started.UTC().Format(time.DateTime), r.Kind,
				r.FromReplicas, r.ToReplicas, r.FromNodes, r.ToNodes, strings.ReplaceAll(result, "|", "/"))
		}
	}
	return b.String()
}
