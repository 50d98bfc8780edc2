package etcdtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/kplane/kplane/internal/etcdtest"
)

// A key written before Stop is readable after Restart through the same
// client: the data dir and the ports survive the outage.
func TestStopRestartKeepsDataAndPorts(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	ctx := t.Context()
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}

	srv.Stop(t)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := c.Get(short, "k")
	cancel()
	if err == nil {
		t.Fatal("Get succeeded while etcd was stopped")
	}

	srv.Restart(t)
	long, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.Get(long, "k")
	if err != nil {
		t.Fatalf("Get after restart: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after restart got %v, want k=v", resp.Kvs)
	}
}

// A cut proxy partitions only its own clients.
func TestProxyCutAndHeal(t *testing.T) {
	srv := etcdtest.Start(t)
	p := srv.Proxy(t)
	cutOff, direct := p.Client(t), srv.Client(t)
	ctx := t.Context()
	if _, err := cutOff.Put(ctx, "k", "1"); err != nil {
		t.Fatal(err)
	}

	p.Cut()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := cutOff.Get(short, "k")
	cancel()
	if err == nil {
		t.Fatal("Get through a cut proxy succeeded")
	}
	if _, err := direct.Put(ctx, "k", "2"); err != nil {
		t.Fatalf("Put on the uncut path: %v", err)
	}

	p.Heal()
	long, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := cutOff.Get(long, "k")
	if err != nil {
		t.Fatalf("Get after Heal: %v", err)
	}
	if string(resp.Kvs[0].Value) != "2" {
		t.Fatalf("after Heal k=%s, want 2", resp.Kvs[0].Value)
	}
}
