package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	dswarm "github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/kplane/kplane/hawaii"
	"github.com/kplane/kplane/internal/dockertest"
	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/internal/swarmtest"
	"github.com/kplane/kplane/signalman/swarm"
)

// `kplane server --driver swarm` with a pipeline for inventory, on a real
// single-node swarm: a build report makes the pipeline create the
// throwaway environment alpha-b1 — a Swarm service created from
// services.inventory.image and cmd, registered before the alpha job runs
// — run the job against it (it sees the service running), destroy it
// (nothing of it left), then deploy the build to qa, which on swarm also
// creates the service there, and run the job there too.
func TestServerOnSwarmRunsPipeline(t *testing.T) {
	cli := swarmtest.Manager(t)
	demo := dockertest.BuildDemoImage(t)
	suffix := dockertest.Env(t)
	repo := "kplane-server-swarm-" + suffix
	tag := repo + ":1.0.0"
	if err := cli.ImageTag(t.Context(), demo, tag); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cli.ImageRemove(ctx, tag, image.RemoveOptions{}); err != nil {
			t.Errorf("untag %s: %v", tag, err)
		}
	})
	envs := []string{"alpha-b1", "qa"}
	for _, env := range envs {
		if svcs := envServices(t, cli, env); len(svcs) > 0 {
			t.Fatalf("swarm services of %s exist already: %v", env, svcs)
		}
	}
	// Whatever happens, what kplane created goes (before the swarm is
	// left: cleanups run last in, first out).
	t.Cleanup(func() { removeEnvs(t, cli, envs) })

	etcd := etcdtest.Start(t)
	seen := t.TempDir()
	job := fmt.Sprintf(`docker service ls --filter "label=%s=$KPLANE_ENV" --format '{{.Name}} {{.Replicas}}' > %q/$KPLANE_ENV.txt &&
printf '<testsuite name="swarm" tests="1"><testcase classname="swarm" name="environment runs"/></testsuite>' > "$KPLANE_JUNIT"`,
		swarm.LabelEnv, seen)
	cfg := serverTestConfig(t, etcd)
	cfg.Driver = "swarm"
	cfg.Autoscaler.Enabled = false
	cfg.Swarm = SwarmConfig{Timeout: "60s", StopGracePeriod: "12s"}
	cfg.Services = map[string]ServiceConfig{"inventory": {
		Image: repo + ":{version}",
		Cmd: []string{"inventory", "--listen", "127.0.0.1:0", "--etcd", strings.Join(etcd.Endpoints(), ","),
			"--env", "{env}", "--version", "{version}", "--tag", "{env}"},
	}}
	cfg.Pipeline.Services = []hawaii.ServicePipeline{{Service: "inventory",
		Alpha: []hawaii.Job{{Name: "env", Command: []string{"sh", "-c", job}, Timeout: time.Minute}},
		QA:    []hawaii.Job{{Name: "env", Command: []string{"sh", "-c", job}, Timeout: time.Minute}}}}
	s := startServer(t, cfg)

	var rep struct{ ID int64 }
	s.call(t, "POST", "/api/v1/builds", fmt.Sprintf(`{"service": "inventory", "version": "1.0.0", "image": %q,
		"scmRevision": "r1", "committer": "alice", "timestamp": %q, "guid": "swarm-%s"}`,
		tag, time.Now().UTC().Format(time.RFC3339), suffix), &rep)
	if rep.ID != 1 {
		t.Fatalf("build ID %d, want 1 on a fresh data dir", rep.ID)
	}
	type stage struct {
		Stage, Status string
		Steps         []struct{ Name, Status, Message string }
	}
	var b struct{ Stages []stage }
	get := func(name string) stage {
		for _, st := range b.Stages {
			if st.Stage == name {
				return st
			}
		}
		return stage{}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		s.call(t, "GET", "/api/v1/builds/1", "", &b)
		if st := get("qa").Status; st == "passed" || st == "failed" || st == "cancelled" || get("alpha").Status == "failed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the build's alpha and qa did not end in 3 minutes: %+v\n%s", b, s.stderr.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
	if a := get("alpha"); a.Status != "passed" {
		js, _ := json.Marshal(a)
		t.Fatalf("alpha %s: %s\n%s", a.Status, js, s.stderr.String())
	}
	if q := get("qa"); q.Status != "passed" {
		js, _ := json.Marshal(q)
		t.Fatalf("qa %s: %s", q.Status, js)
	}
	ran, err := os.ReadFile(filepath.Join(seen, "alpha-b1.txt"))
	if err != nil {
		t.Fatalf("the alpha job left no record: %v", err)
	}
	if got := strings.TrimSpace(string(ran)); got != "inventory-alpha-b1 1/1" {
		t.Errorf("swarm services of alpha-b1 while its job ran: %q, want inventory-alpha-b1 1/1", got)
	}
	// The alpha environment is gone: no service, no task running, nothing
	// registered; the engine removes the exited containers soon after.
	if svcs := envServices(t, cli, "alpha-b1"); len(svcs) != 0 {
		t.Errorf("swarm services of alpha-b1 after alpha: %v", svcs)
	}
	if got := registered(t, s, "inventory", "alpha-b1"); len(got) != 0 {
		t.Errorf("instances of alpha-b1 registered after alpha: %v", got)
	}
	waitFor(t, "the containers of alpha-b1 to be removed", func() bool { return len(envContainers(t, cli, "alpha-b1")) == 0 })
	// qa runs the build, in a service kplane created.
	if ran, err := os.ReadFile(filepath.Join(seen, "qa.txt")); err != nil || strings.TrimSpace(string(ran)) != "inventory-qa 1/1" {
		t.Errorf("swarm services of qa while its job ran: %q, %v; want inventory-qa 1/1", ran, err)
	}
	if svcs := envServices(t, cli, "qa"); len(svcs) != 1 || svcs[0] != "inventory-qa" {
		t.Errorf("swarm services of qa: %v, want inventory-qa", svcs)
	}
	if vs := versions(t, s, "inventory", "qa"); len(vs) != 1 || vs[0] != "1.0.0" {
		t.Errorf("qa registers %v, want one instance at 1.0.0", vs)
	}
	s.call(t, "DELETE", "/api/v1/envs/qa", "", nil)
	if svcs := envServices(t, cli, "qa"); len(svcs) != 0 {
		t.Errorf("swarm services of qa after DELETE /api/v1/envs/qa: %v", svcs)
	}
}

// envServices names the Swarm services labelled with env.
func envServices(t *testing.T, cli *client.Client, env string) []string {
	t.Helper()
	svcs, err := cli.ServiceList(t.Context(), dswarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", swarm.LabelEnv+"="+env))})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range svcs {
		names = append(names, s.Spec.Name)
	}
	return names
}

func envContainers(t *testing.T, cli *client.Client, env string) []container.Summary {
	t.Helper()
	cs, err := cli.ContainerList(t.Context(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", swarm.LabelManaged+"=true"), filters.Arg("label", swarm.LabelEnv+"="+env))})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// removeEnvs removes the Swarm services kplane created in envs and waits
// for their containers to go.
func removeEnvs(t *testing.T, cli *client.Client, envs []string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, env := range envs {
		f := filters.NewArgs(filters.Arg("label", swarm.LabelManaged+"=true"), filters.Arg("label", swarm.LabelEnv+"="+env))
		svcs, err := cli.ServiceList(ctx, dswarm.ServiceListOptions{Filters: f})
		if err != nil {
			t.Errorf("list services: %v", err)
			return
		}
		for _, s := range svcs {
			if err := cli.ServiceRemove(ctx, s.ID); err != nil {
				t.Errorf("remove service %s: %v", s.Spec.Name, err)
			}
		}
		for {
			cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
			if err == nil && len(cs) == 0 {
				break
			}
			if ctx.Err() != nil {
				t.Errorf("containers of %s still present", env)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
