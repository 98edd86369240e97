// Package worker runs the Temporal worker: it builds its clients from the worker config, registers the
// workflows and activities, serves its own Prometheus metrics and health, and shuts down gracefully.
package worker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/llmscaler/llmscaler/activities"
	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/metricsource"
	"github.com/llmscaler/llmscaler/metricsource/metricsapi"
	promsource "github.com/llmscaler/llmscaler/metricsource/prometheus"
	kwokprovider "github.com/llmscaler/llmscaler/nodegroup/kwok"
	"github.com/llmscaler/llmscaler/traffic/endpoints"
	"github.com/llmscaler/llmscaler/workflows"
)

// Deps are the clients the activities use.
type Deps struct {
	Kube          kubernetes.Interface
	Metrics       metricsource.Router
	Providers     activities.Providers
	LoadBalancers activities.LoadBalancers
	// Poll is the interval of the activities' waits (default 2s).
	Poll time.Duration
}

// Register registers the workflows and the activities on a worker (or a test environment, or a replayer).
func Register(r sdkworker.Registry, d Deps) {
	RegisterWorkflows(r)
	r.RegisterActivity(&activities.Observer{Kube: d.Kube, Metrics: d.Metrics, Providers: d.Providers})
	r.RegisterActivity(&activities.Nodes{Kube: d.Kube, Providers: d.Providers, Poll: d.Poll})
	r.RegisterActivity(&activities.Cluster{Kube: d.Kube, Poll: d.Poll})
	r.RegisterActivity(&activities.Traffic{LoadBalancers: d.LoadBalancers, Poll: d.Poll})
}

// RegisterWorkflows registers the workflow types under their names.
func RegisterWorkflows(r interface {
	RegisterWorkflowWithOptions(any, workflow.RegisterOptions)
}) {
	r.RegisterWorkflowWithOptions(workflows.Autoscaler, workflow.RegisterOptions{Name: workflows.AutoscalerWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.ScaleOut, workflow.RegisterOptions{Name: workflows.ScaleOutWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.ScaleIn, workflow.RegisterOptions{Name: workflows.ScaleInWorkflowName})
}

// Dial connects to Temporal as the config says: address, namespace, mTLS, API key.
func Dial(c config.TemporalConfig, opts client.Options) (client.Client, error) {
	opts.HostPort, opts.Namespace = c.Address, c.Namespace
	tlsCfg, err := temporalTLS(c)
	if err != nil {
		return nil, err
	}
	opts.ConnectionOptions.TLS = tlsCfg
	if c.APIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(c.APIKey)
	}
	cl, err := client.Dial(opts)
	if err != nil {
		return nil, fmt.Errorf("connecting to Temporal at %s (namespace %s): %w", c.Address, c.Namespace, err)
	}
	return cl, nil
}

func temporalTLS(c config.TemporalConfig) (*tls.Config, error) {
	t := c.TLS
	if !t.Enabled && t.CertFile == "" && t.CAFile == "" && c.APIKey == "" {
		return nil, nil
	}
	cfg := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading the Temporal client certificate %s / %s: %w", t.CertFile, t.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading the Temporal CA %s: %w", t.CAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the Temporal CA %s holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// KubeConfig loads the Kubernetes client config as kubectl does: the kubeconfig file (or KUBECONFIG), else
// in-cluster, else ~/.kube/config; the context override applies to files.
func KubeConfig(c config.KubernetesConfig) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if c.Kubeconfig != "" {
		rules.ExplicitPath = c.Kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: c.Context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the Kubernetes config (kubeconfig %q, context %q): %w", c.Kubeconfig, c.Context, err)
	}
	cfg.QPS, cfg.Burst = c.QPS, c.Burst
	cfg.UserAgent = "llmscaler-worker"
	return cfg, nil
}

// NewDeps builds the activities' clients from the config.
func NewDeps(ctx context.Context, cfg config.WorkerConfig) (Deps, error) {
	restCfg, err := KubeConfig(cfg.Kubernetes)
	if err != nil {
		return Deps{}, err
	}
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return Deps{}, err
	}
	mc, err := metricsclient.NewForConfig(restCfg)
	if err != nil {
		return Deps{}, err
	}
	d := Deps{
		Kube:          kube,
		Metrics:       metricsource.Router{Resources: metricsapi.Source{Client: mc}},
		Providers:     activities.Providers{},
		LoadBalancers: activities.LoadBalancers{config.LoadBalancerEndpoints: endpoints.LoadBalancer{Kube: kube}},
	}
	if cfg.Prometheus.URL != "" {
		prom, err := promsource.New(cfg.Prometheus.URL, cfg.Prometheus.Timeout.D())
		if err != nil {
			return Deps{}, err
		}
		d.Metrics.Prometheus = prom
	}
	if len(cfg.Kwok.Groups) > 0 {
		groups := make([]kwokprovider.Group, len(cfg.Kwok.Groups))
		for i, g := range cfg.Kwok.Groups {
			groups[i] = kwokprovider.Group{KwokGroup: g}
		}
		p, err := kwokprovider.New(kube, groups)
		if err != nil {
			return Deps{}, err
		}
		d.Providers[config.ProviderKwok] = p
	}
	if err := addAWS(ctx, cfg, &d); err != nil {
		return Deps{}, err
	}
	return d, nil
}

// Run runs the worker until ctx ends, then stops it gracefully: running activities get the config's
// shutdown grace to finish (their waits resume on another worker otherwise, from their heartbeats).
func Run(ctx context.Context, cfg config.WorkerConfig, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	tc, err := Dial(cfg.Temporal, client.Options{Logger: sdklog.NewStructuredLogger(log), MetricsHandler: newSDKMetrics(reg)})
	if err != nil {
		return err
	}
	defer tc.Close()
	deps, err := NewDeps(ctx, cfg)
	if err != nil {
		return err
	}
	// An error the SDK stops the worker for (its namespace gone, its credentials refused) ends the process,
	// so that whatever runs it restarts it and says so; the process went on, healthy to its probes, polling
	// nothing.
	fatal := make(chan error, 1)
	w := sdkworker.New(tc, cfg.Temporal.TaskQueue, sdkworker.Options{
		WorkerStopTimeout:                cfg.ShutdownGrace.D(),
		MaxConcurrentWorkflowTaskPollers: cfg.Temporal.WorkflowTaskPollers,
		OnFatalError: func(err error) {
			select {
			case fatal <- err:
			default:
			}
		},
	})
	Register(w, deps)

	var srv *http.Server
	if cfg.Metrics.ListenAddress != "off" {
		srv, err = serveMetrics(cfg.Metrics.ListenAddress, reg, tc, log)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting the worker on task queue %s: %w", cfg.Temporal.TaskQueue, err)
	}
	log.Info("worker started", "temporal", cfg.Temporal.Address, "namespace", cfg.Temporal.Namespace, "taskQueue", cfg.Temporal.TaskQueue,
		"providers", providerNames(deps), "prometheus", cfg.Prometheus.URL, "metrics", cfg.Metrics.ListenAddress)
	select {
	case <-ctx.Done():
	case err := <-fatal:
		w.Stop()
		return fmt.Errorf("the worker on task queue %s of namespace %s stopped: %w", cfg.Temporal.TaskQueue, cfg.Temporal.Namespace, err)
	}
	log.Info("stopping the worker", "grace", cfg.ShutdownGrace.String())
	w.Stop()
	return nil
}

func providerNames(d Deps) []string {
	var out []string
	for name := range d.Providers {
		out = append(out, name)
	}
	return out
}

// serveMetrics serves /metrics, /healthz (the process runs) and /readyz (Temporal answers).
func serveMetrics(addr string, reg *prometheus.Registry, tc client.Client, log *slog.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if _, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
			http.Error(w, "temporal: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "error", err)
		}
	}()
	return srv, nil
}
