package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/internal/sim"
	"github.com/llmscaler/llmscaler/policy"
)

func newSimCommand() *cobra.Command {
	var tf traceFlags
	var specFile, output, plot string
	var maxReplicas int32
	var attainment float64
	var withWorkflow bool
	var explain string
	a := sim.DefaultAssumptions()
	durations := []struct {
		flag  string
		p     *policy.Duration
		usage string
	}{
		{"node-ready", &a.NodeReady, "time from asking for a node to it being Ready"},
		{"gpu-allocatable", &a.GPUAllocatable, "time from Ready to the GPUs being allocatable"},
		{"image-pull", &a.ImagePull, "image pull on a node that has not run the model (5m for a cold 15 GB pull)"},
		{"model-load", &a.ModelLoad, "time from container start to the readiness probe passing"},
		{"drain-grace", &a.DrainGrace, "our scale-in's drain grace (default: the spec's drainGracePeriod)"},
		{"baseline-grace", &a.BaselineGrace, "termination grace of the pods the HPA removes in the hpa+ca baseline"},
		{"unneeded-time", &a.ScaleDownUnneeded, "the Cluster Autoscaler's scale-down unneeded time in the baseline"},
		{"interval", &a.EvaluationInterval, "evaluation interval of the autoscalers (default: the spec's)"},
		{"warmup", &a.Warmup, "start of the trace left out of every measure (default: twice the lead time the delays add up to)"},
		{"slo", &a.SLO, "queueing delay (arrival to start of prefill) a request should not exceed (default: the spec's Demand SLO, else 1s; set, the spec's SLO follows it)"},
	}
	cmd := &cobra.Command{
		Use:   "sim [-f model.yaml]",
		Short: "Simulate a trace against our policy, the HPA with the Cluster Autoscaler, a static size and an oracle",
		Long: `sim is a discrete-event simulation of a model's GPU capacity under an LLM trace (the Azure LLM inference
traces' CSV, 2023 or 2024, or BurstGPT's). It runs our real decision code (the policy the autoscaler
workflow runs, with the sagas' semantics) beside:
  hpa+ca   the HPA on in-flight requests at 70% of the batch, default behavior, with the Cluster Autoscaler
           (nodes for pending pods, removed after the unneeded time; removed pods get --baseline-grace);
  static   the cheapest constant replica count that meets the SLO (found by bisection);
  oracle   capacity resized once a minute to that minute's peak of requests in flight, with foresight;
and variants of ours. ours-workflow is the autoscaler workflow itself, with its ScaleOut and ScaleIn child
workflows, under Temporal's test environment with time skipped, its activities backed by the simulated
cluster (--workflow=false leaves it out). Replicas are LoRAX-like servers (the load simulator's model) behind a least-request
balancer; new capacity arrives after node Ready + GPUs allocatable + image pull + model load. It reports SLO
attainment (queueing delay within --slo), queueing delay and TTFT percentiles, GPU node-hours and their ratio
to the oracle, scale actions and requests lost on scale-in; --plot writes an SVG of load, replicas and nodes.`,
		Example: `  llmscaler sim --rate-scale 10
  llmscaler sim -f deploy/examples/lorax/model.yaml --rate-scale 30 --window 0m-30m -o json
  llmscaler sim --rate-scale 10 --image-pull 5m --plot sim.svg`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if tf.compress != 1 {
				return usagef("--compress does not apply to sim: simulated time costs nothing")
			}
			spec, err := config.LoadModelSpec(specFile, config.NewModelViper())
			if err != nil {
				return usageError{err}
			}
			if maxReplicas < -1 {
				return usagef("--max-replicas %d: want a count, 0 (room for twice the oracle's peak) or -1 (the spec's)", maxReplicas)
			}
			if a.Serving.MaxBatch < 1 && cmd.Flags().Changed("max-batch") {
				return usagef("--max-batch %d: a replica decodes at least one sequence at once", a.Serving.MaxBatch)
			}
			a.Attainment = attainment
			alignDemandWithCluster(&spec.Spec.Spec, &a, cmd.Flags().Changed)
			ours := spec.Spec.Spec
			if maxReplicas > 0 {
				ours.MaxReplicas = maxReplicas
			}
			if !cmd.Flags().Changed("drain-grace") && spec.Spec.DrainGracePeriod > 0 {
				a.DrainGrace = spec.Spec.DrainGracePeriod
			}
			if !cmd.Flags().Changed("interval") && spec.Spec.EvaluationInterval > 0 {
				a.EvaluationInterval = spec.Spec.EvaluationInterval
			}
			if g := spec.Spec.NodeGroup.GPUsPerNode; g > 0 {
				a.GPUsPerNode = g
			}
			if !cmd.Flags().Changed("warmup") {
				a.Warmup = a.DefaultWarmup()
			}
			a.GPUsPerPod = max(ours.GPUsPerPod, 1)
			a.MaxNodes = nodesFor(ours.MaxReplicas, a)
			if err := a.Validate(); err != nil {
				return usageError{err}
			}
			reqs, err := tf.load()
			if err != nil {
				return err
			}
			if maxReplicas == 0 {
				// A production bound must not cap a scaled-up trace: room for twice the oracle's peak.
				ours.MaxReplicas = int32(max(200, 2*slices.Max(sim.OracleSchedule(reqs, a))))
				a.MaxNodes = nodesFor(ours.MaxReplicas, a)
			}
			policies := sim.StandardPolicies(ours, a)
			if withWorkflow {
				// Beside ours: the same spec run by the autoscaler workflow itself.
				i := slices.IndexFunc(policies, func(p sim.Policy) bool { return p.Name == "ours" }) + 1
				policies = slices.Insert(policies, i, sim.WorkflowPolicy(spec, ours.MaxReplicas))
			}
			if explain != "" {
				if err := explainPolicy(policies, explain); err != nil {
					return err
				}
			}
			rep, err := sim.Compare(sim.Options{Assumptions: a, Trace: reqs, Policies: policies})
			if err != nil {
				return err
			}
			rep.Assumptions.Trace, rep.Assumptions.RateScale, rep.Assumptions.Window = tf.file, tf.rateScale, tf.window
			if plot != "" {
				f, err := os.Create(plot)
				if err != nil {
					return fmt.Errorf("--plot: %w", err)
				}
				if err := rep.WriteSVG(f); err != nil {
					f.Close()
					return fmt.Errorf("--plot: %w", err)
				}
				if err := f.Close(); err != nil {
					return fmt.Errorf("--plot: %w", err)
				}
			}
			return printValue(cmd.OutOrStdout(), output, rep, func(w io.Writer) error { rep.WriteTable(w); return nil })
		},
	}
	tf.add(cmd, 1)
	cmd.Flags().StringVarP(&specFile, "file", "f", "deploy/examples/lorax/model.yaml", "model spec whose scaling policy is \"ours\"")
	cmd.Flags().Int32Var(&maxReplicas, "max-replicas", 0, "maxReplicas of every autoscaler (0: 200, or twice the oracle's peak when more, so a production bound does not cap a scaled-up trace; -1: the spec's)")
	cmd.Flags().Float64Var(&attainment, "attainment", 0.99, "share of requests that must meet --slo (default: the spec's Demand SLO; set, the spec's SLO follows it)")
	for _, d := range durations {
		cmd.Flags().Var(durationFlag{d.p}, d.flag, d.usage)
	}
	srv := &a.Serving
	servingFlags(cmd, srv)
	cmd.Flags().Lookup("max-batch").Usage = "sequences a replica decodes at once (default: the spec's Demand concurrency; set, the spec's concurrency follows it)"
	cmd.Flags().BoolVar(&withWorkflow, "workflow", true, "also run the autoscaler workflow itself (its child sagas, retries and timers, under Temporal's test environment with time skipped) as ours-workflow")
	cmd.Flags().StringVar(&plot, "plot", "", "write an SVG plot of load, replicas and nodes over time for each policy")
	cmd.Flags().StringVar(&explain, "explain", "", fmt.Sprintf("explain a policy's lateness (ours, ours-workflow, hpa+ca or a variant): its %d spells with the most late requests, each with the decisions that shaped it", explainedSpells))
	_ = cmd.MarkFlagFilename("file", "yaml", "yml")
	_ = cmd.MarkFlagFilename("plot", "svg")
	addOutputFlag(cmd, &output)
	return cmd
}

// explainedSpells is how many late spells --explain prints.
const explainedSpells = 3

// explainPolicy asks the named policy to explain its late spells: ours, hpa+ca and the variants from the
// records the simulator keeps of their decisions, ours-workflow from the workflow's own.
func explainPolicy(policies []sim.Policy, name string) error {
	var names []string
	for i, p := range policies {
		if p.Name == name {
			policies[i].Explain = explainedSpells
			return nil
		}
		names = append(names, p.Name)
	}
	return usagef("--explain %q: not a policy of this run; one of %s (static and oracle make no decisions)", name, strings.Join(names, ", "))
}

// nodesFor is the node group's size that holds replicas pods (1 for GPU counts Validate refuses).
func nodesFor(replicas int32, a sim.Assumptions) int32 {
	if a.GPUsPerPod < 1 || a.GPUsPerNode < a.GPUsPerPod {
		return 1
	}
	perNode := a.GPUsPerNode / a.GPUsPerPod
	return max((replicas+perNode-1)/perNode, 1)
}

// alignDemandWithCluster makes the spec's Demand metrics and the simulated cluster describe the same
// servers and the same SLO. A flag given on the command line is what the run asks about ("what if the
// replicas decoded 32 at once", "what if the SLO were 500 ms"), so the spec's concurrency and SLO follow it:
// a policy sized for a 16-sequence batch on 32-sequence servers would measure the mismatch, not the policy
// (twice the node-hours), while the HPA baseline's target already follows the servers' batch. A flag left
// unset takes the spec's value, so a spec written for its own servers is simulated on them. The arrival
// rate is read over the window the spec's query uses (no flag sets it).
func alignDemandWithCluster(spec *policy.Spec, a *sim.Assumptions, changed func(flag string) bool) {
	for i, m := range spec.Metrics {
		if m.Type != policy.DemandMetric || m.Demand == nil {
			continue
		}
		d := *m.Demand
		if d.RateWindow > 0 {
			a.RateWindow = d.RateWindow
		}
		if changed("max-batch") || d.Concurrency <= 0 {
			d.Concurrency = int32(a.Serving.MaxBatch)
		} else {
			a.Serving.MaxBatch = int(d.Concurrency)
		}
		if d.SLO != nil && d.SLO.QueueDelay > 0 {
			slo := *d.SLO
			if changed("slo") {
				slo.QueueDelay = a.SLO
			} else {
				a.SLO = slo.QueueDelay
			}
			if changed("attainment") {
				slo.Attainment = a.Attainment
			} else if slo.Attainment > 0 {
				a.Attainment = slo.Attainment
			}
			d.SLO = &slo
		}
		spec.Metrics[i].Demand = &d
	}
}

// durationFlag is a pflag.Value over a policy.Duration.
type durationFlag struct{ p *policy.Duration }

func (d durationFlag) String() string {
	if d.p == nil {
		return ""
	}
	return d.p.String()
}

func (d durationFlag) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration: use a number with a unit, such as 90s or 5m", s)
	}
	if v < 0 {
		return fmt.Errorf("%q: a delay cannot be negative", s)
	}
	*d.p = policy.Duration(v)
	return nil
}

func (durationFlag) Type() string { return "duration" }
