// Package testbed starts and stops the local stack of real components that integration tests, `make dev-up`
// and the demo run against: a Temporal dev server (optionally with its Web UI), a Kubernetes control plane
// whose nodes are simulated by kwok (real etcd, kube-apiserver with authorization, controller-manager,
// scheduler, and metrics-server), and a Prometheus server. All binaries come from bin/, built by `make tools`.
//
// Every process runs in a process group of its own and is recorded under the stack's folder, together with a
// down.sh script that stops all of it; `make dev-down`, Stack.Stop and the watchdog of a test binary all run
// that one script.
package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Stack describes a running stack; it is saved as <Dir>/stack.json.
type Stack struct {
	Name       string     `json:"name"`
	Dir        string     `json:"dir"`
	Temporal   Temporal   `json:"temporal"`
	Kube       Kube       `json:"kube"`
	Prometheus Prometheus `json:"prometheus"`
	AWS        AWS        `json:"aws"`
}

// AWS is how to reach the AWS emulator (internal/awsemu).
type AWS struct {
	// Endpoint serves the Auto Scaling and ELBv2 APIs, and the admin API under /_emulator/.
	Endpoint string `json:"endpoint"`
	Region   string `json:"region"`
}

// Temporal is how to reach the dev server.
type Temporal struct {
	Address   string `json:"address"`
	Namespace string `json:"namespace"`
	// UIURL is empty when the stack runs headless.
	UIURL string `json:"uiURL,omitempty"`
}

// Kube is how to reach the kwok cluster.
type Kube struct {
	Cluster    string `json:"cluster"`
	Kubeconfig string `json:"kubeconfig"`
}

// Prometheus is how to reach the Prometheus server and add scrape targets to it.
type Prometheus struct {
	URL string `json:"url"`
	// TargetsDir holds file_sd target files (*.json); Prometheus picks up changes within seconds.
	TargetsDir string `json:"targetsDir"`
}

// Options choose names, folders and ports. Zero ports mean "any free port", which is what tests use so that
// their stack never collides with a developer's.
type Options struct {
	// Name of the stack and of its kwok cluster.
	Name string
	// Dir holds the stack's state; default <repo>/.dev/<Name>.
	Dir               string
	TemporalPort      int
	TemporalUIPort    int
	PrometheusPort    int
	AWSPort           int
	KubeAPIServerPort int
	// UI starts the Temporal Web UI.
	UI bool
	// ScrapeInterval of Prometheus; default 2s.
	ScrapeInterval time.Duration
	// Log receives progress lines; nil discards them.
	Log func(format string, args ...any)
}

const temporalNamespace = "default"

// Start builds nothing: it starts the stack from the binaries in bin/ and waits until every part answers.
// On failure it stops whatever it had started.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	if opts.Name == "" {
		return nil, errors.New("stack name is empty")
	}
	if opts.Dir == "" {
		opts.Dir = filepath.Join(root, ".dev", opts.Name)
	}
	if opts.ScrapeInterval == 0 {
		opts.ScrapeInterval = 2 * time.Second
	}
	logf := opts.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bins, err := requireTools(root, "temporal", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
		"kubectl", "kwok", "kwokctl", "metrics-server", "prometheus")
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "stack.json")); err == nil {
		if running, _ := Load(dir); running != nil && running.Running() {
			return nil, fmt.Errorf("a stack is already running in %s: stop it first (make dev-down, or %s)", dir, filepath.Join(dir, "down.sh"))
		}
		// Leftovers of a stack that died: stop what may remain and start afresh.
		_ = runDown(dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &Stack{Name: opts.Name, Dir: dir}
	if err := writeDownScript(s, bins); err != nil {
		return nil, err
	}
	// One stack starts at a time on this machine, whichever checkout it comes from: free ports are chosen
	// (by us and by kwokctl), then bound, and two starts at once could pick the same ones.
	unlock, err := lockFile(filepath.Join(os.TempDir(), "llmscaler-testbed-start.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()

	logf("starting Temporal dev server")
	waitTemporal, err := startTemporal(s, bins, opts)
	if err != nil {
		return nil, err
	}
	logf("starting Prometheus")
	waitPrometheus, err := startPrometheus(s, bins, opts)
	if err != nil {
		return nil, err
	}
	logf("creating kwok cluster %q (etcd, kube-apiserver, controller-manager, scheduler, kwok, metrics-server)", opts.Name)
	if err := createCluster(ctx, s, root, bins, opts); err != nil {
		return nil, err
	}
	logf("starting the AWS emulator")
	waitAWS, err := startAWSEmulator(ctx, s, root, opts)
	if err != nil {
		return nil, err
	}
	if err := waitTemporal(ctx); err != nil {
		return nil, err
	}
	if err := waitAWS(ctx); err != nil {
		return nil, err
	}
	if err := waitPrometheus(ctx); err != nil {
		return nil, err
	}
	if err := waitMetricsAPI(ctx, s, root, bins, logf); err != nil {
		return nil, err
	}
	if err := s.save(); err != nil {
		return nil, err
	}
	return s, nil
}

// Stop stops every process of the stack and leaves its folder (logs) in place.
func (s *Stack) Stop() error {
	return runDown(s.Dir)
}

// Load reads the description of a stack started in dir.
func Load(dir string) (*Stack, error) {
	b, err := os.ReadFile(filepath.Join(dir, "stack.json"))
	if err != nil {
		return nil, err
	}
	var s Stack
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, "stack.json"), err)
	}
	return &s, nil
}

func (s *Stack) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.Dir, "stack.json"), b, 0o644)
}

// Running reports whether any recorded process group of the stack still runs.
func (s *Stack) Running() bool {
	entries, _ := os.ReadDir(filepath.Join(s.Dir, "pids"))
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(s.Dir, "pids", e.Name()))
		if err != nil {
			continue
		}
		var pgid int
		if _, err := fmt.Sscan(string(b), &pgid); err == nil && pgid > 1 && groupAlive(pgid) {
			return true
		}
	}
	return false
}

// Env returns the environment variables that point our CLI, kubectl and the temporal CLI at this stack.
func (s *Stack) Env() []string {
	return []string{
		"TEMPORAL_ADDRESS=" + s.Temporal.Address,
		"TEMPORAL_NAMESPACE=" + s.Temporal.Namespace,
		"KUBECONFIG=" + s.Kube.Kubeconfig,
		"PROMETHEUS_URL=" + s.Prometheus.URL,
		// The AWS SDK's default chain reads these: the emulator takes any credentials.
		"LLMSCALER_AWS_ENDPOINT=" + s.AWS.Endpoint,
		"AWS_REGION=" + s.AWS.Region,
		"AWS_ACCESS_KEY_ID=emulator",
		"AWS_SECRET_ACCESS_KEY=emulator",
	}
}

// WorkerConfig is the part of a worker config (`llmscaler worker --config`) that points a worker at this
// stack, polling taskQueue; a caller appends its own sections (metrics, kwok groups).
func (s *Stack) WorkerConfig(taskQueue string) string {
	return fmt.Sprintf(`temporal:
  address: %s
  namespace: %s
  taskQueue: %s
kubernetes:
  kubeconfig: %s
prometheus:
  url: %s
aws:
  region: %s
  endpoint: %s
`, s.Temporal.Address, s.Temporal.Namespace, taskQueue, s.Kube.Kubeconfig, s.Prometheus.URL, s.AWS.Region, s.AWS.Endpoint)
}

// Describe returns how to reach the stack, for people.
func (s *Stack) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Temporal     %s (namespace %s)\n", s.Temporal.Address, s.Temporal.Namespace)
	if s.Temporal.UIURL != "" {
		fmt.Fprintf(&b, "Temporal UI  %s\n", s.Temporal.UIURL)
	}
	fmt.Fprintf(&b, "Kubernetes   kubeconfig %s (kwok cluster %q)\n", s.Kube.Kubeconfig, s.Kube.Cluster)
	fmt.Fprintf(&b, "Prometheus   %s (scrape targets: %s/*.json)\n", s.Prometheus.URL, s.Prometheus.TargetsDir)
	fmt.Fprintf(&b, "AWS emulator %s (Auto Scaling + ELBv2, region %s; admin API %s/_emulator/state)\n", s.AWS.Endpoint, s.AWS.Region, s.AWS.Endpoint)
	fmt.Fprintf(&b, "State, logs  %s\n", s.Dir)
	b.WriteString("\nUse it from a shell:\n")
	for _, e := range s.Env() {
		fmt.Fprintf(&b, "  export %s\n", e)
	}
	return b.String()
}

func runDown(dir string) error {
	script := filepath.Join(dir, "down.sh")
	if _, err := os.Stat(script); err != nil {
		return nil
	}
	out, err := exec.Command("/bin/bash", script).CombinedOutput()
	if err != nil {
		return fmt.Errorf("stopping the stack in %s: %v: %s", dir, err, out)
	}
	return nil
}

// RepoRoot finds the repository root: the nearest parent folder whose go.mod declares our module.
func RepoRoot() (string, error) {
	if r := os.Getenv("LLMSCALER_ROOT"); r != "" {
		return r, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/llmscaler/llmscaler\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the llmscaler repository root above the working directory (set LLMSCALER_ROOT)")
		}
		dir = parent
	}
}

// requireTools returns the paths of the named binaries in bin/, or an error that gives the command that
// builds the missing ones.
func requireTools(root string, names ...string) (map[string]string, error) {
	paths := map[string]string{}
	var missing []string
	for _, n := range names {
		p := filepath.Join(root, "bin", n)
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, n)
			continue
		}
		paths[n] = p
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing tools in %s: %s; build them with `make tools` (or `hack/tools.sh %s`) in %s",
			filepath.Join(root, "bin"), strings.Join(missing, ", "), strings.Join(missing, " "), root)
	}
	return paths, nil
}

// lockFile takes an exclusive lock on path (created if needed) and returns its release.
func lockFile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
