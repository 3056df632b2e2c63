package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/httpapi"
)

// setting is one configuration value: an environment variable and the flag
// that overrides it.
type setting struct {
	env, flag, def, help string
}

// settings is every configuration value the appliance reads. The README's
// configuration table and the compose example list exactly these (a test in
// deploy/ checks it).
var settings = []setting{
	{"PORT", "port", "8000", "TCP port of the HTTP API"},
	{"PXE_LISTEN_ADDR", "listen-addr", "", "IP address the HTTP API binds to (empty: all)"},
	{"PXE_BASE_URL", "base-url", "", "URL machines use to reach the HTTP API (empty: derived from the host's address and PORT)"},
	{"PXE_UBUNTU_KERNEL_URL", "kernel-url", "", "installer kernel URL (${mac}, ${mac_hyphen}, ${ip} are substituted)"},
	{"PXE_UBUNTU_INITRD_URL", "initrd-url", "", "installer initrd URL (same substitutions)"},
	{"PXE_AUTOINSTALL_URL", "autoinstall-url", "", "autoinstall (cloud-init nocloud) seed URL (same substitutions)"},
	{"PXE_KERNEL_ARGS", "kernel-args", "", "extra installer kernel command line, e.g. console=ttyS0"},
	{"PXE_PROFILES_FILE", "profiles-file", "", "YAML file of boot profiles and groups (reloaded on SIGHUP; empty: only the default profile from PXE_UBUNTU_*)"},
	{"PXE_INSTALL_TIMEOUT", "install-timeout", "2h", "an install with no word from its installer for this long becomes failed (stalled); 0: never"},
	{"DATABASE_PATH", "database-path", "pxe.db", "Badger database directory"},
	{"PXE_STORE", "store", "badger", "node store: badger (embedded, at DATABASE_PATH) or etcd://host1:2379,host2:2379,... (shared by several appliances)"},
	{"PXE_STORE_SIZING", "store-sizing", "small", "Badger's memtable and table sizes: small (the least memory: 10,000 nodes in about 45 MiB) or large (23-68 % more boots a second in a storm in the rounds measured, about 1.5 times the memory)"},
	{"PXE_ETCD_PREFIX", "etcd-prefix", "/pxe-pilot/", "key prefix in etcd; appliances that share nodes use the same one"},
	{"PXE_ETCD_TIMEOUT", "etcd-timeout", "2s", "bound of every etcd call; a boot that cannot commit within it falls through to the local disk"},
	{"PXE_ETCD_CA", "etcd-ca", "", "CA certificate (PEM file) of the etcd members; turns TLS on"},
	{"PXE_ETCD_CERT", "etcd-cert", "", "client certificate (PEM file) for etcd, with PXE_ETCD_KEY; turns TLS on"},
	{"PXE_ETCD_KEY", "etcd-key", "", "client key (PEM file) for etcd"},
	{"PXE_ETCD_USERNAME", "etcd-username", "", "etcd user, when etcd authentication is on"},
	{"PXE_ETCD_PASSWORD", "etcd-password", "", "password of PXE_ETCD_USERNAME"},
	{"ADMIN_API_KEY", "admin-api-key", "", "bearer token required by /nodes (empty: admin API open)"},
	{"PXE_LOG_FORMAT", "log-format", "text", "log format: text or json"},
	{"PXE_LOG_LEVEL", "log-level", "info", "log level: debug, info, warn or error"},
	{"PXE_LOCAL_BOOT", "local-boot", "auto", "how machines boot their disk: auto, sanboot or exit"},
	{"PXE_TRUSTED_PROXIES", "trusted-proxies", "", "comma-separated IPs/CIDRs allowed to set X-Forwarded-For"},
	{"PXE_BOOT_HISTORY", "boot-history", "20", "boot events kept per node"},
	{"PXE_MEMORY_LIMIT", "memory-limit", "16MiB", "soft limit of the Go runtime's memory, plus 256 bytes per node, never less than the live heap plus a half (GOMEMLIMIT, which wins when set), with the garbage collector's pace at GOGC=25 (GOGC, when set, wins): the collector runs sooner instead of letting Badger's flush and compaction peaks double the process; 0: no limit and the Go default pace (twice the live heap)"},
	{"PXE_NODE_RETENTION", "node-retention", "0", "forget nodes that only ever booted local (no admin state, never installed) and were not seen for this long, e.g. 90d or 2160h; 0: keep every node"},
	{"PXE_SHUTDOWN_TIMEOUT", "shutdown-timeout", "10s", "how long shutdown waits for in-flight requests and TFTP transfers"},
	{"PXE_TFTP_ENABLED", "tftp", "false", "serve iPXE and boot.ipxe over TFTP (1/true/yes)"},
	{"PXE_TFTP_ADDR", "tftp-addr", ":69", "TFTP listen address"},
	{"PXE_TFTP_LOOP_WINDOW", "tftp-loop-window", "2m", "router-only mode: how long after loading iPXE a client's next request gets the chain script (0: off; always off with ProxyDHCP)"},
	{"PXE_IPXE_DIR", "ipxe-dir", "", "folder with your own iPXE builds (searched before the embedded and Debian ones)"},
	{"PXE_IPXE_ARM64_EFI", "ipxe-arm64-efi", "", "path of an arm64 UEFI iPXE build"},
	{"PXE_EFI_BINARY", "efi-binary", "ipxe.efi", "iPXE for x86_64 UEFI: ipxe.efi or snponly.efi"},
	{"PXE_UEFI_LOADER", "uefi-loader", "ipxe", "what UEFI x86_64 machines load: ipxe, or shim (Microsoft-signed shim + Debian-signed GRUB, for Secure Boot); a profile's loader field overrides it per node or group"},
	{"PXE_SIGNED_DIR", "signed-dir", "", "folder with your own shimx64.efi and grubx64.efi (searched before the embedded and Debian ones)"},
	{"PXE_DHCP_PROXY_ENABLED", "dhcp-proxy", "false", "answer PXE clients as a ProxyDHCP server (1/true/yes)"},
	{"PXE_DHCP_INTERFACE", "dhcp-interface", "", "interface for ProxyDHCP (empty: the one with the default route)"},
	{"PXE_DHCP_ONLY_KNOWN", "dhcp-only-known", "false", "ProxyDHCP answers only MACs already in the store"},
}

// config is the validated configuration.
type config struct {
	Port            int
	ListenAddr      string
	BaseURL         string
	BaseURLDerived  bool
	Boot            httpapi.BootConfig
	ProfilesFile    string
	InstallTimeout  time.Duration
	DatabasePath    string
	Store           storeConfig
	AdminKey        string
	LogFormat       string
	LogLevel        string
	TrustedProxies  []netip.Prefix
	BootHistory     int
	NodeRetention   time.Duration
	MemoryLimit     int64
	ShutdownTimeout time.Duration
	TFTPEnabled     bool
	TFTPAddr        string
	TFTPLoopWindow  time.Duration
	IPXEDir         string
	IPXEARM64       string
	EFIBinary       string
	UEFILoader      string
	SignedDir       string
	DHCPEnabled     bool
	DHCPInterface   string
	DHCPOnlyKnown   bool
}

// configError is a setting with a bad value; its message names the
// variable, the flag, the value and the fix.
type configError struct {
	s          setting
	val, issue string
}

func (e *configError) Error() string {
	return fmt.Sprintf("%s (--%s) = %q: %s", e.s.env, e.s.flag, e.val, e.issue)
}

// loadConfig reads settings from the environment, then from flags in args.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("pxe-pilot serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vals := make(map[string]*settingFlag, len(settings))
	for _, s := range settings {
		v := &settingFlag{isBool: s.def == "false"}
		vals[s.env] = v
		fs.Var(v, s.flag, fmt.Sprintf("%s (env %s, default %q)", s.help, s.env, s.def))
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pxe-pilot [serve] [flags]\n\nEvery flag can also be set by its environment variable; the flag wins.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q (see pxe-pilot serve -h)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	raw := make(map[string]string, len(settings))
	byEnv := make(map[string]setting, len(settings))
	for _, s := range settings {
		byEnv[s.env] = s
		switch {
		case set[s.flag]:
			raw[s.env] = vals[s.env].val
		case getenv(s.env) != "":
			raw[s.env] = getenv(s.env)
		default:
			raw[s.env] = s.def
		}
	}
	var errs []error
	bad := func(env, issue string) { errs = append(errs, &configError{byEnv[env], raw[env], issue}) }

	var c config
	c.Port = parseInt(raw, "PORT", 1, 65535, bad)
	c.ListenAddr = raw["PXE_LISTEN_ADDR"]
	if c.ListenAddr != "" {
		if _, err := netip.ParseAddr(c.ListenAddr); err != nil {
			bad("PXE_LISTEN_ADDR", "not an IP address; use e.g. 203.0.113.10, or leave it empty for all interfaces")
		}
	}
	c.BaseURL = strings.TrimRight(raw["PXE_BASE_URL"], "/")
	if c.BaseURL != "" {
		if msg := checkURL(c.BaseURL, "http", "https"); msg != "" {
			bad("PXE_BASE_URL", msg+"; use e.g. http://203.0.113.10:8000")
		} else if u, _ := url.Parse(c.BaseURL); u.RawQuery != "" || u.Fragment != "" {
			bad("PXE_BASE_URL", "must not have a query or fragment")
		}
	}
	for env, dst := range map[string]*string{
		"PXE_UBUNTU_KERNEL_URL": &c.Boot.KernelURL,
		"PXE_UBUNTU_INITRD_URL": &c.Boot.InitrdURL,
		"PXE_AUTOINSTALL_URL":   &c.Boot.AutoinstallURL,
	} {
		*dst = raw[env]
		if *dst != "" {
			if msg := checkURL(*dst, "http", "https", "tftp", "ftp"); msg != "" {
				bad(env, msg)
			}
		}
	}
	c.Boot.KernelArgs = strings.TrimSpace(raw["PXE_KERNEL_ARGS"])
	switch {
	case strings.ContainsFunc(c.Boot.KernelArgs, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		bad("PXE_KERNEL_ARGS", "must be one line of printable characters")
	case strings.ContainsAny(c.Boot.KernelArgs, "|&\"'\\#"):
		// These go on iPXE's "kernel" line, where "||", "&&", "#", quotes
		// and backslashes are script syntax, not kernel arguments.
		bad("PXE_KERNEL_ARGS", "must not contain | & # quotes or backslashes: iPXE would read them as script syntax")
	}
	c.Boot.LocalBoot = httpapi.LocalBoot(raw["PXE_LOCAL_BOOT"])
	switch c.Boot.LocalBoot {
	case httpapi.LocalBootAuto, httpapi.LocalBootSanboot, httpapi.LocalBootExit:
	default:
		bad("PXE_LOCAL_BOOT", "must be auto, sanboot or exit")
	}
	c.ProfilesFile = raw["PXE_PROFILES_FILE"]
	if raw["PXE_INSTALL_TIMEOUT"] != "0" { // 0 turns the stall rule off
		c.InstallTimeout = parseDuration(raw, "PXE_INSTALL_TIMEOUT", bad)
	}
	c.DatabasePath = raw["DATABASE_PATH"]
	if c.DatabasePath == "" {
		bad("DATABASE_PATH", "must name a directory")
	}
	c.Store = parseStore(raw, bad)
	c.AdminKey = raw["ADMIN_API_KEY"]
	c.LogFormat = raw["PXE_LOG_FORMAT"]
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("PXE_LOG_FORMAT", "must be text or json")
	}
	c.LogLevel = raw["PXE_LOG_LEVEL"]
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("PXE_LOG_LEVEL", "must be debug, info, warn or error")
	}
	for _, p := range strings.Split(raw["PXE_TRUSTED_PROXIES"], ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		pre, err := netip.ParsePrefix(p)
		if err != nil {
			a, aerr := netip.ParseAddr(p)
			if aerr != nil {
				bad("PXE_TRUSTED_PROXIES", fmt.Sprintf("%q is neither an IP address nor a CIDR prefix", p))
				continue
			}
			pre = netip.PrefixFrom(a, a.BitLen())
		}
		c.TrustedProxies = append(c.TrustedProxies, pre.Masked())
	}
	c.BootHistory = parseInt(raw, "PXE_BOOT_HISTORY", 1, 10000, bad)
	c.MemoryLimit = parseSize(raw, "PXE_MEMORY_LIMIT", bad)
	if raw["PXE_NODE_RETENTION"] != "0" { // 0 keeps every node
		c.NodeRetention = parseRetention(raw, "PXE_NODE_RETENTION", bad)
	}
	c.ShutdownTimeout = parseDuration(raw, "PXE_SHUTDOWN_TIMEOUT", bad)
	c.TFTPEnabled = parseBool(raw, "PXE_TFTP_ENABLED", bad)
	c.TFTPAddr = raw["PXE_TFTP_ADDR"]
	if _, port, err := net.SplitHostPort(c.TFTPAddr); err != nil || !fixedPort(port) {
		bad("PXE_TFTP_ADDR", "must be host:port with a port from 1 to 65535 (firmware asks on 69), e.g. :69 or 203.0.113.10:69")
	}
	if raw["PXE_TFTP_LOOP_WINDOW"] != "0" { // 0 turns the loop breaker off
		c.TFTPLoopWindow = parseDuration(raw, "PXE_TFTP_LOOP_WINDOW", bad)
	}
	c.IPXEDir = raw["PXE_IPXE_DIR"]
	c.IPXEARM64 = raw["PXE_IPXE_ARM64_EFI"]
	c.EFIBinary = raw["PXE_EFI_BINARY"]
	if c.EFIBinary != assets.IPXEEFI && c.EFIBinary != assets.SNPOnlyEFI {
		bad("PXE_EFI_BINARY", "must be ipxe.efi or snponly.efi")
	}
	c.UEFILoader = raw["PXE_UEFI_LOADER"]
	if c.UEFILoader != "ipxe" && c.UEFILoader != "shim" {
		bad("PXE_UEFI_LOADER", "must be ipxe or shim")
	}
	c.SignedDir = raw["PXE_SIGNED_DIR"]
	c.DHCPEnabled = parseBool(raw, "PXE_DHCP_PROXY_ENABLED", bad)
	c.DHCPInterface = raw["PXE_DHCP_INTERFACE"]
	c.DHCPOnlyKnown = parseBool(raw, "PXE_DHCP_ONLY_KNOWN", bad)
	return c, errors.Join(errs...)
}

// settingFlag holds a flag's text; boolean settings may be given bare
// (--tftp), as the flag package allows for IsBoolFlag values.
type settingFlag struct {
	val    string
	isBool bool
}

func (f *settingFlag) String() string     { return f.val }
func (f *settingFlag) Set(v string) error { f.val = v; return nil }
func (f *settingFlag) IsBoolFlag() bool   { return f.isBool }

// checkURL returns what is wrong with an URL that iPXE will fetch, or "".
// iPXE splits its command line at white space and expands ${…}, so the URL
// must be one token; ${…} is allowed on purpose.
func checkURL(raw string, schemes ...string) string {
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '"' || r == '\'' || r == '\\' }) {
		return "must not contain spaces, quotes, backslashes or control characters"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "is not a valid URL"
	}
	for _, s := range schemes {
		if u.Scheme == s {
			if u.Host == "" {
				return "has no host"
			}
			return ""
		}
	}
	return "must be an absolute URL starting with " + strings.Join(schemes, ":// or ") + "://"
}

func parseInt(raw map[string]string, env string, lo, hi int, bad func(string, string)) int {
	n, err := strconv.Atoi(raw[env])
	if err != nil || n < lo || n > hi {
		bad(env, fmt.Sprintf("must be a whole number from %d to %d", lo, hi))
	}
	return n
}

func parseDuration(raw map[string]string, env string, bad func(string, string)) time.Duration {
	d, err := time.ParseDuration(raw[env])
	if err != nil || d <= 0 {
		bad(env, "must be a positive duration such as 30s or 2m")
	}
	return d
}

// parseRetention reads a duration that may also be given in whole days
// ("90d"), at least an hour: a shorter one would forget machines that are
// merely switched off for the night.
func parseRetention(raw map[string]string, env string, bad func(string, string)) time.Duration {
	v := strings.TrimSpace(raw[env])
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 100*365 {
			bad(env, "must be a number of days such as 90d, a duration such as 2160h, or 0 to keep every node")
			return 0
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			bad(env, "must be a number of days such as 90d, a duration such as 2160h, or 0 to keep every node")
			return 0
		}
	}
	if d < time.Hour {
		bad(env, "must be at least 1h (a shorter one would forget machines that are only switched off); use e.g. 90d, or 0 to keep every node")
	}
	return d
}

// parseSize reads a byte count with an optional KiB, MiB or GiB suffix; 0
// is allowed (off), else at least 8 MiB.
func parseSize(raw map[string]string, env string, bad func(string, string)) int64 {
	v := strings.TrimSpace(raw[env])
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if n, ok := strings.CutSuffix(v, suffix); ok {
			v, mult = n, m
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > 1<<50/mult || n != 0 && n*mult < 8<<20 {
		bad(env, "must be a size such as 32MiB, 64MiB or 1GiB (at least 8MiB), or 0 for no limit")
		return 0
	}
	return n * mult
}

func parseBool(raw map[string]string, env string, bad func(string, string)) bool {
	switch strings.ToLower(strings.TrimSpace(raw[env])) {
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off", "":
		return false
	}
	bad(env, "must be 1/true/yes or 0/false/no")
	return false
}

// fixedPort says whether port names one port to listen on: a number from 1
// to 65535 or a service name ("tftp"), not empty or 0 (a random port, which
// no firmware would find).
func fixedPort(port string) bool {
	if port == "" {
		return false
	}
	if n, err := strconv.Atoi(port); err == nil {
		return n >= 1 && n <= 65535
	}
	_, err := net.LookupPort("udp", port)
	return err == nil
}
