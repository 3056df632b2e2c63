package main

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/pxe-pilot/pxe-pilot/httpapi"
)

// FuzzLoadConfig feeds arbitrary environment values to the settings that
// end up in iPXE scripts or on sockets. loadConfig must never panic, every
// error must name a variable, and whatever it accepts must be safe where it
// goes: installer URLs and the base URL are single tokens without quotes or
// white space (iPXE splits its command line there), kernel arguments are one
// line, the port is a port.
func FuzzLoadConfig(f *testing.F) {
	f.Add("8000", "http://203.0.113.2:8000", "http://203.0.113.9/k/${mac}", "console=ttyS0", "10.0.0.0/8", "2m", "auto")
	f.Add("0", "ftp://x", "http://a b", "a\nb", "x", "-1s", "grub")
	f.Add("65536", "http://x/?q", "file:///etc/passwd", "", ",,", "0", "exit")
	f.Add("80", "https://[2001:db8::1]:8443/", "tftp://203.0.113.9/vmlinuz", "quiet ||", "2001:db8::/32", "1h", "sanboot")
	f.Fuzz(func(t *testing.T, port, base, kernel, args, proxies, window, local string) {
		env := map[string]string{
			"PORT": port, "PXE_BASE_URL": base, "PXE_UBUNTU_KERNEL_URL": kernel,
			"PXE_KERNEL_ARGS": args, "PXE_TRUSTED_PROXIES": proxies,
			"PXE_TFTP_LOOP_WINDOW": window, "PXE_LOCAL_BOOT": local,
		}
		c, err := loadConfig(nil, func(k string) string { return env[k] }, io.Discard)
		if err != nil {
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("error does not name a setting: %v", err)
			}
			return
		}
		if c.Port < 1 || c.Port > 65535 {
			t.Fatalf("accepted port %d", c.Port)
		}
		for name, u := range map[string]string{"PXE_BASE_URL": c.BaseURL, "PXE_UBUNTU_KERNEL_URL": c.Boot.KernelURL} {
			if u != "" && strings.ContainsAny(u, " \t\r\n\"'\\") {
				t.Fatalf("%s accepted with a space or quote: %q", name, u)
			}
		}
		if strings.ContainsAny(c.Boot.KernelArgs, "\r\n|&#\"'\\") {
			t.Fatalf("PXE_KERNEL_ARGS accepted with a line break or iPXE script syntax: %q", c.Boot.KernelArgs)
		}
		switch c.Boot.LocalBoot {
		case httpapi.LocalBootAuto, httpapi.LocalBootSanboot, httpapi.LocalBootExit:
		default:
			t.Fatalf("accepted PXE_LOCAL_BOOT %q", c.Boot.LocalBoot)
		}
		if c.TFTPLoopWindow < 0 {
			t.Fatalf("accepted a negative loop window %v", c.TFTPLoopWindow)
		}
	})
}
