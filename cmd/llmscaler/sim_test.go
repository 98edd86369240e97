package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmscaler/llmscaler/internal/trace"
)

const simTrace = "../../deploy/examples/traces/AzureLLMInferenceTrace_conv.csv"
const simSpec = "../../deploy/examples/lorax/model.yaml"

func TestSimPrintsTheComparisonAsJSONAndPlots(t *testing.T) {
	plot := filepath.Join(t.TempDir(), "sim.svg")
	out, errOut, code := runCLI(t, "", "sim", "--trace", simTrace, "-f", simSpec, "--window", "0m-20m", "--rate-scale", "2",
		"--image-pull", "5m", "--plot", plot, "-o", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep struct {
		Assumptions map[string]any   `json:"assumptions"`
		Oracle      float64          `json:"oracle_gpu_node_hours"`
		Policies    []map[string]any `json:"policies"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	// The warm-up follows the delays: twice 90 s + 60 s + 5 m + 40 s.
	if rep.Assumptions["image_pull"] != "5m0s" || rep.Assumptions["warmup"] != "16m20s" || rep.Assumptions["drain_grace"] != "2m0s" || rep.Assumptions["rate_scale"] != 2.0 || rep.Oracle <= 0 {
		t.Fatalf("assumptions %v, oracle %v", rep.Assumptions, rep.Oracle)
	}
	names := []string{}
	for _, p := range rep.Policies {
		names = append(names, p["name"].(string))
	}
	if got := strings.Join(names, " "); !strings.Contains(got, "hpa+ca static-") || !strings.Contains(got, "oracle ours") {
		t.Fatalf("policies %s", got)
	}
	if b, err := os.ReadFile(plot); err != nil || !strings.Contains(string(b), "<svg") {
		t.Fatalf("plot: %v", err)
	}
}

func TestSimRefusesBadInputWithWhatToFix(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--compress", "10"}, "--compress does not apply to sim"},
		{[]string{"--window", "2h-3h"}, "holds no request of the trace (it lasts 58m22s)"},
		{[]string{"--trace", "sim_test.go"}, "want the Azure traces' TIMESTAMP,ContextTokens,GeneratedTokens or BurstGPT's"},
		{[]string{"--model-load", "-5s"}, "a delay cannot be negative"},
		{[]string{"--node-ready", "soon"}, "is not a duration"},
		{[]string{"--window", "0m-5m"}, "warm-up (7m20s) is not shorter than the trace"},
		{[]string{"--attainment", "99"}, "attainment target 99 must be between 0 and 1"},
		{[]string{"-f", "nope.yaml"}, "nope.yaml"},
		{[]string{"-o", "xml"}, `--output "xml"`},
		{[]string{"--max-replicas", "-2"}, "--max-replicas -2: want a count"},
		{[]string{"--max-batch", "0"}, "--max-batch 0: a replica decodes at least one sequence"},
		{[]string{"--explain", "static-31"}, `--explain "static-31": not a policy of this run; one of hpa+ca, ours, ours-workflow,`},
		{[]string{"--workflow=false", "--explain", "ours-workflow"}, `--explain "ours-workflow": not a policy of this run; one of hpa+ca, ours, ours-no-slo-sizing`},
	} {
		args := append([]string{"sim", "--trace", simTrace, "-f", simSpec}, c.args...)
		_, errOut, code := runCLI(t, "", args...)
		if code == exitOK || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want it to say %q", c.args, code, errOut, c.want)
		}
	}
}

func TestSimWarnsWhenAnAutoscalerReachesItsBound(t *testing.T) {
	// At 2x the trace needs 6 or 7 replicas: a bound of 4 caps every autoscaler, and the report says so
	// rather than let the attainment pass for the policy's. The default leaves room for twice the oracle's
	// peak, and says nothing.
	args := []string{"sim", "--trace", simTrace, "-f", simSpec, "--window", "0m-20m", "--rate-scale", "2", "--workflow=false"}
	out, errOut, code := runCLI(t, "", append(args, "--max-replicas", "4")...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "Warning: ours reached its maxReplicas (4): its attainment measures that bound, not the policy (raise --max-replicas).") {
		t.Fatalf("no warning for ours at its bound:\n%s", out)
	}
	out, errOut, code = runCLI(t, "", append(args, "-o", "json")...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep struct {
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Warnings) != 0 {
		t.Fatalf("warnings %v (%v) with room for twice the peak", rep.Warnings, err)
	}
}

func TestSimSizesTheSpecForTheServersAndSLOItSimulates(t *testing.T) {
	run := func(specFile string, flags ...string) (assumptions map[string]any, hours map[string]float64) {
		t.Helper()
		args := append([]string{"sim", "--trace", simTrace, "-f", specFile, "--window", "0m-20m", "--rate-scale", "4", "--workflow=false", "-o", "json"}, flags...)
		out, errOut, code := runCLI(t, "", args...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", flags, code, errOut)
		}
		var rep struct {
			Assumptions map[string]any `json:"assumptions"`
			Policies    []struct {
				Name  string  `json:"name"`
				Hours float64 `json:"gpu_node_hours"`
			} `json:"policies"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		hours = map[string]float64{}
		for _, p := range rep.Policies {
			if strings.HasPrefix(p.Name, "static-") {
				p.Name = "static"
			}
			hours[p.Name] = p.Hours
		}
		return rep.Assumptions, hours
	}
	// Servers that decode 32 at once: the spec written for 16 is sized for them, not for its own batch (it
	// was: twice the static size's node-hours).
	a, hours := run(simSpec, "--max-batch", "32", "--slo", "500ms")
	if a["serving"].(map[string]any)["maxBatch"] != 32.0 || a["slo_queue_delay"] != "500ms" {
		t.Fatalf("assumptions %v", a)
	}
	if hours["ours"] > 1.25*hours["static"] {
		t.Errorf("on 32-sequence servers ours took %.2f node-hours, static %.2f: sized for the spec's 16", hours["ours"], hours["static"])
	}
	// A spec written for 32-sequence servers, with no flag: the servers simulated are its own.
	spec, err := os.ReadFile(simSpec)
	if err != nil {
		t.Fatal(err)
	}
	wide := filepath.Join(t.TempDir(), "model.yaml")
	if err := os.WriteFile(wide, []byte(strings.Replace(string(spec), "concurrency: 16", "concurrency: 32", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if a, _ := run(wide); a["serving"].(map[string]any)["maxBatch"] != 32.0 {
		t.Fatalf("a spec for 32-sequence servers simulated on %v", a["serving"])
	}
}

// The conversation trace written as the Azure 2024 traces write theirs (six fractional digits and an
// offset) and as BurstGPT does (seconds since the start, its other columns) simulates alike: a trace of
// either dataset runs as it is downloaded.
func TestSimReadsEachDatasetsFormatAlike(t *testing.T) {
	reqs, err := trace.ReadFile(simTrace)
	if err != nil {
		t.Fatal(err)
	}
	reqs = trace.Window(reqs, 0, 20*time.Minute)
	var azure2024, burstGPT strings.Builder
	azure2024.WriteString("TIMESTAMP,ContextTokens,GeneratedTokens\n")
	burstGPT.WriteString("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n")
	// The offsets differ from row to row, so that a reader ignoring them would get other arrivals.
	start := time.Date(2024, 5, 10, 0, 0, 0, 0, time.UTC)
	zones := []*time.Location{time.UTC, time.FixedZone("", 2*3600), time.FixedZone("", -7*3600), time.FixedZone("", 5*3600+1800)}
	for i, r := range reqs {
		at := r.At.Truncate(time.Microsecond)
		fmt.Fprintf(&azure2024, "%s,%d,%d\n", start.Add(at).In(zones[i%len(zones)]).Format("2006-01-02 15:04:05.000000Z07:00"), r.Prompt, r.Output)
		fmt.Fprintf(&burstGPT, "%d.%06d,ChatGPT,%d,%d,%d,Conversation log\n", at/time.Second, at%time.Second/time.Microsecond, r.Prompt, r.Output, r.Prompt+r.Output)
	}
	report := func(name, content string) string {
		t.Helper()
		file := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := runCLI(t, "", "sim", "--trace", file, "-f", simSpec, "--rate-scale", "2", "--workflow=false", "-o", "json")
		if code != exitOK {
			t.Fatalf("%s: exit %d: %s", name, code, errOut)
		}
		// The report names its trace; the rest must agree.
		return strings.ReplaceAll(out, file, "TRACE")
	}
	azure, burst := report("azure2024.csv", azure2024.String()), report("burstgpt.csv", burstGPT.String())
	if azure != burst {
		t.Errorf("the same requests in BurstGPT's format simulated otherwise than in the Azure 2024 format:\n%s\nvs\n%s", burst, azure)
	}
	var rep struct {
		Assumptions struct {
			Requests int `json:"trace_requests"`
		} `json:"assumptions"`
	}
	if err := json.Unmarshal([]byte(azure), &rep); err != nil || rep.Assumptions.Requests != 2*len(reqs) {
		t.Errorf("%d requests simulated, want the window's %d at twice the rate (%v)", rep.Assumptions.Requests, 2*len(reqs), err)
	}
}

func TestSimExplainsAPolicysLateSpellsWithItsDecisions(t *testing.T) {
	// The first 40 minutes at 10x (the warm-up is 7m20s): what is late after it is explained with the
	// decisions' own sentences, for the policy asked about alone.
	args := []string{"sim", "--trace", simTrace, "-f", simSpec, "--window", "0m-40m", "--rate-scale", "10", "--workflow=false", "--explain", "hpa-rule+sagas"}
	out, errOut, code := runCLI(t, "", args...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "hpa-rule+sagas served every request in time after the warm-up.") &&
		!strings.Contains(out, "Why hpa-rule+sagas was late: the ") {
		t.Fatalf("no explanation:\n%s", out)
	}
	// ours, and the workflow itself from its own decision records (read through its decisions query).
	for _, name := range []string{"ours", "ours-workflow"} {
		explainsFromTheDecisions(t, name, append(slices.Clone(args[:len(args)-1]), name, "-o", "json", "--workflow=true"))
	}
}

// explainsFromTheDecisions runs the sim command with --explain name and JSON output, and checks that the
// policy alone has late spells, each with late requests and records that begin before it.
func explainsFromTheDecisions(t *testing.T, name string, args []string) {
	t.Helper()
	out, errOut, code := runCLI(t, "", args...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep struct {
		Policies []struct {
			Name       string `json:"name"`
			LateSpells []struct {
				From      float64 `json:"from_s"`
				Late      int     `json:"late_requests"`
				Decisions []struct {
					At      float64 `json:"at_s"`
					Summary string  `json:"summary"`
				} `json:"decisions"`
			} `json:"late_spells"`
		} `json:"policies"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	for _, p := range rep.Policies {
		if (p.Name == name) != (len(p.LateSpells) > 0) {
			t.Errorf("%s: late spells %v; want them for %s alone (this window has some)", p.Name, p.LateSpells, name)
		}
		for _, sp := range p.LateSpells {
			if sp.Late <= 0 || len(sp.Decisions) == 0 || sp.Decisions[0].At > sp.From || !strings.Contains(sp.Decisions[0].Summary, " -> ") {
				t.Errorf("%s: spell %+v", p.Name, sp)
			}
		}
	}
}
