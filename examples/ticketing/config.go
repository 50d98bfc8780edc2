package ticketing

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/kplane/kplane/ktrace/sdk"
)

// Service names.
const (
	Inventory  = "inventory"
	Checkpoint = "checkpoint"
)

// Defaults of Config.
const (
	DefaultListen  = "127.0.0.1:0"
	DefaultVersion = "dev"
	DefaultEnv     = "dev"
	// DefaultKTraceSample records every trace: the demo's traffic is
	// small, and a missing trace is what people notice.
	DefaultKTraceSample = 1.0
)

// Config configures one service instance. The zero value of every field but
// Service is usable.
type Config struct {
	// Service is Inventory or Checkpoint.
	Service string
	// Listen is the address to bind; "" means DefaultListen (a free
	// loopback port).
	Listen string
	// Listener, if set, is served instead of binding Listen; Run closes
	// it. Tests use it to know the address before Run starts.
	Listener net.Listener
	// Advertise is the host:port registered for others to dial; "" means
	// the bound address. Required when binding all interfaces with Etcd
	// set, because 0.0.0.0 cannot be dialled.
	Advertise string
	// Etcd lists the endpoints of the registry. Empty means do not
	// register (and, for checkpoint, InventoryURL must name inventory).
	Etcd []string
	// ID identifies the instance in the registry; "" means the service
	// name and a random suffix.
	ID string
	// Version, Env and Tags are registered with the instance. Version ""
	// means DefaultVersion, Env "" means DefaultEnv.
	Version string
	Env     string
	Tags    []string
	// DB (inventory only) is the SQLite file shared by every inventory
	// instance that sells from the same stock; "" means a private
	// in-memory database.
	DB string
	// InventoryURL (checkpoint only) is the base URL of inventory; ""
	// means http://inventory resolved through the registry.
	InventoryURL string
	// InventoryTag (checkpoint only) restricts calls to inventory
	// instances carrying the tag, falling back to untagged instances when
	// none do (how a per-build environment calls its own instances).
	InventoryTag string
	// Logger receives the service's own logs; nil discards.
	Logger *slog.Logger
	// AccessLog receives one JSON line per request; nil discards.
	AccessLog io.Writer
	// KTrace is the base URL of the span collector (kplane's HTTP
	// address, which serves POST /v1/traces, or any OTLP/HTTP
	// collector); "" means spans are not exported, though every request
	// still gets a trace ID for its log lines.
	KTrace string
	// KTraceCA is a PEM file of the certificates an https KTrace URL is
	// verified with instead of the system roots: the collector's CA, or
	// its certificate itself. "" means the system roots.
	KTraceCA string
	// KTraceSampler decides which new traces are recorded; nil records
	// all. Traces started upstream keep the caller's decision.
	KTraceSampler sdk.Sampler
}

// BindFlags defines the command-line flags of a service instance on fs,
// writing into cfg. kplane's `ticketing` command and cmd/ticketing share
// it, so both accept the same flags. The flags of one service (--db for
// inventory; --inventory-url and --inventory-tag for checkpoint) are
// defined only if cfg.Service is that service or empty.
func BindFlags(fs *pflag.FlagSet, cfg *Config) {
	fs.StringVar(&cfg.Listen, "listen", DefaultListen, "address to listen on; port 0 picks a free port")
	fs.StringVar(&cfg.Advertise, "advertise", "", "host:port to register for others to dial (default: the bound address)")
	fs.StringSliceVar(&cfg.Etcd, "etcd", nil, "etcd endpoints to register with, comma-separated (default: do not register)")
	fs.StringVar(&cfg.ID, "id", "", "instance ID in the registry (default: service name and a random suffix)")
	fs.StringVar(&cfg.Version, "version", DefaultVersion, "version to register")
	fs.StringVar(&cfg.Env, "env", DefaultEnv, "environment to register (dev, alpha, qa, prod, ...)")
	fs.StringArrayVar(&cfg.Tags, "tag", nil, "tag to register; repeatable")
	fs.StringVar(&cfg.KTrace, "ktrace", "", "span collector base URL, e.g. http://127.0.0.1:8080 (default: do not export spans)")
	fs.StringVar(&cfg.KTraceCA, "ktrace-ca", "", "PEM file of the CA (or certificate) an https --ktrace URL is verified with (default: the system roots)")
	fs.Var(&ratioFlag{ratio: DefaultKTraceSample, sampler: &cfg.KTraceSampler}, "ktrace-sample", "fraction of new traces to record, 0 to 1")
	if cfg.Service == "" || cfg.Service == Inventory {
		fs.StringVar(&cfg.DB, "db", "", "inventory: SQLite file shared by all inventory instances (default: private in-memory database)")
	}
	if cfg.Service == "" || cfg.Service == Checkpoint {
		fs.StringVar(&cfg.InventoryURL, "inventory-url", "", "checkpoint: inventory base URL (default: http://inventory through the registry)")
		fs.StringVar(&cfg.InventoryTag, "inventory-tag", "", "checkpoint: call only inventory instances with this tag, else untagged ones")
	}
}

// withDefaults returns cfg with empty fields set to their defaults.
func (cfg Config) withDefaults() Config {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	if cfg.Env == "" {
		cfg.Env = DefaultEnv
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.AccessLog == nil {
		cfg.AccessLog = io.Discard
	}
	if cfg.KTraceSampler == nil {
		cfg.KTraceSampler = sdk.AlwaysSample()
	}
	return cfg
}

// Validate reports the first problem of cfg in words a person can act on.
func (cfg Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch cfg.Service {
	case Inventory, Checkpoint:
	case "":
		return bad("service is empty: want %s or %s", Inventory, Checkpoint)
	default:
		return bad("unknown service %q: want %s or %s", cfg.Service, Inventory, Checkpoint)
	}
	if strings.ContainsAny(cfg.ID, "/ ") {
		return bad("--id %q must not contain '/' or spaces", cfg.ID)
	}
	for _, tag := range cfg.Tags {
		if tag == "" || strings.ContainsAny(tag, ", ") {
			return bad("--tag %q must be non-empty without commas or spaces", tag)
		}
	}
	if cfg.Service != Inventory && cfg.DB != "" {
		return bad("--db applies to %s only", Inventory)
	}
	if cfg.Service != Checkpoint && (cfg.InventoryURL != "" || cfg.InventoryTag != "") {
		return bad("--inventory-url and --inventory-tag apply to %s only", Checkpoint)
	}
	if cfg.Service == Checkpoint && len(cfg.Etcd) == 0 && cfg.InventoryURL == "" {
		return bad("checkpoint needs --etcd to find inventory, or --inventory-url")
	}
	if cfg.KTrace != "" {
		if u, err := url.Parse(cfg.KTrace); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("--ktrace %q is not a base URL like http://127.0.0.1:8080", cfg.KTrace)
		}
	}
	if cfg.KTraceCA != "" && !strings.HasPrefix(cfg.KTrace, "https://") {
		return bad("--ktrace-ca applies to an https --ktrace URL, not %q", cfg.KTrace)
	}
	if cfg.Advertise != "" {
		if _, _, err := net.SplitHostPort(cfg.Advertise); err != nil {
			return bad("--advertise %q is not host:port: %v", cfg.Advertise, err)
		}
	}
	return nil
}

// ratioFlag is --ktrace-sample: a ratio that becomes a RatioSampler, so
// that 0 means "none" on the command line while a zero Config records all.
type ratioFlag struct {
	ratio   float64
	sampler *sdk.Sampler
}

func (f *ratioFlag) String() string { return strconv.FormatFloat(f.ratio, 'g', -1, 64) }
func (f *ratioFlag) Type() string   { return "ratio" }

func (f *ratioFlag) Set(v string) error {
	r, err := strconv.ParseFloat(v, 64)
	if err != nil || r < 0 || r > 1 {
		return fmt.Errorf("%q is not a ratio between 0 and 1", v)
	}
	f.ratio, *f.sampler = r, sdk.RatioSampler(r)
	return nil
}
