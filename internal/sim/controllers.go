package sim

import (
	"math"
	"time"

	"github.com/llmscaler/llmscaler/policy"
)

// provision starts n replicas that serve at once, on nodes that are already up (the state a run starts
// from, and the oracle's capacity, which foresight has ordered in time).
func (s *sim) provision(n int) {
	per := s.a.podsPerNode()
	var host *node
	for i := range n {
		if i%per == 0 {
			host = s.launchNode()
			host.launched, host.ready, host.gpus, host.warm = s.now, s.now, s.now, true
		}
		s.names++
		p := &pod{name: podName(s.names), node: host, scheduled: s.now, ready: s.now}
		p.srv = newServer(s)
		s.pods = append(s.pods, p)
	}
	s.replicas = int32(len(s.activePods()))
	s.balancedStale = true
	s.flushGateway()
}

// autoscaler runs policy.Evaluate every evaluation interval on an Observation of the simulated cluster.
// With sagas it acts as the autoscaler workflow does: one scale-out or scale-in at a time, a scale-out
// raised while it runs, a scale-in cancelled when load returns, an evaluation as soon as one ends, nodes
// ordered for the target and drained victims removed. Without, it is the HPA beside the Cluster Autoscaler:
// the replica count changes at once, the ReplicaSet picks which pods go (with the baseline's termination
// grace), nodes are added for pending pods and removed after the unneeded time.
type autoscaler struct {
	spec  policy.Spec
	sagas bool

	st     policy.State
	action *action
	leads  []time.Duration
	// scaleOuts counts the scale-outs started (not the raises of one under way).
	scaleOuts int
	gen       int
	actions   int
	// lastScaleUp delays the Cluster Autoscaler's scale-down (scale-down-delay-after-add).
	lastScaleUp time.Time
	// record keeps every decision's record in notes, to explain late spells.
	record bool
	notes  []DecisionNote
}

type action struct {
	kind        policy.ActionKind
	target      int32
	targetNodes int32
	started     time.Time
	// waves are the capacity ordered and not yet serving: the first target and each raise, each with the
	// time it was ordered. The lead time is measured on each, from its order to its replicas serving.
	waves   []wave
	victims []*node
	pods    []*pod
}

// wave is capacity ordered at a time: the replicas that serve once it has arrived, and whether it asked
// for nodes (only those measure the lead time: see workflows.Wave).
type wave struct {
	ordered  time.Time
	replicas int32
	nodes    bool
}

func (a *autoscaler) scaleActions() int { return a.actions }

func (a *autoscaler) init(s *sim) { a.evaluate(s) }

func (a *autoscaler) inProgress() *policy.Action {
	if a.action == nil {
		return nil
	}
	return &policy.Action{Kind: a.action.kind, TargetReplicas: a.action.target, TargetNodes: a.action.targetNodes, Started: a.action.started}
}

func (a *autoscaler) evaluate(s *sim) {
	obs := s.observe(a.spec, a.inProgress())
	var waiting policy.Duration
	if ac := a.action; ac != nil && len(ac.waves) > 0 {
		waiting = policy.Duration(s.now.Sub(ac.waves[0].ordered))
	}
	d := policy.Evaluate(policy.Input{Spec: a.spec, Observation: obs, LeadTime: policy.MeasuredLeadTime(a.leads), Waiting: waiting,
		EvaluationInterval: s.a.EvaluationInterval}, &a.st, s.now)
	before := a.doing(s)
	if a.sagas {
		a.actLikeTheWorkflow(s, d)
	} else {
		a.actLikeTheHPA(s, d)
		a.clusterAutoscaler(s)
	}
	if a.record {
		a.notes = append(a.notes, DecisionNote{At: s.now.Sub(epoch).Seconds(), Acted: a.doing(s) != before, Summary: d.Summary})
	}
	a.scheduleEvaluation(s, s.now.Add(s.a.EvaluationInterval.D()))
}

// doing is what the autoscaler is doing: the Deployment's count and the action under way with its target,
// so that a decision that changed any of them can be told from one that did not.
func (a *autoscaler) doing(s *sim) doing {
	d := doing{replicas: s.replicas, action: a.action}
	if a.action != nil {
		d.target = a.action.target
	}
	return d
}

type doing struct {
	replicas, target int32
	action           *action
}

// scheduleEvaluation replaces the pending evaluation with one at t.
func (a *autoscaler) scheduleEvaluation(s *sim, t time.Time) {
	a.gen++
	gen := a.gen
	s.at(t, func() {
		if a.gen == gen {
			a.evaluate(s)
		}
	})
}

// actLikeTheWorkflow carries out a decision as workflows.Autoscaler's act does.
func (a *autoscaler) actLikeTheWorkflow(s *sim, d policy.Decision) {
	step := policy.NextStep(a.inProgress(), d)
	switch step.Kind {
	case policy.StepRaise:
		ac := a.action
		a.st.RecordScale(ac.target, step.Replicas, s.now)
		ac.waves = append(ac.waves, wave{ordered: s.now, replicas: step.Replicas, nodes: step.Nodes > ac.targetNodes})
		ac.target, ac.targetNodes = step.Replicas, step.Nodes
		s.setGroupSize(int(step.Nodes))
		s.setReplicas(step.Replicas, s.a.DrainGrace.D())
		return
	case policy.StepCancel:
		a.cancelScaleIn(s)
		return
	case policy.StepNone:
		return
	}
	switch d.Action {
	case policy.ScaleOut:
		a.action = &action{kind: policy.ScaleOut, target: step.Replicas, targetNodes: step.Nodes, started: s.now,
			waves: []wave{{ordered: s.now, replicas: step.Replicas, nodes: step.Nodes > d.Nodes.Requested}}}
		a.scaleOuts++
		s.setGroupSize(int(step.Nodes))
		s.setReplicas(step.Replicas, s.a.DrainGrace.D())
	case policy.ScaleIn:
		ac := &action{kind: policy.ScaleIn, target: d.DesiredReplicas, targetNodes: d.Nodes.Target, started: s.now}
		byName := map[string]*node{}
		for _, n := range s.nodes {
			byName[n.name] = n
		}
		podByName := map[string]*pod{}
		for _, p := range s.pods {
			podByName[p.name] = p
		}
		for _, v := range d.Nodes.Victims {
			if n := byName[v.Node]; n != nil && !n.gone {
				n.cordoned = true
				ac.victims = append(ac.victims, n)
				for _, p := range s.pods {
					if p.node == n && !p.gone {
						ac.pods = append(ac.pods, p)
						s.deletePod(p, s.a.DrainGrace.D())
					}
				}
			}
		}
		for _, name := range d.Nodes.VictimPods {
			if p := podByName[name]; p != nil && !p.gone {
				ac.pods = append(ac.pods, p)
				s.deletePod(p, s.a.DrainGrace.D())
			}
		}
		s.setReplicas(d.DesiredReplicas, s.a.DrainGrace.D())
		a.action = ac
		a.removeDrainedNodes(s)
	default:
		return
	}
	a.actions++
	a.st.RecordScale(d.CurrentReplicas, d.DesiredReplicas, s.now)
	// A saga with nothing to wait for (idle victims, capacity already there) ends at once.
	a.changed(s)
}

// cancelScaleIn restores the victims still there: uncordoned, their draining pods back in the balancer.
func (a *autoscaler) cancelScaleIn(s *sim) {
	for _, n := range a.action.victims {
		if !n.gone {
			n.cordoned = false
		}
	}
	for _, p := range a.action.pods {
		if !p.gone && p.deleting {
			p.deleting = false
		}
	}
	s.balancedStale = true
	s.replicas = int32(len(s.activePods()))
	a.action = nil
}

// removeDrainedNodes terminates the victims whose pods are gone (the saga's last step).
func (a *autoscaler) removeDrainedNodes(s *sim) {
	for _, n := range a.action.victims {
		if !n.gone && s.podsOn(n) == 0 {
			s.terminateNode(n)
		}
	}
}

func (a *autoscaler) changed(s *sim) {
	ac := a.action
	if !a.sagas || ac == nil {
		return
	}
	done := false
	switch ac.kind {
	case policy.ScaleOut:
		ready := 0
		for _, p := range s.activePods() {
			if p.routable(s.now) {
				ready++
			}
		}
		for len(ac.waves) > 0 && int32(ready) >= ac.waves[0].replicas {
			if ac.waves[0].nodes {
				a.leads = append(a.leads, s.now.Sub(ac.waves[0].ordered))
				if len(a.leads) > 5 {
					a.leads = a.leads[1:]
				}
			}
			ac.waves = ac.waves[1:]
		}
		done = int32(ready) >= ac.target
	case policy.ScaleIn:
		a.removeDrainedNodes(s)
		done = true
		for _, p := range ac.pods {
			done = done && p.gone
		}
		for _, n := range ac.victims {
			done = done && n.gone
		}
	}
	if done {
		// The loop wakes when its child ends and evaluates at once.
		a.action = nil
		a.scheduleEvaluation(s, s.now)
	}
}

// actLikeTheHPA sets the Deployment's replicas to the decision at once, as the HPA does.
func (a *autoscaler) actLikeTheHPA(s *sim, d policy.Decision) {
	if d.DesiredReplicas == s.replicas {
		return
	}
	a.st.RecordScale(s.replicas, d.DesiredReplicas, s.now)
	s.setReplicas(d.DesiredReplicas, s.a.BaselineGrace.D())
	a.actions++
}

// clusterAutoscaler adds nodes for pods that no node, serving or on its way, has room for, and removes a
// node that has been empty for the unneeded time (not within that time of a scale-up).
func (a *autoscaler) clusterAutoscaler(s *sim) {
	per := s.a.podsPerNode()
	pending, room := 0, 0
	for _, p := range s.pods {
		if p.node == nil && !p.gone && !p.deleting {
			pending++
		}
	}
	for _, n := range s.nodes {
		if !n.gone && !n.cordoned {
			room += per - s.podsOn(n)
		}
	}
	if need := int(math.Ceil(float64(pending-room) / float64(per))); need > 0 {
		s.setGroupSize(s.liveNodes() + need)
		a.lastScaleUp = s.now
	}
	unneeded := s.a.ScaleDownUnneeded.D()
	for _, n := range s.nodes {
		switch {
		case n.gone || !n.serving(s.now):
		case s.podsOn(n) > 0:
			n.unneededSince = time.Time{}
		case n.unneededSince.IsZero():
			n.unneededSince = s.now
		case s.now.Sub(n.unneededSince) >= unneeded && s.now.Sub(a.lastScaleUp) >= unneeded:
			s.terminateNode(n)
		}
	}
}

// static keeps a constant number of replicas, serving from the start.
type static struct{ replicas int }

func (c *static) init(s *sim)       { s.provision(c.replicas) }
func (c *static) changed(*sim)      {}
func (c *static) scaleActions() int { return 0 }

// oracle resizes once a minute to the replicas that minute's peak of requests in flight needs, with
// perfect foresight: new replicas serve from the minute's start, and removed ones stop taking requests
// and finish what they hold at no cost. Its node-hours are the schedule's.
type oracle struct {
	schedule []int
	changes  int
}

func (c *oracle) scaleActions() int { return c.changes }

func (c *oracle) init(s *sim) {
	for m, n := range c.schedule {
		at := epoch.Add(time.Duration(m) * time.Minute)
		if m == 0 {
			s.provision(n)
			continue
		}
		if n != c.schedule[m-1] {
			c.changes++
		}
		s.at(at, func() { c.resize(s, n) })
	}
}

func (c *oracle) resize(s *sim, n int) {
	active := s.activePods()
	if len(active) < n {
		s.provision(n - len(active))
		return
	}
	// The least busy go first.
	for range len(active) - n {
		var victim *pod
		for _, p := range s.activePods() {
			if victim == nil || p.srv.InFlight() < victim.srv.InFlight() {
				victim = p
			}
		}
		s.deletePod(victim, 24*time.Hour)
	}
	s.replicas = int32(n)
}

// changed removes the nodes whose pods have finished.
func (c *oracle) changed(s *sim) {
	for _, n := range s.nodes {
		if !n.gone && s.podsOn(n) == 0 {
			s.terminateNode(n)
		}
	}
}
