package signalman_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/signalman"
)

func newPresence(t *testing.T, cli *clientv3.Client, name string) *signalman.Presence {
	t.Helper()
	p, err := signalman.NewPresence(signalman.PresenceConfig{Client: cli, Name: name, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runPresence runs p until the test ends or the returned stop is called.
func runPresence(t *testing.T, p *signalman.Presence) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return stop
}

func waitLive(t *testing.T, p *signalman.Presence, want ...string) {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		live, err := p.Live(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		got = keys(live)
		if slices.Equal(got, want) {
			return
		}
	}
	t.Fatalf("live replicas %v, want %v", got, want)
}

func TestPresence(t *testing.T) {
	etcd := etcdtest.Start(t)
	ctx := t.Context()
	a := newPresence(t, etcd.Client(t), "host-a 127.0.0.1:8080 1a2b")
	b := newPresence(t, etcd.Client(t), "host-a 127.0.0.1:8080 3c4d")
	for _, p := range []*signalman.Presence{a, b} {
		if err := p.Register(ctx); err != nil {
			t.Fatal(err)
		}
	}
	stopA, _ := runPresence(t, a), runPresence(t, b)
	waitLive(t, b, a.Name(), b.Name())

	dup := newPresence(t, etcd.Client(t), a.Name())
	if err := dup.Register(ctx); !errors.Is(err, signalman.ErrNameTaken) {
		t.Errorf("registering a live replica's name: %v, want ErrNameTaken", err)
	}

	// The session lapses (here: its lease revoked behind its back, as
	// when etcd expired it during an outage): the replica registers again.
	cli := etcd.Client(t)
	resp, err := cli.Get(ctx, signalman.DefaultReplicasPrefix+a.Name())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("a's key: %v, %v", resp, err)
	}
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	var again *clientv3.GetResponse
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if again, err = cli.Get(ctx, signalman.DefaultReplicasPrefix+a.Name()); err == nil && len(again.Kvs) == 1 && again.Kvs[0].Lease != resp.Kvs[0].Lease {
			break
		}
	}
	if err != nil || len(again.Kvs) != 1 || again.Kvs[0].Lease == resp.Kvs[0].Lease {
		t.Fatalf("a did not register again after losing its session: %v, %v", again, err)
	}

	// A replica that stops revokes its key at once.
	stopA()
	waitLive(t, b, b.Name())
}
