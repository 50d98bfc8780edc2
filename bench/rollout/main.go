// Command rollout measures signalman's rolling deploys and scaling with
// the process driver: real ticketing inventory instances (this binary,
// re-executed) registered in an embedded etcd on loopback, under a steady
// load through the registry client. It reports the time per instance of a
// scale-up (confirmed: registered), the time per rolling step (start,
// registered, health gate, drain and stop of one old instance) and the
// failed requests of the load. Results go in docs/benchmarks.md.
//
//	go run ./bench/rollout [-runs 3] [-rate 100]
//
// It is bounded (about 15 s per run), writes only to a temp dir, and
// touches nothing but loopback.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/kplane/kplane/examples/ticketing"
	"github.com/kplane/kplane/examples/ticketing/loadgen"
	"github.com/kplane/kplane/internal/etcdserver"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
	"github.com/kplane/kplane/signalman/process"
)

// childEnv makes this binary a ticketing instance.
const childEnv = "KPLANE_BENCH_ROLLOUT_CHILD"

func main() {
	if os.Getenv(childEnv) == "1" {
		os.Exit(child(os.Args[1:]))
	}
	runs := flag.Int("runs", 3, "repetitions")
	rate := flag.Float64("rate", 100, "load in requests per second through the registry")
	flag.Parse()
	if err := run(*runs, *rate); err != nil {
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

func run(runs int, rate float64) error {
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

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	d, err := process.New(process.Config{
		Services: map[string]process.Spec{"inventory": {
			Path: exe,
			Args: []string{"inventory", "--listen", "127.0.0.1:0", "--etcd", strings.Join(srv.Endpoints(), ","),
				"--id", "{id}", "--env", "{env}", "--version", "{version}", "--db", filepath.Join(dir, "inventory.db")},
			Env:     []string{childEnv + "=1"},
			Version: "v0",
		}},
		Confirmer:   w,
		StopTimeout: ticketing.ShutdownTimeout + ticketing.DeregisterDelay + 2*time.Second,
	})
	if err != nil {
		return err
	}
	defer d.Close()
	dep, err := signalman.NewDeployer(signalman.DeployerConfig{Driver: d, Gate: signalman.HTTPGate{Locator: w}})
	if err != nil {
		return err
	}
	client := registry.NewClient(registry.TransportConfig{Resolver: w})

	var all sample
	for r := range runs {
		t := signalman.Target{Service: "inventory", Env: fmt.Sprintf("bench-%d", r)}
		start := time.Now()
		if _, err := d.Scale(ctx, t, 4); err != nil {
			return err
		}
		all.scaleUp = append(all.scaleUp, time.Since(start)/4)
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
	fmt.Printf("\nmedian over %d runs: scale-up %s per instance (0→4 and 4→8), rolling step %s (surge 1, unavailable 0), scale-down 8→2 %s per instance\n",
		runs, median(all.scaleUp), median(all.step), median(all.scaleDown))
	fmt.Printf("load through the registry at %.0f req/s: %d answered, %d failed\n", rate, all.ok, all.failed)
	if all.failed > 0 {
		return fmt.Errorf("%d failed requests", all.failed)
	}
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}
