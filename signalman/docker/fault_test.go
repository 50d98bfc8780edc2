package docker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/kplane/kplane/internal/dockertest"
	"github.com/kplane/kplane/signalman"
	"github.com/kplane/kplane/signalman/docker"
)

// Issue 7's "Docker engine errors during a scale or deploy": the driver
// talks to the real engine through faultProxy, which fails chosen API
// calls. Whatever fails, a scale ends with an error that kplane records as
// outcome "failed" (not "busy": nothing else was changing the target), a
// deploy ends rolled back or failed with every step recorded, and the
// engine holds exactly the containers the driver reports, registered; once
// the proxy heals, the same call succeeds.

// faultMode is how a matched call fails.
type faultMode int

const (
	// fail500 answers 500 without telling the engine.
	fail500 faultMode = iota
	// dropAfter lets the engine carry the call out, then closes the
	// client's connection without an answer: the client cannot know
	// whether it happened.
	dropAfter
)

func (m faultMode) String() string {
	return [...]string{"500", "connection dropped after the engine acted"}[m]
}

// fault fails the calls that match method and path (without the /v1.xx
// prefix), after letting skip of them through, times times (0: forever).
type fault struct {
	method string
	path   *regexp.Regexp
	mode   faultMode
	skip   int
	times  int
	seen   int
	hit    int
}

// faultProxy is an HTTP proxy on a unix socket in front of the engine's
// API.
type faultProxy struct {
	sock     string
	upstream *http.Transport
	rp       *httputil.ReverseProxy
	srv      *http.Server

	mu     sync.Mutex
	faults []*fault
	hits   []string // "METHOD path: mode", in order
}

var apiVersion = regexp.MustCompile(`^/v[0-9.]+`)

// newFaultProxy starts a proxy to the engine cli talks to.
func newFaultProxy(t *testing.T, cli *client.Client) *faultProxy {
	t.Helper()
	u, err := url.Parse(cli.DaemonHost())
	if err != nil {
		t.Fatal(err)
	}
	network, addr := "tcp", u.Host
	if u.Scheme == "unix" {
		network, addr = "unix", u.Path
	}
	dir, err := os.MkdirTemp("", "kpd") // unix socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{sock: filepath.Join(dir, "docker.sock")}
	p.upstream = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "docker"
		},
		Transport:     p.upstream,
		FlushInterval: -1, // ContainerWait streams
	}
	ln, err := net.Listen("unix", p.sock)
	if err != nil {
		t.Fatal(err)
	}
	p.srv = &http.Server{Handler: p}
	go p.srv.Serve(ln)
	t.Cleanup(func() {
		p.srv.Close()
		p.upstream.CloseIdleConnections()
		os.RemoveAll(dir)
	})
	return p
}

// client returns an engine client that talks through the proxy.
func (p *faultProxy) client(t *testing.T) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+p.sock), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// inject adds faults; heal removes them all and forgets what they did.
func (p *faultProxy) inject(fs ...*fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, fs...)
}

func (p *faultProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults, p.hits = nil, nil
}

func (p *faultProxy) injected() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.hits)
}

func (p *faultProxy) match(r *http.Request) (faultMode, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	path := apiVersion.ReplaceAllString(r.URL.Path, "")
	for _, f := range p.faults {
		if f.method != r.Method || !f.path.MatchString(path) {
			continue
		}
		f.seen++
		if f.seen <= f.skip || (f.times > 0 && f.hit >= f.times) {
			continue
		}
		f.hit++
		p.hits = append(p.hits, fmt.Sprintf("%s %s: %s", r.Method, path, f.mode))
		return f.mode, true
	}
	return 0, false
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mode, ok := p.match(r)
	if !ok {
		p.rp.ServeHTTP(w, r)
		return
	}
	switch mode {
	case fail500:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintln(w, `{"message": "injected engine error"}`)
	case dropAfter:
		out := r.Clone(r.Context())
		out.URL.Scheme, out.URL.Host, out.RequestURI = "http", "docker", ""
		if resp, err := p.upstream.RoundTrip(out); err == nil {
			resp.Body.Close()
		}
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
	}
}

var (
	pathCreate = regexp.MustCompile(`^/containers/create$`)
	pathStart  = regexp.MustCompile(`^/containers/[^/]+/start$`)
	pathStop   = regexp.MustCompile(`^/containers/[^/]+/stop$`)
	pathRemove = regexp.MustCompile(`^/containers/[^/]+$`)
)

// newFaultFixture is newFixture with the driver behind a fault proxy.
func newFaultFixture(t *testing.T) (*fixture, *faultProxy) {
	t.Helper()
	p := newFaultProxy(t, dockertest.Client(t))
	f := newFixture(t, func(c *docker.Config) { c.Client = p.client(t) })
	// Runs before the fixture's own cleanup, which goes through the proxy.
	t.Cleanup(p.heal)
	return f, p
}

// engineState lists the test's containers of service as the engine has
// them: name → state.
func (f *fixture) engineState(t *testing.T, service string) map[string]string {
	t.Helper()
	args := filters.NewArgs(filters.Arg("label", "kplane.managed=true"), filters.Arg("label", "kplane.env="+f.env),
		filters.Arg("label", "kplane.service="+service))
	cs, err := f.cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: args})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range cs {
		out[strings.TrimPrefix(c.Names[0], "/kplane-")] = string(c.State)
	}
	return out
}

// consistent checks that the engine runs exactly the instances the driver
// reports, each registered, and no other container of the target (none
// created, exited or half-removed), and returns them.
func (f *fixture) consistent(t *testing.T, tg signalman.Target) []signalman.Instance {
	t.Helper()
	insts, err := f.driver.Instances(context.Background(), tg)
	if err != nil {
		t.Fatalf("Instances: %v", err)
	}
	engine := f.engineState(t, tg.Service)
	want := map[string]string{}
	for _, in := range insts {
		want[in.ID] = "running"
	}
	if !mapsEqual(engine, want) {
		t.Errorf("the engine has %v; the driver reports %v", engine, ids(insts))
	}
	// Deregistration of a stopped container shows in the watcher a
	// moment later.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		reg := f.registered(tg.Service)
		if slices.Equal(reg, ids(insts)) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("registered %v; the driver reports %v", reg, ids(insts))
			break
		}
	}
	return insts
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// failedOutcome is how cmd/kplane's orchestratorScaler classifies a scale
// error: ErrBusy is "busy", anything else "failed".
func failedOutcome(err error) string {
	switch {
	case err == nil:
		return "done"
	case errors.Is(err, signalman.ErrBusy):
		return "busy"
	}
	return "failed"
}

func TestScaleEngineErrors(t *testing.T) {
	t.Parallel()
	f, p := newFaultFixture(t)
	ctx := t.Context()
	tg := f.target("inventory")
	if _, err := f.driver.Scale(ctx, tg, 1); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		from, to int
		faults   []*fault
	}{
		{"create of the second new container fails", 1, 3, []*fault{{method: "POST", path: pathCreate, mode: fail500, skip: 1}}},
		{"create dropped after the engine created it", 1, 2, []*fault{{method: "POST", path: pathCreate, mode: dropAfter}}},
		{"start fails", 1, 2, []*fault{{method: "POST", path: pathStart, mode: fail500}}},
		{"start dropped after the engine started it", 1, 2, []*fault{{method: "POST", path: pathStart, mode: dropAfter}}},
		{"stop and remove fail", 3, 1, []*fault{
			{method: "POST", path: pathStop, mode: fail500, times: 1},
			{method: "DELETE", path: pathRemove, mode: fail500, times: 1},
		}},
		{"remove dropped after the engine removed it", 3, 1, []*fault{{method: "DELETE", path: pathRemove, mode: dropAfter}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.driver.Scale(ctx, tg, tc.from); err != nil {
				t.Fatalf("setup: scale to %d: %v", tc.from, err)
			}
			p.inject(tc.faults...)
			start := time.Now()
			res, err := f.driver.Scale(ctx, tg, tc.to)
			took := time.Since(start)
			injected := p.injected()
			p.heal()
			insts := f.consistent(t, tg)
			t.Logf("scale %d→%d with %v: outcome %s in %s, %d instances after: %v", tc.from, tc.to, injected,
				failedOutcome(err), took.Round(time.Millisecond), len(insts), err)
			if len(injected) == 0 {
				t.Fatalf("no fault was injected")
			}
			if err != nil {
				if failedOutcome(err) != "failed" {
					t.Errorf("outcome %s (%v), want failed", failedOutcome(err), err)
				}
				// What the result claims is what happened.
				if res.To != len(insts) {
					t.Errorf("failed scale reports %d instances (%+v); the driver runs %d", res.To, res, len(insts))
				}
			} else if len(insts) != tc.to {
				t.Errorf("scale succeeded with %d instances, want %d", len(insts), tc.to)
			}
			// Healed: the same call succeeds.
			if _, err := f.driver.Scale(ctx, tg, tc.to); err != nil {
				t.Fatalf("scale to %d once healed: %v", tc.to, err)
			}
			if got := f.consistent(t, tg); len(got) != tc.to {
				t.Errorf("%d instances after the healed scale, want %d", len(got), tc.to)
			}
		})
	}
}

func TestDeployEngineErrors(t *testing.T) {
	t.Parallel()
	f, p := newFaultFixture(t)
	ctx := t.Context()
	tg := f.target("inventory")
	if _, err := f.driver.Scale(ctx, tg, 2); err != nil {
		t.Fatal(err)
	}
	dep, err := signalman.NewDeployer(signalman.DeployerConfig{Driver: f.driver,
		Gate: signalman.HTTPGate{Locator: f.watcher, Interval: 100 * time.Millisecond, Successes: 2, Timeout: 15 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	current := "1.0.0"
	for i, tc := range []struct {
		name   string
		faults []*fault
		want   signalman.DeployState
	}{
		{"start of the second new instance fails", []*fault{{method: "POST", path: pathStart, mode: fail500, skip: 1, times: 1}},
			signalman.DeployRolledBack},
		{"start of the second new instance dropped after the engine started it", []*fault{{method: "POST", path: pathStart, mode: dropAfter, skip: 1, times: 1}},
			signalman.DeployRolledBack},
		{"stop of an old instance fails", []*fault{
			{method: "POST", path: pathStop, mode: fail500, times: 1},
			{method: "DELETE", path: pathRemove, mode: fail500, times: 1},
		}, signalman.DeployRolledBack},
		// The rollback's starts fail too: the deploy fails, half rolled.
		{"every start after the first fails", []*fault{{method: "POST", path: pathStart, mode: fail500, skip: 1}},
			signalman.DeployFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			version := fmt.Sprintf("%d.0.0", i+2)
			before := f.consistent(t, tg)
			p.inject(tc.faults...)
			start := time.Now()
			d, err := dep.Deploy(ctx, signalman.DeployRequest{Target: tg, Version: version})
			took := time.Since(start)
			injected := p.injected()
			p.heal()
			if err != nil {
				t.Fatalf("deploy %s: %v", version, err)
			}
			insts := f.consistent(t, tg)
			t.Logf("deploy %s→%s with %v: %s in %s, %d steps: %s", current, version, injected, d.State,
				took.Round(time.Millisecond), len(d.Steps), d.Error)
			if len(injected) == 0 {
				t.Fatalf("no fault was injected")
			}
			if d.State != tc.want || d.Ended.IsZero() {
				t.Errorf("deploy ended %s (ended %v), want %s: %s", d.State, d.Ended, tc.want, d.Error)
			}
			// The steps account for every change: replayed on the
			// instances before, they give the instances after.
			set := map[string]bool{}
			for _, in := range before {
				set[in.ID] = true
			}
			for _, s := range d.Steps {
				if s.Outcome == signalman.OutcomeFailed && s.Error == "" {
					t.Errorf("failed step without its error: %+v", s)
				}
				if s.Outcome != signalman.OutcomeOK || s.Instance == "" {
					continue
				}
				switch s.Action {
				case signalman.ActionStart:
					set[s.Instance] = true
				case signalman.ActionStop:
					delete(set, s.Instance)
				}
			}
			var replayed []string
			for id := range set {
				replayed = append(replayed, id)
			}
			slices.Sort(replayed)
			if !slices.Equal(replayed, ids(insts)) {
				t.Errorf("the steps give %v; the driver runs %v; steps:\n%s", replayed, ids(insts), formatSteps(d.Steps))
			}
			if d.State == signalman.DeployRolledBack {
				for _, in := range insts {
					if in.Version != current {
						t.Errorf("rolled back, but %s runs %s, not %s", in.ID, in.Version, current)
					}
				}
			}

			// Healed: the same deploy succeeds.
			d, err = dep.Deploy(ctx, signalman.DeployRequest{Target: tg, Version: version, Instances: 2})
			if err != nil || d.State != signalman.DeploySucceeded {
				t.Fatalf("deploy %s once healed: %v, %s: %s\n%s", version, err, d.State, d.Error, formatSteps(d.Steps))
			}
			insts = f.consistent(t, tg)
			for _, in := range insts {
				if in.Version != version {
					t.Errorf("after the healed deploy %s runs %s, want %s", in.ID, in.Version, version)
				}
			}
			if len(insts) != 2 {
				t.Errorf("%d instances after the healed deploy, want 2", len(insts))
			}
			current = version
		})
	}
}

func formatSteps(steps []signalman.Step) string {
	var b strings.Builder
	for _, s := range steps {
		fmt.Fprintf(&b, "  %s %s %s %s %s\n", s.Action, s.Instance, s.Version, s.Outcome, s.Error)
	}
	return b.String()
}
