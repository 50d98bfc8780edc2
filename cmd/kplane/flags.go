package main

import (
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// configFlags are the settings both `dev` and `server` take on the command
// line. Only flags the user set override the lower layers.
type configFlags struct {
	file, listen, dataDir, logLevel, logFormat string
	devToken, etcdListen, etcdPeerListen       string
	etcdEndpoints                              []string
	driver                                     string
	noDemo                                     bool
}

func (f *configFlags) bindCommon(fs *pflag.FlagSet) {
	fs.StringVarP(&f.file, "config", "c", "", "YAML configuration file")
	fs.StringVar(&f.listen, "listen", "", "address of the UI, API and ingest listener (default 127.0.0.1:8080)")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory for etcd data, the SQLite store and instance logs (default ./.kplane)")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (default info)")
	fs.StringVar(&f.logFormat, "log-format", "", "text or json (default text)")
}

// load builds the configuration: base, then the YAML file, then KPLANE_*
// environment, then the flags that were set, then validation.
func (f *configFlags) load(cmd *cobra.Command, base Config) (Config, error) {
	c := base
	if f.file != "" {
		if err := c.LoadFile(f.file); err != nil {
			return c, err
		}
	}
	if err := c.LoadEnv(os.LookupEnv); err != nil {
		return c, err
	}
	set := cmd.Flags().Changed
	if set("listen") {
		c.Listen = f.listen
	}
	if set("data-dir") {
		c.DataDir = f.dataDir
	}
	if set("log-level") {
		c.LogLevel = f.logLevel
	}
	if set("log-format") {
		c.LogFormat = f.logFormat
	}
	if set("dev-token") {
		c.Auth.DevToken = f.devToken
	}
	if set("etcd-listen") {
		c.Etcd.ClientListen = f.etcdListen
	}
	if set("etcd-peer-listen") {
		c.Etcd.PeerListen = f.etcdPeerListen
	}
	if set("etcd-endpoints") {
		c.Etcd.Endpoints = f.etcdEndpoints
	}
	if set("driver") {
		c.Driver = f.driver
	}
	if set("no-demo") && f.noDemo {
		c.Demo.Enabled = false
	}
	return c, c.Validate()
}
