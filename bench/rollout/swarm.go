package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	dswarm "github.com/docker/docker/api/types/swarm"

	"github.com/kplane/kplane/examples/ticketing"
	"github.com/kplane/kplane/internal/swarmtest"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
	"github.com/kplane/kplane/signalman/docker"
	"github.com/kplane/kplane/signalman/swarm"
)

// newSwarmDriver returns a swarm driver of the engine's swarm (a
// single-node one on 127.0.0.1 if the engine is in none, left by closeFn),
// the demo image tagged v0 … v<runs>, and prepare, which creates a run's
// service: inventory tasks on the host network at v0, sharing one SQLite
// database through a bind mount as the docker driver's containers do,
// labelled so that the driver's DestroyEnv removes it; it returns once
// its one task registered. closeFn removes what a failed run left, the
// tags and the swarm the bench made.
func newSwarmDriver(ctx context.Context, endpoints []string, w *registry.Watcher, dir string, runs int) (
	_ *swarm.Driver, prepare func(context.Context, signalman.Target) (int, error), closeFn func(), _ error) {
	cli, err := docker.NewClient()
	if err != nil {
		return nil, nil, nil, err
	}
	var undo []func(context.Context)
	cleanup := func() {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i](rctx)
		}
		cli.Close()
	}
	fail := func(err error) (*swarm.Driver, func(context.Context, signalman.Target) (int, error), func(), error) {
		cleanup()
		return nil, nil, nil, err
	}
	info, err := cli.Info(ctx)
	if err != nil {
		return fail(err)
	}
	switch info.Swarm.LocalNodeState {
	case dswarm.LocalNodeStateActive:
		if !info.Swarm.ControlAvailable {
			return fail(fmt.Errorf("this engine is a swarm worker; the bench needs a manager"))
		}
	case dswarm.LocalNodeStateInactive:
		leave, err := swarmtest.Init(ctx, cli)
		if err != nil {
			return fail(err)
		}
		fmt.Println("initialised a single-node swarm on 127.0.0.1 (left at the end)")
		undo = append(undo, func(ctx context.Context) {
			if err := leave(ctx); err != nil {
				fmt.Fprintln(os.Stderr, "rollout:", err)
			}
		})
	default:
		return fail(fmt.Errorf("engine swarm state %q", info.Swarm.LocalNodeState))
	}
	repo := fmt.Sprintf("kplane-bench-rollout-swarm-%d", os.Getpid())
	if err := buildDemoImage(ctx, cli, dir, repo+":v0"); err != nil {
		return fail(err)
	}
	tags := []string{repo + ":v0"}
	undo = append(undo, func(ctx context.Context) {
		for _, tag := range tags {
			if _, err := cli.ImageRemove(ctx, tag, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
				fmt.Fprintln(os.Stderr, "rollout: remove image:", err)
			}
		}
	})
	for r := 1; r <= runs; r++ {
		tag := fmt.Sprintf("%s:v%d", repo, r)
		if err := cli.ImageTag(ctx, repo+":v0", tag); err != nil {
			return fail(err)
		}
		tags = append(tags, tag)
	}
	// After a failure, the services of the bench's environments go.
	undo = append(undo, func(ctx context.Context) {
		f := filters.NewArgs(filters.Arg("label", swarm.LabelManaged+"=true"), filters.Arg("label", swarm.LabelService+"=inventory"))
		svcs, err := cli.ServiceList(ctx, dswarm.ServiceListOptions{Filters: f})
		if err != nil {
			return
		}
		for _, s := range svcs {
			if strings.HasPrefix(s.Spec.Labels[swarm.LabelEnv], envPrefix) {
				_ = cli.ServiceRemove(ctx, s.ID)
			}
		}
		// The engine removes the exited containers of removed tasks a
		// little after DestroyEnv returned; not once the swarm is left.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for {
			cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
			if err != nil {
				return
			}
			var ours []string
			for _, c := range cs {
				if strings.HasPrefix(c.Labels[swarm.LabelEnv], envPrefix) {
					ours = append(ours, c.ID)
				}
			}
			if len(ours) == 0 {
				return
			}
			if wctx.Err() != nil {
				for _, id := range ours {
					_ = cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
				}
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	args := []string{"inventory", "--listen", "127.0.0.1:0", "--etcd", strings.Join(endpoints, ","),
		"--env", "{env}", "--version", "{version}", "--db", filepath.Join(dir, "inventory.db")}
	d, err := swarm.New(swarm.Config{API: cli, Confirmer: w, PollInterval: 100 * time.Millisecond,
		Images: map[string]string{"inventory": repo + ":{version}"}, Args: map[string][]string{"inventory": args}})
	if err != nil {
		return fail(err)
	}
	grace := ticketing.ShutdownTimeout + ticketing.DeregisterDelay + 2*time.Second
	prepare = func(ctx context.Context, t signalman.Target) (int, error) {
		labels := map[string]string{swarm.LabelManaged: "true", swarm.LabelService: t.Service, swarm.LabelEnv: t.Env}
		v0 := make([]string, len(args))
		for i, a := range args {
			v0[i] = strings.NewReplacer("{env}", t.Env, "{version}", "v0").Replace(a)
		}
		one := uint64(1)
		spec := dswarm.ServiceSpec{
			Annotations: dswarm.Annotations{Name: d.Name(t), Labels: map[string]string{swarm.LabelManaged: "true",
				swarm.LabelService: t.Service, swarm.LabelEnv: t.Env, swarm.LabelVersion: "v0"}},
			TaskTemplate: dswarm.TaskSpec{
				ContainerSpec: &dswarm.ContainerSpec{Image: repo + ":v0", Args: v0, Labels: labels, StopGracePeriod: &grace,
					User:   strconv.Itoa(os.Getuid()) + ":" + strconv.Itoa(os.Getgid()),
					Mounts: []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: dir}}},
				Networks:      []dswarm.NetworkAttachmentConfig{{Target: swarm.HostNetwork}},
				RestartPolicy: &dswarm.RestartPolicy{Condition: dswarm.RestartPolicyConditionOnFailure},
			},
			Mode: dswarm.ServiceMode{Replicated: &dswarm.ReplicatedService{Replicas: &one}},
		}
		if _, err := cli.ServiceCreate(ctx, spec, dswarm.ServiceCreateOptions{QueryRegistry: false}); err != nil {
			return 0, fmt.Errorf("create service %s: %w", spec.Name, err)
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		err := w.WaitInstances(wctx, t.Service, func(in []registry.Instance) bool {
			n := 0
			for _, i := range in {
				if i.Env == t.Env {
					n++
				}
			}
			return n == 1
		})
		if err != nil {
			return 0, fmt.Errorf("the first task of %s did not register: %w", spec.Name, err)
		}
		// Swarm may report the task running a little after it registered;
		// a Scale before that would see 0 running and wait for it anyway.
		return 1, nil
	}
	return d, prepare, cleanup, nil
}
