package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/llmscaler/llmscaler/activities"
	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/internal/testbed"
	"github.com/llmscaler/llmscaler/policy"
	"github.com/llmscaler/llmscaler/worker"
	"github.com/llmscaler/llmscaler/workflows"
)

// The orchestrator scale benchmark: N autoscaler workflows (the real workflow code) on one in-process
// worker against the stack's Temporal dev server, with the Observe local activity replaced by an in-process
// fake that returns a steady observation, so every tick is a no-op and what is measured is the orchestration
// alone: worker CPU per evaluation, the lateness of the ticks, the history each tick adds and, from it, how
// often a model's workflow continues-as-new.
//
//	go test -count=1 -timeout 60m -run XXX -bench 'OrchestratorScale$' -benchtime 1x ./e2e/
//
// Knobs: LLMSCALER_SCALE_MODELS (default 100,500,1000), LLMSCALER_SCALE_INTERVAL (evaluation interval,
// default 15s), LLMSCALER_SCALE_WINDOW (measurement window per model count, default 2m),
// LLMSCALER_SCALE_START (spread: starts spread over one interval, so the ticks have random phases as models
// started at different times do; burst: all at once, every tick of every model in the same second),
// LLMSCALER_SCALE_POLLERS (the worker's workflow task pollers: empty for the real worker's default,
// config.DefaultWorkflowTaskPollers; a number, 2 for the SDK's own default; or auto for the SDK's
// autoscaling pollers), LLMSCALER_SCALE_PODS (ready pods, each
// on its own node, in every observation: default 2; the observation is the bulk of a tick's history bytes).

// observeActivityName is the name the SDK gives (*activities.Observer).Observe, which the workflow runs as a
// local activity through a nil receiver: the SDK looks that name up in the worker's registry, so a function
// registered under it backs the workflow's observations (TestOrchestratorScaleSmoke fails if it drifts).
const observeActivityName = "Observe"

// The fake has the real activity's signature.
var _ func(context.Context, activities.ObserveInput) (policy.Observation, error) = (*activities.Observer)(nil).Observe

// Server defaults (Temporal server dynamic config) at which it suggests a continue-as-new in the workflow
// task started event: limit.historyCount.suggestContinueAsNew and limit.historySize.suggestContinueAsNew.
const (
	suggestCANEvents = 4 * 1024
	suggestCANBytes  = 4 * 1024 * 1024
)

type scaleConfig struct {
	models   int
	interval time.Duration
	window   time.Duration
	burst    bool
	// pods in each observation (default 2).
	pods int
	// pollers is the worker's workflow task pollers: "" (the SDK default), a number, or "auto".
	pollers string
	// idle is how long the server's CPU is measured before the workflows start (0: not measured).
	idle time.Duration
	// sample is how many workflows' histories are read.
	sample int
}

type scaleResult struct {
	cfg         scaleConfig
	evaluations int // in the window, all models
	window      time.Duration
	workerCPU   time.Duration
	serverCPU   time.Duration // negative: unknown
	serverIdle  float64       // the server's CPU before the workflows started, in cores; negative: unknown
	machineBusy float64       // fraction of all cores, the whole machine
	workerRSS   int64
	serverRSS   int64
	lateness    []time.Duration
	repeats     int // observations less than half an interval after the previous one (re-executed)
	minTicks    int // fewest observations of any model, whole run

	eventsPerTick float64
	bytesPerTick  float64
	eventTypes    map[enumspb.EventType]float64 // per tick
	timerDelay    []time.Duration               // timer fired - (started + interval)
	queueWait     []time.Duration               // workflow task started - timer fired
	taskRun       []time.Duration               // workflow task completed - started
	taskTimeouts  map[string]float64            // workflow task timeouts per 1000 ticks, by kind
	sdkWarnings   int64
}

func (r scaleResult) canTicks() (int, string) {
	byCount := int(float64(suggestCANEvents) / r.eventsPerTick)
	bySize := math.MaxInt
	if r.bytesPerTick > 0 {
		bySize = int(float64(suggestCANBytes) / r.bytesPerTick)
	}
	if bySize < byCount {
		return bySize, "size"
	}
	return byCount, "events"
}

// fakeObserver is the in-process Observe: a steady observation (ready pods at target, each on its own
// node), and the wall-clock time of every tick per model.
type fakeObserver struct {
	interval time.Duration
	pods     int

	mu        sync.Mutex
	last      map[string]time.Time
	ticks     map[string]int
	recording bool
	evals     int
	lateness  []time.Duration
	repeats   int
}

func newFakeObserver(interval time.Duration, pods int) *fakeObserver {
	return &fakeObserver{interval: interval, pods: max(pods, 1), last: map[string]time.Time{}, ticks: map[string]int{}}
}

// Observe records the tick; its lateness is its start minus (the model's previous tick + the interval):
// everything between two evaluations beyond the timer's own interval (the previous workflow task finishing,
// the timer firing, the task reaching the worker and running up to the observation).
func (f *fakeObserver) Observe(_ context.Context, in activities.ObserveInput) (policy.Observation, error) {
	now := time.Now()
	key := in.Deployment.Namespace + "/" + in.Deployment.Name
	f.mu.Lock()
	if last, ok := f.last[key]; ok {
		switch gap := now.Sub(last); {
		case gap < f.interval/2:
			f.repeats++
		case f.recording:
			f.lateness = append(f.lateness, gap-f.interval)
		}
	}
	if f.recording {
		f.evals++
	}
	f.last[key] = now
	f.ticks[key]++
	f.mu.Unlock()
	return steadyObservation(now, in, f.pods), nil
}

func (f *fakeObserver) record(on bool) {
	f.mu.Lock()
	f.recording = on
	f.mu.Unlock()
}

// ticked counts the models observed at least n times, and the fewest observations of any of all models.
func (f *fakeObserver) ticked(n, all int) (models, fewest int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fewest = math.MaxInt
	if len(f.ticks) < all {
		fewest = 0
	}
	for _, c := range f.ticks {
		if c >= n {
			models++
		}
		fewest = min(fewest, c)
	}
	return models, fewest
}

func steadyObservation(now time.Time, in activities.ObserveInput, pods int) policy.Observation {
	metric := "queue"
	if len(in.Metrics) > 0 {
		metric = in.Metrics[0].Name()
	}
	n := int32(pods)
	o := policy.Observation{Time: now.UTC(), SpecReplicas: n, Group: policy.NodeGroup{Name: in.Group.Group, Min: 0, Max: max(8, n), Desired: n, GPUsPerNode: 1}}
	started := now.Add(-time.Hour).UTC().Truncate(time.Second)
	reading := policy.MetricReading{Name: metric}
	for i := range pods {
		pod, node := fmt.Sprintf("%s-7d9f8c6b5-%05d", in.Deployment.Name, i), fmt.Sprintf("ip-10-0-%d-%d.ec2.internal", i/250, i%250)
		o.Pods = append(o.Pods, policy.Pod{Name: pod, Phase: policy.PodRunning, Ready: true, Node: node,
			StartTime: started, ReadyChanged: started, CPURequest: 1})
		o.Nodes = append(o.Nodes, policy.Node{Name: node, InstanceID: fmt.Sprintf("i-0%016x", i), Ready: true, GPUsAllocatable: 1, Created: started})
		reading.Pods = append(reading.Pods, policy.PodSample{Pod: pod, Value: 5, Timestamp: now.UTC()})
	}
	o.Metrics = []policy.MetricReading{reading}
	return o
}

// scaleModelSpec is model i of a run: one Pods metric with target 5 per pod, which the steady observation
// meets exactly.
func scaleModelSpec(t testing.TB, ns string, i int, interval time.Duration, pods int) config.ModelSpec {
	five := 5.0
	name := fmt.Sprintf("m%04d", i)
	m := config.ModelSpec{
		APIVersion: config.APIVersion, Kind: config.ModelKind,
		Metadata: config.Metadata{Name: name, Namespace: ns},
		Spec: config.ModelSpecBody{
			Spec: policy.Spec{MinReplicas: 1, MaxReplicas: max(8, int32(pods)), Metrics: []policy.MetricSpec{{Type: policy.PodsMetric, Pods: &policy.PodsMetricSource{
				Metric: policy.MetricIdentifier{Name: "queue", Query: fmt.Sprintf(`sum by (pod) (lorax_queue_length{namespace=%q})`, ns)},
				Target: policy.MetricTarget{Type: policy.AverageValueTarget, AverageValue: &five}}}}},
			Deployment:         name,
			NodeGroup:          config.NodeGroupSpec{Provider: config.ProviderKwok, Name: "pool-" + name, GPUsPerNode: 1},
			EvaluationInterval: policy.Duration(interval),
		},
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m.WithDefaults()
}

// countingLogger counts the SDK's warnings and errors and prints the first few.
type countingLogger struct{ n atomic.Int64 }

func (*countingLogger) Debug(string, ...any) {}
func (*countingLogger) Info(string, ...any)  {}
func (l *countingLogger) Warn(msg string, kv ...any) {
	l.note("warning", msg, kv)
}
func (l *countingLogger) Error(msg string, kv ...any) { l.note("error", msg, kv) }
func (l *countingLogger) note(level, msg string, kv []any) {
	if l.n.Add(1) <= 5 {
		fmt.Fprintln(os.Stderr, append([]any{"scale bench: temporal sdk " + level + ":", msg}, kv...)...)
	}
}

// runScale runs one model count and measures it.
func runScale(t testing.TB, cfg scaleConfig) scaleResult {
	stack := testbed.Shared(t)
	tc := testbed.TemporalClient(t)
	if cfg.pods == 0 {
		cfg.pods = 2
	}
	res := scaleResult{cfg: cfg, serverCPU: -1}

	// The worker: its own connection, as a worker process has; the real workflows; the fake Observe; the
	// other activities registered as the real worker does (they are never called on a no-op tick), so it
	// polls as the real worker polls.
	logger := &countingLogger{}
	wc, err := client.Dial(client.Options{HostPort: stack.Temporal.Address, Namespace: stack.Temporal.Namespace, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wc.Close)
	fake := newFakeObserver(cfg.interval, cfg.pods)
	taskQueue := testbed.TaskQueue(t)
	w := sdkworker.New(wc, taskQueue, workerOptions(t, cfg.pollers))
	worker.RegisterWorkflows(w)
	w.RegisterActivityWithOptions(fake.Observe, activity.RegisterOptions{Name: observeActivityName})
	w.RegisterActivity(&activities.Nodes{})
	w.RegisterActivity(&activities.Cluster{})
	w.RegisterActivity(&activities.Traffic{})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	var stopOnce sync.Once
	stopWorker := func() { stopOnce.Do(w.Stop) }
	t.Cleanup(stopWorker)

	ns := "scale-" + hexSuffix()
	specs := make([]config.ModelSpec, cfg.models)
	ids := make([]string, cfg.models)
	for i := range specs {
		specs[i] = scaleModelSpec(t, ns, i, cfg.interval, cfg.pods)
		ids[i] = specs[i].WorkflowID()
	}
	var started sync.Map
	var terminateOnce sync.Once
	terminate := func() {
		terminateOnce.Do(func() {
			parallel(16, ids, func(id string) {
				if _, ok := started.Load(id); ok {
					_ = tc.TerminateWorkflow(context.Background(), id, "", "scale benchmark over")
				}
			})
		})
	}
	t.Cleanup(terminate)

	// The server's own CPU with none of this run's workflows yet.
	serverPID := readPID(filepath.Join(stack.Dir, "pids", "temporal"))
	res.serverIdle = -1
	if c0 := procCPU(serverPID); c0 >= 0 && cfg.idle > 0 {
		time.Sleep(cfg.idle)
		if c1 := procCPU(serverPID); c1 >= 0 {
			res.serverIdle = float64(c1-c0) / float64(cfg.idle)
		}
	}

	// Start: spread over one interval (random phases, as models started at different times have), or all
	// at once.
	t0 := time.Now()
	jobs := make(chan int)
	var startErr atomic.Value
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				s := specs[i]
				if _, err := tc.ExecuteWorkflow(context.Background(), workflows.StartOptions(s, taskQueue), workflows.AutoscalerWorkflowName, workflows.AutoscalerInput{Spec: s}); err != nil {
					startErr.Store(err)
					continue
				}
				started.Store(ids[i], true)
			}
		}()
	}
	for i := range specs {
		if !cfg.burst {
			time.Sleep(time.Until(t0.Add(time.Duration(i) * cfg.interval / time.Duration(cfg.models))))
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err, _ := startErr.Load().(error); err != nil {
		t.Fatalf("starting the workflows: %v", err)
	}
	t.Logf("%d models: started in %s (%s)", cfg.models, time.Since(t0).Round(100*time.Millisecond), map[bool]string{true: "burst", false: "spread over one interval"}[cfg.burst])

	// Warm up: every model past its first two ticks (the first publishes the search attributes).
	deadline := time.Now().Add(4*cfg.interval + time.Minute)
	for {
		n, _ := fake.ticked(2, cfg.models)
		if n == cfg.models {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("warming up: %d of %d models ticked twice within %s", n, cfg.models, 4*cfg.interval+time.Minute)
		}
		time.Sleep(250 * time.Millisecond)
	}

	// Measure.
	sample := sampleIDs(ids, cfg.sample)
	before := describeAll(t, tc, sample)
	busy0, total0 := machineCPU()
	server0 := procCPU(serverPID)
	self0 := selfCPU()
	winStart := time.Now()
	fake.record(true)
	time.Sleep(cfg.window)
	fake.record(false)
	res.window = time.Since(winStart)
	self1 := selfCPU()
	server1 := procCPU(serverPID)
	busy1, total1 := machineCPU()
	winEnd := time.Now()
	res.workerRSS, res.serverRSS = procRSS("self"), procRSS(strconv.Itoa(serverPID))
	after := describeAll(t, tc, sample)

	fake.mu.Lock()
	res.evaluations, res.lateness, res.repeats = fake.evals, slices.Clone(fake.lateness), fake.repeats
	fake.mu.Unlock()
	res.workerCPU = self1 - self0
	if server0 >= 0 && server1 >= 0 {
		res.serverCPU = server1 - server0
	}
	if total1 > total0 {
		res.machineBusy = float64(busy1-busy0) / float64(total1-total0)
	}
	_, res.minTicks = fake.ticked(0, cfg.models)
	res.sdkWarnings = logger.n.Load()

	// History: events per tick between the window's first and last observation markers (one per tick: the
	// local activity's result), bytes per event from the server's own history size, and where the time
	// between ticks goes.
	var events, ticks, dLen, dBytes int64
	res.eventTypes = map[enumspb.EventType]float64{}
	res.taskTimeouts = map[string]float64{}
	for _, id := range sample {
		h := historyOf(t, tc, id)
		a := analyzeHistory(h, winStart, winEnd, cfg.interval)
		if a.ticks < 1 {
			t.Errorf("workflow %s: no complete tick in the window's history", id)
			continue
		}
		events += a.events
		ticks += a.ticks
		for k, v := range a.types {
			res.eventTypes[k] += float64(v)
		}
		res.timerDelay = append(res.timerDelay, a.timerDelay...)
		res.queueWait = append(res.queueWait, a.queueWait...)
		res.taskRun = append(res.taskRun, a.taskRun...)
		for k, v := range a.timeouts {
			res.taskTimeouts[k] += float64(v)
		}
		dLen += after[id].length - before[id].length
		dBytes += after[id].bytes - before[id].bytes

		st := queryStatus(t, tc, id)
		if st.LastError != "" || len(st.Actions) != 0 || st.InProgress != nil {
			t.Errorf("workflow %s did not only observe: last error %q, actions %+v", id, st.LastError, st.Actions)
		}
	}
	if ticks > 0 {
		res.eventsPerTick = float64(events) / float64(ticks)
		for k := range res.eventTypes {
			res.eventTypes[k] /= float64(ticks)
		}
		for k := range res.taskTimeouts {
			res.taskTimeouts[k] *= 1000 / float64(ticks)
		}
	}
	if dLen > 0 {
		res.bytesPerTick = float64(dBytes) / float64(dLen) * res.eventsPerTick
	}

	terminate()
	stopWorker()
	return res
}

// workerOptions are the real worker's options unless pollers says otherwise.
func workerOptions(t testing.TB, pollers string) sdkworker.Options {
	switch pollers {
	case "":
		return sdkworker.Options{MaxConcurrentWorkflowTaskPollers: config.DefaultWorkflowTaskPollers}
	case "auto":
		return sdkworker.Options{WorkflowTaskPollerBehavior: sdkworker.NewPollerBehaviorAutoscaling(sdkworker.PollerBehaviorAutoscalingOptions{})}
	}
	n, err := strconv.Atoi(pollers)
	if err != nil || n < 2 {
		t.Fatalf("LLMSCALER_SCALE_POLLERS: %q is neither empty, auto, nor a number of at least 2", pollers)
	}
	return sdkworker.Options{MaxConcurrentWorkflowTaskPollers: n}
}

type historyStats struct {
	events, ticks                  int64
	types                          map[enumspb.EventType]int64
	timerDelay, queueWait, taskRun []time.Duration
	// timeouts counts the workflow task timeouts in the window by kind (e.g. "sticky ScheduleToStart").
	timeouts map[string]int64
}

// localActivityMarker names the marker a local activity's result is recorded in (the SDK's).
const localActivityMarker = "LocalActivity"

// analyzeHistory reads the ticks whose observation markers fall in [from, to].
func analyzeHistory(h []*historypb.HistoryEvent, from, to time.Time, interval time.Duration) historyStats {
	s := historyStats{types: map[enumspb.EventType]int64{}, timeouts: map[string]int64{}}
	in := func(ts time.Time) bool { return !ts.Before(from) && !ts.After(to) }
	var first, last int64
	timers := map[int64]time.Time{}
	var fired, taskStarted time.Time
	var queue enumspb.TaskQueueKind
	for _, ev := range h {
		ts := ev.GetEventTime().AsTime()
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			// A tick is its observation (the local activity's marker); the recorded decision is a second.
			if in(ts) && ev.GetMarkerRecordedEventAttributes().GetMarkerName() == localActivityMarker {
				if first == 0 {
					first = ev.GetEventId()
				} else {
					s.ticks++
				}
				last = ev.GetEventId()
			}
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			timers[ev.GetEventId()] = ts
		case enumspb.EVENT_TYPE_TIMER_FIRED:
			if st, ok := timers[ev.GetTimerFiredEventAttributes().GetStartedEventId()]; ok && in(ts) {
				s.timerDelay = append(s.timerDelay, ts.Sub(st)-interval)
				fired = ts
			}
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
			queue = ev.GetWorkflowTaskScheduledEventAttributes().GetTaskQueue().GetKind()
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
			if in(ts) {
				kind := "sticky"
				if queue != enumspb.TASK_QUEUE_KIND_STICKY {
					kind = "normal"
				}
				tt := strings.TrimPrefix(ev.GetWorkflowTaskTimedOutEventAttributes().GetTimeoutType().String(), "TIMEOUT_TYPE_")
				s.timeouts[kind+" "+tt]++
			}
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			if !fired.IsZero() {
				s.queueWait = append(s.queueWait, ts.Sub(fired))
				taskStarted, fired = ts, time.Time{}
			}
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			if !taskStarted.IsZero() {
				s.taskRun = append(s.taskRun, ts.Sub(taskStarted))
				taskStarted = time.Time{}
			}
		}
	}
	if s.ticks > 0 {
		s.events = last - first
		for _, ev := range h {
			if id := ev.GetEventId(); id > first && id <= last {
				s.types[ev.GetEventType()]++
			}
		}
	}
	return s
}

func historyOf(t testing.TB, tc client.Client, id string) []*historypb.HistoryEvent {
	it := tc.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []*historypb.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", id, err)
		}
		out = append(out, ev)
	}
	return out
}

type historySize struct{ length, bytes int64 }

func describeAll(t testing.TB, tc client.Client, ids []string) map[string]historySize {
	out := make(map[string]historySize, len(ids))
	for _, id := range ids {
		d, err := tc.DescribeWorkflowExecution(context.Background(), id, "")
		if err != nil {
			t.Fatalf("describing %s: %v", id, err)
		}
		info := d.GetWorkflowExecutionInfo()
		out[id] = historySize{info.GetHistoryLength(), info.GetHistorySizeBytes()}
	}
	return out
}

func queryStatus(t testing.TB, tc client.Client, id string) workflows.Status {
	var s workflows.Status
	if err := queryWorkflow(tc, id, workflows.QueryStatus, &s); err != nil {
		t.Fatalf("status of %s: %v", id, err)
	}
	return s
}

// sampleIDs picks n of ids, evenly spread (so over the start order, and the ticks' phases).
func sampleIDs(ids []string, n int) []string {
	n = min(n, len(ids))
	out := make([]string, n)
	for i := range out {
		out[i] = ids[i*len(ids)/n]
	}
	return out
}

func parallel(workers int, ids []string, f func(string)) {
	ch := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ch {
				f(id)
			}
		}()
	}
	for _, id := range ids {
		ch <- id
	}
	close(ch)
	wg.Wait()
}

func hexSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// selfCPU is this process's user and system CPU time: the worker's, as the worker runs in the test process.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return pid
}

// procCPU is a process's user and system CPU time from /proc/<pid>/stat (clock ticks of 10 ms: USER_HZ is
// 100 on every Linux architecture Go supports); negative when unknown.
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:])) // from field 3 (state) on: utime is field 14, stime 15
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(u+s) * 10 * time.Millisecond
}

// procRSS is a process's resident memory in bytes (pid "self" for this one); 0 when unknown.
func procRSS(pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// machineCPU is the busy and total jiffies of all CPUs, from /proc/stat.
func machineCPU() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	var v [8]uint64 // user nice system idle iowait irq softirq steal
	for i := range v {
		v[i], _ = strconv.ParseUint(f[i+1], 10, 64)
		total += v[i]
	}
	return total - v[3] - v[4], total
}

// machineLine describes the machine and the stack the benchmark ran on.
func machineLine() string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				mem = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	temporal := "Temporal Server ?"
	if root, err := testbed.RepoRoot(); err == nil {
		// "temporal version 0.0.0-DEV (Server 1.29.1, UI 2.42.1)"
		if out, err := exec.Command(filepath.Join(root, "bin", "temporal"), "--version").Output(); err == nil {
			if _, v, ok := strings.Cut(string(out), "(Server "); ok {
				v, _, _ = strings.Cut(v, ",")
				temporal = "Temporal Server " + strings.TrimSpace(v)
			}
		}
	}
	return fmt.Sprintf("machine: %d x %s (nproc %d), %s RAM, Linux %s; %s; %s (temporal CLI dev server, SQLite) on the same machine as the worker",
		runtime.NumCPU(), cpu, runtime.NumCPU(), mem, kernel, runtime.Version(), temporal)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case d < 0:
		return "n/a"
	case v < 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.0f ms", v)
	}
}

func hhmm(d time.Duration) string {
	return fmt.Sprintf("%d:%02d", int(d.Hours()), int(d.Minutes())%60)
}

// scaleTable prints the results: the headline table, and where the time between ticks goes.
func scaleTable(rs []scaleResult) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "models\tevaluations\tworker CPU/eval\tserver CPU/eval\ttick lateness p50 / p99 (max)\thistory events/tick\tbytes/tick\tCAN every (at 15 s)\tmachine busy (other processes)\tworker RSS\t")
	for _, r := range rs {
		perEval := func(d time.Duration) string {
			if d < 0 || r.evaluations == 0 {
				return "n/a"
			}
			return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)/float64(r.evaluations))
		}
		n, by := r.canTicks()
		// The rest of the machine: the stack's other processes (Kubernetes, Prometheus: idle here) and
		// anything else running, which would disturb the measurement.
		others := "?"
		if r.serverCPU >= 0 && r.window > 0 {
			others = fmt.Sprintf("%.2f cores", r.machineBusy*float64(runtime.NumCPU())-float64(r.workerCPU+r.serverCPU)/float64(r.window))
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s / %s (%s)\t%.2f\t%.0f\t%d ticks (%s, by %s)\t%.0f%% (%s)\t%d MiB\t\n",
			r.cfg.models, r.evaluations, perEval(r.workerCPU), perEval(r.serverCPU),
			ms(percentile(r.lateness, .5)), ms(percentile(r.lateness, .99)), ms(percentile(r.lateness, 1)),
			r.eventsPerTick, r.bytesPerTick, n, hhmm(time.Duration(n)*15*time.Second), by,
			100*r.machineBusy, others, r.workerRSS>>20)
	}
	tw.Flush()
	b.WriteString("\nwhere the time between ticks goes (histories of a sample of workflows):\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "models\ttimer fires late p50 / p99\ttask waits for the worker p50 / p99\ttask runs (observe, decide, complete) p50 / p99\ttask timeouts per 1000 ticks\tre-executed ticks\tSDK warnings\tfewest ticks of a model\tserver idle CPU\tserver RSS\t")
	for _, r := range rs {
		timeouts := "0"
		if len(r.taskTimeouts) > 0 {
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(r.taskTimeouts)) {
				parts = append(parts, fmt.Sprintf("%.1f %s", r.taskTimeouts[k], k))
			}
			timeouts = strings.Join(parts, ", ")
		}
		idle := "n/a"
		if r.serverIdle >= 0 {
			idle = fmt.Sprintf("%.1f%% of a core", 100*r.serverIdle)
		}
		fmt.Fprintf(tw, "%d\t%s / %s\t%s / %s\t%s / %s\t%s\t%d\t%d\t%d\t%s\t%d MiB\t\n", r.cfg.models,
			ms(percentile(r.timerDelay, .5)), ms(percentile(r.timerDelay, .99)),
			ms(percentile(r.queueWait, .5)), ms(percentile(r.queueWait, .99)),
			ms(percentile(r.taskRun, .5)), ms(percentile(r.taskRun, .99)),
			timeouts, r.repeats, r.sdkWarnings, r.minTicks, idle, r.serverRSS>>20)
	}
	tw.Flush()
	if len(rs) > 0 {
		r := rs[0]
		pollers := fmt.Sprintf("the real worker's %d workflow task pollers", config.DefaultWorkflowTaskPollers)
		if r.cfg.pollers == "auto" {
			pollers = "autoscaling workflow task pollers"
		} else if r.cfg.pollers != "" {
			pollers = r.cfg.pollers + " workflow task pollers"
		}
		fmt.Fprintf(&b, "\nevaluation interval %s, window %s per model count, starts %s, %s, %d ready pods on %d nodes per observation; history of %d workflows per count; events per no-op tick by type:",
			r.cfg.interval, r.window.Round(time.Second), map[bool]string{true: "all at once", false: "spread over one interval"}[r.cfg.burst],
			pollers, r.cfg.pods, r.cfg.pods, r.cfg.sample)
		for _, k := range slices.Sorted(maps.Keys(r.eventTypes)) {
			fmt.Fprintf(&b, " %s %.2f", strings.TrimPrefix(k.String(), "EVENT_TYPE_"), r.eventTypes[k])
		}
		b.WriteString("\n")
	}
	return b.String()
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// BenchmarkOrchestratorScale is the scale benchmark (see the top of this file): one measurement per model
// count, whatever b.N (run it with -benchtime 1x). It asserts nothing about timing: it measures and prints.
func BenchmarkOrchestratorScale(b *testing.B) {
	interval, err := time.ParseDuration(envOr("LLMSCALER_SCALE_INTERVAL", "15s"))
	if err != nil {
		b.Fatal(err)
	}
	window, err := time.ParseDuration(envOr("LLMSCALER_SCALE_WINDOW", "2m"))
	if err != nil {
		b.Fatal(err)
	}
	var counts []int
	for f := range strings.SplitSeq(envOr("LLMSCALER_SCALE_MODELS", "100,500,1000"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("LLMSCALER_SCALE_MODELS: %q is not a model count", f)
		}
		counts = append(counts, n)
	}
	burst := envOr("LLMSCALER_SCALE_START", "spread") == "burst"
	pollers := os.Getenv("LLMSCALER_SCALE_POLLERS")
	pods, err := strconv.Atoi(envOr("LLMSCALER_SCALE_PODS", "2"))
	if err != nil || pods < 1 {
		b.Fatalf("LLMSCALER_SCALE_PODS: %q is not a pod count", os.Getenv("LLMSCALER_SCALE_PODS"))
	}
	var results []scaleResult
	for _, n := range counts {
		b.Run(fmt.Sprintf("models=%d", n), func(b *testing.B) {
			r := runScale(b, scaleConfig{models: n, interval: interval, window: window, burst: burst, pods: pods, pollers: pollers, idle: 5 * time.Second, sample: 50})
			results = append(results, r)
			b.Logf("\n%s", scaleTable([]scaleResult{r}))
		})
	}
	b.Logf("orchestrator scale benchmark\n%s\n%s", machineLine(), scaleTable(results))
}

// TestOrchestratorScaleSmoke is the benchmark in small, in every test run: three models on one worker with
// the fake observation. It checks facts only, never timing: every model ticked, nothing but observing
// happened, and a no-op tick adds a handful of history events.
func TestOrchestratorScaleSmoke(t *testing.T) {
	t.Parallel()
	r := runScale(t, scaleConfig{models: 3, interval: time.Second, window: 8 * time.Second, sample: 3})
	t.Logf("(a smoke run among other tests: not a measurement)\n%s", scaleTable([]scaleResult{r}))
	if r.minTicks < 4 {
		t.Errorf("a model ticked only %d times", r.minTicks)
	}
	if r.evaluations == 0 || len(r.lateness) == 0 {
		t.Errorf("no evaluation recorded in the window (%d evaluations, %d lateness samples)", r.evaluations, len(r.lateness))
	}
	if r.eventsPerTick < 3 || r.eventsPerTick > 8 {
		t.Errorf("a no-op tick adds %.2f history events; expected 3..8 (by type: %v)", r.eventsPerTick, r.eventTypes)
	}
	if r.eventTypes[enumspb.EVENT_TYPE_MARKER_RECORDED] != 2 {
		t.Errorf("expected two markers per tick (the observation, the recorded decision), got %.2f", r.eventTypes[enumspb.EVENT_TYPE_MARKER_RECORDED])
	}
	if r.bytesPerTick <= 0 {
		t.Errorf("history bytes per tick: %.0f", r.bytesPerTick)
	}
}
