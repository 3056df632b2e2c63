package main

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/pxe-pilot/pxe-pilot/store"
	"github.com/pxe-pilot/pxe-pilot/store/etcdstore"
)

// storeConfig is the node store chosen by PXE_STORE.
type storeConfig struct {
	// Etcd is nil for the embedded Badger store.
	Etcd *etcdstore.Options
	// Sizing is PXE_STORE_SIZING, for Badger.
	Sizing store.Sizing
	// UnusedEtcd lists the PXE_ETCD_* settings given with Badger, which
	// do nothing there (openStore warns: a mistake in them would only
	// show on switching to etcd).
	UnusedEtcd []string
}

// parseStore reads PXE_STORE, PXE_STORE_SIZING and, for etcd, the
// PXE_ETCD_* settings.
func parseStore(raw map[string]string, bad func(env, issue string)) storeConfig {
	sz, err := store.ParseSizing(strings.TrimSpace(raw["PXE_STORE_SIZING"]))
	if err != nil {
		bad("PXE_STORE_SIZING", "must be small (the least memory) or large (faster boot storms, about 1.5 times the memory)")
	}
	v := strings.TrimSpace(raw["PXE_STORE"])
	if v == "" || v == "badger" {
		var unused []string
		for _, s := range settings {
			if strings.HasPrefix(s.flag, "etcd-") && raw[s.env] != s.def {
				unused = append(unused, s.env)
			}
		}
		return storeConfig{Sizing: sz, UnusedEtcd: unused}
	}
	hosts, ok := strings.CutPrefix(v, "etcd://")
	if !ok {
		bad("PXE_STORE", "must be badger, or etcd:// followed by the etcd members' host:port, comma-separated (e.g. etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379)")
		return storeConfig{}
	}
	o := &etcdstore.Options{
		Prefix:   raw["PXE_ETCD_PREFIX"],
		CAFile:   raw["PXE_ETCD_CA"],
		CertFile: raw["PXE_ETCD_CERT"],
		KeyFile:  raw["PXE_ETCD_KEY"],
		Username: raw["PXE_ETCD_USERNAME"],
		Password: raw["PXE_ETCD_PASSWORD"],
	}
	scheme := "http://"
	if o.CAFile != "" || o.CertFile != "" {
		scheme = "https://"
	}
	for _, h := range strings.Split(hosts, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil { // no port: etcd's client port
			host, port = strings.Trim(h, "[]"), "2379"
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || host == "" || strings.ContainsAny(host, "/?#@ ") {
			bad("PXE_STORE", fmt.Sprintf("%q is not host:port; list the etcd members' client addresses, e.g. etcd://10.0.0.1:2379,10.0.0.2:2379", h))
			continue
		}
		o.Endpoints = append(o.Endpoints, scheme+net.JoinHostPort(host, port))
	}
	if len(o.Endpoints) == 0 {
		bad("PXE_STORE", "names no etcd member; use e.g. etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379")
	}
	if strings.TrimSpace(o.Prefix) == "" {
		bad("PXE_ETCD_PREFIX", "must not be empty; use e.g. /pxe-pilot/")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		bad("PXE_ETCD_CERT", "a client certificate needs both PXE_ETCD_CERT and PXE_ETCD_KEY; set both or neither")
	}
	if o.Password != "" && o.Username == "" {
		bad("PXE_ETCD_PASSWORD", "is set but PXE_ETCD_USERNAME is empty; set the user too")
	}
	d, err := time.ParseDuration(raw["PXE_ETCD_TIMEOUT"])
	if err != nil || d < 100*time.Millisecond || d > time.Minute {
		bad("PXE_ETCD_TIMEOUT", "must be a duration from 100ms to 1m, such as 2s")
	}
	o.Timeout = d
	return storeConfig{Etcd: o, Sizing: sz}
}

// openStore opens the node store PXE_STORE chose. The appliance starts
// while etcd is unreachable: /health answers 503 and machines boot their
// disks until it answers. onSyncError (may be nil) hears each failure of
// the embedded store's background sync.
func openStore(cfg config, log *slog.Logger, onSyncError func(error)) (store.Backend, string, error) {
	if cfg.Store.Etcd == nil {
		if len(cfg.Store.UnusedEtcd) > 0 {
			log.Warn("PXE_ETCD_* settings do nothing with the embedded Badger store; set PXE_STORE=etcd://… to use etcd, or leave them unset",
				"store", "badger", "set", strings.Join(cfg.Store.UnusedEtcd, ", "))
		}
		st, err := store.Open(cfg.DatabasePath, store.Options{Logger: log, History: cfg.BootHistory, Sizing: cfg.Store.Sizing, OnSyncError: onSyncError})
		return st, "badger at " + cfg.DatabasePath, err
	}
	if cfg.Store.Sizing != store.SizingSmall {
		log.Warn("PXE_STORE_SIZING sizes the embedded Badger store and does nothing with etcd; leave it unset", "store", "etcd")
	}
	o := *cfg.Store.Etcd
	o.History, o.Logger = cfg.BootHistory, log
	where := "etcd at " + strings.Join(o.Endpoints, ",") + " under " + o.Prefix
	st, err := etcdstore.Open(o)
	if err != nil {
		return nil, where, fmt.Errorf("PXE_STORE: %w (check PXE_ETCD_CA, PXE_ETCD_CERT and PXE_ETCD_KEY; with PXE_ETCD_USERNAME set, etcd must answer at start-up and the password must be right)", err)
	}
	if err := st.Ping(); err != nil {
		log.Warn("etcd does not answer yet; /health answers 503 and machines boot their disks until it does", "err", err)
	}
	return st, where, nil
}
