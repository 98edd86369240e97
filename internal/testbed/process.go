package testbed

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// startDetached starts a long-running server in a process group of its own, so that it outlives the command
// that started it (make dev-up) and can be stopped as a group. Its output goes to <dir>/logs/<name>.log and
// its group ID to <dir>/pids/<name>.
func startDetached(dir, name string, env []string, bin string, args ...string) (*exec.Cmd, error) {
	logs := filepath.Join(dir, "logs")
	pids := filepath.Join(dir, "pids")
	for _, d := range []string{logs, pids} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	logFile, err := os.OpenFile(filepath.Join(logs, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	if err := os.WriteFile(filepath.Join(pids, name), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return nil, err
	}
	// Reap the child when it exits so it does not linger as a zombie while we run.
	go func() { _ = cmd.Wait() }()
	return cmd, nil
}

// stopProcessGroups sends SIGTERM to every process group recorded under <dir>/pids, waits for them to exit,
// and kills what is left after the grace period.
func stopProcessGroups(dir string, grace time.Duration) error {
	entries, err := os.ReadDir(filepath.Join(dir, "pids"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var pgids []int
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, "pids", e.Name()))
		if err != nil {
			continue
		}
		pgid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pgid <= 1 {
			continue
		}
		if syscall.Kill(-pgid, syscall.SIGTERM) == nil {
			pgids = append(pgids, pgid)
		}
		_ = os.Remove(filepath.Join(dir, "pids", e.Name()))
	}
	deadline := time.Now().Add(grace)
	for _, pgid := range pgids {
		for groupAlive(pgid) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if groupAlive(pgid) {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}
	return nil
}

func groupAlive(pgid int) bool {
	return syscall.Kill(-pgid, 0) == nil
}

// freePort asks the kernel for a free TCP port on loopback.
func freePort() (int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 500 {
		p := minStackPort + rand.IntN(maxStackPort-minStackPort)
		if handedOut.ports[p] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		_ = l.Close()
		handedOut.ports[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("no free port between %d and %d", minStackPort, maxStackPort)
}

// Stack ports come from below Linux's ephemeral range (32768-60999): a port from that range that is free
// when checked can become the source port of any outgoing connection before the component binds it (seen:
// etcd's peer port and the controller-manager's, with a second stack busy beside them).
const (
	minStackPort = 20000
	maxStackPort = 32000
)

// handedOut remembers the ports this process chose, so that two choices never coincide.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// portOrFree returns p when it is set, else a free port.
func portOrFree(p int) (int, error) {
	if p != 0 {
		return p, nil
	}
	return freePort()
}

// checkPortFree fails with a clear message when something already listens on a fixed port.
func checkPortFree(what string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("%s port %d is taken (is another stack running? `make dev-down` stops the dev stack): %w", what, port, err)
	}
	return l.Close()
}

// waitHTTP polls url until it answers 200 or the context ends; the log file is named in the error.
func waitHTTP(ctx context.Context, url, logFile string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		resp, err := client.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %v (last error: %v); see %s", url, ctx.Err(), last, logFile)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
