package awsasg_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/smithy-go"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/llmscaler/llmscaler/cloudapi"
	"github.com/llmscaler/llmscaler/internal/awsemu"
	"github.com/llmscaler/llmscaler/nodegroup/awsasg"
)

// newEmulator serves an in-process emulator (its nodes go to a fake clientset) to a real SDK client.
func newEmulator(t *testing.T) (*awsemu.Emulator, *autoscaling.Client) {
	t.Helper()
	emu := awsemu.New(fake.NewClientset(), nil)
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go emu.Run(ctx)
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	return emu, autoscaling.NewFromConfig(cfg, func(o *autoscaling.Options) { o.BaseEndpoint = aws.String(srv.URL) })
}

func waitLive(t *testing.T, emu *awsemu.Emulator, group string, n int) []awsemu.InstanceState {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, g := range emu.State().Groups {
			if g.Name != group {
				continue
			}
			var live []awsemu.InstanceState
			for _, in := range g.Instances {
				if in.State == "InService" {
					live = append(live, in)
				}
			}
			if len(live) == n {
				return live
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("group %s never had %d instances in service: %+v", group, n, emu.State().Groups)
	return nil
}

func TestProviderAgainstTheEmulator(t *testing.T) {
	emu, client := newEmulator(t)
	if err := emu.CreateGroup(awsemu.GroupConfig{Name: "gpu-pool-a", MinSize: 1, MaxSize: 3, Desired: 1, InstanceType: "g5.xlarge"}); err != nil {
		t.Fatal(err)
	}
	p := awsasg.New(client)
	ctx := context.Background()

	g, err := p.Describe(ctx, "gpu-pool-a")
	if err != nil {
		t.Fatal(err)
	}
	if g.Min != 1 || g.Max != 3 || g.Desired != 1 {
		t.Fatalf("describe: %+v", g)
	}
	if _, err := p.Describe(ctx, "nope"); cloudapi.KindOf(err) != cloudapi.NotFound {
		t.Fatalf("describing a missing group: %v, want NotFound", err)
	}

	// Absolute sizes: asking twice for 3 launches two instances, not four.
	for range 2 {
		if err := p.SetDesiredSize(ctx, "gpu-pool-a", 3); err != nil {
			t.Fatal(err)
		}
	}
	live := waitLive(t, emu, "gpu-pool-a", 3)
	if err := p.SetDesiredSize(ctx, "gpu-pool-a", 4); cloudapi.KindOf(err) != cloudapi.OutOfBounds || !strings.Contains(err.Error(), "above its max size 3") {
		t.Fatalf("above max: %v", err)
	}

	// Protection is honoured; an instance already gone is done; the minimum is kept.
	if _, err := client.SetInstanceProtection(ctx, &autoscaling.SetInstanceProtectionInput{
		AutoScalingGroupName: aws.String("gpu-pool-a"), InstanceIds: []string{live[0].ID}, ProtectedFromScaleIn: aws.Bool(true),
	}); err != nil {
		t.Fatal(err)
	}
	if err := p.TerminateInstance(ctx, "gpu-pool-a", live[0].ID); cloudapi.KindOf(err) != cloudapi.Protected {
		t.Fatalf("terminating a protected instance: %v", err)
	}
	if err := p.TerminateInstance(ctx, "gpu-pool-a", live[1].ID); err != nil {
		t.Fatal(err)
	}
	if err := p.TerminateInstance(ctx, "gpu-pool-a", live[1].ID); err != nil {
		t.Fatalf("terminating it again: %v, want done", err)
	}
	if err := p.TerminateInstance(ctx, "gpu-pool-a", "i-00000000000000000"); err != nil {
		t.Fatalf("terminating an unknown instance: %v, want done", err)
	}
	if err := p.TerminateInstance(ctx, "gpu-pool-a", live[2].ID); err != nil {
		t.Fatal(err)
	}
	// Desired is now 1 (the minimum): one more would break it.
	_, err = client.SetInstanceProtection(ctx, &autoscaling.SetInstanceProtectionInput{
		AutoScalingGroupName: aws.String("gpu-pool-a"), InstanceIds: []string{live[0].ID}, ProtectedFromScaleIn: aws.Bool(false),
	})
	if err != nil {
		t.Fatal(err)
	}
	err = p.TerminateInstance(ctx, "gpu-pool-a", live[0].ID)
	if cloudapi.KindOf(err) != cloudapi.OutOfBounds || !strings.Contains(err.Error(), "ValidationError") {
		t.Fatalf("terminating below the minimum: %v, want OutOfBounds with the AWS code", err)
	}
}

func TestThrottlingIsRetriedByTheSDKAndClassified(t *testing.T) {
	emu, client := newEmulator(t)
	if err := emu.CreateGroup(awsemu.GroupConfig{Name: "g", MinSize: 0, MaxSize: 3, InstanceType: "g5.xlarge"}); err != nil {
		t.Fatal(err)
	}
	p := awsasg.New(client)
	emu.AddFault(awsemu.Fault{Match: "g", ThrottleRate: 1})
	_, err := p.Describe(context.Background(), "g")
	if cloudapi.KindOf(err) != cloudapi.Throttled || !strings.Contains(err.Error(), "Throttling") {
		t.Fatalf("always throttled: %v, want Throttled", err)
	}
	calls := emu.Calls("g")
	if len(calls) < 2 {
		t.Fatalf("the SDK tried %d time(s); its retryer should have retried the throttled call", len(calls))
	}
	emu.ClearFaults("")
	if _, err := p.Describe(context.Background(), "g"); err != nil {
		t.Fatal(err)
	}
}

// scriptedAPI answers with a group the test sets, and a termination whose answer is lost after it landed.
type scriptedAPI struct {
	group      types.AutoScalingGroup
	terminated bool
}

func (s *scriptedAPI) DescribeAutoScalingGroups(context.Context, *autoscaling.DescribeAutoScalingGroupsInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error) {
	g := s.group
	if s.terminated {
		g.Instances = []types.Instance{{InstanceId: aws.String("i-1"), LifecycleState: types.LifecycleStateTerminatingWait}}
	}
	return &autoscaling.DescribeAutoScalingGroupsOutput{AutoScalingGroups: []types.AutoScalingGroup{g}}, nil
}

func (s *scriptedAPI) DescribeScalingActivities(context.Context, *autoscaling.DescribeScalingActivitiesInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeScalingActivitiesOutput, error) {
	return &autoscaling.DescribeScalingActivitiesOutput{}, nil
}

func (s *scriptedAPI) SetDesiredCapacity(context.Context, *autoscaling.SetDesiredCapacityInput, ...func(*autoscaling.Options)) (*autoscaling.SetDesiredCapacityOutput, error) {
	return &autoscaling.SetDesiredCapacityOutput{}, nil
}

// TerminateInstanceInAutoScalingGroup lands, and its answer is an error (a lost response the SDK re-sent).
func (s *scriptedAPI) TerminateInstanceInAutoScalingGroup(context.Context, *autoscaling.TerminateInstanceInAutoScalingGroupInput, ...func(*autoscaling.Options)) (*autoscaling.TerminateInstanceInAutoScalingGroupOutput, error) {
	s.terminated = true
	return nil, &smithy.GenericAPIError{Code: "InternalFailure", Message: "We encountered an internal error."}
}

func group(mutate func(*types.AutoScalingGroup)) types.AutoScalingGroup {
	g := types.AutoScalingGroup{AutoScalingGroupName: aws.String("gpu"), MinSize: aws.Int32(0), MaxSize: aws.Int32(4), DesiredCapacity: aws.Int32(1),
		Instances: []types.Instance{{InstanceId: aws.String("i-1"), LifecycleState: types.LifecycleStateInService}}}
	if mutate != nil {
		mutate(&g)
	}
	return g
}

// Sizes are instances: a group that counts capacity in vCPUs or weighs its instance types is refused, by
// name, rather than sized three units for three nodes.
func TestAGroupThatDoesNotCountInstancesIsRefused(t *testing.T) {
	for _, c := range []struct {
		mutate func(*types.AutoScalingGroup)
		want   string
	}{
		{func(g *types.AutoScalingGroup) { g.DesiredCapacityType = aws.String("vcpu") }, "counts its desired capacity in vcpu"},
		{func(g *types.AutoScalingGroup) {
			g.MixedInstancesPolicy = &types.MixedInstancesPolicy{LaunchTemplate: &types.LaunchTemplate{Overrides: []types.LaunchTemplateOverrides{
				{InstanceType: aws.String("g5.xlarge"), WeightedCapacity: aws.String("1")}, {InstanceType: aws.String("g5.2xlarge"), WeightedCapacity: aws.String("2")}}}}
		}, "weighs instance type g5.2xlarge at 2"},
	} {
		_, err := awsasg.New(&scriptedAPI{group: group(c.mutate)}).Describe(context.Background(), "gpu")
		if err == nil || !strings.Contains(err.Error(), c.want) || cloudapi.KindOf(err) != cloudapi.Invalid {
			t.Errorf("%s: %v", c.want, err)
		}
	}
	if _, err := awsasg.New(&scriptedAPI{group: group(func(g *types.AutoScalingGroup) { g.DesiredCapacityType = aws.String("units") })}).Describe(context.Background(), "gpu"); err != nil {
		t.Errorf("units: %v", err)
	}
}

// A termination that landed but answered with an error (the SDK re-sends a call whose answer was lost) is
// done once the group holds the instance no more, or holds it on its way out.
func TestATerminationThatLandedIsDoneWhateverItAnswered(t *testing.T) {
	api := &scriptedAPI{group: group(nil)}
	if err := awsasg.New(api).TerminateInstance(context.Background(), "gpu", "i-1"); err != nil || !api.terminated {
		t.Fatalf("terminated %v: %v", api.terminated, err)
	}
}
