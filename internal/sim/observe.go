package sim

import (
	"fmt"
	"strings"

	"github.com/llmscaler/llmscaler/internal/serving"
	"github.com/llmscaler/llmscaler/policy"
)

// observe builds the policy's Observation the way the Observe activity reads a cluster: the Deployment's
// pods and spec.replicas, the group's nodes and size, and one reading per spec metric.
func (s *sim) observe(spec policy.Spec, inProgress *policy.Action) policy.Observation {
	obs := policy.Observation{Time: s.now, SpecReplicas: s.replicas, InProgress: inProgress,
		Group: policy.NodeGroup{Name: "sim", Max: s.a.MaxNodes, Desired: int32(s.liveNodes()), GPUsPerNode: s.a.GPUsPerNode}}
	for _, n := range s.nodes {
		if n.gone {
			continue
		}
		pn := policy.Node{Name: n.name, InstanceID: n.name, Ready: !s.now.Before(n.ready), Cordoned: n.cordoned, Created: n.launched}
		if !s.now.Before(n.gpus) {
			pn.GPUsAllocatable = s.a.GPUsPerNode
		}
		obs.Nodes = append(obs.Nodes, pn)
	}
	for _, p := range s.pods {
		if p.gone {
			continue
		}
		pp := policy.Pod{Name: p.name, Phase: policy.PodPending, Deleting: p.deleting}
		if p.node != nil {
			pp.Phase, pp.Node, pp.StartTime = policy.PodRunning, p.node.name, p.scheduled
		}
		if p.isReady(s.now) {
			pp.Ready, pp.ReadyChanged = true, p.ready
		}
		obs.Pods = append(obs.Pods, pp)
	}
	for _, m := range spec.Metrics {
		obs.Metrics = append(obs.Metrics, s.read(m))
	}
	return obs
}

// read is one metric's reading. The simulator knows the serving model's signals, not PromQL: a metric is
// matched to a signal by its name (see signalOf); a Demand metric reads the arrival rate over the rate
// window, the mean service time over its window, the backlog (replicas' queues plus the gateway's) and the
// peak arrival rate over the peak window.
func (s *sim) read(m policy.MetricSpec) policy.MetricReading {
	r := policy.MetricReading{Name: m.Name()}
	switch m.Type {
	case policy.DemandMetric:
		if !s.now.After(epoch) {
			// Prometheus has no sample of the trace yet: rate() returns nothing, not zero (a zero would read as
			// a ramp from nothing).
			r.Error = "no arrival-rate sample yet"
			return r
		}
		d := &policy.DemandReading{Arrivals: s.arrivalRate()}
		if m.Demand != nil && m.Demand.ServiceTime != nil {
			if st, ok := s.meanServiceTime(); ok {
				d.ServiceTime = &st
			}
		}
		if m.Demand != nil && m.Demand.Backlog != nil {
			b := float64(s.backlog())
			d.Backlog = &b
		}
		if m.Demand != nil && m.Demand.PeakArrivals != nil {
			p := s.peakArrivalRate(m.Demand.PeakRateWindow())
			d.PeakArrivals = &p
		}
		r.Demand = d
	case policy.PodsMetric:
		sig, err := signalOf(r.Name)
		if err != nil {
			r.Error = err.Error()
			return r
		}
		for _, p := range s.pods {
			if p.srv != nil && p.isReady(s.now) {
				r.Pods = append(r.Pods, policy.PodSample{Pod: p.name, Value: sig.perPod(p.srv), Timestamp: s.now})
			}
		}
	case policy.ExternalMetric, policy.ObjectMetric:
		sig, err := signalOf(r.Name)
		if err != nil {
			r.Error = err.Error()
			return r
		}
		v := sig.total(s)
		r.Value = &v
	default:
		r.Error = "the simulator models no CPU or memory use: scale on Pods, External, Object or Demand metrics"
	}
	return r
}

// signal is a quantity of the serving model a metric can stand for.
type signal struct {
	perPod func(*serving.Server) float64
	total  func(*sim) float64
}

// signalOf matches a metric name to a signal: names with "queue" read waiting requests (lorax_queue_length,
// vllm:num_requests_waiting); "batch" or "running" the sequences decoding (lorax_batch_current_size,
// vllm:num_requests_running); "in_flight", "inflight" or "ongoing" both together; "arrival" or "rate" the
// arrival rate (External and Object metrics only).
func signalOf(name string) (signal, error) {
	n := strings.ToLower(name)
	switch {
	case strings.Contains(n, "in_flight") || strings.Contains(n, "inflight") || strings.Contains(n, "ongoing"):
		return signal{
			perPod: func(v *serving.Server) float64 { return float64(v.InFlight()) },
			total:  func(s *sim) float64 { return float64(s.inFlight()) },
		}, nil
	case strings.Contains(n, "queue") || strings.Contains(n, "waiting"):
		return signal{
			perPod: func(v *serving.Server) float64 { return float64(v.QueueLength()) },
			total:  func(s *sim) float64 { return float64(s.backlog()) },
		}, nil
	case strings.Contains(n, "batch") || strings.Contains(n, "running"):
		return signal{
			perPod: func(v *serving.Server) float64 { return float64(v.Running()) },
			total:  func(s *sim) float64 { return float64(s.inFlight() - s.backlog()) },
		}, nil
	case strings.Contains(n, "arrival") || strings.Contains(n, "rate"):
		return signal{
			perPod: func(*serving.Server) float64 { return 0 },
			total:  func(s *sim) float64 { return s.arrivalRate() },
		}, nil
	}
	return signal{}, fmt.Errorf("the simulator cannot produce metric %q: name it after a serving signal "+
		"(queue, batch/running, in_flight, arrival rate)", name)
}

// backlog is the requests waiting: the gateway's queue and every replica's queue.
func (s *sim) backlog() int {
	c := len(s.gateway)
	for _, p := range s.pods {
		if p.srv != nil && !p.gone {
			c += p.srv.QueueLength()
		}
	}
	return c
}
