package httpapi

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// serveT starts Serve on 127.0.0.1:0 and returns the address, the cancel
// function and Serve's result.
func serveT(t *testing.T, mutate func(*Config)) (addr string, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	e := newEnv(t, nil)
	cfg := e.cfg
	cfg.Addr = "127.0.0.1:0"
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ch <- s.Serve(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(time.Minute):
			t.Errorf("Serve did not return within a minute of its context ending")
		}
	})
	return s.Addr().String(), cancel, ch
}

// startSlowPUT sends the head of a PUT with "Expect: 100-continue" and
// waits for "100 Continue": the server sends it only when the handler first
// reads the body, so once it arrives the request is in flight, blocked on
// a body that has not been sent yet.
func startSlowPUT(t *testing.T, addr, body string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// A bound on a broken server, not a timed assertion.
	conn.SetDeadline(time.Now().Add(time.Minute))
	fmt.Fprintf(conn, "PUT /nodes/52:54:00:00:00:90/local-boot-config HTTP/1.1\r\nHost: pxe\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", len(body))
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("waiting for 100 Continue: %q, %v", line, err)
	}
	if blank, err := br.ReadString('\n'); err != nil || blank != "\r\n" {
		t.Fatalf("after 100 Continue: %q, %v", blank, err)
	}
	return conn, br
}

// waitListenerClosed dials until the listener refuses: Shutdown closes it
// before it waits for in-flight requests. Bounded in count and time.
func waitListenerClosed(t *testing.T, addr string) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s still accepts connections after the context ended", addr)
}

func TestServeFinishesInFlightRequestAndReleasesSocket(t *testing.T) {
	addr, cancel, done := serveT(t, nil)

	// The server answers at all.
	resp, err := http.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/health over the socket: %s", resp.Status)
	}

	const body = `{"script": "exit 1"}`
	conn, br := startSlowPUT(t, addr, body)
	cancel()
	waitListenerClosed(t, addr)
	select {
	case err := <-done:
		t.Fatalf("Serve returned (%v) while a request was in flight", err)
	default:
	}

	// The request finishes after the shutdown began, and is answered.
	if _, err := conn.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("in-flight request got no answer: %v", err)
	}
	defer resp.Body.Close()
	n := new(strings.Builder)
	if _, err := bufio.NewReader(resp.Body).WriteTo(n); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(n.String(), `"local_boot_script": "exit 1"`) {
		t.Fatalf("in-flight request answered %s: %s", resp.Status, n)
	}

	if err := <-done; err != nil {
		t.Fatalf("Serve = %v, want nil after a clean shutdown", err)
	}
	// The port is free again: a restarted appliance can bind it at once.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening again on %s after Serve returned: %v", addr, err)
	}
	ln.Close()
}

func TestServeGivesUpOnStuckRequest(t *testing.T) {
	addr, cancel, done := serveT(t, func(c *Config) { c.ShutdownTimeout = 200 * time.Millisecond })
	_, br := startSlowPUT(t, addr, `{"script": "exit 1"}`)
	cancel()
	// The body never comes: Serve must not wait for it forever.
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "did not finish") {
		t.Fatalf("Serve = %v, want an error saying in-flight requests did not finish", err)
	}
	// The stuck connection was closed, not left behind.
	if _, err := br.ReadByte(); err == nil {
		t.Errorf("the stuck connection is still open after Serve returned")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", addr, err)
	}
	ln.Close()
}

func TestNewPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	e := newEnv(t, nil)
	cfg := e.cfg
	cfg.Addr = ln.Addr().String()
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("New on a busy port: %v, want an error naming %s", err, ln.Addr())
	}
	cfg.Store = nil
	if _, err := New(cfg); err == nil {
		t.Fatalf("New without a store succeeded")
	}
}

func TestServeIdleReturnsNil(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.cfg
	cfg.Addr = "127.0.0.1:0"
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Handler() == nil {
		t.Fatal("Handler() is nil")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Serve(ctx); err != nil {
		t.Fatalf("Serve with an ended context = %v", err)
	}
	ln, err := net.Listen("tcp", s.Addr().String())
	if err != nil {
		t.Fatalf("socket not released: %v", err)
	}
	ln.Close()
	if _, err := e.st.Get(store.MAC("52:54:00:00:00:90")); err == nil {
		t.Errorf("unexpected node")
	}
}
