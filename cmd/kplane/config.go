package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kplane/kplane/signalman"
)

// Config is everything kplane needs to start. It is built in layers:
// defaults (DefaultConfig or DevConfig), then a YAML file, then KPLANE_*
// environment variables, then flags, then Validate.
type Config struct {
	// Listen is the address of the one HTTP listener (UI, API, ingest).
	Listen string `yaml:"listen" env:"KPLANE_LISTEN"`
	// TLS, when set, makes the listener serve HTTPS.
	TLS TLSConfig `yaml:"tls"`
	// DataDir holds the embedded etcd data, the SQLite store and the logs
	// of local instances.
	DataDir string `yaml:"data_dir" env:"KPLANE_DATA_DIR"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level" env:"KPLANE_LOG_LEVEL"`
	// LogFormat is text or json.
	LogFormat string `yaml:"log_format" env:"KPLANE_LOG_FORMAT"`

	Etcd  EtcdConfig  `yaml:"etcd"`
	Store StoreConfig `yaml:"store"`
	Auth  AuthConfig  `yaml:"auth"`
	Demo  DemoConfig  `yaml:"demo"`
	// Driver runs your services (Services) and the demo's: process
	// (children of kplane), docker (containers on one engine), swarm
	// (Docker Swarm services) or marathon (Marathon apps). The demo runs
	// with process or docker only. Settings of each in the struct of its
	// name; see signalman.go.
	Driver   string         `yaml:"driver" env:"KPLANE_DRIVER"`
	Process  ProcessConfig  `yaml:"process"`
	Docker   DockerConfig   `yaml:"docker"`
	Swarm    SwarmConfig    `yaml:"swarm"`
	Marathon MarathonConfig `yaml:"marathon"`
	// Services says how Driver runs each of your services, by name.
	Services map[string]ServiceConfig `yaml:"services"`

	Autoscaler AutoscalerConfig `yaml:"autoscaler"`
	Traces     TracesConfig     `yaml:"traces"`
	Builds     BuildsConfig     `yaml:"builds"`
	Pipeline   PipelineConfig   `yaml:"pipeline"`
}

// TracesConfig configures KTrace's span store.
type TracesConfig struct {
	// Retention is how long spans are kept, a Go duration. Older spans are
	// removed (their trace IDs are remembered as expired for as long again).
	Retention string `yaml:"retention" env:"KPLANE_TRACES_RETENTION"`
	// Store is sqlite (traces.db in the data dir, the default) or mysql
	// (MySQL/MariaDB, daily partitions dropped when expired).
	Store string `yaml:"store" env:"KPLANE_TRACES_STORE"`
	// MySQLDSN is the go-sql-driver/mysql DSN of a database that holds
	// only the span schema, e.g. kplane:pw@tcp(db:3306)/kplane_traces.
	// It may carry a password: kplane never logs it.
	MySQLDSN string `yaml:"mysql_dsn" env:"KPLANE_TRACES_MYSQL_DSN"`
	// MySQLCAFile is a PEM CA bundle: set, kplane talks TLS to MySQL and
	// verifies the server's certificate against it (see mysqlDSN).
	MySQLCAFile string `yaml:"mysql_ca_file" env:"KPLANE_TRACES_MYSQL_CA_FILE"`
}

// retention is the parsed Retention; Validate has checked it.
func (t TracesConfig) retention() time.Duration {
	d, _ := time.ParseDuration(t.Retention)
	return d
}

// AutoscalerConfig configures Scout → Headquarter → Signalman. It acts on
// the services of the local orchestrator (the demo's process driver).
type AutoscalerConfig struct {
	// Enabled runs scout and, on the elected leader, the headquarter loop.
	Enabled bool `yaml:"enabled" env:"KPLANE_AUTOSCALER"`
	// Source is where scout reads metrics: scrape (each instance's
	// /metrics) or prometheus. "" means prometheus when PrometheusURL is
	// set, else scrape.
	Source string `yaml:"source" env:"KPLANE_AUTOSCALER_SOURCE"`
	// PrometheusURL is the Prometheus HTTP API, e.g. http://127.0.0.1:9090.
	PrometheusURL string `yaml:"prometheus_url" env:"KPLANE_PROMETHEUS_URL"`
	// PrometheusQueries replaces the default PromQL of some metrics (keys
	// qps, cpu, memory; see scout/prometheus DefaultQueries). Each query
	// must return one series per service, labelled service.
	PrometheusQueries map[string]string `yaml:"prometheus_queries"`
	// ElasticsearchURL and ElasticsearchIndex locate the access logs for
	// source elasticsearch (QPS only; CPU and memory are then missing, so
	// policies should disable them).
	ElasticsearchURL   string `yaml:"elasticsearch_url" env:"KPLANE_ELASTICSEARCH_URL"`
	ElasticsearchIndex string `yaml:"elasticsearch_index" env:"KPLANE_ELASTICSEARCH_INDEX"`
	// Interval between observations and evaluations, a Go duration.
	Interval string `yaml:"interval" env:"KPLANE_AUTOSCALER_INTERVAL"`
	// Env is the environment the autoscaler observes and scales, and the
	// one manual scales and services' start counts apply to when the
	// service's policy names none. HAWAII runs the same services in
	// alpha, qa and prod side by side: only this env's instances are the
	// autoscaler's capacity and load. kplane dev sets dev; "" means dev
	// when the demo runs, else prod.
	Env string `yaml:"env" env:"KPLANE_AUTOSCALER_ENV"`
}

// autoscalerEnv resolves the "" default of Autoscaler.Env.
func (c Config) autoscalerEnv() string {
	switch {
	case c.Autoscaler.Env != "":
		return c.Autoscaler.Env
	case c.Demo.Enabled:
		return demoEnv
	}
	return "prod"
}

// source resolves the "" default of Source.
func (a AutoscalerConfig) source() string {
	if a.Source == "" && a.PrometheusURL != "" {
		return "prometheus"
	}
	if a.Source == "" {
		return "scrape"
	}
	return a.Source
}

// interval is the parsed Interval; Validate has checked it.
func (a AutoscalerConfig) interval() time.Duration {
	d, _ := time.ParseDuration(a.Interval)
	return d
}

// EtcdConfig selects the coordination store.
type EtcdConfig struct {
	// Embedded starts an etcd inside kplane with its data in DataDir/etcd.
	Embedded bool `yaml:"embedded" env:"KPLANE_ETCD_EMBEDDED"`
	// ClientListen and PeerListen are the embedded etcd's addresses.
	ClientListen string `yaml:"client_listen" env:"KPLANE_ETCD_CLIENT_LISTEN"`
	PeerListen   string `yaml:"peer_listen" env:"KPLANE_ETCD_PEER_LISTEN"`
	// Endpoints of an external etcd cluster (when not embedded).
	Endpoints []string `yaml:"endpoints" env:"KPLANE_ETCD_ENDPOINTS"`
	// TLS secures the connection to an external cluster.
	TLS EtcdTLSConfig `yaml:"tls"`
}

// AuthConfig configures authentication.
type AuthConfig struct {
	// DevToken, in dev mode, is the admin token to create instead of a
	// random one, so scripts can drive a dev instance.
	DevToken string `yaml:"dev_token" env:"KPLANE_DEV_TOKEN"`
	// SecureCookies marks session cookies Secure (set it behind TLS).
	SecureCookies bool `yaml:"secure_cookies" env:"KPLANE_SECURE_COOKIES"`
}

// DemoConfig runs the ticketing demo services as local processes.
type DemoConfig struct {
	Enabled    bool `yaml:"enabled" env:"KPLANE_DEMO"`
	Inventory  int  `yaml:"inventory" env:"KPLANE_DEMO_INVENTORY"`
	Checkpoint int  `yaml:"checkpoint" env:"KPLANE_DEMO_CHECKPOINT"`
	// Images, with driver docker, runs a demo service from an image of
	// your own instead of the image of this kplane binary: service →
	// reference, where {version} is the version deployed, so that each
	// build's image runs (inventory: "shop/inventory:{version}"). The
	// image's entrypoint takes kplane's arguments (ticketing inventory ...).
	Images map[string]string `yaml:"images"`
}

// DefaultConfig is the base of `kplane server`: loopback, SQLite in the
// data dir, an external etcd on localhost, no demo.
func DefaultConfig() Config {
	return Config{
		Listen:    "127.0.0.1:8080",
		DataDir:   "./.kplane",
		LogLevel:  "info",
		LogFormat: "text",
		Etcd: EtcdConfig{
			ClientListen: "127.0.0.1:2379",
			PeerListen:   "127.0.0.1:2380",
			Endpoints:    []string{"http://127.0.0.1:2379"},
		},
		Store:      StoreConfig{Driver: "sqlite", Path: "kplane.db"},
		Demo:       DemoConfig{Inventory: 2, Checkpoint: 2},
		Driver:     "process",
		Autoscaler: AutoscalerConfig{Enabled: true, Interval: "5s"},
		Traces:     TracesConfig{Retention: "168h"},
	}
}

// DevConfig is the base of `kplane dev`: the defaults plus an embedded
// etcd and the ticketing demo.
func DevConfig() Config {
	c := DefaultConfig()
	c.Etcd.Embedded = true
	c.Demo.Enabled = true
	// Short ticks: the demo's spike should be answered within seconds.
	c.Autoscaler.Interval = "2s"
	c.Autoscaler.Env = demoEnv
	return c
}

// LoadFile overlays the YAML file at path on c. Unknown keys are errors, so
// a typo does not silently fall back to a default.
func (c *Config) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	// An empty file (io.EOF) means no settings.
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// LoadEnv overlays KPLANE_* variables (as named by the env struct tags) on
// c. lookup is os.LookupEnv outside tests.
func (c *Config) LoadEnv(lookup func(string) (string, bool)) error {
	return loadEnv(reflect.ValueOf(c).Elem(), lookup)
}

func loadEnv(v reflect.Value, lookup func(string) (string, bool)) error {
	t := v.Type()
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		if f.Type.Kind() == reflect.Struct {
			if err := loadEnv(fv, lookup); err != nil {
				return err
			}
			continue
		}
		name := f.Tag.Get("env")
		if name == "" {
			continue
		}
		s, ok := lookup(name)
		if !ok {
			continue
		}
		switch f.Type.Kind() {
		case reflect.String:
			fv.SetString(s)
		case reflect.Bool:
			b, err := strconv.ParseBool(s)
			if err != nil {
				return fmt.Errorf("%s=%q: want true or false", name, s)
			}
			fv.SetBool(b)
		case reflect.Int:
			n, err := strconv.Atoi(s)
			if err != nil {
				return fmt.Errorf("%s=%q: want a whole number", name, s)
			}
			fv.SetInt(int64(n))
		case reflect.Slice:
			var parts []string
			for _, p := range strings.Split(s, ",") {
				if p = strings.TrimSpace(p); p != "" {
					parts = append(parts, p)
				}
			}
			fv.Set(reflect.ValueOf(parts))
		}
	}
	return nil
}

// Validate reports the first setting a person must fix, in words they can
// act on.
func (c *Config) Validate() error {
	if _, err := c.Builds.secrets(); err != nil {
		return err
	}
	if err := c.Pipeline.validate(); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen %q: want host:port, e.g. 127.0.0.1:8080", c.Listen)
	}
	if c.DataDir == "" {
		return errors.New("data dir is empty: set --data-dir or data_dir")
	}
	if err := c.TLS.validate(); err != nil {
		return err
	}
	if err := c.Etcd.validateTLS(); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log level %q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("log format %q: want text or json", c.LogFormat)
	}
	if c.Etcd.Embedded {
		for name, a := range map[string]string{"etcd client listen": c.Etcd.ClientListen, "etcd peer listen": c.Etcd.PeerListen} {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return fmt.Errorf("%s %q: want host:port, e.g. 127.0.0.1:2379", name, a)
			}
		}
		if c.Etcd.ClientListen == c.Etcd.PeerListen {
			return fmt.Errorf("etcd client and peer listen addresses are both %s", c.Etcd.ClientListen)
		}
	} else {
		if len(c.Etcd.Endpoints) == 0 {
			return errors.New("no etcd endpoints: set etcd.endpoints (or KPLANE_ETCD_ENDPOINTS), or etcd.embedded: true")
		}
		for _, e := range c.Etcd.Endpoints {
			u, err := url.Parse(e)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("etcd endpoint %q: want a URL like http://127.0.0.1:2379", e)
			}
		}
	}
	if err := c.Store.validate(c.Traces); err != nil {
		return err
	}
	if err := c.validateOrchestrator(); err != nil {
		return err
	}
	if c.Demo.Enabled && (c.Demo.Inventory < 0 || c.Demo.Checkpoint < 0) {
		return errors.New("demo instance counts must not be negative")
	}
	for svc := range c.Demo.Images {
		if svc != "inventory" && svc != "checkpoint" {
			return fmt.Errorf("demo.images: %q is not a demo service (inventory, checkpoint)", svc)
		}
		if c.Driver != "docker" {
			return errors.New("demo.images needs driver docker")
		}
	}
	switch c.Traces.Store {
	case "", "sqlite":
	case "mysql":
		if c.Traces.MySQLDSN == "" {
			return errors.New("traces store mysql needs traces.mysql_dsn (or KPLANE_TRACES_MYSQL_DSN)")
		}
		if _, err := mysqlDSN(c.Traces); err != nil {
			return err
		}
	default:
		return fmt.Errorf("traces store %q: want sqlite or mysql", c.Traces.Store)
	}
	if d, err := time.ParseDuration(c.Traces.Retention); err != nil || d < time.Minute {
		return fmt.Errorf("traces retention %q: want a duration of at least 1m, like 168h", c.Traces.Retention)
	}
	if a := c.Autoscaler; a.Enabled {
		switch a.source() {
		case "scrape":
		case "prometheus":
			u, err := url.Parse(a.PrometheusURL)
			if a.PrometheusURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("autoscaler prometheus_url %q: want a URL like http://127.0.0.1:9090 (or autoscaler.source: scrape)", a.PrometheusURL)
			}
			for k, q := range a.PrometheusQueries {
				if k != "qps" && k != "cpu" && k != "memory" {
					return fmt.Errorf("autoscaler prometheus_queries: unknown metric %q: want qps, cpu or memory", k)
				}
				if strings.TrimSpace(q) == "" {
					return fmt.Errorf("autoscaler prometheus_queries.%s is empty", k)
				}
			}
		case "elasticsearch":
			u, err := url.Parse(a.ElasticsearchURL)
			if a.ElasticsearchURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("autoscaler elasticsearch_url %q: want a URL like http://127.0.0.1:9200", a.ElasticsearchURL)
			}
		default:
			return fmt.Errorf("autoscaler source %q: want scrape, prometheus or elasticsearch", a.Source)
		}
		if a.Env != "" && signalman.ValidEnv(a.Env) != nil {
			return fmt.Errorf("autoscaler.env %q: use 1 to 40 lowercase letters, digits and inner dashes, like prod", a.Env)
		}
		if d, err := time.ParseDuration(a.Interval); err != nil || d < 100*time.Millisecond {
			return fmt.Errorf("autoscaler interval %q: want a duration of at least 100ms, like 5s", a.Interval)
		}
	}
	if t := c.Auth.DevToken; t != "" && len(t) < 8 {
		return errors.New("dev token is shorter than 8 characters")
	}
	return nil
}

// StorePath is the SQLite file, resolved against DataDir.
func (c *Config) StorePath() string {
	if filepath.IsAbs(c.Store.Path) {
		return c.Store.Path
	}
	return filepath.Join(c.DataDir, c.Store.Path)
}
