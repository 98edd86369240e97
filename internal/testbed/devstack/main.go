// Command devstack starts and stops the developer's local stack (make dev-up / make dev-down).
//
//	devstack up      start Temporal (with Web UI), the kwok cluster with metrics-server, Prometheus and the AWS emulator
//	devstack down    stop all of it; nothing of the stack keeps running
//	devstack status  say whether it runs and how to reach it
//	devstack env     print the exports that point the CLIs at it
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/llmscaler/llmscaler/internal/testbed"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	name := fs.String("name", "dev", "name of the stack and of its kwok cluster")
	dir := fs.String("dir", "", "state folder (default <repo>/.dev/<name>)")
	temporalPort := fs.Int("temporal-port", 7233, "Temporal gRPC port")
	uiPort := fs.Int("ui-port", 8233, "Temporal Web UI port")
	promPort := fs.Int("prometheus-port", 9090, "Prometheus port")
	awsPort := fs.Int("aws-port", 4580, "AWS emulator port")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: devstack [flags] up|down|status|env")
		fs.PrintDefaults()
	}
	if len(args) == 0 {
		fs.Usage()
		return errors.New("missing command")
	}
	cmd := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dir == "" {
		root, err := testbed.RepoRoot()
		if err != nil {
			return err
		}
		*dir = filepath.Join(root, ".dev", *name)
	}
	switch cmd {
	case "up":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		s, err := testbed.Start(ctx, testbed.Options{
			Name: *name, Dir: *dir, UI: true,
			TemporalPort: *temporalPort, TemporalUIPort: *uiPort, PrometheusPort: *promPort, AWSPort: *awsPort,
			Log: func(format string, a ...any) { fmt.Printf("  "+format+"\n", a...) },
		})
		if err != nil {
			return err
		}
		fmt.Printf("\nThe local stack is up.\n\n%s\nStop it with: make dev-down\n", s.Describe())
		return nil
	case "down":
		s, err := testbed.Load(*dir)
		if errors.Is(err, os.ErrNotExist) {
			fmt.Println("no stack in", *dir)
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Stop(); err != nil {
			return err
		}
		fmt.Println("stopped the stack in", *dir)
		return nil
	case "status", "env":
		s, err := testbed.Load(*dir)
		if err != nil {
			return fmt.Errorf("no stack in %s (start one with make dev-up)", *dir)
		}
		if cmd == "env" {
			fmt.Println("export " + strings.Join(s.Env(), "\nexport "))
			return nil
		}
		if !s.Running() {
			fmt.Printf("the stack in %s is stopped (start it with make dev-up)\n", *dir)
			return nil
		}
		fmt.Print(s.Describe())
		return nil
	default:
		fs.Usage()
		return fmt.Errorf("unknown command %q", cmd)
	}
}
