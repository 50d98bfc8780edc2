package process

import (
	"context"

	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/kplane/kplane/examples/ticketing"
	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
	"github.com/kplane/kplane/signalman/signalmantest"
)

// ticketingMain runs a real ticketing service (as `kplane ticketing`
// does) when the test binary is started with PROCESS_TEST_TICKETING=1:
// args are the service name, then its flags.
func ticketingMain(args []string) int {
	if len(args) == 0 {
		return 2
	}
	cfg := ticketing.Config{Service: args[0]}
	fs := pflag.NewFlagSet(args[0], pflag.ContinueOnError)
	ticketing.BindFlags(fs, &cfg)
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := ticketing.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestZeroFailedRequests is the measurement with the process
// driver: real inventory instances registered in embedded etcd, a steady
// load through the registry client, and meanwhile a rolling deploy of 4
// instances to a new version, a scale 4 → 8 and a scale 8 → 2. The load
// generator must report no failed request.
func TestZeroFailedRequests(t *testing.T) {
	srv := etcdtest.Start(t)
	w := registry.NewWatcher(registry.WatcherConfig{Client: srv.Client(t)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-watchDone })
	<-w.Ready()

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	d, err := New(Config{
		Services: map[string]Spec{"inventory": {
			Path: exe,
			Args: []string{"inventory", "--listen", "127.0.0.1:0", "--etcd", strings.Join(srv.Endpoints(), ","),
				"--id", "{id}", "--env", "{env}", "--version", "{version}", "--db", filepath.Join(dir, "inventory.db")},
			Env:     []string{"PROCESS_TEST_TICKETING=1"},
			Version: "v1",
		}},
		Confirmer:   w,
		StopTimeout: ticketing.ShutdownTimeout + ticketing.DeregisterDelay + 2*time.Second,
		LogDir:      filepath.Join(dir, "logs"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	target := signalman.Target{Service: "inventory", Env: "qa"}
	signalmantest.ZeroFailedRequests(t, ctx, d, w, target)
}
