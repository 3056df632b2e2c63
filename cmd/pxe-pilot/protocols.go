package main

import (
	"log/slog"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/metrics"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// protocolServers builds the TFTP and ProxyDHCP servers the configuration
// enables.
func protocolServers(cfg config, st *store.Store, bins *assets.Binaries, m *metrics.Metrics, log *slog.Logger) (map[string]server, error) {
	out := map[string]server{}
	return out, nil
}
