package ha

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
)

// Cut 100 registrars off from etcd for 60 s (their leases expire, their
// keys are deleted), then restore the network: every instance is
// registered again within the bound the registry documents, and the
// re-registrations are spread out rather than a storm in one instant.
func TestRegistrarCutOff(t *testing.T) {
	const (
		instances = 100
		service   = "checkpoint"
		cut       = 60 * time.Second // issue #7
	)
	// The registry's own bound after a restore (RegisterAgainWithin with
	// gRPC's 20% reconnect jitter), plus room for Grant, Put and a busy
	// machine.
	bound := registry.RegisterAgainWithin*6/5 + 500*time.Millisecond

	srv := etcdtest.Start(t)
	proxy := srv.Proxy(t)
	direct := srv.Client(t)
	ctx, cancel := context.WithTimeout(t.Context(), cut+60*time.Second)
	defer cancel()
	prefix := registry.DefaultPrefix + service + "/"

	ev := startKeyLog(ctx, direct, prefix)
	var runs sync.WaitGroup
	defer runs.Wait()
	regCtx, stopRegistrars := context.WithCancel(ctx)
	defer stopRegistrars()
	for i := range instances {
		// One client each, configured as production configures it, all
		// through the proxy: a hundred processes behind one partition.
		cli := connect(t, proxy.Endpoints())
		r, err := registry.NewRegistrar(registry.RegistrarConfig{
			Client:   cli,
			Instance: registry.Instance{ID: fmt.Sprintf("c%03d", i), Name: service, Addr: fmt.Sprintf("127.0.0.1:%d", 20000+i), Version: "1"},
		})
		if err != nil {
			t.Fatal(err)
		}
		runs.Go(func() { r.Run(regCtx) })
	}
	waitCount(t, ctx, direct, prefix, instances, 20*time.Second)

	cutAt := time.Now()
	proxy.Cut()
	t.Logf("cut %d registrars off from etcd for %s", instances, cut)
	// Their leases expire a TTL into the cut: the instances are gone.
	waitCount(t, ctx, direct, prefix, 0, registry.DefaultTTL+10*time.Second)
	t.Logf("all %d registrations expired %s into the cut", instances, time.Since(cutAt).Round(100*time.Millisecond))
	time.Sleep(time.Until(cutAt.Add(cut)))

	healAt := time.Now()
	proxy.Heal()
	waitCount(t, ctx, direct, prefix, instances, 15*time.Second)
	back := ev.putsSince(healAt)
	if len(back) != instances {
		t.Fatalf("%d instances registered again after the restore, want %d", len(back), instances)
	}
	delays := make([]time.Duration, 0, len(back))
	for _, at := range back {
		delays = append(delays, at.Sub(healAt))
	}
	slices.Sort(delays)
	q := func(p float64) time.Duration { return delays[int(p*float64(len(delays)-1))].Round(time.Millisecond) }
	spread := delays[len(delays)-1] - delays[0]
	densest := densestWindow(delays, 100*time.Millisecond)
	t.Logf("re-registration after the restore: min %s, p50 %s, p90 %s, max %s; spread %s; at most %d of %d within any 100 ms",
		q(0), q(0.5), q(0.9), q(1), spread.Round(time.Millisecond), densest, instances)

	t.Logf("re-registrations per 250 ms after the restore: %v", histogram(delays, 250*time.Millisecond))

	if max := delays[len(delays)-1]; max > bound {
		t.Errorf("the last instance was back %s after the restore, want within %s", max, bound)
	}
	// Jitter: not everyone at once. Without it the hundred would arrive
	// within a few milliseconds of each other.
	if spread < 300*time.Millisecond || densest > instances/2 {
		t.Errorf("re-registrations spread over %s, %d of %d within 100 ms: a reconnect storm, want jitter", spread, densest, instances)
	}
}

// histogram counts sorted durations per bucket of width w, from zero.
func histogram(sorted []time.Duration, w time.Duration) []int {
	out := make([]int, int(sorted[len(sorted)-1]/w)+1)
	for _, d := range sorted {
		out[int(d/w)]++
	}
	return out
}

// densestWindow returns the most sorted durations that fall within any
// window of width w.
func densestWindow(sorted []time.Duration, w time.Duration) int {
	best, j := 0, 0
	for i := range sorted {
		for sorted[i]-sorted[j] > w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// waitCount waits until exactly n keys are under prefix, failing the test
// after within.
func waitCount(t *testing.T, ctx context.Context, c *clientv3.Client, prefix string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := c.Get(gctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		cancel()
		if err == nil && resp.Count == int64(n) {
			return
		}
		if time.Now().After(deadline) {
			got := int64(-1)
			if resp != nil {
				got = resp.Count
			}
			t.Fatalf("%d keys under %s, want %d within %s (err %v)", got, prefix, n, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// keyLog records when each key under a prefix was last put, as seen by a
// watch on a client that is not cut off.
type keyLog struct {
	mu   sync.Mutex
	puts map[string]time.Time
}

func startKeyLog(ctx context.Context, c *clientv3.Client, prefix string) *keyLog {
	l := &keyLog{puts: map[string]time.Time{}}
	wch := c.Watch(ctx, prefix, clientv3.WithPrefix())
	go func() {
		for resp := range wch {
			now := time.Now()
			l.mu.Lock()
			for _, e := range resp.Events {
				if e.Type == clientv3.EventTypePut {
					l.puts[string(e.Kv.Key)] = now
				}
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// putsSince returns the keys put at or after t, with when.
func (l *keyLog) putsSince(t time.Time) map[string]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]time.Time{}
	for k, at := range l.puts {
		if !at.Before(t) {
			out[k] = at
		}
	}
	return out
}
