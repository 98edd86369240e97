package testbed

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

var targetName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// AddScrapeTarget makes Prometheus scrape addr (host:port, path /metrics) with the given target labels, under
// a file named after name; it takes effect within a few seconds. The returned function removes the target.
func (s *Stack) AddScrapeTarget(name, addr string, labels map[string]string) (remove func() error, err error) {
	if !targetName.MatchString(name) {
		return nil, fmt.Errorf("scrape target name %q: use letters, digits, '.', '_' and '-'", name)
	}
	group := []map[string]any{{"targets": []string{addr}, "labels": labels}}
	b, err := json.Marshal(group)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(s.Prometheus.TargetsDir, name+".json")
	// Write then rename, so Prometheus never reads a half-written file.
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, file); err != nil {
		return nil, err
	}
	return func() error {
		if err := os.Remove(file); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}, nil
}
