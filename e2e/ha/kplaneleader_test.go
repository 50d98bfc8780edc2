package ha

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/headquarter"
	"github.com/kplane/kplane/internal/etcdcluster"
)

// The elections kplane runs (cmd/kplane autoscaler.go and hawaii.go).
var elections = map[string]string{
	"headquarter": headquarter.DefaultLeaderPrefix,
	"hawaii":      "/kplane/hawaii/leader",
}

// Run three `kplane server` replicas against a three-member etcd cluster,
// each with its own data dir and SQLite store, the autoscaler and the
// pipeline on; SIGKILL the elected leader: another replica leads within
// 15 s, the survivors answer /healthz, the sign-in page and span ingest
// throughout, and the old leader's fence is refused once it is deposed.
func TestKillKplaneLeader(t *testing.T) {
	const (
		replicas    = 3
		leadBound   = 15 * time.Second // issue #7
		probeEvery  = 100 * time.Millisecond
		probeTail   = 2 * time.Second // keep probing after the new leader
		startBudget = 90 * time.Second
	)
	bin := kplaneBinary(t)
	cluster := etcdcluster.Start(t, etcdcluster.Config{})
	cli := cluster.Client(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	var rs []*replica
	for i := range replicas {
		rs = append(rs, startReplica(t, bin, fmt.Sprintf("r%d", i), cluster.Endpoints()))
	}
	for _, r := range rs {
		r.waitServing(t, startBudget)
	}

	// Both elections settle on a replica.
	oldLeaders := map[string]*replica{}
	var oldFence headquarter.Fence
	for name, prefix := range elections {
		kv, r := waitLeader(t, ctx, cli, prefix, rs, nil, 30*time.Second)
		oldLeaders[name] = r
		t.Logf("%s leader: %s (%s)", name, r.name, kv.Value)
		if name == "headquarter" {
			oldFence = headquarter.Fence{Key: string(kv.Key), Revision: kv.CreateRevision}
		}
	}
	victim := oldLeaders["headquarter"]
	checker, err := headquarter.NewLeader(headquarter.LeaderConfig{Client: cli, ID: "ha-test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := checker.Check(ctx, oldFence); err != nil {
		t.Fatalf("the leader's own fence is refused while it leads: %v", err)
	}

	var survivors []*replica
	for _, r := range rs {
		if r != victim {
			survivors = append(survivors, r)
		}
	}
	probes := startProbes(survivors, probeEvery)
	defer probes.stop()
	time.Sleep(500 * time.Millisecond) // a few probes before the kill, to compare

	killed := time.Now()
	victim.kill(t)
	t.Logf("SIGKILLed %s, leader of %v", victim.name, leaderOf(oldLeaders, victim))

	// Another replica leads each election the victim led.
	took := map[string]time.Duration{}
	for name, prefix := range elections {
		if oldLeaders[name] != victim {
			continue
		}
		_, r := waitLeader(t, ctx, cli, prefix, survivors, victim, 60*time.Second)
		took[name] = time.Since(killed)
		t.Logf("%s: %s leads %s after the kill", name, r.name, took[name].Round(time.Millisecond))
	}

	// Fencing: the deposed leader's term is over for etcd, whatever the
	// old process might still believe; the new one's holds.
	oldErr := checker.Check(ctx, oldFence)
	if !errors.Is(oldErr, headquarter.ErrNotLeader) {
		t.Errorf("an action fenced with the deposed leader's revision %d: Check = %v, want ErrNotLeader", oldFence.Revision, oldErr)
	}
	kv, _ := waitLeader(t, ctx, cli, elections["headquarter"], survivors, victim, time.Second)
	newFence := headquarter.Fence{Key: string(kv.Key), Revision: kv.CreateRevision}
	if err := checker.Check(ctx, newFence); err != nil {
		t.Errorf("the new leader's fence (revision %d) is refused: %v", newFence.Revision, err)
	}
	t.Logf("old term's fence: %v; new term's fence (revision %d) holds", oldErr, newFence.Revision)

	time.Sleep(probeTail)
	res := probes.stop()
	for _, line := range res.summary() {
		t.Log(line)
	}
	if d, ok := took["headquarter"]; ok && d > leadBound {
		t.Errorf("a new headquarter leader after %s, want within %s", d, leadBound)
	}
	if d, ok := took["hawaii"]; ok && d > leadBound {
		t.Errorf("a new pipeline leader after %s, want within %s", d, leadBound)
	}
	if f := res.failures(); f != "" {
		t.Errorf("survivors failed requests around the failover: %s", f)
	}
	for _, r := range survivors {
		r.stop(t)
	}
}

// replica is one `kplane server` process.
type replica struct {
	name    string
	url     string
	dataDir string
	cmd     *exec.Cmd
	exited  chan struct{}

	mu  sync.Mutex
	out bytes.Buffer
}

func (r *replica) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.Write(b)
}

func (r *replica) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// startReplica runs `kplane server` with a production-style config file:
// the external etcd cluster, SQLite in its own data dir, the autoscaler
// (scrape source, 1 s ticks) and the demo pipeline on, with no demo
// instances started, so the replicas run both elections and nothing else.
func startReplica(t *testing.T, bin, name string, endpoints []string) *replica {
	t.Helper()
	dir := t.TempDir()
	listen := freeAddr(t)
	config := fmt.Sprintf(`listen: %s
data_dir: %s
etcd:
  endpoints: [%s]
demo:
  enabled: true
  inventory: 0
  checkpoint: 0
autoscaler:
  enabled: true
  interval: 1s
`, listen, dir, strings.Join(endpoints, ", "))
	file := filepath.Join(dir, "kplane.yaml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &replica{name: name, url: "http://" + listen, dataDir: dir, exited: make(chan struct{})}
	r.cmd = exec.Command(bin, "server", "--config", file)
	r.cmd.Stdout, r.cmd.Stderr = r, r
	r.cmd.Env = append(os.Environ(), "KPLANE_LOG_LEVEL=info")
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			r.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-r.exited:
			case <-time.After(30 * time.Second):
				r.cmd.Process.Kill()
				<-r.exited
			}
		}
		if t.Failed() {
			t.Logf("kplane %s output:\n%s", r.name, r.output())
		}
	})
	return r
}

// id is the replica's name in the elections: headquarter.Leader's default,
// hostname-pid.
func (r *replica) id() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, r.cmd.Process.Pid)
}

func (r *replica) waitServing(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(r.output(), "kplane is serving") {
		select {
		case <-r.exited:
			t.Fatalf("kplane %s exited before serving:\n%s", r.name, r.output())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("kplane %s not serving after %s:\n%s", r.name, within, r.output())
		}
	}
}

func (r *replica) kill(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-r.exited
}

// stop sends SIGINT and waits for a clean exit.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	r.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("kplane %s still running 30 s after SIGINT", r.name)
		return
	}
	if err := r.cmd.ProcessState; err != nil && !err.Success() {
		t.Errorf("kplane %s exited with %v after SIGINT", r.name, err)
	}
}

// waitLeader waits until the election under prefix is led by one of rs
// other than not, and returns the leader's key and that replica.
func waitLeader(t *testing.T, ctx context.Context, cli *clientv3.Client, prefix string, rs []*replica, not *replica, within time.Duration) (*leaderKey, *replica) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := cli.Get(gctx, prefix+"/", clientv3.WithFirstCreate()...)
		cancel()
		if err == nil && len(resp.Kvs) > 0 {
			kv := resp.Kvs[0]
			last = string(kv.Value)
			for _, r := range rs {
				if r != not && r.id() == last {
					return &leaderKey{Key: kv.Key, Value: string(kv.Value), CreateRevision: kv.CreateRevision}, r
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica leads %s within %s (last leader %q, err %v)", prefix, within, last, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leaderKey is the part of an election key the test uses.
type leaderKey struct {
	Key            []byte
	Value          string
	CreateRevision int64
}

func leaderOf(leaders map[string]*replica, r *replica) []string {
	var out []string
	for name, l := range leaders {
		if l == r {
			out = append(out, name)
		}
	}
	return out
}

// probes call every survivor's /healthz, sign-in page and span ingest at a
// fixed rate and count what failed.
type probes struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu    sync.Mutex
	stats map[string]*probeStat // "replica endpoint"
}

type probeStat struct {
	ok, failed int
	first      string
}

type probeResult map[string]probeStat

func startProbes(rs []*replica, every time.Duration) *probes {
	ctx, cancel := context.WithCancel(context.Background())
	p := &probes{cancel: cancel, stats: map[string]*probeStat{}}
	client := &http.Client{Timeout: 2 * time.Second}
	for _, r := range rs {
		for _, pr := range []struct {
			name string
			req  func() (*http.Request, error)
			want int
		}{
			{"GET /healthz", func() (*http.Request, error) { return http.NewRequest("GET", r.url+"/healthz", nil) }, http.StatusOK},
			{"GET /login", func() (*http.Request, error) { return http.NewRequest("GET", r.url+"/login", nil) }, http.StatusOK},
			{"POST /api/v2/spans", func() (*http.Request, error) {
				req, err := http.NewRequest("POST", r.url+"/api/v2/spans", strings.NewReader(zipkinSpan()))
				if err == nil {
					req.Header.Set("Content-Type", "application/json")
				}
				return req, err
			}, http.StatusAccepted},
		} {
			key := r.name + " " + pr.name
			p.stats[key] = &probeStat{}
			p.wg.Go(func() {
				tick := time.NewTicker(every)
				defer tick.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					req, err := pr.req()
					var status int
					if err == nil {
						var resp *http.Response
						if resp, err = client.Do(req); err == nil {
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							status = resp.StatusCode
						}
					}
					p.mu.Lock()
					s := p.stats[key]
					switch {
					case err != nil:
						s.failed++
						if s.first == "" {
							s.first = fmt.Sprintf("%s: %v", time.Now().Format(time.TimeOnly+".000"), err)
						}
					case status != pr.want:
						s.failed++
						if s.first == "" {
							s.first = fmt.Sprintf("%s: status %d, want %d", time.Now().Format(time.TimeOnly+".000"), status, pr.want)
						}
					default:
						s.ok++
					}
					p.mu.Unlock()
				}
			})
		}
	}
	return p
}

// stop ends the probes and returns their counts. Safe to call again.
func (p *probes) stop() probeResult {
	p.once.Do(func() {
		p.cancel()
		p.wg.Wait()
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	out := probeResult{}
	for k, s := range p.stats {
		out[k] = *s
	}
	return out
}

func (r probeResult) summary() []string {
	var out []string
	for k, s := range r {
		out = append(out, fmt.Sprintf("%s: %d ok, %d failed", k, s.ok, s.failed))
	}
	slices.Sort(out)
	return out
}

func (r probeResult) failures() string {
	var out []string
	for k, s := range r {
		if s.failed > 0 || s.ok == 0 {
			out = append(out, fmt.Sprintf("%s: %d of %d failed, first %s", k, s.failed, s.ok+s.failed, s.first))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// zipkinSpan is a one-span Zipkin v2 batch with fresh IDs.
func zipkinSpan() string {
	trace, span := make([]byte, 16), make([]byte, 8)
	rand.Read(trace)
	rand.Read(span)
	return fmt.Sprintf(`[{"traceId":%q,"id":%q,"name":"probe","kind":"SERVER","timestamp":%d,"duration":1000,"localEndpoint":{"serviceName":"ha-probe"}}]`,
		hex.EncodeToString(trace), hex.EncodeToString(span), time.Now().UnixMicro())
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
