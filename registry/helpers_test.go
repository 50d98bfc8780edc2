package registry_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/registry"
)

// Backoffs short enough that recovery tests take seconds, not minutes.
const (
	testMinBackoff = 20 * time.Millisecond
	testMaxBackoff = 300 * time.Millisecond
)

func instance(name, id string, tags ...string) registry.Instance {
	return registry.Instance{
		ID:      id,
		Name:    name,
		Addr:    "127.0.0.1:9",
		Version: "v1.2.3",
		Tags:    tags,
		Env:     "dev",
		Started: time.Date(2016, 5, 1, 10, 0, 0, 0, time.UTC),
	}
}

// goRun runs fn in a goroutine until the returned stop is called (or the
// test ends) and returns what fn returned. Stopping waits for fn, so no
// goroutine outlives its test.
func goRun(t *testing.T, fn func(context.Context) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// startWatcher runs a watcher until the test ends and waits for its first
// list.
func startWatcher(t *testing.T, c *clientv3.Client, log *slog.Logger) *registry.Watcher {
	t.Helper()
	w := registry.NewWatcher(registry.WatcherConfig{
		Client: c, Logger: log, MinBackoff: testMinBackoff, MaxBackoff: testMaxBackoff,
	})
	goRun(t, w.Run)
	select {
	case <-w.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("watcher not ready after 10s")
	}
	return w
}

func newRegistrar(t *testing.T, c *clientv3.Client, in registry.Instance, ttl time.Duration) *registry.Registrar {
	t.Helper()
	r, err := registry.NewRegistrar(registry.RegistrarConfig{
		Client: c, Instance: in, TTL: ttl, MinBackoff: testMinBackoff, MaxBackoff: testMaxBackoff,
	})
	if err != nil {
		t.Fatalf("NewRegistrar: %v", err)
	}
	return r
}

func waitRegistered(t *testing.T, r *registry.Registrar) {
	t.Helper()
	select {
	case <-r.Registered():
	case <-time.After(10 * time.Second):
		t.Fatal("not registered after 10s")
	}
}

// waitFor waits up to d for ok on the instances of name and fails the
// test with what it saw last.
func waitFor(t *testing.T, w *registry.Watcher, name string, d time.Duration, what string, ok func([]registry.Instance) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := w.WaitInstances(ctx, name, ok); err != nil {
		t.Fatalf("waiting %v for %s: %v; instances of %s: %+v", d, what, err, name, w.Instances(name))
	}
}

func ids(ins []registry.Instance) string {
	var s []string
	for _, in := range ins {
		s = append(s, in.ID)
	}
	return strings.Join(s, ",")
}

func hasIDs(want string) func([]registry.Instance) bool {
	return func(ins []registry.Instance) bool { return ids(ins) == want }
}

// logBuffer is a slog destination tests can search.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
