// Package serving models one LoRAX-like LLM server replica: a queue in front of a continuous batch of at
// most MaxBatch sequences. A request waits in the queue (its queueing delay), is prefilled at
// PrefillTokensPerSec, then decodes its output at DecodeTokensPerSec while it holds a place in the batch.
// Time is passed in, so the real-time load simulator and the discrete-event simulator share the model.
package serving

import (
	"cmp"
	"slices"
	"time"
)

// Config is the server's shape. The defaults are an 8B model on one A10G-class GPU.
type Config struct {
	// MaxBatch is how many sequences decode at once (LoRAX's batch; default 16).
	MaxBatch int `json:"maxBatch"`
	// PrefillTokensPerSec is the prompt processing rate (default 6000).
	PrefillTokensPerSec float64 `json:"prefillTokensPerSec"`
	// DecodeTokensPerSec is the generation rate of one sequence (default 30).
	DecodeTokensPerSec float64 `json:"decodeTokensPerSec"`
	// MaxQueue bounds the waiting requests; beyond it the server refuses (LoRAX's 429). Default 1024.
	MaxQueue int `json:"maxQueue"`
}

// Defaults fills unset fields.
func (c Config) Defaults() Config {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 16
	}
	if c.PrefillTokensPerSec <= 0 {
		c.PrefillTokensPerSec = 6000
	}
	if c.DecodeTokensPerSec <= 0 {
		c.DecodeTokensPerSec = 30
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = 1024
	}
	return c
}

// ServiceTime is how long a request holds a place in the batch: its prefill, then its decode.
func (c Config) ServiceTime(prompt, output int32) (prefill, total time.Duration) {
	prefill = time.Duration(float64(prompt) / c.PrefillTokensPerSec * float64(time.Second))
	return prefill, prefill + time.Duration(float64(output)/c.DecodeTokensPerSec*float64(time.Second))
}

// Request is one request sent to a server.
type Request struct {
	ID      int
	Arrival time.Time
	Prompt  int32
	Output  int32
}

// Done is a finished request.
type Done struct {
	Request
	// Start is when it entered the batch (Start - Arrival is the queueing delay).
	Start      time.Time
	FirstToken time.Time
	Finish     time.Time
}

type job struct {
	req        Request
	start      time.Time
	firstToken time.Time
	finish     time.Time
}

// Server is one replica.
type Server struct {
	cfg     Config
	queue   []Request
	running []job
	now     time.Time
}

// New returns an idle server.
func New(cfg Config) *Server { return &Server{cfg: cfg.Defaults()} }

// Config returns the server's configuration.
func (s *Server) Config() Config { return s.cfg }

// Arrive offers a request at its arrival time; false means the queue is full (HTTP 429). Requests must
// arrive in time order; completions up to the arrival are returned.
func (s *Server) Arrive(r Request) (bool, []Done) { return s.Offer(r, r.Arrival) }

// Offer hands the server, at time at, a request that arrived earlier (at r.Arrival) and waited elsewhere,
// in a gateway's queue; its queueing delay counts from its arrival. Offers must come in time order.
func (s *Server) Offer(r Request, at time.Time) (bool, []Done) {
	done := s.Advance(at)
	if len(s.running) < s.cfg.MaxBatch {
		s.start(r, at)
		return true, done
	}
	if len(s.queue) >= s.cfg.MaxQueue {
		return false, done
	}
	s.queue = append(s.queue, r)
	return true, done
}

func (s *Server) start(r Request, at time.Time) {
	prefill, total := s.cfg.ServiceTime(r.Prompt, r.Output)
	s.running = append(s.running, job{req: r, start: at, firstToken: at.Add(prefill), finish: at.Add(total)})
}

// Advance moves the server to now and returns the requests that finished by then, in finishing order. A
// finished request's place goes to the next in the queue at the moment it finished.
func (s *Server) Advance(now time.Time) []Done {
	var done []Done
	for {
		i := s.nextFinish()
		if i < 0 || s.running[i].finish.After(now) {
			break
		}
		j := s.running[i]
		s.running = slices.Delete(s.running, i, i+1)
		done = append(done, Done{Request: j.req, Start: j.start, FirstToken: j.firstToken, Finish: j.finish})
		if len(s.queue) > 0 {
			next := s.queue[0]
			s.queue = s.queue[1:]
			s.start(next, j.finish)
		}
	}
	if now.After(s.now) {
		s.now = now
	}
	return done
}

func (s *Server) nextFinish() int {
	best := -1
	for i, j := range s.running {
		if best < 0 || j.finish.Before(s.running[best].finish) {
			best = i
		}
	}
	return best
}

// NextEvent is the next time a request finishes, if any runs.
func (s *Server) NextEvent() (time.Time, bool) {
	i := s.nextFinish()
	if i < 0 {
		return time.Time{}, false
	}
	return s.running[i].finish, true
}

// IdleAt is when the server will have finished everything it holds, if nothing more is offered (the end
// of a drain); the zero time when it holds nothing.
func (s *Server) IdleAt() time.Time {
	if len(s.running) == 0 {
		return time.Time{}
	}
	slots := make([]time.Time, len(s.running))
	for i, j := range s.running {
		slots[i] = j.finish
	}
	// Each queued request takes the first slot to free up, in queue order.
	for _, r := range s.queue {
		i := 0
		for k := range slots {
			if slots[k].Before(slots[i]) {
				i = k
			}
		}
		_, total := s.cfg.ServiceTime(r.Prompt, r.Output)
		slots[i] = slots[i].Add(total)
	}
	return slices.MaxFunc(slots, func(a, b time.Time) int { return a.Compare(b) })
}

// QueueLength is the number of requests waiting (lorax_queue_length).
func (s *Server) QueueLength() int { return len(s.queue) }

// Running is the number of sequences in the batch (lorax_batch_current_size).
func (s *Server) Running() int { return len(s.running) }

// InFlight is everything the server holds: waiting and running.
func (s *Server) InFlight() int { return len(s.queue) + len(s.running) }

// Abandon empties the server (its pod went away) and returns what it held: those requests are lost.
func (s *Server) Abandon() []Request {
	var lost []Request
	for _, j := range s.running {
		lost = append(lost, j.req)
	}
	lost = append(lost, s.queue...)
	s.queue, s.running = nil, nil
	return lost
}

// Percentiles are the nearest-rank percentiles ps (0-100) of xs, which it sorts once; zeros when xs is
// empty. The load simulator's report and the trace-driven simulator's share it.
func Percentiles[T cmp.Ordered](xs []T, ps ...float64) []T {
	out := make([]T, len(ps))
	if len(xs) == 0 {
		return out
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	for i, p := range ps {
		rank := int(float64(len(s))*p/100+0.5) - 1
		out[i] = s[min(max(rank, 0), len(s)-1)]
	}
	return out
}
