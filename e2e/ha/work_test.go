package ha

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/hawaii"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman/docker"
)

// The work the leader test gives kplane, and how it watches it: the
// registry, the engine, the shared store.

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// apiCall sends an authenticated API request to r.
func apiCall(ctx context.Context, r *replica, token, method, path, body string) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, r.url+path, strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

// removeDemoImage removes, at the end of the test, the demo image the
// replicas build from bin (cmd/kplane newDockerDemoDriver names it by the
// binary's hash).
func removeDemoImage(t *testing.T, dcli *client.Client, bin string) {
	t.Helper()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	tag := "kplane-demo:" + hex.EncodeToString(sum[:6])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := dcli.ImageRemove(ctx, tag, image.RemoveOptions{PruneChildren: true}); err != nil && !client.IsErrNotFound(err) {
			t.Logf("remove image %s: %v", tag, err)
		}
	})
}

func envFilter(env string) filters.Args {
	return filters.NewArgs(filters.Arg("label", docker.LabelManaged+"=true"), filters.Arg("label", docker.LabelEnv+"="+env),
		filters.Arg("label", docker.LabelService+"="+workService))
}

// countContainers counts the running inventory containers of env.
func countContainers(t *testing.T, ctx context.Context, dcli *client.Client, env string) int {
	t.Helper()
	cs, err := dcli.ContainerList(ctx, container.ListOptions{All: true, Filters: envFilter(env)})
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	return len(cs)
}

// containerEvents counts the starts and deaths of inventory containers
// in the work env since the given time, from the engine's event log.
func containerEvents(t *testing.T, ctx context.Context, dcli *client.Client, since time.Time) (starts, deaths int) {
	t.Helper()
	f := envFilter(workEnv)
	f.Add("type", string(events.ContainerEventType))
	msgs, errs := dcli.Events(ctx, events.ListOptions{Since: strconv.FormatInt(since.Unix(), 10),
		Until: strconv.FormatInt(time.Now().Unix()+1, 10), Filters: f})
	for {
		select {
		case m := <-msgs:
			switch m.Action {
			case events.ActionStart:
				starts++
			case events.ActionDie:
				deaths++
			}
		case err := <-errs:
			if err != nil && err != io.EOF {
				t.Fatalf("docker events: %v", err)
			}
			return starts, deaths
		}
	}
}

// registered lists the registered inventory instances of the work env.
func registered(ctx context.Context, cli *clientv3.Client) ([]registry.Instance, error) {
	gctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := cli.Get(gctx, registry.DefaultPrefix+workService+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []registry.Instance
	for _, kv := range resp.Kvs {
		var in registry.Instance
		if json.Unmarshal(kv.Value, &in) == nil && in.Env == workEnv {
			out = append(out, in)
		}
	}
	return out, nil
}

// waitInstances waits until n inventory instances run and are registered,
// and returns when.
func waitInstances(t *testing.T, ctx context.Context, cli *clientv3.Client, dcli *client.Client, n int, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ins, err := registered(ctx, cli)
		c := countContainers(t, ctx, dcli, workEnv)
		if err == nil && len(ins) == n && c == n {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d registered (%v), %d containers after %s, want %d", workService, len(ins), err, c, within, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitJobRunning waits until the build reported with guid runs its alpha
// test job, and returns the build.
func waitJobRunning(t *testing.T, ctx context.Context, builds *hawaii.SQLStore, guid string, within time.Duration) hawaii.Build {
	t.Helper()
	deadline := time.Now().Add(within)
	var last hawaii.StageRecord
	for {
		bs, err := builds.Builds(ctx, hawaii.BuildQuery{Service: workService, Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			if b.GUID != guid {
				continue
			}
			last = b.Stage(hawaii.StageAlpha)
			for _, s := range last.Steps {
				if s.Name == "test job slow" && s.Status == hawaii.StatusRunning {
					return b.Build
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alpha's test job of build %s not running after %s: %+v", guid, within, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitStageDone waits until the build's alpha stage has ended.
func waitStageDone(t *testing.T, ctx context.Context, builds *hawaii.SQLStore, id int64, within time.Duration) hawaii.StageRecord {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		b, err := builds.Build(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if st := b.Stage(hawaii.StageAlpha); st.Status == hawaii.StatusPassed || st.Status == hawaii.StatusFailed {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("alpha of build %d still %s after %s", id, b.Stage(hawaii.StageAlpha).Status, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// load sends GET /events to the registered inventory instances in turn at
// a fixed rate, as clients of the service would.
type load struct {
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	once       sync.Once
	ok, failed atomic.Int64
}

func startLoad(cli *clientv3.Client, rate int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	var mu sync.Mutex
	var addrs []string
	refresh := func() {
		ins, err := registered(ctx, cli)
		if err != nil {
			return
		}
		var a []string
		for _, in := range ins {
			a = append(a, in.Addr)
		}
		mu.Lock()
		addrs = a
		mu.Unlock()
	}
	refresh()
	hc := &http.Client{Timeout: 2 * time.Second}
	l.wg.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		again := time.NewTicker(250 * time.Millisecond)
		defer again.Stop()
		var n int
		for {
			select {
			case <-ctx.Done():
				return
			case <-again.C:
				refresh()
				continue
			case <-tick.C:
			}
			mu.Lock()
			if len(addrs) == 0 {
				mu.Unlock()
				continue
			}
			addr := addrs[n%len(addrs)]
			mu.Unlock()
			n++
			l.wg.Go(func() {
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/events", nil)
				resp, err := hc.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				switch {
				case ctx.Err() != nil:
				case err != nil || resp.StatusCode != http.StatusOK:
					l.failed.Add(1)
				default:
					l.ok.Add(1)
				}
			})
		}
	})
	return l
}

// stop ends the load and returns its counts. Safe to call again.
func (l *load) stop() (ok, failed int64) {
	l.once.Do(func() {
		l.cancel()
		l.wg.Wait()
	})
	return l.ok.Load(), l.failed.Load()
}
