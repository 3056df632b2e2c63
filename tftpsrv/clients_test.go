package tftpsrv

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/assets"
)

// Debian's own TFTP clients as independent peers: they share no code with
// pin/tftp, so a protocol slip on either side shows up here.

func needTool(t *testing.T, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("%s not found (%v): apt-get install %s", bin, err, pkg)
	}
	return p
}

// runTool runs a client with a bound on its life (a hung client is a test
// failure, not a hung test suite).
func runTool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestTFTPHPAClient(t *testing.T) {
	tftp := needTool(t, "tftp", "tftp-hpa")
	e := startServer(t, time.Nanosecond)
	host, port, _ := net.SplitHostPort(e.addr)
	dir := t.TempDir()
	for _, name := range append(allNames, "/"+assets.UndionlyKPXE) {
		t.Run(name, func(t *testing.T) {
			local := filepath.Join(dir, strings.TrimPrefix(name, "/"))
			os.Remove(local)
			// tftp-hpa's client speaks plain RFC 1350: 512-byte blocks,
			// no options.
			out, err := runTool(t, tftp, "-v", "-m", "binary", host, port, "-c", "get", name, local)
			if err != nil || !strings.Contains(out, "Received") {
				t.Fatalf("tftp get %s: %v\n%s", name, err, out)
			}
			got, err := os.ReadFile(local)
			if err != nil {
				t.Fatal(err)
			}
			if want := e.want(t, strings.TrimPrefix(name, "/")); sum(got) != sum(want) {
				t.Fatalf("%s: sha256 %s, want %s", name, sum(got), sum(want))
			}
		})
	}
	for name, want := range map[string]string{
		"../etc/passwd": "Error code 2: access violation",
		"/etc/passwd":   "Error code 2: access violation",
		"pxelinux.0":    "Error code 1: file not found",
	} {
		out, _ := runTool(t, tftp, "-v", "-m", "binary", host, port, "-c", "get", name, filepath.Join(dir, "x"))
		if !strings.Contains(out, want) {
			t.Errorf("tftp get %s:\n%s\nwant %q", name, out, want)
		}
	}
	src := filepath.Join(dir, "upload")
	os.WriteFile(src, []byte("hello"), 0o644)
	out, _ := runTool(t, tftp, "-v", "-m", "binary", host, port, "-c", "put", src, "upload")
	if !strings.Contains(out, "Error code 2: access violation: PXE Pilot's TFTP server is read-only") {
		t.Errorf("tftp put:\n%s", out)
	}
}

var oackRE = regexp.MustCompile(`received OACK <([^>]*)>`)

func TestAtftpClient(t *testing.T) {
	atftp := needTool(t, "atftp", "atftp")
	e := startServer(t, time.Nanosecond)
	host, port, _ := net.SplitHostPort(e.addr)
	dir := t.TempDir()
	for _, name := range allNames {
		for _, bs := range []int{512, 1468} {
			t.Run(fmt.Sprintf("%s/blksize=%d", name, bs), func(t *testing.T) {
				local := filepath.Join(dir, fmt.Sprintf("%s.%d", name, bs))
				out, err := runTool(t, atftp, "--trace", "-g", "-r", name, "-l", local,
					"--option", fmt.Sprintf("blksize %d", bs), "--option", "tsize 0", host, port)
				if err != nil {
					t.Fatalf("atftp get %s: %v\n%s", name, err, out)
				}
				want := e.want(t, name)
				// The OACK on the wire must grant the block size asked
				// for and carry the true size.
				m := oackRE.FindStringSubmatch(out)
				if m == nil || !strings.Contains(m[1], fmt.Sprintf("blksize: %d", bs)) || !strings.Contains(m[1], fmt.Sprintf("tsize: %d", len(want))) {
					t.Fatalf("OACK not as expected:\n%s", out)
				}
				got, err := os.ReadFile(local)
				if err != nil {
					t.Fatal(err)
				}
				if sum(got) != sum(want) {
					t.Fatalf("%s: sha256 %s, want %s", name, sum(got), sum(want))
				}
			})
		}
	}
	for name, want := range map[string]string{
		"../etc/passwd":            "<access violation",
		"/etc/passwd":              "<access violation",
		"undionly.kpxe/../../boot": "<access violation",
		"nothing-here.efi":         "<file not found",
	} {
		out, err := runTool(t, atftp, "--trace", "-g", "-r", name, "-l", filepath.Join(dir, "x"), host, port)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("atftp get %.40s: err %v\n%s\nwant %q", name, err, out, want)
		}
	}
	out, err := runTool(t, atftp, "-p", "-r", "up", "-l", filepath.Join(dir, assets.ScriptBoot+".512"), host, port)
	if err == nil || !strings.Contains(out, "read-only") {
		t.Errorf("atftp put: err %v\n%s", err, out)
	}
}

// TestOACKOnTheWire checks option negotiation byte by byte, without any
// client library's interpretation in between.
func TestOACKOnTheWire(t *testing.T) {
	e := startServer(t, 0)
	want := e.want(t, assets.UndionlyKPXE)
	r, c, tid := rawConversation(t, e.addr, rq(opRRQ, assets.UndionlyKPXE, "octet", "blksize", "1468", "tsize", "0", "windowsize", "8"))
	if binary.BigEndian.Uint16(r) != opOACK {
		t.Fatalf("reply %q is not an OACK", r)
	}
	fields := strings.Split(strings.TrimSuffix(string(r[2:]), "\x00"), "\x00")
	got := map[string]string{}
	for i := 0; i+1 < len(fields); i += 2 {
		got[fields[i]] = fields[i+1]
	}
	if got["blksize"] != "1468" || got["tsize"] != fmt.Sprint(len(want)) || len(got) != 2 {
		t.Fatalf("OACK %q: want blksize 1468, tsize %d and no windowsize", got, len(want))
	}
	// Ending the transfer right after the OACK is what PXE ROMs do to
	// learn the size: a failed transfer, logged as routine.
	c.WriteTo(errorPacket(ErrNotDefined, "TFTP Aborted"), tid)
	waitFor(t, "the probe to be counted", func() bool {
		return value(t, e.m.TFTPTransfers.WithLabelValues(assets.UndionlyKPXE, "failed")) == 1
	})
	if !strings.Contains(e.logText(), `level=INFO msg="TFTP transfer ended by the client after option negotiation (firmware size probe)"`) {
		t.Errorf("size probe not logged as such:\n%s", e.logText())
	}
}
