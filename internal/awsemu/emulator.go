// Package awsemu is an emulator of the two AWS APIs the autoscaler calls, EC2 Auto Scaling (2011-01-01) and
// Elastic Load Balancing v2 (2015-12-01), speaking their Query protocol: form-encoded POSTs in, XML
// responses and AWS-style error codes out, as AWS documents them. Signatures are not checked.
//
// Its Auto Scaling groups launch "instances" that become simulated GPU nodes in a kwok cluster (through
// internal/gpunode) after a boot delay, and disappear from it when terminated. Its target groups report
// registered pod IPs healthy once a Ready pod has the IP. Faults are injected through an admin API under
// /_emulator/: throttling, HTTP 5xx, latency, InsufficientInstanceCapacity launch failures, instances that
// never join the cluster. Tests and the demo point the real AWS SDK at it.
package awsemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/llmscaler/llmscaler/policy"
)

// Emulator holds the state of the emulated account.
type Emulator struct {
	kube kubernetes.Interface
	log  *slog.Logger
	now  func() time.Time

	mu           sync.Mutex
	groups       map[string]*group
	targetGroups map[string]*targetGroup // by ARN
	faults       []Fault
	calls        []Call
	seq          int
}

// Call is one API call the emulator answered, for tests that check order and count.
type Call struct {
	Time     time.Time `json:"time"`
	Action   string    `json:"action"`
	Resource string    `json:"resource,omitempty"`
	// Params are the request's form values (only the ones that name things and sizes).
	Params map[string]string `json:"params,omitempty"`
	Error  string            `json:"error,omitempty"`
}

// GroupConfig creates an Auto Scaling group.
type GroupConfig struct {
	Name         string   `json:"name"`
	MinSize      int32    `json:"minSize"`
	MaxSize      int32    `json:"maxSize"`
	Desired      int32    `json:"desired"`
	InstanceType string   `json:"instanceType"`
	Zones        []string `json:"zones,omitempty"`
	// BootDelay from launch to InService, when the Node appears; ReadyDelay from then to Node Ready;
	// GPUDelay from Ready to GPUs allocatable.
	BootDelay  policy.Duration `json:"bootDelay,omitempty"`
	ReadyDelay policy.Duration `json:"readyDelay,omitempty"`
	GPUDelay   policy.Duration `json:"gpuDelay,omitempty"`
	// TerminateDelay from termination to the instance leaving the group.
	TerminateDelay policy.Duration `json:"terminateDelay,omitempty"`
	// NodeLabels are added to the group's nodes (besides the GPU node labels).
	NodeLabels map[string]string `json:"nodeLabels,omitempty"`
}

// TargetGroupConfig creates a target group.
type TargetGroupConfig struct {
	Name       string `json:"name"`
	Port       int32  `json:"port"`
	TargetType string `json:"targetType,omitempty"` // ip (default) or instance
	// Namespace where pods' IPs are looked up for health (ip targets).
	Namespace           string          `json:"namespace,omitempty"`
	DeregistrationDelay policy.Duration `json:"deregistrationDelay,omitempty"`
	// HealthyAfter is how long a registered target stays "initial" before its first passing check.
	HealthyAfter policy.Duration `json:"healthyAfter,omitempty"`
}

// Fault injects failures into calls whose resource (group name, target group ARN or instance's group)
// contains Match; an empty Match applies to every call.
type Fault struct {
	Match string `json:"match,omitempty"`
	// Actions limits the fault to these actions (all when empty).
	Actions []string `json:"actions,omitempty"`
	// ThrottleRate and ServerErrorRate are the shares of calls answered Throttling and HTTP 503.
	ThrottleRate    float64 `json:"throttleRate,omitempty"`
	ServerErrorRate float64 `json:"serverErrorRate,omitempty"`
	// Latency is added to each matching call.
	Latency policy.Duration `json:"latency,omitempty"`
	// CapacityFailures makes the next N launches in matching groups fail with InsufficientInstanceCapacity.
	CapacityFailures int `json:"capacityFailures,omitempty"`
	// NeverJoin makes the next N launched instances boot but never become Ready nodes.
	NeverJoin int `json:"neverJoin,omitempty"`
}

// New returns an emulator that creates nodes through kube.
func New(kube kubernetes.Interface, log *slog.Logger) *Emulator {
	if log == nil {
		log = slog.Default()
	}
	return &Emulator{kube: kube, log: log, now: time.Now, groups: map[string]*group{}, targetGroups: map[string]*targetGroup{}}
}

// Run reconciles groups and target groups (launching, booting and terminating instances; health checks)
// until ctx ends.
func (e *Emulator) Run(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.reconcile(ctx)
		}
	}
}

// ServeHTTP answers Query-protocol calls on / and the admin API on /_emulator/.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_emulator/") {
		e.admin(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, "", http.StatusBadRequest, "Sender", "MalformedQueryString", err.Error())
		return
	}
	action := r.Form.Get("Action")
	version := r.Form.Get("Version")
	var ns string
	switch version {
	case asgVersion:
		ns = asgNamespace
	case elbVersion:
		ns = elbNamespace
	default:
		writeError(w, "", http.StatusBadRequest, "Sender", "InvalidAction", fmt.Sprintf("unknown API version %q", version))
		return
	}
	resource := e.resourceOf(r.Form)
	if code, status, latency := e.fault(action, resource); latency > 0 || code != "" {
		if latency > 0 {
			time.Sleep(latency)
		}
		if code != "" {
			e.record(action, resource, r.Form, code)
			writeError(w, ns, status, faultType(status), code, faultMessage(code))
			return
		}
	}
	var err *apiError
	var body any
	if version == asgVersion {
		body, err = e.asg(action, r.Form)
	} else {
		body, err = e.elb(action, r.Form)
	}
	if err != nil {
		e.record(action, resource, r.Form, err.Code)
		writeError(w, ns, err.Status, "Sender", err.Code, err.Message)
		return
	}
	e.record(action, resource, r.Form, "")
	writeResponse(w, ns, action, body)
}

func faultType(status int) string {
	if status >= 500 {
		return "Receiver"
	}
	return "Sender"
}

func faultMessage(code string) string {
	if code == "Throttling" {
		return "Rate exceeded"
	}
	return "We encountered an internal error. Please try again."
}

// fault decides whether a call fails and how long it is delayed.
func (e *Emulator) fault(action, resource string) (code string, status int, latency time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, f := range e.faults {
		if !f.matches(action, resource) {
			continue
		}
		latency += f.Latency.D()
		r := mrand.Float64()
		switch {
		case code == "" && r < f.ThrottleRate:
			code, status = "Throttling", http.StatusBadRequest
		case code == "" && r < f.ThrottleRate+f.ServerErrorRate:
			code, status = "ServiceUnavailable", http.StatusServiceUnavailable
		}
	}
	return code, status, latency
}

func (f Fault) matches(action, resource string) bool {
	if f.Match != "" && !strings.Contains(resource, f.Match) {
		return false
	}
	if len(f.Actions) == 0 {
		return true
	}
	for _, a := range f.Actions {
		if a == action {
			return true
		}
	}
	return false
}

// takeLaunchFault consumes one capacity failure or never-join from the faults that match the group.
func (e *Emulator) takeLaunchFault(groupName string) (capacity, neverJoin bool) {
	for i := range e.faults {
		f := &e.faults[i]
		if f.Match != "" && !strings.Contains(groupName, f.Match) {
			continue
		}
		if f.CapacityFailures > 0 {
			f.CapacityFailures--
			return true, false
		}
		if f.NeverJoin > 0 {
			f.NeverJoin--
			return false, true
		}
	}
	return false, false
}

// resourceOf names what a call is about, for fault matching and the call log.
func (e *Emulator) resourceOf(form map[string][]string) string {
	get := func(k string) string {
		if v := form[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if g := get("AutoScalingGroupName"); g != "" {
		return g
	}
	if g := get("AutoScalingGroupNames.member.1"); g != "" {
		return g
	}
	if a := get("TargetGroupArn"); a != "" {
		return a
	}
	if id := get("InstanceId"); id != "" {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, g := range e.groups {
			if _, ok := g.instances[id]; ok {
				return g.name
			}
		}
		return id
	}
	return ""
}

func (e *Emulator) record(action, resource string, form map[string][]string, errCode string) {
	params := map[string]string{}
	for k, v := range form {
		if k == "Action" || k == "Version" || len(v) == 0 {
			continue
		}
		params[k] = v[0]
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, Call{Time: e.now(), Action: action, Resource: resource, Params: params, Error: errCode})
	if len(e.calls) > 20000 {
		e.calls = e.calls[len(e.calls)-10000:]
	}
}

// randomHex returns n random hexadecimal digits.
func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// apiError is an AWS error response.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func validation(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "ValidationError", Message: fmt.Sprintf(format, args...)}
}
