// Command configref rewrites the configuration reference in README.md from the config structs.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/llmscaler/llmscaler/internal/configref"
)

func main() {
	ref, err := configref.Markdown(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, "configref:", err)
		os.Exit(1)
	}
	b, err := os.ReadFile("README.md")
	if err != nil {
		fmt.Fprintln(os.Stderr, "configref:", err)
		os.Exit(1)
	}
	s := string(b)
	i, j := strings.Index(s, configref.Begin), strings.Index(s, configref.End)
	if i < 0 || j < i {
		fmt.Fprintln(os.Stderr, "configref: README.md lacks the markers")
		os.Exit(1)
	}
	s = s[:i+len(configref.Begin)] + "\n" + ref + "\n" + s[j:]
	if err := os.WriteFile("README.md", []byte(s), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "configref:", err)
		os.Exit(1)
	}
}
