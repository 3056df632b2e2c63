//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a daemon the harness started (dnsmasq, tcpdump, QEMU, pxe-pilot).
// Its output goes to a log file kept as an artefact. It is always stopped by
// its own PID and reaped by Wait, so no zombie or stray process is left; a
// parent-death signal takes it down too if the test binary itself dies.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{}
	waitErr error
	mu      sync.Mutex
}

// startIn starts argv inside a namespace (ns == "" means the test's own).
// `ip netns exec` execs the command, so the PID is the daemon's own.
func startIn(ns, name, logPath string, env []string, argv ...string) (*proc, error) {
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, argv[0], err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, logFile: f, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitErr is the result of Wait once the process has exited.
func (p *proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// stop sends sig, waits up to grace, then SIGKILLs. It returns the exit
// error and whether the process went away on the polite signal.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) (error, bool) {
	if p.exited() {
		return p.exitErr(), true
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return p.exitErr(), true
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return p.exitErr(), false
}

func (p *proc) kill() { p.stop(syscall.SIGKILL, 5*time.Second) }

// log returns the process's output so far.
func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// waitLog polls the log until it contains s, the process exits, or the
// deadline passes.
func (p *proc) waitLog(s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(p.log(), s) {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited (%v) before logging %q:\n%s", p.name, p.exitErr(), s, tail(p.log(), 20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not log %q within %s:\n%s", p.name, s, timeout, tail(p.log(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// run runs a command to completion and returns its combined output.
func run(argv ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, tail(out.String(), 10))
	}
	return out.String(), nil
}
