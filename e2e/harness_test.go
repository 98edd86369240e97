// Package e2e proves the product against the real local stack: the Temporal dev server, the kwok cluster
// with metrics-server, and Prometheus. Each test gets its own namespace, node group and task queue.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/llmscaler/llmscaler/activities"
	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/internal/awsemu"
	"github.com/llmscaler/llmscaler/internal/gpunode"
	"github.com/llmscaler/llmscaler/internal/testbed"
	"github.com/llmscaler/llmscaler/metricsource"
	"github.com/llmscaler/llmscaler/metricsource/metricsapi"
	promsource "github.com/llmscaler/llmscaler/metricsource/prometheus"
	"github.com/llmscaler/llmscaler/nodegroup/awsasg"
	kwokprovider "github.com/llmscaler/llmscaler/nodegroup/kwok"
	"github.com/llmscaler/llmscaler/policy"
	"github.com/llmscaler/llmscaler/traffic/endpoints"
	"github.com/llmscaler/llmscaler/traffic/targetgroup"
	"github.com/llmscaler/llmscaler/worker"
	"github.com/llmscaler/llmscaler/workflows"
)

func TestMain(m *testing.M) { testbed.Main(m) }

// env is one test's model: a Deployment of simulated LLM servers on a group of simulated GPU nodes, a
// Prometheus series of their queue lengths that the test drives, and an autoscaler worker.
type env struct {
	t         testing.TB
	ns        string
	group     string
	taskQueue string
	kube      kubernetes.Interface
	tc        client.Client
	spec      config.ModelSpec
	kwok      kwokprovider.Group

	mu    sync.Mutex
	load  float64  // total queue length, spread over the ready pods
	ready []string // the ready pods, as last listed

	aws bool
	emu awsemu.Client
}

var queueDesc = prometheus.NewDesc("lorax_queue_length", "Requests waiting.", []string{"pod"}, nil)

// Describe and Collect make env a Prometheus collector: every scrape sees the load spread over the pods
// ready at that moment, all at once.
func (e *env) Describe(ch chan<- *prometheus.Desc) { ch <- queueDesc }

func (e *env) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.ready {
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, e.load/float64(len(e.ready)), p)
	}
}

type envOptions struct {
	nodes, replicas int32
	maxNodes        int32
	// neverReady makes the group's new nodes never turn Ready.
	neverReady bool
	// grace is the pods' terminationGracePeriodSeconds (default 2).
	grace int64
	// deleteDelay keeps evicted pods Terminating at least this long (kwok's pod-delete stage).
	deleteDelay string
	// aws puts the nodes in an Auto Scaling group of the AWS emulator (provider aws-asg) instead of kwok.
	aws bool
	// targetGroup puts the pods behind an ELBv2 target group of the emulator (aws-target-group).
	targetGroup bool
	// minNodes is the group's minimum size.
	minNodes int32
	// bootDelay of the emulator's instances after the first ones (default 2s).
	bootDelay time.Duration
	// drainAware pods stay Terminating until the load simulator has seen them drained, or their grace ends.
	drainAware bool
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	ns := testbed.Namespace(t)
	e := &env{t: t, ns: ns, group: ns, taskQueue: testbed.TaskQueue(t), kube: testbed.KubeClient(t), tc: testbed.TemporalClient(t)}
	if o.maxNodes == 0 {
		o.maxNodes = 6
	}
	if o.grace == 0 {
		o.grace = 2
	}
	e.kwok = kwokprovider.Group{KwokGroup: config.KwokGroup{
		Name: e.group, InstanceType: "g5.xlarge", Zones: []string{"us-east-1a", "us-east-1b"}, Min: o.minNodes, Max: o.maxNodes,
		BootDelay: policy.Duration(2 * time.Second), GPUDelay: policy.Duration(time.Second),
	}, NeverReady: o.neverReady}
	e.aws = o.aws
	if o.aws {
		e.emu = awsemu.Client{URL: testbed.Shared(t).AWS.Endpoint}
		if err := e.emu.CreateGroup(awsemu.GroupConfig{
			Name: e.group, MinSize: o.minNodes, MaxSize: o.maxNodes, Desired: o.nodes, InstanceType: "g5.xlarge",
			Zones: []string{"us-east-1a", "us-east-1b"}, BootDelay: policy.Duration(2 * time.Second),
			ReadyDelay: policy.Duration(500 * time.Millisecond), GPUDelay: policy.Duration(time.Second),
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.deleteGroupNodes)
		e.waitFor("the group's first nodes", time.Minute, func() bool { return e.servingNodes() == int(o.nodes) })
		if o.bootDelay > 0 {
			if err := e.emu.SetBootDelay(e.group, o.bootDelay); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		for i := range o.nodes {
			e.addReadyNode(fmt.Sprintf("i-%s%03d", ns[len(ns)-6:], i)) // the namespace ends in a random suffix
		}
	}
	e.servePrometheus()
	e.deploy(o)
	e.spec = e.modelSpec()
	if o.aws {
		e.spec.Spec.NodeGroup.Provider = config.ProviderAWSASG
	}
	if o.targetGroup {
		arn, err := e.emu.CreateTargetGroup(awsemu.TargetGroupConfig{Name: e.group, Port: 8000, Namespace: ns,
			DeregistrationDelay: policy.Duration(3 * time.Second), HealthyAfter: policy.Duration(time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		e.spec.Spec.LoadBalancer = config.LoadBalancerSpec{Mode: config.LoadBalancerTargetGroup, TargetGroupARN: arn, TargetType: "ip"}
		if err := e.spec.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// servingNodes counts the group's nodes that are Ready with a GPU allocatable.
func (e *env) servingNodes() int {
	n := 0
	for _, node := range e.groupNodes() {
		if gpunode.IsReady(&node) && gpunode.GPUsAllocatable(&node) > 0 && !node.Spec.Unschedulable {
			n++
		}
	}
	return n
}

// awsClients are SDK clients on the stack's emulator, with the credentials any emulator call takes.
func (e *env) awsClients() (*autoscaling.Client, *elb.Client) {
	s := testbed.Shared(e.t)
	cfg := aws.Config{Region: s.AWS.Region, Credentials: credentials.NewStaticCredentialsProvider("emulator", "emulator", ""), RetryMaxAttempts: 5}
	asg := autoscaling.NewFromConfig(cfg, func(o *autoscaling.Options) { o.BaseEndpoint = aws.String(s.AWS.Endpoint) })
	lb := elb.NewFromConfig(cfg, func(o *elb.Options) { o.BaseEndpoint = aws.String(s.AWS.Endpoint) })
	return asg, lb
}

// addReadyNode creates a node of the group that is Ready with its GPU at once.
func (e *env) addReadyNode(id string) string {
	n, err := gpunode.Build(gpunode.Spec{Name: gpunode.NameForInstance(id), InstanceID: id, InstanceType: "g5.xlarge", Zone: "us-east-1a", NodeGroup: e.group})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.kube.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(e.deleteGroupNodes)
	return n.Name
}

func (e *env) deleteGroupNodes() {
	_ = e.kube.CoreV1().Nodes().DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: gpunode.LabelNodeGroup + "=" + e.group})
}

func (e *env) deploy(o envOptions) {
	replicas, grace := o.replicas, o.grace
	labels := map[string]string{"app": "llm"}
	annotations := map[string]string{"pod-ready.stage.kwok.x-k8s.io/delay": "1s", "pod-ready.stage.kwok.x-k8s.io/jitter-delay": "2s"}
	if o.deleteDelay != "" {
		annotations["pod-delete.stage.kwok.x-k8s.io/delay"] = o.deleteDelay
	}
	if o.drainAware {
		annotations["sim.llmscaler.dev/drain-aware"] = "true"
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "llm", Namespace: e.ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec: corev1.PodSpec{
					NodeSelector:                  map[string]string{gpunode.LabelNodeGroup: e.group},
					TerminationGracePeriodSeconds: &grace,
					Containers: []corev1.Container{{
						Name: "lorax", Image: "ghcr.io/predibase/lorax:main",
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8000}},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
							Limits:   corev1.ResourceList{gpunode.ResourceGPU: resource.MustParse("1")},
						},
					}},
				},
			},
		},
	}
	ctx := context.Background()
	if _, err := e.kube.AppsV1().Deployments(e.ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "llm", Namespace: e.ns},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}
	if _, err := e.kube.CoreV1().Services(e.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.waitFor("the initial pods to be Ready", time.Minute, func() bool { return e.readyPods() == int(replicas) })
}

// servePrometheus serves lorax_queue_length per ready pod, the test's load spread evenly over them, as a
// load balancer would spread it, and registers the endpoint with the stack's Prometheus.
func (e *env) servePrometheus() {
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}
	go func() { _ = srv.Serve(l) }()
	e.t.Cleanup(func() { _ = srv.Close() })
	remove, err := testbed.Shared(e.t).AddScrapeTarget(e.ns, l.Addr().String(), map[string]string{"test": e.ns})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = remove() })
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	go func() {
		for ctx.Err() == nil {
			e.spreadLoad(ctx)
			time.Sleep(300 * time.Millisecond)
		}
	}()
}

func (e *env) spreadLoad(ctx context.Context) {
	pods, err := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=llm"})
	if err != nil {
		return
	}
	var ready []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && isReady(&p) {
			ready = append(ready, p.Name)
		}
	}
	e.mu.Lock()
	e.ready = ready
	e.mu.Unlock()
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (e *env) setLoad(v float64) {
	e.mu.Lock()
	e.load = v
	e.mu.Unlock()
}

func (e *env) modelSpec() config.ModelSpec {
	zero, three := int32(0), int32(3)
	_ = zero
	m := config.ModelSpec{
		APIVersion: config.APIVersion, Kind: config.ModelKind,
		Metadata: config.Metadata{Name: "llm", Namespace: e.ns},
		Spec: config.ModelSpecBody{
			Spec: policy.Spec{
				MinReplicas: 1, MaxReplicas: 6,
				Metrics: []policy.MetricSpec{{Type: policy.PodsMetric, Pods: &policy.PodsMetricSource{
					Metric: policy.MetricIdentifier{Name: "lorax_queue_length", Query: fmt.Sprintf(`sum by (pod) (lorax_queue_length{test=%q})`, e.ns)},
					Target: policy.MetricTarget{Type: policy.AverageValueTarget, AverageValue: ptr(5.0)},
				}}},
				Behavior: &policy.Behavior{ScaleDown: &policy.ScalingRules{StabilizationWindowSeconds: &three}},
			},
			Deployment:         "llm",
			NodeGroup:          config.NodeGroupSpec{Provider: config.ProviderKwok, Name: e.group, InstanceType: "g5.xlarge"},
			EvaluationInterval: policy.Duration(time.Second),
			Timeouts: config.Timeouts{
				NodeReady: policy.Duration(45 * time.Second), PodsReady: policy.Duration(60 * time.Second),
				EndpointsReady: policy.Duration(30 * time.Second), Drain: policy.Duration(60 * time.Second),
			},
		},
	}
	if err := m.Validate(); err != nil {
		e.t.Fatal(err)
	}
	return m.WithDefaults()
}

func ptr[T any](v T) *T { return &v }

// deps builds the activities' clients against the stack, with this test's kwok group.
func (e *env) deps() worker.Deps {
	mc, err := metricsclient.NewForConfig(testbed.RESTConfig(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	return e.depsWith(e.kube, mc)
}

// depsWith builds the activities' clients on the given Kubernetes clients.
func (e *env) depsWith(kube kubernetes.Interface, mc metricsclient.Interface) worker.Deps {
	prom, err := promsource.New(testbed.Shared(e.t).Prometheus.URL, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	p, err := kwokprovider.New(kube, []kwokprovider.Group{e.kwok})
	if err != nil {
		e.t.Fatal(err)
	}
	asg, lb := e.awsClients()
	return worker.Deps{
		Kube:      kube,
		Metrics:   metricsource.Router{Resources: metricsapi.Source{Client: mc}, Prometheus: prom},
		Providers: activities.Providers{config.ProviderKwok: p, config.ProviderAWSASG: awsasg.New(asg)},
		LoadBalancers: activities.LoadBalancers{
			config.LoadBalancerEndpoints:   endpoints.LoadBalancer{Kube: kube},
			config.LoadBalancerTargetGroup: targetgroup.LoadBalancer{API: lb},
		},
		Poll: 500 * time.Millisecond,
	}
}

// startWorker runs an in-process worker on the test's task queue until the test ends.
func (e *env) startWorker() sdkworker.Worker { return e.startWorkerWith(e.deps()) }

// startWorkerWith runs an in-process worker with the given clients.
func (e *env) startWorkerWith(deps worker.Deps) sdkworker.Worker {
	w := sdkworker.New(e.tc, e.taskQueue, sdkworker.Options{})
	worker.Register(w, deps)
	if err := w.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(w.Stop)
	return w
}

// start starts the model's autoscaler and stops it when the test ends.
func (e *env) start() client.WorkflowRun {
	ctx := context.Background()
	run, err := e.tc.ExecuteWorkflow(ctx, workflows.StartOptions(e.spec, e.taskQueue), workflows.AutoscalerWorkflowName, workflows.AutoscalerInput{Spec: e.spec})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		// Stop it as `llmscaler model stop` does; without a worker left to run the stop, terminate it.
		_ = e.tc.CancelWorkflow(context.Background(), e.spec.WorkflowID(), "")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := run.Get(ctx, nil); ctx.Err() != nil {
			_ = e.tc.TerminateWorkflow(context.Background(), e.spec.WorkflowID(), "", "test over: no worker to stop it", err)
		}
	})
	return run
}

// queryTimeout is the deadline of one query, as the CLI's default --timeout: a query waits for the workflow
// task in flight (an observation included), and the SDK's own 10 s default is tight on a busy CI host.
const queryTimeout = 30 * time.Second

// queryPatience is how long a query that stalled (see stalled) is retried before the test fails: a shared
// CI host can stall for tens of seconds, and a stall is not what the tests check. A query rejected for any
// other reason fails at once.
const queryPatience = 2 * time.Minute

// query runs a query on the model's autoscaler and decodes its result into out.
func (e *env) query(name string, out any, args ...any) error {
	return queryWorkflow(e.tc, e.spec.WorkflowID(), name, out, args...)
}

// queryWorkflow runs a query on a workflow and decodes its result into out, retrying a query that stalled
// for up to queryPatience; the error says how many attempts failed.
func queryWorkflow(tc client.Client, id, name string, out any, args ...any) error {
	giveUp := time.Now().Add(queryPatience)
	for attempt := 1; ; attempt++ {
		err := queryOnce(tc, id, name, out, args...)
		if err == nil || !stalled(err) || time.Now().After(giveUp) {
			if err != nil && attempt > 1 {
				err = fmt.Errorf("%d attempts over %v, the last: %w", attempt, queryPatience, err)
			}
			return err
		}
		time.Sleep(time.Second)
	}
}

func queryOnce(tc client.Client, id, name string, out any, args ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	v, err := tc.QueryWorkflow(ctx, id, "", name, args...)
	if err != nil {
		return err
	}
	return v.Get(out)
}

// stalled reports whether a query failed for want of time (the client's deadline or the server's), of a
// reachable server or of the workflow's first task done, rather than being refused.
func stalled(err error) bool {
	var deadline *serviceerror.DeadlineExceeded
	var unavailable *serviceerror.Unavailable
	var notReady *serviceerror.WorkflowNotReady
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &deadline) || errors.As(err, &unavailable) || errors.As(err, &notReady)
}

func (e *env) status() workflows.Status {
	e.t.Helper()
	var s workflows.Status
	if err := e.query(workflows.QueryStatus, &s); err != nil {
		e.t.Fatalf("status query: %v", err)
	}
	return s
}

func (e *env) readyPods() int {
	pods, err := e.kube.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=llm"})
	if err != nil {
		return -1
	}
	n := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && isReady(&p) {
			n++
		}
	}
	return n
}

// groupNodes lists the names of the group's nodes.
func (e *env) groupNodes() []corev1.Node {
	list, err := e.kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{LabelSelector: gpunode.LabelNodeGroup + "=" + e.group})
	if err != nil {
		e.t.Fatal(err)
	}
	return list.Items
}

func (e *env) deploymentReplicas() int32 {
	d, err := e.kube.AppsV1().Deployments(e.ns).Get(context.Background(), "llm", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return *d.Spec.Replicas
}

// waitFor polls cond until it holds, failing the test with what after timeout.
func (e *env) waitFor(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, timeout, true, func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		e.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// lastAction returns the most recent action record, if any.
func lastAction(s workflows.Status) *workflows.ActionRecord {
	if len(s.Actions) == 0 {
		return nil
	}
	return &s.Actions[len(s.Actions)-1]
}
