package scrape

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/scout"
)

// Defaults of Config.
const (
	DefaultPath        = "/metrics"
	DefaultTimeout     = 2 * time.Second
	DefaultConcurrency = 16
	DefaultCPULimit    = 1.0       // cores
	DefaultMemoryLimit = 512 << 20 // bytes
)

// DefaultExcludeRoutes are the route label values of the ticketing demo
// that are not traffic.
var DefaultExcludeRoutes = []string{"GET /metrics", "GET /healthz"}

// Metric names read from each instance.
const (
	requestsMetric = "http_requests_total"
	cpuMetric      = "process_cpu_seconds_total"
	memoryMetric   = "process_resident_memory_bytes"
	routeLabel     = "route"
)

// maxBody bounds one /metrics response.
const maxBody = 8 << 20

// Config configures a Source. Every zero value is usable.
type Config struct {
	// Client fetches /metrics; nil means a client with Timeout.
	Client *http.Client
	// Timeout bounds one instance's scrape; 0 means DefaultTimeout.
	Timeout time.Duration
	// Concurrency is how many instances are scraped at once; 0 means
	// DefaultConcurrency.
	Concurrency int
	// Path is the metrics path of every instance; "" means DefaultPath.
	Path string
	// CPULimit (cores) and MemoryLimit (bytes) are one instance's limits;
	// 0 means DefaultCPULimit and DefaultMemoryLimit.
	CPULimit    float64
	MemoryLimit float64
	// ExcludeRoutes are route label values whose requests are not traffic;
	// nil means DefaultExcludeRoutes.
	ExcludeRoutes []string
}

// Source scrapes instances. It keeps each instance's previous reading to
// compute rates, so one Source must serve one Scout. Safe for concurrent
// use.
type Source struct {
	client      *http.Client
	timeout     time.Duration
	concurrency int
	path        string
	cpuLimit    float64
	memLimit    float64
	exclude     []string

	mu   sync.Mutex
	prev map[string]reading // by instance ID
}

var _ scout.Source = (*Source)(nil)

// reading is what one scrape of one instance found.
type reading struct {
	addr     string
	at       time.Time
	requests float64
	cpu      float64
	rss      float64
	// hasCPU and hasRSS: the process metrics were exported. Without them
	// CPU or memory is unknown, not zero.
	hasCPU, hasRSS bool
}

// New returns a Source.
func New(cfg Config) (*Source, error) {
	if cfg.Timeout < 0 || cfg.Concurrency < 0 || cfg.CPULimit < 0 || cfg.MemoryLimit < 0 {
		return nil, fmt.Errorf("scrape source: negative timeout, concurrency or limit: %w", ErrInvalidConfig)
	}
	s := &Source{
		client: cfg.Client, timeout: cfg.Timeout, concurrency: cfg.Concurrency, path: cfg.Path,
		cpuLimit: cfg.CPULimit, memLimit: cfg.MemoryLimit, exclude: slices.Clone(cfg.ExcludeRoutes),
		prev: map[string]reading{},
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: s.timeout}
	}
	if s.concurrency == 0 {
		s.concurrency = DefaultConcurrency
	}
	if s.path == "" {
		s.path = DefaultPath
	}
	if s.cpuLimit == 0 {
		s.cpuLimit = DefaultCPULimit
	}
	if s.memLimit == 0 {
		s.memLimit = DefaultMemoryLimit
	}
	if cfg.ExcludeRoutes == nil {
		s.exclude = slices.Clone(DefaultExcludeRoutes)
	}
	return s, nil
}

// String names the source in scout's logs and metrics.
func (s *Source) String() string { return "scrape" }

// Collect scrapes every instance of services and returns their metrics.
func (s *Source) Collect(ctx context.Context, services []registry.Service, now time.Time) (map[string]map[scout.Metric]scout.Sample, error) {
	type job struct {
		svc, inst int
	}
	var jobs []job
	for i, svc := range services {
		for j := range svc.Instances {
			jobs = append(jobs, job{i, j})
		}
	}
	readings := make([][]reading, len(services))
	errs := make([][]error, len(services))
	for i, svc := range services {
		readings[i] = make([]reading, len(svc.Instances))
		errs[i] = make([]error, len(svc.Instances))
	}
	sem := make(chan struct{}, s.concurrency)
	var wg sync.WaitGroup
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			in := services[j.svc].Instances[j.inst]
			readings[j.svc][j.inst], errs[j.svc][j.inst] = s.scrape(ctx, in, now)
		})
	}
	wg.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	out := make(map[string]map[scout.Metric]scout.Sample, len(services))
	for i, svc := range services {
		var (
			answered, rated, cpuRated, rssAnswered int
			qps, cpu, rss                          float64
			firstErr                               error
		)
		for j, in := range svc.Instances {
			seen[in.ID] = true
			if err := errs[i][j]; err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue // its previous reading stays, for a rate over a longer Δt
			}
			cur := readings[i][j]
			answered++
			if cur.hasRSS {
				rssAnswered++
				rss += cur.rss
			}
			prev, ok := s.prev[in.ID]
			s.prev[in.ID] = cur
			if !ok || prev.addr != cur.addr {
				continue // first reading of this instance: no rate yet
			}
			dt := cur.at.Sub(prev.at).Seconds()
			if dt <= 0 {
				continue
			}
			rated++
			qps += increase(prev.requests, cur.requests) / dt
			if prev.hasCPU && cur.hasCPU {
				cpuRated++
				cpu += increase(prev.cpu, cur.cpu) / dt
			}
		}
		ms := make(map[scout.Metric]scout.Sample, 3)
		switch {
		case answered == 0 && firstErr != nil:
			for _, m := range scout.Metrics {
				ms[m] = scout.Missingf(now, "no instance answered: %v", firstErr)
			}
		case answered == 0:
			for _, m := range scout.Metrics {
				ms[m] = scout.Missingf(now, "no instances registered")
			}
		default:
			ms[scout.Memory] = scout.Missingf(now, "instances export no %s", memoryMetric)
			if rssAnswered > 0 {
				ms[scout.Memory] = scout.Value(rss/float64(rssAnswered)/s.memLimit, now)
			}
			if rated == 0 {
				ms[scout.QPS] = scout.Missingf(now, "warming up: rates need two scrapes of an instance")
				ms[scout.CPU] = ms[scout.QPS]
				break
			}
			ms[scout.QPS] = scout.Value(qps/float64(rated)*float64(len(svc.Instances)), now)
			ms[scout.CPU] = scout.Missingf(now, "instances export no %s", cpuMetric)
			if cpuRated > 0 {
				ms[scout.CPU] = scout.Value(cpu/float64(cpuRated)/s.cpuLimit, now)
			}
		}
		out[svc.Name] = ms
	}
	for id := range s.prev {
		if !seen[id] {
			delete(s.prev, id) // deregistered: a later instance with its ID starts afresh
		}
	}
	return out, nil
}

// increase is how much a counter grew; a counter that went down was reset
// to zero by a restart, so all of its current value is new.
func increase(prev, cur float64) float64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// scrape reads one instance's metrics.
func (s *Source) scrape(ctx context.Context, in registry.Instance, now time.Time) (reading, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	url := "http://" + in.Addr + s.path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return reading{}, fmt.Errorf("%w: %s: %w", ErrScrape, in.ID, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		return reading{}, fmt.Errorf("%w: %s: %w", ErrScrape, in.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return reading{}, fmt.Errorf("%w: %s: %s answered %s", ErrScrape, in.ID, url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return reading{}, fmt.Errorf("%w: %s: parse %s: %w", ErrScrape, in.ID, url, err)
	}
	r := reading{addr: in.Addr, at: now}
	if f := families[requestsMetric]; f != nil {
		for _, m := range f.GetMetric() {
			if !slices.Contains(s.exclude, label(m, routeLabel)) {
				r.requests += m.GetCounter().GetValue()
			}
		}
	}
	if f := families[cpuMetric]; f != nil && len(f.GetMetric()) > 0 {
		r.cpu, r.hasCPU = f.GetMetric()[0].GetCounter().GetValue(), true
	}
	if f := families[memoryMetric]; f != nil && len(f.GetMetric()) > 0 {
		r.rss, r.hasRSS = f.GetMetric()[0].GetGauge().GetValue(), true
	}
	return r, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
