// Command demo is `make demo`: it starts the local stack (Temporal with its Web UI, the kwok cluster with
// metrics-server, Prometheus, the AWS emulator), deploys the example LoRAX model on an emulated Auto Scaling
// group of GPU nodes, starts the worker and the model's autoscaler through the CLI, and replays the Azure
// conversation trace, compressed, so that several scale-outs and scale-ins happen within about five
// minutes. It prints the Web UI link and a live status line, and ends with a report. Ctrl-C stops
// everything it started.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/internal/awsemu"
	"github.com/llmscaler/llmscaler/internal/gpunode"
	"github.com/llmscaler/llmscaler/internal/loadsim"
	"github.com/llmscaler/llmscaler/internal/promsd"
	"github.com/llmscaler/llmscaler/internal/serving"
	"github.com/llmscaler/llmscaler/internal/testbed"
	"github.com/llmscaler/llmscaler/internal/trace"
	"github.com/llmscaler/llmscaler/policy"
	"github.com/llmscaler/llmscaler/workflows"
)

// warmUp is how long the replay runs before the autoscaler starts.
const warmUp = 40 * time.Second

const (
	modelNamespace = "models"
	service        = "lorax-llama-3-8b"
	group          = "gpu-pool-a"
)

type options struct {
	compress  float64
	rateScale float64
	window    string
	uiPort    int
	exit      bool
	initial   int
}

func main() {
	var o options
	// 30 minutes of the trace (its rise, its peak and its fall) played 6x faster: five minutes.
	flag.Float64Var(&o.compress, "compress", 6, "play the trace this many times faster")
	flag.Float64Var(&o.rateScale, "rate-scale", 0.27, "multiply the trace's request rate")
	flag.StringVar(&o.window, "window", "20m-50m", "part of the trace, FROM-TO; empty for all of it")
	flag.IntVar(&o.initial, "initial-replicas", 7, "replicas (and GPU nodes) running when the replay starts")
	flag.IntVar(&o.uiPort, "ui-port", 8233, "Temporal Web UI port (a free one if taken)")
	flag.BoolVar(&o.exit, "exit", false, "stop everything after the report instead of waiting for Ctrl-C")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run(ctx context.Context, o options) error {
	root, err := testbed.RepoRoot()
	if err != nil {
		return err
	}
	bin := filepath.Join(root, "bin", "llmscaler")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s is missing: run `make build` (make demo does)", bin)
	}
	reqs, err := trace.ReadFile(filepath.Join(root, "deploy", "examples", "traces", "AzureLLMInferenceTrace_conv.csv"))
	if err != nil {
		return err
	}
	if o.window != "" {
		a, b, _ := strings.Cut(o.window, "-")
		from, err1 := time.ParseDuration(a)
		to, err2 := time.ParseDuration(b)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("-window %q: write FROM-TO, such as 20m-40m", o.window)
		}
		reqs = trace.Window(reqs, from, to)
	}
	reqs = trace.Compress(trace.Scale(reqs, o.rateScale, 1), o.compress)

	say("starting the local stack (Temporal + Web UI, kwok cluster + metrics-server, Prometheus, AWS emulator)")
	uiPort := o.uiPort
	if !portFree(uiPort) {
		uiPort = 0
	}
	stack, err := testbed.Start(ctx, testbed.Options{Name: "demo", UI: true, TemporalUIPort: uiPort, ScrapeInterval: 2 * time.Second,
		Log: func(f string, a ...any) { fmt.Printf("    "+f+"\n", a...) }})
	if err != nil {
		return err
	}
	defer func() {
		say("stopping everything the demo started")
		if err := stack.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	fmt.Println()
	fmt.Print(stack.Describe())
	fmt.Println()
	env := append(os.Environ(), stack.Env()...)

	rc, err := clientcmd.BuildConfigFromFlags("", stack.Kube.Kubeconfig)
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}

	// A GPU node of the demo boots in 20 s and advertises its GPU 10 s after Ready (EC2 takes 70-100 s and
	// the device plugin about 60 s more: the demo plays the trace 6x faster, and its cluster too).
	say("creating the Auto Scaling group %s in the AWS emulator: %d g5.2xlarge nodes (boot 20 s, GPUs 10 s after Ready)", group, o.initial)
	emu := awsemu.Client{URL: stack.AWS.Endpoint}
	if err := emu.CreateGroup(awsemu.GroupConfig{Name: group, MinSize: 1, MaxSize: 12, Desired: int32(o.initial), InstanceType: "g5.2xlarge",
		Zones: []string{"us-east-1a", "us-east-1b", "us-east-1c"}, BootDelay: policy.Duration(20 * time.Second),
		ReadyDelay: policy.Duration(2 * time.Second), GPUDelay: policy.Duration(10 * time.Second)}); err != nil {
		return err
	}
	if err := waitFor(ctx, "the first GPU nodes", 2*time.Minute, func() bool { return servingNodes(ctx, kube) >= o.initial }); err != nil {
		return err
	}

	say("deploying the example LoRAX model (deploy/examples/lorax, with the simulation annotations of deploy/examples/lorax-local)")
	apply := exec.CommandContext(ctx, filepath.Join(root, "bin", "kubectl"), "apply", "--server-side", "-k", filepath.Join(root, "deploy", "examples", "lorax-local"))
	apply.Env = env
	if out, err := apply.CombinedOutput(); err != nil {
		return fmt.Errorf("kubectl apply: %v\n%s", err, out)
	}
	scale := exec.CommandContext(ctx, filepath.Join(root, "bin", "kubectl"), "-n", modelNamespace, "scale", "deployment", service, "--replicas", strconv.Itoa(o.initial))
	scale.Env = env
	if out, err := scale.CombinedOutput(); err != nil {
		return fmt.Errorf("kubectl scale: %v\n%s", err, out)
	}
	if err := waitFor(ctx, "the first replicas", 3*time.Minute, func() bool { return readyReplicas(ctx, kube) >= int32(o.initial) }); err != nil {
		return err
	}

	say("starting the worker (bin/llmscaler worker)")
	workerCfg, err := writeWorkerConfig(stack)
	if err != nil {
		return err
	}
	workerLog, err := os.Create(filepath.Join(stack.Dir, "logs", "worker.log"))
	if err != nil {
		return err
	}
	defer workerLog.Close()
	worker := exec.Command(bin, "worker", "--config", workerCfg)
	worker.Env, worker.Stdout, worker.Stderr = env, workerLog, workerLog
	worker.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := worker.Start(); err != nil {
		return err
	}
	defer func() {
		_ = worker.Process.Signal(syscall.SIGTERM)
		_ = worker.Wait()
	}()

	spec, specFile, err := demoSpec(root, stack.Dir)
	if err != nil {
		return err
	}
	tc, err := client.Dial(client.Options{HostPort: stack.Temporal.Address, Namespace: stack.Temporal.Namespace, Logger: quiet{}})
	if err != nil {
		return err
	}
	defer tc.Close()

	// The example runs LoRAX with --max-concurrent-requests 128: 16 in the batch, 112 queued, then 429.
	sim := loadsim.New(loadsim.Config{Kube: kube, Namespace: modelNamespace, Service: service, NodeGroup: group, Trace: reqs,
		Serving: serving.Config{MaxBatch: 16, MaxQueue: 112}})
	addr, stopMetrics, err := sim.ServeMetrics("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer stopMetrics()
	remove, err := promsd.Add(stack.Prometheus.TargetsDir, "loadsim", addr, map[string]string{"source": "loadsim"})
	if err != nil {
		return err
	}
	defer func() { _ = remove() }()

	ui := stack.Temporal.UIURL
	wfURL := ui + "/namespaces/" + stack.Temporal.Namespace + "/workflows/" + url.PathEscape(spec.WorkflowID())
	say("replaying the Azure conversation trace: %d requests over %s (x%.2f rate, %.0fx faster)", len(reqs), trace.Duration(reqs).Round(time.Second), o.rateScale, o.compress)
	simCtx, cancelSim := context.WithCancel(ctx)
	defer cancelSim()
	type result struct {
		report loadsim.Report
		err    error
	}
	done := make(chan result, 1)
	go func() {
		r, err := sim.Run(simCtx)
		done <- result{r, err}
	}()
	go statusLine(simCtx, sim, tc, spec.WorkflowID())

	// The service has been running a while when the autoscaler arrives: its rate metrics have a history.
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(warmUp):
	}
	say("starting the model's autoscaler: llmscaler model start -f %s", specFile)
	start := exec.CommandContext(ctx, bin, "model", "start", "-f", specFile)
	start.Env = env
	out, err := start.CombinedOutput()
	if err != nil {
		return fmt.Errorf("llmscaler model start: %v\n%s", err, out)
	}
	fmt.Println(indent(string(out)))
	say("watch it in the Web UI: %s", wfURL)
	fmt.Println()

	res := <-done
	cancelSim()
	report := res.report
	fmt.Println()
	if res.err != nil && !errors.Is(res.err, context.Canceled) {
		return res.err
	}
	printReport(ctx, report, tc, spec.WorkflowID(), ui, stack.Temporal.Namespace, wfURL)
	if o.exit || ctx.Err() != nil {
		return nil
	}
	say("the stack keeps running so you can explore the Web UI; press Ctrl-C to stop everything")
	<-ctx.Done()
	return nil
}

// demoSpec is the example model spec with timings for a five-minute demo, written next to the stack.
func demoSpec(root, dir string) (config.ModelSpec, string, error) {
	spec, err := config.LoadModelSpec(filepath.Join(root, "deploy", "examples", "lorax", "model.yaml"), nil)
	if err != nil {
		return spec, "", err
	}
	s := &spec.Spec
	s.EvaluationInterval = policy.Duration(5 * time.Second)
	window := int32(20)
	s.Behavior = &policy.Behavior{ScaleDown: &policy.ScalingRules{StabilizationWindowSeconds: &window,
		Policies: []policy.ScalingPolicy{{Type: policy.PodsPolicy, Value: 2, PeriodSeconds: 20}}}}
	for i := range s.Metrics {
		if d := s.Metrics[i].Demand; d != nil {
			// The trace plays 6x faster: hold capacity for 40 s (four minutes of the trace) after the demand falls,
			// and 5 minutes (the default's 30 of the trace) after an abrupt stop.
			dd := *d
			dd.HoldFor = policy.Duration(40 * time.Second)
			keep := policy.Duration(5 * time.Minute)
			dd.KeepAfterStop = &keep
			// Played 6x faster, the trace's swings from minute to minute come 10 s apart, and its peak over 10 s
			// reads them as bursts the rate's minute averages away (at that speed they are): sized for them, a
			// swing at the trace's very end ordered a scale-out for a load that had ended.
			dd.PeakArrivals = nil
			s.Metrics[i].Demand = &dd
		}
	}
	s.Panic = &policy.PanicSpec{Threshold: 2, Hold: policy.Duration(30 * time.Second)}
	s.Timeouts.NodeReady = policy.Duration(3 * time.Minute)
	s.Timeouts.PodsReady = policy.Duration(3 * time.Minute)
	s.Timeouts.Drain = policy.Duration(4 * time.Minute)
	b, err := json.Marshal(spec)
	if err != nil {
		return spec, "", err
	}
	y, err := yaml.JSONToYAML(b)
	if err != nil {
		return spec, "", err
	}
	file := filepath.Join(dir, "demo-model.yaml")
	header := "# deploy/examples/lorax/model.yaml with the demo's shorter timings (evaluation every 5 s, 20 s scale-down window, 40 s hold, 5 min keepAfterStop) and no peakArrivals.\n"
	return spec, file, os.WriteFile(file, append([]byte(header), y...), 0o644)
}

func writeWorkerConfig(stack *testbed.Stack) (string, error) {
	cfg := stack.WorkerConfig(config.DefaultTaskQueue) + `metrics:
  listenAddress: "127.0.0.1:0"
`
	file := filepath.Join(stack.Dir, "demo-worker.yaml")
	return file, os.WriteFile(file, []byte(cfg), 0o644)
}

func statusLine(ctx context.Context, sim *loadsim.Sim, tc client.Client, id string) {
	var lastArrived int
	lastAt := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(3 * time.Second):
		}
		st := sim.Status()
		now := time.Now()
		rate := float64(st.Arrived-lastArrived) / now.Sub(lastAt).Seconds()
		lastArrived, lastAt = st.Arrived, now
		line := fmt.Sprintf("[%6s] %3.0f%% of the trace  %5.1f req/s  waiting %3d", st.Elapsed, 100*float64(st.Arrived)/float64(max(st.Total, 1)), rate, st.Waiting)
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if v, err := tc.QueryWorkflow(qctx, id, "", workflows.QueryStatus); err == nil {
			var s workflows.Status
			if v.Get(&s) == nil {
				line += fmt.Sprintf("  replicas %d ready/%d desired  nodes %d requested  %-10s", s.ReadyReplicas, s.DesiredReplicas, s.Group.Desired, s.State)
			}
		}
		cancel()
		slo := 100.0
		if st.Served > 0 {
			slo = 100 * float64(st.Served-st.SLOMisses) / float64(st.Served)
		}
		line += fmt.Sprintf("  served %d  SLO %.1f%%  lost %d", st.Served, slo, st.Lost)
		fmt.Println(line)
	}
}

func printReport(ctx context.Context, r loadsim.Report, tc client.Client, id, ui, ns, wfURL string) {
	fmt.Println("================================ report ================================")
	r.Write(os.Stdout)
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if v, err := tc.QueryWorkflow(qctx, id, "", workflows.QueryStatus); err == nil {
		var s workflows.Status
		if v.Get(&s) == nil {
			outs, ins, failed := 0, 0, 0
			for _, a := range s.Actions {
				switch {
				case a.Result == "failed":
					failed++
				case a.Kind == policy.ScaleOut:
					outs++
				default:
					ins++
				}
			}
			fmt.Printf("Scaling actions:   %d scale-outs, %d scale-ins, %d failed (of the last %d kept)\n", outs, ins, failed, len(s.Actions))
		}
	}
	fmt.Println()
	fmt.Println("Where to look in the Temporal Web UI:")
	fmt.Printf("  the autoscaler:    %s\n", wfURL)
	fmt.Println("                     (User Metadata: current details; Event History: timers, observations, child workflows)")
	fmt.Printf("  its actions:       %s/namespaces/%s/workflows?query=%s\n", ui, ns, url.QueryEscape("WorkflowId STARTS_WITH \""+id+"/\""))
	fmt.Printf("  models by state:   %s/namespaces/%s/workflows?query=%s\n", ui, ns, url.QueryEscape("WorkflowType = \"Autoscaler\" AND ScalingState != \"Idle\""))
	fmt.Printf("  from the CLI:      bin/llmscaler model history %s\n", strings.TrimPrefix(id, "autoscaler/"))
}

func servingNodes(ctx context.Context, kube kubernetes.Interface) int {
	list, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: gpunode.LabelNodeGroup + "=" + group})
	if err != nil {
		return 0
	}
	n := 0
	for i := range list.Items {
		if gpunode.IsReady(&list.Items[i]) && gpunode.GPUsAllocatable(&list.Items[i]) > 0 {
			n++
		}
	}
	return n
}

func readyReplicas(ctx context.Context, kube kubernetes.Interface) int32 {
	d, err := kube.AppsV1().Deployments(modelNamespace).Get(ctx, service, metav1.GetOptions{})
	if err != nil {
		return 0
	}
	return readyOf(d)
}

func readyOf(d *appsv1.Deployment) int32 { return d.Status.ReadyReplicas }

func waitFor(ctx context.Context, what string, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}
