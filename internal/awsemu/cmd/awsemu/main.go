// Command awsemu runs the AWS emulator (internal/awsemu) for the local stack: the EC2 Auto Scaling and
// ELBv2 Query APIs on --listen, instances becoming simulated GPU nodes in the cluster of --kubeconfig.
//
//	awsemu --listen 127.0.0.1:4580 --kubeconfig kubeconfig.yaml [--config setup.json]
//
// --config holds groups and target groups to create at start: {"groups": [...], "targetGroups": [...]}.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/llmscaler/llmscaler/internal/awsemu"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "awsemu:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:4580", "address of the AWS endpoint and the /_emulator/ admin API")
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the kwok cluster the instances join")
	setup := flag.String("config", "", "JSON file of groups and target groups to create at start")
	flag.Parse()
	rc, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig %q: %w", *kubeconfig, err)
	}
	rc.QPS, rc.Burst = 100, 200
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	emu := awsemu.New(kube, log)
	if *setup != "" {
		var cfg struct {
			Groups       []awsemu.GroupConfig       `json:"groups"`
			TargetGroups []awsemu.TargetGroupConfig `json:"targetGroups"`
		}
		b, err := os.ReadFile(*setup)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &cfg); err != nil {
			return fmt.Errorf("%s: %w", *setup, err)
		}
		for _, g := range cfg.Groups {
			if err := emu.CreateGroup(g); err != nil {
				return err
			}
		}
		for _, tg := range cfg.TargetGroups {
			arn, err := emu.CreateTargetGroup(tg)
			if err != nil {
				return err
			}
			log.Info("target group created", "name", tg.Name, "arn", arn)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	go emu.Run(ctx)
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("AWS emulator listening", "address", l.Addr().String())
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
