// Command llmscaler is the autoscaler's one binary: the worker, the operator CLI, and the tools around them.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Exit codes a script can rely on.
const (
	exitOK = 0
	// exitError: the command failed (a server refused, a resource is missing, a wait timed out).
	exitError = 1
	// exitUsage: the command line or an input file is wrong; nothing was changed.
	exitUsage = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "error:", err)
	var u usageError
	if errors.As(err, &u) {
		return exitUsage
	}
	return exitError
}

// usageError marks errors in what the user gave: flags, arguments, input files.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}
