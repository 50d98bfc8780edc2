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
	"github.com/kplane/kplane/internal/dockertest"
	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
	"github.com/kplane/kplane/signalman/docker"
	"github.com/kplane/kplane/signalman/signalmantest"
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
	signalmantest.ZeroFailedRequests(t, ctx, d, w, target)
}
