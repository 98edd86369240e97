package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llmscaler/llmscaler/internal/testbed"
	"github.com/llmscaler/llmscaler/policy"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// llmscalerBinary builds the llmscaler command once per test binary.
func llmscalerBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := testbed.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "llmscaler-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "llmscaler")
		cmd := exec.Command("go", "build", "-o", binary, "./cmd/llmscaler")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/llmscaler: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// workerConfig writes a worker config for this test's stack, task queue and kwok group.
func (e *env) workerConfig() string {
	s := testbed.Shared(e.t)
	cfg := s.WorkerConfig(e.taskQueue) + fmt.Sprintf(`metrics:
  listenAddress: "off"
shutdownGrace: 5s
kwok:
  groups:
  - name: %s
    instanceType: %s
    zones: [us-east-1a, us-east-1b]
    min: %d
    max: %d
    bootDelay: %s
    gpuDelay: %s
`, e.kwok.Name, e.kwok.InstanceType, e.kwok.Min, e.kwok.Max, e.kwok.BootDelay, e.kwok.GPUDelay)
	file := filepath.Join(e.t.TempDir(), "worker.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return file
}

// startWorkerProcess runs `llmscaler worker` as a separate process.
func (e *env) startWorkerProcess(configFile, logName string) *exec.Cmd {
	cmd := exec.Command(llmscalerBinary(e.t), "worker", "--config", configFile)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=emulator", "AWS_SECRET_ACCESS_KEY=emulator")
	log, err := os.Create(filepath.Join(e.t.TempDir(), logName))
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if e.t.Failed() {
			b, _ := os.ReadFile(log.Name())
			e.t.Logf("%s:\n%s", logName, b)
		}
	})
	return cmd
}

// The worker is killed (SIGKILL) in the middle of a scale-out and started again: the saga finishes and
// exactly the intended nodes exist.
func TestWorkerKilledMidScaleOutResumesWithExactlyTheIntendedNodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{nodes: 1, replicas: 1})
	e.kwok.BootDelay = policy.Duration(8 * time.Second) // a window to kill the worker in
	cfg := e.workerConfig()
	first := e.startWorkerProcess(cfg, "worker-1.log")
	e.setLoad(15) // three replicas
	e.start()
	e.waitFor("the scale-out to request its nodes", 60*time.Second, func() bool {
		s := e.status()
		return s.InProgress != nil && len(e.groupNodes()) == 3
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	t.Log("worker killed while the new nodes boot")
	time.Sleep(2 * time.Second)
	e.startWorkerProcess(cfg, "worker-2.log")
	e.waitFor("the scale-out to finish on the new worker", 120*time.Second, func() bool {
		a := lastAction(e.status())
		return a != nil && a.Kind == policy.ScaleOut && a.Result != "running"
	})
	if a := lastAction(e.status()); a.Result != "succeeded" || a.ToReplicas != 3 {
		t.Fatalf("scale-out after the restart: %+v", *a)
	}
	if n := len(e.groupNodes()); n != 3 {
		t.Fatalf("%d nodes in the group, want exactly 3", n)
	}
	if r, p := e.deploymentReplicas(), e.readyPods(); r != 3 || p != 3 {
		t.Fatalf("%d replicas, %d ready pods; want 3 and 3", r, p)
	}
}
