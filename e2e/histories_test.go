package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/llmscaler/llmscaler/internal/testbed"
)

// updateHistories is set by `make replay-histories`: the e2e tests then export the histories of the
// workflows they ran into workflows/testdata/histories, where the replay test (run in CI) replays them
// against the current workflow code, so that a change that breaks determinism fails the build.
var updateHistories = os.Getenv("LLMSCALER_UPDATE_HISTORIES") == "1"

// exportHistory writes a workflow's history as JSON (the format of `temporal workflow show --output json`).
func (e *env) exportHistory(workflowID, name string) {
	if !updateHistories {
		return
	}
	it := e.tc.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var h historypb.History
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			e.t.Fatalf("reading the history of %s: %v", workflowID, err)
		}
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
	if err != nil {
		e.t.Fatal(err)
	}
	root, err := testbed.RepoRoot()
	if err != nil {
		e.t.Fatal(err)
	}
	file := filepath.Join(root, "workflows", "testdata", "histories", name+".json")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("exported the history of %s to %s (%d events)", workflowID, file, len(h.Events))
}

// exportActions exports the autoscaler's history and each of its actions' histories.
func (e *env) exportActions(prefix string) {
	if !updateHistories {
		return
	}
	_ = e.tc.CancelWorkflow(context.Background(), e.spec.WorkflowID(), "")
	e.waitFor("the autoscaler to stop", 30*time.Second, func() bool {
		d, err := e.tc.DescribeWorkflowExecution(context.Background(), e.spec.WorkflowID(), "")
		return err == nil && d.WorkflowExecutionInfo.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	})
	e.exportHistory(e.spec.WorkflowID(), prefix+"-autoscaler")
	for _, a := range e.status().Actions {
		kind := a.WorkflowID[strings.LastIndex(a.WorkflowID[:strings.LastIndex(a.WorkflowID, "/")], "/")+1:]
		if i := strings.LastIndex(kind, "-"); i > strings.LastIndex(kind, "/") {
			kind = kind[:i] // "scale-out/3-1a2b3c4d": the file is named by the kind and number, not the run
		}
		e.exportHistory(a.WorkflowID, prefix+"-"+strings.ReplaceAll(kind, "/", "-")+"-"+a.Result)
	}
}
