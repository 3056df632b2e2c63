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
// tries HTTP boot before the disk). With other engineers' builds and VMs on
// the same 2 cores (load average 15-20) BIOS installer boots took 40-72 s
// and one passed 90 s, so the bounds are twice what they were: a boot that
// works still ends at its marker, only a failure waits longer.
func timeoutFor(fw firmware) time.Duration {
	if fw == uefi {
		return 300 * time.Second
	}
	return 180 * time.Second
}

func sortStrings(s []string) { sort.Strings(s) }
