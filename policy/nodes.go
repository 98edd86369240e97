package policy

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// NodePlan says how the node group must change for the desired replica count.
type NodePlan struct {
	GPUsPerNode int32 `json:"gpusPerNode"`
	PodsPerNode int32 `json:"podsPerNode"`
	// Needed is the node count the desired replicas need; Target bounds it by the group's min and max.
	Needed int32 `json:"needed"`
	Target int32 `json:"target"`
	// Requested is the group's requested size now (booting nodes included); Serving are Ready with GPUs.
	Requested int32 `json:"requested"`
	Serving   int32 `json:"serving"`
	// Add is how many nodes to request (Target - Requested when positive).
	Add int32 `json:"add,omitempty"`
	// Victims are the nodes to drain and remove, in order.
	Victims []Victim `json:"victims,omitempty"`
	// VictimPods are pods to remove beyond those on victim nodes (those of the node with the fewest first).
	VictimPods []string `json:"victimPods,omitempty"`
}

// Victim is a node chosen for removal.
type Victim struct {
	Node       string   `json:"node"`
	InstanceID string   `json:"instanceID,omitempty"`
	Pods       []string `json:"pods,omitempty"`
	// Busy is the sum of the busy metric over the node's pods (in-flight requests).
	Busy   float64 `json:"busy"`
	Reason string  `json:"reason"`
}

// gpusPerNode is the group's GPUs per node, else the largest allocatable seen, else 1.
func gpusPerNode(obs Observation) int32 {
	if obs.Group.GPUsPerNode > 0 {
		return obs.Group.GPUsPerNode
	}
	var g int32
	for _, n := range obs.Nodes {
		g = max(g, n.GPUsAllocatable)
	}
	return max(g, 1)
}

// podsPerNode is how many replicas fit on one node of the group.
func podsPerNode(spec Spec, obs Observation) int32 {
	return max(gpusPerNode(obs)/max(spec.GPUsPerPod, 1), 1)
}

// replicaCapacity is how many replicas the group can hold at its max size.
func replicaCapacity(spec Spec, obs Observation) int32 {
	return obs.Group.Max * podsPerNode(spec, obs)
}

func ceilDiv(a, b int32) int32 { return (a + b - 1) / b }

// planNodes computes the node plan for moving from the committed replica count to desired.
func planNodes(spec Spec, obs Observation, committed, desired int32) NodePlan {
	p := NodePlan{GPUsPerNode: gpusPerNode(obs), PodsPerNode: podsPerNode(spec, obs), Requested: obs.Group.Desired}
	for _, n := range obs.Nodes {
		if n.Serving() {
			p.Serving++
		}
	}
	p.Needed = ceilDiv(desired, p.PodsPerNode)
	p.Target = min(max(p.Needed, obs.Group.Min), max(obs.Group.Max, obs.Group.Min))
	if p.Target > p.Requested {
		p.Add = p.Target - p.Requested
		return p
	}
	if desired >= committed && p.Target >= p.Requested {
		return p
	}
	p.Victims, p.VictimPods = chooseVictims(spec, obs, committed-desired, p.Requested-p.Target)
	return p
}

// chooseVictims picks nodes to remove (at most maxNodes) and pods to remove (podsToRemove in all): empty
// nodes first, then the least busy, never a protected node, never a node whose pods exceed what is left to
// remove; then single pods to make up the count, from the node with the fewest first (see below).
func chooseVictims(spec Spec, obs Observation, podsToRemove, maxNodes int32) ([]Victim, []string) {
	busy := busyByPod(spec, obs)
	podsOn := map[string][]string{}
	for _, p := range obs.Pods {
		if p.Node != "" && !p.Deleting && p.Phase != PodFailed && p.Phase != PodSucceeded {
			podsOn[p.Node] = append(podsOn[p.Node], p.Name)
		}
	}
	type cand struct {
		node Node
		pods []string
		busy float64
	}
	var cands []cand
	for _, n := range obs.Nodes {
		if n.Protected || n.Deleting {
			continue
		}
		c := cand{node: n, pods: podsOn[n.Name]}
		for _, p := range c.pods {
			c.busy += busy[p]
		}
		cands = append(cands, c)
	}
	slices.SortStableFunc(cands, func(a, b cand) int {
		return cmp.Or(
			cmp.Compare(len(a.pods), len(b.pods)),
			cmp.Compare(a.busy, b.busy),
			// Nodes not serving (booting, NotReady) go before serving ones.
			cmp.Compare(boolRank(a.node.Serving()), boolRank(b.node.Serving())),
			cmp.Compare(a.node.Name, b.node.Name),
		)
	})
	var victims []Victim
	removed := map[string]bool{}
	left := podsToRemove
	for _, c := range cands {
		if int32(len(victims)) >= maxNodes {
			break
		}
		if int32(len(c.pods)) > left {
			continue
		}
		reason := "empty"
		if len(c.pods) > 0 {
			reason = fmt.Sprintf("least busy: %s in flight on %d pod(s)", formatNumber(c.busy), len(c.pods))
		}
		victims = append(victims, Victim{Node: c.node.Name, InstanceID: c.node.InstanceID, Pods: c.pods, Busy: c.busy, Reason: reason})
		left -= int32(len(c.pods))
		for _, p := range c.pods {
			removed[p] = true
		}
	}
	// The rest of the count comes off as single pods; pods not yet scheduled or ready go first, as the
	// ReplicaSet controller would pick them. Then the pods of the node with the fewest (the least busy of
	// those): a node that cannot go whole now empties over the next scale-ins and goes then, where pods taken
	// least busy first from every node would leave every node partly used and paid for (on 8-GPU nodes a
	// declining load kept a third node for 50 minutes after its pods fitted on two). Then the least busy.
	var rest []Pod
	for _, p := range obs.Pods {
		if !removed[p.Name] && !p.Deleting && p.Phase != PodFailed && p.Phase != PodSucceeded {
			rest = append(rest, p)
		}
	}
	// A protected node cannot go: its pods come off after those of the nodes that can.
	nodeBusy, removable := map[string]float64{}, map[string]bool{}
	for _, c := range cands {
		nodeBusy[c.node.Name], removable[c.node.Name] = c.busy, true
	}
	onRemovable := func(node string) int {
		if !removable[node] {
			return math.MaxInt
		}
		return len(podsOn[node])
	}
	slices.SortStableFunc(rest, func(a, b Pod) int {
		return cmp.Or(
			cmp.Compare(boolRank(a.Node != ""), boolRank(b.Node != "")),
			cmp.Compare(boolRank(a.Ready), boolRank(b.Ready)),
			cmp.Compare(onRemovable(a.Node), onRemovable(b.Node)),
			cmp.Compare(nodeBusy[a.Node], nodeBusy[b.Node]),
			// Nodes alike (idle ones are) still give up their pods one node at a time.
			cmp.Compare(a.Node, b.Node),
			cmp.Compare(busy[a.Name], busy[b.Name]),
			cmp.Compare(a.Name, b.Name),
		)
	})
	var pods []string
	for _, p := range rest {
		if left <= 0 {
			break
		}
		pods = append(pods, p.Name)
		left--
	}
	return victims, pods
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// busyByPod reads the busy metric's per-pod samples.
func busyByPod(spec Spec, obs Observation) map[string]float64 {
	name := spec.BusyMetric
	if name == "" {
		for _, m := range spec.Metrics {
			if m.Type == PodsMetric {
				name = m.Name()
				break
			}
		}
	}
	out := map[string]float64{}
	for _, r := range obs.Metrics {
		if r.Name == name && name != "" {
			for _, s := range r.Pods {
				out[s.Pod] = s.Value
			}
		}
	}
	return out
}
