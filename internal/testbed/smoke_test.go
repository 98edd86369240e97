package testbed_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/llmscaler/llmscaler/internal/gpunode"
	"github.com/llmscaler/llmscaler/internal/testbed"
	"github.com/llmscaler/llmscaler/workflows"
)

func TestMain(m *testing.M) { testbed.Main(m) }

func greet(ctx workflow.Context, name string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var out string
	err := workflow.ExecuteActivity(ctx, upper, name).Get(ctx, &out)
	return "hello " + out, err
}

func upper(_ context.Context, s string) (string, error) { return strings.ToUpper(s), nil }

func TestTemporalDevServerRunsAWorkflowRoundTrip(t *testing.T) {
	c := testbed.TemporalClient(t)
	queue := testbed.TaskQueue(t)
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflow(greet)
	w.RegisterActivity(upper)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "smoke-" + queue, TaskQueue: queue}, greet, "kwok")
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := run.Get(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if got != "hello KWOK" {
		t.Fatalf("workflow returned %q, want %q", got, "hello KWOK")
	}

	// The project's search attributes are registered with the types the workflows write.
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: testbed.Shared(t).Temporal.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	for _, sa := range workflows.SearchAttributeDefinitions {
		typ, ok := resp.GetCustomAttributes()[sa.Name]
		if !ok {
			t.Errorf("search attribute %s is not registered", sa.Name)
			continue
		}
		if !strings.EqualFold(strings.TrimPrefix(typ.String(), "INDEXED_VALUE_TYPE_"), sa.Type) {
			t.Errorf("search attribute %s has type %s, want %s", sa.Name, typ, sa.Type)
		}
	}
}

// gpuNodes creates n simulated GPU nodes labelled for this test only, and deletes them when it ends.
func gpuNodes(t *testing.T, kube kubernetes.Interface, group string, n int, gpusAfter time.Duration) []string {
	t.Helper()
	var names []string
	for i := range n {
		id := fmt.Sprintf("i-%s%02d", strings.ReplaceAll(group, "-", "")[:8], i)
		spec := gpunode.Spec{
			Name: gpunode.NameForInstance(id), InstanceID: id, InstanceType: "g5.xlarge", Zone: "us-east-1a",
			NodeGroup: group,
		}
		if gpusAfter > 0 {
			spec.GPUsAllocatableAt = time.Now().Add(gpusAfter)
		}
		node, err := gpunode.Build(spec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kube.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating node %s: %v", node.Name, err)
		}
		names = append(names, node.Name)
		t.Cleanup(func() { _ = kube.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{}) })
	}
	return names
}

func TestGPUPodsScheduleOntoSimulatedGPUNodesUntilGPUsRunOut(t *testing.T) {
	kube := testbed.KubeClient(t)
	ns := testbed.Namespace(t)
	ctx := context.Background()
	nodes := gpuNodes(t, kube, ns, 2, 3*time.Second)

	// Until the device plugin "registers", the nodes are Ready but offer no GPU.
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		n, err := kube.CoreV1().Nodes().Get(ctx, nodes[0], metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return gpunode.IsReady(n), nil
	})
	if err != nil {
		t.Fatalf("node %s never became Ready: %v", nodes[0], err)
	}
	n, _ := kube.CoreV1().Nodes().Get(ctx, nodes[0], metav1.GetOptions{})
	if got := gpunode.GPUsAllocatable(n); got != 0 {
		t.Fatalf("node %s has %d GPUs allocatable right after Ready, want 0 until the delay passes", nodes[0], got)
	}

	replicas := int32(3)
	labels := map[string]string{"app": "model"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "model", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{gpunode.LabelNodeGroup: ns},
					Containers: []corev1.Container{{
						Name: "server", Image: "ghcr.io/predibase/lorax:main",
						Resources: corev1.ResourceRequirements{
							Limits: corev1.ResourceList{gpunode.ResourceGPU: resource.MustParse("1")},
						},
					}},
				},
			},
		},
	}
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var running, pending []corev1.Pod
	// Usually seconds. A pod tried before its node's GPUs were allocatable waits among the unschedulable
	// ones until a node event requeues it; on a loaded machine that event can pass it by (once in a CI run:
	// 1 Running after 90 s), and the stack's scheduler then retries it within 10 s (kwokctlConfig).
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		running, pending = nil, nil
		for _, p := range pods.Items {
			switch p.Status.Phase {
			case corev1.PodRunning:
				running = append(running, p)
			case corev1.PodPending:
				pending = append(pending, p)
			}
		}
		return len(running) == 2 && len(pending) == 1, nil
	})
	if err != nil {
		t.Fatalf("want 2 pods Running and 1 Pending, got %d Running and %d Pending", len(running), len(pending))
	}
	if running[0].Spec.NodeName == running[1].Spec.NodeName {
		t.Errorf("both running pods are on %s; each node has one GPU", running[0].Spec.NodeName)
	}
	var reason string
	for _, c := range pending[0].Status.Conditions {
		if c.Type == corev1.PodScheduled {
			reason = c.Message
		}
	}
	if !strings.Contains(reason, "Insufficient nvidia.com/gpu") {
		t.Errorf("pending pod's scheduling message is %q, want it to name insufficient nvidia.com/gpu", reason)
	}
}

func TestMetricsAPIReturnsEmulatedPodCPU(t *testing.T) {
	kube := testbed.KubeClient(t)
	ns := testbed.Namespace(t)
	ctx := context.Background()
	nodes := gpuNodes(t, kube, ns, 1, 0)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "busy", Namespace: ns, Annotations: map[string]string{"kwok.x-k8s.io/usage-cpu": "700m"}},
		Spec: corev1.PodSpec{
			NodeName:   nodes[0],
			Containers: []corev1.Container{{Name: "server", Image: "server"}},
		},
	}
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	metrics, err := metricsclient.NewForConfig(testbed.RESTConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	var last string
	err = wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		pm, err := metrics.MetricsV1beta1().PodMetricses(ns).Get(ctx, "busy", metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		var cpu resource.Quantity
		for _, c := range pm.Containers {
			cpu.Add(c.Usage[corev1.ResourceCPU])
		}
		last = cpu.String()
		// The usage is derived from a cumulative counter, so allow a little rounding.
		return cpu.MilliValue() >= 650 && cpu.MilliValue() <= 750, nil
	})
	if err != nil {
		t.Fatalf("metrics.k8s.io never reported ~700m CPU for the pod (last: %s)", last)
	}
}

func TestPrometheusScrapesATargetAndAnswersPromQL(t *testing.T) {
	stack := testbed.Shared(t)
	reg := prometheus.NewRegistry()
	queue := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lorax_queue_length", Help: "Requests waiting."}, []string{"pod"})
	reg.MustRegister(queue)
	queue.WithLabelValues("model-a").Set(7)
	queue.WithLabelValues("model-b").Set(5)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	test := strings.ToLower(testbed.TaskQueue(t))
	remove, err := stack.AddScrapeTarget(test, l.Addr().String(), map[string]string{"test": test})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = remove() })

	c, err := promapi.NewClient(promapi.Config{Address: stack.Prometheus.URL})
	if err != nil {
		t.Fatal(err)
	}
	api := promv1.NewAPI(c)
	query := fmt.Sprintf(`sum(lorax_queue_length{test=%q})`, test)
	var last string
	err = wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		v, _, _, err := api.Query(ctx, query, time.Now())
		if err != nil {
			last = err.Error()
			return false, nil
		}
		vec, ok := v.(model.Vector)
		if !ok || len(vec) != 1 {
			last = v.String()
			return false, nil
		}
		last = vec[0].Value.String()
		return float64(vec[0].Value) == 12, nil
	})
	if err != nil {
		t.Fatalf("Prometheus never answered %s = 12 (last: %s)", query, last)
	}
}

// The controller manager and the scheduler elect no leader (see kwokctlConfig): one that could not renew a
// lease through a disk stall would exit, and nothing would create service accounts or schedule pods after.
// Electing none, they take no lease in kube-system.
func TestTheControlPlaneRunsWithoutLeaderLeasesItCouldLose(t *testing.T) {
	kube := testbed.KubeClient(t)
	// The service account controller has run: the namespace's default account exists.
	testbed.Namespace(t)
	leases, err := kube.CoordinationV1().Leases("kube-system").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases.Items {
		if l.Name == "kube-controller-manager" || l.Name == "kube-scheduler" {
			holder := ""
			if l.Spec.HolderIdentity != nil {
				holder = *l.Spec.HolderIdentity
			}
			t.Errorf("lease kube-system/%s held by %q: the component elects a leader, and exits when it cannot renew", l.Name, holder)
		}
	}
}
