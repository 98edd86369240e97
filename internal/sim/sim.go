// Package sim is a discrete-event simulation of one model's GPU capacity under an LLM trace. Replicas are
// LoRAX-like servers (internal/serving, the load simulator's model) behind a least-request balancer; GPU
// nodes take realistic times to launch, become Ready, advertise their GPUs, pull the image and load the
// model; scale-in drains. A controller decides the capacity: our policy (policy.Evaluate, the code the
// autoscaler workflow runs, with the sagas' semantics), the HPA with the Cluster Autoscaler, a static size,
// or a clairvoyant oracle. Each run measures what users pick an autoscaler on: the share of requests that
// start within the queueing-delay SLO, and the GPU node-hours paid for.
//
// Time is simulated: an hour of a ten-times-busier Azure trace (about 200,000 requests) runs in well under a
// second. Runs are deterministic: the same inputs give the same numbers.
package sim

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/llmscaler/llmscaler/internal/serving"
	"github.com/llmscaler/llmscaler/internal/trace"
	"github.com/llmscaler/llmscaler/policy"
)

// Assumptions are every delay and serving parameter a run uses; the report prints them all.
type Assumptions struct {
	// NodeReady is the time from asking for a node to it being Ready (EC2 launch + kubelet: 70-100 s).
	NodeReady policy.Duration `json:"node_ready"`
	// GPUAllocatable is the time from Ready to the device plugin advertising the GPUs (about 60 s).
	GPUAllocatable policy.Duration `json:"gpu_allocatable_after_ready"`
	// ImagePull is the image pull on a node that has not run the model yet (cached: 0).
	ImagePull policy.Duration `json:"image_pull"`
	// ModelLoad is the time from container start to the readiness probe passing.
	ModelLoad policy.Duration `json:"model_load"`
	// DrainGrace bounds our scale-in's drain: requests still running then are lost.
	DrainGrace policy.Duration `json:"drain_grace"`
	// BaselineGrace is the termination grace of pods the HPA removes in the hpa+ca baseline (LoRAX's chart: 30 s).
	BaselineGrace policy.Duration `json:"baseline_termination_grace"`
	// ScaleDownUnneeded is the Cluster Autoscaler's scale-down-unneeded-time (and delay after a scale-up).
	ScaleDownUnneeded policy.Duration `json:"cluster_autoscaler_unneeded_time"`
	// EvaluationInterval is the autoscalers' period.
	EvaluationInterval policy.Duration `json:"evaluation_interval"`
	// RateWindow is the window of the arrival-rate reading (PromQL rate(...[1m])); ServiceTimeWindow that of
	// the mean service time.
	RateWindow        policy.Duration `json:"arrival_rate_window"`
	ServiceTimeWindow policy.Duration `json:"service_time_window"`
	// SLO is the queueing delay (arrival to start of prefill) a request should not exceed; Attainment is the
	// share of requests that must meet it.
	SLO        policy.Duration `json:"slo_queue_delay"`
	Attainment float64         `json:"slo_attainment_target"`
	// GPUsPerNode of the instance type and GPUsPerPod of a replica.
	GPUsPerNode int32 `json:"gpus_per_node"`
	GPUsPerPod  int32 `json:"gpus_per_pod"`
	// MaxNodes bounds the node group.
	MaxNodes int32 `json:"max_nodes"`
	// Serving is each replica's serving model.
	Serving serving.Config `json:"serving"`
	// Warmup is the start of the trace left out of every measure, the same for every policy: requests
	// arriving in it and node time spent in it are not counted (default twice the lead time, so that an
	// autoscaler has settled from its starting size).
	Warmup policy.Duration `json:"warmup"`
	// Routing names how the balancer picks a replica.
	Routing string `json:"routing"`
}

// DefaultAssumptions are the anchors' reference numbers: 90 s to Ready, GPUs 60 s later, a 30 s pull of an
// image the region's registry mirror holds, 40 s to load an 8B model (220 s from decision to serving),
// LoRAX's 16-sequence batch, a 1 s queueing SLO for 99% of requests.
func DefaultAssumptions() Assumptions {
	a := Assumptions{
		NodeReady:          policy.Duration(90 * time.Second),
		GPUAllocatable:     policy.Duration(60 * time.Second),
		ImagePull:          policy.Duration(30 * time.Second),
		ModelLoad:          policy.Duration(40 * time.Second),
		DrainGrace:         policy.Duration(120 * time.Second),
		BaselineGrace:      policy.Duration(30 * time.Second),
		ScaleDownUnneeded:  policy.Duration(10 * time.Minute),
		EvaluationInterval: policy.Duration(15 * time.Second),
		RateWindow:         policy.Duration(time.Minute),
		ServiceTimeWindow:  policy.Duration(2 * time.Minute),
		SLO:                policy.Duration(time.Second),
		Attainment:         0.99,
		GPUsPerNode:        1,
		GPUsPerPod:         1,
		MaxNodes:           256,
		Serving:            serving.Config{}.Defaults(),
		Routing:            "least-request (the less loaded of two random replicas; a gateway queue when neither can take a request, retried as replicas finish requests or are added)",
	}
	a.Warmup = a.DefaultWarmup()
	return a
}

// DefaultWarmup is twice the lead time: an autoscaler has settled from its starting size by then.
func (a Assumptions) DefaultWarmup() policy.Duration { return policy.Duration(2 * a.LeadTime()) }

// LeadTime is the time from ordering a node to its replica serving, on a node that never ran the model.
func (a Assumptions) LeadTime() time.Duration {
	return a.NodeReady.D() + a.GPUAllocatable.D() + a.ImagePull.D() + a.ModelLoad.D()
}

// Validate names the first assumption that cannot be simulated.
func (a Assumptions) Validate() error {
	for _, d := range []struct {
		name string
		v    policy.Duration
	}{{"node-ready", a.NodeReady}, {"gpu-allocatable", a.GPUAllocatable}, {"image-pull", a.ImagePull}, {"model-load", a.ModelLoad},
		{"drain-grace", a.DrainGrace}, {"baseline-grace", a.BaselineGrace}, {"scale-down-unneeded", a.ScaleDownUnneeded}} {
		if d.v < 0 {
			return fmt.Errorf("%s is %s: a delay cannot be negative", d.name, d.v)
		}
	}
	switch {
	case a.EvaluationInterval <= 0 || a.RateWindow <= 0 || a.ServiceTimeWindow <= 0:
		return fmt.Errorf("the evaluation interval and metric windows must be > 0")
	case a.SLO <= 0:
		return fmt.Errorf("the SLO queueing delay must be > 0, not %s", a.SLO)
	case a.Attainment <= 0 || a.Attainment >= 1:
		return fmt.Errorf("the SLO attainment target %v must be between 0 and 1 (0.99 is 99%%)", a.Attainment)
	case a.GPUsPerNode < 1 || a.GPUsPerPod < 1 || a.GPUsPerPod > a.GPUsPerNode:
		return fmt.Errorf("GPUs per node (%d) and per pod (%d) must be >= 1, and a pod must fit on a node", a.GPUsPerNode, a.GPUsPerPod)
	case a.Warmup < 0:
		return fmt.Errorf("the warm-up cannot be negative")
	case a.MaxNodes < 1:
		return fmt.Errorf("the node group's max size must be >= 1")
	}
	return nil
}

func (a Assumptions) podsPerNode() int { return int(a.GPUsPerNode / a.GPUsPerPod) }

// epoch is the simulated wall-clock time of the trace's start.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// controller decides capacity. init sets up the capacity at the trace's start (and schedules its own
// evaluations); changed is called when a pod becomes ready or a pod or node goes away.
type controller interface {
	init(s *sim)
	changed(s *sim)
	scaleActions() int
}

type node struct {
	name     string
	launched time.Time
	ready    time.Time // Ready condition true
	gpus     time.Time // nvidia.com/gpu allocatable
	cordoned bool
	gone     bool
	goneAt   time.Time
	// warm: the node has pulled the model's image (a later pod skips the pull).
	warm bool
	// unneededSince is when the Cluster Autoscaler first saw it empty (zero: in use).
	unneededSince time.Time
}

func (n *node) serving(now time.Time) bool { return !n.gone && !n.cordoned && !now.Before(n.gpus) }

type pod struct {
	name      string
	node      *node
	scheduled time.Time
	ready     time.Time // zero until scheduled; then when the readiness probe passes
	srv       *serving.Server
	deleting  bool
	deadline  time.Time // a deleting pod still holding requests then loses them
	// deregistered: taken out of the load balancer (a scale-in's first step), still running.
	deregistered bool
	// nextAt is when the pod's server next finishes a request (zero: it runs none).
	nextAt time.Time
	gone   bool
}

func (p *pod) isReady(now time.Time) bool {
	return p.node != nil && !p.gone && !p.ready.IsZero() && !now.Before(p.ready)
}

// inBalancer says whether the load balancer may send to the pod once it serves: not going away, not taken
// out of the load balancer.
func (p *pod) inBalancer() bool { return !p.gone && !p.deleting && !p.deregistered }

func (p *pod) routable(now time.Time) bool { return p.isReady(now) && p.inBalancer() }

// finishedBy advances the pod's server to t and returns what finished.
func (p *pod) finishedBy(t time.Time) []serving.Done {
	if p.nextAt.IsZero() || p.nextAt.After(t) {
		return nil
	}
	done := p.srv.Advance(t)
	p.refresh()
	return done
}

func (p *pod) refresh() {
	p.nextAt = time.Time{}
	if p.srv != nil {
		if t, ok := p.srv.NextEvent(); ok {
			p.nextAt = t
		}
	}
}

type event struct {
	at  time.Time
	seq int
	fn  func()
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// Point is one sample of a run for the plot: the load in replicas' worth (requests in flight over the batch
// size), the replicas serving and the nodes paid for.
type Point struct {
	T     float64 `json:"t"`
	Load  float64 `json:"load"`
	Ready int     `json:"ready"`
	Nodes int     `json:"nodes"`
	// Late is the requests that arrived since the previous point (up to and at this one) and started later
	// than the SLO.
	Late int `json:"late"`
}

// sim is one run: the cluster, the requests, the controller and what was measured.
type sim struct {
	a    Assumptions
	reqs []trace.Request
	end  time.Time
	now  time.Time
	ctrl controller

	events  eventHeap
	seq     int
	next    int // next request to arrive
	nodes   []*node
	pods    []*pod
	gateway []serving.Request
	// balanced are the pods the balancer sends to, rebuilt when stale; rng drives its choices.
	balanced      []*pod
	balancedStale bool
	rng           *rand.Rand
	// replicas is the Deployment's spec.replicas.
	replicas int32
	names    int

	// rateFrom is the first request inside the arrival-rate window; finished holds recent completions
	// for the service-time reading.
	rateFrom int
	finished []completion

	queueDelays  []float64
	ttfts        []float64
	lost         int
	measured     int // requests arriving after the warm-up
	lostMeasured int
	// lateByArrival counts the late requests by the sample interval they arrived in (see Point.Late).
	lateByArrival []int
	series        []Point
}

type completion struct {
	at      time.Time
	service float64
}

func newSim(a Assumptions, reqs []trace.Request, ctrl controller) *sim {
	s := &sim{a: a, reqs: reqs, now: epoch, ctrl: ctrl, end: epoch.Add(trace.Duration(reqs) + time.Millisecond), rng: rand.New(rand.NewPCG(1, 2))}
	s.queueDelays = make([]float64, 0, len(reqs))
	s.ttfts = make([]float64, 0, len(reqs))
	return s
}

// at schedules fn at time t (events at the same time run in the order they were scheduled).
func (s *sim) at(t time.Time, fn func()) {
	s.seq++
	heap.Push(&s.events, event{at: t, seq: s.seq, fn: fn})
}

// run plays the trace to its end, then lets the requests in flight finish (paying for no node after the
// end) and returns the measurements.
func (s *sim) run(name string) Result {
	s.start()
	s.runUntil(s.end)
	return s.finish(name)
}

// start sets up the controller's starting capacity and the first plot point.
func (s *sim) start() {
	s.ctrl.init(s)
	s.schedule()
	s.sample()
}

// runUntil plays the events and arrivals up to t (at most the trace's end), in time order.
func (s *sim) runUntil(t time.Time) {
	if t.After(s.end) {
		t = s.end
	}
	for {
		arrival := time.Time{}
		if s.next < len(s.reqs) {
			arrival = epoch.Add(s.reqs[s.next].At)
		}
		if len(s.events) > 0 && !s.events[0].at.After(t) && (arrival.IsZero() || !s.events[0].at.After(arrival)) {
			e := heap.Pop(&s.events).(event)
			s.advance(e.at)
			e.fn()
			s.schedule()
			continue
		}
		if arrival.IsZero() || arrival.After(t) {
			break
		}
		s.advance(arrival)
		r := s.reqs[s.next]
		s.route(serving.Request{ID: s.next, Arrival: arrival, Prompt: r.Prompt, Output: r.Output})
		s.next++
	}
	s.advance(t)
}

// advance moves every server to t, recording what finished; a deleting pod that has emptied goes away.
func (s *sim) advance(t time.Time) {
	if t.Before(s.now) {
		t = s.now
	}
	changed := false
	for _, p := range s.pods {
		if p.gone {
			continue
		}
		for _, d := range p.finishedBy(t) {
			s.record(d)
			s.retryAt(p, t)
		}
		if p.deleting && (p.srv == nil || p.srv.InFlight() == 0) {
			s.podGone(p)
			changed = true
		}
	}
	s.now = t
	if changed {
		s.ctrl.changed(s)
	}
}

func (s *sim) record(d serving.Done) {
	// The service-time reading sees every completion; only the measures leave out the warm-up.
	s.finished = append(s.finished, completion{at: d.Finish, service: d.Finish.Sub(d.Start).Seconds()})
	q := d.Start.Sub(d.Arrival)
	if q > s.a.SLO.D() {
		// By the sample interval it arrived in: series[k], sampled at k intervals from the epoch, counts the
		// arrivals after the sample before it, up to and at its own time.
		every := s.a.EvaluationInterval.D()
		k := int((d.Arrival.Sub(epoch) + every - 1) / every)
		for len(s.lateByArrival) <= k {
			s.lateByArrival = append(s.lateByArrival, 0)
		}
		s.lateByArrival[k]++
	}
	if !s.counted(d.Arrival) {
		return
	}
	s.queueDelays = append(s.queueDelays, q.Seconds())
	s.ttfts = append(s.ttfts, d.FirstToken.Sub(d.Arrival).Seconds())
}

// counted says whether a request arriving at t is measured (it arrives after the warm-up).
func (s *sim) counted(t time.Time) bool { return !t.Before(epoch.Add(s.a.Warmup.D())) }

// route sends a request to the less loaded of two routable replicas picked at random (the power of two
// choices, as Envoy's least-request balancer and the load simulator do), the other if that one's queue is
// full; with no replica to take it, it waits in the gateway's queue.
func (s *sim) route(r serving.Request) {
	if s.balancedStale {
		s.balanced = s.balanced[:0]
		for _, p := range s.pods {
			if p.srv != nil && p.inBalancer() {
				s.balanced = append(s.balanced, p)
			}
		}
		s.balancedStale = false
	}
	if n := len(s.balanced); n > 0 {
		a, b := s.balanced[s.rng.IntN(n)], s.balanced[s.rng.IntN(n)]
		if b.srv.InFlight() < a.srv.InFlight() {
			a, b = b, a
		}
		for _, p := range []*pod{a, b} {
			if s.offer(p, r, s.now) {
				return
			}
		}
	}
	s.gateway = append(s.gateway, r)
}

// retryAt offers the gateway's oldest waiting request to p, which has just finished one, at t: a request
// refused by full queues is retried when a replica has room, not only when one is added (with a bounded
// queue, as LoRAX's, a fixed size would otherwise leave its refused requests waiting for good).
func (s *sim) retryAt(p *pod, t time.Time) {
	if len(s.gateway) == 0 || !p.inBalancer() || p.srv == nil {
		return
	}
	if s.offer(p, s.gateway[0], t) {
		s.gateway = s.gateway[1:]
	}
}

// offer hands r to p's server at t, recording what finished by then, and reports whether p took it (its
// queue was not full).
func (s *sim) offer(p *pod, r serving.Request, t time.Time) bool {
	ok, done := p.srv.Offer(r, t)
	for _, d := range done {
		s.record(d)
	}
	p.refresh()
	return ok
}

// flushGateway offers the gateway's waiting requests to the replicas, oldest first.
func (s *sim) flushGateway() {
	waiting := s.gateway
	s.gateway = nil
	for _, r := range waiting {
		s.route(r)
	}
}

// launchNode asks for a node; it serves after the launch, Ready and device-plugin delays.
func (s *sim) launchNode() *node {
	s.names++
	n := &node{name: fmt.Sprintf("gpu-node-%d", s.names), launched: s.now}
	n.ready = s.now.Add(s.a.NodeReady.D())
	n.gpus = n.ready.Add(s.a.GPUAllocatable.D())
	s.nodes = append(s.nodes, n)
	s.at(n.gpus, func() {}) // no work of its own: the scheduler runs after every event, and binds pods to it then
	return n
}

// terminateNode removes a node; its pods, if any, are gone with it (their requests lost).
func (s *sim) terminateNode(n *node) {
	if n.gone {
		return
	}
	for _, p := range s.pods {
		if p.node == n && !p.gone {
			s.abandon(p)
		}
	}
	n.gone, n.goneAt = true, s.now
}

// liveNodes are the nodes paid for now (booting, serving or draining).
func (s *sim) liveNodes() int {
	c := 0
	for _, n := range s.nodes {
		if !n.gone {
			c++
		}
	}
	return c
}

// setGroupSize launches nodes until the group holds n (scale-in removes named nodes instead).
func (s *sim) setGroupSize(n int) {
	for c := s.liveNodes(); c < n && c < int(s.a.MaxNodes); c++ {
		s.launchNode()
	}
}

// activePods are the Deployment's pods that count towards spec.replicas (not deleting).
func (s *sim) activePods() []*pod {
	var out []*pod
	for _, p := range s.pods {
		if !p.gone && !p.deleting {
			out = append(out, p)
		}
	}
	return out
}

// setReplicas is the ReplicaSet controller: it creates pods up to n, or deletes the surplus the way it
// ranks them (unscheduled, then not ready, then the most recently ready), each with the given grace.
func (s *sim) setReplicas(n int32, grace time.Duration) {
	s.replicas = n
	active := s.activePods()
	for i := int32(len(active)); i < n; i++ {
		s.names++
		s.pods = append(s.pods, &pod{name: podName(s.names)})
	}
	if surplus := len(active) - int(n); surplus > 0 {
		slices.SortStableFunc(active, func(a, b *pod) int {
			return rankForDeletion(a, s.now) - rankForDeletion(b, s.now)
		})
		for _, p := range active[:surplus] {
			s.deletePod(p, grace)
		}
	}
}

// rankForDeletion orders pods as the ReplicaSet controller would delete them: unscheduled first, then
// unready, then ready ones by how recently they became ready (newest first: it ranks by readiness time).
func rankForDeletion(p *pod, now time.Time) int {
	switch {
	case p.node == nil:
		return -3 << 40
	case !p.isReady(now):
		return -2 << 40
	}
	return -int(p.ready.Sub(epoch) / time.Millisecond)
}

// deletePod takes a pod out of the balancer and lets it finish what it holds within grace.
func (s *sim) deletePod(p *pod, grace time.Duration) {
	if p.deleting || p.gone {
		return
	}
	p.deleting, p.deadline = true, s.now.Add(grace)
	s.balancedStale = true
	if p.srv == nil || p.srv.InFlight() == 0 {
		s.podGone(p)
		return
	}
	s.at(p.deadline, func() {
		if !p.gone && p.deleting && !p.deadline.After(s.now) {
			s.abandon(p)
			s.ctrl.changed(s)
		}
	})
}

// abandon removes a pod now; what it still held is lost.
func (s *sim) abandon(p *pod) {
	if p.srv != nil {
		for _, r := range p.srv.Abandon() {
			s.lost++
			if s.counted(r.Arrival) {
				s.lostMeasured++
			}
		}
	}
	s.podGone(p)
}

func (s *sim) podGone(p *pod) {
	p.gone, p.nextAt = true, time.Time{}
	s.balancedStale = true
}

// schedule binds pending pods to serving nodes with free GPUs (the kube-scheduler), most-filled first.
func (s *sim) schedule() {
	per := s.a.podsPerNode()
	var used map[*node]int
	for _, p := range s.pods {
		if p.node != nil || p.gone || p.deleting {
			continue
		}
		if used == nil {
			used = map[*node]int{}
			for _, q := range s.pods {
				if q.node != nil && !q.gone {
					used[q.node]++
				}
			}
		}
		for _, n := range s.nodes {
			if n.serving(s.now) && used[n] < per {
				s.bind(p, n)
				used[n]++
				break
			}
		}
	}
}

func (s *sim) bind(p *pod, n *node) {
	p.node, p.scheduled = n, s.now
	start := s.a.ModelLoad.D()
	if !n.warm {
		start += s.a.ImagePull.D()
		n.warm = true
	}
	p.ready = s.now.Add(start)
	s.at(p.ready, func() {
		if p.gone {
			return
		}
		p.srv = newServer(s)
		s.balancedStale = true
		s.flushGateway()
		s.ctrl.changed(s)
	})
}

// nodeNamed is the live node of that name (nil: none, or gone).
func (s *sim) nodeNamed(name string) *node {
	for _, n := range s.nodes {
		if n.name == name && !n.gone {
			return n
		}
	}
	return nil
}

// podNamed is the live pod of that name (nil: none, or gone).
func (s *sim) podNamed(name string) *pod {
	for _, p := range s.pods {
		if p.name == name && !p.gone {
			return p
		}
	}
	return nil
}

// podsOn counts the live pods on a node.
func (s *sim) podsOn(n *node) int {
	c := 0
	for _, p := range s.pods {
		if p.node == n && !p.gone {
			c++
		}
	}
	return c
}

// inFlight is every request held: in the gateway, queued at replicas or running.
func (s *sim) inFlight() int {
	c := len(s.gateway)
	for _, p := range s.pods {
		if p.srv != nil && !p.gone {
			c += p.srv.InFlight()
		}
	}
	return c
}

// sample records a plot point every evaluation interval.
func (s *sim) sample() {
	s.pods = slices.DeleteFunc(s.pods, func(p *pod) bool { return p.gone })
	ready := 0
	for _, p := range s.pods {
		if p.routable(s.now) {
			ready++
		}
	}
	s.series = append(s.series, Point{T: s.now.Sub(epoch).Seconds(), Load: float64(s.inFlight()) / float64(s.a.Serving.MaxBatch),
		Ready: ready, Nodes: s.liveNodes()})
	s.at(s.now.Add(s.a.EvaluationInterval.D()), s.sample)
}

// arrivalRate is the arrivals per second over the rate window ending now.
func (s *sim) arrivalRate() float64 {
	from := s.now.Add(-s.a.RateWindow.D())
	for s.rateFrom < s.next && !epoch.Add(s.reqs[s.rateFrom].At).After(from) {
		s.rateFrom++
	}
	// At the trace's start the window covers only the time since, as Prometheus's rate() extrapolates over
	// the samples it has: the service was running before the trace began.
	span := min(s.a.RateWindow.D(), s.now.Sub(epoch))
	if span <= 0 {
		return 0
	}
	return float64(s.next-s.rateFrom) / span.Seconds()
}

// peakStep is the resolution of the peak arrival rate's subquery, as the example spec's
// max_over_time(...[1m:2s]).
const peakStep = 2 * time.Second

// peakArrivalRate is the highest arrival rate over window among the windows ending every peakStep over the
// last minute, as max_over_time(sum(rate(requests[window]))[1m:2s]) reads it (without rate()'s
// extrapolation, which a trace's exact arrivals do not need).
func (s *sim) peakArrivalRate(window time.Duration) float64 {
	// The arrivals so far within the last minute and a window, oldest first.
	from := s.now.Add(-time.Minute - window)
	lo := s.next
	for lo > 0 && epoch.Add(s.reqs[lo-1].At).After(from) {
		lo--
	}
	best, first, last := 0, lo, lo
	for end := s.now.Add(-time.Minute); !end.After(s.now); end = end.Add(peakStep) {
		for last < s.next && !epoch.Add(s.reqs[last].At).After(end) {
			last++
		}
		for first < last && !epoch.Add(s.reqs[first].At).After(end.Add(-window)) {
			first++
		}
		best = max(best, last-first)
	}
	return float64(best) / window.Seconds()
}

// meanServiceTime is the mean time in the batch of the requests finished within the window (false: none).
func (s *sim) meanServiceTime() (float64, bool) {
	from := s.now.Add(-s.a.ServiceTimeWindow.D())
	i := 0
	for i < len(s.finished) && !s.finished[i].at.After(from) {
		i++
	}
	s.finished = s.finished[i:]
	if len(s.finished) == 0 {
		return 0, false
	}
	sum := 0.0
	for _, c := range s.finished {
		sum += c.service
	}
	return sum / float64(len(s.finished)), true
}

// finish lets the requests in flight complete and computes the result.
func (s *sim) finish(name string) Result {
	var billed time.Duration
	from := epoch.Add(s.a.Warmup.D())
	for _, n := range s.nodes {
		end := s.end
		if n.gone && n.goneAt.Before(end) {
			end = n.goneAt
		}
		if start := latestOf(n.launched, from); end.After(start) {
			billed += end.Sub(start)
		}
	}
	for _, p := range s.pods {
		if p.srv != nil && !p.gone {
			for _, d := range p.srv.Advance(s.end.Add(7 * 24 * time.Hour)) {
				s.record(d)
			}
		}
	}
	for _, r := range s.reqs {
		if s.counted(epoch.Add(r.At)) {
			s.measured++
		}
	}
	for k, late := range s.lateByArrival {
		// Arrivals after the last sample count in it.
		s.series[min(k, len(s.series)-1)].Late += late
	}
	r := Result{Name: name, Requests: s.measured, LostRequests: s.lost, GPUNodeHours: billed.Hours(),
		ScaleActions: s.ctrl.scaleActions(), Series: s.series}
	met := 0
	slo := s.a.SLO.D().Seconds()
	for _, q := range s.queueDelays {
		if q <= slo {
			met++
		}
	}
	r.SLOAttainment = float64(met) / float64(max(s.measured, 1))
	r.Unserved = s.measured - len(s.queueDelays) - s.lostMeasured
	q, f := serving.Percentiles(s.queueDelays, 50, 99), serving.Percentiles(s.ttfts, 50, 99)
	r.QueueDelayP50, r.QueueDelayP99 = q[0], q[1]
	r.TTFTP50, r.TTFTP99 = f[0], f[1]
	return r
}

func latestOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func podName(n int) string { return fmt.Sprintf("model-%d", n) }

func newServer(s *sim) *serving.Server { return serving.New(s.a.Serving) }
