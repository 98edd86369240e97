package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/internal/gpunode"
	"github.com/llmscaler/llmscaler/policy"
)

func newExplainCommand() *cobra.Command {
	var specFile, snapshotFile, output string
	cmd := &cobra.Command{
		Use:   "explain -f MODEL.yaml --snapshot SNAPSHOT.json",
		Short: "Show what the autoscaler would decide for an observation, and why",
		Long: `explain runs the autoscaler's decision code on a model spec and an observation snapshot, and prints
the decision record: each metric's proposal and ratio, the tolerance verdict, which stabilization window,
rate policy or bound limited the result, the node plan, and one sentence saying why.

The snapshot is JSON (see "Snapshot format" in the README); "-" reads it from stdin. A running
autoscaler's latest snapshot comes from "llmscaler model status NAME --snapshot".`,
		Example: `  llmscaler explain -f model.yaml --snapshot snapshot.json
  llmscaler explain -f model.yaml --snapshot snapshot.json -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if specFile == "" || snapshotFile == "" {
				return usagef("both -f MODEL.yaml and --snapshot SNAPSHOT.json are required")
			}
			spec, err := config.LoadModelSpec(specFile, nil)
			if err != nil {
				return usageError{err}
			}
			snap, err := readSnapshot(snapshotFile, cmd.InOrStdin())
			if err != nil {
				return usageError{err}
			}
			now := snap.Time
			if now.IsZero() {
				now = time.Now()
			}
			state := snap.State
			if snap.Group.GPUsPerNode == 0 {
				if snap.Group.GPUsPerNode, err = gpusPerNode(spec); err != nil {
					return usageError{err}
				}
			}
			d := policy.Evaluate(policy.Input{Spec: spec.Spec.Spec, Observation: snap.Observation, Overrides: snap.Overrides,
				LeadTime: snap.LeadTime, Waiting: snap.Waiting, EvaluationInterval: spec.Spec.EvaluationInterval}, &state, now)
			return printValue(cmd.OutOrStdout(), output, d, func(w io.Writer) error { return writeDecision(w, d, spec) })
		},
	}
	cmd.Flags().StringVarP(&specFile, "filename", "f", "", "model spec (YAML)")
	cmd.Flags().StringVar(&snapshotFile, "snapshot", "", `observation snapshot (JSON), or "-" for stdin`)
	addOutputFlag(cmd, &output)
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml")
	_ = cmd.MarkFlagFilename("snapshot", "json")
	return cmd
}

func readSnapshot(file string, stdin io.Reader) (policy.Snapshot, error) {
	var r io.Reader = stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return policy.Snapshot{}, fmt.Errorf("reading snapshot: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return policy.Snapshot{}, fmt.Errorf("reading snapshot %s: %w", file, err)
	}
	dec := json.NewDecoder(bytes.NewReader(withoutRetiredStateFields(b)))
	dec.DisallowUnknownFields()
	var s policy.Snapshot
	if err := dec.Decode(&s); err != nil {
		return policy.Snapshot{}, fmt.Errorf("snapshot %s is not valid: %w", file, err)
	}
	return s, nil
}

// retiredStateFields are state fields that older versions wrote and this one no longer has: "arrivals",
// the arrival-rate readings of the Demand trend before it was fitted on busy slots ("demand"). A snapshot
// taken from an older autoscaler still explains; its trend starts afresh, as the workflow's does.
var retiredStateFields = []string{"arrivals"}

// withoutRetiredStateFields drops retiredStateFields from a snapshot's state, so that the strict decoding
// still names every other unknown field; input that is not a JSON object is returned as it is, for the
// decoder to report.
func withoutRetiredStateFields(b []byte) []byte {
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) != nil {
		return b
	}
	var state map[string]json.RawMessage
	if json.Unmarshal(top["state"], &state) != nil {
		return b
	}
	dropped := false
	for _, f := range retiredStateFields {
		if _, ok := state[f]; ok {
			delete(state, f)
			dropped = true
		}
	}
	if !dropped {
		return b
	}
	var err error
	if top["state"], err = json.Marshal(state); err != nil {
		return b
	}
	out, err := json.Marshal(top)
	if err != nil {
		return b
	}
	return out
}

// writeDecision prints a decision record for people.
func writeDecision(w io.Writer, d policy.Decision, spec config.ModelSpec) error {
	action := "no action"
	switch d.Action {
	case policy.ScaleOut:
		action = "scale out"
	case policy.ScaleIn:
		action = "scale in"
	}
	fmt.Fprintf(w, "%s at %s: %d -> %d replicas (%s)\n\n", spec.Metadata.Name, d.Time.UTC().Format(time.DateTime), d.CurrentReplicas, d.DesiredReplicas, action)
	fmt.Fprintf(w, "Why: %s\n\n", d.Summary)
	if len(d.Metrics) > 0 {
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "METRIC\tTYPE\tCURRENT\tTARGET\tRATIO\tPROPOSAL\tPODS ready/missing/unready/ignored\tNOTE")
		for _, m := range d.Metrics {
			ratio, proposal := fmt.Sprintf("%.3f", m.Ratio), fmt.Sprint(m.Replicas)
			if m.WithinTolerance {
				ratio += " (within tolerance)"
			}
			note := m.Note
			if m.Invalid != "" {
				ratio, proposal, note = "-", "invalid", m.Invalid
			}
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\t%d/%d/%d/%d\t%s\n", m.Name, m.Type, m.Current, m.Target, ratio, proposal,
				m.ReadyPods, m.MissingPods, m.UnreadyPods, m.IgnoredPods, note)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Proposal from metrics: %d\n", d.Proposal)
	if d.Panic {
		fmt.Fprintln(w, "Panic mode: on")
	}
	if len(d.Limits) > 0 {
		fmt.Fprintln(w, "Limits, in the order applied:")
		for _, l := range d.Limits {
			fmt.Fprintf(w, "  %-22s %d -> %d  %s\n", l.Kind, l.From, l.To, l.Detail)
		}
	}
	fmt.Fprintf(w, "Replicas: %d ready, %d current, %d committed (with the action under way), %d on their way\n",
		d.ReadyReplicas, d.CurrentReplicas, d.CommittedReplicas, d.ComingReplicas)
	n := d.Nodes
	fmt.Fprintf(w, "Nodes of %s: %d requested, %d serving, %d on their way; %d GPU(s) per node, %d replica(s) per node; need %d, target %d\n",
		spec.Spec.NodeGroup.Name, n.Requested, n.Serving, d.ComingNodes, n.GPUsPerNode, n.PodsPerNode, n.Needed, n.Target)
	if n.Add > 0 {
		fmt.Fprintf(w, "  add %d node(s)\n", n.Add)
	}
	for _, v := range n.Victims {
		fmt.Fprintf(w, "  remove %s (%s; pods: %s)\n", v.Node, v.Reason, strings.Join(v.Pods, ", "))
	}
	if len(n.VictimPods) > 0 {
		fmt.Fprintf(w, "  remove pods %s\n", strings.Join(n.VictimPods, ", "))
	}
	return nil
}

// gpusPerNode is the spec's gpusPerNode, else what its instance type offers.
func gpusPerNode(spec config.ModelSpec) (int32, error) {
	ng := spec.Spec.NodeGroup
	if ng.GPUsPerNode > 0 {
		return ng.GPUsPerNode, nil
	}
	it, err := gpunode.LookupInstanceType(ng.InstanceType)
	if err != nil {
		return 0, fmt.Errorf("spec.nodeGroup.instanceType: %w; set spec.nodeGroup.gpusPerNode instead", err)
	}
	return int32(it.GPUs), nil
}
