package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/internal/loadsim"
	"github.com/llmscaler/llmscaler/internal/promsd"
	"github.com/llmscaler/llmscaler/internal/serving"
	"github.com/llmscaler/llmscaler/internal/trace"
	"github.com/llmscaler/llmscaler/worker"
)

// traceFlags are the trace-shaping flags of loadsim and sim.
type traceFlags struct {
	file      string
	window    string
	rateScale float64
	compress  float64
	seed      uint64
}

func (f *traceFlags) add(cmd *cobra.Command, compressDefault float64) {
	cmd.Flags().StringVar(&f.file, "trace", "deploy/examples/traces/AzureLLMInferenceTrace_conv.csv", "trace CSV: the Azure LLM inference traces' (2023, 2024: TIMESTAMP,ContextTokens,GeneratedTokens) or BurstGPT's (Timestamp,...,Request tokens,Response tokens,...)")
	cmd.Flags().StringVar(&f.window, "window", "", "part of the trace to use, FROM-TO (such as 10m-40m); default all")
	cmd.Flags().Float64Var(&f.rateScale, "rate-scale", 1, "multiply the trace's request rate")
	cmd.Flags().Float64Var(&f.compress, "compress", compressDefault, "play the trace this many times faster")
	cmd.Flags().Uint64Var(&f.seed, "seed", 1, "seed of the rate scaling")
	_ = cmd.MarkFlagFilename("trace", "csv")
}

// load reads and shapes the trace.
func (f *traceFlags) load() ([]trace.Request, error) {
	if f.rateScale <= 0 || f.compress <= 0 {
		return nil, usagef("--rate-scale and --compress must be > 0")
	}
	reqs, err := trace.ReadFile(f.file)
	if err != nil {
		return nil, usageError{err}
	}
	if f.window != "" {
		from, to, err := parseWindow(f.window)
		if err != nil {
			return nil, err
		}
		lasts := trace.Duration(reqs)
		if reqs = trace.Window(reqs, from, to); len(reqs) == 0 {
			return nil, usagef("--window %s holds no request of the trace (it lasts %s)", f.window, lasts.Round(time.Second))
		}
	}
	return trace.Compress(trace.Scale(reqs, f.rateScale, f.seed), f.compress), nil
}

func parseWindow(s string) (time.Duration, time.Duration, error) {
	a, b, ok := strings.Cut(s, "-")
	from, err1 := time.ParseDuration(a)
	to, err2 := time.ParseDuration(b)
	if !ok || err1 != nil || err2 != nil || to <= from || from < 0 {
		return 0, 0, usagef("--window %q: write FROM-TO with durations, such as 10m-40m", s)
	}
	return from, to, nil
}

func servingFlags(cmd *cobra.Command, c *serving.Config) {
	cmd.Flags().IntVar(&c.MaxBatch, "max-batch", 16, "sequences a replica decodes at once")
	cmd.Flags().Float64Var(&c.PrefillTokensPerSec, "prefill-rate", 6000, "prompt tokens a replica prefills per second")
	cmd.Flags().Float64Var(&c.DecodeTokensPerSec, "decode-rate", 30, "tokens per second one sequence generates")
	cmd.Flags().IntVar(&c.MaxQueue, "max-queue", 1024, "requests a replica queues before refusing (429)")
}

func newLoadsimCommand() *cobra.Command {
	var tf traceFlags
	var srv serving.Config
	var namespace, service, nodeGroup, listen, targetsDir, reportFile, output, kubeconfig, kubeContext string
	var slo time.Duration
	cmd := &cobra.Command{
		Use:   "loadsim --namespace NS --service SVC",
		Short: "Replay an LLM trace against a model's pods on a kwok cluster, as simulated LoRAX servers",
		Long: `loadsim replays a trace in real time against the ready endpoints of a Service in a kwok cluster. Each
ready pod acts as a LoRAX-like server (a queue before a batch of --max-batch sequences, prefill and decode
at the given rates). It serves LoRAX's per-pod metrics (lorax_queue_length, lorax_batch_current_size,
lorax_request_count, lorax_request_duration, ...) on --listen for Prometheus, writes each pod's CPU use to
kwok's usage annotation for metrics-server, lets terminating pods finish their requests before they exit,
and reports every request's outcome: served, SLO attainment, TTFT, GPU node-minutes, lost on scale-in.`,
		Example: "  llmscaler loadsim -n models --service lorax-llama-3-8b --node-group gpu-pool-a --rate-scale 0.15 --compress 12 --prometheus-targets .dev/dev/prometheus/targets",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if service == "" {
				return usagef("--service is required")
			}
			reqs, err := tf.load()
			if err != nil {
				return err
			}
			rc, err := worker.KubeConfig(config.KubernetesConfig{Kubeconfig: kubeconfig, Context: kubeContext, QPS: 50, Burst: 100})
			if err != nil {
				return usageError{err}
			}
			kube, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return err
			}
			sim := loadsim.New(loadsim.Config{Kube: kube, Namespace: namespace, Service: service, NodeGroup: nodeGroup, Trace: reqs, Serving: srv, SLO: slo})
			addr, stop, err := sim.ServeMetrics(listen)
			if err != nil {
				return err
			}
			defer stop()
			if targetsDir != "" {
				remove, err := promsd.Add(targetsDir, "loadsim-"+namespace+"-"+service, addr, map[string]string{"source": "loadsim"})
				if err != nil {
					return err
				}
				defer func() { _ = remove() }()
			}
			ctx, cancel := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			errOut := cmd.ErrOrStderr()
			fmt.Fprintf(errOut, "replaying %d requests over %s against %s/%s; metrics on http://%s/metrics\n", len(reqs), trace.Duration(reqs).Round(time.Second), namespace, service, addr)
			go func() {
				for ctx.Err() == nil {
					time.Sleep(5 * time.Second)
					st := sim.Status()
					fmt.Fprintf(errOut, "%s  arrived %d/%d  waiting %d  in flight %d  pods %d  nodes %d  served %d  lost %d\n",
						st.Elapsed, st.Arrived, st.Total, st.Waiting, st.InFlight, st.Servers, st.Nodes, st.Served, st.Lost)
				}
			}()
			report, runErr := sim.Run(ctx)
			if reportFile != "" {
				b, _ := json.MarshalIndent(struct {
					Report   loadsim.Report    `json:"report"`
					Outcomes []loadsim.Outcome `json:"outcomes"`
				}{report, sim.Outcomes()}, "", "  ")
				if err := os.WriteFile(reportFile, b, 0o644); err != nil {
					return err
				}
			}
			if err := printValue(cmd.OutOrStdout(), output, report, func(w io.Writer) error { report.Write(w); return nil }); err != nil {
				return err
			}
			if runErr != nil && ctx.Err() == nil {
				return runErr
			}
			return nil
		},
	}
	tf.add(cmd, 1)
	servingFlags(cmd, &srv)
	cmd.Flags().StringVarP(&namespace, "namespace", "n", config.DefaultNamespace, "namespace of the model's pods")
	cmd.Flags().StringVar(&service, "service", "", "Service whose ready endpoints receive the requests")
	cmd.Flags().StringVar(&nodeGroup, "node-group", "", "node group whose GPU node-minutes to count (label llmscaler.dev/node-group)")
	cmd.Flags().DurationVar(&slo, "slo", time.Second, "queueing delay target of a request")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "address of the /metrics endpoint")
	cmd.Flags().StringVar(&targetsDir, "prometheus-targets", "", "Prometheus file_sd folder to register the /metrics endpoint in")
	cmd.Flags().StringVar(&reportFile, "report", "", "write the report and every request's outcome to this JSON file")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig (default: KUBECONFIG, in-cluster, ~/.kube/config)")
	cmd.Flags().StringVar(&kubeContext, "context", "", "kubeconfig context")
	addOutputFlag(cmd, &output)
	return cmd
}
