package testbed

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/llmscaler/llmscaler/workflows"
)

// startTemporal starts the dev server with a SQLite file and our search attributes, and returns a function
// that waits until it answers.
func startTemporal(s *Stack, bins map[string]string, opts Options) (func(context.Context) error, error) {
	port, err := portOrFree(opts.TemporalPort)
	if err != nil {
		return nil, err
	}
	if opts.TemporalPort != 0 {
		if err := checkPortFree("Temporal", port); err != nil {
			return nil, err
		}
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	metricsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"server", "start-dev",
		"--db-filename", filepath.Join(s.Dir, "temporal.db"),
		// A stack is a testbed: its state must outlive a worker, never the machine. Without a sync on every
		// commit a stalled disk does not stall the server (seen in CI: queries timed out for 30 s at a time).
		"--sqlite-pragma", "journal_mode=WAL",
		"--sqlite-pragma", "synchronous=OFF",
		"--ip", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--http-port", strconv.Itoa(httpPort),
		"--metrics-port", strconv.Itoa(metricsPort),
		"--log-level", "warn",
	}
	for _, sa := range workflows.SearchAttributeDefinitions {
		args = append(args, "--search-attribute", sa.Name+"="+sa.Type)
	}
	uiPort := 0
	if opts.UI {
		if uiPort, err = portOrFree(opts.TemporalUIPort); err != nil {
			return nil, err
		}
		if opts.TemporalUIPort != 0 {
			if err := checkPortFree("Temporal UI", uiPort); err != nil {
				return nil, err
			}
		}
		args = append(args, "--ui-port", strconv.Itoa(uiPort))
	} else {
		args = append(args, "--headless")
	}
	if _, err := startDetached(s.Dir, "temporal", nil, bins["temporal"], args...); err != nil {
		return nil, err
	}
	s.Temporal = Temporal{Address: "127.0.0.1:" + strconv.Itoa(port), Namespace: temporalNamespace}
	if uiPort != 0 {
		s.Temporal.UIURL = "http://127.0.0.1:" + strconv.Itoa(uiPort)
	}
	logFile := filepath.Join(s.Dir, "logs", "temporal.log")
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		// The HTTP API answers once the frontend and the namespace are up.
		if err := waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/api/v1/namespaces/%s", httpPort, temporalNamespace), logFile); err != nil {
			return fmt.Errorf("temporal dev server: %w", err)
		}
		if s.Temporal.UIURL != "" {
			if err := waitHTTP(ctx, s.Temporal.UIURL+"/", logFile); err != nil {
				return fmt.Errorf("temporal web UI: %w", err)
			}
		}
		return nil
	}, nil
}

// startPrometheus starts Prometheus with a file_sd scrape job over TargetsDir, and returns a function that
// waits until it is ready.
func startPrometheus(s *Stack, bins map[string]string, opts Options) (func(context.Context) error, error) {
	port, err := portOrFree(opts.PrometheusPort)
	if err != nil {
		return nil, err
	}
	if opts.PrometheusPort != 0 {
		if err := checkPortFree("Prometheus", port); err != nil {
			return nil, err
		}
	}
	promDir := filepath.Join(s.Dir, "prometheus")
	targets := filepath.Join(promDir, "targets")
	if err := os.MkdirAll(targets, 0o755); err != nil {
		return nil, err
	}
	interval := opts.ScrapeInterval.String()
	config := fmt.Sprintf(`# Written by internal/testbed.
global:
  scrape_interval: %[1]s
  evaluation_interval: %[1]s
scrape_configs:
- job_name: targets
  file_sd_configs:
  - files: ['%[2]s/*.json']
    refresh_interval: 2s
`, interval, targets)
	configFile := filepath.Join(promDir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if _, err := startDetached(s.Dir, "prometheus", nil, bins["prometheus"],
		"--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(promDir, "data"),
		"--storage.tsdb.retention.time=1d",
		"--web.listen-address="+addr,
		"--log.level=warn",
	); err != nil {
		return nil, err
	}
	s.Prometheus = Prometheus{URL: "http://" + addr, TargetsDir: targets}
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return waitHTTP(ctx, s.Prometheus.URL+"/-/ready", filepath.Join(s.Dir, "logs", "prometheus.log"))
	}, nil
}

// createCluster creates the kwok cluster with the binary runtime: every component a local process.
func createCluster(ctx context.Context, s *Stack, root string, bins map[string]string, opts Options) error {
	ports, err := kwokPorts(opts)
	if err != nil {
		return err
	}
	config, err := kwokctlConfig(root, ports)
	if err != nil {
		return err
	}
	configFile := filepath.Join(s.Dir, "kwokctl.yaml")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		return err
	}
	args := []string{"create", "cluster", "--name", opts.Name, "--runtime", "binary",
		"--kube-apiserver-binary", bins["kube-apiserver"],
		"--kube-controller-manager-binary", bins["kube-controller-manager"],
		"--kube-scheduler-binary", bins["kube-scheduler"],
		"--kwok-controller-binary", bins["kwok"],
		"--etcd-binary", bins["etcd"],
		"--enable", "metrics-server", "--metrics-server-binary", bins["metrics-server"],
		"--kube-authorization",
		"--kubeconfig", "",
		"-c", configFile,
		"--wait", "2m",
	}
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins["kwokctl"], args...)
	cmd.Env = append(os.Environ(), kwokEnv(s, root)...)
	logFile := filepath.Join(s.Dir, "logs", "kwokctl.log")
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(logFile, out, 0o644)
	if err != nil {
		return fmt.Errorf("kwokctl create cluster: %v; see %s:\n%s", err, logFile, tail(string(out), 20))
	}
	s.Kube = Kube{Cluster: opts.Name}
	s.Kube.Kubeconfig = filepath.Join(s.kwokClusterDir(), "kubeconfig.yaml")
	if _, err := os.Stat(s.Kube.Kubeconfig); err != nil {
		return fmt.Errorf("kwokctl made no kubeconfig at %s: %w", s.Kube.Kubeconfig, err)
	}
	return nil
}

// waitMetricsAPI waits until metrics-server serves the metrics API (the aggregated API answers once it is
// up). kwokctl starts the cluster's components together, and metrics-server exits at once when the
// kube-apiserver does not answer yet ("unable to load configmap based request-header-client-ca-file ...
// connection refused"; on a busy machine the apiserver can be late). Nothing restarts it, and the stack
// then serves no pod metrics: seen in CI, where a pod's CPU never showed in three minutes. When the API is
// not served within metricsAPIPatience, the cluster's components are restarted once (kwokctl stop and start
// cluster; etcd keeps the state), the apiserver answering by then.
func waitMetricsAPI(ctx context.Context, s *Stack, root string, bins map[string]string, logf func(string, ...any)) error {
	served := func(within time.Duration) error {
		ctx, cancel := context.WithTimeout(ctx, within)
		defer cancel()
		for {
			out, err := exec.CommandContext(ctx, bins["kubectl"], "--kubeconfig", s.Kube.Kubeconfig,
				"get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes").CombinedOutput()
			if err == nil {
				return nil
			}
			last := strings.TrimSpace(string(out))
			select {
			case <-ctx.Done():
				return fmt.Errorf("the metrics API is not served after %s: %s", within, last)
			case <-time.After(time.Second):
			}
		}
	}
	err := served(metricsAPIPatience)
	if err == nil {
		return nil
	}
	logf("%v; restarting the cluster's components (metrics-server may have started before the kube-apiserver answered)", err)
	for _, verb := range []string{"stop", "start"} {
		cmd := exec.CommandContext(ctx, bins["kwokctl"], verb, "cluster", "--name", s.Kube.Cluster)
		cmd.Env = append(os.Environ(), kwokEnv(s, root)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("kwokctl %s cluster: %v:\n%s", verb, err, tail(string(out), 20))
		}
	}
	if err := served(2 * time.Minute); err != nil {
		return fmt.Errorf("%v, after a restart of the cluster's components; see %s", err,
			filepath.Join(s.kwokClusterDir(), "logs", "metrics-server.log"))
	}
	return nil
}

// metricsAPIPatience is how long a new stack waits for the metrics API before restarting the cluster's
// components (metrics-server serves it within seconds when it started).
var metricsAPIPatience = time.Minute

// kwokClusterDir is kwokctl's folder of the stack's cluster (its kubeconfig, pids and logs).
func (s *Stack) kwokClusterDir() string {
	return filepath.Join(s.Dir, "kwok", "clusters", s.Kube.Cluster)
}

// kwokEnv puts bin/ first on PATH (kwokctl runs `kubectl kustomize`) and keeps kwok's state in the stack.
func kwokEnv(s *Stack, root string) []string {
	return []string{
		"KWOK_WORKDIR=" + filepath.Join(s.Dir, "kwok"),
		"PATH=" + filepath.Join(root, "bin") + string(os.PathListSeparator) + os.Getenv("PATH"),
	}
}

// kwokPorts picks every port of the cluster's components from the kernel's free ports. kwokctl's own choice
// counts down from 32767, so two clusters created at once (two test binaries) would collide.
func kwokPorts(opts Options) (map[string]int, error) {
	ports := map[string]int{}
	for _, name := range []string{"kubeApiserverPort", "etcdPort", "etcdPeerPort", "kubeControllerManagerPort",
		"kubeSchedulerPort", "kwokControllerPort", "metricsServerPort"} {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[name] = p
	}
	if opts.KubeAPIServerPort != 0 {
		ports["kubeApiserverPort"] = opts.KubeAPIServerPort
	}
	return ports, nil
}

// kwokctlConfig assembles the kwokctl configuration: the components' ports, metrics-server's manifests
// (copied into bin/ by `make tools`), the node and pod stages, and the resource-usage emulation
// (deploy/dev/kwok).
func kwokctlConfig(root string, ports map[string]int) (string, error) {
	manifests := filepath.Join(root, "bin", "metrics-server-manifests")
	if _, err := os.Stat(filepath.Join(manifests, "kustomization.yaml")); err != nil {
		return "", fmt.Errorf("metrics-server manifests are missing from %s: run `make tools`", manifests)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  metricsServerManifests:
  - %s
`, manifests)
	for _, name := range slices.Sorted(maps.Keys(ports)) {
		fmt.Fprintf(&b, "  %s: %d\n", name, ports[name])
	}
	// A pod the scheduler tries before its node's GPUs are allocatable waits among the unschedulable ones
	// until a node event requeues it; on a loaded machine that event can pass it by, and the scheduler then
	// retries it after 5 minutes (seen in CI: a test's two initial pods, one Pending for its whole minute).
	// Retrying within 10 s keeps such a race from deciding a test.
	//
	// The controller manager and the scheduler run alone, so they elect no leader: an elected one that
	// cannot renew its lease in time exits, and kwokctl does not restart it. Seen in CI: the disk stalled
	// (etcd's fdatasync took 1.6 s, an apply 14.5 s), both lost their leases and exited, and every later
	// test waited in vain for its namespace's default service account. etcd no longer syncs every write
	// either (the testbed's cluster must outlive its processes, not the machine), so a stalled disk stalls
	// neither the API server nor the tests.
	b.WriteString(`componentsPatches:
- name: etcd
  extraArgs:
  - key: unsafe-no-fsync
    value: "true"
- name: kube-scheduler
  extraArgs:
  - key: pod-max-in-unschedulable-pods-duration
    value: 10s
  - key: leader-elect
    value: "false"
- name: kube-controller-manager
  extraArgs:
  - key: leader-elect
    value: "false"
`)
	for _, f := range []string{"stages-node.yaml", "stages-pod.yaml", "metrics.yaml"} {
		data, err := os.ReadFile(filepath.Join(root, "deploy", "dev", "kwok", f))
		if err != nil {
			return "", err
		}
		b.WriteString("---\n")
		b.Write(data)
		b.WriteString("\n")
	}
	return b.String(), nil
}

// writeDownScript writes <dir>/down.sh, the one way a stack is stopped: by make dev-down, by Stack.Stop and
// by the watchdog of a test binary that died. It is idempotent.
func writeDownScript(s *Stack, bins map[string]string) error {
	script := fmt.Sprintf(`#!/bin/bash
# Stops the stack started in this folder. Written by internal/testbed; safe to run more than once.
dir=%[1]q
if [ -d "$dir/kwok/clusters/%[2]s" ]; then
  # Keep the components' logs: kwokctl's delete removes the cluster's folder.
  mkdir -p "$dir/logs/kwok" && cp -r "$dir/kwok/clusters/%[2]s/logs/." "$dir/logs/kwok/" 2>/dev/null
  KWOK_WORKDIR="$dir/kwok" %[3]q --name %[2]q delete cluster >>"$dir/logs/kwokctl-delete.log" 2>&1
fi
for f in "$dir"/pids/*; do
  [ -f "$f" ] && kill -TERM -- "-$(cat "$f")" 2>/dev/null
done
i=0
while [ $i -lt 150 ]; do
  alive=0
  for f in "$dir"/pids/*; do
    [ -f "$f" ] && kill -0 -- "-$(cat "$f")" 2>/dev/null && alive=1
  done
  [ $alive = 0 ] && break
  sleep 0.1
  i=$((i+1))
done
for f in "$dir"/pids/*; do
  [ -f "$f" ] || continue
  kill -KILL -- "-$(cat "$f")" 2>/dev/null
  rm -f "$f"
done
# Whatever kwokctl started and its own delete missed: every such process names the cluster's folder.
for p in /proc/[0-9]*; do
  if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "$dir/kwok/clusters/"; then
    kill -KILL "${p#/proc/}" 2>/dev/null
  fi
done
exit 0
`, s.Dir, s.Name, bins["kwokctl"])
	if err := os.MkdirAll(filepath.Join(s.Dir, "logs"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.Dir, "down.sh"), []byte(script), 0o755)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startAWSEmulator builds the emulator from this repository (the Go build cache makes it quick) and starts
// it against the cluster.
func startAWSEmulator(ctx context.Context, s *Stack, root string, opts Options) (func(context.Context) error, error) {
	port, err := portOrFree(opts.AWSPort)
	if err != nil {
		return nil, err
	}
	if opts.AWSPort != 0 {
		if err := checkPortFree("AWS emulator", port); err != nil {
			return nil, err
		}
	}
	bin := filepath.Join(s.Dir, "awsemu")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./internal/awsemu/cmd/awsemu")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the AWS emulator: %v\n%s", err, out)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if _, err := startDetached(s.Dir, "awsemu", nil, bin, "--listen", addr, "--kubeconfig", s.Kube.Kubeconfig); err != nil {
		return nil, err
	}
	s.AWS = AWS{Endpoint: "http://" + addr, Region: "us-east-1"}
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return waitHTTP(ctx, s.AWS.Endpoint+"/_emulator/state", filepath.Join(s.Dir, "logs", "awsemu.log"))
	}, nil
}
