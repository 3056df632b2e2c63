package etcdstore_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pxe-pilot/pxe-pilot/internal/etcdtest"
	"github.com/pxe-pilot/pxe-pilot/store/etcdstore"
	"github.com/pxe-pilot/pxe-pilot/store/storetest"
)

// TestAuth: with etcd's authentication on, the store works with the
// right user and password and fails Ping (so /health is 503) without.
func TestAuth(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), slow*10*time.Second)
	defer cancel()
	for _, step := range []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "root-secret"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("turning etcd authentication on: %v", err)
		}
	}
	cli.Close()

	open := func(user, pass string) *etcdstore.Store {
		st, err := etcdstore.Open(etcdstore.Options{Endpoints: c.Endpoints(), Username: user, Password: pass,
			Timeout: slow * 2 * time.Second, Logger: quiet})
		if err != nil {
			t.Fatalf("Open(%q): %v", user, err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	good := open("root", "root-secret")
	if err := good.Ping(); err != nil {
		t.Fatalf("Ping with the right password: %v", err)
	}
	if _, err := good.SetReinstall(storetest.MAC(1), true, storetest.T0); err != nil {
		t.Fatalf("SetReinstall with the right password: %v", err)
	}
	if err := open("", "").Ping(); err == nil {
		t.Error("Ping without credentials succeeded on an etcd with authentication on")
	}
	if _, err := etcdstore.Open(etcdstore.Options{Endpoints: c.Endpoints(), Username: "root", Password: "wrong",
		Timeout: slow * 2 * time.Second, Logger: quiet}); err == nil {
		t.Error("Open with a wrong password succeeded")
	} else {
		t.Logf("Open with a wrong password: %v", err)
	}
	// With a user set, the client logs in inside Open: a dead etcd makes
	// Open fail within the timeout, never hang.
	start := time.Now()
	if _, err := etcdstore.Open(etcdstore.Options{Endpoints: []string{"http://127.0.0.1:1"}, Username: "root", Password: "x",
		Timeout: time.Second, Logger: quiet}); err == nil {
		t.Error("Open with a user against no etcd succeeded")
	}
	if took := time.Since(start); took > slow*5*time.Second {
		t.Errorf("Open with a user against no etcd took %s", took)
	}
}
