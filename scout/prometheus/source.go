package prometheus

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/scout"
)

// Defaults of Config.
const (
	DefaultServiceLabel = "service"
	DefaultTimeout      = 4 * time.Second
	DefaultCPULimit     = 1.0       // cores
	DefaultMemoryLimit  = 512 << 20 // bytes
)

// DefaultQueries returns the queries matching the ticketing demo's
// metrics, with CPU divided by cpuLimit (cores) and memory by memoryLimit
// (bytes). Each is grouped by the service label:
//
//	qps:    sum by (service) ((rate(http_requests_total{route!~"GET /(metrics|healthz)"}[1m])
//	          or 0 * rate(http_requests_total[1m])) and on (job, instance) (up == 1))
//	cpu:    avg by (service) (rate(process_cpu_seconds_total[1m])
//	          * on (job, instance) group_left (service) group by (job, instance, service) (http_requests_total)
//	          and on (job, instance) (up == 1)) / cpuLimit
//	memory: avg by (service) (process_resident_memory_bytes
//	          * on (job, instance) group_left (service) group by (job, instance, service) (http_requests_total)
//	          and on (job, instance) (up == 1)) / memoryLimit
//
// The "or 0 *" keeps a scraped service that serves no traffic at a
// present 0 rather than no series (missing). The process collector has no
// service label; the join borrows it from
// http_requests_total of the same target, which every demo instance has
// once it has been scraped twice (scrapes are counted).
func DefaultQueries(cpuLimit, memoryLimit float64) map[scout.Metric]string {
	const up = `and on (job, instance) (up == 1)`
	const join = `* on (job, instance) group_left (service) group by (job, instance, service) (http_requests_total)`
	return map[scout.Metric]string{
		scout.QPS:    `sum by (service) ((rate(http_requests_total{route!~"GET /(metrics|healthz)"}[1m]) or 0 * rate(http_requests_total[1m])) ` + up + `)`,
		scout.CPU:    fmt.Sprintf(`avg by (service) (rate(process_cpu_seconds_total[1m]) %s %s) / %g`, join, up, cpuLimit),
		scout.Memory: fmt.Sprintf(`avg by (service) (process_resident_memory_bytes %s %s) / %g`, join, up, memoryLimit),
	}
}

// Config configures a Source. URL is required; every other zero value is
// usable.
type Config struct {
	// URL is the base URL of the Prometheus HTTP API, e.g.
	// http://127.0.0.1:9090.
	URL string
	// Client sends the queries; nil means a client with Timeout.
	Client *http.Client
	// Timeout bounds one query when Client is nil; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// Queries maps each metric to a PromQL instant query that returns one
	// series per service, labelled with ServiceLabel. nil means
	// DefaultQueries(CPULimit, MemoryLimit); a non-nil map is used as is,
	// so a metric it lacks is not provided by this source.
	Queries map[scout.Metric]string
	// ServiceLabel names the label holding the service name; "" means
	// DefaultServiceLabel.
	ServiceLabel string
	// CPULimit (cores) and MemoryLimit (bytes) of one instance scale the
	// default queries; 0 means DefaultCPULimit and DefaultMemoryLimit.
	CPULimit    float64
	MemoryLimit float64
}

// Source measures services from Prometheus. It is safe for concurrent use.
type Source struct {
	api     v1.API
	queries map[scout.Metric]string
	metrics []scout.Metric // sorted, for stable error messages
	label   model.LabelName
}

var _ scout.Source = (*Source)(nil)

// New returns a Source; it does not contact Prometheus.
func New(cfg Config) (*Source, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("prometheus source: url is empty: %w", ErrInvalidConfig)
	}
	if cfg.CPULimit < 0 || cfg.MemoryLimit < 0 {
		return nil, fmt.Errorf("prometheus source: negative cpu or memory limit: %w", ErrInvalidConfig)
	}
	client := cfg.Client
	if client == nil {
		timeout := cfg.Timeout
		if timeout <= 0 {
			timeout = DefaultTimeout
		}
		client = &http.Client{Timeout: timeout}
	}
	c, err := api.NewClient(api.Config{Address: strings.TrimSuffix(cfg.URL, "/"), Client: client})
	if err != nil {
		return nil, fmt.Errorf("prometheus source: %w: %w", ErrInvalidConfig, err)
	}
	queries := cfg.Queries
	if queries == nil {
		cpu, mem := cfg.CPULimit, cfg.MemoryLimit
		if cpu == 0 {
			cpu = DefaultCPULimit
		}
		if mem == 0 {
			mem = DefaultMemoryLimit
		}
		queries = DefaultQueries(cpu, mem)
	}
	s := &Source{api: v1.NewAPI(c), queries: map[scout.Metric]string{}, label: DefaultServiceLabel}
	if cfg.ServiceLabel != "" {
		s.label = model.LabelName(cfg.ServiceLabel)
	}
	for m, q := range queries {
		if strings.TrimSpace(q) == "" {
			return nil, fmt.Errorf("prometheus source: query for %s is empty: %w", m, ErrInvalidConfig)
		}
		s.queries[m] = q
		s.metrics = append(s.metrics, m)
	}
	slices.Sort(s.metrics)
	return s, nil
}

// String names the source in scout's logs and metrics.
func (s *Source) String() string { return "prometheus" }

// Collect runs every query once, concurrently, at now.
func (s *Source) Collect(ctx context.Context, services []registry.Service, now time.Time) (map[string]map[scout.Metric]scout.Sample, error) {
	results := make([]map[string]scout.Sample, len(s.metrics))
	errs := make([]error, len(s.metrics))
	var wg sync.WaitGroup
	for i, m := range s.metrics {
		wg.Go(func() { results[i], errs[i] = s.query(ctx, m, now) })
	}
	wg.Wait()

	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	if failed == len(s.metrics) {
		return nil, queryErrors(errs)
	}
	out := make(map[string]map[scout.Metric]scout.Sample, len(services))
	for _, svc := range services {
		ms := make(map[scout.Metric]scout.Sample, len(s.metrics))
		for i, m := range s.metrics {
			switch sample, ok := results[i][svc.Name]; {
			case errs[i] != nil:
				ms[m] = scout.Missingf(now, "prometheus: %v", errs[i])
			case !ok:
				ms[m] = scout.Missingf(now, "prometheus: no series for %s in the %s query (not scraped yet, or no instance up)", svc.Name, m)
			default:
				ms[m] = sample
			}
		}
		out[svc.Name] = ms
	}
	return out, nil
}

// query runs the query of metric m and returns its samples by service.
func (s *Source) query(ctx context.Context, m scout.Metric, now time.Time) (map[string]scout.Sample, error) {
	v, _, _, err := s.api.Query(ctx, s.queries[m], now)
	if err != nil {
		return nil, fmt.Errorf("%s query: %w", m, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("%s query returned %s: %w", m, v.Type(), ErrUnexpectedResult)
	}
	out := make(map[string]scout.Sample, len(vec))
	for _, smp := range vec {
		name := string(smp.Metric[s.label])
		if name == "" {
			continue // a series without the label cannot be attributed
		}
		val := float64(smp.Value)
		if math.IsNaN(val) || math.IsInf(val, 0) {
			out[name] = scout.Missingf(now, "prometheus: %s is %v", m, val)
			continue
		}
		out[name] = scout.Value(val, smp.Timestamp.Time())
	}
	return out, nil
}

// queryErrors is the error of a tick in which every query failed. It reads
// on one line, unlike errors.Join: scout prefixes it with the source's name
// and it becomes each missing metric's reason, shown in a row of `kplane
// decisions` and of the console's decision log.
type queryErrors []error

func (e queryErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e queryErrors) Unwrap() []error { return e }
