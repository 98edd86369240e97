package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/llmscaler/llmscaler/internal/loadsim"
	"github.com/llmscaler/llmscaler/internal/serving"
	"github.com/llmscaler/llmscaler/internal/testbed"
	"github.com/llmscaler/llmscaler/internal/trace"
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
	sim := loadsim.New(loadsim.Config{Kube: e.kube, Namespace: e.ns, Service: "llm", NodeGroup: e.group, Trace: reqs,
		Serving: serving.Config{MaxBatch: 8, DecodeTokensPerSec: 30}})
	addr, stop, err := sim.ServeMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	remove, err := testbed.Shared(t).AddScrapeTarget("loadsim-"+e.ns, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = remove() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan loadsim.Report, 1)
	go func() {
		r, err := sim.Run(ctx)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()

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
