package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/internal/dockertest"
	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
	"github.com/kplane/kplane/signalman/docker"
)

// TestMain lets this test binary stand in for kplane as the process
// driver's executable: `kplane.test ticketing inventory ...` runs the
// demo's inventory, as `kplane ticketing inventory ...` does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "ticketing" {
		root := newRootCmd()
		root.SetArgs(os.Args[1:])
		if err := root.Execute(); err != nil {
			fmt.Fprintln(os.Stderr, "kplane:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(dockertest.Main(m))
}

// `kplane server` without the demo runs your services: with driver process
// and a services entry, it starts the entry's instances, scales them
// through the API, rolls them to a new version through the deploy API, and
// stops its children when it stops.
func TestServerRunsServicesWithProcessDriver(t *testing.T) {
	etcd := etcdtest.Start(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := serverTestConfig(t, etcd)
	cfg.Driver = "process"
	cfg.Services = map[string]ServiceConfig{"inventory": {
		Path: exe,
		Args: []string{"ticketing", "inventory", "--listen", "127.0.0.1:0", "--etcd", strings.Join(etcd.Endpoints(), ","),
			"--id", "{id}", "--env", "{env}", "--version", "{version}", "--db", filepath.Join(dir, "inventory.db")},
		Version:   "1.0.0",
		Instances: 1,
	}}
	s := startServer(t, cfg)
	exerciseServices(t, s, cfg.autoscalerEnv(), nil)
	s.stop(t)
	// The process driver's instances are kplane's children: gone with it,
	// deregistered.
	resp, err := etcd.Client(t).Get(t.Context(), registry.DefaultPrefix+"inventory/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		t.Fatalf("%d instances still registered after kplane stopped", len(resp.Kvs))
	}
}

// The same with driver docker and the demo's inventory image (built
// offline, FROM scratch) as a services entry. Containers outlive kplane:
// the next kplane finds them by label.
func TestServerRunsServicesWithDockerDriver(t *testing.T) {
	cli := dockertest.Client(t)
	image := dockertest.BuildDemoImage(t)
	env := dockertest.Env(t)
	dockertest.CleanupManaged(t, cli, env)
	etcd := etcdtest.Start(t)
	dir := t.TempDir()
	cfg := serverTestConfig(t, etcd)
	cfg.Driver = "docker"
	cfg.Docker.StopTimeout = "15s"
	cfg.Autoscaler.Env = env
	cfg.Services = map[string]ServiceConfig{"inventory": {
		Image: image,
		Cmd: []string{"inventory", "--listen", "{listen}", "--advertise={advertise}", "--etcd", strings.Join(etcd.Endpoints(), ","),
			"--id", "{id}", "--env", "{env}", "--version", "{version}", "--db", filepath.Join(dir, "inventory.db")},
		Binds:     []string{dir + ":" + dir},
		User:      strconv.Itoa(os.Getuid()) + ":" + strconv.Itoa(os.Getgid()),
		Version:   "1.0.0",
		Instances: 1,
	}}
	s := startServer(t, cfg)
	containers := func() []string { return managedContainers(t, cli, "inventory", env) }
	exerciseServices(t, s, env, containers)
	s.stop(t)
	if got := containers(); len(got) != 1 {
		t.Fatalf("containers after kplane stopped = %v, want the one instance left running", got)
	}
}

// exerciseServices checks what both drivers must do: the start count,
// scale up and down through the API (the highest instance first), and a
// rolling deploy through the API. containers, when set, lists the
// engine's containers of the service, which must match the registry.
func exerciseServices(t *testing.T, s *testServer, env string, containers func() []string) {
	t.Helper()
	want := func(ids ...string) {
		t.Helper()
		if got := registered(t, s, "inventory", env); !slices.Equal(got, ids) {
			t.Fatalf("registered in %s: %v, want %v", env, got, ids)
		}
		if containers == nil {
			return
		}
		var names []string
		for _, id := range ids {
			names = append(names, "kplane-"+id)
		}
		if got := containers(); !slices.Equal(got, names) {
			t.Fatalf("containers: %v, want %v", got, names)
		}
	}
	id := func(n int) string { return "inventory-" + env + "-" + strconv.Itoa(n) }

	// instances: 1 started the service with kplane.
	waitFor(t, "the start count", func() bool { return len(registered(t, s, "inventory", env)) == 1 })
	want(id(1))

	var ans scaleAnswer
	s.call(t, "POST", "/api/v1/services/inventory/scale", `{"instances": 3}`, &ans)
	if ans.From != 1 || ans.To != 3 || len(ans.Started) != 2 {
		t.Fatalf("scale to 3: %+v", ans)
	}
	waitFor(t, "3 registered", func() bool { return len(registered(t, s, "inventory", env)) == 3 })
	want(id(1), id(2), id(3))

	s.call(t, "POST", "/api/v1/services/inventory/scale", `{"instances": 2}`, &ans)
	if !slices.Equal(ans.Stopped, []string{id(3)}) {
		t.Fatalf("scale to 2 stopped %v, want the highest, %s", ans.Stopped, id(3))
	}
	waitFor(t, "2 registered", func() bool { return len(registered(t, s, "inventory", env)) == 2 })
	want(id(1), id(2))

	var dep signalman.Deploy
	s.call(t, "POST", "/api/v1/deploys", fmt.Sprintf(`{"service": "inventory", "env": %q, "version": "2.0.0"}`, env), &dep)
	deadline := time.Now().Add(2 * time.Minute)
	for !dep.State.Done() {
		if time.Now().After(deadline) {
			t.Fatalf("deploy still %s after 2 minutes: %+v", dep.State, dep.Steps)
		}
		time.Sleep(200 * time.Millisecond)
		s.call(t, "GET", "/api/v1/deploys/"+dep.ID, "", &dep)
	}
	if dep.State != signalman.DeploySucceeded || dep.FromVersion != "1.0.0" || dep.Instances != 2 {
		t.Fatalf("deploy: %s from %q, %d instances (%s): %+v", dep.State, dep.FromVersion, dep.Instances, dep.Error, dep.Steps)
	}
	waitFor(t, "2 instances at 2.0.0", func() bool {
		vs := versions(t, s, "inventory", env)
		return len(vs) == 2 && vs[0] == "2.0.0" && vs[1] == "2.0.0"
	})
	// A scale-up after the deploy starts the deployed version.
	s.call(t, "POST", "/api/v1/services/inventory/scale", `{"instances": 3}`, &ans)
	waitFor(t, "3 instances at 2.0.0", func() bool {
		vs := versions(t, s, "inventory", env)
		return len(vs) == 3 && !slices.ContainsFunc(vs, func(v string) bool { return v != "2.0.0" })
	})
	s.call(t, "POST", "/api/v1/services/inventory/scale", `{"instances": 1}`, &ans)
	waitFor(t, "1 registered", func() bool { return len(registered(t, s, "inventory", env)) == 1 })
	if containers != nil {
		if got := containers(); len(got) != 1 {
			t.Fatalf("containers after scaling to 1: %v", got)
		}
	}
}

// serverTestConfig is `kplane server`'s defaults on an embedded test etcd,
// with the autoscaler on (the scale API is its manual scaler) and no demo.
func serverTestConfig(t *testing.T, etcd *etcdtest.Server) Config {
	cfg := DefaultConfig()
	cfg.Listen = freeListen(t)
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Etcd.Endpoints = etcd.Endpoints()
	cfg.Autoscaler.Interval = "1s"
	cfg.LogLevel = "debug"
	return cfg
}

type testServer struct {
	cli    *apiClient
	cancel context.CancelFunc
	done   chan error
	stderr *syncBuf
}

// startServer runs serve as `kplane server` does, with an admin token
// created in its store beforehand (kplane user create's job), and waits
// for its banner.
func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	const token = "services-test-admin-token"
	db, err := openStore(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(db, auth.Config{})
	if err == nil {
		_, err = a.EnsureAdmin(t.Context(), "admin", token)
	}
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	s := &testServer{cancel: cancel, done: make(chan error, 1), stderr: &syncBuf{}}
	var stdout syncBuf
	go func() { s.done <- serve(ctx, cfg, &stdout, s.stderr, false) }()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(stdout.String(), "Ctrl-C stops everything") {
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("serve ended: %v\n%s", err, s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner within 90 s:\n%s\n%s", stdout.String(), s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !regexp.MustCompile(`Services: inventory \(driver \w+, env [a-z0-9-]+\)`).MatchString(stdout.String()) {
		t.Errorf("the banner does not name the services: %s", stdout.String())
	}
	s.cli = (&clientFlags{addr: "http://" + cfg.Listen, token: token}).client()
	s.cli.http.Timeout = 3 * time.Minute
	return s
}

// stop stops serve and waits for it; a second call does nothing.
func (s *testServer) stop(t *testing.T) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(time.Minute):
		t.Errorf("serve did not stop within a minute:\n%s", s.stderr.String())
	}
}

// call sends a request; a 503 from a replica not yet leading is retried.
func (s *testServer) call(t *testing.T, method, path, body string, out any) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var r *strings.Reader
		var err error
		if body != "" {
			r = strings.NewReader(body)
			err = s.cli.do(t.Context(), method, path, r, out)
		} else {
			err = s.cli.do(t.Context(), method, path, nil, out)
		}
		var ae *apiError
		if errors.As(err, &ae) && ae.Code == "not_leader" && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, s.stderr.String())
		}
		return
	}
}

type servicesAnswer struct {
	Services []struct {
		Name      string `json:"name"`
		Instances []struct {
			ID      string `json:"id"`
			Env     string `json:"env"`
			Version string `json:"version"`
		} `json:"instances"`
	} `json:"services"`
}

// registered lists the IDs of service's instances in env, sorted.
func registered(t *testing.T, s *testServer, service, env string) []string {
	t.Helper()
	var ids []string
	for _, in := range instancesOf(t, s, service, env) {
		ids = append(ids, in[0])
	}
	return ids
}

func versions(t *testing.T, s *testServer, service, env string) []string {
	t.Helper()
	var vs []string
	for _, in := range instancesOf(t, s, service, env) {
		vs = append(vs, in[1])
	}
	return vs
}

// instancesOf is [id, version] of each registered instance, by ID.
func instancesOf(t *testing.T, s *testServer, service, env string) [][2]string {
	t.Helper()
	var ans servicesAnswer
	if err := s.cli.do(t.Context(), "GET", "/api/v1/services", nil, &ans); err != nil {
		t.Fatalf("GET /api/v1/services: %v", err)
	}
	var out [][2]string
	for _, svc := range ans.Services {
		if svc.Name != service {
			continue
		}
		for _, in := range svc.Instances {
			if in.Env == env {
				out = append(out, [2]string{in.ID, in.Version})
			}
		}
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out
}

// managedContainers lists the names of the running containers of service
// in env, sorted.
func managedContainers(t *testing.T, cli *client.Client, service, env string) []string {
	t.Helper()
	f := filters.NewArgs(filters.Arg("label", docker.LabelService+"="+service), filters.Arg("label", docker.LabelEnv+"="+env))
	cs, err := cli.ContainerList(t.Context(), container.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cs {
		for _, n := range c.Names {
			names = append(names, strings.TrimPrefix(n, "/"))
		}
	}
	slices.Sort(names)
	return names
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// With driver marathon kplane scales and deploys apps: a deploy through
// the API goes to Marathon (no more 501), to the app's own ID. (Marathon
// itself cannot run here: the requests go to an address where nothing
// listens, and fail with that; signalman/marathon's tests replay a
// deploy's answers.)
func TestServerOnMarathonDeploysAndScales(t *testing.T) {
	etcd := etcdtest.Start(t)
	cfg := serverTestConfig(t, etcd)
	cfg.Driver = "marathon"
	cfg.Marathon = MarathonConfig{URL: "http://" + freeListen(t), Timeout: "2s"}
	cfg.Services = map[string]ServiceConfig{"inventory": {AppID: "/shop/{env}/inventory"}}
	s := startServer(t, cfg)

	err := s.cli.do(t.Context(), "POST", "/api/v1/deploys", strings.NewReader(`{"service": "inventory", "env": "prod", "version": "2.0.0"}`), nil)
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status == 501 || ae.Code == "unsupported" || ae.Status < 500 {
		t.Fatalf("deploy on marathon with Marathon unreachable = %v, want a server error, not 501", err)
	}
	if !strings.Contains(s.stderr.String(), "/v2/apps/shop/prod/inventory") {
		t.Errorf("the deploy did not ask Marathon for the app's own ID /shop/prod/inventory:\n%s", s.stderr.String())
	}
	// Environments are not Marathon's to create or destroy here.
	err = s.cli.do(t.Context(), "DELETE", "/api/v1/envs/qa", nil, nil)
	if !errors.As(err, &ae) || ae.Status != 501 || ae.Code != "unsupported" {
		t.Fatalf("destroy an environment on marathon = %v, want 501 unsupported", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err = s.cli.do(t.Context(), "POST", "/api/v1/services/inventory/scale", strings.NewReader(`{"instances": 2}`), nil)
		if !errors.As(err, &ae) || ae.Code != "not_leader" || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !errors.As(err, &ae) || ae.Status < 500 || ae.Code == "not_leader" {
		t.Fatalf("scale with Marathon unreachable = %v, want a server error", err)
	}
	if !strings.Contains(s.stderr.String(), "/shop/prod/inventory") {
		t.Errorf("the scale did not go to the app's own ID /shop/prod/inventory:\n%s", s.stderr.String())
	}
}
