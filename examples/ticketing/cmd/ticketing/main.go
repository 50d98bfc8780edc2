// Command ticketing runs one service of kplane's ticketing demo:
//
//	ticketing inventory  --listen 127.0.0.1:0 --etcd http://127.0.0.1:2379 --db inventory.db
//	ticketing checkpoint --listen 127.0.0.1:0 --etcd http://127.0.0.1:2379
//
// It is `kplane ticketing` as a binary of its own, for copying: the flags
// and everything behind them are package ticketing. Access logs go to
// stdout, the service's own logs to stderr. SIGTERM or Ctrl-C deregisters
// the instance and drains requests before exiting 0.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/kplane/kplane/examples/ticketing"
)

func main() {
	var cfg ticketing.Config
	fs := pflag.NewFlagSet("ticketing", pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: ticketing inventory|checkpoint [flags]\n\n%s", fs.FlagUsages())
	}
	ticketing.BindFlags(fs, &cfg)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		os.Exit(2)
	}
	cfg.Service = fs.Arg(0)
	cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg.AccessLog = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, a second one ends the process at once.
		<-ctx.Done()
		stop()
	}()
	if err := ticketing.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "ticketing:", err)
		os.Exit(1)
	}
}
