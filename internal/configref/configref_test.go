package configref

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The README's configuration reference is the one the structs generate: run `make config-reference` after
// changing a config struct or its comments.
func TestREADMEConfigurationReferenceIsCurrent(t *testing.T) {
	root := filepath.Join("..", "..")
	want, err := Markdown(root)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i, j := strings.Index(s, Begin), strings.Index(s, End)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q ... %q markers", Begin, End)
	}
	got := strings.TrimSpace(s[i+len(Begin) : j])
	if got != strings.TrimSpace(want) {
		t.Fatal("README.md's configuration reference is out of date with the config structs: run `make config-reference`")
	}
	for _, field := range []string{"`spec.maxReplicas`", "`spec.metrics[].demand.slo.queueDelay`", "`temporal.tls.certFile`", "`kwok.groups[].bootDelay`"} {
		if !strings.Contains(want, field) {
			t.Errorf("the reference lacks %s", field)
		}
	}
}
