package etcdcluster_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/internal/etcdcluster"
)

// Killing the leader leaves a writable cluster with a new leader, and the
// killed member, started again, rejoins with the writes it missed.
func TestKillLeaderAndRejoin(t *testing.T) {
	c := etcdcluster.Start(t, etcdcluster.Config{})
	cli := c.Client(t)
	ctx := t.Context()
	if _, err := cli.Put(ctx, "k", "before"); err != nil {
		t.Fatal(err)
	}
	old, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}

	c.Kill(t, old)
	if c.Running(old) {
		t.Fatalf("member %d still running after Kill", old)
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// The first requests may fail ("request timed out, possibly due to
	// previous leader failure"): a client retries them.
	for {
		_, err := cli.Put(wctx, "k", "during")
		if err == nil {
			break
		}
		if wctx.Err() != nil {
			t.Fatalf("Put with the leader killed: %v\n%s", err, c.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	next, err := c.Leader(ctx)
	if err != nil || next == old {
		t.Fatalf("leader after kill = %d, %v; want another member than %d", next, err, old)
	}

	c.Start(t, old)
	one, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Endpoint(old)}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	// A linearizable read on the rejoined member sees the write it missed.
	resp, err := one.Get(wctx, "k")
	if err != nil {
		t.Fatalf("Get from the rejoined member: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "during" {
		t.Fatalf("rejoined member has k=%v, want during", resp.Kvs)
	}
}

// A graceful stop of the leader hands leadership over.
func TestStopGraceful(t *testing.T) {
	c := etcdcluster.Start(t, etcdcluster.Config{})
	ctx := t.Context()
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Stop(t, l)
	if c.Running(l) {
		t.Fatal("member running after Stop")
	}
	cli := c.Client(t)
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := cli.Put(wctx, "k", "v"); err != nil {
		t.Fatalf("Put after a graceful stop of the leader: %v", err)
	}
}
