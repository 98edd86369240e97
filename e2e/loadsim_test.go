package e2e

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/internal/loadsim"
	"github.com/llmscaler/llmscaler/internal/serving"
	"github.com/llmscaler/llmscaler/internal/testbed"
	"github.com/llmscaler/llmscaler/internal/trace"
	"github.com/llmscaler/llmscaler/metricsource"
	promsource "github.com/llmscaler/llmscaler/metricsource/prometheus"
	"github.com/llmscaler/llmscaler/policy"
)

// The load simulator replays requests against the ready endpoints, publishes per-pod LoRAX metrics that
// Prometheus scrapes and CPU use through kwok, and lets a terminating pod finish its requests: a scale-in in
// the middle of the replay loses none.
func TestLoadSimulatorServesPublishesAndDrainsWithoutLoss(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{nodes: 2, replicas: 2, drainAware: true, grace: 60})
	var reqs []trace.Request
	for i := range 80 { // 4 req/s for 20 s, each about 3 s of decoding
		reqs = append(reqs, trace.Request{At: time.Duration(i) * 250 * time.Millisecond, Prompt: 500, Output: 90})
	}
	done := e.replay(reqs, 8)

	// Ten seconds in, the Deployment goes down to one replica: a pod starts terminating while it holds
	// requests.
	time.Sleep(10 * time.Second)
	if _, err := e.kube.AppsV1().Deployments(e.ns).Patch(context.Background(), "llm", types.MergePatchType, []byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	prom, err := promapi.NewClient(promapi.Config{Address: testbed.Shared(t).Prometheus.URL})
	if err != nil {
		t.Fatal(err)
	}
	e.waitFor("Prometheus to have the pods' batch sizes", 30*time.Second, func() bool {
		v, _, _, err := promv1.NewAPI(prom).Query(context.Background(), fmt.Sprintf(`lorax_batch_current_size{namespace=%q}`, e.ns), time.Now())
		vec, ok := v.(model.Vector)
		return err == nil && ok && len(vec) >= 1
	})
	r := <-done
	if r.Requests != 80 || r.Served != 80 || r.Lost != 0 || r.Rejected != 0 {
		t.Fatalf("report: %+v", r)
	}
	if r.LatencyP50 < 3*time.Second || r.TTFTP50 <= 0 || r.GPUNodeMinutes <= 0 {
		t.Fatalf("implausible timings: %+v", r)
	}
	pods, err := e.kube.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("%d pods left; the drained one should have exited", len(pods.Items))
	}
	if cpu := pods.Items[0].Annotations["kwok.x-k8s.io/usage-cpu"]; cpu == "" {
		t.Fatal("no CPU use was written to the kwok annotation")
	}
}

// The example spec's Demand queries, run by Prometheus on the load simulator's metrics, read a burst the
// minute's rate averages away (120 requests within 1.2 s on 2 req/s): the peak arrival rate over 10 s
// (12-14 req/s) stands far above the minute's rate, and the policy sizes for the peak's busy slots (about
// 9 replicas at full batches, where the minute's rate needs 3) and says so.
func TestTheExampleSpecsPeakArrivalsReadABurstTheRateAveragesAway(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{nodes: 2, replicas: 2})
	var reqs []trace.Request
	for i := range 80 { // 2 req/s for 40 s, each about 10 s of decoding
		reqs = append(reqs, trace.Request{At: time.Duration(i) * 500 * time.Millisecond, Prompt: 200, Output: 300})
	}
	for i := range 120 { // and 120 more within 1.2 s at 15 s
		reqs = append(reqs, trace.Request{At: 15*time.Second + time.Duration(i)*10*time.Millisecond, Prompt: 200, Output: 300})
	}
	slices.SortStableFunc(reqs, func(a, b trace.Request) int { return int(a.At - b.At) })

	// The example's Demand metric, its queries pointed at this test's namespace and Deployment.
	model, err := config.LoadModelSpec("../deploy/examples/lorax/model.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := model.Spec.Spec
	var metric policy.MetricSpec
	for _, m := range spec.Metrics {
		if m.Demand != nil {
			metric = m
		}
	}
	if metric.Demand == nil || metric.Demand.PeakArrivals == nil {
		t.Fatal("the example spec has no Demand metric with peakArrivals")
	}
	d := *metric.Demand
	local := strings.NewReplacer(`namespace="models"`, fmt.Sprintf("namespace=%q", e.ns), "lorax-llama-3-8b-", "llm-")
	d.Arrivals.Query = local.Replace(d.Arrivals.Query)
	for _, id := range []**policy.MetricIdentifier{&d.ServiceTime, &d.PeakArrivals, &d.Backlog} {
		if *id != nil {
			q := **id
			q.Query = local.Replace(q.Query)
			*id = &q
		}
	}
	metric.Demand = &d
	spec.Metrics = []policy.MetricSpec{metric}
	prom, err := promsource.New(testbed.Shared(t).Prometheus.URL, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	router := metricsource.Router{Prometheus: prom}

	done := e.replay(reqs, 16)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var reading policy.MetricReading
	e.waitFor("the peak arrivals to stand far above the minute's rate", time.Minute, func() bool {
		reading = router.Read(ctx, metricsource.Pods{Namespace: e.ns, Selector: "app=llm"}, metric)
		r := reading.Demand
		return reading.Error == "" && r != nil && r.PeakArrivals != nil && r.Arrivals > 0 && *r.PeakArrivals >= 8 &&
			*r.PeakArrivals*10 > r.Arrivals*10+6*math.Sqrt(r.Arrivals*10)
	})
	now := time.Now()
	var pods []policy.Pod
	for i := range 2 {
		pods = append(pods, policy.Pod{Name: fmt.Sprintf("llm-%d", i), Phase: policy.PodRunning, Ready: true, Node: fmt.Sprintf("node-%d", i),
			StartTime: now.Add(-time.Hour), ReadyChanged: now.Add(-time.Hour)})
	}
	var st policy.State
	decision := policy.Evaluate(policy.Input{Spec: spec, Observation: policy.Observation{SpecReplicas: 2, Pods: pods,
		Metrics: []policy.MetricReading{reading}, Group: policy.NodeGroup{Name: e.group, Max: 100, GPUsPerNode: 1}}}, &st, now)
	t.Logf("arrivals %.2f req/s, peak %.2f req/s: %s", reading.Demand.Arrivals, *reading.Demand.PeakArrivals, decision.Summary)
	if !strings.Contains(decision.Summary, "arrivals peak at") {
		t.Errorf("the decision does not size for the peak: %s", decision.Summary)
	}
	if r := <-done; r.Lost != 0 {
		t.Errorf("report: %+v", r)
	}
}

// replay plays reqs through the load simulator against the test's Deployment "llm" (replicas of batch
// sequences at 30 tokens/s), its metrics scraped by the shared Prometheus, and sends its report when done.
func (e *env) replay(reqs []trace.Request, batch int) <-chan loadsim.Report {
	e.t.Helper()
	sim := loadsim.New(loadsim.Config{Kube: e.kube, Namespace: e.ns, Service: "llm", NodeGroup: e.group, Trace: reqs,
		Serving: serving.Config{MaxBatch: batch, DecodeTokensPerSec: 30}})
	addr, stop, err := sim.ServeMetrics("127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(stop)
	remove, err := testbed.Shared(e.t).AddScrapeTarget("loadsim-"+e.ns, addr, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = remove() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	done := make(chan loadsim.Report, 1)
	go func() {
		defer cancel()
		r, err := sim.Run(ctx)
		if err != nil {
			e.t.Error(err)
		}
		done <- r
	}()
	return done
}
