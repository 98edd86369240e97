package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// The stack of one test binary: started by the first test that asks for it, stopped by Main.
var shared struct {
	once     sync.Once
	stack    *Stack
	err      error
	kube     kubernetes.Interface
	rest     *rest.Config
	temporal client.Client
	failed   bool
	mu       sync.Mutex
}

// Main runs the tests of a package that uses the stack; call it from TestMain. The stack starts on first use
// (so `go test -run` of unit tests alone starts nothing) and is stopped when the tests end, when the binary is
// interrupted, and, through a watchdog process, even when the binary is killed.
func Main(m *testing.M) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		teardown(true)
		fmt.Fprintf(os.Stderr, "testbed: %v: stack stopped\n", s)
		os.Exit(130)
	}()
	code := m.Run()
	teardown(code != 0)
	os.Exit(code)
}

func teardown(keepLogs bool) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.temporal != nil {
		shared.temporal.Close()
		shared.temporal = nil
	}
	if shared.stack == nil {
		return
	}
	if err := shared.stack.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "testbed: %v\n", err)
	}
	if keepLogs || shared.failed {
		fmt.Fprintf(os.Stderr, "testbed: logs of the stack are in %s\n", filepath.Join(shared.stack.Dir, "logs"))
	} else {
		_ = os.RemoveAll(shared.stack.Dir)
	}
	shared.stack = nil
}

// Shared returns the stack of this test binary, starting it on first use. A stack that cannot start fails
// the test with the reason (a missing tool names the command that builds it); it never skips.
func Shared(t testing.TB) *Stack {
	t.Helper()
	shared.once.Do(func() {
		shared.stack, shared.err = startForTests()
		if shared.err != nil {
			return
		}
		shared.rest, shared.err = clientcmd.BuildConfigFromFlags("", shared.stack.Kube.Kubeconfig)
		if shared.err != nil {
			return
		}
		shared.rest.QPS, shared.rest.Burst = 200, 400
		shared.kube, shared.err = kubernetes.NewForConfig(shared.rest)
	})
	if shared.err != nil {
		t.Fatalf("starting the local stack: %v", shared.err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			shared.mu.Lock()
			shared.failed = true
			shared.mu.Unlock()
		}
	})
	return shared.stack
}

func startForTests() (*Stack, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	base := filepath.Join(root, ".dev")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	reapStaleTestStacks(base)
	pkg := sanitize(filepath.Base(os.Args[0]), 20)
	name := fmt.Sprintf("test-%s-%d", strings.TrimSuffix(pkg, "-test"), os.Getpid())
	dir := filepath.Join(base, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	s, err := Start(ctx, Options{Name: name, Dir: dir, ScrapeInterval: time.Second})
	if err != nil {
		return nil, err
	}
	// Start cleared the folder: say again who owns it, for reapStaleTestStacks of later runs.
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	if err := startWatchdog(s); err != nil {
		_ = s.Stop()
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "testbed: stack %s up in %s\n", name, time.Since(start).Round(100*time.Millisecond))
	return s, nil
}

// startWatchdog starts a process, outside our process group, that stops the stack once this test binary is
// gone, however it went (a timeout panic, SIGKILL).
func startWatchdog(s *Stack) error {
	script := fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 1; done; exec /bin/bash %q", os.Getpid(), filepath.Join(s.Dir, "down.sh"))
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the stack watchdog: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	return nil
}

// reapStaleTestStacks stops and removes the stacks of test binaries that no longer run.
func reapStaleTestStacks(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, "test-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || syscall.Kill(pid, 0) == nil {
			continue
		}
		_ = runDown(d)
		_ = os.RemoveAll(d)
	}
}

// KubeClient returns a client of the shared stack's cluster, with the cluster admin's rights.
func KubeClient(t testing.TB) kubernetes.Interface {
	t.Helper()
	Shared(t)
	return shared.kube
}

// RESTConfig returns the admin REST config of the shared stack's cluster.
func RESTConfig(t testing.TB) *rest.Config {
	t.Helper()
	Shared(t)
	return rest.CopyConfig(shared.rest)
}

// TemporalClient returns a client of the shared stack's dev server.
func TemporalClient(t testing.TB) client.Client {
	t.Helper()
	s := Shared(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.temporal == nil {
		c, err := client.Dial(client.Options{HostPort: s.Temporal.Address, Namespace: s.Temporal.Namespace, Logger: quietLogger{}})
		if err != nil {
			t.Fatalf("connecting to the Temporal dev server at %s: %v", s.Temporal.Address, err)
		}
		shared.temporal = c
	}
	return shared.temporal
}

// Namespace creates a Kubernetes namespace of the test's own, waits until pods can be created in it, and
// deletes it when the test ends.
func Namespace(t testing.TB) string {
	t.Helper()
	kube := KubeClient(t)
	name := sanitize(t.Name(), 40) + "-" + randomSuffix()
	ctx := context.Background()
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = kube.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	// Pods are refused until the service-account controller has made the namespace's default account.
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := kube.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("waiting for the default service account in %s: %v", name, err)
	}
	return name
}

// TaskQueue returns a Temporal task queue name of the test's own.
func TaskQueue(t testing.TB) string {
	return "tq-" + sanitize(t.Name(), 40) + "-" + randomSuffix()
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// sanitize turns a test name into a DNS-1123 label prefix of at most n characters.
func sanitize(s string, n int) string {
	s = strings.Trim(nonName.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > n {
		s = strings.TrimRight(s[:n], "-")
	}
	if s == "" {
		s = "t"
	}
	return s
}

func randomSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
