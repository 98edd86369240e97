package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/llmscaler/llmscaler/policy"
)

// WorkerConfig is how the worker reaches everything it drives.
type WorkerConfig struct {
	// Temporal is the Temporal service the worker polls.
	Temporal TemporalConfig `json:"temporal"`
	// Kubernetes is the cluster the models run in.
	Kubernetes KubernetesConfig `json:"kubernetes,omitempty"`
	// AWS is where Auto Scaling groups and target groups live.
	AWS AWSConfig `json:"aws,omitempty"`
	// Prometheus serves the Pods, Object, External and Demand metrics.
	Prometheus PrometheusConfig `json:"prometheus,omitempty"`
	// Metrics is where the worker serves its own /metrics, /healthz and /readyz.
	Metrics MetricsConfig `json:"metrics,omitempty"`
	// Kwok configures the kwok node provider's groups (local clusters only).
	Kwok KwokConfig `json:"kwok,omitempty"`
	// ShutdownGrace is how long a stopping worker lets running activities finish (default 30s).
	ShutdownGrace policy.Duration `json:"shutdownGrace,omitempty"`
}

// TemporalConfig reaches the Temporal service. Environment variables follow the temporal CLI's names.
type TemporalConfig struct {
	// Address is host:port of the frontend (TEMPORAL_ADDRESS; default 127.0.0.1:7233).
	Address string `json:"address,omitempty"`
	// Namespace (TEMPORAL_NAMESPACE; default "default").
	Namespace string `json:"namespace,omitempty"`
	// TaskQueue the worker polls and the CLI starts workflows on (default "llmscaler").
	TaskQueue string `json:"taskQueue,omitempty"`
	// APIKey for Temporal Cloud (TEMPORAL_API_KEY).
	APIKey string `json:"apiKey,omitempty"`
	// TLS to Temporal (mutual TLS with a client certificate, or server-only).
	TLS TLSConfig `json:"tls,omitempty"`
	// WorkflowTaskPollers is how many workflow tasks the worker asks for at once (default 8, 2-64). With
	// hundreds of models the SDK's default of two leaves ticks waiting for a poller: at 1,000 models the
	// tick lateness p99 was 0.3-12.6 s with two, 175 ms with eight (`make bench-scale`).
	WorkflowTaskPollers int `json:"workflowTaskPollers,omitempty"`
}

// DefaultWorkflowTaskPollers is the worker's default number of workflow task pollers.
const DefaultWorkflowTaskPollers = 8

// TLSConfig is mutual TLS to Temporal.
type TLSConfig struct {
	// Enabled turns TLS on; a certificate or an API key turns it on too.
	Enabled bool `json:"enabled,omitempty"`
	// CertFile is the client certificate (TEMPORAL_TLS_CLIENT_CERT_PATH).
	CertFile string `json:"certFile,omitempty"`
	// KeyFile is the client certificate's key (TEMPORAL_TLS_CLIENT_KEY_PATH).
	KeyFile string `json:"keyFile,omitempty"`
	// CAFile verifies the server (TEMPORAL_TLS_SERVER_CA_CERT_PATH); default: the system roots.
	CAFile string `json:"caFile,omitempty"`
	// ServerName overrides the name checked in the server's certificate (TEMPORAL_TLS_SERVER_NAME).
	ServerName string `json:"serverName,omitempty"`
}

// KubernetesConfig reaches the cluster, as kubectl does: KUBECONFIG, else in-cluster, else ~/.kube/config.
type KubernetesConfig struct {
	// Kubeconfig file (KUBECONFIG); default in-cluster, then ~/.kube/config.
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// Context of the kubeconfig.
	Context string `json:"context,omitempty"`
	// QPS of the client (default 50).
	QPS float32 `json:"qps,omitempty"`
	// Burst of the client (default 100).
	Burst int `json:"burst,omitempty"`
}

// AWSConfig reaches AWS with the default credential chain (IRSA, EKS Pod Identity, environment, profile).
type AWSConfig struct {
	// Region (default: from the environment or profile, as the AWS SDK resolves it).
	Region string `json:"region,omitempty"`
	// Endpoint overrides the AWS endpoint: only for tests and the demo's emulator.
	Endpoint string `json:"endpoint,omitempty"`
	// MaxAttempts of the SDK's retryer per call (default 5); the activity's retry policy sits above it.
	MaxAttempts int `json:"maxAttempts,omitempty"`
}

// PrometheusConfig reaches the Prometheus HTTP API for LLM metrics.
type PrometheusConfig struct {
	// URL of Prometheus (PROMETHEUS_URL), e.g. http://prometheus.monitoring:9090.
	URL string `json:"url,omitempty"`
	// Timeout of one query (default 5s).
	Timeout policy.Duration `json:"timeout,omitempty"`
}

// MetricsConfig says where the worker serves its own metrics and health.
type MetricsConfig struct {
	// ListenAddress (default :9464; "off" disables).
	ListenAddress string `json:"listenAddress,omitempty"`
}

// KwokConfig defines the kwok provider's node groups.
type KwokConfig struct {
	// Groups of simulated GPU nodes.
	Groups []KwokGroup `json:"groups,omitempty"`
}

// KwokGroup is a group of simulated GPU nodes.
type KwokGroup struct {
	// Name of the group (a model's spec.nodeGroup.name).
	Name string `json:"name"`
	// InstanceType of its nodes, an EC2 GPU type such as g5.xlarge.
	InstanceType string `json:"instanceType"`
	// Zones nodes are spread over (default us-east-1a).
	Zones []string `json:"zones,omitempty"`
	// Min is the group's minimum size.
	Min int32 `json:"min"`
	// Max is the group's maximum size.
	Max int32 `json:"max"`
	// BootDelay from request to Ready (default 90s: EC2 GPU nodes take 70-100s).
	BootDelay policy.Duration `json:"bootDelay,omitempty"`
	// GPUDelay from Ready to GPUs allocatable (default 60s: the NVIDIA device plugin).
	GPUDelay policy.Duration `json:"gpuDelay,omitempty"`
}

// Worker defaults.
const (
	DefaultTemporalAddress   = "127.0.0.1:7233"
	DefaultTemporalNamespace = "default"
	DefaultTaskQueue         = "llmscaler"
	DefaultMetricsAddress    = ":9464"
	DefaultKwokBootDelay     = 90 * time.Second
	DefaultKwokGPUDelay      = 60 * time.Second
)

// workerEnv binds config keys to environment variables: LLMSCALER_* for all, plus the temporal CLI's and
// kubectl's names, so that the same shell setup drives both.
var workerEnv = map[string][]string{
	"temporal.address":        {"LLMSCALER_TEMPORAL_ADDRESS", "TEMPORAL_ADDRESS"},
	"temporal.namespace":      {"LLMSCALER_TEMPORAL_NAMESPACE", "TEMPORAL_NAMESPACE"},
	"temporal.taskqueue":      {"LLMSCALER_TEMPORAL_TASKQUEUE", "TEMPORAL_TASK_QUEUE"},
	"temporal.apikey":         {"LLMSCALER_TEMPORAL_APIKEY", "TEMPORAL_API_KEY"},
	"temporal.tls.enabled":    {"LLMSCALER_TEMPORAL_TLS_ENABLED", "TEMPORAL_TLS"},
	"temporal.tls.certfile":   {"LLMSCALER_TEMPORAL_TLS_CERTFILE", "TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CERT"},
	"temporal.tls.keyfile":    {"LLMSCALER_TEMPORAL_TLS_KEYFILE", "TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_KEY"},
	"temporal.tls.cafile":     {"LLMSCALER_TEMPORAL_TLS_CAFILE", "TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_CA"},
	"temporal.tls.servername": {"LLMSCALER_TEMPORAL_TLS_SERVERNAME", "TEMPORAL_TLS_SERVER_NAME"},
	"kubernetes.kubeconfig":   {"LLMSCALER_KUBERNETES_KUBECONFIG", "KUBECONFIG"},
	"kubernetes.context":      {"LLMSCALER_KUBERNETES_CONTEXT"},
	"aws.region":              {"LLMSCALER_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"},
	"aws.endpoint":            {"LLMSCALER_AWS_ENDPOINT"},
	"prometheus.url":          {"LLMSCALER_PROMETHEUS_URL", "PROMETHEUS_URL"},
	"metrics.listenaddress":   {"LLMSCALER_METRICS_LISTENADDRESS"},
}

// NewWorkerViper returns a viper with the worker's environment variables bound. Bind flags to it with
// BindWorkerFlags; then LoadWorkerConfig.
func NewWorkerViper() *viper.Viper {
	v := viper.NewWithOptions(viper.ExperimentalBindStruct())
	v.SetEnvPrefix("LLMSCALER")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for key, names := range workerEnv {
		_ = v.BindEnv(append([]string{key}, names...)...)
	}
	// Every other setting by its LLMSCALER_ name: the struct binding lists only the fields it finds set
	// (omitempty leaves out the zero ones), so LLMSCALER_SHUTDOWNGRACE did nothing without the file's own.
	bindSettings(v, reflect.TypeFor[WorkerConfig](), "")
	return v
}

// bindSettings binds each leaf setting of t (by its json name, below prefix) that has no binding of its own
// in workerEnv to LLMSCALER_ and its path; lists (kwok groups) are the file's alone.
func bindSettings(v *viper.Viper, t reflect.Type, prefix string) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := strings.ToLower(prefix + name)
		switch {
		case f.Type.Kind() == reflect.Struct:
			bindSettings(v, f.Type, key+".")
		case f.Type.Kind() == reflect.Slice || f.Type.Kind() == reflect.Map:
		default:
			if _, own := workerEnv[key]; !own {
				_ = v.BindEnv(key)
			}
		}
	}
}

// WorkerFlag maps a command-line flag to its config key.
type WorkerFlag struct{ Flag, Key, Usage string }

// WorkerFlags are the flags every command that talks to Temporal, Kubernetes or AWS takes.
var WorkerFlags = []WorkerFlag{
	{"address", "temporal.address", "Temporal frontend host:port (env TEMPORAL_ADDRESS)"},
	{"temporal-namespace", "temporal.namespace", "Temporal namespace (env TEMPORAL_NAMESPACE)"},
	{"task-queue", "temporal.taskQueue", "Temporal task queue of the worker"},
	{"api-key", "temporal.apiKey", "Temporal Cloud API key (env TEMPORAL_API_KEY)"},
	{"tls-cert-path", "temporal.tls.certFile", "client certificate for Temporal mTLS (env TEMPORAL_TLS_CLIENT_CERT_PATH)"},
	{"tls-key-path", "temporal.tls.keyFile", "client key for Temporal mTLS (env TEMPORAL_TLS_CLIENT_KEY_PATH)"},
	{"tls-ca-path", "temporal.tls.caFile", "CA that signed the Temporal server's certificate (env TEMPORAL_TLS_SERVER_CA_CERT_PATH)"},
	{"tls-server-name", "temporal.tls.serverName", "server name checked in Temporal's certificate"},
	{"kubeconfig", "kubernetes.kubeconfig", "kubeconfig file (env KUBECONFIG; default in-cluster, then ~/.kube/config)"},
	{"context", "kubernetes.context", "kubeconfig context"},
	{"aws-region", "aws.region", "AWS region (env AWS_REGION)"},
	{"prometheus-url", "prometheus.url", "Prometheus URL (env PROMETHEUS_URL)"},
}

// BindWorkerFlags adds the worker flags to fs and binds them to v.
func BindWorkerFlags(fs *pflag.FlagSet, v *viper.Viper) {
	for _, f := range WorkerFlags {
		if fs.Lookup(f.Flag) == nil {
			fs.String(f.Flag, "", f.Usage)
		}
		_ = v.BindPFlag(f.Key, fs.Lookup(f.Flag))
	}
}

// LoadWorkerConfig reads the worker config: file (may be empty: then environment and flags alone), then
// the environment and flags bound to v. It validates and fills defaults.
func LoadWorkerConfig(file string, v *viper.Viper) (WorkerConfig, error) {
	if v == nil {
		v = NewWorkerViper()
	}
	if file != "" {
		if err := readFile(v, file); err != nil {
			return WorkerConfig{}, err
		}
	}
	var c WorkerConfig
	source := "worker config"
	if file != "" {
		source = file
	}
	if err := decode(v, &c); err != nil {
		return WorkerConfig{}, fmt.Errorf("%s is invalid:\n%w", source, err)
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return WorkerConfig{}, fmt.Errorf("%s is invalid:\n%w", source, err)
	}
	return c, nil
}

// WithDefaults fills unset fields.
func (c WorkerConfig) WithDefaults() WorkerConfig {
	out := c
	if out.Temporal.Address == "" {
		out.Temporal.Address = DefaultTemporalAddress
	}
	if out.Temporal.Namespace == "" {
		out.Temporal.Namespace = DefaultTemporalNamespace
	}
	if out.Temporal.TaskQueue == "" {
		out.Temporal.TaskQueue = DefaultTaskQueue
	}
	if out.Temporal.WorkflowTaskPollers == 0 {
		out.Temporal.WorkflowTaskPollers = DefaultWorkflowTaskPollers
	}
	if out.Kubernetes.QPS == 0 {
		out.Kubernetes.QPS = 50
	}
	if out.Kubernetes.Burst == 0 {
		out.Kubernetes.Burst = 100
	}
	if out.AWS.MaxAttempts == 0 {
		out.AWS.MaxAttempts = 5
	}
	if out.Prometheus.Timeout == 0 {
		out.Prometheus.Timeout = policy.Duration(5 * time.Second)
	}
	if out.Metrics.ListenAddress == "" {
		out.Metrics.ListenAddress = DefaultMetricsAddress
	}
	if out.ShutdownGrace == 0 {
		out.ShutdownGrace = policy.Duration(30 * time.Second)
	}
	for i := range out.Kwok.Groups {
		g := &out.Kwok.Groups[i]
		if len(g.Zones) == 0 {
			g.Zones = []string{"us-east-1a"}
		}
		if g.BootDelay == 0 {
			g.BootDelay = policy.Duration(DefaultKwokBootDelay)
		}
		if g.GPUDelay == 0 {
			g.GPUDelay = policy.Duration(DefaultKwokGPUDelay)
		}
	}
	return out
}

// Validate checks the worker config and returns all problems at once.
func (c WorkerConfig) Validate() error {
	var p problems
	if _, _, err := net.SplitHostPort(c.Temporal.Address); err != nil {
		p.add("temporal.address", "must be host:port (got %q)", c.Temporal.Address)
	}
	if n := c.Temporal.WorkflowTaskPollers; n != 0 && (n < 2 || n > 64) {
		p.add("temporal.workflowTaskPollers", "must be between 2 and 64 (got %d)", n)
	}
	tls := c.Temporal.TLS
	if (tls.CertFile == "") != (tls.KeyFile == "") {
		p.add("temporal.tls", "certFile and keyFile go together (got only one)")
	}
	for path, f := range map[string]string{"temporal.tls.certFile": tls.CertFile, "temporal.tls.keyFile": tls.KeyFile, "temporal.tls.caFile": tls.CAFile, "kubernetes.kubeconfig": c.Kubernetes.Kubeconfig} {
		if f == "" {
			continue
		}
		for _, one := range strings.Split(f, string(os.PathListSeparator)) {
			if _, err := os.Stat(one); err != nil {
				p.add(path, "cannot read %s: %v", one, err)
			}
		}
	}
	if c.Prometheus.URL != "" {
		if u, err := url.Parse(c.Prometheus.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add("prometheus.url", "must be an http(s) URL (got %q)", c.Prometheus.URL)
		}
	}
	if c.AWS.Endpoint != "" {
		if u, err := url.Parse(c.AWS.Endpoint); err != nil || u.Scheme == "" || u.Host == "" {
			p.add("aws.endpoint", "must be a URL (got %q)", c.AWS.Endpoint)
		}
	}
	if a := c.Metrics.ListenAddress; a != "off" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			p.add("metrics.listenAddress", "must be host:port or :port, or off (got %q)", a)
		}
	}
	for _, n := range []struct {
		path     string
		negative bool
	}{
		{"kubernetes.qps", c.Kubernetes.QPS < 0}, {"kubernetes.burst", c.Kubernetes.Burst < 0}, {"aws.maxAttempts", c.AWS.MaxAttempts < 0},
		{"prometheus.timeout", c.Prometheus.Timeout < 0}, {"shutdownGrace", c.ShutdownGrace < 0},
	} {
		if n.negative {
			p.add(n.path, "must not be negative")
		}
	}
	seen := map[string]bool{}
	for i, g := range c.Kwok.Groups {
		gp := fmt.Sprintf("kwok.groups[%d]", i)
		if g.Name == "" {
			p.add(gp+".name", "is required")
		} else if seen[g.Name] {
			p.add(gp+".name", "%q is defined twice", g.Name)
		}
		seen[g.Name] = true
		if g.InstanceType == "" {
			p.add(gp+".instanceType", "is required")
		}
		if g.Min < 0 || g.Max < g.Min {
			p.add(gp, "needs 0 <= min <= max (got min %d, max %d)", g.Min, g.Max)
		}
		if g.BootDelay < 0 || g.GPUDelay < 0 {
			p.add(gp, "bootDelay and gpuDelay must not be negative (got %s, %s)", g.BootDelay, g.GPUDelay)
		}
	}
	// The file checks ran over a map: give them a fixed order.
	slices.SortStableFunc(p.list, func(a, b Problem) int { return strings.Compare(a.Path, b.Path) })
	return p.err()
}
