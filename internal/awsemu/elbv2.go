package awsemu

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/llmscaler/llmscaler/internal/gpunode"
)

const (
	elbVersion   = "2015-12-01"
	elbNamespace = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
)

type targetGroup struct {
	TargetGroupConfig
	arn     string
	targets map[string]*target // by id:port
}

type target struct {
	id         string
	port       int32
	registered time.Time
	state      string // initial, healthy, unhealthy, draining
	reason     string
	drainUntil time.Time
}

// CreateTargetGroup adds a target group and returns its ARN.
func (e *Emulator) CreateTargetGroup(c TargetGroupConfig) (string, error) {
	if c.Name == "" || c.Port <= 0 {
		return "", fmt.Errorf("a target group needs a name and a port")
	}
	if c.TargetType == "" {
		c.TargetType = "ip"
	}
	if c.TargetType != "ip" && c.TargetType != "instance" {
		return "", fmt.Errorf("target type %q: ip or instance", c.TargetType)
	}
	arn := fmt.Sprintf("arn:aws:elasticloadbalancing:%s:%s:targetgroup/%s/%s", region, account, c.Name, randomHex(16))
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, tg := range e.targetGroups {
		if tg.Name == c.Name {
			return "", fmt.Errorf("target group %s exists", c.Name)
		}
	}
	e.targetGroups[arn] = &targetGroup{TargetGroupConfig: c, arn: arn, targets: map[string]*target{}}
	return arn, nil
}

func (e *Emulator) elb(action string, f url.Values) (any, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch action {
	case "DescribeTargetGroups":
		var out targetGroupsResult
		for _, arn := range sortedKeys(e.targetGroups) {
			tg := e.targetGroups[arn]
			out.TargetGroups = append(out.TargetGroups, targetGroupXML{ARN: arn, Name: tg.Name, Port: tg.Port, Protocol: "HTTP", TargetType: tg.TargetType})
		}
		return out, nil
	case "DescribeTargetGroupAttributes":
		tg, err := e.targetGroupOf(f.Get("TargetGroupArn"))
		if err != nil {
			return nil, err
		}
		return attributesResult{Attributes: []attributeXML{
			{Key: "deregistration_delay.timeout_seconds", Value: strconv.Itoa(int(tg.DeregistrationDelay.D().Seconds()))},
			{Key: "stickiness.enabled", Value: "false"},
		}}, nil
	case "RegisterTargets", "DeregisterTargets":
		tg, err := e.targetGroupOf(f.Get("TargetGroupArn"))
		if err != nil {
			return nil, err
		}
		targets, err := targetsOf(f, tg)
		if err != nil {
			return nil, err
		}
		now := e.now()
		for _, t := range targets {
			key := fmt.Sprintf("%s:%d", t.id, t.port)
			cur, ok := tg.targets[key]
			if action == "RegisterTargets" {
				if !ok || cur.state == "draining" {
					tg.targets[key] = &target{id: t.id, port: t.port, registered: now, state: "initial", reason: "Elb.RegistrationInProgress"}
				}
				continue
			}
			if ok && cur.state != "draining" {
				cur.state, cur.reason, cur.drainUntil = "draining", "Target.DeregistrationInProgress", now.Add(tg.DeregistrationDelay.D())
			}
		}
		return struct{}{}, nil
	case "DescribeTargetHealth":
		tg, err := e.targetGroupOf(f.Get("TargetGroupArn"))
		if err != nil {
			return nil, err
		}
		asked, err := targetsOf(f, tg)
		if err != nil {
			return nil, err
		}
		var out targetHealthResult
		if len(asked) == 0 {
			for _, key := range sortedKeys(tg.targets) {
				t := tg.targets[key]
				out.Descriptions = append(out.Descriptions, t.xml())
			}
			return out, nil
		}
		for _, a := range asked {
			if t, ok := tg.targets[fmt.Sprintf("%s:%d", a.id, a.port)]; ok {
				out.Descriptions = append(out.Descriptions, t.xml())
			} else {
				out.Descriptions = append(out.Descriptions, targetHealthXML{Target: targetXML{ID: a.id, Port: a.port},
					Health: healthXML{State: "unused", Reason: "Target.NotRegistered", Description: "Target is not registered to the target group"}})
			}
		}
		return out, nil
	}
	return nil, &apiError{Status: http.StatusBadRequest, Code: "InvalidAction", Message: "The action " + action + " is not valid for this web service."}
}

func (e *Emulator) targetGroupOf(arn string) (*targetGroup, *apiError) {
	tg, ok := e.targetGroups[arn]
	if !ok {
		return nil, &apiError{Status: http.StatusBadRequest, Code: "TargetGroupNotFound", Message: fmt.Sprintf("Target groups '%s' not found", arn)}
	}
	return tg, nil
}

// targetsOf reads Targets.member.N.Id/Port; a missing port takes the target group's.
func targetsOf(f url.Values, tg *targetGroup) ([]target, *apiError) {
	var out []target
	for i := 1; ; i++ {
		id := f.Get(fmt.Sprintf("Targets.member.%d.Id", i))
		if id == "" {
			return out, nil
		}
		port := tg.Port
		if p := f.Get(fmt.Sprintf("Targets.member.%d.Port", i)); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n <= 0 || n > 65535 {
				return nil, validation("Port %q of target %s is not valid", p, id)
			}
			port = int32(n)
		}
		if tg.TargetType == "instance" && len(id) < 3 || tg.TargetType == "instance" && id[:2] != "i-" {
			return nil, &apiError{Status: http.StatusBadRequest, Code: "InvalidTarget", Message: fmt.Sprintf("The target %s is not an instance ID; target group %s takes instances", id, tg.Name)}
		}
		out = append(out, target{id: id, port: port})
	}
}

func (t *target) xml() targetHealthXML {
	x := targetHealthXML{Target: targetXML{ID: t.id, Port: t.port}, Health: healthXML{State: t.state, Reason: t.reason}}
	if t.state == "healthy" {
		x.Health.Reason = ""
	}
	return x
}

// checkTargets runs the health checks: a registered target turns healthy after HealthyAfter when a Ready pod
// has its IP (ip targets) or a Ready node its instance ID (instance targets); draining targets leave after
// the deregistration delay.
func (e *Emulator) checkTargets(ctx context.Context) {
	e.mu.Lock()
	none := len(e.targetGroups) == 0
	e.mu.Unlock()
	if none {
		return
	}
	readyIPs, readyInstances := map[string]bool{}, map[string]bool{}
	pods, perr := e.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	nodes, nerr := e.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if perr != nil || nerr != nil {
		e.log.Warn("health checks: cannot read the cluster", "pods", perr, "nodes", nerr)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.PodIP != "" && podReady(&p) {
			readyIPs[p.Status.PodIP] = true
		}
	}
	for _, n := range nodes.Items {
		if _, id, err := gpunode.ParseProviderID(n.Spec.ProviderID); err == nil && gpunode.IsReady(&n) && !n.Spec.Unschedulable {
			readyInstances[id] = true
		}
	}
	now := e.now()
	for _, tg := range e.targetGroups {
		for key, t := range tg.targets {
			switch {
			case t.state == "draining":
				if !now.Before(t.drainUntil) {
					delete(tg.targets, key)
				}
			case now.Sub(t.registered) < tg.HealthyAfter.D():
			case (tg.TargetType == "ip" && readyIPs[t.id]) || (tg.TargetType == "instance" && readyInstances[t.id]):
				t.state, t.reason = "healthy", ""
			default:
				t.state, t.reason = "unhealthy", "Target.FailedHealthChecks"
			}
		}
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

type targetGroupsResult struct {
	TargetGroups []targetGroupXML `xml:"TargetGroups>member"`
}

type targetGroupXML struct {
	ARN        string `xml:"TargetGroupArn"`
	Name       string `xml:"TargetGroupName"`
	Protocol   string `xml:"Protocol"`
	Port       int32  `xml:"Port"`
	TargetType string `xml:"TargetType"`
}

type attributesResult struct {
	Attributes []attributeXML `xml:"Attributes>member"`
}

type attributeXML struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

type targetHealthResult struct {
	Descriptions []targetHealthXML `xml:"TargetHealthDescriptions>member"`
}

type targetHealthXML struct {
	Target targetXML `xml:"Target"`
	Health healthXML `xml:"TargetHealth"`
}

type targetXML struct {
	ID   string `xml:"Id"`
	Port int32  `xml:"Port"`
}

type healthXML struct {
	State       string `xml:"State"`
	Reason      string `xml:"Reason,omitempty"`
	Description string `xml:"Description,omitempty"`
}
