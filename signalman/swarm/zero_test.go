package swarm

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"

	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
	"github.com/kplane/kplane/signalman/signalmantest"
)

// TestZeroFailedRequests is issue #5's measurement on a real single-node
// swarm, the twin of the process and docker drivers' tests: a Swarm
// service of inventory tasks (the demo image, FROM scratch, tagged v1 and
// v2) on the host network registered in embedded etcd, a steady load
// through the registry client, and meanwhile a rolling deploy of 4
// instances to v2 (Swarm's rolling update, followed by Roll), a scale
// 4 → 8 and 8 → 2. The load generator must report no failed request.
func TestZeroFailedRequests(t *testing.T) {
	cli := engine(t)
	sfx := suffix()
	repo := "kplane-swarm-zero-" + sfx
	tagDemo(t, cli, repo, "v1", "v2")

	srv := etcdtest.Start(t)
	w := registry.NewWatcher(registry.WatcherConfig{Client: srv.Client(t)})
	wctx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); _ = w.Run(wctx) }()
	// Stopped after the service's removal (a later cleanup runs first).
	t.Cleanup(func() { stopWatch(); <-watchDone })
	<-w.Ready()

	env := "zero-" + sfx
	target := signalman.Target{Service: "inventory", Env: env}
	// The tasks share one SQLite database, as in `kplane dev --driver
	// docker`: bind-mounted at the same path, written as this user.
	dir := t.TempDir()
	args := []string{"inventory", "--listen", "127.0.0.1:0", "--etcd", strings.Join(srv.Endpoints(), ","),
		"--env", "{env}", "--version", "{version}", "--db", filepath.Join(dir, "inventory.db")}
	v1 := make([]string, len(args))
	for i, a := range args {
		v1[i] = strings.NewReplacer("{env}", env, "{version}", "v1").Replace(a)
	}
	one := uint64(1)
	grace := ticketingDrain
	createServiceSpec(t, cli, swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: "inventory-" + env,
			Labels: map[string]string{LabelService: "inventory", LabelEnv: env, LabelVersion: "v1"}},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: repo + ":v1", Args: v1, StopGracePeriod: &grace,
				User:   strconv.Itoa(os.Getuid()) + ":" + strconv.Itoa(os.Getgid()),
				Mounts: []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: dir}}},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: "host"}},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionOnFailure},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}},
	})

	d, err := New(Config{API: cli, Confirmer: w, Timeout: 90 * time.Second, PollInterval: 100 * time.Millisecond,
		Args: map[string][]string{"inventory": args}, Monitor: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	signalmantest.ZeroFailedRequests(t, ctx, d, w, target)
}
