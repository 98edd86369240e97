package testbed_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmscaler/llmscaler/internal/testbed"
)

// processesMentioning lists the command lines of running processes that name dir.
func processesMentioning(dir string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, dir) {
			out = append(out, cmd)
		}
	}
	return out
}

// The same start and stop that make dev-up and make dev-down run: after Stop, no process of the stack is left.
func TestStackStopLeavesNoProcessBehind(t *testing.T) {
	testbed.Shared(t) // the tools are there
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := testbed.Start(ctx, testbed.Options{Name: "lifecycle", Dir: dir, UI: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := processesMentioning(dir); len(got) < 5 {
		_ = s.Stop()
		t.Fatalf("expected the stack's processes (temporal, prometheus, etcd, apiserver, ...) to run, found %d:\n%s", len(got), strings.Join(got, "\n"))
	}
	if !s.Running() {
		t.Fatal("Running() is false for a started stack")
	}
	if _, err := testbed.Start(ctx, testbed.Options{Name: "lifecycle", Dir: dir}); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("starting a second stack in the same folder: %v, want an 'already running' error", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(processesMentioning(dir)) > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if left := processesMentioning(dir); len(left) > 0 {
		t.Fatalf("processes left after Stop:\n%s", strings.Join(left, "\n"))
	}
	if s.Running() {
		t.Fatal("Running() is true after Stop")
	}
}
