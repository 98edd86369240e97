package testbed

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// metrics-server exits at once when it starts before the kube-apiserver answers, and nothing restarts it.
// Here it is killed on a stack of the test's own, as that race would leave it: the wait for the metrics API
// restarts the cluster's components, and the API is served again.
func TestAMetricsServerThatExitedIsStartedAgain(t *testing.T) {
	defer func(p time.Duration) { metricsAPIPatience = p }(metricsAPIPatience)
	metricsAPIPatience = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{Name: "metrics-restart", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Stop() }()

	pidFile := filepath.Join(s.kwokClusterDir(), "pids", "metrics-server.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("kwokctl's pid file of metrics-server: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %s: %v", pidFile, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing metrics-server (pid %d): %v", pid, err)
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bins, err := requireTools(root, "kubectl", "kwokctl")
	if err != nil {
		t.Fatal(err)
	}
	if err := waitMetricsAPI(ctx, s, root, bins, t.Logf); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, bins["kubectl"], "--kubeconfig", s.Kube.Kubeconfig, "get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes").CombinedOutput()
	if err != nil {
		t.Fatalf("the metrics API after the restart: %v: %s", err, out)
	}
}
