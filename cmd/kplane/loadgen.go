package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kplane/kplane/examples/ticketing/loadgen"
	"github.com/kplane/kplane/registry"
)

// registryWait bounds how long loadgen waits for the first registry list.
const registryWait = 5 * time.Second

type loadgenFlags struct {
	target, service, env, tag, profile, mix string
	etcd                                    []string
	rate, peak                              float64
	duration, timeout                       time.Duration
	maxRequests, concurrency                int
	asJSON, quiet                           bool
}

func newLoadgenCmd() *cobra.Command {
	var f loadgenFlags
	cmd := &cobra.Command{
		Use:   "loadgen",
		Short: "Send steady, ramp or spike load to a ticketing service on this machine",
		Long: `Send an open-loop request rate shaped by a profile to a ticketing service,
bounded by --duration and --max-requests, then print what came back.

  steady  --rate requests/s throughout
  ramp    from --rate to --peak, linearly
  spike   --rate, then --peak from 20% to 60% of the run, then --rate again

The target is a URL (--target) or a registered service (--service with
--etcd), balanced round-robin over its instances. Only loopback addresses
are ever contacted. Progress goes to stderr every second; the summary to
stdout. Mixes: ` + strings.Join(loadgen.Mixes(), ", ") + ` (default: scan for checkpoint, sale otherwise).`,
		Example: `  kplane loadgen --target http://127.0.0.1:8081 --profile steady --rate 20 --duration 10s
  kplane loadgen --service inventory --etcd http://127.0.0.1:2379 --profile spike --rate 50 --peak 500 --duration 30s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLoadgen(cmd.Context(), f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.target, "target", "", "base URL to send to, e.g. http://127.0.0.1:8081")
	fs.StringVar(&f.service, "service", "", "registered service to send to (needs --etcd), e.g. inventory")
	fs.StringSliceVar(&f.etcd, "etcd", nil, "etcd endpoints of the registry, comma-separated")
	fs.StringVar(&f.env, "env", "dev", `with --service: only instances registered in this environment ("" for all)`)
	fs.StringVar(&f.tag, "tag", "", "with --service: only instances with this tag, else untagged ones")
	fs.StringVar(&f.profile, "profile", string(loadgen.Steady), "steady, ramp or spike")
	fs.StringVar(&f.mix, "mix", "", "request mix: "+strings.Join(loadgen.Mixes(), ", "))
	fs.Float64Var(&f.rate, "rate", loadgen.DefaultRate, "base rate, requests per second")
	fs.Float64Var(&f.peak, "peak", 0, "peak rate of ramp and spike (default 10 x --rate)")
	fs.DurationVar(&f.duration, "duration", loadgen.DefaultDuration, "how long to send")
	fs.IntVar(&f.maxRequests, "max-requests", loadgen.DefaultMaxRequests, "stop after this many requests")
	fs.IntVar(&f.concurrency, "concurrency", loadgen.DefaultConcurrency, "requests in flight at most")
	fs.DurationVar(&f.timeout, "timeout", loadgen.DefaultTimeout, "timeout of one request")
	fs.BoolVar(&f.asJSON, "json", false, "print the summary as JSON")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "no progress lines")
	cmd.MarkFlagsMutuallyExclusive("target", "service")
	cmd.MarkFlagsOneRequired("target", "service")
	return cmd
}

func runLoadgen(ctx context.Context, f loadgenFlags, stdout, stderr io.Writer) error {
	profile, err := loadgen.ParseProfile(f.profile)
	if err != nil {
		return err
	}
	mixName := f.mix
	if mixName == "" {
		mixName = loadgen.DefaultMix
		if f.service == "checkpoint" {
			mixName = "scan"
		}
	}
	mix, err := loadgen.NamedMix(mixName)
	if err != nil {
		return err
	}
	cfg := loadgen.Config{
		Target:      f.target,
		Profile:     profile,
		Rate:        f.rate,
		Peak:        f.peak,
		Duration:    f.duration,
		MaxRequests: f.maxRequests,
		Concurrency: f.concurrency,
		Mix:         mix,
		Timeout:     f.timeout,
	}
	if f.service != "" {
		client, stop, err := registryClient(ctx, f)
		if err != nil {
			return err
		}
		defer stop()
		cfg.Target, cfg.Client = "http://"+f.service, client
	}
	if !f.quiet {
		cfg.Progress = func(p loadgen.Progress) {
			fmt.Fprintf(stderr, "%6s  sent %-7d ok %-7d rejected %-6d failed %-6d rate %6.1f/s (target %.0f/s)\n",
				p.Elapsed.Round(time.Second), p.Sent, p.OK, p.Rejected, p.Failed, p.Rate, p.TargetRate)
		}
	}

	rep, err := loadgen.Run(ctx, cfg)
	interrupted := err != nil && ctx.Err() != nil
	if err != nil && !interrupted {
		return err
	}
	if f.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		if interrupted {
			fmt.Fprintln(stdout, "interrupted: partial results")
		}
		if err := rep.WriteText(stdout); err != nil {
			return err
		}
	}
	return nil
}

// registryClient returns a client balancing over the instances of
// f.service, after checking that they exist and are all on this machine.
func registryClient(ctx context.Context, f loadgenFlags) (*http.Client, func(), error) {
	if len(f.etcd) == 0 {
		return nil, nil, errors.New("--service needs --etcd")
	}
	etcd, err := registry.Connect(registry.ConnectConfig{Endpoints: f.etcd})
	if err != nil {
		return nil, nil, err
	}
	watchCtx, cancel := context.WithCancel(ctx)
	watcher := registry.NewWatcher(registry.WatcherConfig{Client: etcd})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = watcher.Run(watchCtx) // returns nil when watchCtx ends; failures are retried inside
	}()
	stop := func() {
		cancel()
		<-done
		etcd.Close()
	}
	waitCtx, waitCancel := context.WithTimeout(ctx, registryWait)
	defer waitCancel()
	select {
	case <-watcher.Ready():
	case <-waitCtx.Done():
		stop()
		return nil, nil, fmt.Errorf("registry at %s did not answer within %v", strings.Join(f.etcd, ","), registryWait)
	}
	sel := registry.Selector{Env: f.env, Tag: f.tag, Fallback: registry.FallbackUntagged}
	instances, err := watcher.Select(f.service, sel)
	if err != nil {
		stop()
		return nil, nil, err
	}
	for _, in := range instances {
		host, _, err := net.SplitHostPort(in.Addr)
		if err == nil {
			err = loadgen.CheckLoopback(ctx, nil, host)
		}
		if err != nil {
			stop()
			return nil, nil, fmt.Errorf("instance %s of %s at %s: %w", in.ID, f.service, in.Addr, err)
		}
	}
	client := &http.Client{
		// The loopback transport underneath also refuses instances that
		// register later with an address elsewhere.
		Transport: registry.NewTransport(registry.TransportConfig{Resolver: watcher, Selector: sel, Base: loadgen.NewTransport()}),
		Timeout:   f.timeout,
	}
	return client, stop, nil
}
