package httpapi

import (
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden iPXE scripts in testdata/golden from the current output")

// goldenMAC is the machine of every golden script; the reinstall scripts
// show it substituted in colon (${mac}) and hyphen (${mac_hyphen}) form, and
// the address it reports substituted for ${ip}.
const (
	goldenMAC = "52:54:00:12:34:56"
	goldenIP  = "198.51.100.21"
)

// TestGoldenScripts pins every script a machine can receive, byte for byte.
// The scripts are what firmware runs; a change in them is a change in how
// machines boot, so it must show up in review as a diff of these files.
// Refresh with: go test ./httpapi -run TestGoldenScripts -update
func TestGoldenScripts(t *testing.T) {
	fixed := func() time.Time { return t0 }
	misconfigured := BootConfig{KernelArgs: fullBoot.KernelArgs, LocalBoot: LocalBootAuto}
	for _, tc := range []struct {
		file      string
		boot      BootConfig
		reinstall bool
		target    string
		code      int
	}{
		{"chain.ipxe", fullBoot, false, "/chain", http.StatusOK},
		{"bios-reinstall.ipxe", fullBoot, true, "/boot?mac=" + goldenMAC + "&ip=" + goldenIP + "&platform=pcbios&buildarch=i386", http.StatusOK},
		{"uefi-reinstall.ipxe", fullBoot, true, "/boot?mac=" + goldenMAC + "&ip=" + goldenIP + "&platform=efi&buildarch=x86_64", http.StatusOK},
		{"bios-local.ipxe", fullBoot, false, "/boot?mac=" + goldenMAC + "&ip=" + goldenIP + "&platform=pcbios&buildarch=i386", http.StatusOK},
		{"uefi-local.ipxe", fullBoot, false, "/boot?mac=" + goldenMAC + "&ip=" + goldenIP + "&platform=efi&buildarch=x86_64", http.StatusOK},
		{"bios-misconfigured.ipxe", misconfigured, true, "/boot?mac=" + goldenMAC + "&ip=" + goldenIP + "&platform=pcbios&buildarch=i386", http.StatusOK},
		{"uefi-misconfigured.ipxe", misconfigured, true, "/boot?mac=" + goldenMAC + "&ip=" + goldenIP + "&platform=efi&buildarch=x86_64", http.StatusOK},
		{"bios-badmac.ipxe", fullBoot, false, "/boot?mac=52:54:00:12:34&ip=" + goldenIP + "&platform=pcbios&buildarch=i386", http.StatusBadRequest},
		{"uefi-badmac.ipxe", fullBoot, false, "/boot?mac=52:54:00:12:34&ip=" + goldenIP + "&platform=efi&buildarch=x86_64", http.StatusBadRequest},
	} {
		t.Run(tc.file, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Boot = tc.boot; c.Now = fixed })
			if tc.reinstall {
				wantCode(t, e.do("POST", "/nodes/"+goldenMAC+"/reinstall", ""), http.StatusOK)
			}
			got := wantScript(t, e.do("GET", tc.target, ""), tc.code)
			path := filepath.Join("testdata", "golden", tc.file)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (create it with -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the golden file (rerun with -update if the change is intended)\n--- got\n%s--- want\n%s", tc.file, got, want)
			}
		})
	}
}
