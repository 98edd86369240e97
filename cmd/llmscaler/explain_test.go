package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/llmscaler/llmscaler/policy"
)

func runCLI(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestExplainPrintsTheDecisionRecord(t *testing.T) {
	out, errOut, code := runCLI(t, "", "explain", "-f", "testdata/model.yaml", "--snapshot", "testdata/snapshot.json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"3 -> 8 replicas (scale out)",
		"lorax_queue_length 14.2 per pod vs target 5 per pod (ratio 2.84) proposes 9",
		"max-replicas           9 -> 8  maxReplicas 8",
		"add 5 node(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestExplainJSONFromStdin(t *testing.T) {
	snap, err := os.ReadFile("testdata/snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, string(snap), "explain", "-f", "testdata/model.yaml", "--snapshot", "-", "-o", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var d policy.Decision
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("output is not a decision: %v\n%s", err, out)
	}
	if d.DesiredReplicas != 8 || d.Action != policy.ScaleOut || d.Nodes.Add != 5 || len(d.Metrics) != 2 {
		t.Fatalf("decision %+v", d)
	}
}

func TestExplainBadInputIsAUsageError(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"explain", "-f", "testdata/model.yaml"}, "both -f MODEL.yaml and --snapshot SNAPSHOT.json are required"},
		{[]string{"explain", "-f", "testdata/model.yaml", "--snapshot", "testdata/snapshot.json", "-o", "xml"}, `--output "xml"`},
		{[]string{"explain", "-f", "testdata/nope.yaml", "--snapshot", "testdata/snapshot.json"}, "testdata/nope.yaml not found"},
		{[]string{"explain", "-f", "testdata/model.yaml", "--snapshot", "-"}, "snapshot - is not valid"},
		{[]string{"explain", "--bogus"}, "unknown flag: --bogus"},
	}
	for _, c := range cases {
		_, errOut, code := runCLI(t, "{\"specReplicas\": \"three\"}", c.args...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, code, errOut, exitUsage, c.want)
		}
	}
}

func TestExplainReadsASnapshotFromBeforeTheTrendFittedBusySlots(t *testing.T) {
	snap, err := os.ReadFile("testdata/snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := json.Unmarshal(snap, &top); err != nil {
		t.Fatal(err)
	}
	state, _ := top["state"].(map[string]any)
	if state == nil {
		state = map[string]any{}
	}
	// An older autoscaler's trend readings, and a field no version ever had.
	state["arrivals"] = []any{map[string]any{"value": 12.5, "time": "2026-11-20T10:00:00Z"}}
	top["state"] = state
	old, _ := json.Marshal(top)
	if _, errOut, code := runCLI(t, string(old), "explain", "-f", "testdata/model.yaml", "--snapshot", "-"); code != exitOK {
		t.Fatalf("an older snapshot: exit %d: %s", code, errOut)
	}
	state["arrivalz"] = 1
	typo, _ := json.Marshal(top)
	if _, errOut, code := runCLI(t, string(typo), "explain", "-f", "testdata/model.yaml", "--snapshot", "-"); code != exitUsage || !strings.Contains(errOut, `unknown field "arrivalz"`) {
		t.Fatalf("a misspelt state field: exit %d: %s", code, errOut)
	}
}

func TestExplainUsesTheSnapshotsLeadTime(t *testing.T) {
	// The LoRAX example sizes on demand over the lead time. A snapshot from an autoscaler that measured 6
	// minutes explains with 6 minutes, not with the 4-minute prior.
	snap := `{"time": "2026-11-20T10:00:00Z", "specReplicas": 4,
		"pods": [{"name": "p0", "phase": "Running", "ready": true, "node": "n0"}, {"name": "p1", "phase": "Running", "ready": true, "node": "n1"}],
		"metrics": [{"name": "demand", "demand": {"arrivals": 8, "backlog": 0}}],
		"group": {"name": "gpu", "max": 20, "desired": 4, "gpusPerNode": 1}%s}`
	for _, c := range []struct{ extra, want string }{{"", "over lead time 4m0s"}, {`, "leadTime": "6m", "waiting": "1m"`, "over lead time 6m0s"}} {
		out, errOut, code := runCLI(t, fmt.Sprintf(snap, c.extra), "explain", "-f", "../../deploy/examples/lorax/model.yaml", "--snapshot", "-")
		if code != exitOK || !strings.Contains(out, c.want) {
			t.Errorf("snapshot with %q: exit %d, %s; want %q in:\n%s", c.extra, code, errOut, c.want, out)
		}
	}
}
