package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/policy"
	"github.com/llmscaler/llmscaler/worker"
	"github.com/llmscaler/llmscaler/workflows"
)

// modelCLI holds what every model subcommand shares: the Temporal connection and the output format.
type modelCLI struct {
	v          *viper.Viper
	configFile string
	namespace  string
	output     string
	timeout    time.Duration
}

func newModelCommand() *cobra.Command {
	m := &modelCLI{v: config.NewWorkerViper()}
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Start, inspect and steer the autoscalers of models",
		Long: `model talks to the per-model autoscaler workflows through Temporal. A model is named NAME (in the
namespace given by -n, default "default") or NAMESPACE/NAME.

Temporal is reached as the temporal CLI does: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH, or the flags below, or the worker config
file given with --config.

Exit codes: 0 success, 1 the command failed (not found, rejected, timed out), 2 bad usage or input.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVarP(&m.namespace, "namespace", "n", config.DefaultNamespace, "Kubernetes namespace of the model")
	pf.StringVarP(&m.output, "output", "o", outputTable, "output format: table, json or yaml")
	pf.StringVarP(&m.configFile, "config", "c", "", "worker config file (for the Temporal connection)")
	pf.DurationVar(&m.timeout, "timeout", 30*time.Second, "how long to wait for Temporal to answer")
	config.BindWorkerFlags(pf, m.v)
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{outputTable, outputJSON, outputYAML}, cobra.ShellCompDirectiveNoFileComp
	})
	cmd.AddCommand(m.startCommand(), m.listCommand(), m.statusCommand(), m.historyCommand(), m.pauseCommand(true), m.pauseCommand(false),
		m.pinCommand(), m.unpinCommand(), m.boundsCommand(), m.targetsCommand(), m.drainCommand(), m.evaluateCommand(), m.stopCommand())
	return cmd
}

func (m *modelCLI) dial() (client.Client, config.WorkerConfig, error) {
	if err := checkOutput(m.output); err != nil {
		return nil, config.WorkerConfig{}, err
	}
	cfg, err := config.LoadWorkerConfig(m.configFile, m.v)
	if err != nil {
		return nil, cfg, usageError{err}
	}
	c, err := worker.Dial(cfg.Temporal, client.Options{Logger: quietLogger{}})
	return c, cfg, err
}

// workflowID resolves NAME or NAMESPACE/NAME to the model's workflow ID.
func (m *modelCLI) workflowID(arg string) (string, error) {
	ns, name := m.namespace, arg
	if before, after, ok := strings.Cut(arg, "/"); ok {
		ns, name = before, after
	}
	if name == "" || ns == "" || strings.Contains(name, "/") {
		return "", usagef("model %q: give NAME or NAMESPACE/NAME", arg)
	}
	return "autoscaler/" + ns + "/" + name, nil
}

func (m *modelCLI) ctx(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), m.timeout)
}

// session is what a command on one model's autoscaler needs: a client, the workflow ID of NAME (or
// NAMESPACE/NAME) and a context bounded by --timeout; done closes the client and the context.
func (m *modelCLI) session(cmd *cobra.Command, arg string) (c client.Client, id string, ctx context.Context, done func(), err error) {
	if id, err = m.workflowID(arg); err != nil {
		return nil, "", nil, nil, err
	}
	c, _, ctx, done, err = m.connect(cmd)
	return c, id, ctx, done, err
}

// connect dials Temporal for a command: the client, the worker config it was dialled with, and a context
// bounded by --timeout; done closes the client and the context.
func (m *modelCLI) connect(cmd *cobra.Command) (client.Client, config.WorkerConfig, context.Context, func(), error) {
	c, cfg, err := m.dial()
	if err != nil {
		return nil, cfg, nil, nil, err
	}
	ctx, cancel := m.ctx(cmd)
	return c, cfg, ctx, func() { cancel(); c.Close() }, nil
}

// sendUpdate sends an update (with req as its argument, if any) to the workflow and decodes its result
// into out once the workflow has completed it.
func sendUpdate(ctx context.Context, c client.Client, id, name string, req, out any) error {
	var args []any
	if req != nil {
		args = []any{req}
	}
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: name, Args: args, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err != nil {
		return explain(id, err)
	}
	if err := h.Get(ctx, out); err != nil {
		return explain(id, err)
	}
	return nil
}

// explain turns Temporal errors into what to do about them.
func explain(id string, err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("no autoscaler %s is running (start it with `llmscaler model start -f MODEL.yaml`)", id)
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return fmt.Errorf("%s refused: %s", id, appErr.Message())
	}
	if timedOut(err) {
		return fmt.Errorf("%s: no answer in time (is a worker running on the task queue? --timeout waits longer): %w", id, err)
	}
	return fmt.Errorf("%s: %w", id, err)
}

// timedOut reports the client's deadline, or the server's (it gives up waiting for a worker to answer a
// query first).
func timedOut(err error) bool {
	var deadline *serviceerror.DeadlineExceeded
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &deadline)
}

// stopped is what waiting for a cancelled autoscaler to end (err) says: nothing once it has, and past the
// deadline that it is finishing, since the cancellation was delivered (a scale-in under way restores its node
// first): not that no worker answers.
func stopped(err error, id, name string, waited time.Duration) error {
	switch {
	case err == nil || temporal.IsCanceledError(err):
		return nil
	case timedOut(err):
		return fmt.Errorf("%s: asked to stop, and still finishing after %s (a scale-in under way restores its node first): "+
			"`llmscaler model status %s` follows it, --timeout waits longer", id, waited, name)
	}
	return explain(id, err)
}

// completeModels offers the running models' names for shell completion.
func (m *modelCLI) completeModels(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, _, ctx, done, err := m.connect(cmd)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	defer done()
	rows, err := listModels(ctx, c)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var out []string
	for _, r := range rows {
		out = append(out, r.Model)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func (m *modelCLI) startCommand() *cobra.Command {
	var file string
	var wait bool
	cmd := &cobra.Command{
		Use:   "start -f MODEL.yaml",
		Short: "Start a model's autoscaler, or update the spec of the running one",
		Long: `start validates the model spec and starts its autoscaler workflow, or, when one runs, replaces its spec:
one Update-With-Start call, so running it twice is safe.`,
		Example: "  llmscaler model start -f deploy/examples/lorax/model.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usagef("-f MODEL.yaml is required")
			}
			spec, err := loadSpecIn(file, m.namespace, cmd.Flags().Changed("namespace"))
			if err != nil {
				return err
			}
			c, cfg, ctx, done, err := m.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			op := c.NewWithStartWorkflowOperation(workflows.StartOptions(spec, cfg.Temporal.TaskQueue), workflows.AutoscalerWorkflowName,
				workflows.AutoscalerInput{Spec: spec})
			h, err := c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
				StartWorkflowOperation: op,
				UpdateOptions: client.UpdateWorkflowOptions{
					WorkflowID: spec.WorkflowID(), UpdateName: workflows.UpdateSpec, Args: []any{workflows.SpecRequest{Spec: spec}},
					WaitForStage: client.WorkflowUpdateStageCompleted,
				},
			})
			if err != nil {
				return explain(spec.WorkflowID(), err)
			}
			var st workflows.Status
			if err := h.Get(ctx, &st); err != nil {
				return explain(spec.WorkflowID(), err)
			}
			run, err := op.Get(ctx)
			if err != nil {
				return explain(spec.WorkflowID(), err)
			}
			if wait {
				if st, err = m.waitIdle(cmd, c, spec.WorkflowID()); err != nil {
					return err
				}
			}
			return printValue(cmd.OutOrStdout(), m.output, st, func(w io.Writer) error {
				fmt.Fprintf(w, "autoscaler %s running (run %s) on task queue %s\n\n", spec.WorkflowID(), run.GetRunID(), cfg.Temporal.TaskQueue)
				return writeStatus(w, st)
			})
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "model spec (YAML)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until no scaling action is under way, showing progress")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml")
	return cmd
}

// loadSpecIn loads a model spec: one without metadata.namespace is for namespace (-n, or its default); one
// that names its own must agree with an -n given (explicit).
func loadSpecIn(file, namespace string, explicit bool) (config.ModelSpec, error) {
	v := viper.New()
	v.SetDefault("metadata.namespace", namespace)
	spec, err := config.LoadModelSpec(file, v)
	if err != nil {
		return spec, usageError{err}
	}
	if explicit && spec.Metadata.Namespace != namespace {
		return spec, usagef("%s is for namespace %s (metadata.namespace), -n says %s: drop one", file, spec.Metadata.Namespace, namespace)
	}
	return spec, nil
}

// modelRow is one line of `model list`.
type modelRow struct {
	Model     string    `json:"model"`
	State     string    `json:"state"`
	Current   int64     `json:"currentReplicas"`
	Desired   int64     `json:"desiredReplicas"`
	Paused    bool      `json:"paused"`
	LastScale time.Time `json:"lastScale,omitzero"`
	Started   time.Time `json:"started"`
}

func listModels(ctx context.Context, c client.Client) ([]modelRow, error) {
	rows := []modelRow{} // none is [] in JSON, not null
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query:         fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", workflows.AutoscalerWorkflowName),
			NextPageToken: token,
		})
		if err != nil {
			return nil, err
		}
		for _, ex := range resp.Executions {
			sa := searchAttributesOf(ex.GetSearchAttributes())
			row := modelRow{Model: sa.keyword(workflows.AttrModelName.GetName()), State: sa.keyword(workflows.AttrScalingState.GetName()),
				Current: sa.int(workflows.AttrCurrentReplicas.GetName()), Desired: sa.int(workflows.AttrDesiredReplicas.GetName()),
				Paused: sa.bool(workflows.AttrPaused.GetName()), LastScale: sa.time(workflows.AttrLastScaleTime.GetName()),
				Started: ex.GetStartTime().AsTime()}
			if row.Model == "" {
				row.Model = strings.TrimPrefix(ex.GetExecution().GetWorkflowId(), "autoscaler/")
			}
			rows = append(rows, row)
		}
		token = resp.NextPageToken
		if len(token) == 0 {
			break
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Model < rows[j].Model })
	return rows, nil
}

func (m *modelCLI) listCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the running autoscalers (from their search attributes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, ctx, done, err := m.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			rows, err := listModels(ctx, c)
			if err != nil {
				return fmt.Errorf("listing autoscalers: %w", err)
			}
			return printValue(cmd.OutOrStdout(), m.output, rows, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "MODEL\tSTATE\tCURRENT\tDESIRED\tPAUSED\tLAST SCALE\tSTARTED")
				for _, r := range rows {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%v\t%s\t%s\n", r.Model, r.State, r.Current, r.Desired, r.Paused, ago(r.LastScale), ago(r.Started))
				}
				if len(rows) == 0 {
					fmt.Fprintln(tw, "(no autoscaler is running)")
				}
				return tw.Flush()
			})
		},
	}
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func (m *modelCLI) query(cmd *cobra.Command, id, name string, out any, args ...any) error {
	c, _, ctx, done, err := m.connect(cmd)
	if err != nil {
		return err
	}
	defer done()
	v, err := c.QueryWorkflow(ctx, id, "", name, args...)
	if err != nil {
		return explain(id, err)
	}
	return v.Get(out)
}

func (m *modelCLI) statusCommand() *cobra.Command {
	var snapshot, watch bool
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a model's replicas, nodes, overrides, action under way and last decision",
		Example: `  llmscaler model status llama-3-8b -n models
  llmscaler model status models/llama-3-8b --snapshot > snap.json   # then: llmscaler explain -f model.yaml --snapshot snap.json`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: m.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := m.workflowID(args[0])
			if err != nil {
				return err
			}
			if snapshot {
				var s policy.Snapshot
				if err := m.query(cmd, id, workflows.QuerySnapshot, &s); err != nil {
					return err
				}
				out := m.output
				if out == outputTable {
					out = outputJSON // the snapshot is an input for explain
				}
				return printValue(cmd.OutOrStdout(), out, s, nil)
			}
			if watch {
				c, _, err := m.dial()
				if err != nil {
					return err
				}
				defer c.Close()
				st, err := m.waitIdle(cmd, c, id)
				if err != nil {
					return err
				}
				// Progress went to stderr; the status it ended on is the output.
				return printValue(cmd.OutOrStdout(), m.output, st, func(w io.Writer) error { return writeStatus(w, st) })
			}
			var st workflows.Status
			if err := m.query(cmd, id, workflows.QueryStatus, &st); err != nil {
				return err
			}
			return printValue(cmd.OutOrStdout(), m.output, st, func(w io.Writer) error { return writeStatus(w, st) })
		},
	}
	cmd.Flags().BoolVar(&snapshot, "snapshot", false, "print the last evaluation's input (JSON), for llmscaler explain")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow the action under way until it ends, showing progress")
	return cmd
}

// writeStatus prints a status for people.
func writeStatus(w io.Writer, st workflows.Status) error {
	fmt.Fprintf(w, "Model:      %s/%s (Deployment %s)\n", st.Namespace, st.Model, st.Deployment)
	fmt.Fprintf(w, "State:      %s\n", st.State)
	if st.Evaluations == 0 && st.LastError == "" {
		fmt.Fprintf(w, "Replicas:   min %d, max %d (not observed yet: the first evaluation is under way)\n", st.MinReplicas, st.MaxReplicas)
		return nil
	}
	fmt.Fprintf(w, "Replicas:   %d current, %d ready, %d desired (min %d, max %d)\n", st.CurrentReplicas, st.ReadyReplicas, st.DesiredReplicas, st.MinReplicas, st.MaxReplicas)
	serving := 0
	for _, n := range st.Nodes {
		if n.Serving() {
			serving++
		}
	}
	fmt.Fprintf(w, "Nodes:      %s: %d requested, %d serving (min %d, max %d)\n", st.Group.Name, st.Group.Desired, serving, st.Group.Min, st.Group.Max)
	if o := st.Overrides; o.Paused {
		fmt.Fprintf(w, "Paused:     since %s: %s\n", o.PausedAt.Local().Format(time.DateTime), o.PauseReason)
	}
	if o := st.Overrides; o.Pinned != nil {
		fmt.Fprintf(w, "Pinned:     %d replicas until %s: %s\n", *o.Pinned, o.PinnedUntil.Local().Format(time.DateTime), o.PinReason)
	}
	// An operator's bounds and targets outlast a new spec (model start -f): say they are in place.
	if o := st.Overrides; o.MinReplicas != nil || o.MaxReplicas != nil {
		var set []string
		if o.MinReplicas != nil {
			set = append(set, fmt.Sprintf("min %d", *o.MinReplicas))
		}
		if o.MaxReplicas != nil {
			set = append(set, fmt.Sprintf("max %d", *o.MaxReplicas))
		}
		fmt.Fprintf(w, "Bounds:     %s set by an operator, in place of the spec's: %s\n", strings.Join(set, ", "), o.BoundsReason)
	}
	if o := st.Overrides; len(o.Targets) > 0 {
		var set []string
		for _, t := range o.Targets {
			set = append(set, fmt.Sprintf("%s=%s", t.Metric, strconv.FormatFloat(t.Value, 'g', -1, 64)))
		}
		fmt.Fprintf(w, "Targets:    %s set by an operator, in place of the spec's\n", strings.Join(set, " "))
	}
	if st.LastError != "" {
		fmt.Fprintf(w, "Error:      %s\n", st.LastError)
	}
	if p := st.InProgress; p != nil {
		fmt.Fprintf(w, "Under way:  %s to %d replicas / %d nodes since %s (%s)\n", p.Kind, p.ToReplicas, p.ToNodes, p.Started.Local().Format(time.TimeOnly), p.WorkflowID)
	}
	if d := st.LastDecision; d != nil {
		fmt.Fprintf(w, "Decided:    %s: %s\n", d.Time.Local().Format(time.TimeOnly), d.Summary)
	}
	if len(st.Nodes) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tINSTANCE\tREADY\tGPUS\tCORDONED\tPROTECTED")
		for _, n := range st.Nodes {
			name := n.Name
			if name == "" {
				name = "(booting)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%v\t%v\n", name, n.InstanceID, n.Ready, n.GPUsAllocatable, n.Cordoned, n.Protected)
		}
		return tw.Flush()
	}
	return nil
}

// waitIdle follows the action under way, printing progress to stderr, until none is under way.
func (m *modelCLI) waitIdle(cmd *cobra.Command, c client.Client, id string) (workflows.Status, error) {
	errOut := cmd.ErrOrStderr()
	last := ""
	for {
		ctx, cancel := m.ctx(cmd)
		v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryStatus)
		cancel()
		if err != nil {
			return workflows.Status{}, explain(id, err)
		}
		var st workflows.Status
		if err := v.Get(&st); err != nil {
			return st, err
		}
		line := fmt.Sprintf("%s: %s; %d/%d replicas ready, %d node(s) requested", time.Now().Format(time.TimeOnly), st.State, st.ReadyReplicas, st.DesiredReplicas, st.Group.Desired)
		if p := st.InProgress; p != nil {
			line += fmt.Sprintf("; %s to %d under way since %s", p.Kind, p.ToReplicas, p.Started.Local().Format(time.TimeOnly))
		}
		if line[10:] != last {
			fmt.Fprintln(errOut, line)
			last = line[10:]
		}
		if st.InProgress == nil && len(st.PendingDrains) == 0 {
			return st, nil
		}
		select {
		case <-cmd.Context().Done():
			return st, cmd.Context().Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func (m *modelCLI) historyCommand() *cobra.Command {
	var last int
	var actionsOnly bool
	cmd := &cobra.Command{
		Use:               "history NAME",
		Short:             "Show a model's recent decisions and scaling actions",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: m.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := m.workflowID(args[0])
			if err != nil {
				return err
			}
			var st workflows.Status
			if err := m.query(cmd, id, workflows.QueryStatus, &st); err != nil {
				return err
			}
			var decisions []policy.Decision
			if err := m.query(cmd, id, workflows.QueryDecisions, &decisions, last); err != nil {
				return err
			}
			out := struct {
				Decisions []policy.Decision        `json:"decisions"`
				Actions   []workflows.ActionRecord `json:"actions"`
			}{decisions, st.Actions}
			return printValue(cmd.OutOrStdout(), m.output, out, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ACTIONS\nSTARTED\tKIND\tREPLICAS\tNODES\tSERVED IN\tRESULT\tWORKFLOW")
				for _, a := range st.Actions {
					result := a.Result
					if a.Error != "" {
						result += ": " + a.Error
					}
					fmt.Fprintf(tw, "%s\t%s\t%d -> %d\t%d -> %d\t%s\t%s\t%s\n", a.Started.Local().Format(time.DateTime), a.Kind, a.FromReplicas, a.ToReplicas, a.FromNodes, a.ToNodes, servedIn(a.Waves), result, a.WorkflowID)
				}
				if !actionsOnly {
					// ACTION is what the decision asked for; ACTED whether the autoscaler acted on it (an action
					// under way is raised, cancelled or left to finish).
					fmt.Fprintln(tw, "\nDECISIONS\nTIME\tREPLICAS\tACTION\tACTED\tWHY")
					for _, d := range decisions {
						action, acted := string(d.Action), "-"
						if action == "" {
							action = "-"
						}
						if d.Acted {
							acted = "yes"
						}
						fmt.Fprintf(tw, "%s\t%d -> %d\t%s\t%s\t%s\n", d.Time.Local().Format(time.TimeOnly), d.CurrentReplicas, d.DesiredReplicas, action, acted, d.Summary)
					}
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().IntVar(&last, "last", 20, "how many decision records to show (the autoscaler keeps 50)")
	cmd.Flags().BoolVar(&actionsOnly, "actions", false, "show only the scaling actions")
	return cmd
}

// servedIn is how long a scale-out's waves took from their order to their replicas ready (the lead times
// the policy measures): "3m40s", or the shortest and longest of several, "+1 waiting" for those not
// served yet; "-" for an action with no waves (a scale-in, or a scale-out recorded before waves were).
func servedIn(waves []workflows.Wave) string {
	var lo, hi time.Duration
	served, waiting := 0, 0
	for _, w := range waves {
		if w.Served.IsZero() {
			waiting++
			continue
		}
		d := w.Served.Sub(w.Ordered)
		if served == 0 || d < lo {
			lo = d
		}
		hi = max(hi, d)
		served++
	}
	var parts []string
	switch {
	case served == 1 || (served > 1 && lo == hi):
		parts = append(parts, lo.Round(time.Second).String())
	case served > 1:
		parts = append(parts, lo.Round(time.Second).String()+"-"+hi.Round(time.Second).String())
	}
	if waiting > 0 {
		parts = append(parts, fmt.Sprintf("+%d waiting", waiting))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// update sends an update to a model's autoscaler and prints the status it returns.
func (m *modelCLI) update(cmd *cobra.Command, arg, name string, req any, wait bool) error {
	c, id, ctx, done, err := m.session(cmd, arg)
	if err != nil {
		return err
	}
	defer done()
	var st workflows.Status
	if err := sendUpdate(ctx, c, id, name, req, &st); err != nil {
		return err
	}
	if wait {
		if st, err = m.waitIdle(cmd, c, id); err != nil {
			return err
		}
	}
	return printValue(cmd.OutOrStdout(), m.output, st, func(w io.Writer) error { return writeStatus(w, st) })
}

func (m *modelCLI) pauseCommand(pause bool) *cobra.Command {
	var reason string
	use, short, name := "pause NAME --reason TEXT", "Stop scaling a model (decisions are still recorded)", workflows.UpdatePause
	if !pause {
		use, short, name = "resume NAME --reason TEXT", "Resume scaling a paused model", workflows.UpdateResume
	}
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.ExactArgs(1), ValidArgsFunction: m.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			if reason == "" {
				return usagef("--reason is required: it is recorded")
			}
			return m.update(cmd, args[0], name, workflows.PauseRequest{Reason: reason}, false)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded with every decision)")
	return cmd
}

func (m *modelCLI) pinCommand() *cobra.Command {
	var replicas int32
	var duration time.Duration
	var reason string
	var wait bool
	cmd := &cobra.Command{
		Use: "pin NAME --replicas N --for DURATION", Short: "Hold a model at N replicas for a while", Args: cobra.ExactArgs(1),
		Example: "  llmscaler model pin llama -n models --replicas 4 --for 30m --reason 'load test'", ValidArgsFunction: m.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("replicas") || duration <= 0 {
				return usagef("--replicas N and --for DURATION (such as 30m) are required")
			}
			return m.update(cmd, args[0], workflows.UpdatePin, workflows.PinRequest{Replicas: replicas, For: policy.Duration(duration), Reason: reason}, wait)
		},
	}
	cmd.Flags().Int32Var(&replicas, "replicas", 0, "replica count to hold")
	cmd.Flags().DurationVar(&duration, "for", 0, "how long to hold it (at most 168h)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the count is reached, showing progress")
	return cmd
}

func (m *modelCLI) unpinCommand() *cobra.Command {
	return &cobra.Command{
		Use: "unpin NAME", Short: "Release a pin", Args: cobra.ExactArgs(1), ValidArgsFunction: m.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			return m.update(cmd, args[0], workflows.UpdateUnpin, nil, false)
		},
	}
}

func (m *modelCLI) boundsCommand() *cobra.Command {
	var lo, hi int32
	var reason string
	cmd := &cobra.Command{
		Use: "bounds NAME [--min A] [--max B]", Short: "Change a model's min and max replicas", Args: cobra.ExactArgs(1),
		ValidArgsFunction: m.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			var req workflows.BoundsRequest
			if cmd.Flags().Changed("min") {
				req.Min = &lo
			}
			if cmd.Flags().Changed("max") {
				req.Max = &hi
			}
			if req.Min == nil && req.Max == nil {
				return usagef("give --min, --max or both")
			}
			req.Reason = reason
			return m.update(cmd, args[0], workflows.UpdateBounds, req, false)
		},
	}
	cmd.Flags().Int32Var(&lo, "min", 0, "new minReplicas")
	cmd.Flags().Int32Var(&hi, "max", 0, "new maxReplicas")
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded)")
	return cmd
}

func (m *modelCLI) targetsCommand() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use: "targets NAME METRIC=VALUE...", Short: "Change metric targets of a model", Args: cobra.MinimumNArgs(2),
		Example: "  llmscaler model targets llama -n models lorax_queue_length=8", ValidArgsFunction: m.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			req := workflows.TargetsRequest{Reason: reason}
			for _, kv := range args[1:] {
				k, v, ok := strings.Cut(kv, "=")
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if !ok || k == "" || err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
					return usagef("%q: write METRIC=VALUE with a finite number, such as lorax_queue_length=8", kv)
				}
				req.Targets = append(req.Targets, workflows.TargetChange{Metric: k, Value: f})
			}
			return m.update(cmd, args[0], workflows.UpdateTargets, req, false)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded)")
	return cmd
}

func (m *modelCLI) drainCommand() *cobra.Command {
	var reason string
	var wait bool
	cmd := &cobra.Command{
		Use: "drain-node NAME NODE", Short: "Drain a node of a model's group gracefully and remove it", Args: cobra.ExactArgs(2),
		ValidArgsFunction: m.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			return m.update(cmd, args[0], workflows.UpdateDrainNode, workflows.DrainNodeRequest{Node: args[1], Reason: reason}, wait)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the drain is over, showing progress")
	return cmd
}

func (m *modelCLI) evaluateCommand() *cobra.Command {
	return &cobra.Command{
		Use: "evaluate NAME", Short: "Evaluate a model now and print the decision", Args: cobra.ExactArgs(1), ValidArgsFunction: m.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, id, ctx, done, err := m.session(cmd, args[0])
			if err != nil {
				return err
			}
			defer done()
			var d policy.Decision
			if err := sendUpdate(ctx, c, id, workflows.UpdateEvaluateNow, nil, &d); err != nil {
				return err
			}
			return printValue(cmd.OutOrStdout(), m.output, d, func(w io.Writer) error {
				_, err := fmt.Fprintln(w, d.Summary)
				return err
			})
		},
	}
}

func (m *modelCLI) stopCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "stop NAME",
		Short: "Stop a model's autoscaler (a scale-in under way is undone; a scale-out finishes)",
		Args:  cobra.ExactArgs(1), ValidArgsFunction: m.completeModels,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, id, ctx, done, err := m.session(cmd, args[0])
			if err != nil {
				return err
			}
			defer done()
			if err := c.CancelWorkflow(ctx, id, ""); err != nil {
				return explain(id, err)
			}
			if err := stopped(c.GetWorkflow(ctx, id, "").Get(ctx, nil), id, args[0], m.timeout); err != nil {
				return err
			}
			result := map[string]string{"model": strings.TrimPrefix(id, "autoscaler/"), "status": "stopped"}
			return printValue(cmd.OutOrStdout(), m.output, result, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "stopped %s\n", id)
				return err
			})
		},
	}
}
