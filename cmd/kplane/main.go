// Command kplane is the platform control plane: one binary for the server,
// the dev mode, and the CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// The first SIGINT/SIGTERM starts a clean shutdown; a second one, once
	// stop has restored the default handling, ends kplane at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kplane:", err)
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(int(ee))
		}
		os.Exit(1)
	}
}

// exitError carries a specific exit code out of a command.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "kplane",
		Short: "Platform control plane: build promotion, autoscaling, service discovery and tracing",
		Long: `kplane runs and watches a fleet of services: build promotion (HAWAII),
autoscaling on traffic spikes, etcd service discovery, and distributed tracing.

Start here:  kplane dev       (embedded etcd, SQLite and the ticketing demo)`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.AddCommand(
		newDevCmd(),
		newServerCmd(),
		newUserCmd(),
		newTokenCmd(),
		newServicesCmd(),
		newTraceCmd(),
		newTicketingCmd(),
		newLoadgenCmd(),
		newHQCmd(),
		newScaleCmd(),
		newDecisionsCmd(),
		newDeployCmd(),
		newEnvCmd(),
		newPromoteCmd(),
		newBuildCmd(),
		newSmokeCmd(),
	)
	return root
}
