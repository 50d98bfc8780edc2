package swarm

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
)

// TestEnvOnRealSwarm creates and destroys an environment as HAWAII's
// alpha stage does, through the Deployer, on a real single-node swarm:
// CreateEnv of inventory and checkpoint (the demo image, FROM scratch)
// creates their Swarm services from the driver's templates on the host
// network, and returns once both registered at their version in the env;
// DestroyEnv removes them and returns once no task, container or
// registration of the env is left. A service whose tasks never register
// is removed again by the deploy that created it (failed), and a service
// of the env kplane did not create survives DestroyEnv, named in its
// error.
func TestEnvOnRealSwarm(t *testing.T) {
	cli := engine(t)
	sfx := suffix()
	repo := "kplane-swarm-env-" + sfx
	tag := repo + ":1.0.0"
	tagDemo(t, cli, repo, "1.0.0")
	sleeper := "kplane-swarm-sleeper:" + sfx
	sleeperImage(t, cli, sleeper)

	srv := etcdtest.Start(t)
	w := registry.NewWatcher(registry.WatcherConfig{Client: srv.Client(t)})
	wctx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); _ = w.Run(wctx) }()
	t.Cleanup(func() { stopWatch(); <-watchDone })
	<-w.Ready()

	env := "alpha-b" + sfx
	// Whatever happens, the env's services go (before the watcher stops
	// and the images go: cleanups run last in, first out).
	t.Cleanup(func() { removeEnvServices(t, cli, env) })
	etcd := strings.Join(srv.Endpoints(), ",")
	d, err := New(Config{API: cli, Confirmer: w, Timeout: 20 * time.Second, PollInterval: 100 * time.Millisecond,
		Images: map[string]string{"inventory": repo + ":{version}", "checkpoint": repo + ":{version}", "broken": sleeper},
		Args: map[string][]string{
			"inventory":  {"inventory", "--listen", "127.0.0.1:0", "--etcd", etcd, "--env", "{env}", "--version", "{version}", "--tag", "{env}"},
			"checkpoint": {"checkpoint", "--listen", "127.0.0.1:0", "--etcd", etcd, "--env", "{env}", "--version", "{version}", "--tag", "{env}", "--inventory-tag", "{env}"},
		},
		Env:             map[string][]string{"inventory": {"KPLANE_TEST_ENV={env}"}},
		StopGracePeriod: ticketingDrain, Monitor: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dep, err := signalman.NewDeployer(signalman.DeployerConfig{Driver: d,
		Gate: signalman.HTTPGate{Locator: w, Successes: 2, Interval: 100 * time.Millisecond, Timeout: 15 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	registered := func(service string) []registry.Instance {
		var out []registry.Instance
		for _, in := range w.Instances(service) {
			if in.Env == env {
				out = append(out, in)
			}
		}
		return out
	}

	t.Run("create", func(t *testing.T) {
		inv := signalman.Target{Service: "inventory", Env: env}
		if insts, err := d.Instances(ctx, inv); err != nil || len(insts) != 0 {
			t.Fatalf("Instances before the env = %+v, %v; want none, no error (it can be created)", insts, err)
		}
		start := time.Now()
		deps, err := dep.CreateEnv(ctx, env, []signalman.EnvService{
			{Service: "inventory", Version: "1.0.0", Instances: 2}, {Service: "checkpoint", Version: "1.0.0"}})
		if err != nil {
			t.Fatalf("CreateEnv: %v (%+v)", err, deps)
		}
		t.Logf("environment of 3 instances created in %s", time.Since(start).Round(time.Millisecond))
		for _, dp := range deps {
			if dp.State != signalman.DeploySucceeded || dp.FromVersion != "" {
				t.Errorf("deploy %+v", dp)
			}
		}
		// CreateEnv returned, so the registry agrees.
		for svc, n := range map[string]int{"inventory": 2, "checkpoint": 1} {
			in := registered(svc)
			if len(in) != n {
				t.Fatalf("%d instances of %s registered in %s, want %d", len(in), svc, env, n)
			}
			for _, i := range in {
				if i.Version != "1.0.0" || !slices.Contains(i.Tags, env) {
					t.Errorf("registered %+v", i)
				}
			}
		}
		insts, err := d.Instances(ctx, inv)
		if err != nil || len(insts) != 2 || insts[0].Version != "1.0.0" {
			t.Errorf("Instances = %+v, %v; want 2 at 1.0.0", insts, err)
		}
		svc, _, err := cli.ServiceInspectWithRaw(ctx, "inventory-"+env, swarm.ServiceInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cs := svc.Spec.TaskTemplate.ContainerSpec
		if svc.Spec.Labels[LabelManaged] != "true" || svc.Spec.Labels[LabelEnv] != env || noDigest(cs.Image) != tag ||
			!slices.Equal(cs.Env, []string{"KPLANE_TEST_ENV=" + env}) || cs.StopGracePeriod == nil || *cs.StopGracePeriod != ticketingDrain ||
			len(svc.Spec.TaskTemplate.Networks) != 1 {
			t.Errorf("created spec %+v, container %+v", svc.Spec, cs)
		}
		// Swarm stores the network's ID.
		if nw, err := cli.NetworkInspect(ctx, svc.Spec.TaskTemplate.Networks[0].Target, network.InspectOptions{}); err != nil || nw.Name != "host" {
			t.Errorf("created on network %+v, %v; want host", nw, err)
		}
	})

	t.Run("a version that never registers is removed again", func(t *testing.T) {
		res, err := dep.Deploy(ctx, signalman.DeployRequest{Target: signalman.Target{Service: "broken", Env: env}, Version: "1.0.0"})
		if err != nil {
			t.Fatal(err)
		}
		if res.State != signalman.DeployFailed || !strings.Contains(res.Error, "not registered") {
			t.Fatalf("deploy = %+v, want failed: not registered", res)
		}
		if _, _, err := cli.ServiceInspectWithRaw(ctx, "broken-"+env, swarm.ServiceInspectOptions{}); err == nil {
			t.Error("the service the failed deploy created is still there")
		}
	})

	t.Run("destroy", func(t *testing.T) {
		// A service of the env someone else made: not removed.
		foreign := "foreign-" + env
		createService(t, cli, foreign, sleeper, map[string]string{LabelService: "foreign", LabelEnv: env})
		start := time.Now()
		err := dep.DestroyEnv(ctx, env)
		if !errors.Is(err, signalman.ErrInvalid) || !strings.Contains(err.Error(), foreign) {
			t.Fatalf("DestroyEnv = %v, want ErrInvalid naming %s", err, foreign)
		}
		t.Logf("environment destroyed in %s", time.Since(start).Round(time.Millisecond))
		for _, svc := range []string{"inventory", "checkpoint"} {
			if in := registered(svc); len(in) != 0 {
				t.Errorf("%s still registered in %s: %+v", svc, env, in)
			}
		}
		svcs, err := cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelEnv+"="+env))})
		if err != nil {
			t.Fatal(err)
		}
		if len(svcs) != 1 || svcs[0].Spec.Name != foreign {
			t.Errorf("services of %s after DestroyEnv: %d, want only %s", env, len(svcs), foreign)
		}
		// DestroyEnv returned, so the containers are gone.
		cs, err := cli.ContainerList(ctx, container.ListOptions{All: true,
			Filters: filters.NewArgs(filters.Arg("label", LabelManaged+"=true"), filters.Arg("label", LabelEnv+"="+env))})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.State != "exited" {
				t.Errorf("container %s of %s is %s after DestroyEnv", c.ID[:12], env, c.State)
			}
		}
		// The engine removes the exited containers of removed tasks by
		// itself, soon after.
		awaitNoContainers(t, cli, env)
		if insts, err := d.Instances(ctx, signalman.Target{Service: "inventory", Env: env}); err != nil || len(insts) != 0 {
			t.Errorf("Instances after DestroyEnv = %+v, %v", insts, err)
		}
	})
}

// removeEnvServices removes whatever service of env a failed test left.
func removeEnvServices(t *testing.T, cli *client.Client, env string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	svcs, err := cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelManaged+"=true"), filters.Arg("label", LabelEnv+"="+env))})
	if err != nil {
		t.Errorf("list services: %v", err)
		return
	}
	for _, s := range svcs {
		if err := cli.ServiceRemove(ctx, s.ID); err != nil {
			t.Errorf("remove service %s: %v", s.Spec.Name, err)
		}
	}
	awaitNoContainers(t, cli, env)
}

// awaitNoContainers waits up to 30 s for the containers of env to be
// removed.
func awaitNoContainers(t *testing.T, cli *client.Client, env string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", LabelManaged+"=true"), filters.Arg("label", LabelEnv+"="+env))
	for ctx.Err() == nil {
		cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		if err == nil && len(cs) == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("containers of %s still present after 30 s", env)
}
