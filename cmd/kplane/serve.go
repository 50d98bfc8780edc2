package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/internal/etcdserver"
	"github.com/kplane/kplane/ktrace"
	ktracemysql "github.com/kplane/kplane/ktrace/mysql"
	ktracesqlite "github.com/kplane/kplane/ktrace/sqlite"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
	"github.com/kplane/kplane/signalman/process"
	"github.com/kplane/kplane/web"
)

// demoVersion is the version the demo instances report.
const demoVersion = "1.0.0"

// serve runs kplane until ctx is cancelled, then stops every component in
// order: the listener, the local instances (which deregister while etcd is
// still up), the registry watcher, etcd, the store.
func serve(ctx context.Context, cfg Config, stdout, stderr io.Writer, dev bool) (err error) {
	log := newLogger(cfg, stderr)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	var cleanup []func()
	defer func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}()

	// Bind first: a busy port is the most common start-up failure and
	// should be reported before anything else starts.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, unwrapSyscall(err))
	}
	cleanup = append(cleanup, func() { ln.Close() })
	scheme := "http"
	if cfg.TLS.Enabled() {
		tlsCfg, err := cfg.TLS.serverConfig()
		if err != nil {
			return err
		}
		ln, scheme = tls.NewListener(ln, tlsCfg), "https"
		if err := checkDemoKTrace(cfg); err != nil && cfg.Demo.Enabled {
			log.Warn("demo spans", "err", err)
		}
	}

	endpoints := cfg.Etcd.Endpoints
	if cfg.Etcd.Embedded {
		srv, err := etcdserver.Start(ctx, etcdserver.Config{
			DataDir:   filepath.Join(cfg.DataDir, "etcd"),
			ClientURL: "http://" + cfg.Etcd.ClientListen,
			PeerURL:   "http://" + cfg.Etcd.PeerListen,
			Logger:    log, // etcdserver adds component=etcd
		})
		if err != nil {
			return err
		}
		cleanup = append(cleanup, func() { srv.Close() })
		endpoints = srv.Endpoints()
	}
	etcdTLS, err := cfg.Etcd.clientTLS()
	if err != nil {
		return err
	}
	cli, err := registry.Connect(registry.ConnectConfig{Endpoints: endpoints, TLS: etcdTLS})
	if err != nil {
		return err
	}
	cleanup = append(cleanup, func() { cli.Close() })
	if err := checkEtcd(ctx, cli, endpoints); err != nil {
		return err
	}

	db, err := openStore(ctx, cfg, log.With("component", "store"))
	if err != nil {
		return err
	}
	cleanup = append(cleanup, func() { db.Close() })
	// This process's name owns the deploys and promotions it runs; its
	// key in etcd tells the other replicas that it is alive.
	name := replicaName(cfg)
	reps, err := newReplicas(ctx, cli, name, db, log)
	if err != nil {
		return err
	}
	cleanup = append(cleanup, reps.close)
	authSvc, err := auth.New(db, auth.Config{Logger: log.With("component", "auth")})
	if err != nil {
		return err
	}
	var adminToken string
	if dev {
		adminToken, err = authSvc.EnsureAdmin(ctx, "admin", cfg.Auth.DevToken)
		if err != nil {
			return fmt.Errorf("dev admin: %w", err)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	spanStore, err := openSpanStore(ctx, cfg, log.With("component", "ktrace"))
	if err != nil {
		return err
	}
	cleanup = append(cleanup, func() { spanStore.Close() })
	ingester, err := ktrace.NewIngester(ktrace.IngesterConfig{
		Store:      spanStore,
		Logger:     log.With("component", "ktrace"),
		Registerer: reg,
	})
	if err != nil {
		return err
	}

	watcher := registry.NewWatcher(registry.WatcherConfig{Client: cli, Logger: log.With("component", "registry")})

	// One orchestrator for the demo and your services (cfg.Services).
	driver, err := newOrchestrator(ctx, cfg, orchestratorDeps{endpoints: endpoints, confirm: watcher,
		progress: stderr, log: log.With("component", "signalman")})
	if err != nil {
		return err
	}
	if driver != nil {
		log.Info("orchestrator", "driver", driver.driver, "services", len(cfg.Services), "demo", driver.demo,
			"autoscaler_env", cfg.autoscalerEnv())
	}
	// Scales of one target, by the autoscaler, a person or the start-up
	// top-up, take turns across replicas.
	locks := newScaleLocks(ctx, cli)
	cleanup = append(cleanup, locks.close)
	var as *autoscaler
	if driver != nil && cfg.Autoscaler.Enabled {
		as, err = newAutoscaler(ctx, cfg, cli, db, watcher, lockedOrchestrator{driver, locks}, reg, log)
		if err != nil {
			return fmt.Errorf("autoscaler: %w", err)
		}
	}
	ready := func(context.Context) error {
		select {
		case <-watcher.Ready():
		default:
			return errors.New("registry not yet listed")
		}
		return nil
	}

	webCfg := web.Config{
		Logger:        log.With("component", "web"),
		Auth:          authSvc,
		Services:      watcher,
		Ready:         ready,
		Registerer:    reg,
		Gatherer:      reg,
		Version:       version,
		SecureCookies: cfg.Auth.SecureCookies,
		Traces:        spanStore,
		Ingester:      ingester,
	}
	as.configureWeb(&webCfg)
	if as == nil && driver != nil {
		// Scaling by hand needs only an orchestrator.
		webCfg.Scaler, webCfg.Decisions = newManualScaler(cfg, db, lockedOrchestrator{driver, locks}, log)
	}
	if webCfg.Builds, err = buildAPI(cfg, db, watcher); err != nil {
		return err
	}
	var deployer *signalman.Deployer
	if driver != nil && driver.instances != nil {
		deployer, err = signalman.NewDeployer(signalman.DeployerConfig{
			Driver: driver.instances,
			Gate:   signalman.HTTPGate{Locator: watcher},
			Store:  signalman.NewSQLDeployStore(db),
			Owner:  name,
			Logger: log.With("component", "deploy"),
		})
		if err != nil {
			return err
		}
	}
	if driver != nil {
		webCfg.Deploys = driver.deploys(deployer)
	}
	var pipe *pipeline
	if deployer != nil {
		if pipe, err = newPipeline(ctx, cfg, dev, cli, webCfg.Builds.Store, deployer, endpoints, name, log); err != nil {
			return fmt.Errorf("pipeline: %w", err)
		}
		pipe.configureWeb(&webCfg)
	}
	webSrv, err := web.New(webCfg)
	if err != nil {
		return err
	}

	// Long-lived requests (server-sent events) end when shutdown begins.
	reqCtx, cancelReqs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReqs()
	// Timeouts as web sets them; event streams lift their own.
	httpSrv := webSrv.HTTPServer()
	httpSrv.BaseContext = func(net.Listener) context.Context { return reqCtx }
	httpSrv.ErrorLog = slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelWarn)

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	errc := make(chan error, 3)
	var bg sync.WaitGroup
	goRun := func(name string, fn func(context.Context) error) {
		bg.Add(1)
		go func() {
			defer bg.Done()
			if err := fn(runCtx); err != nil && runCtx.Err() == nil {
				select {
				case errc <- fmt.Errorf("%s: %w", name, err):
				default: // the first failure already stops kplane
				}
			}
		}()
	}
	goRun("registry watcher", watcher.Run)
	goRun("replicas", reps.run)
	// The ingester stops with runCtx, after the HTTP server has finished
	// its requests (which wait for their commits), and then writes what
	// it had accepted.
	goRun("span ingest", ingester.Run)
	goRun("span retention", ktrace.NewRetainer(ktrace.RetainerConfig{
		Store:  spanStore,
		TTL:    cfg.Traces.retention(),
		Logger: log.With("component", "ktrace"),
	}).Run)
	goRun("http", func(context.Context) error {
		if err := httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	if driver != nil {
		goRun("signalman", driver.Run)
	}
	if deployer != nil {
		goRun("deploys", deployer.Run)
	}
	if as != nil {
		goRun("autoscaler", as.run)
	}
	if pipe != nil {
		goRun("pipeline", pipe.run)
	}

	select {
	case <-watcher.Ready():
	case <-ctx.Done():
	case err := <-errc:
		return err
	}

	url := scheme + "://" + ln.Addr().String()
	if driver != nil && driver.demo && ctx.Err() == nil {
		start := time.Now()
		startDemo(ctx, driver, cfg, log)
		log.Info("demo started", "took", time.Since(start).Round(time.Millisecond))
	}
	if driver != nil && ctx.Err() == nil {
		startServices(ctx, driver, locks, cfg, cfg.autoscalerEnv(), log)
	}
	if ctx.Err() == nil {
		printBanner(stdout, cfg, url, endpoints, adminToken, dev, driver)
		log.Info("kplane is serving", "url", url)
	}

	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	log.Info("shutting down")
	cancelReqs()
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if serr := httpSrv.Shutdown(shutCtx); serr != nil {
		log.Warn("http shutdown", "err", serr)
	}
	if driver != nil {
		if cerr := driver.Close(); cerr != nil {
			log.Warn("stopping instances", "err", cerr)
		}
	}
	cancelRun()
	bg.Wait()
	log.Info("stopped")
	return err
}

// demoProcessSpecs runs the ticketing demo as children of this very
// binary (`kplane ticketing <service>`), so `go run ./cmd/kplane dev`
// needs no separate build.
func demoProcessSpecs(cfg Config, endpoints []string) (map[string]process.Spec, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("demo: locate kplane binary: %w", err)
	}
	demoDir := filepath.Join(cfg.DataDir, "ticketing")
	if err := os.MkdirAll(demoDir, 0o700); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	etcdArg := strings.Join(endpoints, ",")
	common := []string{"--listen", "127.0.0.1:0", "--etcd", etcdArg, "--id", "{id}", "--env", "{env}", "--version", "{version}"}
	ktraceArgs, err := demoKTraceArgs(cfg, demoDir)
	if err != nil {
		return nil, err
	}
	common = append(common, ktraceArgs...)
	return map[string]process.Spec{
		"inventory": {
			Path:    exe,
			Args:    append(append([]string{"ticketing", "inventory"}, common...), "--db", filepath.Join(demoDir, "inventory.db")),
			Version: demoVersion,
		},
		"checkpoint": {
			Path:    exe,
			Args:    append([]string{"ticketing", "checkpoint"}, common...),
			Version: demoVersion,
		},
	}, nil
}

// startDemo scales the demo services in parallel and waits for them. A
// failure is logged, not fatal: the console is still useful.
func startDemo(ctx context.Context, d signalman.Orchestrator, cfg Config, log *slog.Logger) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for svc, n := range map[string]int{"inventory": cfg.Demo.Inventory, "checkpoint": cfg.Demo.Checkpoint} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := signalman.Target{Service: svc, Env: demoEnv}
			if _, err := d.Scale(ctx, t, n); err != nil && ctx.Err() == nil {
				log.Error("demo service did not start", "service", svc, "err", err)
			}
		}()
	}
}

func checkEtcd(ctx context.Context, cli *clientv3.Client, endpoints []string) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Get(cctx, "/kplane/ping"); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("etcd at %s is not answering: %w", strings.Join(endpoints, ","), err)
	}
	return nil
}

func printBanner(w io.Writer, cfg Config, url string, endpoints []string, token string, dev bool, o *orchestrator) {
	mode := "server"
	if dev {
		mode = "dev"
	}
	fmt.Fprintf(w, "\nkplane %s is running (version %s).\n\n", mode, version)
	fmt.Fprintf(w, "  Console:  %s\n", url)
	if token != "" {
		fmt.Fprintf(w, "  Token:    %s   (user admin, role admin; paste it on the sign-in page)\n", token)
	}
	etcdNote := ""
	if cfg.Etcd.Embedded {
		etcdNote = "  (embedded, data in " + filepath.Join(cfg.DataDir, "etcd") + ")"
	}
	fmt.Fprintf(w, "  etcd:     %s%s\n", strings.Join(endpoints, ","), etcdNote)
	fmt.Fprintf(w, "  Store:    %s\n", cfg.describeStore())
	if o != nil && o.demo {
		fmt.Fprintf(w, "  Demo:     inventory x%d, checkpoint x%d (%s)\n",
			cfg.Demo.Inventory, cfg.Demo.Checkpoint, demoLogs(cfg, o.driver))
	}
	if o != nil && len(cfg.Services) > 0 {
		names := slices.Sorted(maps.Keys(cfg.Services))
		fmt.Fprintf(w, "  Services: %s (driver %s, env %s)\n", strings.Join(names, ", "), o.driver, cfg.autoscalerEnv())
	}
	if token != "" {
		fmt.Fprintf(w, "\n  Try:      export KPLANE_ADDR=%s KPLANE_TOKEN=%s\n", url, token)
		fmt.Fprintf(w, "            kplane services\n")
	}
	fmt.Fprintf(w, "\n  Ctrl-C stops everything.\n\n")
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// unwrapSyscall turns "listen tcp 127.0.0.1:8080: bind: address already in
// use" into "address already in use".
func unwrapSyscall(err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	return err
}

// openSpanStore opens the configured span store. Spans have their own
// database: they are most of the bytes and have their own write rate.
func openSpanStore(ctx context.Context, cfg Config, log *slog.Logger) (ktrace.Store, error) {
	switch cfg.Traces.Store {
	case "mysql":
		dsn, err := mysqlDSN(cfg.Traces)
		if err != nil {
			return nil, err
		}
		st, err := ktracemysql.Open(ctx, ktracemysql.Config{
			DSN:             dsn,
			Logger:          log,
			RememberExpired: cfg.Traces.retention(),
		})
		if err != nil {
			// The DSN may hold a password: name the store, not the DSN.
			return nil, fmt.Errorf("span store (mysql): %w", err)
		}
		return st, nil
	default:
		st, err := ktracesqlite.Open(ctx, ktracesqlite.Config{
			Path:            filepath.Join(cfg.DataDir, "traces.db"),
			Logger:          log,
			RememberExpired: cfg.Traces.retention(),
		})
		if err != nil {
			return nil, fmt.Errorf("span store: %w", err)
		}
		return st, nil
	}
}
