package main

import (
	"testing"
	"time"

	"github.com/llmscaler/llmscaler/workflows"
)

func TestHistoryShowsHowLongEachScaleOutTookToServe(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	served := func(ordered, after time.Duration) workflows.Wave {
		return workflows.Wave{Replicas: 3, Nodes: 1, Ordered: t0.Add(ordered), Served: t0.Add(ordered + after)}
	}
	for _, c := range []struct {
		waves []workflows.Wave
		want  string
	}{
		{nil, "-"},
		{[]workflows.Wave{served(0, 220*time.Second)}, "3m40s"},
		{[]workflows.Wave{served(0, 220*time.Second), served(time.Minute, 8*time.Minute), {Ordered: t0.Add(2 * time.Minute)}}, "3m40s-8m0s +1 waiting"},
		{[]workflows.Wave{{Ordered: t0}}, "+1 waiting"},
	} {
		if got := servedIn(c.waves); got != c.want {
			t.Errorf("%+v: %q, want %q", c.waves, got, c.want)
		}
	}
}
