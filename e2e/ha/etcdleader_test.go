package ha

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/internal/etcdcluster"
	"github.com/kplane/kplane/registry"
)

// Kill the etcd leader of a three-member cluster while instances are
// registered and a consumer serves from its registry cache: no instance
// disappears from the consumer's view, its calls keep succeeding, writes
// resume within 3 s of the kill, and the killed member rejoins when
// started again.
func TestKillEtcdLeader(t *testing.T) {
	const (
		instances   = 5
		service     = "inventory"
		writeBound  = 3 * time.Second // issue #7
		observeKill = registry.DefaultTTL + time.Second
	)
	cluster := etcdcluster.Start(t, etcdcluster.Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	// The instances: real HTTP servers, each registered by its own
	// Registrar on its own client, as separate processes would be.
	var runs sync.WaitGroup
	defer runs.Wait()
	regCtx, stopRegistrars := context.WithCancel(ctx)
	defer stopRegistrars()
	ids := map[string]bool{}
	for i := range instances {
		id := fmt.Sprintf("i%d", i)
		ids[id] = true
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, id)
		}))
		defer srv.Close()
		cli := connect(t, cluster.Endpoints())
		r, err := registry.NewRegistrar(registry.RegistrarConfig{
			Client:   cli,
			Instance: registry.Instance{ID: id, Name: service, Addr: srv.Listener.Addr().String(), Version: "1", Env: "prod"},
		})
		if err != nil {
			t.Fatal(err)
		}
		runs.Go(func() { r.Run(regCtx) })
	}

	// The consumer: a Watcher on its own client and an HTTP client that
	// resolves through it.
	w := registry.NewWatcher(registry.WatcherConfig{Client: connect(t, cluster.Endpoints())})
	runs.Go(func() { w.Run(regCtx) })
	waitCtx, waitCancel := context.WithTimeout(ctx, 15*time.Second)
	err := w.WaitInstances(waitCtx, service, func(in []registry.Instance) bool { return len(in) == instances })
	waitCancel()
	if err != nil {
		t.Fatalf("%d instances not registered: %v (have %v)", instances, err, w.Instances(service))
	}
	httpc := registry.NewClient(registry.TransportConfig{Resolver: w})

	// Watch the consumer's view and its calls from now until the end.
	mon := startViewMonitor(w, service, ids, httpc)
	defer mon.stop()

	leader, err := cluster.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	writer := connect(t, cluster.Endpoints())
	killed := time.Now()
	cluster.Kill(t, leader)
	t.Logf("killed etcd leader m%d", leader)

	// Writes resume: the first successful Put after the kill, each try
	// bounded so a request stuck on the dead member does not hide it.
	var resumed time.Duration
	for n := 0; ; n++ {
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := writer.Put(pctx, "/ha/write", fmt.Sprint(n))
		pcancel()
		if err == nil {
			resumed = time.Since(killed)
			break
		}
		if ctx.Err() != nil || time.Since(killed) > 30*time.Second {
			t.Fatalf("no write succeeded within 30 s of killing the leader: %v\n%s", err, cluster.Logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	next, err := cluster.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("writes resumed %s after the kill; new leader m%d", resumed.Round(time.Millisecond), next)

	// Stay until every lease has outlived a full TTL after the kill: a
	// registration the failover broke would have expired by then.
	time.Sleep(time.Until(killed.Add(observeKill)))
	view := mon.stop()
	t.Logf("consumer during %s after the kill: min %d of %d instances, %d calls, %d failed",
		observeKill, view.minInstances, instances, view.calls, view.failed)
	if resumed > writeBound {
		t.Errorf("writes resumed %s after the kill, want within %s", resumed, writeBound)
	}
	if view.minInstances < instances {
		t.Errorf("the consumer's view lost instances: %s", view.firstLoss)
	}
	if view.failed > 0 {
		t.Errorf("%d of %d consumer calls failed, first: %v", view.failed, view.calls, view.firstErr)
	}
	if view.calls == 0 {
		t.Error("the consumer made no calls")
	}
	get, err := writer.Get(ctx, registry.DefaultPrefix+service+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || get.Count != instances {
		t.Errorf("etcd holds %v instances (err %v), want %d", get, err, instances)
	}

	// The killed member rejoins and catches up: a serializable read on it
	// alone (its own copy of the data) sees every instance and the
	// writes made while it was down.
	restarted := time.Now()
	cluster.Start(t, leader)
	one := connect(t, []string{cluster.Endpoint(leader)})
	var caughtUp time.Duration
	for {
		gctx, gcancel := context.WithTimeout(ctx, time.Second)
		resp, err := one.Get(gctx, registry.DefaultPrefix+service+"/", clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithCountOnly())
		gcancel()
		if err == nil && resp.Count == instances {
			caughtUp = time.Since(restarted)
			break
		}
		if time.Since(restarted) > 20*time.Second {
			t.Fatalf("restarted member m%d did not catch up within 20 s (last: %v, %v)\n%s", leader, resp, err, cluster.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("member m%d rejoined and caught up %s after its restart", leader, caughtUp.Round(time.Millisecond))
}

// connect returns a client configured as production configures it
// (registry.Connect), closed when t ends.
func connect(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	c, err := registry.Connect(registry.ConnectConfig{Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// viewMonitor samples a consumer's view of one service every few
// milliseconds and on every change, and calls the service through the
// registry's HTTP client, until stopped.
type viewMonitor struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	res    viewResult
}

type viewResult struct {
	minInstances int
	firstLoss    string
	calls        int
	failed       int
	firstErr     error
}

func startViewMonitor(w *registry.Watcher, service string, want map[string]bool, httpc *http.Client) *viewMonitor {
	ctx, cancel := context.WithCancel(context.Background())
	m := &viewMonitor{cancel: cancel, done: make(chan struct{}), res: viewResult{minInstances: len(want)}}
	var calls, failed atomic.Int64
	var errOnce sync.Once
	var firstErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			calls.Add(1)
			resp, err := httpc.Get("http://" + service + "/")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				failed.Add(1)
				errOnce.Do(func() { firstErr = err })
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	go func() {
		defer close(m.done)
		ch, unsub := w.Subscribe()
		defer unsub()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			have := map[string]bool{}
			total := 0
			for _, s := range w.Services() {
				total += len(s.Instances)
				if s.Name == service {
					for _, in := range s.Instances {
						have[in.ID] = true
					}
				}
			}
			n := 0
			for id := range want {
				if have[id] {
					n++
				} else if m.res.firstLoss == "" {
					m.res.firstLoss = fmt.Sprintf("instance %s missing at %s (Services() held %d instances)", id, time.Now().Format(time.TimeOnly+".000"), total)
				}
			}
			m.res.minInstances = min(m.res.minInstances, n)
			select {
			case <-ctx.Done():
				wg.Wait()
				m.res.calls, m.res.failed, m.res.firstErr = int(calls.Load()), int(failed.Load()), firstErr
				return
			case <-ch:
			case <-tick.C:
			}
		}
	}()
	return m
}

// stop ends the monitor and returns what it saw. Safe to call again.
func (m *viewMonitor) stop() viewResult {
	m.once.Do(func() {
		m.cancel()
		<-m.done
	})
	return m.res
}
