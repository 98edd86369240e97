package awsemu

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/llmscaler/llmscaler/policy"
)

// State is a snapshot of the emulated account, for tests and people (GET /_emulator/state).
type State struct {
	Groups       []GroupState       `json:"groups"`
	TargetGroups []TargetGroupState `json:"targetGroups"`
	Faults       []Fault            `json:"faults,omitempty"`
}

// GroupState is one Auto Scaling group.
type GroupState struct {
	Name      string          `json:"name"`
	Min       int32           `json:"min"`
	Max       int32           `json:"max"`
	Desired   int32           `json:"desired"`
	Instances []InstanceState `json:"instances"`
	// Launched counts every instance ever launched in the group.
	Launched int `json:"launched"`
}

// InstanceState is one instance.
type InstanceState struct {
	ID        string    `json:"id"`
	Zone      string    `json:"zone"`
	State     string    `json:"state"`
	Protected bool      `json:"protected"`
	Node      string    `json:"node,omitempty"`
	Launched  time.Time `json:"launched"`
}

// TargetGroupState is one target group.
type TargetGroupState struct {
	ARN     string        `json:"arn"`
	Name    string        `json:"name"`
	Targets []TargetState `json:"targets"`
}

// TargetState is one registered target.
type TargetState struct {
	ID    string `json:"id"`
	Port  int32  `json:"port"`
	State string `json:"state"`
}

// State returns a snapshot.
func (e *Emulator) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	var s State
	for _, name := range sortedKeys(e.groups) {
		g := e.groups[name]
		gs := GroupState{Name: name, Min: g.MinSize, Max: g.MaxSize, Desired: g.Desired, Launched: g.launched}
		for _, in := range g.sortedInstances() {
			gs.Instances = append(gs.Instances, InstanceState{ID: in.id, Zone: in.zone, State: in.state, Protected: in.protected, Node: in.node, Launched: in.launched})
		}
		s.Groups = append(s.Groups, gs)
	}
	for _, arn := range sortedKeys(e.targetGroups) {
		tg := e.targetGroups[arn]
		ts := TargetGroupState{ARN: arn, Name: tg.Name}
		for _, key := range sortedKeys(tg.targets) {
			t := tg.targets[key]
			ts.Targets = append(ts.Targets, TargetState{ID: t.id, Port: t.port, State: t.state})
		}
		s.TargetGroups = append(s.TargetGroups, ts)
	}
	s.Faults = append(s.Faults, e.faults...)
	return s
}

// Calls returns the calls answered for a resource (all when resource is empty), oldest first.
func (e *Emulator) Calls(resource string) []Call {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Call
	for _, c := range e.calls {
		if resource == "" || strings.Contains(c.Resource, resource) {
			out = append(out, c)
		}
	}
	return out
}

// Timings change how long a group's next instances take (zero fields are left as they are).
type Timings struct {
	BootDelay  policy.Duration `json:"bootDelay,omitempty"`
	ReadyDelay policy.Duration `json:"readyDelay,omitempty"`
	GPUDelay   policy.Duration `json:"gpuDelay,omitempty"`
}

// SetTimings changes a group's boot timings.
func (e *Emulator) SetTimings(group string, t Timings) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	g, ok := e.groups[group]
	if !ok {
		return fmt.Errorf("no group %s", group)
	}
	if t.BootDelay != 0 {
		g.BootDelay = t.BootDelay
	}
	if t.ReadyDelay != 0 {
		g.ReadyDelay = t.ReadyDelay
	}
	if t.GPUDelay != 0 {
		g.GPUDelay = t.GPUDelay
	}
	return nil
}

// AddFault adds a fault rule.
func (e *Emulator) AddFault(f Fault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = append(e.faults, f)
}

// ClearFaults removes the fault rules whose Match is match (all when match is empty).
func (e *Emulator) ClearFaults(match string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	kept := e.faults[:0]
	for _, f := range e.faults {
		if match != "" && f.Match != match {
			kept = append(kept, f)
		}
	}
	e.faults = kept
}

func (e *Emulator) reconcile(ctx context.Context) {
	e.mu.Lock()
	e.reconcileGroups(ctx)
	e.mu.Unlock()
	e.checkTargets(ctx)
}

// admin serves /_emulator/: groups, target-groups, faults, state, calls.
func (e *Emulator) admin(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/_emulator/")
	reply := func(v any, err error) {
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	switch {
	case path == "groups" && r.Method == http.MethodPost:
		var c GroupConfig
		if err := decodeStrict(r, &c); err != nil {
			reply(nil, err)
			return
		}
		reply(map[string]string{"name": c.Name}, e.CreateGroup(c))
	case path == "target-groups" && r.Method == http.MethodPost:
		var c TargetGroupConfig
		if err := decodeStrict(r, &c); err != nil {
			reply(nil, err)
			return
		}
		arn, err := e.CreateTargetGroup(c)
		reply(map[string]string{"arn": arn}, err)
	case strings.HasPrefix(path, "groups/") && strings.HasSuffix(path, "/timings") && r.Method == http.MethodPost:
		var t Timings
		if err := decodeStrict(r, &t); err != nil {
			reply(nil, err)
			return
		}
		reply(map[string]string{"status": "updated"}, e.SetTimings(strings.TrimSuffix(strings.TrimPrefix(path, "groups/"), "/timings"), t))
	case path == "faults" && r.Method == http.MethodPost:
		var f Fault
		if err := decodeStrict(r, &f); err != nil {
			reply(nil, err)
			return
		}
		e.AddFault(f)
		reply(map[string]string{"status": "added"}, nil)
	case path == "faults" && r.Method == http.MethodDelete:
		e.ClearFaults(r.URL.Query().Get("match"))
		reply(map[string]string{"status": "cleared"}, nil)
	case path == "state" && r.Method == http.MethodGet:
		reply(e.State(), nil)
	case path == "calls" && r.Method == http.MethodGet:
		reply(e.Calls(r.URL.Query().Get("resource")), nil)
	default:
		http.Error(w, fmt.Sprintf("%s /_emulator/%s: use POST groups, POST groups/NAME/timings, POST target-groups, POST or DELETE faults, GET state, GET calls", r.Method, path), http.StatusNotFound)
	}
}

func decodeStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	return nil
}

// Client talks to an emulator's admin API.
type Client struct {
	URL  string
	HTTP *http.Client
}

func (c Client) do(method, path string, in, out any) error {
	var body bytes.Buffer
	if in != nil {
		if err := json.NewEncoder(&body).Encode(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequest(method, strings.TrimSuffix(c.URL, "/")+"/_emulator/"+path, &body)
	if err != nil {
		return err
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var msg bytes.Buffer
		_, _ = msg.ReadFrom(resp.Body)
		return fmt.Errorf("emulator %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(msg.String()))
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// CreateGroup creates an Auto Scaling group.
func (c Client) CreateGroup(g GroupConfig) error { return c.do(http.MethodPost, "groups", g, nil) }

// CreateTargetGroup creates a target group and returns its ARN.
func (c Client) CreateTargetGroup(tg TargetGroupConfig) (string, error) {
	var out struct{ ARN string }
	err := c.do(http.MethodPost, "target-groups", tg, &out)
	return out.ARN, err
}

// AddFault adds a fault rule.
func (c Client) AddFault(f Fault) error { return c.do(http.MethodPost, "faults", f, nil) }

// SetBootDelay changes how long a group's next instances take to boot.
func (c Client) SetBootDelay(group string, d time.Duration) error {
	return c.do(http.MethodPost, "groups/"+group+"/timings", Timings{BootDelay: policy.Duration(d)}, nil)
}

// ClearFaults removes fault rules (those with the given Match, or all).
func (c Client) ClearFaults(match string) error {
	return c.do(http.MethodDelete, "faults?match="+match, nil, nil)
}

// State reads the emulator's state.
func (c Client) State() (State, error) {
	var s State
	err := c.do(http.MethodGet, "state", nil, &s)
	return s, err
}

// Calls reads the calls answered for a resource.
func (c Client) Calls(resource string) ([]Call, error) {
	var out []Call
	err := c.do(http.MethodGet, "calls?resource="+resource, nil, &out)
	return out, err
}
