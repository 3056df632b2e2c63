package main

import (
	"strings"
	"syscall"
	"testing"

	"github.com/pxe-pilot/pxe-pilot/internal/etcdtest"
)

// TestBinaryOnEtcd runs two real appliances with PXE_STORE=etcd://… on
// one etcd member: a reinstall set through one is served once by the
// other, and both close their store on SIGTERM. The second one also has
// PXE_STORE_SIZING set, which only Badger uses: it says so and runs.
func TestBinaryOnEtcd(t *testing.T) {
	bin := buildBinary(t)
	c := etcdtest.Start(t, 1)
	etcd := "PXE_STORE=etcd://" + strings.TrimPrefix(c.Members[0].ClientURL, "http://")
	boot := []string{etcd, "PXE_ETCD_PREFIX=/binary-test/",
		"PXE_UBUNTU_KERNEL_URL=http://203.0.113.9/vmlinuz",
		"PXE_UBUNTU_INITRD_URL=http://203.0.113.9/initrd",
		"PXE_AUTOINSTALL_URL=http://203.0.113.9/seed/"}
	a := startAppliance(t, bin, boot...)
	b := startAppliance(t, bin, append(boot[:len(boot):len(boot)], "PXE_STORE_SIZING=large")...)

	if code, body := get(t, "POST", a.url+"/nodes/52:54:00:ee:00:01/reinstall"); code != 200 {
		t.Fatalf("POST reinstall on the first appliance: %d %s", code, body)
	}
	if code, body := get(t, "GET", b.url+"/boot?mac=52:54:00:ee:00:01&platform=efi"); code != 200 || !strings.Contains(body, "\nkernel http://203.0.113.9/vmlinuz") {
		t.Fatalf("/boot on the second appliance: %d\n%s", code, body)
	}
	if code, body := get(t, "GET", a.url+"/boot?mac=52:54:00:ee:00:01&platform=efi"); code != 200 || strings.Contains(body, "\nkernel ") {
		t.Fatalf("/boot again on the first appliance must be local (one-shot): %d\n%s", code, body)
	}
	if code, body := get(t, "GET", a.url+"/health"); code != 200 {
		t.Fatalf("/health: %d %s", code, body)
	}
	for _, ap := range []*appliance{a, b} {
		if err := ap.stop(t, syscall.SIGTERM); err != nil {
			t.Fatalf("SIGTERM: %v\n%s", err, ap.logs)
		}
		if logs := ap.logs.String(); !strings.Contains(logs, "database closed") || !strings.Contains(logs, "etcd at http://127.0.0.1:") {
			t.Fatalf("no clean close of the etcd store in the log:\n%s", logs)
		}
		warned := strings.Contains(ap.logs.String(), "PXE_STORE_SIZING sizes the embedded Badger store")
		if warned != (ap == b) {
			t.Errorf("warning about PXE_STORE_SIZING with etcd: %v, want %v:\n%s", warned, ap == b, ap.logs)
		}
	}
}
