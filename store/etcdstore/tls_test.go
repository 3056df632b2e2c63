package etcdstore_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/pxe-pilot/pxe-pilot/internal/etcdtest"
	"github.com/pxe-pilot/pxe-pilot/store/etcdstore"
	"github.com/pxe-pilot/pxe-pilot/store/storetest"
)

// pki writes a CA and, signed by it, a server certificate for 127.0.0.1
// and a client certificate, as PEM files in dir.
type pki struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) (string, string) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(cn+".pem", "CERTIFICATE", der), write(cn+"-key.pem", "EC PRIVATE KEY", kd)
	}
	p := pki{ca: write("ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = leaf(2, "server", x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth)
	return p
}

// TestTLS: against a member that serves TLS and requires client
// certificates, the store works with the CA, certificate and key, and
// fails Ping without the client certificate.
func TestTLS(t *testing.T) {
	p := newPKI(t, t.TempDir())
	c := etcdtest.StartWith(t, 1, func(cfg *embed.Config) {
		for i := range cfg.ListenClientUrls {
			cfg.ListenClientUrls[i].Scheme = "https"
		}
		for i := range cfg.AdvertiseClientUrls {
			cfg.AdvertiseClientUrls[i].Scheme = "https"
		}
		cfg.ClientTLSInfo.CertFile, cfg.ClientTLSInfo.KeyFile = p.serverCert, p.serverKey
		cfg.ClientTLSInfo.TrustedCAFile, cfg.ClientTLSInfo.ClientCertAuth = p.ca, true
	})
	open := func(o etcdstore.Options) *etcdstore.Store {
		o.Endpoints, o.Timeout, o.Logger = c.Endpoints(), slow*2*time.Second, quiet
		st, err := etcdstore.Open(o)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	good := open(etcdstore.Options{CAFile: p.ca, CertFile: p.clientCert, KeyFile: p.clientKey})
	if err := good.Ping(); err != nil {
		t.Fatalf("Ping over TLS with a client certificate: %v", err)
	}
	if _, err := good.SetReinstall(storetest.MAC(1), true, storetest.T0); err != nil {
		t.Fatalf("SetReinstall over TLS: %v", err)
	}
	if err := open(etcdstore.Options{CAFile: p.ca}).Ping(); err == nil {
		t.Error("Ping without a client certificate succeeded against a member that requires one")
	}
	if _, err := etcdstore.Open(etcdstore.Options{Endpoints: c.Endpoints(), CAFile: filepath.Join(t.TempDir(), "missing.pem")}); err == nil {
		t.Error("Open with a missing CA file succeeded")
	} else {
		t.Logf("missing CA file: %v", err)
	}
}
