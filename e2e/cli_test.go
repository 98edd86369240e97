package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/llmscaler/llmscaler/internal/testbed"
	"github.com/llmscaler/llmscaler/policy"
	"github.com/llmscaler/llmscaler/workflows"
)

// cli runs the llmscaler binary with the stack's environment and returns stdout, stderr and the exit code.
func (e *env) cli(args ...string) (string, string, int) {
	e.t.Helper()
	cmd := exec.Command(llmscalerBinary(e.t), args...)
	cmd.Env = append(os.Environ(), testbed.Shared(e.t).Env()...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func (e *env) specFile() string {
	b, err := json.Marshal(e.spec)
	if err != nil {
		e.t.Fatal(err)
	}
	y, err := yaml.JSONToYAML(b)
	if err != nil {
		e.t.Fatal(err)
	}
	file := filepath.Join(e.t.TempDir(), "model.yaml")
	if err := os.WriteFile(file, y, 0o644); err != nil {
		e.t.Fatal(err)
	}
	return file
}

// The operator CLI against the real stack: every model command, its output formats and its exit codes.
func TestModelCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{nodes: 2, replicas: 2})
	e.setLoad(10)
	e.startWorker()
	spec := e.specFile()
	name := e.ns + "/llm"
	tq := "--task-queue=" + e.taskQueue
	t.Cleanup(func() { e.cli("model", "stop", name, tq) })

	run := func(want int, args ...string) (string, string) {
		t.Helper()
		out, errOut, code := e.cli(args...)
		if code != want {
			t.Fatalf("llmscaler %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
		}
		return out, errOut
	}
	out, _ := run(0, "model", "start", "-f", spec, tq)
	if !strings.Contains(out, "autoscaler "+e.spec.WorkflowID()+" running") {
		t.Fatalf("start: %s", out)
	}
	run(0, "model", "start", "-f", spec, tq) // twice is safe: Update-With-Start
	e.waitFor("a first evaluation", 30*time.Second, func() bool { return e.status().Evaluations > 0 })

	out, _ = run(0, "model", "list", "-o", "json", tq)
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("list -o json: %v\n%s", err, out)
	}
	found := false
	for _, r := range rows {
		found = found || r["model"] == name
	}
	if !found {
		t.Fatalf("list lacks %s: %s", name, out)
	}

	out, _ = run(0, "model", "status", "llm", "-n", e.ns, "-o", "json", tq)
	var st workflows.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Model != "llm" || st.CurrentReplicas != 2 {
		t.Fatalf("status -o json: %v %+v", err, st)
	}
	out, _ = run(0, "model", "status", name, tq)
	for _, want := range []string{"Replicas:   2 current", "Nodes:", "Decided:"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	// A snapshot of the live model, explained offline.
	snap, _ := run(0, "model", "status", name, "--snapshot", tq)
	snapFile := filepath.Join(t.TempDir(), "snap.json")
	_ = os.WriteFile(snapFile, []byte(snap), 0o644)
	out, _ = run(0, "explain", "-f", spec, "--snapshot", snapFile)
	if !strings.Contains(out, "lorax_queue_length") {
		t.Fatalf("explain of a live snapshot: %s", out)
	}

	out, _ = run(0, "model", "pause", name, "--reason", "driver upgrade", "-o", "yaml", tq)
	var paused workflows.Status
	if err := yaml.Unmarshal([]byte(out), &paused); err != nil || !paused.Overrides.Paused {
		t.Fatalf("pause -o yaml: %v\n%s", err, out)
	}
	_, errOut := run(2, "model", "resume", name, tq)
	if !strings.Contains(errOut, "--reason is required") {
		t.Fatalf("resume without a reason: %s", errOut)
	}
	run(0, "model", "resume", name, "--reason", "done", tq)
	_, errOut = run(1, "model", "pin", name, "--replicas", "99", "--for", "1h", tq)
	if !strings.Contains(errOut, "refused: replicas 99: must be between 0 and maxReplicas 6") {
		t.Fatalf("an invalid pin: %s", errOut)
	}
	run(0, "model", "pin", name, "--replicas", "2", "--for", "10m", "--reason", "load test", tq)
	run(0, "model", "unpin", name, tq)
	run(0, "model", "bounds", name, "--max", "4", tq)
	_, errOut = run(2, "model", "targets", name, "queue", tq)
	if !strings.Contains(errOut, "write METRIC=VALUE") {
		t.Fatalf("targets without a value: %s", errOut)
	}
	run(0, "model", "targets", name, "lorax_queue_length=6", tq)
	// An evaluation can find the pods' samples missing for a moment (between Prometheus scrapes it says
	// "no samples for the pods" and keeps the count): evaluate again, as the next tick would.
	for attempt := 0; ; attempt++ {
		out, _ = run(0, "model", "evaluate", name, tq)
		if strings.Contains(out, "vs target 6 per pod") {
			break
		}
		if attempt == 4 || !strings.Contains(out, "no samples") {
			t.Fatalf("evaluate after the new target: %s", out)
		}
		time.Sleep(2 * time.Second)
	}
	out, _ = run(0, "model", "history", name, "-o", "json", tq)
	var hist struct {
		Decisions []policy.Decision `json:"decisions"`
	}
	if err := json.Unmarshal([]byte(out), &hist); err != nil || len(hist.Decisions) == 0 {
		t.Fatalf("history -o json: %v\n%s", err, out)
	}
	out, _ = run(0, "model", "history", name, tq)
	if !slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool {
		return slices.Equal(strings.Fields(l), []string{"TIME", "REPLICAS", "ACTION", "ACTED", "WHY"})
	}) {
		t.Fatalf("history's decisions table lacks its columns:\n%s", out)
	}
	_, errOut = run(1, "model", "drain-node", name, "no-such-node", tq)
	if !strings.Contains(errOut, "is not in node group") {
		t.Fatalf("drain of an unknown node: %s", errOut)
	}
	_, errOut = run(1, "model", "status", e.ns+"/nope", tq)
	if !strings.Contains(errOut, "no autoscaler autoscaler/"+e.ns+"/nope is running") {
		t.Fatalf("status of an unknown model: %s", errOut)
	}
	_, errOut = run(2, "model", "status", name, "-o", "xml", tq)
	if !strings.Contains(errOut, `--output "xml"`) {
		t.Fatalf("a bad output format: %s", errOut)
	}
	out, _ = run(0, "completion", "bash")
	if !strings.Contains(out, "__start_llmscaler") {
		t.Fatal("no bash completion")
	}
	out, _ = run(0, "model", "stop", name, tq)
	if !strings.Contains(out, "stopped") {
		t.Fatalf("stop: %s", out)
	}
}
