//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// routerMode says what the LAN's ordinary DHCP server tells PXE clients.
type routerMode int

const (
	// routerPlain hands out addresses only: the ProxyDHCP deployment.
	routerPlain routerMode = iota
	// routerTFTP hands out next-server + undionly.kpxe, like a home
	// router whose only PXE knobs are "TFTP server" and "boot file".
	routerTFTP
	// routerHTTP hands out the appliance's /chain URL as the boot file.
	routerHTTP
	// routerNextServer hands out addresses and names the appliance as
	// next-server (siaddr), with no boot file: what Debian's signed GRUB
	// needs beside ProxyDHCP (it reads its grub.cfg from the router's
	// next-server and ignores the proxy offer; measured, see README
	// "Secure Boot").
	routerNextServer
)

func (m routerMode) String() string {
	return [...]string{"plain", "tftp", "http", "next-server"}[m]
}

// routerConf is the router dnsmasq: addresses, and router advertisements
// for 2001:db8::/64 with router lifetime 0. Without RAs iPXE sits ~16 s
// waiting for IPv6 autoconfiguration before it boots; with them it moves
// on at once. --no-ping: dnsmasq otherwise probes each new address for 3 s.
func routerConf(dir string, mode routerMode) string {
	lines := []string{
		"port=0",
		"interface=eth0",
		"bind-interfaces",
		"dhcp-authoritative",
		"dhcp-range=203.0.113.100,203.0.113.199,255.255.255.0,10m",
		"dhcp-leasefile=" + filepath.Join(dir, "router.leases"),
		"no-ping",
		"log-dhcp",
		"enable-ra",
		"dhcp-range=::,constructor:eth0,ra-only",
		"ra-param=eth0,10,0",
	}
	switch mode {
	case routerTFTP:
		lines = append(lines, "dhcp-boot=undionly.kpxe,,"+applianceIP)
	case routerHTTP:
		lines = append(lines, "dhcp-boot=http://"+applianceIP+":"+appPort+"/chain")
	case routerNextServer:
		lines = append(lines, "dhcp-boot=,,"+applianceIP)
	}
	return strings.Join(lines, "\n") + "\n"
}

// referenceProxyConf is the dnsmasq-only reference: ProxyDHCP + TFTP on
// the appliance's address, with the well-known recipe that sends iPXE (user
// class "iPXE") straight to an HTTP script and everything else to
// undionly.kpxe over TFTP.
func referenceProxyConf(tftpRoot string) string {
	return strings.Join([]string{
		"port=0",
		"interface=eth0",
		"bind-interfaces",
		"dhcp-range=" + applianceIP + ",proxy",
		"log-dhcp",
		"dhcp-userclass=set:ipxe,iPXE",
		"pxe-service=tag:!ipxe,x86PC,\"PXE\",undionly.kpxe",
		"pxe-service=tag:ipxe,x86PC,\"iPXE\",http://" + filesIP + ":" + filesPort + "/reference/boot.ipxe",
		"enable-tftp",
		"tftp-root=" + tftpRoot,
	}, "\n") + "\n"
}

// startDnsmasq runs dnsmasq in the foreground inside ns with conf.
func startDnsmasq(ns, name, dir, conf string) (*proc, error) {
	confPath := filepath.Join(dir, name+".conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p, err := startIn(ns, name, filepath.Join(dir, name+".log"), nil,
		"dnsmasq", "--keep-in-foreground", "--log-facility=-", "--pid-file=",
		"--conf-file="+confPath, "--user=root", "--group=root")
	if err != nil {
		return nil, err
	}
	if err := p.waitLog("started, version", 10*time.Second); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// startCapture runs tcpdump on the LAN bridge. --immediate-mode, or the
// last packets before the VM is killed are lost. -Z root: tcpdump's usual
// switch to its own user clears the parent-death signal, and a capture
// would outlive a test binary that died. -s 1600 keeps every DHCP, TFTP
// and HTTP header whole but not the 10 MB of kernel in each installer boot.
func startCapture(ns, pcap, logPath string) (*proc, error) {
	p, err := startIn(ns, "tcpdump", logPath, nil,
		"tcpdump", "-Z", "root", "-i", "br0", "-n", "-U", "--immediate-mode", "-s", "1600", "-w", pcap)
	if err != nil {
		return nil, err
	}
	if err := p.waitLog("listening on", 10*time.Second); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

func stopCapture(p *proc) {
	if p != nil {
		p.stop(syscall.SIGINT, 5*time.Second)
	}
}

// fileServer is the test's own HTTP server inside the files namespace: the
// "Ubuntu" kernel and initrd (really Debian's kernel and a busybox initrd),
// the autoinstall seed path, and the reference iPXE script. It records every
// request so scenarios can tell what the firmware fetched.
type fileServer struct {
	mux    *http.ServeMux
	extra  map[string]bool // paths added by serveFile
	srv    *http.Server
	ln     net.Listener
	mu     sync.Mutex
	reqs   []string
	served chan struct{}
}

func newFileServer(ns, kernel, initrd string) (*fileServer, error) {
	ln, err := listenIn(ns, filesIP+":"+filesPort)
	if err != nil {
		return nil, fmt.Errorf("file server: %w", err)
	}
	fs := &fileServer{ln: ln, served: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ubuntu/vmlinuz", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, kernel) })
	mux.HandleFunc("GET /ubuntu/initrd", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, initrd) })
	mux.HandleFunc("GET /autoinstall/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "#cloud-config")
	})
	// The reference setup's whole "appliance": one static script.
	mux.HandleFunc("GET /reference/boot.ipxe", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "#!ipxe\necho reference: booting the installer for ${mac}\n"+
			"kernel http://%[1]s/ubuntu/vmlinuz initrd=initrd console=ttyS0 quiet autoinstall ds=nocloud-net;s=http://%[1]s/autoinstall/${mac}/\n"+
			"initrd --name initrd http://%[1]s/ubuntu/initrd\nboot\n", filesIP+":"+filesPort)
	})
	fs.mux = mux
	fs.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fs.mu.Lock()
			fs.reqs = append(fs.reqs, r.Method+" "+r.URL.RequestURI())
			fs.mu.Unlock()
			mux.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		defer close(fs.served)
		_ = fs.srv.Serve(ln)
	}()
	return fs, nil
}

// serveFile adds GET urlPath answering with the local file (a scenario's
// own installer, e.g. Debian's d-i). Adding a path again changes nothing
// (-count=2 runs a test twice; ServeMux panics on a second pattern).
func (fs *fileServer) serveFile(urlPath, local string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.extra == nil {
		fs.extra = map[string]bool{}
	}
	if fs.extra[urlPath] {
		return
	}
	fs.extra[urlPath] = true
	fs.mux.HandleFunc("GET "+urlPath, func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, local) })
}

// requests returns and clears the request log.
func (fs *fileServer) requests() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	r := fs.reqs
	fs.reqs = nil
	return r
}

func (fs *fileServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = fs.srv.Shutdown(ctx)
	<-fs.served
}
