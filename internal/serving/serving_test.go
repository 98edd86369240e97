package serving

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestBatchThenQueue(t *testing.T) {
	s := New(Config{MaxBatch: 2, PrefillTokensPerSec: 1000, DecodeTokensPerSec: 10, MaxQueue: 1})
	// Each request: prefill 1000 tokens = 1s, decode 10 tokens = 1s: 2s in the batch.
	for i := range 3 {
		ok, _ := s.Arrive(Request{ID: i, Arrival: t0, Prompt: 1000, Output: 10})
		if !ok {
			t.Fatalf("request %d refused", i)
		}
	}
	if ok, _ := s.Arrive(Request{ID: 3, Arrival: t0, Prompt: 1000, Output: 10}); ok {
		t.Fatal("a fourth request was accepted past the queue's bound")
	}
	if s.Running() != 2 || s.QueueLength() != 1 {
		t.Fatalf("running %d, queued %d", s.Running(), s.QueueLength())
	}
	done := s.Advance(t0.Add(4 * time.Second))
	if len(done) != 3 {
		t.Fatalf("%d done by 4s, want 3", len(done))
	}
	third := done[2]
	if third.Start != t0.Add(2*time.Second) || third.FirstToken != t0.Add(3*time.Second) || third.Finish != t0.Add(4*time.Second) {
		t.Fatalf("the queued request started %s, first token %s, finished %s", third.Start.Sub(t0), third.FirstToken.Sub(t0), third.Finish.Sub(t0))
	}
	if _, ok := s.NextEvent(); ok {
		t.Fatal("an idle server has a next event")
	}
}

func TestAbandonLosesWhatTheServerHeld(t *testing.T) {
	s := New(Config{MaxBatch: 1})
	s.Arrive(Request{ID: 1, Arrival: t0, Prompt: 100, Output: 100})
	s.Arrive(Request{ID: 2, Arrival: t0, Prompt: 100, Output: 100})
	if lost := s.Abandon(); len(lost) != 2 || s.InFlight() != 0 {
		t.Fatalf("lost %v, in flight %d", lost, s.InFlight())
	}
}

func TestPercentilesAreNearestRank(t *testing.T) {
	xs := []int{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	got := Percentiles(xs, 50, 99, 0)
	if got[0] != 5 || got[1] != 10 || got[2] != 1 {
		t.Fatalf("p50, p99, p0 of 1..10: %v, want 5, 10, 1", got)
	}
	if xs[0] != 5 {
		t.Fatal("the input was sorted in place")
	}
	if got := Percentiles([]float64(nil), 50); got[0] != 0 {
		t.Fatalf("empty: %v", got)
	}
}

// A drain waits for IdleAt: the queued requests take the batch's slots as they free up.
func TestIdleAtIsWhenEverythingHeldHasFinished(t *testing.T) {
	s := New(Config{MaxBatch: 2, PrefillTokensPerSec: 1000, DecodeTokensPerSec: 10, MaxQueue: 4})
	if !s.IdleAt().IsZero() {
		t.Fatal("an empty server has an idle time")
	}
	// 2 s, 4 s, then 2 s and 2 s queued: slots free at 2 s and 4 s; the queue finishes at 4 s and 6 s.
	for i, out := range []int32{10, 30, 10, 10} {
		s.Arrive(Request{ID: i, Arrival: t0, Prompt: 1000, Output: out})
	}
	if got := s.IdleAt(); !got.Equal(t0.Add(6 * time.Second)) {
		t.Fatalf("idle at %s, want 6s", got.Sub(t0))
	}
	var last time.Time
	for _, d := range s.Advance(t0.Add(time.Minute)) {
		last = d.Finish
	}
	if !last.Equal(t0.Add(6 * time.Second)) {
		t.Fatalf("the last request finished at %s", last.Sub(t0))
	}
}
