package testbed

import "github.com/llmscaler/llmscaler/internal/promsd"

// AddScrapeTarget makes the stack's Prometheus scrape addr (host:port, path /metrics) with the given target
// labels; it takes effect within a few seconds. The returned function removes the target.
func (s *Stack) AddScrapeTarget(name, addr string, labels map[string]string) (remove func() error, err error) {
	return promsd.Add(s.Prometheus.TargetsDir, name, addr, labels)
}
