package main

import (
	"github.com/spf13/cobra"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "llmscaler",
		Short: "Autoscale LLM inference servers and their GPU nodes with durable Temporal workflows",
		Long: `llmscaler scales LLM inference Deployments (LoRAX, vLLM, TGI) and the GPU nodes under them.
One Temporal workflow per model evaluates load, decides with the Kubernetes HPA's math, and runs
scale-out and scale-in sagas that never cut off a request.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newExplainCommand(), newWorkerCommand(), newModelCommand(), newLoadsimCommand(), newSimCommand())
	return root
}
