package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/store"
)

func TestLoadConfigStore(t *testing.T) {
	c, err := loadConfig(nil, env(nil), io.Discard)
	if err != nil || c.Store.Etcd != nil || c.Store.Sizing != store.SizingSmall {
		t.Fatalf("default store: %+v, %v; want Badger, sized small", c.Store, err)
	}
	c, err = loadConfig([]string{"--store-sizing", "large"}, env(nil), io.Discard)
	if err != nil || c.Store.Sizing != store.SizingLarge {
		t.Fatalf("--store-sizing large: %+v, %v", c.Store, err)
	}
	c, err = loadConfig([]string{"--store", "etcd://10.0.0.1:2379, etcd-2 ,[fd00::3]:2380"},
		env(map[string]string{"PXE_ETCD_CA": "/ca.pem", "PXE_ETCD_USERNAME": "pxe", "PXE_ETCD_PASSWORD": "s"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o := c.Store.Etcd
	want := []string{"https://10.0.0.1:2379", "https://etcd-2:2379", "https://[fd00::3]:2380"}
	if o == nil || !slices.Equal(o.Endpoints, want) || o.Prefix != "/pxe-pilot/" || o.Timeout != 2*time.Second ||
		o.CAFile != "/ca.pem" || o.Username != "pxe" || o.Password != "s" {
		t.Fatalf("etcd options = %+v, want endpoints %v over TLS", o, want)
	}
	c, err = loadConfig(nil, env(map[string]string{"PXE_STORE": "etcd://127.0.0.1:2379", "PXE_ETCD_TIMEOUT": "500ms"}), io.Discard)
	if err != nil || c.Store.Etcd.Endpoints[0] != "http://127.0.0.1:2379" || c.Store.Etcd.Timeout != 500*time.Millisecond {
		t.Fatalf("plain etcd: %+v, %v", c.Store.Etcd, err)
	}
}

func TestLoadConfigStoreErrors(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"PXE_STORE_SIZING": "huge"}, []string{`PXE_STORE_SIZING (--store-sizing) = "huge"`, "small", "large"}},
		{map[string]string{"PXE_STORE": "postgres://db"}, []string{`PXE_STORE (--store) = "postgres://db"`, "badger, or etcd://"}},
		{map[string]string{"PXE_STORE": "etcd://"}, []string{"PXE_STORE", "names no etcd member"}},
		{map[string]string{"PXE_STORE": "etcd://h:port"}, []string{"PXE_STORE", `"h:port" is not host:port`}},
		{map[string]string{"PXE_STORE": "etcd://h/x:2379"}, []string{"PXE_STORE", "not host:port"}},
		{map[string]string{"PXE_STORE": "etcd://h", "PXE_ETCD_CERT": "/c.pem"}, []string{"PXE_ETCD_CERT", "PXE_ETCD_KEY"}},
		{map[string]string{"PXE_STORE": "etcd://h", "PXE_ETCD_PASSWORD": "p"}, []string{"PXE_ETCD_PASSWORD", "PXE_ETCD_USERNAME"}},
		{map[string]string{"PXE_STORE": "etcd://h", "PXE_ETCD_TIMEOUT": "5ms"}, []string{"PXE_ETCD_TIMEOUT", "100ms to 1m"}},
		{map[string]string{"PXE_STORE": "etcd://h", "PXE_ETCD_PREFIX": " "}, []string{"PXE_ETCD_PREFIX", "empty"}},
	} {
		_, err := loadConfig(nil, env(tc.env), io.Discard)
		if err == nil {
			t.Errorf("%v: no error", tc.env)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not mention %q", tc.env, err, w)
			}
		}
	}
}
