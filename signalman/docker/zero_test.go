package docker_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kplane/kplane/examples/ticketing"
	"github.com/kplane/kplane/examples/ticketing/loadgen"
	"github.com/kplane/kplane/internal/dockertest"
	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
	"github.com/kplane/kplane/signalman/docker"
)

// TestZeroFailedRequests is the measurement with the docker
// driver, the twin of the process driver's test of the same name: real
// inventory containers (the demo image, FROM scratch) registered in
// embedded etcd, a steady load through the registry client, and meanwhile
// a rolling deploy of 4 instances to a new version, a scale 4 → 8 and a
// scale 8 → 2. The load generator must report no failed request.
func TestZeroFailedRequests(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	image := dockertest.BuildDemoImage(t)
	env := dockertest.Env(t)
	dockertest.CleanupManaged(t, cli, env)

	srv := etcdtest.Start(t)
	w := registry.NewWatcher(registry.WatcherConfig{Client: srv.Client(t)})
	wctx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); _ = w.Run(wctx) }()
	// Stopped after the driver's cleanup, which waits for deregistration.
	t.Cleanup(func() { stopWatch(); <-watchDone })
	<-w.Ready()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	// The instances share one SQLite database, as in `kplane dev --driver
	// docker`: bind-mounted at the same path, written as this user.
	dir := t.TempDir()
	d, err := docker.New(ctx, docker.Config{
		Client: cli,
		Services: map[string]docker.Spec{"inventory": {
			Image: image,
			Cmd: []string{"inventory", "--listen", "{listen}", "--advertise={advertise}",
				"--etcd", strings.Join(srv.Endpoints(), ","), "--id", "{id}", "--env", "{env}", "--version", "{version}",
				"--db", filepath.Join(dir, "inventory.db")},
			Binds:   []string{dir + ":" + dir},
			User:    strconv.Itoa(os.Getuid()) + ":" + strconv.Itoa(os.Getgid()),
			Version: "v1",
		}},
		Confirmer:   w,
		StopTimeout: ticketing.ShutdownTimeout + ticketing.DeregisterDelay + 2*time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.DestroyEnv(ctx, env); err != nil {
			t.Errorf("DestroyEnv: %v", err)
		}
		d.Close()
	})
	target := signalman.Target{Service: "inventory", Env: env}
	if _, err := d.Scale(ctx, target, 4); err != nil {
		t.Fatal(err)
	}

	client := registry.NewClient(registry.TransportConfig{Resolver: w})
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	reports := make(chan loadgen.Report, 1)
	go func() {
		rep, _ := loadgen.Run(loadCtx, loadgen.Config{Target: "http://inventory", Client: client, Rate: 100, Duration: 5 * time.Minute})
		reports <- rep
	}()
	time.Sleep(time.Second) // load established before the changes start

	dep, err := signalman.NewDeployer(signalman.DeployerConfig{Driver: d,
		Gate: signalman.HTTPGate{Locator: w, Interval: 100 * time.Millisecond, Successes: 3, Timeout: 15 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := dep.Deploy(ctx, signalman.DeployRequest{Target: target, Version: "v2"})
	if err != nil || res.State != signalman.DeploySucceeded {
		t.Fatalf("deploy: %v, %+v", err, res)
	}
	t.Logf("rolling deploy of 4 containers: %s (%d steps)", time.Since(start).Round(time.Millisecond), len(res.Steps))
	for _, in := range w.Instances("inventory") {
		if in.Version != "v2" {
			t.Fatalf("registered after the deploy: %s at %s", in.ID, in.Version)
		}
	}
	insts, err := d.Instances(ctx, target)
	if err != nil || len(insts) != 4 {
		t.Fatalf("containers after the deploy: %+v, %v; want 4", insts, err)
	}
	for _, in := range insts {
		if in.Version != "v2" {
			t.Fatalf("container %s labelled %s after the deploy", in.ID, in.Version)
		}
	}
	for _, n := range []int{8, 2} {
		start := time.Now()
		if _, err := d.Scale(ctx, target, n); err != nil {
			t.Fatalf("scale to %d: %v", n, err)
		}
		t.Logf("scale to %d: %s", n, time.Since(start).Round(time.Millisecond))
	}
	if got := len(w.Instances("inventory")); got != 2 {
		t.Fatalf("%d instances registered after scaling to 2", got)
	}
	time.Sleep(time.Second)
	stopLoad()
	rep := <-reports
	t.Logf("load: %s", rep)
	if want := int(rep.Elapsed.Seconds() * 100 / 2); rep.OK < want {
		t.Fatalf("only %d requests answered in %s, want at least %d: the load did not run", rep.OK, rep.Elapsed, want)
	}
	if rep.Failed != 0 {
		t.Fatalf("%d failed requests during the deploy and scaling: %v", rep.Failed, rep.ByStatus)
	}
}
