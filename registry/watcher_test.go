package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
)

func put(t *testing.T, c *clientv3.Client, in registry.Instance) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(t.Context(), in.Key(registry.DefaultPrefix), string(b)); err != nil {
		t.Fatalf("put %s: %v", in.ID, err)
	}
}

func del(t *testing.T, c *clientv3.Client, in registry.Instance) {
	t.Helper()
	if _, err := c.Delete(t.Context(), in.Key(registry.DefaultPrefix)); err != nil {
		t.Fatalf("delete %s: %v", in.ID, err)
	}
}

func TestWatcherFollowsChanges(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	put(t, c, instance("inventory", "b"))
	w := startWatcher(t, c, nil)
	if got := ids(w.Instances("inventory")); got != "b" {
		t.Fatalf("after first list: %q, want b", got)
	}

	put(t, c, instance("inventory", "a"))
	put(t, c, instance("checkpoint", "c"))
	waitFor(t, w, "inventory", 5*time.Second, "a and b", hasIDs("a,b"))
	waitFor(t, w, "checkpoint", 5*time.Second, "c", hasIDs("c"))
	del(t, c, instance("inventory", "b"))
	waitFor(t, w, "inventory", 5*time.Second, "b deleted", hasIDs("a"))

	var names []string
	for _, s := range w.Services() {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "checkpoint,inventory" {
		t.Fatalf("Services() names %v, want sorted checkpoint,inventory", names)
	}
}

// Callers may keep and modify what they get; the cache must not change.
func TestWatcherReturnsCopies(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	put(t, c, instance("inventory", "a", "t1"))
	w := startWatcher(t, c, nil)

	got := w.Instances("inventory")
	got[0].Tags[0] = "changed"
	got[0].Addr = "changed"
	svcs := w.Services()
	svcs[0].Instances[0].Tags[0] = "changed"

	if want := []registry.Instance{instance("inventory", "a", "t1")}; !reflect.DeepEqual(w.Instances("inventory"), want) {
		t.Fatalf("cache changed through a returned value: %+v", w.Instances("inventory"))
	}
}

func TestWatcherIgnoresInvalidValues(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	log := &logBuffer{}
	mismatched := instance("inventory", "other-id")
	b, _ := json.Marshal(mismatched)
	for k, v := range map[string]string{
		"/service/inventory/garbage": "not json",
		"/service/inventory/noaddr":  `{"id":"noaddr","name":"inventory"}`,
		"/service/inventory/wrongid": string(b),
		"/service/inventory":         `{}`,
	} {
		if _, err := c.Put(t.Context(), k, v); err != nil {
			t.Fatal(err)
		}
	}
	put(t, c, instance("inventory", "good"))
	w := startWatcher(t, c, log.logger())
	if got := ids(w.Instances("inventory")); got != "good" {
		t.Fatalf("instances %q, want only good", got)
	}

	// An instance overwritten with garbage is dropped, not kept stale.
	if _, err := c.Put(t.Context(), "/service/inventory/good", "{"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, w, "inventory", 5*time.Second, "good dropped", hasIDs(""))
	for _, want := range []string{"/service/inventory/garbage", "/service/inventory/noaddr", "/service/inventory/wrongid"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("ignored key %s not logged:\n%s", want, log)
		}
	}
}

// While etcd is unreachable the watcher keeps serving what it knew, and
// catches up once etcd is back.
func TestWatcherKeepsCacheWhileEtcdDown(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	put(t, c, instance("inventory", "a"))
	put(t, c, instance("inventory", "b"))
	w := startWatcher(t, srv.Client(t), nil)
	waitFor(t, w, "inventory", 5*time.Second, "a and b", hasIDs("a,b"))
	changes, cancel := w.Subscribe()
	defer cancel()

	srv.Stop(t)
	time.Sleep(2 * time.Second)
	if got := ids(w.Instances("inventory")); got != "a,b" {
		t.Fatalf("during the outage instances = %q, want a,b", got)
	}
	if got, err := w.Select("inventory", registry.Selector{}); err != nil || len(got) != 2 {
		t.Fatalf("during the outage Select = %v, %v", got, err)
	}
	select {
	case <-changes:
		t.Fatal("cache changed during the outage")
	default:
	}

	srv.Restart(t)
	del(t, c, instance("inventory", "a"))
	waitFor(t, w, "inventory", 10*time.Second, "a deleted after the outage", hasIDs("b"))
}

// The etcd client retries a broken watch by itself, so the outage above
// never reaches the watcher's own failure path. A closed client does:
// every re-list fails, and the cache must still be served.
func TestWatcherKeepsCacheWhenListsFail(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	put(t, c, instance("inventory", "a"))
	put(t, c, instance("inventory", "b"))
	wc := srv.Client(t)
	log := &logBuffer{}
	w := startWatcher(t, wc, log.logger())
	waitFor(t, w, "inventory", 5*time.Second, "a and b", hasIDs("a,b"))

	wc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(log.String(), "registry watch failed") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("watcher did not fail twice within 5s:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := ids(w.Instances("inventory")); got != "a,b" {
		t.Fatalf("after failed re-lists instances = %q, want a,b", got)
	}
}

// A watcher cut off while the revisions it needs are compacted must
// re-list: resuming the watch cannot deliver the lost events.
func TestWatcherRelistsAfterCompaction(t *testing.T) {
	srv := etcdtest.Start(t)
	writer := srv.Client(t)
	put(t, writer, instance("inventory", "a"))
	put(t, writer, instance("inventory", "b"))
	p := srv.Proxy(t)
	log := &logBuffer{}
	w := startWatcher(t, p.Client(t), log.logger())
	waitFor(t, w, "inventory", 5*time.Second, "a and b", hasIDs("a,b"))

	p.Cut()
	del(t, writer, instance("inventory", "a"))
	put(t, writer, instance("inventory", "c"))
	resp, err := writer.Put(t.Context(), "/unrelated", "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Compact(t.Context(), resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	p.Heal()

	waitFor(t, w, "inventory", 10*time.Second, "the state after compaction", hasIDs("b,c"))
	if !strings.Contains(log.String(), "compacted") {
		t.Fatalf("no compaction seen; the test did not exercise re-listing:\n%s", log)
	}
}

func TestSubscribeCoalesces(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	w := startWatcher(t, c, nil)
	ch, cancel := w.Subscribe()

	for _, id := range []string{"a", "b", "c"} {
		put(t, c, instance("inventory", id))
	}
	waitFor(t, w, "inventory", 5*time.Second, "a,b,c", hasIDs("a,b,c"))
	select {
	case <-ch:
	default:
		t.Fatal("no signal after changes")
	}
	select {
	case <-ch:
		t.Fatal("three changes unread gave more than one pending signal")
	default:
	}

	cancel()
	cancel() // idempotent
	put(t, c, instance("inventory", "d"))
	waitFor(t, w, "inventory", 5*time.Second, "d", hasIDs("a,b,c,d"))
	select {
	case <-ch:
		t.Fatal("signal after cancel")
	default:
	}
}

func TestWaitInstancesHonoursContext(t *testing.T) {
	srv := etcdtest.Start(t)
	w := startWatcher(t, srv.Client(t), nil)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err := w.WaitInstances(ctx, "inventory", func(in []registry.Instance) bool { return len(in) > 0 })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitInstances = %v, want DeadlineExceeded", err)
	}
}

func TestWatcherRunWithoutClient(t *testing.T) {
	w := registry.NewWatcher(registry.WatcherConfig{})
	if err := w.Run(t.Context()); !errors.Is(err, registry.ErrInvalidConfig) {
		t.Fatalf("Run = %v, want ErrInvalidConfig", err)
	}
}
