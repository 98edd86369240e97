package policy

// StepKind is what the autoscaler does with a decision, given the action under way.
type StepKind string

const (
	// StepNone: nothing (no change, or the action under way already covers the decision).
	StepNone StepKind = ""
	// StepStart: no action is under way; start the decision's scale-out or scale-in.
	StepStart StepKind = "start"
	// StepRaise: a scale-out is under way and the decision wants more: raise its target.
	StepRaise StepKind = "raise"
	// StepCancel: a scale-in is under way and load has returned: cancel it (its node is restored).
	StepCancel StepKind = "cancel"
)

// Step is the next step and, to start or raise, the replica and node targets.
type Step struct {
	Kind     StepKind
	Replicas int32
	Nodes    int32
}

// NextStep says what to do with a decision while an action may be under way: one action at a time; a
// running scale-out is raised (never lowered: it finishes, and a later evaluation scales in), so a surge
// during a node boot gives one scale-out, not one per tick; a running scale-in is cancelled when the
// decision wants more replicas than it is heading for. The autoscaler workflow and the simulator both act on
// it.
func NextStep(running *Action, d Decision) Step {
	if running == nil || running.Kind == NoAction {
		if d.Action == NoAction {
			return Step{}
		}
		nodes := d.Nodes.Target
		if d.Action == ScaleOut {
			nodes = max(nodes, d.Nodes.Requested) // a scale-out never shrinks the group
		}
		return Step{Kind: StepStart, Replicas: d.DesiredReplicas, Nodes: nodes}
	}
	switch {
	case running.Kind == ScaleOut && (d.DesiredReplicas > running.TargetReplicas || d.Nodes.Target > running.TargetNodes):
		return Step{Kind: StepRaise, Replicas: max(d.DesiredReplicas, running.TargetReplicas), Nodes: max(d.Nodes.Target, running.TargetNodes)}
	case running.Kind == ScaleIn && d.DesiredReplicas > running.TargetReplicas:
		return Step{Kind: StepCancel}
	}
	return Step{}
}
