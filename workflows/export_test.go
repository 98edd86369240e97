package workflows

import (
	"time"

	"github.com/llmscaler/llmscaler/policy"
)

// SetPolicyForTest replaces the policy the loop runs until the returned function restores it.
func SetPolicyForTest(f func(policy.Input, *policy.State, time.Time) policy.Decision) (restore func()) {
	old := evaluatePolicy
	evaluatePolicy = f
	return func() { evaluatePolicy = old }
}
