package workflows

import (
	"errors"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

func TestErrorTextIsTheFailingCodesOwnWords(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{temporal.NewApplicationError("describing node group gpu-pool: Throttling: Rate exceeded", "Throttled"),
			"Throttled: describing node group gpu-pool: Throttling: Rate exceeded"},
		// A plain Go error returned by an activity arrives typed with its Go type's name.
		{temporal.NewApplicationError("listing pods of models/llm: connection refused", "wrapError"), "listing pods of models/llm: connection refused"},
		{temporal.NewApplicationError("reading node n1: not found", "StatusError"), "reading node n1: not found"},
		{temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, nil), "ScheduleToClose timeout"},
		{temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_START_TO_CLOSE, temporal.NewApplicationError("Rate exceeded", "Throttled")),
			"StartToClose timeout, last attempt: Throttled: Rate exceeded"},
		{temporal.NewCanceledError(), "cancelled"},
		{errors.New("plain"), "plain"},
	} {
		if got := errorText(c.err); got != c.want {
			t.Errorf("errorText(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
