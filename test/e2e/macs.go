//go:build e2e

package e2e

import (
	"fmt"
	"sort"
	"time"
)

// macFor gives every VM its own MAC in QEMU's 52:54:00 range, so the
// appliance sees each scenario as a different machine.
func macFor(id byte, fw firmware) string {
	f := byte(0xb1)
	if fw == uefi {
		f = 0xef
	}
	return fmt.Sprintf("52:54:00:e2:%02x:%02x", f, id)
}

// timeoutFor bounds one power-on. Measured under TCG on 2 cores: BIOS to
// installer ~10 s, UEFI ~20 s, UEFI falling through to disk slower (OVMF
// tries HTTP boot before the disk). On a machine shared with other builds
// (load average 20 on 2 cores) the same boots took 5× as long (BIOS
// installer 55-62 s, UEFI 100 s), so the bounds leave room for that; they
// cost time only when a boot fails.
func timeoutFor(fw firmware) time.Duration {
	if fw == uefi {
		return 240 * time.Second
	}
	return 150 * time.Second
}

func sortStrings(s []string) { sort.Strings(s) }
