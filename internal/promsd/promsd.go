// Package promsd registers scrape targets with a Prometheus that reads file_sd target files from a folder.
package promsd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

var validName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Add makes Prometheus scrape addr (host:port, path /metrics) with the given target labels, through the file
// <dir>/<name>.json; it takes effect within a few seconds. The returned function removes the target.
func Add(dir, name, addr string, labels map[string]string) (remove func() error, err error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("scrape target name %q: use letters, digits, '.', '_' and '-'", name)
	}
	b, err := json.Marshal([]map[string]any{{"targets": []string{addr}, "labels": labels}})
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dir, name+".json")
	// Write then rename, so Prometheus never reads a half-written file.
	if err := os.WriteFile(file+".tmp", b, 0o644); err != nil {
		return nil, fmt.Errorf("registering scrape target %s: %w", name, err)
	}
	if err := os.Rename(file+".tmp", file); err != nil {
		return nil, err
	}
	return func() error {
		if err := os.Remove(file); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}, nil
}
