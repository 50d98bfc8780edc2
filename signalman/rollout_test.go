package signalman_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
)

// fleet is an in-memory InstanceDriver and HealthGate: instances exist as
// records, an instance serves once it passed the gate, and the fleet
// tracks the extremes of running and serving counts per target so the
// tests can check a deploy's bounds.
type fleet struct {
	mu       sync.Mutex
	next     map[signalman.Target]int
	insts    map[signalman.Target][]signalman.Instance
	serving  map[string]bool
	bad      map[string]bool // versions that fail the gate
	hold     chan struct{}   // if set, the gate waits on it
	maxRun   int
	minServe int
	watching bool
}

func newFleet() *fleet {
	return &fleet{next: map[signalman.Target]int{}, insts: map[signalman.Target][]signalman.Instance{},
		serving: map[string]bool{}, bad: map[string]bool{}, minServe: 1 << 30}
}

var _ signalman.InstanceDriver = (*fleet)(nil)

func (f *fleet) Scale(ctx context.Context, t signalman.Target, n int) (signalman.Result, error) {
	res := signalman.Result{Target: t, From: len(f.list(t))}
	for len(f.list(t)) < n {
		in, err := f.Start(ctx, t, "1.0")
		if err != nil {
			return res, err
		}
		f.mu.Lock()
		f.serving[in.ID] = true
		f.mu.Unlock()
		res.Started = append(res.Started, in.ID)
	}
	res.To = n
	return res, nil
}

func (f *fleet) list(t signalman.Target) []signalman.Instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.insts[t])
}

func (f *fleet) Instances(_ context.Context, t signalman.Target) ([]signalman.Instance, error) {
	return f.list(t), nil
}

func (f *fleet) Start(_ context.Context, t signalman.Target, version string) (signalman.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next[t]++
	in := signalman.Instance{ID: fmt.Sprintf("%s-%d", t, f.next[t]), Target: t, Version: version, Started: time.Now()}
	f.insts[t] = append(f.insts[t], in)
	f.observe(t)
	return in, nil
}

func (f *fleet) Stop(_ context.Context, t signalman.Target, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.insts[t], func(in signalman.Instance) bool { return in.ID == id })
	if i < 0 {
		return signalman.ErrUnknownInstance
	}
	// Draining: it stops taking traffic before it stops running.
	delete(f.serving, id)
	f.observe(t)
	f.insts[t] = slices.Delete(f.insts[t], i, i+1)
	return nil
}

func (f *fleet) DestroyEnv(_ context.Context, env string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for t := range f.insts {
		if t.Env == env {
			delete(f.insts, t)
		}
	}
	return nil
}

func (f *fleet) Healthy(ctx context.Context, in signalman.Instance) error {
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bad[in.Version] {
		return fmt.Errorf("%w: %s answers 500", signalman.ErrUnhealthy, in.ID)
	}
	f.serving[in.ID] = true
	f.observe(in.Target)
	return nil
}

// observe records the extremes once a deploy is under way. Called with
// f.mu held.
func (f *fleet) observe(t signalman.Target) {
	if !f.watching {
		return
	}
	f.maxRun = max(f.maxRun, len(f.insts[t]))
	serving := 0
	for _, in := range f.insts[t] {
		if f.serving[in.ID] {
			serving++
		}
	}
	f.minServe = min(f.minServe, serving)
}

func (f *fleet) versions(t signalman.Target) map[string]int {
	out := map[string]int{}
	for _, in := range f.list(t) {
		out[in.Version]++
	}
	return out
}

func newDeployer(t *testing.T, f *fleet) *signalman.Deployer {
	t.Helper()
	d, err := signalman.NewDeployer(signalman.DeployerConfig{Driver: f, Gate: f})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func ptr(n int) *int { return &n }

var inventory = signalman.Target{Service: "inventory", Env: "qa"}

func TestRollingDeployBounds(t *testing.T) {
	for name, tc := range map[string]struct {
		surge, unavail   int
		maxRun, minServe int
	}{
		"surge 1 (default)":            {1, 0, 5, 4},
		"unavailable 1, no surge":      {0, 1, 4, 3},
		"surge 2, unavailable 1":       {2, 1, 6, 3},
		"surge 4: blue-green in steps": {4, 0, 8, 4},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFleet()
			ctx := context.Background()
			if _, err := f.Scale(ctx, inventory, 4); err != nil {
				t.Fatal(err)
			}
			f.watching = true
			d := newDeployer(t, f)
			dep, err := d.Deploy(ctx, signalman.DeployRequest{Target: inventory, Version: "2.0",
				MaxSurge: ptr(tc.surge), MaxUnavailable: ptr(tc.unavail), By: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			if dep.State != signalman.DeploySucceeded || dep.FromVersion != "1.0" || dep.By != "alice" {
				t.Fatalf("deploy = %+v", dep)
			}
			if v := f.versions(inventory); v["2.0"] != 4 || len(v) != 1 {
				t.Fatalf("versions after deploy = %v, want 4 × 2.0", v)
			}
			if f.maxRun > tc.maxRun || f.minServe < tc.minServe {
				t.Fatalf("ran up to %d (bound %d), served down to %d (bound %d)", f.maxRun, tc.maxRun, f.minServe, tc.minServe)
			}
			var starts, gates, stops int
			for _, s := range dep.Steps {
				if s.Outcome != signalman.OutcomeOK || s.Instance == "" || s.Time.IsZero() {
					t.Fatalf("step %+v", s)
				}
				switch s.Action {
				case signalman.ActionStart:
					starts++
				case signalman.ActionHealth:
					gates++
				case signalman.ActionStop:
					stops++
				}
			}
			if starts != 4 || gates != 4 || stops != 4 {
				t.Fatalf("%d starts, %d gates, %d stops; want 4 of each: %+v", starts, gates, stops, dep.Steps)
			}
		})
	}
}

func TestRollbackOnFailedHealthGate(t *testing.T) {
	f := newFleet()
	ctx := context.Background()
	if _, err := f.Scale(ctx, inventory, 4); err != nil {
		t.Fatal(err)
	}
	f.bad["2.0"] = true
	f.watching = true
	d := newDeployer(t, f)
	dep, err := d.Deploy(ctx, signalman.DeployRequest{Target: inventory, Version: "2.0"})
	if err != nil {
		t.Fatal(err)
	}
	if dep.State != signalman.DeployRolledBack || !strings.Contains(dep.Error, "health check") {
		t.Fatalf("state %s error %q, want rolled_back naming the health check", dep.State, dep.Error)
	}
	if v := f.versions(inventory); v["1.0"] != 4 || len(v) != 1 {
		t.Fatalf("versions after rollback = %v, want 4 × 1.0", v)
	}
	if f.minServe < 4 {
		t.Fatalf("served down to %d during a failed deploy with maxUnavailable 0", f.minServe)
	}
	i := slices.IndexFunc(dep.Steps, func(s signalman.Step) bool { return s.Action == signalman.ActionRollback })
	if i < 0 || dep.Steps[i].Version != "1.0" {
		t.Fatalf("no rollback step to 1.0: %+v", dep.Steps)
	}
	failed := dep.Steps[i-2]
	if failed.Action != signalman.ActionHealth || failed.Outcome != signalman.OutcomeFailed || failed.Version != "2.0" {
		t.Fatalf("step before the rollback's stop = %+v, want the failed 2.0 gate", failed)
	}
}

func TestFailedFirstDeployLeavesNothing(t *testing.T) {
	f := newFleet()
	f.bad["1.0"] = true
	d := newDeployer(t, f)
	dep, err := d.Deploy(context.Background(), signalman.DeployRequest{Target: inventory, Version: "1.0", Instances: 2})
	if err != nil {
		t.Fatal(err)
	}
	if dep.State != signalman.DeployFailed || dep.FromVersion != "" {
		t.Fatalf("deploy = %+v, want failed with no version to return to", dep)
	}
	if n := len(f.list(inventory)); n != 0 {
		t.Fatalf("%d instances left after a failed first deploy", n)
	}
}

func TestDeployErrors(t *testing.T) {
	f := newFleet()
	d := newDeployer(t, f)
	for name, req := range map[string]signalman.DeployRequest{
		"no version":       {Target: inventory},
		"no service":       {Version: "1"},
		"no room to step":  {Target: inventory, Version: "1", MaxSurge: ptr(0), MaxUnavailable: ptr(0)},
		"negative surge":   {Target: inventory, Version: "1", MaxSurge: ptr(-1)},
		"negative count":   {Target: inventory, Version: "1", Instances: -2},
		"bad env (create)": {Target: signalman.Target{Service: "inventory", Env: "Prod!"}, Version: "1"},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "bad env (create)" {
				_, err := d.CreateEnv(context.Background(), req.Target.Env, []signalman.EnvService{{Service: "inventory", Version: "1"}})
				if !errors.Is(err, signalman.ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if _, err := d.Deploy(context.Background(), req); !errors.Is(err, signalman.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := d.Get(context.Background(), "d-nope"); !errors.Is(err, signalman.ErrUnknownDeploy) {
		t.Fatalf("Get unknown = %v", err)
	}
}

// A second deploy of the same target while one runs is refused, the
// running one streams its steps to subscribers, and the environment it
// runs in cannot be destroyed under it.
func TestBusyAndEvents(t *testing.T) {
	f := newFleet()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := f.Scale(ctx, inventory, 2); err != nil {
		t.Fatal(err)
	}
	f.hold = make(chan struct{})
	d := newDeployer(t, f)
	if _, err := d.Begin(signalman.DeployRequest{Target: inventory, Version: "2.0"}); err == nil {
		t.Fatal("Begin before Run succeeded")
	}
	runDone := make(chan struct{})
	go func() { defer close(runDone); _ = d.Run(ctx) }()
	var dep signalman.Deploy
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if dep, err = d.Begin(signalman.DeployRequest{Target: inventory, Version: "2.0"}); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || dep.State != signalman.DeployRunning {
		t.Fatalf("Begin = %+v, %v", dep, err)
	}
	ch, unsub, err := d.Subscribe(ctx, dep.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	if _, err := d.Begin(signalman.DeployRequest{Target: inventory, Version: "3.0"}); !errors.Is(err, signalman.ErrBusy) {
		t.Fatalf("second deploy: %v, want ErrBusy", err)
	}
	if err := d.DestroyEnv(ctx, "qa"); !errors.Is(err, signalman.ErrBusy) {
		t.Fatalf("DestroyEnv during a deploy: %v, want ErrBusy", err)
	}
	// Another environment of the same service is another target.
	other := signalman.Target{Service: "inventory", Env: "alpha"}
	if _, err := d.Begin(signalman.DeployRequest{Target: other, Version: "3.0"}); err != nil {
		t.Fatalf("deploy to another environment: %v", err)
	}
	close(f.hold)
	seen := 0
	for final := false; !final; {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("no event within 5 s")
		}
		got, _ := d.Get(ctx, dep.ID)
		if len(got.Steps) < seen {
			t.Fatalf("steps went from %d to %d", seen, len(got.Steps))
		}
		seen = len(got.Steps)
		final = got.State.Done()
	}
	got, _ := d.Get(ctx, dep.ID)
	if got.State != signalman.DeploySucceeded || len(got.Steps) != 6 {
		t.Fatalf("final deploy %+v", got)
	}
	list, err := d.List(ctx, signalman.Target{}, 0)
	if err != nil || len(list) != 2 || list[1].ID != dep.ID {
		t.Fatalf("List = %d deploys, want 2, newest first", len(list))
	}
	if l, err := d.List(ctx, inventory, 0); err != nil || len(l) != 1 {
		t.Fatalf("List(inventory@qa) = %d deploys", len(l))
	}
	cancel()
	<-runDone
}

func TestEnvironmentCreateDestroy(t *testing.T) {
	f := newFleet()
	d := newDeployer(t, f)
	ctx := context.Background()
	deps, err := d.CreateEnv(ctx, "alpha-b42", []signalman.EnvService{
		{Service: "inventory", Version: "2.0", Instances: 2},
		{Service: "checkpoint", Version: "1.5"},
	})
	if err != nil || len(deps) != 2 {
		t.Fatalf("CreateEnv = %v, %v", deps, err)
	}
	inv := signalman.Target{Service: "inventory", Env: "alpha-b42"}
	if v := f.versions(inv); v["2.0"] != 2 {
		t.Fatalf("alpha inventory = %v", v)
	}
	if _, err := f.Scale(ctx, inventory, 1); err != nil {
		t.Fatal(err)
	}
	if err := d.DestroyEnv(ctx, "alpha-b42"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.list(inv)); n != 0 {
		t.Fatalf("%d alpha instances after DestroyEnv", n)
	}
	if n := len(f.list(inventory)); n != 1 {
		t.Fatalf("qa lost its instance to an alpha teardown: %d", n)
	}
	f.bad["9"] = true
	if _, err := d.CreateEnv(ctx, "alpha-b43", []signalman.EnvService{{Service: "inventory", Version: "9"}}); err == nil {
		t.Fatal("CreateEnv with an unhealthy build succeeded")
	}
}

type locator []registry.Instance

func (l locator) Instances(string) []registry.Instance { return l }

func TestHTTPGate(t *testing.T) {
	var healthy atomic.Bool
	var probes atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		probes.Add(1)
		if r.URL.Path != "/healthz" || !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	in := signalman.Instance{ID: "inventory-1", Target: inventory}
	gate := signalman.HTTPGate{Locator: locator{{ID: "inventory-1", Addr: addr}}, Successes: 3, Interval: 10 * time.Millisecond, Timeout: 300 * time.Millisecond}

	healthy.Store(true)
	if err := gate.Healthy(context.Background(), in); err != nil {
		t.Fatalf("healthy instance: %v", err)
	}
	if n := probes.Load(); n < 3 {
		t.Fatalf("passed after %d probes, want 3 consecutive successes", n)
	}
	healthy.Store(false)
	err := gate.Healthy(context.Background(), in)
	if !errors.Is(err, signalman.ErrUnhealthy) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("unhealthy instance: %v, want ErrUnhealthy naming the 503", err)
	}
	// Not registered: the gate cannot find an address to probe.
	gate.Locator = locator{}
	if err := gate.Healthy(context.Background(), in); !errors.Is(err, signalman.ErrUnhealthy) {
		t.Fatalf("unregistered instance: %v", err)
	}
	// Connection refused counts as a failure, not a pass.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	gate.Locator = locator{{ID: "inventory-1", Addr: dead}}
	if err := gate.Healthy(context.Background(), in); !errors.Is(err, signalman.ErrUnhealthy) {
		t.Fatalf("refused connection: %v", err)
	}
}
