package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/internal/keyguard"
	"github.com/pxe-pilot/pxe-pilot/internal/proctest"
)

// buildBinary compiles the real pxe-pilot once per test run.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pxe-pilot-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "pxe-pilot")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// appliance is a running pxe-pilot process.
type appliance struct {
	cmd  *exec.Cmd
	url  string
	logs *proctest.Buffer
	done <-chan error
}

func startAppliance(t *testing.T, bin string, env ...string) *appliance {
	t.Helper()
	port := proctest.FreeTCPPort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), fmt.Sprintf("PORT=%d", port),
		"PXE_LISTEN_ADDR=127.0.0.1", "PXE_BASE_URL=" + url, "PXE_LOG_LEVEL=debug"}, env...)
	a := &appliance{cmd: cmd, url: url}
	a.done, a.logs = proctest.Start(t, cmd)
	// Wait for /health, bounded.
	for i := 0; i < 200; i++ {
		resp, err := http.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return a
			}
		}
		select {
		case err := <-a.done:
			t.Fatalf("appliance exited during start-up: %v\n%s", err, a.logs)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("appliance did not become healthy\n%s", a.logs)
	return nil
}

func (a *appliance) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	a.cmd.Process.Signal(sig)
	select {
	case err := <-a.done:
		return err
	case <-time.After(30 * time.Second):
		a.cmd.Process.Kill()
		t.Fatalf("appliance did not stop on %v\n%s", sig, a.logs)
	}
	return nil
}

// get sends one request, with hdr as name, value pairs.
func get(t *testing.T, method, url string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBinaryServesAndStopsCleanly runs the real binary: it serves the boot
// and admin API, its client subcommands work against it, a second instance
// on the same database refuses to start with a clear message, and SIGTERM
// stops it with exit status 0 after closing the database.
func TestBinaryServesAndStopsCleanly(t *testing.T) {
	bin := buildBinary(t)
	db := filepath.Join(t.TempDir(), "pxe.db")
	a := startAppliance(t, bin, "DATABASE_PATH="+db,
		"PXE_UBUNTU_KERNEL_URL=http://203.0.113.9/vmlinuz",
		"PXE_UBUNTU_INITRD_URL=http://203.0.113.9/initrd",
		"PXE_AUTOINSTALL_URL=http://203.0.113.9/seed/${mac_hyphen}/")

	if code, body := get(t, "GET", a.url+"/chain"); code != 200 || !strings.Contains(body, a.url+"/boot?mac=${mac}&ip=${ip}&uuid=${uuid}&platform=${platform:uristring}") {
		t.Fatalf("/chain: %d %s", code, body)
	}
	client := func(args ...string) (int, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PXE_SERVER=" + a.url}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}
	if code, out := client("reinstall", "52-54-00-AA-BB-01"); code != 0 || !strings.Contains(out, "reinstall") {
		t.Fatalf("reinstall: %d %s", code, out)
	}
	code, body := get(t, "GET", a.url+"/boot?mac=52:54:00:aa:bb:01&platform=efi")
	if code != 200 || !strings.Contains(body, "kernel http://203.0.113.9/vmlinuz initrd=initrd autoinstall ds=nocloud-net;s=http://203.0.113.9/seed/52-54-00-aa-bb-01/") {
		t.Fatalf("/boot after reinstall: %d\n%s", code, body)
	}
	if code, body := get(t, "GET", a.url+"/boot?mac=52:54:00:aa:bb:01&platform=efi"); code != 200 || !strings.Contains(body, "\nexit 1") {
		t.Fatalf("second /boot must be local (one-shot): %d\n%s", code, body)
	}
	code, out := client("nodes", "--json")
	var nodes struct {
		Nodes []struct{ MAC, State string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &nodes) != nil || len(nodes.Nodes) != 1 || nodes.Nodes[0].State != "installing" {
		t.Fatalf("nodes --json: %d %s", code, out)
	}
	if code, out := client("nodes"); code != 0 || !strings.Contains(out, "52:54:00:aa:bb:01  installing") {
		t.Fatalf("nodes table: %d %s", code, out)
	}
	if code, out := client("cancel", "not-a-mac"); code != 2 || !strings.Contains(out, `"not-a-mac"`) {
		t.Fatalf("bad MAC: %d %s", code, out)
	}
	if code, out := client("health"); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("health: %d %s", code, out)
	}
	// Without PXE_SERVER the client finds the appliance from the same
	// environment the appliance has (the Docker HEALTHCHECK case).
	hc := exec.Command(bin, "health")
	hc.Env = []string{"PORT=" + strings.TrimPrefix(a.url, "http://127.0.0.1:"), "PXE_LISTEN_ADDR=127.0.0.1"}
	if out, err := hc.CombinedOutput(); err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("health from the appliance's own environment: %v %s", err, out)
	}

	// A second appliance on the same database directory.
	second := exec.Command(bin, "serve", "--port", fmt.Sprint(proctest.FreeTCPPort(t)), "--database-path", db, "--base-url", "http://127.0.0.1:1")
	out2, err := second.CombinedOutput()
	if err == nil || !strings.Contains(string(out2), "database at "+db+" is in use by another process") || strings.Contains(string(out2), "goroutine ") {
		t.Fatalf("second instance: err=%v\n%s", err, out2)
	}

	if err := a.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: exit %v\n%s", err, a.logs)
	}
	if !strings.Contains(a.logs.String(), "database closed") {
		t.Fatalf("no clean database close in the log:\n%s", a.logs)
	}
	// The stopped appliance is unhealthy to the client.
	if code, _ := client("health", "--timeout", "2s"); code == 0 {
		t.Fatal("health against a stopped appliance exited 0")
	}
	// And the reinstall history survived the restart.
	a2 := startAppliance(t, bin, "DATABASE_PATH="+db)
	if code, out := client("events", "52:54:00:aa:bb:01", "--server", a2.url); code != 0 || !strings.Contains(out, "reinstall") || !strings.Contains(out, "local") {
		t.Fatalf("events after restart: %d %s", code, out)
	}
	if err := a2.stop(t, syscall.SIGINT); err != nil {
		t.Fatalf("SIGINT: exit %v", err)
	}
}

func TestBinaryRejectsBadConfig(t *testing.T) {
	bin := buildBinary(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{"PORT=eighty", "PXE_LOCAL_BOOT=grub", "DATABASE_PATH=" + filepath.Join(t.TempDir(), "db")}
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Fatalf("want exit 2, got %v\n%s", err, out)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	s := string(out)
	if !strings.Contains(s, `PORT (--port) = "eighty"`) || !strings.Contains(s, `PXE_LOCAL_BOOT (--local-boot) = "grub"`) || len(lines) != 3 {
		t.Fatalf("config errors not reported one per line:\n%s", out)
	}
}

// TestBinaryLimitsKeyGuessing: the appliance as started holds a guesser of
// ADMIN_API_KEY to its tries, on the API and the console's sign-in, which
// share one count per address.
func TestBinaryLimitsKeyGuessing(t *testing.T) {
	bin := buildBinary(t)
	a := startAppliance(t, bin, "DATABASE_PATH="+filepath.Join(t.TempDir(), "db"), "ADMIN_API_KEY=the-key")
	try := func(key string) (int, string) { return get(t, "GET", a.url+"/nodes", "Authorization", "Bearer "+key) }
	if code, body := try("the-key"); code != http.StatusOK {
		t.Fatalf("the right key: %d %s", code, body)
	}
	for i := 0; i < keyguard.DefaultTries; i++ {
		if code, _ := try("guess"); code != http.StatusUnauthorized {
			t.Fatalf("wrong key %d: %d, want 401", i+1, code)
		}
	}
	if code, body := try("the-key"); code != http.StatusTooManyRequests || !strings.Contains(body, "too many wrong API keys from 127.0.0.1") {
		t.Fatalf("the right key after %d wrong ones: %d %s; want 429", keyguard.DefaultTries, code, body)
	}
	// The console's sign-in counts the same tries.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(a.url + "/ui/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, rest, _ := strings.Cut(string(page), `name="csrf" value="`)
	csrf, _, _ := strings.Cut(rest, `"`)
	resp, err = c.PostForm(a.url+"/ui/login", url.Values{"csrf": {csrf}, "key": {"the-key"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || csrf == "" {
		t.Fatalf("console sign-in after the API's wrong keys: %d (csrf %q); want 429", resp.StatusCode, csrf)
	}
}

// TestBinarySurvivesSIGHUP: SIGHUP asks for a profiles reload, whenever it
// comes. It used to be caught only while the reloader ran: one during
// start-up or during a graceful shutdown ended the process at once, the
// database unclosed, and systemd, taking SIGHUP for a clean exit, did not
// restart it. Start-up is held here by a profiles file that is a FIFO
// (read at start-up, it blocks until written): SIGHUPs sent then must
// not end it; then the appliance starts, and SIGTERM followed by SIGHUPs still ends it with status 0
// after closing the store.
func TestBinarySurvivesSIGHUP(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "profiles.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	port := proctest.FreeTCPPort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), fmt.Sprintf("PORT=%d", port), "PXE_LISTEN_ADDR=127.0.0.1",
		"PXE_BASE_URL=" + url, "DATABASE_PATH=" + filepath.Join(dir, "db"), "PXE_PROFILES_FILE=" + fifo}
	done, logs := proctest.Start(t, cmd)
	// The appliance is starting, blocked reading its profiles file, once
	// a writer can open the FIFO without waiting (ENXIO until a reader
	// has it open).
	var w *os.File
	for i := 0; w == nil; i++ { // bounded: 10 s
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w = f
			break
		}
		if i == 500 {
			t.Fatalf("the appliance did not read its profiles file within 10 s\n%s", logs)
		}
		select {
		case err := <-done:
			t.Fatalf("the appliance ended while starting: %v\n%s", err, logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
	for i := 0; i < 3; i++ {
		cmd.Process.Signal(syscall.SIGHUP)
	}
	select {
	case err := <-done:
		w.Close()
		t.Fatalf("the appliance ended on a SIGHUP during start-up: %v\n%s", err, logs)
	case <-time.After(200 * time.Millisecond):
	}
	// Later reloads (the SIGHUPs above asked for one) read a plain file:
	// the appliance holds the FIFO open already.
	plain := filepath.Join(dir, "plain.yaml")
	if err := os.WriteFile(plain, []byte("profiles: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(plain, fifo); err != nil {
		t.Fatal(err)
	}
	w.WriteString("profiles: {}\n")
	w.Close()
	healthy := false
	for i := 0; i < 200 && !healthy; i++ { // bounded: 10 s
		select {
		case err := <-done:
			t.Fatalf("the appliance ended while starting: %v\n%s", err, logs)
		case <-time.After(50 * time.Millisecond):
		}
		if resp, err := http.Get(url + "/health"); err == nil {
			resp.Body.Close()
			healthy = resp.StatusCode == 200
		}
	}
	if !healthy {
		t.Fatalf("not healthy 10 s after its profiles file was written\n%s", logs)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	for i := 0; i < 5; i++ {
		cmd.Process.Signal(syscall.SIGHUP)
	}
	select {
	case err := <-done:
		if err != nil || !strings.Contains(logs.String(), "database closed") {
			t.Fatalf("SIGTERM then SIGHUP: %v, want exit 0 after the database closed\n%s", err, logs)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("did not stop on SIGTERM\n%s", logs)
	}
}
