package targetgroup_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/smithy-go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/llmscaler/llmscaler/cloudapi"
	"github.com/llmscaler/llmscaler/internal/awsemu"
	"github.com/llmscaler/llmscaler/policy"
	"github.com/llmscaler/llmscaler/traffic"
	"github.com/llmscaler/llmscaler/traffic/targetgroup"
)

func readyPod(name, ip string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "models"},
		Status: corev1.PodStatus{PodIP: ip, Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

func TestRegisterWaitHealthyDeregister(t *testing.T) {
	kube := fake.NewClientset(readyPod("a", "10.0.0.1"), readyPod("b", "10.0.0.2"))
	emu := awsemu.New(kube, nil)
	srv := httptest.NewServer(emu)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go emu.Run(ctx)
	arn, err := emu.CreateTargetGroup(awsemu.TargetGroupConfig{Name: "llm", Port: 8000, Namespace: "models",
		DeregistrationDelay: policy.Duration(7 * time.Second), HealthyAfter: policy.Duration(300 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	lb := targetgroup.LoadBalancer{API: elb.NewFromConfig(cfg, func(o *elb.Options) { o.BaseEndpoint = aws.String(srv.URL) })}
	tc := traffic.Config{TargetGroupARN: arn, TargetType: "ip"}
	targets := []traffic.Target{{Pod: "a", IP: "10.0.0.1", Port: 8000}, {Pod: "b", IP: "10.0.0.2", Port: 8000}, {Pod: "c", IP: "10.0.0.3", Port: 8000}}

	if err := lb.Register(ctx, tc, targets); err != nil {
		t.Fatal(err)
	}
	health, err := lb.Serving(ctx, tc, targets)
	if err != nil || len(health.Serving) != 0 || !strings.Contains(health.Explain(), "a (initial: Elb.RegistrationInProgress)") {
		t.Fatalf("serving right after registration: %+v %v, want none (initial)", health, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(health.Serving) < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		health, _ = lb.Serving(ctx, tc, targets)
	}
	if strings.Join(health.Serving, ",") != "a,b" || health.Explain() != "c (unhealthy: Target.FailedHealthChecks)" {
		t.Fatalf("serving %+v, want a and b, and c failing its health checks (no Ready pod)", health)
	}
	delay, err := lb.Deregister(ctx, tc, targets[:1])
	if err != nil || delay != 7*time.Second {
		t.Fatalf("deregister: delay %s, %v; want the target group's 7s", delay, err)
	}
	if health, _ := lb.Serving(ctx, tc, targets); strings.Join(health.Serving, ",") != "b" ||
		!strings.HasPrefix(health.Explain(), "a (draining: Target.DeregistrationInProgress)") {
		t.Fatalf("serving after deregistering a: %+v", health)
	}
	_, err = lb.Serving(ctx, traffic.Config{TargetGroupARN: arn + "x", TargetType: "ip"}, targets)
	if cloudapi.KindOf(err) != cloudapi.NotFound || !strings.Contains(err.Error(), "TargetGroupNotFound") {
		t.Fatalf("unknown target group: %v", err)
	}
	if err := lb.Register(ctx, tc, []traffic.Target{{Pod: "d"}}); cloudapi.KindOf(err) != cloudapi.Invalid {
		t.Fatalf("a pod without an IP: %v, want Invalid", err)
	}
}

// scriptedELB answers as AWS does in instance mode for an instance that is gone (the question for named
// targets refused with InvalidTarget) and for one not running yet (registration refused for now).
type scriptedELB struct {
	targetgroup.API
	asked [][]string
}

func (s *scriptedELB) DescribeTargetHealth(_ context.Context, in *elb.DescribeTargetHealthInput, _ ...func(*elb.Options)) (*elb.DescribeTargetHealthOutput, error) {
	var ids []string
	for _, t := range in.Targets {
		ids = append(ids, aws.ToString(t.Id))
	}
	s.asked = append(s.asked, ids)
	if len(ids) > 0 {
		return nil, &smithy.GenericAPIError{Code: "InvalidTarget", Message: "The following targets are not valid instances: i-gone"}
	}
	return &elb.DescribeTargetHealthOutput{TargetHealthDescriptions: []types.TargetHealthDescription{
		{Target: &types.TargetDescription{Id: aws.String("i-ok"), Port: aws.Int32(8000)}, TargetHealth: &types.TargetHealth{State: types.TargetHealthStateEnumHealthy}},
		{Target: &types.TargetDescription{Id: aws.String("i-other"), Port: aws.Int32(8000)}, TargetHealth: &types.TargetHealth{State: types.TargetHealthStateEnumHealthy}},
	}}, nil
}

func (s *scriptedELB) RegisterTargets(context.Context, *elb.RegisterTargetsInput, ...func(*elb.Options)) (*elb.RegisterTargetsOutput, error) {
	return nil, &smithy.GenericAPIError{Code: "InvalidTarget", Message: "The following targets are not in a running state and cannot be registered: 'i-new'"}
}

// In instance mode an instance that is gone makes AWS refuse the health of the named targets: the group's
// is read instead and the missing one is not serving; an instance not running yet is retried, not refused.
func TestInstanceTargetsThatAreGoneOrNotRunningYet(t *testing.T) {
	api := &scriptedELB{}
	lb := targetgroup.LoadBalancer{API: api}
	cfg := traffic.Config{TargetGroupARN: "arn:tg", TargetType: "instance", Port: 8000}
	health, err := lb.Serving(context.Background(), cfg, []traffic.Target{{Pod: "a", InstanceID: "i-ok"}, {Pod: "b", InstanceID: "i-gone"}})
	if err != nil || strings.Join(health.Serving, ",") != "a" || len(api.asked) != 2 || len(api.asked[1]) != 0 ||
		health.Explain() != "b (not a target of the group: gone, or never registered)" {
		t.Fatalf("serving %+v (%v), asked %v: want a, from the group's targets after the refusal, and b gone", health, err, api.asked)
	}
	err = lb.Register(context.Background(), cfg, []traffic.Target{{Pod: "c", InstanceID: "i-new"}})
	if err == nil || cloudapi.KindOf(err) == cloudapi.Invalid || !strings.Contains(err.Error(), "not in a running state") {
		t.Fatalf("registering an instance not running yet: %v, want a retryable error", err)
	}
}
