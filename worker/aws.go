package worker

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/llmscaler/llmscaler/config"
	"github.com/llmscaler/llmscaler/nodegroup/awsasg"
	"github.com/llmscaler/llmscaler/traffic/targetgroup"
)

// AWSClients builds the Auto Scaling and ELBv2 clients with the default credential chain and region
// resolution (environment, shared config, IRSA web identity, EKS Pod Identity, instance metadata), so they
// work unchanged on EKS. The endpoint override is for tests and the demo's emulator only. The SDK's
// standard retryer handles throttling and 5xx with backoff, up to aws.maxAttempts per call; the
// activities' retry policies space out further attempts beyond that.
func AWSClients(ctx context.Context, c config.AWSConfig) (*autoscaling.Client, *elb.Client, error) {
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRetryMaxAttempts(c.MaxAttempts)}
	if c.Region != "" {
		opts = append(opts, awsconfig.WithRegion(c.Region))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	var endpoint *string
	if c.Endpoint != "" {
		endpoint = aws.String(c.Endpoint)
	}
	asg := autoscaling.NewFromConfig(ac, func(o *autoscaling.Options) { o.BaseEndpoint = endpoint })
	lb := elb.NewFromConfig(ac, func(o *elb.Options) { o.BaseEndpoint = endpoint })
	return asg, lb, nil
}

func addAWS(ctx context.Context, cfg config.WorkerConfig, d *Deps) error {
	asg, lb, err := AWSClients(ctx, cfg.AWS)
	if err != nil {
		return err
	}
	d.Providers[config.ProviderAWSASG] = awsasg.New(asg)
	d.LoadBalancers[config.LoadBalancerTargetGroup] = targetgroup.LoadBalancer{API: lb}
	return nil
}
