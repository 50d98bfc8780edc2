package docker_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/kplane/kplane/internal/dockertest"
	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
	"github.com/kplane/kplane/signalman/docker"
)

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }

type fixture struct {
	cli     *client.Client
	driver  *docker.Driver
	watcher *registry.Watcher
	env     string
	gate    *gate
}

// gate lets a test hold a driver inside its confirmation wait.
type gate struct {
	registry.Watcher
	w       *registry.Watcher
	entered chan struct{}
	release chan struct{}
}

func (g *gate) WaitInstances(ctx context.Context, name string, ok func([]registry.Instance) bool) error {
	if g.entered != nil {
		select {
		case g.entered <- struct{}{}:
		default:
		}
		select {
		case <-g.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.w.WaitInstances(ctx, name, ok)
}

// newFixture starts etcd, a registry watcher and a driver; opts adjust
// the driver's Config.
func newFixture(t testing.TB, opts ...func(*docker.Config)) *fixture {
	t.Helper()
	cli := dockertest.Client(t)
	image := dockertest.BuildDemoImage(t)
	env := dockertest.Env(t)
	dockertest.CleanupManaged(t, cli, env) // runs last: the safety net

	srv := etcdtest.Start(t)
	w := registry.NewWatcher(registry.WatcherConfig{Client: srv.Client(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-w.Ready()

	cmd := func(service string, extra ...string) []string {
		return append([]string{service, "--listen", "{listen}", "--advertise={advertise}",
			"--etcd", strings.Join(srv.Endpoints(), ","), "--id", "{id}", "--env", "{env}", "--version", "{version}"}, extra...)
	}
	f := &fixture{cli: cli, watcher: w, env: env, gate: &gate{w: w}}
	cfg := docker.Config{
		Client: cli,
		Services: map[string]docker.Spec{
			"inventory":  {Image: image, Cmd: cmd("inventory"), Version: "1.0.0"},
			"checkpoint": {Image: image, Cmd: cmd("checkpoint"), Version: "1.0.0"},
			// Exits at once: its advertised address is invalid.
			"broken": {Image: image, Cmd: cmd("inventory", "--advertise", "nohost"), Version: "1.0.0"},
		},
		Confirmer:      f.gate,
		ConfirmTimeout: 20 * time.Second,
		StopTimeout:    5 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	var err error
	f.driver, err = docker.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := f.driver.DestroyEnv(ctx, env); err != nil {
			t.Errorf("DestroyEnv: %v", err)
		}
		if left := f.containers(t, ""); len(left) > 0 {
			t.Errorf("kplane.managed containers of the test remain: %v", left)
		}
		f.driver.Close()
	})
	return f
}

func (f *fixture) target(service string) signalman.Target {
	return signalman.Target{Service: service, Env: f.env}
}

// containers lists the names of the test's managed containers of service
// ("" for all), straight from the engine.
func (f *fixture) containers(t testing.TB, service string) []string {
	t.Helper()
	args := filters.NewArgs(filters.Arg("label", "kplane.managed=true"), filters.Arg("label", "kplane.env="+f.env))
	if service != "" {
		args.Add("label", "kplane.service="+service)
	}
	cs, err := f.cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: args})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cs {
		names = append(names, strings.TrimPrefix(c.Names[0], "/"))
	}
	slices.Sort(names)
	return names
}

// registered lists the IDs registered for service in the test's env.
func (f *fixture) registered(service string) []string {
	var ids []string
	for _, in := range f.watcher.Instances(service) {
		if in.Env == f.env {
			ids = append(ids, in.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func ids(insts []signalman.Instance) []string {
	out := make([]string, len(insts))
	for i, in := range insts {
		out[i] = in.ID
	}
	return out
}

func TestScaleUpConfirmsAndScaleDownRemovesHighestFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	tg := f.target("inventory")
	one, two := "inventory-"+f.env+"-1", "inventory-"+f.env+"-2"

	res, err := f.driver.Scale(ctx, tg, 2)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 0 || res.To != 2 || !slices.Equal(res.Started, []string{one, two}) {
		t.Fatalf("scale up = %+v", res)
	}
	// Scale returned: both are registered already, no waiting here.
	if got := f.registered("inventory"); !slices.Equal(got, []string{one, two}) {
		t.Fatalf("registered after scale up = %v", got)
	}
	if got := f.containers(t, "inventory"); !slices.Equal(got, []string{"kplane-" + one, "kplane-" + two}) {
		t.Fatalf("containers = %v", got)
	}
	insts, err := f.driver.Instances(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(insts), []string{one, two}) || insts[0].Version != "1.0.0" {
		t.Fatalf("Instances = %+v", insts)
	}

	res, err = f.driver.Scale(ctx, tg, 1)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 2 || res.To != 1 || !slices.Equal(res.Stopped, []string{two}) || len(res.Started) != 0 {
		t.Fatalf("scale down = %+v", res)
	}
	// Drained: deregistered before Scale returned, and the container is gone.
	if got := f.registered("inventory"); !slices.Equal(got, []string{one}) {
		t.Fatalf("registered after scale down = %v", got)
	}
	if got := f.containers(t, "inventory"); !slices.Equal(got, []string{"kplane-" + one}) {
		t.Fatalf("containers after scale down = %v", got)
	}

	res, err = f.driver.Scale(ctx, tg, 1)
	if err != nil || !res.NoOp() {
		t.Fatalf("scale to the same count = %+v, %v; want a no-op", res, err)
	}
}

func TestStartVersionAndStopInstance(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	tg := f.target("checkpoint")

	inst, err := f.driver.Start(ctx, tg, "2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if inst.ID != "checkpoint-"+f.env+"-1" || inst.Version != "2.0.0" {
		t.Fatalf("Start = %+v", inst)
	}
	var version string
	for _, in := range f.watcher.Instances("checkpoint") {
		if in.ID == inst.ID {
			version = in.Version
		}
	}
	if version != "2.0.0" {
		t.Fatalf("registered version = %q, want 2.0.0", version)
	}
	// Scale starts the version of the latest Start.
	if _, err := f.driver.Scale(ctx, tg, 2); err != nil {
		t.Fatal(err)
	}
	insts, err := f.driver.Instances(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 2 || insts[1].Version != "2.0.0" {
		t.Fatalf("Instances after scale = %+v", insts)
	}

	if err := f.driver.Stop(ctx, tg, inst.ID); err != nil {
		t.Fatal(err)
	}
	if got := f.registered("checkpoint"); !slices.Equal(got, []string{"checkpoint-" + f.env + "-2"}) {
		t.Fatalf("registered after Stop = %v", got)
	}
	if got := f.containers(t, "checkpoint"); !slices.Equal(got, []string{"kplane-checkpoint-" + f.env + "-2"}) {
		t.Fatalf("containers after Stop = %v", got)
	}
	if err := f.driver.Stop(ctx, tg, inst.ID); !errors.Is(err, signalman.ErrUnknownInstance) {
		t.Fatalf("Stop of a stopped instance = %v, want ErrUnknownInstance", err)
	}
	// The freed number is reused by the next start.
	res, err := f.driver.Scale(ctx, tg, 2)
	if err != nil || !slices.Equal(res.Started, []string{inst.ID}) {
		t.Fatalf("scale back up = %+v, %v; want %s restarted", res, err, inst.ID)
	}
}

func TestDestroyEnvRemovesEveryServiceOfTheEnvOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	other := dockertest.Env(t)
	dockertest.CleanupManaged(t, f.cli, other)

	for _, tg := range []signalman.Target{f.target("inventory"), f.target("checkpoint"), {Service: "inventory", Env: other}} {
		if _, err := f.driver.Scale(ctx, tg, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.driver.DestroyEnv(ctx, f.env); err != nil {
		t.Fatal(err)
	}
	if left := f.containers(t, ""); len(left) != 0 {
		t.Fatalf("containers of the destroyed env = %v", left)
	}
	if got := append(f.registered("inventory"), f.registered("checkpoint")...); len(got) != 0 {
		t.Fatalf("still registered in the destroyed env: %v", got)
	}
	insts, err := f.driver.Instances(ctx, signalman.Target{Service: "inventory", Env: other})
	if err != nil || len(insts) != 1 {
		t.Fatalf("the other env = %+v, %v; want its instance untouched", insts, err)
	}
	if err := f.driver.DestroyEnv(ctx, other); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentChangeOfATargetIsBusy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	tg := f.target("inventory")
	f.gate.entered = make(chan struct{}, 1)
	f.gate.release = make(chan struct{})

	errc := make(chan error, 1)
	go func() {
		_, err := f.driver.Scale(ctx, tg, 1)
		errc <- err
	}()
	<-f.gate.entered // the first Scale holds the target
	if _, err := f.driver.Scale(ctx, tg, 3); !errors.Is(err, signalman.ErrBusy) {
		t.Errorf("second Scale = %v, want ErrBusy", err)
	}
	if _, err := f.driver.Start(ctx, tg, "2.0.0"); !errors.Is(err, signalman.ErrBusy) {
		t.Errorf("Start during Scale = %v, want ErrBusy", err)
	}
	if err := f.driver.Stop(ctx, tg, "inventory-"+f.env+"-1"); !errors.Is(err, signalman.ErrBusy) {
		t.Errorf("Stop during Scale = %v, want ErrBusy", err)
	}
	// Another target is not held.
	f.gate.entered = nil
	close(f.gate.release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, err := f.driver.Scale(ctx, f.target("checkpoint"), 1); err != nil {
		t.Fatalf("other target: %v", err)
	}
	insts, err := f.driver.Instances(ctx, tg)
	if err != nil || len(insts) != 1 {
		t.Fatalf("after the busy calls: %+v, %v; want the first Scale's one instance", insts, err)
	}
}

func TestExitBeforeRegisteringIsNotConfirmedAndLeavesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	tg := f.target("broken")
	start := time.Now()
	res, err := f.driver.Scale(ctx, tg, 2)
	if !errors.Is(err, signalman.ErrNotConfirmed) {
		t.Fatalf("Scale = %+v, %v; want ErrNotConfirmed", res, err)
	}
	if !strings.Contains(err.Error(), "exited before registering") || !strings.Contains(err.Error(), "nohost") {
		t.Errorf("error %q should say the instance exited and show its output", err)
	}
	// Detected from the exit, not by running into ConfirmTimeout.
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("failure took %s", took)
	}
	if res.To != 0 || len(res.Started) != 0 {
		t.Errorf("result = %+v; want nothing started", res)
	}
	if left := f.containers(t, "broken"); len(left) != 0 {
		t.Fatalf("containers left by a failed start: %v", left)
	}
	if _, err := f.driver.Start(ctx, tg, "1.0.1"); !errors.Is(err, signalman.ErrNotConfirmed) {
		t.Fatalf("Start = %v; want ErrNotConfirmed", err)
	}
	if left := f.containers(t, "broken"); len(left) != 0 {
		t.Fatalf("containers left by a failed Start: %v", left)
	}
}

func TestInvalidRequests(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	for name, tc := range map[string]struct {
		call func() error
		want error
	}{
		"negative count":  {func() error { _, err := f.driver.Scale(ctx, f.target("inventory"), -1); return err }, signalman.ErrInvalid},
		"empty service":   {func() error { _, err := f.driver.Scale(ctx, signalman.Target{Env: f.env}, 1); return err }, signalman.ErrInvalid},
		"unknown service": {func() error { _, err := f.driver.Scale(ctx, f.target("nope"), 1); return err }, signalman.ErrUnknownService},
		"bad env": {func() error {
			_, err := f.driver.Scale(ctx, signalman.Target{Service: "inventory", Env: "a b"}, 1)
			return err
		}, signalman.ErrInvalid},
		"empty version": {func() error { _, err := f.driver.Start(ctx, f.target("inventory"), ""); return err }, signalman.ErrInvalid},
		"unknown id":    {func() error { return f.driver.Stop(ctx, f.target("inventory"), "inventory-x-9") }, signalman.ErrUnknownInstance},
	} {
		t.Run(name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// BenchmarkScaleUp measures a scale-up from 0 to 4 containers, confirmed
// through the registry, and reports the time per instance (the scale-down
// that follows each round is not timed).
func BenchmarkScaleUp(b *testing.B) {
	f := newFixture(b)
	ctx := b.Context()
	tg := f.target("inventory")
	const n = 4
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := f.driver.Scale(ctx, tg, n); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		b.StopTimer()
		if _, err := f.driver.Scale(ctx, tg, 0); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N*n), "ms/instance")
}
