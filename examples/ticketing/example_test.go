package ticketing_test

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kplane/kplane/examples/ticketing"
)

// A service instance joins kplane by running until its context ends:
// registered while it serves, gone from the registry the moment it stops.
func ExampleRun() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := ticketing.Run(ctx, ticketing.Config{
		Service:   ticketing.Inventory,
		Listen:    "127.0.0.1:0",
		Etcd:      []string{"http://127.0.0.1:2379"},
		ID:        "inventory-1",
		Version:   "v1",
		DB:        "inventory.db",
		Logger:    slog.New(slog.NewJSONHandler(os.Stderr, nil)),
		AccessLog: os.Stdout,
	})
	if err != nil {
		slog.Error("inventory stopped", "err", err)
		os.Exit(1)
	}
}
