package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestWorkerConfigPrecedenceFileEnvFlag(t *testing.T) {
	file := filepath.Join(t.TempDir(), "worker.yaml")
	if err := os.WriteFile(file, []byte(`
temporal:
  address: file:7233
  namespace: from-file
  taskQueue: q-file
prometheus:
  url: http://prom.file:9090
kwok:
  groups:
  - {name: gpu-pool-a, instanceType: g5.xlarge, min: 0, max: 4}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEMPORAL_NAMESPACE", "from-env")
	t.Setenv("TEMPORAL_ADDRESS", "env:7233")
	v := NewWorkerViper()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	BindWorkerFlags(fs, v)
	if err := fs.Parse([]string{"--address", "flag:7233"}); err != nil {
		t.Fatal(err)
	}
	c, err := LoadWorkerConfig(file, v)
	if err != nil {
		t.Fatal(err)
	}
	if c.Temporal.Address != "flag:7233" || c.Temporal.Namespace != "from-env" || c.Temporal.TaskQueue != "q-file" {
		t.Fatalf("precedence broken: %+v", c.Temporal)
	}
	if len(c.Kwok.Groups) != 1 || c.Kwok.Groups[0].BootDelay.D().Seconds() != 90 || c.Kwok.Groups[0].Zones[0] != "us-east-1a" {
		t.Fatalf("kwok defaults: %+v", c.Kwok.Groups)
	}
}

func TestWorkerConfigDefaultsWithoutAFile(t *testing.T) {
	c, err := LoadWorkerConfig("", NewWorkerViper())
	if err != nil {
		t.Fatal(err)
	}
	if c.Temporal.Address != DefaultTemporalAddress || c.Temporal.TaskQueue != DefaultTaskQueue || c.Metrics.ListenAddress != DefaultMetricsAddress ||
		c.Temporal.WorkflowTaskPollers != DefaultWorkflowTaskPollers {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestWorkerConfigProblemsAllAtOnce(t *testing.T) {
	file := filepath.Join(t.TempDir(), "worker.yaml")
	_ = os.WriteFile(file, []byte(`
temporal: {address: "no-port", tls: {certFile: /nonexistent/cert.pem}}
prometheus: {url: "prom:9090"}
kwok: {groups: [{name: a, instanceType: g5.xlarge, min: 3, max: 1}, {name: a}]}
metrics: {listenAddres: ":1"}
`), 0o644)
	_, err := LoadWorkerConfig(file, NewWorkerViper())
	if err == nil {
		t.Fatal("accepted")
	}
	if !strings.Contains(err.Error(), "metrics.listenaddres: unknown field (did you mean listenAddress?)") {
		t.Fatalf("unknown field not reported first: %v", err)
	}
	_ = os.WriteFile(file, []byte(`
temporal: {address: "no-port", tls: {certFile: /nonexistent/cert.pem}, workflowTaskPollers: 1}
prometheus: {url: "prom:9090"}
kwok: {groups: [{name: a, instanceType: g5.xlarge, min: 3, max: 1, bootDelay: -5s}, {name: a}]}
kubernetes: {qps: -1}
shutdownGrace: -1s
`), 0o644)
	_, err = LoadWorkerConfig(file, NewWorkerViper())
	for _, want := range []string{
		"kubernetes.qps: must not be negative",
		"shutdownGrace: must not be negative",
		"kwok.groups[0]: bootDelay and gpuDelay must not be negative (got -5s,",
		`temporal.address: must be host:port (got "no-port")`,
		"temporal.tls: certFile and keyFile go together",
		"temporal.workflowTaskPollers: must be between 2 and 64 (got 1)",
		"temporal.tls.certFile: cannot read /nonexistent/cert.pem",
		`prometheus.url: must be an http(s) URL (got "prom:9090")`,
		"kwok.groups[0]: needs 0 <= min <= max (got min 3, max 1)",
		`kwok.groups[1].name: "a" is defined twice`,
		"kwok.groups[1].instanceType: is required",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// Every setting has its LLMSCALER_ variable, not only those the file sets too.
func TestEveryWorkerSettingReadsItsEnvironmentVariable(t *testing.T) {
	t.Setenv("LLMSCALER_SHUTDOWNGRACE", "7s")
	t.Setenv("LLMSCALER_KUBERNETES_QPS", "20")
	t.Setenv("LLMSCALER_TEMPORAL_WORKFLOWTASKPOLLERS", "4")
	t.Setenv("LLMSCALER_PROMETHEUS_TIMEOUT", "9s")
	t.Setenv("TEMPORAL_ADDRESS", "env:7233") // an alternate name still binds
	c, err := LoadWorkerConfig("", NewWorkerViper())
	if err != nil {
		t.Fatal(err)
	}
	if c.ShutdownGrace.D() != 7*time.Second || c.Kubernetes.QPS != 20 || c.Temporal.WorkflowTaskPollers != 4 ||
		c.Prometheus.Timeout.D() != 9*time.Second || c.Temporal.Address != "env:7233" {
		t.Fatalf("from the environment: %+v", c)
	}
}
