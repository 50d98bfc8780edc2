package signalman_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
)

// scheduler is an in-memory Roller: a scheduler that rolls a target to a
// version by itself. fail makes the rollout of a version fail (and roll
// back, or not, by rolledBack).
type scheduler struct {
	mu       sync.Mutex
	version  map[signalman.Target]string
	count    map[signalman.Target]int
	fail     map[string]error
	noReturn bool // the rollback itself fails
	got      []signalman.RollOptions
}

var _ signalman.Roller = (*scheduler)(nil)

func (s *scheduler) Scale(_ context.Context, t signalman.Target, n int) (signalman.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := signalman.Result{Target: t, From: s.count[t], To: n}
	s.count[t] = n
	return res, nil
}

func (s *scheduler) Instances(_ context.Context, t signalman.Target) ([]signalman.Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.version[t]
	if !ok {
		return nil, fmt.Errorf("%w: %s", signalman.ErrUnknownService, t)
	}
	out := make([]signalman.Instance, s.count[t])
	for i := range out {
		out[i] = signalman.Instance{ID: fmt.Sprintf("task-%d", i), Target: t, Version: v}
	}
	return out, nil
}

func (s *scheduler) Roll(_ context.Context, t signalman.Target, version string, opts signalman.RollOptions, progress func(signalman.Step)) error {
	s.mu.Lock()
	s.got = append(s.got, opts)
	prev := s.version[t]
	err := s.fail[version]
	s.mu.Unlock()
	progress(signalman.Step{Time: time.Now(), Action: signalman.ActionStart, Instance: "r1", Version: version, Outcome: signalman.OutcomeOK})
	if err == nil {
		s.mu.Lock()
		s.version[t], s.count[t] = version, opts.Instances
		s.mu.Unlock()
		return nil
	}
	progress(signalman.Step{Time: time.Now(), Action: signalman.ActionRollback, Version: prev, Outcome: signalman.OutcomeOK, Error: err.Error()})
	if s.noReturn {
		return fmt.Errorf("%w; rollback failed: swarm paused", err)
	}
	return fmt.Errorf("%w: %w", signalman.ErrRolledBack, err)
}

func newScheduler() *scheduler {
	return &scheduler{version: map[signalman.Target]string{inventory: "1.0"}, count: map[signalman.Target]int{inventory: 3},
		fail: map[string]error{"bad": fmt.Errorf("%w: r1 answers 500", signalman.ErrUnhealthy)}}
}

// okGate passes every instance.
type okGate struct{}

func (okGate) Healthy(context.Context, signalman.Instance) error { return nil }

// A Roller gets the whole deploy: the Deployer records what it reports
// and ends the deploy succeeded, rolled back or failed by its answer.
func TestDeployOnRoller(t *testing.T) {
	for _, tc := range []struct {
		name     string
		version  string
		noReturn bool
		want     signalman.DeployState
		steps    []string
	}{
		{"good version rolls", "2.0", false, signalman.DeploySucceeded, []string{"start"}},
		{"bad version is rolled back", "bad", false, signalman.DeployRolledBack, []string{"start", "rollback"}},
		{"failed rollback fails", "bad", true, signalman.DeployFailed, []string{"start", "rollback"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScheduler()
			s.noReturn = tc.noReturn
			d, err := signalman.NewDeployer(signalman.DeployerConfig{Driver: s, Gate: okGate{}})
			if err != nil {
				t.Fatal(err)
			}
			dep, err := d.Deploy(context.Background(), signalman.DeployRequest{Target: inventory, Version: tc.version, MaxUnavailable: ptr(1)})
			if err != nil {
				t.Fatal(err)
			}
			if dep.State != tc.want || dep.FromVersion != "1.0" || dep.Instances != 3 {
				t.Fatalf("deploy = %+v, want %s from 1.0 with 3 instances", dep, tc.want)
			}
			var steps []string
			for _, st := range dep.Steps {
				steps = append(steps, st.Action)
			}
			if strings.Join(steps, ",") != strings.Join(tc.steps, ",") {
				t.Errorf("steps %v, want %v", steps, tc.steps)
			}
			if tc.want != signalman.DeploySucceeded && !strings.Contains(dep.Error, "answers 500") {
				t.Errorf("error %q does not say why", dep.Error)
			}
			if o := s.got[0]; o.Instances != 3 || o.MaxSurge != 1 || o.MaxUnavailable != 1 || o.Gate == nil {
				t.Errorf("RollOptions = %+v", o)
			}
		})
	}
}

func TestEnvironmentsOnRollerAreUnsupported(t *testing.T) {
	d, err := signalman.NewDeployer(signalman.DeployerConfig{Driver: newScheduler(), Gate: okGate{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateEnv(context.Background(), "alpha-b7", []signalman.EnvService{{Service: "inventory", Version: "2.0"}}); !errors.Is(err, signalman.ErrUnsupported) {
		t.Errorf("CreateEnv = %v, want ErrUnsupported", err)
	}
	if err := d.DestroyEnv(context.Background(), "alpha-b7"); !errors.Is(err, signalman.ErrUnsupported) {
		t.Errorf("DestroyEnv = %v, want ErrUnsupported", err)
	}
}

// creator is a scheduler whose driver also creates services (swarm from
// its specs): Instances of a target it does not run is empty, Roll
// creates it, DestroyEnv removes the env's targets.
type creator struct {
	*scheduler
	destroyed []string
}

func (c *creator) Instances(ctx context.Context, t signalman.Target) ([]signalman.Instance, error) {
	c.mu.Lock()
	_, ok := c.version[t]
	c.mu.Unlock()
	if !ok {
		return nil, nil
	}
	return c.scheduler.Instances(ctx, t)
}

func (c *creator) DestroyEnv(_ context.Context, env string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for t := range c.version {
		if t.Env == env {
			delete(c.version, t)
			delete(c.count, t)
		}
	}
	c.destroyed = append(c.destroyed, env)
	return nil
}

func TestEnvironmentsOnRollerThatCreates(t *testing.T) {
	c := &creator{scheduler: newScheduler()}
	d, err := signalman.NewDeployer(signalman.DeployerConfig{Driver: c, Gate: okGate{}})
	if err != nil {
		t.Fatal(err)
	}
	deps, err := d.CreateEnv(context.Background(), "alpha-b7", []signalman.EnvService{
		{Service: "inventory", Version: "2.0"}, {Service: "checkpoint", Version: "1.1", Instances: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if len(deps) != 2 || deps[0].State != signalman.DeploySucceeded || deps[1].Instances != 2 || deps[0].FromVersion != "" {
		t.Fatalf("deploys %+v", deps)
	}
	if got, _ := c.Instances(context.Background(), signalman.Target{Service: "checkpoint", Env: "alpha-b7"}); len(got) != 2 || got[0].Version != "1.1" {
		t.Errorf("checkpoint@alpha-b7 runs %+v", got)
	}
	if err := d.DestroyEnv(context.Background(), "alpha-b7"); err != nil {
		t.Fatal(err)
	}
	if len(c.destroyed) != 1 || c.destroyed[0] != "alpha-b7" {
		t.Errorf("destroyed %v", c.destroyed)
	}
	if got, _ := c.Instances(context.Background(), signalman.Target{Service: "inventory", Env: "alpha-b7"}); len(got) != 0 {
		t.Errorf("inventory@alpha-b7 still runs %+v", got)
	}
}

// listing is a registry that changes by script: each read moves on to the
// next view, the last one stays.
type listing struct {
	mu    sync.Mutex
	views [][]registry.Instance
}

func (l *listing) WaitInstances(_ context.Context, name string, ok func([]registry.Instance) bool) error {
	l.mu.Lock()
	v := l.views[0]
	if len(l.views) > 1 {
		l.views = l.views[1:]
	}
	l.mu.Unlock()
	ok(v)
	return nil
}

func reg(id, version string) registry.Instance {
	return registry.Instance{ID: id, Name: "inventory", Env: "qa", Version: version, Started: time.Now()}
}

// versionGate fails the instances of one version.
type versionGate string

func (g versionGate) Healthy(_ context.Context, in signalman.Instance) error {
	if in.Version == string(g) {
		return fmt.Errorf("%w: %s", signalman.ErrUnhealthy, in.ID)
	}
	return nil
}

func TestFollow(t *testing.T) {
	views := [][]registry.Instance{
		{reg("a", "1.0"), reg("b", "1.0")},
		{reg("a", "1.0"), reg("b", "1.0"), reg("c", "2.0")},
		{reg("b", "1.0"), reg("c", "2.0"), reg("d", "2.0")},
		{reg("c", "2.0"), reg("d", "2.0")},
	}
	for _, tc := range []struct {
		name    string
		gate    signalman.HealthGate
		done    bool
		want    error
		actions string
	}{
		{"registered, gated and old ones gone", okGate{}, true, nil, "start,health,stop,start,health,stop"},
		{"gate fails", versionGate("2.0"), true, signalman.ErrUnhealthy, "start,health"},
		{"scheduler never done", okGate{}, false, signalman.ErrNotConfirmed, "start,health,stop,start,health,stop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var actions []string
			err := signalman.Follow{
				Target: inventory, Version: "2.0", N: 2, Object: "test rollout",
				Timeout: 300 * time.Millisecond, Poll: time.Millisecond,
				Confirmer: &listing{views: views}, Gate: tc.gate,
				Check:    func(context.Context) (bool, string, error) { return tc.done, "scheduler busy", nil },
				Progress: func(s signalman.Step) { actions = append(actions, s.Action) },
			}.Run(context.Background())
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("Run = %v, want %v", err, tc.want)
			}
			if got := strings.Join(actions, ","); got != tc.actions {
				t.Errorf("steps %s, want %s", got, tc.actions)
			}
		})
	}
}
