// Command bare is the yardstick for bench/boot/run.sh: a plain net/http
// server whose /boot writes a fixed-size iPXE script and stores nothing.
// Whatever PXE Pilot's /boot does beyond that (routing, metrics, the store's
// read-modify-write, the decision, rendering) is the cost being measured.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18001", "listen address (loopback only)")
	flag.Parse()
	http.HandleFunc("/boot", func(w http.ResponseWriter, r *http.Request) {
		mac := r.URL.Query().Get("mac")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "#!ipxe\n# PXE Pilot: %s boots from its local disk\necho PXE Pilot: %s boots from local disk\nsanboot --no-describe --drive 0x80\n", mac, mac)
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
