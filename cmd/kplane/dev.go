package main

import (
	"github.com/spf13/cobra"
)

func newDevCmd() *cobra.Command {
	var f configFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run kplane with embedded defaults: etcd, SQLite, local processes and the ticketing demo",
		Long: `Run a complete kplane on this machine, for development and evaluation:
an embedded etcd and a SQLite store in the data dir, the ticketing demo
(inventory and checkpoint, two instances each) started as local processes
and registered in etcd, and the web console. Prints the console URL and an
admin token. Ctrl-C stops everything; the next start reuses the data dir.

--driver docker runs the demo as containers on the local Docker engine
instead, from a FROM scratch image of this kplane binary (built on first
start; the binary must be static, CGO_ENABLED=0), on the host network.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(cmd, DevConfig())
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, cmd.OutOrStdout(), cmd.ErrOrStderr(), true)
		},
	}
	f.bindCommon(cmd.Flags())
	cmd.Flags().StringVar(&f.devToken, "dev-token", "", "use this admin token instead of a random one (env KPLANE_DEV_TOKEN)")
	cmd.Flags().StringVar(&f.etcdListen, "etcd-listen", "", "embedded etcd client address (default 127.0.0.1:2379)")
	cmd.Flags().StringVar(&f.etcdPeerListen, "etcd-peer-listen", "", "embedded etcd peer address (default 127.0.0.1:2380)")
	cmd.Flags().BoolVar(&f.noDemo, "no-demo", false, "do not start the ticketing demo services")
	cmd.Flags().StringVar(&f.driver, "driver", "", "run the demo as process (local children, the default) or docker (containers; env KPLANE_DRIVER)")
	return cmd
}

func newServerCmd() *cobra.Command {
	var f configFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the kplane control plane from a configuration file",
		Long: `Run kplane against production dependencies: an etcd cluster (etcd.endpoints)
and the SQL store. Create the first admin with 'kplane user create'.

Your services are the services: section of the configuration file, run
by driver: process, docker, swarm or marathon; the autoscaler observes
and scales autoscaler.env (default prod). See docs/configuration.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(cmd, DefaultConfig())
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, cmd.OutOrStdout(), cmd.ErrOrStderr(), false)
		},
	}
	f.bindCommon(cmd.Flags())
	cmd.Flags().StringSliceVar(&f.etcdEndpoints, "etcd-endpoints", nil, "etcd cluster endpoints (env KPLANE_ETCD_ENDPOINTS, comma-separated)")
	cmd.Flags().StringVar(&f.driver, "driver", "", "run the configured services with process, docker, swarm or marathon (env KPLANE_DRIVER)")
	return cmd
}
