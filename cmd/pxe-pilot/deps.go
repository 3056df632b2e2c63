package main

import (
	_ "github.com/dgraph-io/badger/v4"
	_ "github.com/insomniacslk/dhcp/dhcpv4"
	_ "github.com/insomniacslk/dhcp/dhcpv4/server4"
	_ "github.com/julienschmidt/httprouter"
	_ "github.com/pin/tftp/v3"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {}
