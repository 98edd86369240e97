// Package loadsim replays an LLM trace against a model's pods in a (kwok) cluster, in real time: each
// ready endpoint of the model's Service is a LoRAX-like server (internal/serving); requests go only to pods
// that are ready endpoints; per-pod LoRAX metrics are published for Prometheus to scrape, and CPU usage
// through kwok's usage annotation for metrics-server. A pod that starts terminating gets no new requests
// and finishes what it holds, then exits (the simulator deletes it, as the kubelet would when LoRAX's drain
// ends); a pod that goes away while holding requests loses them, and the simulator counts them. Every
// request's outcome is recorded.
package loadsim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/llmscaler/llmscaler/internal/gpunode"
	"github.com/llmscaler/llmscaler/internal/serving"
	"github.com/llmscaler/llmscaler/internal/trace"
)

// Config is one replay.
type Config struct {
	Kube      kubernetes.Interface
	Namespace string
	// Service whose ready endpoints receive requests.
	Service string
	// NodeGroup names the GPU node group whose node-minutes are counted (label llmscaler.dev/node-group).
	NodeGroup string
	// Trace is the requests to send, already windowed, scaled and compressed.
	Trace   []trace.Request
	Serving serving.Config
	// SLO is the queueing delay (arrival to start of prefill) a request should not exceed (default 1s).
	SLO time.Duration
	// GatewayTimeout is how long a request waits for a ready endpoint before it fails (default 2m).
	GatewayTimeout time.Duration
	// Tick is the simulation step (default 100ms).
	Tick time.Duration
	// DrainTimeout bounds the wait for the last requests after the trace ends (default 5m).
	DrainTimeout time.Duration
}

// Sim is a running replay.
type Sim struct {
	cfg     Config
	metrics *metrics

	mu        sync.Mutex
	servers   map[string]*server
	pending   []pendingReq
	arrived   int
	outcomes  []Outcome
	nodeMins  float64
	nodes     int
	started   time.Time
	lastNodes time.Time
	rng       *rand.Rand
}

type server struct {
	pod         string
	srv         *serving.Server
	routable    bool
	terminating bool
	drainAware  bool
	exitAsked   bool
	cpu         string
}

type pendingReq struct {
	req     serving.Request
	arrival time.Time
}

// Outcome is what happened to one request.
type Outcome struct {
	ID         int       `json:"id"`
	Arrival    time.Time `json:"arrival"`
	Pod        string    `json:"pod,omitempty"`
	Start      time.Time `json:"start,omitzero"`
	FirstToken time.Time `json:"firstToken,omitzero"`
	Finish     time.Time `json:"finish,omitzero"`
	// Lost: its pod went away while it was queued or running. Rejected: no pod took it in time.
	Lost     bool `json:"lost,omitempty"`
	Rejected bool `json:"rejected,omitempty"`
}

// New prepares a replay.
func New(cfg Config) *Sim {
	if cfg.SLO == 0 {
		cfg.SLO = time.Second
	}
	if cfg.GatewayTimeout == 0 {
		cfg.GatewayTimeout = 2 * time.Minute
	}
	if cfg.Tick == 0 {
		cfg.Tick = 100 * time.Millisecond
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 5 * time.Minute
	}
	cfg.Serving = cfg.Serving.Defaults()
	return &Sim{cfg: cfg, metrics: newMetrics(cfg.Namespace), servers: map[string]*server{}, rng: rand.New(rand.NewPCG(1, 2))}
}

// Run replays the trace in real time until it ends and the last requests finish (or ctx ends), and
// returns the report.
func (s *Sim) Run(ctx context.Context) (Report, error) {
	s.mu.Lock()
	s.started = time.Now()
	s.mu.Unlock()
	tick := time.NewTicker(s.cfg.Tick)
	defer tick.Stop()
	next := 0
	var lastRefresh, lastCPU time.Time
	end := s.started.Add(trace.Duration(s.cfg.Trace))
	for {
		select {
		case <-ctx.Done():
			return s.report(time.Now()), ctx.Err()
		case <-tick.C:
		}
		now := time.Now()
		if now.Sub(lastRefresh) >= 500*time.Millisecond {
			if err := s.refresh(ctx, now); err != nil && ctx.Err() == nil {
				// A failed read of the cluster keeps the last view: the next tick tries again.
				_ = err
			}
			lastRefresh = now
		}
		s.mu.Lock()
		for next < len(s.cfg.Trace) && !s.started.Add(s.cfg.Trace[next].At).After(now) {
			r := s.cfg.Trace[next]
			at := s.started.Add(r.At)
			s.pending = append(s.pending, pendingReq{req: serving.Request{ID: next, Arrival: at, Prompt: r.Prompt, Output: r.Output}, arrival: at})
			s.arrived++
			s.metrics.offered.Inc()
			next++
		}
		s.dispatch(now)
		for _, sv := range s.servers {
			s.record(sv.pod, sv.srv.Advance(now))
		}
		s.publish()
		idle := next == len(s.cfg.Trace) && len(s.pending) == 0 && s.inFlight() == 0
		s.mu.Unlock()
		if now.Sub(lastCPU) >= 3*time.Second {
			s.reportCPU(ctx)
			lastCPU = now
		}
		if idle || now.After(end.Add(s.cfg.DrainTimeout)) {
			return s.report(now), nil
		}
	}
}

func (s *Sim) inFlight() int {
	n := 0
	for _, sv := range s.servers {
		n += sv.srv.InFlight()
	}
	return n
}

// dispatch sends waiting requests to ready endpoints, the less loaded of two picked at random (the
// "power of two choices" a least-request load balancer approximates).
func (s *Sim) dispatch(now time.Time) {
	var routable []*server
	for _, sv := range s.servers {
		if sv.routable {
			routable = append(routable, sv)
		}
	}
	sort.Slice(routable, func(i, j int) bool { return routable[i].pod < routable[j].pod })
	kept := s.pending[:0]
	for _, p := range s.pending {
		placed := false
		if len(routable) > 0 {
			a, b := routable[s.rng.IntN(len(routable))], routable[s.rng.IntN(len(routable))]
			if b.srv.InFlight() < a.srv.InFlight() {
				a, b = b, a
			}
			for _, sv := range []*server{a, b} {
				req := p.req
				req.Arrival = now
				ok, done := sv.srv.Arrive(req)
				s.record(sv.pod, done)
				if ok {
					s.metrics.arrived(sv.pod, req)
					placed = true
					break
				}
			}
		}
		if placed {
			continue
		}
		if now.Sub(p.arrival) > s.cfg.GatewayTimeout {
			s.outcomes = append(s.outcomes, Outcome{ID: p.req.ID, Arrival: p.arrival, Rejected: true})
			continue
		}
		kept = append(kept, p)
	}
	s.pending = kept
}

// record notes finished requests (their arrival is the trace's, not the moment they reached the pod).
func (s *Sim) record(pod string, done []serving.Done) {
	for _, d := range done {
		arrival := s.started.Add(s.cfg.Trace[d.ID].At)
		s.outcomes = append(s.outcomes, Outcome{ID: d.ID, Arrival: arrival, Pod: pod, Start: d.Start, FirstToken: d.FirstToken, Finish: d.Finish})
		s.metrics.finished(pod, d, arrival)
	}
}

// refresh reads the Service's endpoints and the pods: new ready endpoints become servers, endpoints that
// are not ready stop taking requests, drained terminating pods exit, and pods that are gone lose whatever
// they still held.
func (s *Sim) refresh(ctx context.Context, now time.Time) error {
	slices, err := s.cfg.Kube.DiscoveryV1().EndpointSlices(s.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + s.cfg.Service})
	if err != nil {
		return err
	}
	pods, err := s.cfg.Kube.CoreV1().Pods(s.cfg.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	ready := map[string]bool{}
	for _, sl := range slices.Items {
		for _, ep := range sl.Endpoints {
			if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" && (ep.Conditions.Ready == nil || *ep.Conditions.Ready) {
				ready[ep.TargetRef.Name] = true
			}
		}
	}
	byName := map[string]*corev1.Pod{}
	for i := range pods.Items {
		byName[pods.Items[i].Name] = &pods.Items[i]
	}
	var exits []string
	s.mu.Lock()
	for name := range ready {
		if _, ok := s.servers[name]; !ok {
			if p := byName[name]; p != nil && p.DeletionTimestamp == nil {
				s.servers[name] = &server{pod: name, srv: serving.New(s.cfg.Serving), drainAware: p.Annotations["sim.llmscaler.dev/drain-aware"] == "true"}
			}
		}
	}
	for name, sv := range s.servers {
		s.record(name, sv.srv.Advance(now))
		p := byName[name]
		switch {
		case p == nil:
			// The pod is gone: whatever it still held is lost.
			for _, r := range sv.srv.Abandon() {
				s.outcomes = append(s.outcomes, Outcome{ID: r.ID, Arrival: s.started.Add(s.cfg.Trace[r.ID].At), Pod: name, Lost: true})
			}
			s.metrics.forget(name)
			delete(s.servers, name)
			continue
		case p.DeletionTimestamp != nil:
			sv.terminating, sv.routable = true, false
			if sv.drainAware && sv.srv.InFlight() == 0 && !sv.exitAsked {
				sv.exitAsked = true
				exits = append(exits, name)
			}
		default:
			sv.routable = ready[name]
		}
	}
	if now.Sub(s.lastNodes) >= time.Second {
		dt := now.Sub(s.lastNodes)
		if s.lastNodes.IsZero() {
			dt = 0
		}
		s.lastNodes = now
		s.mu.Unlock()
		n := s.countNodes(ctx)
		s.mu.Lock()
		s.nodeMins += float64(n) * dt.Minutes()
		s.nodes = n
	}
	s.mu.Unlock()
	for _, name := range exits {
		// LoRAX has drained and exits: the kubelet would now remove the pod.
		zero := int64(0)
		err := s.cfg.Kube.CoreV1().Pods(s.cfg.Namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		if err != nil && !apierrors.IsNotFound(err) {
			s.mu.Lock()
			if sv := s.servers[name]; sv != nil {
				sv.exitAsked = false
			}
			s.mu.Unlock()
		}
	}
	return nil
}

func (s *Sim) countNodes(ctx context.Context) int {
	if s.cfg.NodeGroup == "" {
		return 0
	}
	list, err := s.cfg.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: gpunode.LabelNodeGroup + "=" + s.cfg.NodeGroup})
	if err != nil {
		return s.nodes
	}
	return len(list.Items)
}

// reportCPU writes each pod's emulated CPU use (a base plus a share per running sequence) to kwok's usage
// annotation, which metrics-server then reports.
func (s *Sim) reportCPU(ctx context.Context) {
	type update struct{ pod, cpu string }
	var updates []update
	s.mu.Lock()
	for _, sv := range s.servers {
		if sv.terminating {
			continue
		}
		cpu := strconv.Itoa(500+250*sv.srv.Running()) + "m"
		if cpu != sv.cpu {
			sv.cpu = cpu
			updates = append(updates, update{sv.pod, cpu})
		}
	}
	s.mu.Unlock()
	for _, u := range updates {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{"kwok.x-k8s.io/usage-cpu":%q}}}`, u.cpu)
		_, _ = s.cfg.Kube.CoreV1().Pods(s.cfg.Namespace).Patch(ctx, u.pod, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	}
}

func (s *Sim) publish() {
	for _, sv := range s.servers {
		s.metrics.gauges(sv.pod, sv.srv.QueueLength(), sv.srv.Running())
	}
	s.metrics.gatewayQueue(len(s.pending))
}

// Status is a live view of the replay.
type Status struct {
	Elapsed   time.Duration `json:"elapsed"`
	Arrived   int           `json:"arrived"`
	Total     int           `json:"total"`
	Waiting   int           `json:"waiting"`
	InFlight  int           `json:"inFlight"`
	Servers   int           `json:"servers"`
	Nodes     int           `json:"nodes"`
	Served    int           `json:"served"`
	Lost      int           `json:"lost"`
	SLOMisses int           `json:"sloMisses"`
}

// Status returns the live view.
func (s *Sim) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Elapsed: time.Since(s.started).Round(time.Second), Arrived: s.arrived, Total: len(s.cfg.Trace), Waiting: len(s.pending),
		InFlight: s.inFlight(), Nodes: s.nodes}
	for _, sv := range s.servers {
		if sv.routable {
			st.Servers++
		}
	}
	for _, o := range s.outcomes {
		switch {
		case o.Lost:
			st.Lost++
		case !o.Rejected:
			st.Served++
			if o.Start.Sub(o.Arrival) > s.cfg.SLO {
				st.SLOMisses++
			}
		}
	}
	return st
}

// Outcomes returns every request's outcome so far.
func (s *Sim) Outcomes() []Outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.outcomes)
}
