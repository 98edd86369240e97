package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/worker"
)

func newWorkerCommand() *cobra.Command {
	var configFile, logLevel, logFormat string
	v := config.NewWorkerViper()
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run the autoscaler worker (the Temporal worker that runs every model's workflows)",
		Long: `worker connects to Temporal, Kubernetes, Prometheus and AWS as its config says, and runs the autoscaler
workflows and their activities until it receives SIGINT or SIGTERM; running activities then get the
shutdown grace to finish. It serves /metrics, /healthz and /readyz on metrics.listenAddress (default :9464).

Settings come from the config file, then the environment (LLMSCALER_*, and TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_* as the temporal CLI reads them, KUBECONFIG,
AWS_REGION, PROMETHEUS_URL), then flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadWorkerConfig(configFile, v)
			if err != nil {
				return usageError{err}
			}
			log, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return worker.Run(ctx, cfg, log)
		},
	}
	cmd.Flags().StringVarP(&configFile, "config", "c", "", "worker config file (YAML)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	config.BindWorkerFlags(cmd.Flags(), v)
	_ = cmd.MarkFlagFilename("config", "yaml", "yml")
	return cmd
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, usagef("--log-format %q: use text or json", format)
}
