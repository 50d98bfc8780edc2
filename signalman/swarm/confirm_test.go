package swarm

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/kplane/kplane/internal/dockertest"
	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
)

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }

// TestConfirmAndRevertOnRealSwarm runs the driver's wait on a real
// single-node swarm: Scale returns once the registry lists the new count
// (ticketing instances registering in etcd), and a scale that is not
// confirmed in time, or whose caller gives up, is set back — unless
// someone else changed the replicas meanwhile.
func TestConfirmAndRevertOnRealSwarm(t *testing.T) {
	cli := engine(t)
	demo := dockertest.BuildDemoImage(t)
	sfx := suffix()
	sleeper := "kplane-swarm-sleeper:" + sfx
	sleeperImage(t, cli, sleeper)

	srv := etcdtest.Start(t)
	w := registry.NewWatcher(registry.WatcherConfig{Client: srv.Client(t)})
	wctx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); _ = w.Run(wctx) }()
	t.Cleanup(func() { stopWatch(); <-watchDone })
	<-w.Ready()
	registered := func(env string) int {
		n := 0
		for _, in := range w.Instances("inventory") {
			if in.Env == env {
				n++
			}
		}
		return n
	}

	t.Run("scale returns once registered", func(t *testing.T) {
		env := "confirm-" + sfx
		one := uint64(1)
		grace := ticketingDrain
		createServiceSpec(t, cli, swarm.ServiceSpec{
			Annotations: swarm.Annotations{Name: "inventory-" + env,
				Labels: map[string]string{LabelService: "inventory", LabelEnv: env, LabelVersion: "1.0.0"}},
			TaskTemplate: swarm.TaskSpec{
				// Host network: the tasks reach etcd on loopback and
				// register an address this process can dial.
				ContainerSpec: &swarm.ContainerSpec{Image: demo, StopGracePeriod: &grace,
					Args: []string{"inventory", "--listen", "127.0.0.1:0", "--etcd", strings.Join(srv.Endpoints(), ","),
						"--env", env, "--version", "1.0.0"}},
				Networks:      []swarm.NetworkAttachmentConfig{{Target: "host"}},
				RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionOnFailure},
			},
			Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}},
		})
		d, err := New(Config{API: cli, Confirmer: w, Timeout: 60 * time.Second, PollInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		target := signalman.Target{Service: "inventory", Env: env}
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
		defer cancel()
		for _, n := range []int{3, 1} {
			if _, err := d.Scale(ctx, target, n); err != nil {
				t.Fatalf("Scale to %d: %v", n, err)
			}
			// No waiting here: Scale returned, so the registry agrees.
			if got := registered(env); got != n {
				t.Fatalf("after Scale to %d, %d instances are registered", n, got)
			}
		}
	})

	t.Run("not registered in time is reverted", func(t *testing.T) {
		// Sleepers never register: the scale cannot be confirmed.
		env := "timeout-" + sfx
		id := createService(t, cli, "inventory-"+env, sleeper, map[string]string{LabelService: "inventory", LabelEnv: env})
		d, err := New(Config{API: cli, Confirmer: w, Timeout: 5 * time.Second, PollInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		res, err := d.Scale(t.Context(), signalman.Target{Service: "inventory", Env: env}, 3)
		if !errors.Is(err, signalman.ErrNotConfirmed) || !strings.Contains(err.Error(), "not registered") {
			t.Fatalf("Scale = %+v, %v; want ErrNotConfirmed for the registration", res, err)
		}
		if res.From != 1 || res.To != 1 {
			t.Errorf("Result = %+v, want 1 → 1", res)
		}
		awaitReplicas(t, cli, id, 1)
	})

	t.Run("cancelled is reverted", func(t *testing.T) {
		env := "cancel-" + sfx
		id := createService(t, cli, "inventory-"+env, sleeper, map[string]string{LabelService: "inventory", LabelEnv: env})
		d, err := New(Config{API: cli, Confirmer: w, Timeout: time.Minute, PollInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		_, err = d.Scale(ctx, signalman.Target{Service: "inventory", Env: env}, 2)
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, signalman.ErrNotConfirmed) {
			t.Fatalf("Scale = %v; want the caller's context error", err)
		}
		awaitReplicas(t, cli, id, 1)
	})

	t.Run("another writer's change is not reverted", func(t *testing.T) {
		env := "other-" + sfx
		id := createService(t, cli, "inventory-"+env, sleeper, map[string]string{LabelService: "inventory", LabelEnv: env})
		// While the driver waits for registrations, someone else sets
		// 2 replicas.
		other := &otherWriter{Watcher: w, cli: cli, id: id, replicas: 2}
		d, err := New(Config{API: cli, Confirmer: other, Timeout: 5 * time.Second, PollInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.Scale(t.Context(), signalman.Target{Service: "inventory", Env: env}, 3)
		if !errors.Is(err, signalman.ErrNotConfirmed) {
			t.Fatalf("Scale = %v; want ErrNotConfirmed", err)
		}
		if other.err != nil {
			t.Fatalf("the other writer: %v", other.err)
		}
		awaitReplicas(t, cli, id, 2)
	})
}

// ticketingDrain is the grace a ticketing instance needs to deregister
// and drain (ticketing.ShutdownTimeout and DeregisterDelay, rounded up).
const ticketingDrain = 12 * time.Second

// otherWriter is the driver's Confirmer, and once it is asked, first
// changes the service's replicas as another writer would.
type otherWriter struct {
	*registry.Watcher
	cli      *client.Client
	id       string
	replicas uint64
	once     sync.Once
	err      error
}

func (o *otherWriter) WaitInstances(ctx context.Context, name string, ok func([]registry.Instance) bool) error {
	o.once.Do(func() {
		svc, _, err := o.cli.ServiceInspectWithRaw(ctx, o.id, swarm.ServiceInspectOptions{})
		if err != nil {
			o.err = err
			return
		}
		spec := svc.Spec
		spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: &o.replicas}
		_, o.err = o.cli.ServiceUpdate(ctx, o.id, svc.Version, spec, swarm.ServiceUpdateOptions{})
	})
	return o.Watcher.WaitInstances(ctx, name, ok)
}

// awaitReplicas checks that the service asks for n replicas and that n of
// its tasks come to run.
func awaitReplicas(t *testing.T, cli *client.Client, id string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	svc, _, err := cli.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := int(*svc.Spec.Mode.Replicated.Replicas); r != n {
		t.Fatalf("service asks for %d replicas, want %d", r, n)
	}
	f := filters.NewArgs(filters.Arg("service", id), filters.Arg("desired-state", "running"))
	for {
		tasks, err := cli.TaskList(ctx, swarm.TaskListOptions{Filters: f})
		if err != nil {
			t.Fatal(err)
		}
		running := 0
		for _, tk := range tasks {
			if tk.Status.State == swarm.TaskStateRunning {
				running++
			}
		}
		if running == n && len(tasks) == n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d tasks meant to run are running, want %d", running, len(tasks), n)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
