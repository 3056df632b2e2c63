package boot

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pxe-pilot/pxe-pilot/profiles"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// BenchmarkDecide is the decision alone for a machine that reinstalls (the
// only case that resolves a profile): "seed" is the default profile from
// the seed's variables, "groups100" a file of 100 groups where the machine
// is matched by the last one, the worst case for first-match-wins.
//
//	go test -run XXX -bench Decide -count 3 ./boot/
func BenchmarkDecide(b *testing.B) {
	n := store.Node{MAC: "52:54:00:12:34:56", State: store.StateReinstall, Labels: map[string]string{"rack": "r99"},
		Facts: store.Facts{Manufacturer: "Vendor99 Inc.", Platform: "efi"}}
	cl := Client{MAC: n.MAC, IP: "203.0.113.5", Platform: "efi"}
	cfg := Config{BaseURL: "http://198.51.100.1:8000"}
	b.Run("seed", func(b *testing.B) {
		set := fullBoot.set()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if p := Decide(n, cl, set, cfg, goldenToken); !p.Install {
				b.Fatal(p.Reason)
			}
		}
	})
	b.Run("groups100", func(b *testing.B) {
		var y strings.Builder
		y.WriteString("profiles:\n  p:\n    kind: linux\n    kernel: http://198.51.100.10/{{.mac}}/vmlinuz\n    initrd: http://198.51.100.10/initrd\n    cmdline: \"ip=dhcp host={{.hostname}} ks={{.files_url}}ks.cfg\"\ngroups:\n")
		for g := 0; g < 100; g++ {
			fmt.Fprintf(&y, "  - name: g%d\n    profile: p\n    match: {manufacturer: \"Vendor%d*\", platform: efi, labels: {rack: r%d}}\n", g, g, g)
		}
		set, err := profiles.Parse("b.yaml", []byte(y.String()), fullBoot.Seed)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if p := Decide(n, cl, set, cfg, goldenToken); !strings.HasPrefix(p.Rule, "group g99 ") {
				b.Fatal(p.Rule, p.Reason)
			}
		}
	})
}
