// Package awsasg is the node provider for EC2 Auto Scaling Groups, through aws-sdk-go-v2, doing what
// Cluster Autoscaler's AWS provider does: scale-out sets the desired capacity to an absolute value
// (SetDesiredCapacity with HonorCooldown=false), so a retried step never adds twice; scale-in terminates
// exactly the chosen instance with TerminateInstanceInAutoScalingGroup(ShouldDecrementDesiredCapacity=true).
// Instances map to Nodes through spec.providerID (aws:///<zone>/<instance-id>).
package awsasg

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/llmscaler/llmscaler/cloudapi"
	"github.com/llmscaler/llmscaler/nodegroup"
)

// API is the part of the Auto Scaling client the provider uses.
type API interface {
	DescribeAutoScalingGroups(context.Context, *autoscaling.DescribeAutoScalingGroupsInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	DescribeScalingActivities(context.Context, *autoscaling.DescribeScalingActivitiesInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeScalingActivitiesOutput, error)
	SetDesiredCapacity(context.Context, *autoscaling.SetDesiredCapacityInput, ...func(*autoscaling.Options)) (*autoscaling.SetDesiredCapacityOutput, error)
	TerminateInstanceInAutoScalingGroup(context.Context, *autoscaling.TerminateInstanceInAutoScalingGroupInput, ...func(*autoscaling.Options)) (*autoscaling.TerminateInstanceInAutoScalingGroupOutput, error)
}

// Provider drives Auto Scaling Groups.
type Provider struct {
	api API
}

var _ nodegroup.Provider = (*Provider)(nil)

// New returns a provider over an Auto Scaling client.
func New(api API) *Provider { return &Provider{api: api} }

// activitiesRead is how many recent scaling activities Describe reads back.
const activitiesRead = 20

// Describe implements nodegroup.Provider, with the group's recent scaling activities.
func (p *Provider) Describe(ctx context.Context, name string) (nodegroup.Group, error) {
	out, err := p.api.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil {
		return nodegroup.Group{}, cloudapi.FromAWS(err)
	}
	if len(out.AutoScalingGroups) == 0 {
		return nodegroup.Group{}, cloudapi.Errorf(cloudapi.NotFound, "Auto Scaling group %q not found", name)
	}
	asg := out.AutoScalingGroups[0]
	// Sizes here are instances. A group that counts its capacity in vCPUs or memory, or weighs its instance
	// types, would take "3" as three units: refused, with what to change.
	if t := aws.ToString(asg.DesiredCapacityType); t != "" && t != "units" {
		return nodegroup.Group{}, cloudapi.Errorf(cloudapi.Invalid, "Auto Scaling group %s counts its desired capacity in %s: llmscaler sets it in instances (use units)", name, t)
	}
	if m := asg.MixedInstancesPolicy; m != nil && m.LaunchTemplate != nil {
		for _, o := range m.LaunchTemplate.Overrides {
			if w := aws.ToString(o.WeightedCapacity); w != "" && w != "1" {
				return nodegroup.Group{}, cloudapi.Errorf(cloudapi.Invalid, "Auto Scaling group %s weighs instance type %s at %s: llmscaler counts instances (drop the weights)",
					name, aws.ToString(o.InstanceType), w)
			}
		}
	}
	g := nodegroup.Group{
		Name: aws.ToString(asg.AutoScalingGroupName), Min: aws.ToInt32(asg.MinSize), Max: aws.ToInt32(asg.MaxSize),
		Desired: aws.ToInt32(asg.DesiredCapacity),
	}
	for _, in := range asg.Instances {
		switch in.LifecycleState {
		case types.LifecycleStateTerminated, types.LifecycleStateTerminating, types.LifecycleStateTerminatingWait, types.LifecycleStateTerminatingProceed,
			types.LifecycleStateTerminatingRetained:
			continue // on its way out: no longer part of the group's capacity
		}
		if g.InstanceType == "" {
			g.InstanceType = aws.ToString(in.InstanceType)
		}
		g.Instances = append(g.Instances, nodegroup.Instance{
			ID: aws.ToString(in.InstanceId), Zone: aws.ToString(in.AvailabilityZone), State: string(in.LifecycleState),
			Protected: aws.ToBool(in.ProtectedFromScaleIn),
		})
	}
	acts, err := p.api.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{
		AutoScalingGroupName: aws.String(name), MaxRecords: aws.Int32(activitiesRead),
	})
	if err != nil {
		return g, cloudapi.FromAWS(err)
	}
	for _, a := range acts.Activities {
		g.Activities = append(g.Activities, nodegroup.Activity{
			ID: aws.ToString(a.ActivityId), Description: aws.ToString(a.Description), Status: string(a.StatusCode),
			Message: aws.ToString(a.StatusMessage), Start: aws.ToTime(a.StartTime), End: aws.ToTime(a.EndTime),
		})
	}
	return g, nil
}

// SetDesiredSize implements nodegroup.Provider. It refuses, with a clear error, to go above the group's
// max size (or below its min) rather than let the call fail.
func (p *Provider) SetDesiredSize(ctx context.Context, name string, n int32) error {
	g, err := p.Describe(ctx, name)
	if err != nil {
		return err
	}
	if n > g.Max {
		return cloudapi.Errorf(cloudapi.OutOfBounds, "refusing to set the desired capacity of %s to %d: above its max size %d", name, n, g.Max)
	}
	if n < g.Min {
		return cloudapi.Errorf(cloudapi.OutOfBounds, "refusing to set the desired capacity of %s to %d: below its min size %d", name, n, g.Min)
	}
	_, err = p.api.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{
		AutoScalingGroupName: aws.String(name), DesiredCapacity: aws.Int32(n), HonorCooldown: aws.Bool(false),
	})
	if err != nil {
		return fmt.Errorf("setting the desired capacity of %s to %d: %w", name, n, cloudapi.FromAWS(err))
	}
	return nil
}

// TerminateInstance implements nodegroup.Provider: the named instance goes and the desired capacity drops by
// one. An instance no longer in the group is done; a protected one is refused.
func (p *Provider) TerminateInstance(ctx context.Context, name, instanceID string) error {
	g, err := p.Describe(ctx, name)
	if err != nil {
		return err
	}
	in, ok := g.Instance(instanceID)
	if !ok {
		return nil // already gone (or going)
	}
	if in.Protected {
		return cloudapi.Errorf(cloudapi.Protected, "instance %s of %s is protected from scale-in", instanceID, name)
	}
	_, err = p.api.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(instanceID), ShouldDecrementDesiredCapacity: aws.Bool(true),
	})
	if err == nil {
		return nil
	}
	ce := cloudapi.FromAWS(err)
	if e, ok := ce.(*cloudapi.Error); ok && e.Code == "ValidationError" {
		switch {
		case strings.Contains(e.Message, "Instance Id not found"), strings.Contains(e.Message, "No managed instance found"):
			return nil // terminated meanwhile
		case strings.Contains(e.Message, "min size"):
			e.Kind = cloudapi.OutOfBounds
		}
	}
	// The SDK retries a call whose answer was lost (a reset, a 5xx) without asking whether the first one
	// landed: an instance the group no longer holds, or holds on its way out, was terminated by it.
	if g, derr := p.Describe(ctx, name); derr == nil {
		if _, still := g.Instance(instanceID); !still {
			return nil
		}
	}
	return fmt.Errorf("terminating instance %s of %s: %w", instanceID, name, ce)
}
