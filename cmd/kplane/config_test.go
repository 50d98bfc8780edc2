package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestConfigLayers(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kplane.yaml")
	if err := os.WriteFile(file, []byte("listen: 127.0.0.1:9000\nlog_level: debug\netcd:\n  endpoints: [http://10.0.0.1:2379]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KPLANE_LOG_LEVEL", "warn")
	t.Setenv("KPLANE_ETCD_ENDPOINTS", "http://127.0.0.1:1,http://127.0.0.1:2")

	var f configFlags
	cmd := &cobra.Command{Use: "x"}
	f.bindCommon(cmd.Flags())
	if err := cmd.Flags().Parse([]string{"--config", file, "--data-dir", dir}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.load(cmd, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9000" {
		t.Errorf("listen = %q, want the file's 127.0.0.1:9000", cfg.Listen)
	}
	if cfg.LogLevel != "warn" {
		t.Errorf("log level = %q, want the environment's warn over the file's debug", cfg.LogLevel)
	}
	if got := strings.Join(cfg.Etcd.Endpoints, ","); got != "http://127.0.0.1:1,http://127.0.0.1:2" {
		t.Errorf("etcd endpoints = %q, want the environment's", got)
	}
	if cfg.DataDir != dir {
		t.Errorf("data dir = %q, want the flag's %q", cfg.DataDir, dir)
	}
	if cfg.LogFormat != "text" {
		t.Errorf("log format = %q, want the default text", cfg.LogFormat)
	}
}

func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct{ body, want string }{
		"unknown key": {"lisen: 127.0.0.1:1\n", "field lisen not found"},
		"bad type":    {"demo:\n  inventory: many\n", "cannot unmarshal"},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
			if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			c := DefaultConfig()
			err := c.LoadFile(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadFile error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	if err := c.LoadFile(empty); err != nil {
		t.Fatalf("an empty file must mean no settings, got %v", err)
	}
}

func TestConfigEnvErrors(t *testing.T) {
	env := map[string]string{"KPLANE_DEMO": "maybe"}
	c := DevConfig()
	err := c.LoadEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err == nil || !strings.Contains(err.Error(), "KPLANE_DEMO") {
		t.Fatalf("error = %v, want it to name KPLANE_DEMO", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string // "" means valid
	}{
		"dev defaults":       {func(*Config) {}, ""},
		"listen not an addr": {func(c *Config) { c.Listen = "8080" }, "want host:port"},
		"bad log level":      {func(c *Config) { c.LogLevel = "loud" }, "log level"},
		"bad log format":     {func(c *Config) { c.LogFormat = "xml" }, "log format"},
		"same etcd ports":    {func(c *Config) { c.Etcd.PeerListen = c.Etcd.ClientListen }, "both"},
		"external no endpoints": {func(c *Config) {
			c.Etcd.Embedded = false
			c.Etcd.Endpoints = nil
		}, "no etcd endpoints"},
		"external bad endpoint": {func(c *Config) {
			c.Etcd.Embedded = false
			c.Etcd.Endpoints = []string{"127.0.0.1:2379"}
		}, "want a URL"},
		"short dev token":        {func(c *Config) { c.Auth.DevToken = "abc" }, "shorter than 8"},
		"bad retention":          {func(c *Config) { c.Traces.Retention = "a week" }, "traces retention"},
		"tiny retention":         {func(c *Config) { c.Traces.Retention = "1s" }, "at least 1m"},
		"unknown metrics source": {func(c *Config) { c.Autoscaler.Source = "graphite" }, "want scrape, prometheus or elasticsearch"},
		"prometheus without url": {func(c *Config) { c.Autoscaler.Source = "prometheus" }, "prometheus_url"},
		"elasticsearch bad url": {func(c *Config) {
			c.Autoscaler.Source = "elasticsearch"
			c.Autoscaler.ElasticsearchURL = "es:9200"
		}, "elasticsearch_url"},
		"elasticsearch": {func(c *Config) {
			c.Autoscaler.Source = "elasticsearch"
			c.Autoscaler.ElasticsearchURL = "http://127.0.0.1:9200"
		}, ""},
		"unknown promql metric": {func(c *Config) {
			c.Autoscaler.PrometheusURL = "http://127.0.0.1:9090"
			c.Autoscaler.PrometheusQueries = map[string]string{"latency": "x"}
		}, "unknown metric"},
		"empty promql": {func(c *Config) {
			c.Autoscaler.PrometheusURL = "http://127.0.0.1:9090"
			c.Autoscaler.PrometheusQueries = map[string]string{"qps": " "}
		}, "is empty"},
		"tiny interval":       {func(c *Config) { c.Autoscaler.Interval = "1ms" }, "at least 100ms"},
		"unknown trace store": {func(c *Config) { c.Traces.Store = "cassandra" }, "want sqlite or mysql"},
		"mysql without dsn":   {func(c *Config) { c.Traces.Store = "mysql" }, "needs traces.mysql_dsn"},
		"mysql bad dsn": {func(c *Config) {
			c.Traces.Store = "mysql"
			c.Traces.MySQLDSN = "kplane:secret@db:3306/x"
		}, "traces mysql_dsn"},
		"negative demo": {func(c *Config) { c.Demo.Inventory = -1 }, "negative"},
	} {
		t.Run(name, func(t *testing.T) {
			c := DevConfig()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// A DSN carries the database password: a validation error must not echo it.
func TestConfigMySQLDSNErrorsHideThePassword(t *testing.T) {
	for _, dsn := range []string{"kplane:s3cret@db:3306/x", "kplane:s3cret@tcp(db:3306/x", "kplane:s3cret@tcp(db)/x?bad=%zz"} {
		c := DefaultConfig()
		c.Traces.Store = "mysql"
		c.Traces.MySQLDSN = dsn
		err := c.Validate()
		if err == nil {
			t.Fatalf("DSN %q accepted", dsn)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("error %q shows the password", err)
		}
	}
}
