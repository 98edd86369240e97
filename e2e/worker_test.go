package e2e

import (
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The worker process serves its metrics and health, and stops gracefully on SIGTERM.
func TestWorkerServesMetricsAndHealthAndStopsGracefully(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{nodes: 1, replicas: 1})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cfg := e.workerConfig()
	b, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), `listenAddress: "off"`, "listenAddress: "+addr, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := e.startWorkerProcess(cfg, "worker.log")
	e.setLoad(5)
	e.start()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	e.waitFor("the worker's readiness", 30*time.Second, func() bool { code, _ := get("/readyz"); return code == http.StatusOK })
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz answered %d", code)
	}
	e.waitFor("an evaluation", 30*time.Second, func() bool { return e.status().Evaluations > 0 })
	_, metrics := get("/metrics")
	for _, want := range []string{"temporal_workflow_task_execution_latency_seconds", "temporal_local_activity_execution_latency_seconds", "go_goroutines"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the worker exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the worker did not stop within 20s of SIGTERM")
	}
}
