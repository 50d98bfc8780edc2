package ticketing

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/examples/ticketing/api"
	"github.com/kplane/kplane/examples/ticketing/checkpoint"
	"github.com/kplane/kplane/examples/ticketing/instrument"
	"github.com/kplane/kplane/examples/ticketing/inventory"
	"github.com/kplane/kplane/ktrace/sdk"
	"github.com/kplane/kplane/registry"
)

// ShutdownTimeout bounds how long Run waits for in-flight requests once
// its context ends; process supervisors should wait a little longer before
// killing.
const ShutdownTimeout = 10 * time.Second

// DeregisterDelay is how long a stopping instance keeps serving new
// requests after deregistering, so that callers whose registry watch has
// not yet seen the deregistration still reach it. Watches propagate in
// milliseconds; this leaves a wide margin.
const DeregisterDelay = 500 * time.Millisecond

// inventoryTimeout bounds one checkpoint call to inventory, retries
// included, so that a gate never hangs on a stuck instance.
const inventoryTimeout = 5 * time.Second

// spanFlushTimeout bounds how long a stopping instance tries to send its
// last spans: a collector that is down must not hold up the exit.
const spanFlushTimeout = 3 * time.Second

// Run runs one service instance until ctx ends, then deregisters it (at
// once, by revoking its lease), keeps serving for DeregisterDelay while
// callers learn of it, drains in-flight requests and returns nil.
// It returns an error if the instance cannot start or stops serving.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	started := time.Now().UTC()
	if cfg.ID == "" {
		cfg.ID = cfg.Service + "-" + randomSuffix()
	}
	log := cfg.Logger.With("service", cfg.Service, "instance", cfg.ID)

	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			// "listen on 127.0.0.1:80: bind: permission denied", not the
			// address twice.
			var op *net.OpError
			if errors.As(err, &op) {
				err = op.Err
			}
			return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
		}
	}
	defer ln.Close()
	addr, err := advertiseAddr(cfg.Advertise, ln.Addr(), len(cfg.Etcd) > 0)
	if err != nil {
		return err
	}

	var etcd *clientv3.Client
	if len(cfg.Etcd) > 0 {
		etcd, err = registry.Connect(registry.ConnectConfig{Endpoints: cfg.Etcd})
		if err != nil {
			return err
		}
		defer etcd.Close()
	}

	metrics := prometheus.NewRegistry()
	metrics.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	spanClient, err := ktraceClient(cfg.KTraceCA)
	if err != nil {
		return err
	}
	tracer, err := sdk.New(sdk.Config{
		ServiceName: cfg.Service,
		Version:     cfg.Version,
		Env:         cfg.Env,
		Endpoint:    cfg.KTrace,
		HTTPClient:  spanClient,
		Sampler:     cfg.KTraceSampler,
		Registerer:  metrics,
		Logger:      log.With("component", "ktrace"),
	})
	if err != nil {
		return err
	}
	// Runs after the server has drained (defers run last-in first-out), so
	// the spans of the last requests are sent too.
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), spanFlushTimeout)
		defer cancel()
		if err := tracer.Shutdown(flushCtx); err != nil {
			log.Warn("spans not all sent at shutdown", "err", err)
		}
	}()
	mw, err := instrument.New(instrument.Config{Service: cfg.Service, Registerer: metrics, AccessLog: cfg.AccessLog, Logger: log, Tracer: tracer})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{Registry: metrics}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, map[string]any{
			"status": "ok", "service": cfg.Service, "id": cfg.ID, "version": cfg.Version, "started": started,
		})
	})

	// The watcher outlives ctx: in-flight checkpoint requests still resolve
	// inventory while the server drains. It stops when Run returns.
	var background sync.WaitGroup
	defer background.Wait()
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatch()
	switch cfg.Service {
	case Inventory:
		store, err := inventory.Open(ctx, inventory.StoreConfig{Path: cfg.DB, Seed: true})
		if err != nil {
			return err
		}
		defer store.Close()
		inventory.NewHandler(inventory.HandlerConfig{Store: store, Logger: log}).Register(mux)
	case Checkpoint:
		h, client, err := newCheckpoint(ctx, watchCtx, &background, cfg, etcd, tracer, log)
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped while waiting for the registry: nothing failed
			}
			return err
		}
		defer client.CloseIdleConnections()
		h.Register(mux)
	}

	srv := &http.Server{
		Handler:           mw.Wrap(api.JSONErrors(mux)),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("serving", "addr", addr, "version", cfg.Version, "env", cfg.Env)

	// Registration starts once the server accepts connections, so nobody
	// finds the instance before it can answer.
	regCtx, stopReg := context.WithCancel(ctx)
	defer stopReg()
	regDone := make(chan error, 1)
	if etcd != nil {
		reg, err := registry.NewRegistrar(registry.RegistrarConfig{
			Client: etcd,
			Instance: registry.Instance{
				ID: cfg.ID, Name: cfg.Service, Addr: addr, Version: cfg.Version,
				Tags: cfg.Tags, Env: cfg.Env, Started: started,
			},
			Logger: log,
		})
		if err != nil {
			srv.Close()
			return err
		}
		go func() { regDone <- reg.Run(regCtx) }()
	} else {
		close(regDone)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("serve: %w", err)
	}
	// Deregister first: callers stop picking this instance while it still
	// answers the requests they already sent.
	stopReg()
	if err := <-regDone; err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("registration: %w", err))
	}
	if etcd != nil && ctx.Err() != nil {
		// Callers pick instances from their own copy of the registry: keep
		// accepting new requests until the deregistration reached them.
		time.Sleep(DeregisterDelay)
	}
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(drainCtx); err != nil {
		log.Warn("requests still running at shutdown timeout; closing their connections", "timeout", ShutdownTimeout)
		srv.Close()
	}
	log.Info("stopped")
	return runErr
}

// newCheckpoint builds the checkpoint API with its way to reach inventory:
// the given URL, or the registry. The client is returned for closing its
// connections at the end.
func newCheckpoint(ctx, watchCtx context.Context, background *sync.WaitGroup, cfg Config, etcd *clientv3.Client, tracer *sdk.Tracer, log *slog.Logger) (*checkpoint.Handler, *http.Client, error) {
	if cfg.InventoryURL != "" || etcd == nil {
		client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: inventoryTimeout}
		h := checkpoint.NewHandler(checkpoint.Config{Inventory: client, InventoryURL: cfg.InventoryURL, Tracer: tracer, Logger: log})
		return h, client, nil
	}
	watcher := registry.NewWatcher(registry.WatcherConfig{Client: etcd, Logger: log})
	background.Go(func() { _ = watcher.Run(watchCtx) }) // nil when watchCtx ends; failures are retried inside
	// Serving before the first list would answer every gate with "no
	// inventory" for a moment.
	select {
	case <-watcher.Ready():
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("waiting for the registry: %w", context.Cause(ctx))
	}
	client := &http.Client{
		Transport: registry.NewTransport(registry.TransportConfig{
			Resolver: watcher,
			// Stay in this instance's environment: inventory also runs in
			// alpha, qa and prod beside it.
			Selector: registry.Selector{Env: cfg.Env, Tag: cfg.InventoryTag, Fallback: registry.FallbackUntagged},
		}),
		Timeout: inventoryTimeout,
	}
	// checkpoint wraps the registry transport in sdk.Transport: one client
	// span per call, whichever instance the registry picks.
	h := checkpoint.NewHandler(checkpoint.Config{
		Inventory:    client,
		InventoryURL: checkpoint.DefaultInventoryURL,
		Tracer:       tracer,
		Logger:       log,
		Unavailable:  func(err error) bool { return errors.Is(err, registry.ErrNoInstances) },
	})
	return h, client, nil
}

// advertiseAddr is the address to register: the one asked for, else the
// bound one, which cannot be an all-interfaces address.
func advertiseAddr(advertise string, bound net.Addr, registering bool) (string, error) {
	if advertise != "" {
		return advertise, nil
	}
	if tcp, ok := bound.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() && registering {
		return "", fmt.Errorf("%w: listening on all interfaces (%s): set --advertise to the host:port others should dial", ErrInvalidConfig, bound)
	}
	return bound.String(), nil
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// ktraceClient is the span exporter's HTTP client: nil (the SDK's
// default) without a CA file, else one trusting only the certificates in
// caFile.
func ktraceClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--ktrace-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ktrace-ca %s holds no PEM certificate", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: sdk.DefaultExportTimeout}, nil
}
