package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/internal/sqldb"
	"github.com/kplane/kplane/signalman"
)

// Two kplanes on one host listening on port 0 (or one kplane and its own
// next life) never share a name.
func TestReplicaNamesAreUnique(t *testing.T) {
	c := DefaultConfig()
	c.Listen = "127.0.0.1:0"
	a, b := replicaName(c), replicaName(c)
	if a == b || !strings.Contains(a, " 127.0.0.1:0 ") {
		t.Errorf("replicaName twice: %q and %q; want two names with the listen address", a, b)
	}
}

// A replica's key is in etcd from newReplicas on, and gone as soon as it
// stops.
func TestReplicasKeyLivesWithTheReplica(t *testing.T) {
	etcd := etcdtest.Start(t)
	cli := etcd.Client(t)
	ctx := t.Context()
	db, err := sqldb.Open(ctx, filepath.Join(t.TempDir(), "kplane.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := sqldb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	name := replicaName(DefaultConfig())
	r, err := newReplicas(ctx, cli, name, db, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	key := signalman.DefaultReplicasPrefix + name
	has := func() bool {
		resp, err := cli.Get(ctx, key, clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return resp.Count == 1
	}
	if !has() {
		t.Fatalf("no key %q after newReplicas", key)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.run(runCtx) }()
	time.Sleep(100 * time.Millisecond) // a sweep or two on an empty store
	if !has() {
		t.Fatalf("no key %q while running", key)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if has() {
		t.Errorf("key %q still there after the replica stopped", key)
	}
	r.close() // as serve's cleanup does: nothing left to revoke
}
