// Package targetgroup is the aws-target-group load balancer mode, for setups where the autoscaler registers
// pod IPs (or instances) in an ELBv2 target group itself: register new targets and wait until healthy on
// scale-out; on scale-in deregister first and wait the target group's deregistration delay before any pod
// is evicted, so no new request reaches a pod that is about to go.
package targetgroup

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/llmscaler/llmscaler/cloudapi"
	"github.com/llmscaler/llmscaler/traffic"
)

// API is the part of the ELBv2 client the load balancer step uses.
type API interface {
	RegisterTargets(context.Context, *elb.RegisterTargetsInput, ...func(*elb.Options)) (*elb.RegisterTargetsOutput, error)
	DeregisterTargets(context.Context, *elb.DeregisterTargetsInput, ...func(*elb.Options)) (*elb.DeregisterTargetsOutput, error)
	DescribeTargetHealth(context.Context, *elb.DescribeTargetHealthInput, ...func(*elb.Options)) (*elb.DescribeTargetHealthOutput, error)
	DescribeTargetGroupAttributes(context.Context, *elb.DescribeTargetGroupAttributesInput, ...func(*elb.Options)) (*elb.DescribeTargetGroupAttributesOutput, error)
}

// LoadBalancer registers targets in a target group.
type LoadBalancer struct {
	API API
}

var _ traffic.LoadBalancer = LoadBalancer{}

// defaultDeregistrationDelay is ELBv2's default, used if the attribute cannot be read.
const defaultDeregistrationDelay = 300 * time.Second

// descriptions turns pods into targets: their IPs (ip) or their nodes' instances (instance), each with the
// configured port or the pod's, once each; keys are each pod's target as "id:port", in the pods' order.
func descriptions(cfg traffic.Config, targets []traffic.Target) (descs []types.TargetDescription, keys []string, err error) {
	seen := map[string]bool{}
	for _, t := range targets {
		id, what := t.IP, "IP"
		if cfg.TargetType == "instance" {
			id, what = t.InstanceID, "instance"
		}
		if id == "" {
			return nil, nil, cloudapi.Errorf(cloudapi.Invalid, "pod %s has no %s to register in %s", t.Pod, what, cfg.TargetGroupARN)
		}
		port := cfg.Port
		if port == 0 {
			port = t.Port
		}
		if port == 0 {
			return nil, nil, cloudapi.Errorf(cloudapi.Invalid, "pod %s has no container port: set spec.loadBalancer.port", t.Pod)
		}
		key := targetKey(aws.String(id), aws.Int32(port))
		if !seen[key] {
			seen[key] = true
			descs = append(descs, types.TargetDescription{Id: aws.String(id), Port: aws.Int32(port)})
		}
		keys = append(keys, key)
	}
	return descs, keys, nil
}

func targetKey(id *string, port *int32) string { return aws.ToString(id) + ":" + strconv.Itoa(int(aws.ToInt32(port))) }

// Register implements traffic.LoadBalancer.
func (l LoadBalancer) Register(ctx context.Context, cfg traffic.Config, targets []traffic.Target) error {
	descs, _, err := descriptions(cfg, targets)
	if err != nil || len(descs) == 0 {
		return err
	}
	if _, err := l.API.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(cfg.TargetGroupARN), Targets: descs}); err != nil {
		ce := cloudapi.FromAWS(err)
		if e, ok := ce.(*cloudapi.Error); ok && e.Code == "InvalidTarget" && strings.Contains(e.Message, "not in a running state") {
			// An instance still starting (or stopping) refuses the whole batch for now: retried, not refused.
			e.Kind = ""
		}
		return fmt.Errorf("registering %d target(s) in %s: %w", len(descs), cfg.TargetGroupARN, ce)
	}
	return nil
}

// Serving implements traffic.LoadBalancer: the pods whose targets are healthy; the others with their
// targets' state and reason ("unhealthy: Target.ResponseCodeMismatch: Health checks failed with these codes:
// [404]").
func (l LoadBalancer) Serving(ctx context.Context, cfg traffic.Config, targets []traffic.Target) (traffic.Health, error) {
	descs, keys, err := descriptions(cfg, targets)
	if err != nil || len(descs) == 0 {
		return traffic.Health{}, err
	}
	out, err := l.API.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(cfg.TargetGroupARN), Targets: descs})
	if e, ok := cloudapi.FromAWS(err).(*cloudapi.Error); ok && e.Code == "InvalidTarget" {
		// One target that no longer exists (an instance interrupted) makes AWS refuse the whole question:
		// ask for the group's targets instead, and whatever of ours is missing there is not serving.
		out, err = l.API.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(cfg.TargetGroupARN)})
	}
	if err != nil {
		return traffic.Health{}, fmt.Errorf("reading target health in %s: %w", cfg.TargetGroupARN, cloudapi.FromAWS(err))
	}
	health := map[string]*types.TargetHealth{}
	for _, h := range out.TargetHealthDescriptions {
		if h.Target != nil && h.TargetHealth != nil {
			health[targetKey(h.Target.Id, h.Target.Port)] = h.TargetHealth
		}
	}
	var res traffic.Health
	for i, t := range targets {
		h := health[keys[i]]
		switch {
		case h == nil:
			res.NotServing = append(res.NotServing, traffic.NotServing{Pod: t.Pod, Why: "not a target of the group: gone, or never registered"})
		case h.State == types.TargetHealthStateEnumHealthy:
			res.Serving = append(res.Serving, t.Pod)
		default:
			why := string(h.State)
			if h.Reason != "" {
				why += ": " + string(h.Reason)
			}
			if d := aws.ToString(h.Description); d != "" {
				why += ": " + d
			}
			res.NotServing = append(res.NotServing, traffic.NotServing{Pod: t.Pod, Why: why})
		}
	}
	return res, nil
}

// Deregister implements traffic.LoadBalancer: it deregisters the targets and returns the target group's
// deregistration delay, the time in-flight requests have to finish.
func (l LoadBalancer) Deregister(ctx context.Context, cfg traffic.Config, targets []traffic.Target) (time.Duration, error) {
	descs, _, err := descriptions(cfg, targets)
	if err != nil || len(descs) == 0 {
		return 0, err
	}
	if _, err := l.API.DeregisterTargets(ctx, &elb.DeregisterTargetsInput{TargetGroupArn: aws.String(cfg.TargetGroupARN), Targets: descs}); err != nil {
		return 0, fmt.Errorf("deregistering %d target(s) from %s: %w", len(descs), cfg.TargetGroupARN, cloudapi.FromAWS(err))
	}
	attrs, err := l.API.DescribeTargetGroupAttributes(ctx, &elb.DescribeTargetGroupAttributesInput{TargetGroupArn: aws.String(cfg.TargetGroupARN)})
	if err != nil {
		return defaultDeregistrationDelay, nil // the wait errs on the long side
	}
	for _, a := range attrs.Attributes {
		if aws.ToString(a.Key) == "deregistration_delay.timeout_seconds" {
			if s, err := strconv.Atoi(aws.ToString(a.Value)); err == nil {
				return time.Duration(s) * time.Second, nil
			}
		}
	}
	return defaultDeregistrationDelay, nil
}
