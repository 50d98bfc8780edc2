package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kplane/kplane/examples/ticketing"
)

// newTicketingCmd runs a service of the ticketing demo. `kplane dev`
// starts its demo instances with it, so the demo needs no second binary.
func newTicketingCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ticketing",
		Short: "Run a service of the ticketing demo (inventory or checkpoint)",
		Long: `Run one instance of a ticketing demo service. It listens (port 0 picks a
free port), registers in etcd with the address it actually bound, writes
JSON access logs to stdout and its own logs to stderr, and on SIGTERM or
Ctrl-C deregisters at once and drains requests before exiting 0.`,
		Args: cobra.NoArgs,
	}
	for _, svc := range []struct{ name, short string }{
		{ticketing.Inventory, "Sell tickets: events, stock, orders (SQLite, safe for several instances on one file)"},
		{ticketing.Checkpoint, "Check tickets in at the venue, validating them with inventory through the registry"},
	} {
		cfg := ticketing.Config{Service: svc.name}
		sub := &cobra.Command{
			Use:   svc.name,
			Short: svc.short,
			Args:  cobra.NoArgs,
			Example: "  kplane ticketing " + svc.name +
				" --listen 127.0.0.1:0 --etcd http://127.0.0.1:2379 --id " + svc.name + "-1 --version v1 --env dev",
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg.Logger = slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))
				cfg.AccessLog = cmd.OutOrStdout()
				// SIGTERM is how supervisors (kplane's process driver,
				// Docker, systemd) stop an instance: it must deregister
				// and exit 0, not die mid-request.
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				return ticketing.Run(ctx, cfg)
			},
		}
		ticketing.BindFlags(sub.Flags(), &cfg)
		cmd.AddCommand(sub)
	}
	return cmd
}
