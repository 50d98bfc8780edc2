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
