package registry_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
)

func TestNewRegistrarRejectsBadConfig(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	for name, cfg := range map[string]registry.RegistrarConfig{
		"no client":    {Instance: instance("inventory", "i1")},
		"no name":      {Client: c, Instance: instance("", "i1")},
		"slash in id":  {Client: c, Instance: instance("inventory", "a/b")},
		"no addr":      {Client: c, Instance: registry.Instance{Name: "inventory", ID: "i1"}},
		"negative ttl": {Client: c, Instance: instance("inventory", "i1"), TTL: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := registry.NewRegistrar(cfg); !errors.Is(err, registry.ErrInvalidConfig) {
				t.Fatalf("NewRegistrar: %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestRegistrationVisibleToWatcher(t *testing.T) {
	srv := etcdtest.Start(t)
	w := startWatcher(t, srv.Client(t), nil)
	in := instance("inventory", "inv-1", "build-42")
	r := newRegistrar(t, srv.Client(t), in, 0)
	goRun(t, r.Run)
	waitRegistered(t, r)

	waitFor(t, w, "inventory", 5*time.Second, "the instance", hasIDs("inv-1"))
	got := w.Services()
	want := []registry.Service{{Name: "inventory", Instances: []registry.Instance{in}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Services() = %+v, want %+v", got, want)
	}

	// The stored value is the documented JSON, readable by anything.
	resp, err := srv.Client(t).Get(t.Context(), "/service/inventory/inv-1")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("Get key: %v %v", resp, err)
	}
	var raw map[string]any
	if err := json.Unmarshal(resp.Kvs[0].Value, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "name", "addr", "version", "tags", "env", "started"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("stored JSON lacks %q: %s", k, resp.Kvs[0].Value)
		}
	}
	if resp.Kvs[0].Lease == 0 {
		t.Error("key is not attached to a lease")
	}
}

// Cancelling Run revokes the lease before Run returns: the key is gone at
// once, not after the TTL.
func TestGracefulRemoval(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	log := &logBuffer{}
	r, err := registry.NewRegistrar(registry.RegistrarConfig{Client: c, Instance: instance("inventory", "inv-1"), Logger: log.logger()})
	if err != nil {
		t.Fatal(err)
	}
	stop := goRun(t, r.Run)
	waitRegistered(t, r)

	if err := stop(); err != nil {
		t.Fatalf("Run returned %v after cancel, want nil", err)
	}
	resp, err := c.Get(t.Context(), "/service/inventory/inv-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		t.Fatalf("key still present after Run returned: %s", resp.Kvs[0].Value)
	}
	// Its own cancellation is not a failure worth a warning.
	if s := log.String(); strings.Contains(s, "level=WARN") || strings.Contains(s, "level=ERROR") {
		t.Fatalf("shutdown logged a failure:\n%s", s)
	}
}

// A registrar killed with SIGKILL never revokes; its lease expiring must
// remove it within the TTL (plus etcd's expiry tick).
func TestCrashedInstanceRemovedWithinTTL(t *testing.T) {
	const ttl = 2 * time.Second
	srv := etcdtest.Start(t)
	w := startWatcher(t, srv.Client(t), nil)

	spec, _ := json.Marshal(childSpec{Endpoints: srv.Endpoints(), TTL: ttl, Instance: instance("checkpoint", "crashy")})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "registered\n" {
		t.Fatalf("child: %q %v", line, err)
	}
	waitFor(t, w, "checkpoint", 5*time.Second, "the child's instance", hasIDs("crashy"))

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitFor(t, w, "checkpoint", ttl+time.Second, "the crashed instance to go", hasIDs(""))
	t.Logf("crashed instance removed %v after SIGKILL (ttl %v)", time.Since(killed).Round(time.Millisecond), ttl)
}

// etcd down for longer than the TTL: once etcd is back the instance must
// be registered and stay registered. Usually the client's keepalive
// deadline passes and the registrar registers again on a new lease; but
// etcd renews every lease when it restarts, so a keepalive stream that
// reconnects in time keeps the old lease alive, which is as good. What may
// not happen is a key whose lease is gone or never kept alive again.
func TestRegistrarReturnsAfterEtcdOutage(t *testing.T) {
	const ttl = 2 * time.Second
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	log := &logBuffer{}
	r, err := registry.NewRegistrar(registry.RegistrarConfig{
		Client: srv.Client(t), Instance: instance("inventory", "inv-1"), TTL: ttl,
		Logger: log.logger(), MinBackoff: testMinBackoff, MaxBackoff: testMaxBackoff,
	})
	if err != nil {
		t.Fatal(err)
	}
	goRun(t, r.Run)
	waitRegistered(t, r)
	before := leaseOf(t, c, "/service/inventory/inv-1")

	srv.Stop(t)
	time.Sleep(ttl + time.Second)
	srv.Restart(t)

	deadline := time.Now().Add(15 * time.Second)
	for !leaseAlive(t, c, leaseOf(t, c, "/service/inventory/inv-1")) {
		if time.Now().After(deadline) {
			t.Fatalf("not registered on a live lease 15s after etcd restarted; log:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// An old lease that was not kept alive expires a TTL after the
	// restart; the key must not go with it, and its lease must be kept
	// alive from now on.
	time.Sleep(2 * ttl)
	after := leaseOf(t, c, "/service/inventory/inv-1")
	if !leaseAlive(t, c, after) {
		t.Fatalf("registration vanished after etcd came back; log:\n%s", log)
	}
	t.Logf("lease before the outage %x, after %x (same means the keepalive stream reconnected in time)", before, after)
	t.Logf("log:\n%s", log)
	if !strings.Contains(log.String(), "registered again") {
		t.Fatalf("recovery not logged:\n%s", log)
	}
}

// Someone revoking the lease (an operator, a lease-expiry race) deletes
// the key while etcd stays up; the registrar must notice and re-register.
func TestRegistrarReturnsAfterLeaseRevoked(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	w := startWatcher(t, c, nil)
	r := newRegistrar(t, srv.Client(t), instance("inventory", "inv-1"), 0)
	goRun(t, r.Run)
	waitRegistered(t, r)
	lease := leaseOf(t, c, "/service/inventory/inv-1")

	if _, err := c.Revoke(t.Context(), clientv3.LeaseID(lease)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for l := leaseOf(t, c, "/service/inventory/inv-1"); l == 0 || l == lease; l = leaseOf(t, c, "/service/inventory/inv-1") {
		if time.Now().After(deadline) {
			t.Fatal("not registered again 10s after its lease was revoked")
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitFor(t, w, "inventory", 5*time.Second, "the instance back", hasIDs("inv-1"))
}

// leaseOf returns the lease of key, 0 if the key is absent.
func leaseOf(t *testing.T, c *clientv3.Client, key string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return 0
	}
	return resp.Kvs[0].Lease
}

// leaseAlive reports whether lease id exists and has time left.
func leaseAlive(t *testing.T, c *clientv3.Client, id int64) bool {
	t.Helper()
	if id == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := c.TimeToLive(ctx, clientv3.LeaseID(id))
	return err == nil && resp.TTL > 0
}
