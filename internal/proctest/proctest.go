// Package proctest runs child processes for tests: their output is
// collected, and a child still running when the test ends is killed and
// reaped, so no test leaves a process behind.
package proctest

import (
	"bytes"
	"net"
	"os/exec"
	"sync"
	"testing"
)

// Buffer collects a child's output. The child writes from exec's copying
// goroutine while the test reads, hence the lock.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start starts cmd with its stdout and stderr in the returned Buffer. The
// channel receives cmd.Wait's result once. When the test ends, a child that
// has not exited is killed and reaped; exit is tracked with a channel of
// its own, so the clean-up never races with Wait over cmd.ProcessState and
// never blocks on a result the test already took.
func Start(t testing.TB, cmd *exec.Cmd) (<-chan error, *Buffer) {
	t.Helper()
	logs := &Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		done <- cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
			return
		default:
		}
		cmd.Process.Kill()
		<-exited
	})
	return done, logs
}

// FreeTCPPort returns a loopback TCP port that was free a moment ago.
func FreeTCPPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
