package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/boot"
	"github.com/pxe-pilot/pxe-pilot/console"
	"github.com/pxe-pilot/pxe-pilot/dhcpproxy"
	"github.com/pxe-pilot/pxe-pilot/httpapi"
	"github.com/pxe-pilot/pxe-pilot/internal/keyguard"
	"github.com/pxe-pilot/pxe-pilot/metrics"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// server is what every protocol server offers.
type server interface {
	Serve(ctx context.Context) error
}

// serve runs the appliance until ctx ends. The servers stop first; the store
// closes last, so no in-flight request writes to a closed database.
func serve(ctx context.Context, cfg config, log *slog.Logger, hup <-chan os.Signal) error {
	log.Info("pxe-pilot starting", "version", version)
	deriveBaseURL(&cfg, log)
	m := metrics.New(version)
	st, where, err := openStore(cfg, log, func(error) { m.StoreErrors.WithLabelValues("sync").Inc() })
	if err != nil {
		return err
	}
	log.Info("node store", "store", where)
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing the database failed", "store", where, "err", err)
		} else {
			log.Info("database closed", "store", where)
		}
	}()

	m.RegisterNodeGauge(store.StateNames(), store.NamedCounts(st.CountByState))

	bins, err := assets.LoadBinaries(assets.Options{Dir: cfg.IPXEDir, ARM64: cfg.IPXEARM64})
	if err != nil {
		return err
	}
	for _, name := range bins.Found() {
		b, _ := bins.Get(name)
		log.Info("iPXE binary", "file", name, "source", b.Source, "bytes", b.Size)
	}
	// warnings are the configuration problems logged at start; the
	// console's appliance page repeats them.
	var warnings []string
	for name, looked := range bins.Missing() {
		if name == assets.ARM64EFI {
			log.Debug("iPXE binary missing", "file", name, "looked_in", strings.Join(looked, ", "))
			continue
		}
		log.Warn("iPXE binary missing; TFTP and HTTP answer this name with 'not found' (install Debian's ipxe package, run make assets, or set PXE_IPXE_DIR)",
			"file", name, "looked_in", strings.Join(looked, ", "))
		warnings = append(warnings, fmt.Sprintf("iPXE binary %s is missing (looked in %s): TFTP and HTTP answer it with 'not found'; install Debian's ipxe package, run make assets, or set PXE_IPXE_DIR", name, strings.Join(looked, ", ")))
	}

	signed, err := loadSigned(cfg, log)
	if err != nil {
		return err
	}

	prof, err := loadProfiles(cfg, log)
	if err != nil {
		return err
	}
	if p := prof.Load().Profiles[prof.Load().Default]; p != nil && len(p.Missing) > 0 {
		warnings = append(warnings, "reinstall is not configured for machines the default profile takes (unset: "+strings.Join(p.Missing, ", ")+"): a requested reinstall stays pending")
	}
	if cfg.AdminKey == "" {
		log.Warn("ADMIN_API_KEY is not set: the admin API (/nodes) is open to anyone who can reach it")
		warnings = append(warnings, "ADMIN_API_KEY is not set: the admin API (/nodes) and this console are open to anyone who can reach them")
	}

	httpAddr := net.JoinHostPort(cfg.ListenAddr, strconv.Itoa(cfg.Port))
	var services []console.Service // filled in before the servers start
	var api *httpapi.Server        // the console names clients as the API does
	guard := keyguard.New(keyguard.DefaultTries, keyguard.DefaultEvery)
	ui, err := console.New(console.Config{
		Store:          st,
		Profiles:       prof.Load,
		Boot:           boot.Config{BaseURL: strings.TrimRight(cfg.BaseURL, "/"), LocalBoot: cfg.Boot.LocalBoot},
		AdminKey:       cfg.AdminKey,
		TrustedProxies: cfg.TrustedProxies,
		KeyGuard:       guard,
		ClientIP:       func(r *http.Request) string { return api.ClientIP(r) },
		Metrics:        m,
		Binaries:       bins,
		Services:       func() []console.Service { return services },
		HTTPAddr:       httpAddr,
		Warnings:       warnings,
		Version:        version,
		Logger:         log,
	})
	if err != nil {
		return err
	}

	api, err = httpapi.New(httpapi.Config{
		Addr:            httpAddr,
		BaseURL:         cfg.BaseURL,
		Boot:            cfg.Boot,
		Profiles:        prof.Load,
		AdminKey:        cfg.AdminKey,
		KeyGuard:        guard,
		TrustedProxies:  cfg.TrustedProxies,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Store:           st,
		Binaries:        bins,
		Signed:          signed,
		Metrics:         m,
		Logger:          log,
		Extra:           ui,
	})
	if err != nil {
		return err
	}
	log.Info("HTTP API listening", "addr", api.Addr().String(), "base_url", cfg.BaseURL)
	servers := map[string]server{"http": api, "console": ui, "profiles": &reloader{cfg: cfg, set: prof, log: log, hup: hup}}
	servers["memory-limit"] = &memoryLimit{Base: cfg.MemoryLimit, PerNode: 256, Every: 100 * time.Millisecond, Log: log,
		Nodes: func() int {
			c, _ := st.CountByState()
			n := 0
			for _, v := range c {
				n += v
			}
			return n
		}}
	servers["install-timeout"] = &boot.Sweeper{Store: st, Timeout: cfg.InstallTimeout, Log: log, Failed: func(store.Node) {
		m.InstallStalls.Inc()
		m.InstallTransitions.WithLabelValues(string(store.StateFailed)).Inc()
	}}

	if fg, ok := store.Backend(st).(store.Forgetter); ok && cfg.NodeRetention > 0 {
		log.Info("node retention on: nodes that only ever booted local are forgotten when not seen for this long", "retention", cfg.NodeRetention)
		servers["node-retention"] = &boot.Retention{Store: fg, After: cfg.NodeRetention, Log: log,
			Forgot: func(n int) { m.NodesForgotten.Add(float64(n)) }}
	} else if cfg.NodeRetention > 0 {
		log.Warn("PXE_NODE_RETENTION is set, but this store cannot forget idle nodes; no node is forgotten", "store", fmt.Sprintf("%T", st))
	}

	extra, err := protocolServers(cfg, st, files{ipxe: bins, signed: signed, profiles: prof, grub: api.GRUBScript, grubRelayed: api.GRUBRelayed}, m, log)
	if err != nil {
		return err
	}
	for k, v := range extra {
		servers[k] = v
	}
	services = []console.Service{{Name: "TFTP", Enabled: cfg.TFTPEnabled, Detail: tftpDetail(cfg)}, {Name: "ProxyDHCP", Enabled: cfg.DHCPEnabled, Detail: dhcpDetail(cfg, extra)}}
	log.Info("web console", "url", cfg.BaseURL+console.Prefix)
	return runAll(ctx, servers, log)
}

// dhcpDetail says where ProxyDHCP listens, for the console.
func dhcpDetail(cfg config, servers map[string]server) string {
	d, ok := servers["dhcp"].(*dhcpproxy.Server)
	if !ok {
		return "off (PXE_DHCP_PROXY_ENABLED)"
	}
	return "interface " + d.Interface() + ", server address " + d.ServerIP().String()
}

func tftpDetail(cfg config) string {
	if !cfg.TFTPEnabled {
		return "off (PXE_TFTP_ENABLED)"
	}
	return "listening on " + cfg.TFTPAddr
}

// runAll runs every server until ctx ends or one of them fails, then stops
// the rest and waits for all of them.
func runAll(ctx context.Context, servers map[string]server, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for name, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Serve(ctx)
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				mu.Unlock()
			}
			cancel() // one server down takes the appliance down, loudly
		}()
	}
	<-ctx.Done()
	log.Info("shutting down")
	wg.Wait()
	return errors.Join(errs...)
}

// deriveBaseURL fills PXE_BASE_URL when it is unset: from PXE_LISTEN_ADDR,
// else from the address of the interface that holds the default route,
// else loopback (a laptop with no network still starts, and says so).
func deriveBaseURL(cfg *config, log *slog.Logger) {
	if cfg.BaseURL != "" {
		return
	}
	host, why := cfg.ListenAddr, "PXE_LISTEN_ADDR"
	if a, err := netip.ParseAddr(host); host == "" || err != nil || a.IsUnspecified() {
		ip, ifname, err := routeAddr(cfg.DHCPInterface)
		switch {
		case err == nil:
			host, why = ip.String(), "address of "+ifname
		default:
			host, why = "127.0.0.1", "no usable network interface ("+err.Error()+"); only this host can boot from it"
		}
	}
	cfg.BaseURL = "http://" + net.JoinHostPort(host, strconv.Itoa(cfg.Port))
	cfg.BaseURLDerived = true
	log.Info("PXE_BASE_URL not set; derived it", "base_url", cfg.BaseURL, "from", why)
}

// routeAddr is the first IPv4 address of ifname, or of the interface that
// holds the IPv4 default route when ifname is empty: the same address the
// ProxyDHCP server hands out as next-server.
func routeAddr(ifname string) (net.IP, string, error) {
	if ifname == "" {
		name, ip, err := dhcpproxy.DefaultInterface()
		return ip, name, err
	}
	ip, err := dhcpproxy.InterfaceIPv4(ifname)
	return ip, ifname, err
}
