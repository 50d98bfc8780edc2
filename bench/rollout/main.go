// Command rollout measures signalman's rolling deploys and scaling: real
// ticketing inventory instances registered in an embedded etcd on
// loopback, under a steady load through the registry client. It reports
// the time per instance of a scale-up (confirmed: registered), the time
// per rolling step (start, registered, health gate, drain and stop of one
// old instance) and the failed requests of the load. Results go in
// docs/benchmarks.md.
//
//	go run ./bench/rollout [-driver process|docker|swarm] [-runs 3] [-rate 100]
//
// With -driver process (the default) the instances are this binary,
// re-executed. With -driver docker they are containers (host network) of
// a FROM scratch image of the demo's own command, built offline first
// (go build with CGO_ENABLED=0, then the image from a tar context through
// the engine API) and removed at the end with every container. With
// -driver swarm they are the tasks of one Swarm service per run (host
// network, the same image tagged with each version), on the engine's
// swarm, or on a single-node swarm the bench initialises on 127.0.0.1 and
// leaves at the end; each run's service starts at 1 task, so its first
// scale-up is 1 → 4, and Swarm rolls the deploy (start-first, parallelism
// 1) while kplane follows and gates it.
//
// It is bounded (about 15 s per run), writes only to a temp dir, and
// touches nothing but loopback and its own containers.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/spf13/pflag"

	"github.com/kplane/kplane/examples/ticketing"
	"github.com/kplane/kplane/examples/ticketing/loadgen"
	"github.com/kplane/kplane/internal/etcdserver"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
	"github.com/kplane/kplane/signalman/docker"
	"github.com/kplane/kplane/signalman/process"
)

// envPrefix starts the environment name of each run.
const envPrefix = "bench-"

// childEnv makes this binary a ticketing instance.
const childEnv = "KPLANE_BENCH_ROLLOUT_CHILD"

func main() {
	if os.Getenv(childEnv) == "1" {
		os.Exit(child(os.Args[1:]))
	}
	runs := flag.Int("runs", 3, "repetitions")
	rate := flag.Float64("rate", 100, "load in requests per second through the registry")
	driver := flag.String("driver", "process", "process, docker or swarm")
	flag.Parse()
	if *driver != "process" && *driver != "docker" && *driver != "swarm" {
		fmt.Fprintf(os.Stderr, "rollout: -driver %q: want process, docker or swarm\n", *driver)
		os.Exit(2)
	}
	if err := run(*driver, *runs, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "rollout:", err)
		os.Exit(1)
	}
}

func child(args []string) int {
	cfg := ticketing.Config{Service: args[0]}
	fs := pflag.NewFlagSet(args[0], pflag.ContinueOnError)
	ticketing.BindFlags(fs, &cfg)
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := ticketing.Run(ctx, cfg); err != nil {
		return 1
	}
	return 0
}

type sample struct {
	scaleUp, step, scaleDown []time.Duration // per instance / per step
	failed, ok               int
}

func run(driver string, runs int, rate float64) error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	dir, err := os.MkdirTemp("", "kplane-bench-rollout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	peer := l.Addr().String()
	l.Close()
	srv, err := etcdserver.Start(ctx, etcdserver.Config{DataDir: filepath.Join(dir, "etcd"), ClientURL: "http://127.0.0.1:0",
		PeerURL: "http://" + peer, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer srv.Close()
	cli, err := registry.Connect(registry.ConnectConfig{Endpoints: srv.Endpoints()})
	if err != nil {
		return err
	}
	defer cli.Close()
	w := registry.NewWatcher(registry.WatcherConfig{Client: cli})
	wctx, stopWatcher := context.WithCancel(ctx)
	watcherDone := make(chan error, 1)
	go func() { watcherDone <- w.Run(wctx) }()
	defer func() { stopWatcher(); <-watcherDone }()
	<-w.Ready()

	var d driverUnderTest
	// prepare makes the service of t exist before its first scale-up and
	// returns its instances then: 1 on swarm (a service it creates), else 0.
	prepare := func(context.Context, signalman.Target) (int, error) { return 0, nil }
	switch driver {
	case "docker":
		dd, closeDocker, err := newDockerDriver(ctx, srv.Endpoints(), w, dir)
		if err != nil {
			return err
		}
		defer closeDocker()
		d = dd
	case "swarm":
		sd, prep, closeSwarm, err := newSwarmDriver(ctx, srv.Endpoints(), w, dir, runs)
		if err != nil {
			return err
		}
		defer closeSwarm()
		d, prepare = sd, prep
	default:
		pd, err := newProcessDriver(srv.Endpoints(), w, dir)
		if err != nil {
			return err
		}
		defer pd.Close()
		d = pd
	}
	dep, err := signalman.NewDeployer(signalman.DeployerConfig{Driver: d, Gate: signalman.HTTPGate{Locator: w}})
	if err != nil {
		return err
	}
	client := registry.NewClient(registry.TransportConfig{Resolver: w})

	var all sample
	for r := range runs {
		t := signalman.Target{Service: "inventory", Env: fmt.Sprintf("%s%d-%d", envPrefix, os.Getpid(), r)}
		from, err := prepare(ctx, t)
		if err != nil {
			return err
		}
		start := time.Now()
		if _, err := d.Scale(ctx, t, 4); err != nil {
			return err
		}
		all.scaleUp = append(all.scaleUp, time.Since(start)/time.Duration(4-from))
		lctx, stopLoad := context.WithCancel(ctx)
		reports := make(chan loadgen.Report, 1)
		go func() {
			rep, _ := loadgen.Run(lctx, loadgen.Config{Target: "http://inventory", Client: client, Rate: rate, Duration: 10 * time.Minute})
			reports <- rep
		}()
		time.Sleep(500 * time.Millisecond)
		res, err := dep.Deploy(ctx, signalman.DeployRequest{Target: t, Version: fmt.Sprintf("v%d", r+1)})
		if err != nil || res.State != signalman.DeploySucceeded {
			stopLoad()
			return fmt.Errorf("deploy: %v %s %s", err, res.State, res.Error)
		}
		all.step = append(all.step, res.Ended.Sub(res.Started)/4)
		start = time.Now()
		if _, err := d.Scale(ctx, t, 8); err != nil {
			stopLoad()
			return err
		}
		all.scaleUp = append(all.scaleUp, time.Since(start)/4)
		start = time.Now()
		if _, err := d.Scale(ctx, t, 2); err != nil {
			stopLoad()
			return err
		}
		all.scaleDown = append(all.scaleDown, time.Since(start)/6)
		time.Sleep(500 * time.Millisecond)
		stopLoad()
		rep := <-reports
		all.ok += rep.OK
		all.failed += rep.Failed
		if err := d.DestroyEnv(ctx, t.Env); err != nil {
			return err
		}
		fmt.Printf("run %d: scale-up %s/instance, rolling step %s, scale-down %s/instance (6 in parallel), load %d ok %d failed\n",
			r+1, all.scaleUp[len(all.scaleUp)-1].Round(time.Millisecond), all.step[r].Round(time.Millisecond),
			all.scaleDown[r].Round(time.Millisecond), rep.OK, rep.Failed)
	}
	first := "0→4"
	if driver == "swarm" {
		first = "1→4"
	}
	fmt.Printf("\n%s driver, median (range) over %d runs: scale-up %s per instance (%s and 4→8), rolling step %s (surge 1, unavailable 0), scale-down 8→2 %s per instance\n",
		driver, runs, stats(all.scaleUp), first, stats(all.step), stats(all.scaleDown))
	fmt.Printf("load through the registry at %.0f req/s: %d answered, %d failed\n", rate, all.ok, all.failed)
	if all.failed > 0 {
		return fmt.Errorf("%d failed requests", all.failed)
	}
	return nil
}

// driverUnderTest is what a run needs of a driver: scale, deploy (the
// Deployer takes an InstanceDriver or a Roller) and tear the run's env
// down.
type driverUnderTest interface {
	signalman.Orchestrator
	signalman.EnvDestroyer
}

func newProcessDriver(endpoints []string, w *registry.Watcher, dir string) (*process.Driver, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return process.New(process.Config{
		Services: map[string]process.Spec{"inventory": {
			Path: exe,
			Args: []string{"inventory", "--listen", "127.0.0.1:0", "--etcd", strings.Join(endpoints, ","),
				"--id", "{id}", "--env", "{env}", "--version", "{version}", "--db", filepath.Join(dir, "inventory.db")},
			Env:     []string{childEnv + "=1"},
			Version: "v0",
		}},
		Confirmer:   w,
		StopTimeout: ticketing.ShutdownTimeout + ticketing.DeregisterDelay + 2*time.Second,
	})
}

// newDockerDriver builds the demo image and returns a docker driver of
// inventory containers on the host network, sharing one SQLite database
// through a bind mount. closeFn removes the containers of every bench
// environment left (after a failure) and the image.
func newDockerDriver(ctx context.Context, endpoints []string, w *registry.Watcher, dir string) (_ *docker.Driver, closeFn func(), _ error) {
	cli, err := docker.NewClient()
	if err != nil {
		return nil, nil, err
	}
	tag := fmt.Sprintf("kplane-bench-rollout:%d", os.Getpid())
	if err := buildDemoImage(ctx, cli, dir, tag); err != nil {
		cli.Close()
		return nil, nil, err
	}
	removeImage := func() {
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cli.ImageRemove(rctx, tag, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			fmt.Fprintln(os.Stderr, "rollout: remove image:", err)
		}
		cli.Close()
	}
	d, err := docker.New(ctx, docker.Config{
		Client: cli,
		Services: map[string]docker.Spec{"inventory": {
			Image: tag,
			Cmd: []string{"inventory", "--listen", "{listen}", "--advertise={advertise}", "--etcd", strings.Join(endpoints, ","),
				"--id", "{id}", "--env", "{env}", "--version", "{version}", "--db", filepath.Join(dir, "inventory.db")},
			Binds:   []string{dir + ":" + dir},
			User:    strconv.Itoa(os.Getuid()) + ":" + strconv.Itoa(os.Getgid()),
			Version: "v0",
		}},
		Confirmer:   w,
		StopTimeout: ticketing.ShutdownTimeout + ticketing.DeregisterDelay + 2*time.Second,
	})
	if err != nil {
		removeImage()
		return nil, nil, err
	}
	return d, func() {
		// Normally DestroyEnv ran after each run; after a failure the
		// containers of the bench's environments go here.
		rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		f := filters.NewArgs(filters.Arg("label", docker.LabelManaged+"=true"), filters.Arg("label", docker.LabelService+"=inventory"))
		if cs, err := cli.ContainerList(rctx, container.ListOptions{All: true, Filters: f}); err == nil {
			for _, c := range cs {
				if strings.HasPrefix(c.Labels[docker.LabelEnv], envPrefix) {
					_ = cli.ContainerRemove(rctx, c.ID, container.RemoveOptions{Force: true})
				}
			}
		}
		d.Close()
		removeImage()
	}, nil
}

// buildDemoImage builds the demo's command statically and a FROM scratch
// image of it, tagged tag, offline.
func buildDemoImage(ctx context.Context, cli *client.Client, dir, tag string) error {
	bin := filepath.Join(dir, "ticketing")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/kplane/kplane/examples/ticketing/cmd/ticketing")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build (CGO_ENABLED=0) of the demo: %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := docker.BuildImage(ctx, cli, docker.ImageConfig{Tag: tag, Binary: b, Name: "ticketing",
		Labels: map[string]string{docker.LabelManaged: "true"}}); err != nil {
		return err
	}
	fmt.Printf("built %s in %s\n", tag, time.Since(start).Round(time.Millisecond))
	return nil
}

// stats is "median (min–max)".
func stats(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("%s (%s–%s)", r(s[len(s)/2]), r(s[0]), r(s[len(s)-1]))
}
