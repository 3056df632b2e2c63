# bench/boot/servers.sh: sourced by run.sh and rate.sh once their arguments
# are checked. Makes a temporary directory ($work, removed on exit), builds
# and starts the appliance (port $pp, its PID in $app) and the bare handler
# (port $bp) on loopback, waits until both answer, and boots the KNOWN
# machines once. The caller sets repo and KNOWN. Every process started here
# or added to pids by the caller is stopped by PID on exit. The appliance
# inherits the environment, so PXE_STORE_SIZING=large bench/boot/run.sh
# measures the large sizing.
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	# Wait for them: removing the database under a closing store left the
	# appliance hanging in Close.
	for p in "${pids[@]}"; do timeout 30 tail --pid="$p" -f /dev/null || kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
go build -C "$repo" -o "$work/pxe-pilot" ./cmd/pxe-pilot
go build -C "$repo" -o "$work/bare" ./bench/boot/bare
pp=18000 bp=18001
PORT=$pp PXE_LISTEN_ADDR=127.0.0.1 PXE_BASE_URL=http://127.0.0.1:$pp DATABASE_PATH="$work/db" PXE_LOG_LEVEL=warn \
	PXE_UBUNTU_KERNEL_URL=http://127.0.0.1/k PXE_UBUNTU_INITRD_URL=http://127.0.0.1/i PXE_AUTOINSTALL_URL=http://127.0.0.1/a/ \
	"$work/pxe-pilot" serve 2>"$work/log" &
pids+=($!)
app=$!
"$work/bare" -addr 127.0.0.1:$bp &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$pp/health" >/dev/null && curl -fs "http://127.0.0.1:$bp/boot" >/dev/null && break; sleep 0.1; done
# The known machines: boot each once (bounded: KNOWN requests).
awk -v n="$KNOWN" -v port=$pp 'BEGIN {
	for (i = 0; i < n; i++) {
		if (i) print "next"
		printf "url = \"http://127.0.0.1:%s/boot?mac=52:54:%02x:%02x:%02x:%02x&platform=pcbios\"\noutput = \"/dev/null\"\n", port, int(i / 16777216) % 256, int(i / 65536) % 256, int(i / 256) % 256, i % 256
	}
}' >"$work/known"
timeout 300 curl -fsS -K "$work/known"
