package awsemu

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/llmscaler/llmscaler/internal/gpunode"
)

const (
	asgVersion   = "2011-01-01"
	asgNamespace = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
	account      = "123456789012"
	region       = "us-east-1"
)

type group struct {
	GroupConfig
	name      string
	created   time.Time
	instances map[string]*instance
	// activities, newest last
	activities []activity
	// retryAt holds launches back after a failed one.
	retryAt time.Time
	// launched counts every instance launched.
	launched int
}

// launchRetry is how long a group waits after a failed launch before trying again.
const launchRetry = 5 * time.Second

type instance struct {
	id        string
	zone      string
	state     string // Pending, InService, Terminating, Terminated
	protected bool
	launched  time.Time
	inService time.Time
	stateAt   time.Time
	neverJoin bool
	node      string
	activity  string
}

type activity struct {
	id          string
	description string
	cause       string
	start, end  time.Time
	status      string // InProgress, Successful, Failed
	message     string
}

// CreateGroup adds an Auto Scaling group (the emulator's stand-in for CreateAutoScalingGroup).
func (e *Emulator) CreateGroup(c GroupConfig) error {
	if c.Name == "" || c.InstanceType == "" {
		return fmt.Errorf("a group needs a name and an instance type")
	}
	if _, err := gpunode.LookupInstanceType(c.InstanceType); err != nil {
		return err
	}
	if c.MinSize < 0 || c.MaxSize < c.MinSize || c.Desired < c.MinSize || c.Desired > c.MaxSize {
		return fmt.Errorf("group %s: need 0 <= min <= desired <= max (got %d, %d, %d)", c.Name, c.MinSize, c.Desired, c.MaxSize)
	}
	if len(c.Zones) == 0 {
		c.Zones = []string{"us-east-1a", "us-east-1b", "us-east-1c"}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.groups[c.Name]; ok {
		return fmt.Errorf("group %s exists", c.Name)
	}
	e.groups[c.Name] = &group{GroupConfig: c, name: c.Name, created: e.now(), instances: map[string]*instance{}}
	return nil
}

func (e *Emulator) asg(action string, f url.Values) (any, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch action {
	case "DescribeAutoScalingGroups":
		return e.describeGroups(f), nil
	case "SetDesiredCapacity":
		g, err := e.groupOf(f.Get("AutoScalingGroupName"))
		if err != nil {
			return nil, err
		}
		n, perr := strconv.Atoi(f.Get("DesiredCapacity"))
		if perr != nil {
			return nil, validation("DesiredCapacity %q is not a number", f.Get("DesiredCapacity"))
		}
		if int32(n) > g.MaxSize {
			return nil, validation("New SetDesiredCapacity value %d is above max value %d for the AutoScalingGroup.", n, g.MaxSize)
		}
		if int32(n) < g.MinSize {
			return nil, validation("New SetDesiredCapacity value %d is below min value %d for the AutoScalingGroup.", n, g.MinSize)
		}
		g.Desired = int32(n)
		return struct{}{}, nil
	case "TerminateInstanceInAutoScalingGroup":
		return e.terminate(f.Get("InstanceId"), f.Get("ShouldDecrementDesiredCapacity") == "true")
	case "DescribeScalingActivities":
		g, err := e.groupOf(f.Get("AutoScalingGroupName"))
		if err != nil {
			return nil, err
		}
		max := 100
		if m, err := strconv.Atoi(f.Get("MaxRecords")); err == nil && m > 0 {
			max = m
		}
		var out activitiesResult
		for i := len(g.activities) - 1; i >= 0 && len(out.Activities) < max; i-- {
			out.Activities = append(out.Activities, g.activities[i].xml(g.name))
		}
		return out, nil
	case "SetInstanceProtection":
		g, err := e.groupOf(f.Get("AutoScalingGroupName"))
		if err != nil {
			return nil, err
		}
		protect := f.Get("ProtectedFromScaleIn") == "true"
		for _, id := range members(f, "InstanceIds") {
			in, ok := g.instances[id]
			if !ok {
				return nil, validation("The instance %s is not part of Auto Scaling group %s.", id, g.name)
			}
			in.protected = protect
		}
		return struct{}{}, nil
	}
	return nil, &apiError{Status: http.StatusBadRequest, Code: "InvalidAction", Message: "The action " + action + " is not valid for this web service."}
}

func (e *Emulator) groupOf(name string) (*group, *apiError) {
	if name == "" {
		return nil, validation("1 validation error detected: Value null at 'autoScalingGroupName' failed to satisfy constraint: Member must not be null")
	}
	g, ok := e.groups[name]
	if !ok {
		return nil, validation("AutoScalingGroup name not found - AutoScalingGroup '%s' not found", name)
	}
	return g, nil
}

// terminate is TerminateInstanceInAutoScalingGroup: AWS answers a ValidationError for an unknown
// instance (the caller counts it as gone) and for a decrement below the minimum.
func (e *Emulator) terminate(id string, decrement bool) (any, *apiError) {
	for _, g := range e.groups {
		in, ok := g.instances[id]
		if !ok {
			continue
		}
		if in.state == "Terminating" || in.state == "Terminated" {
			return terminateResult{Activity: g.activities[len(g.activities)-1].xml(g.name)}, nil
		}
		if decrement {
			if g.Desired-1 < g.MinSize {
				return nil, validation("Currently, desiredSize equals minSize (%d). Terminating instance without replacement will violate group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower group's min size.", g.MinSize)
			}
			g.Desired--
		}
		a := e.terminateInstance(g, in, "At "+e.now().UTC().Format(time.RFC3339)+" instance "+id+" was taken out of service in response to a user request, shrinking the capacity.")
		return terminateResult{Activity: a.xml(g.name)}, nil
	}
	return nil, validation("Instance Id not found - No managed instance found for instance ID: %s", id)
}

func (e *Emulator) terminateInstance(g *group, in *instance, cause string) activity {
	now := e.now()
	in.state, in.stateAt = "Terminating", now
	a := activity{id: randomHex(8) + "-" + randomHex(4) + "-" + randomHex(4), description: "Terminating EC2 instance: " + in.id,
		cause: cause, start: now, status: "InProgress"}
	in.activity = a.id
	g.activities = append(g.activities, a)
	if in.node != "" {
		e.deleteNodeAsync(in.node)
	}
	return a
}

func (e *Emulator) deleteNodeAsync(name string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := e.kube.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			e.log.Warn("deleting the node of a terminated instance", "node", name, "error", err)
		}
	}()
}

// reconcileGroups launches and terminates instances toward each group's desired capacity, and moves
// instances through their lifecycle. Called with the lock held.
func (e *Emulator) reconcileGroups(ctx context.Context) {
	now := e.now()
	for _, g := range e.groups {
		live := 0
		for _, in := range g.sortedInstances() {
			switch in.state {
			case "Pending":
				live++
				if now.Sub(in.launched) >= g.BootDelay.D() {
					in.state, in.inService, in.stateAt = "InService", now, now
					e.finish(g, in.activity, "Successful", "")
					e.createNode(ctx, g, in)
				}
			case "InService":
				live++
			case "Terminating":
				if now.Sub(in.stateAt) >= g.TerminateDelay.D() {
					in.state = "Terminated"
					e.finish(g, in.activity, "Successful", "")
					delete(g.instances, in.id)
				}
			}
		}
		for ; int32(live) < g.Desired && !now.Before(g.retryAt); live++ {
			e.launch(ctx, g)
		}
		if excess := live - int(g.Desired); excess > 0 {
			// Lowering the desired capacity: newest first, never a protected instance.
			ins := g.sortedInstances()
			slices.Reverse(ins)
			for _, in := range ins {
				if excess == 0 {
					break
				}
				if (in.state == "Pending" || in.state == "InService") && !in.protected {
					e.terminateInstance(g, in, "At "+now.UTC().Format(time.RFC3339)+" a user request update of AutoScalingGroup constraints changed the desired capacity, shrinking the capacity.")
					excess--
				}
			}
		}
	}
}

// launch starts one instance, or records a failed launch when a capacity fault is pending.
func (e *Emulator) launch(_ context.Context, g *group) {
	now := e.now()
	zone := g.Zones[len(g.instances)%len(g.Zones)]
	capacity, neverJoin := e.takeLaunchFault(g.name)
	cause := fmt.Sprintf("At %s a user request explicitly set group desired capacity changing the desired capacity, increasing the capacity.", now.UTC().Format(time.RFC3339))
	if capacity {
		// Like AWS: the desired capacity stays; the launch fails and is recorded as a failed activity.
		g.activities = append(g.activities, activity{
			id: randomHex(8), description: "Launching a new EC2 instance.  Status Reason: InsufficientInstanceCapacity", cause: cause,
			start: now, end: now, status: "Failed",
			message: fmt.Sprintf("InsufficientInstanceCapacity: We currently do not have sufficient %s capacity in the Availability Zone you requested (%s). Our system will be working on provisioning additional capacity. Launching EC2 instance failed.", g.InstanceType, zone),
		})
		// The desired capacity stays, as on AWS; the group tries again a little later.
		g.retryAt = now.Add(launchRetry)
		return
	}
	id := "i-" + randomHex(17)
	a := activity{id: randomHex(8), description: "Launching a new EC2 instance: " + id, cause: cause, start: now, status: "InProgress"}
	g.activities = append(g.activities, a)
	g.launched++
	g.instances[id] = &instance{id: id, zone: zone, state: "Pending", launched: now, stateAt: now, neverJoin: neverJoin, activity: a.id}
}

func (e *Emulator) finish(g *group, id, status, message string) {
	for i := range g.activities {
		if g.activities[i].id == id && g.activities[i].status == "InProgress" {
			g.activities[i].status, g.activities[i].end, g.activities[i].message = status, e.now(), message
		}
	}
	if len(g.activities) > 200 {
		g.activities = g.activities[len(g.activities)-100:]
	}
}

// createNode makes the instance's simulated GPU node (asynchronously: the lock is held).
func (e *Emulator) createNode(_ context.Context, g *group, in *instance) {
	now := e.now()
	readyAt := now.Add(g.ReadyDelay.D())
	node, err := gpunode.Build(gpunode.Spec{
		Name: gpunode.NameForInstance(in.id), InstanceID: in.id, InstanceType: g.InstanceType, Zone: in.zone, NodeGroup: g.name,
		ReadyAt: readyAt, GPUsAllocatableAt: readyAt.Add(g.GPUDelay.D()), NeverReady: in.neverJoin, Labels: g.NodeLabels,
	})
	if err != nil {
		e.log.Error("building a node", "instance", in.id, "error", err)
		return
	}
	node.Labels["eks.amazonaws.com/nodegroup"] = g.name
	in.node = node.Name
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := e.kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			e.log.Error("creating the node of an instance", "instance", in.id, "node", node.Name, "error", err)
		}
	}()
}

func (g *group) sortedInstances() []*instance {
	out := make([]*instance, 0, len(g.instances))
	for _, in := range g.instances {
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b *instance) int {
		if c := a.launched.Compare(b.launched); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return out
}

func (e *Emulator) describeGroups(f url.Values) groupsResult {
	names := members(f, "AutoScalingGroupNames")
	var out groupsResult
	for _, name := range sortedKeys(e.groups) {
		if len(names) > 0 && !slices.Contains(names, name) {
			continue
		}
		g := e.groups[name]
		x := groupXML{
			Name: g.name, ARN: fmt.Sprintf("arn:aws:autoscaling:%s:%s:autoScalingGroup:%s:autoScalingGroupName/%s", region, account, randomHex(8), g.name),
			MinSize: g.MinSize, MaxSize: g.MaxSize, DesiredCapacity: g.Desired, DefaultCooldown: 300,
			AvailabilityZones: g.Zones, HealthCheckType: "EC2", CreatedTime: xmlTime(g.created),
		}
		for _, in := range g.sortedInstances() {
			if in.state == "Terminated" {
				continue
			}
			x.Instances = append(x.Instances, instanceXML{
				InstanceId: in.id, InstanceType: g.InstanceType, AvailabilityZone: in.zone, LifecycleState: in.state,
				HealthStatus: "Healthy", ProtectedFromScaleIn: in.protected,
			})
		}
		out.Groups = append(out.Groups, x)
	}
	return out
}

// members reads a Query-protocol list: Name.member.1, Name.member.2 ...
func members(f url.Values, name string) []string {
	var out []string
	for i := 1; ; i++ {
		v := f.Get(fmt.Sprintf("%s.member.%d", name, i))
		if v == "" {
			return out
		}
		out = append(out, v)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

type groupsResult struct {
	Groups []groupXML `xml:"AutoScalingGroups>member"`
}

type groupXML struct {
	Name              string        `xml:"AutoScalingGroupName"`
	ARN               string        `xml:"AutoScalingGroupARN"`
	MinSize           int32         `xml:"MinSize"`
	MaxSize           int32         `xml:"MaxSize"`
	DesiredCapacity   int32         `xml:"DesiredCapacity"`
	DefaultCooldown   int32         `xml:"DefaultCooldown"`
	AvailabilityZones []string      `xml:"AvailabilityZones>member"`
	HealthCheckType   string        `xml:"HealthCheckType"`
	CreatedTime       string        `xml:"CreatedTime"`
	Instances         []instanceXML `xml:"Instances>member"`
}

type instanceXML struct {
	InstanceId           string `xml:"InstanceId"`
	InstanceType         string `xml:"InstanceType"`
	AvailabilityZone     string `xml:"AvailabilityZone"`
	LifecycleState       string `xml:"LifecycleState"`
	HealthStatus         string `xml:"HealthStatus"`
	ProtectedFromScaleIn bool   `xml:"ProtectedFromScaleIn"`
}

type activitiesResult struct {
	Activities []activityXML `xml:"Activities>member"`
}

type terminateResult struct {
	Activity activityXML `xml:"Activity"`
}

type activityXML struct {
	ActivityId    string `xml:"ActivityId"`
	GroupName     string `xml:"AutoScalingGroupName"`
	Description   string `xml:"Description"`
	Cause         string `xml:"Cause"`
	StartTime     string `xml:"StartTime"`
	EndTime       string `xml:"EndTime,omitempty"`
	StatusCode    string `xml:"StatusCode"`
	StatusMessage string `xml:"StatusMessage,omitempty"`
	Progress      int    `xml:"Progress"`
}

func (a activity) xml(group string) activityXML {
	x := activityXML{ActivityId: a.id, GroupName: group, Description: a.description, Cause: a.cause, StartTime: xmlTime(a.start),
		StatusCode: a.status, StatusMessage: a.message, Progress: 50}
	if !a.end.IsZero() {
		x.EndTime, x.Progress = xmlTime(a.end), 100
	}
	return x
}

func xmlTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
