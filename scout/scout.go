package scout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kplane/kplane/registry"
)

// Defaults of Config.
const (
	DefaultInterval      = 5 * time.Second
	DefaultHistoryWindow = time.Hour
)

// Config configures a Scout. Sources and Registry are required; every
// other zero value is usable.
type Config struct {
	// Sources are asked for samples every tick, concurrently. When several
	// return a metric of a service, the first source in this order with a
	// present sample wins; if all are missing, the first one's reason is
	// kept.
	Sources []Source
	// Registry lists the services to observe and their instance counts.
	Registry Registry
	// Metrics lists the metrics every ServiceSnapshot holds; nil means
	// Metrics (QPS, CPU, memory).
	Metrics []Metric
	// Interval between ticks; 0 means DefaultInterval. A tick's sources
	// must answer within one interval.
	Interval time.Duration
	// MaxAge is the oldest a sample may be at its tick before it counts as
	// missing; 0 means 3 intervals.
	MaxAge time.Duration
	// HistoryWindow is how far back History and Series reach; 0 means
	// DefaultHistoryWindow, negative keeps no history. Memory is about
	// 100 bytes per service per tick: an hour at 5 s of 1000 services is
	// about 70 MB.
	HistoryWindow time.Duration
	// Clock is the time scout runs on; nil means real time.
	Clock Clock
	// Logger receives source failures; nil discards.
	Logger *slog.Logger
	// Registerer receives scout's own metrics; nil means no metrics.
	Registerer prometheus.Registerer
}

// Scout produces a Snapshot of every registered service each tick.
// All methods are safe for concurrent use; Run must be called once.
type Scout struct {
	sources  []Source
	names    []string
	registry Registry
	metrics  []Metric
	interval time.Duration
	maxAge   time.Duration
	clock    Clock
	log      *slog.Logger
	stats    *stats

	collectMu sync.Mutex // one tick at a time: sources are not reentrant

	mu      sync.RWMutex
	latest  Snapshot
	history *history
	subs    map[chan Snapshot]struct{}
}

// New returns a Scout; it does not start ticking until Run.
func New(cfg Config) (*Scout, error) {
	if len(cfg.Sources) == 0 {
		return nil, fmt.Errorf("scout: no sources: %w", ErrInvalidConfig)
	}
	for i, src := range cfg.Sources {
		if src == nil {
			return nil, fmt.Errorf("scout: source %d is nil: %w", i, ErrInvalidConfig)
		}
	}
	if cfg.Registry == nil {
		return nil, fmt.Errorf("scout: registry is nil: %w", ErrInvalidConfig)
	}
	if cfg.Interval < 0 || cfg.MaxAge < 0 {
		return nil, fmt.Errorf("scout: negative interval or max age: %w", ErrInvalidConfig)
	}
	s := &Scout{
		sources:  slices.Clone(cfg.Sources),
		registry: cfg.Registry,
		metrics:  slices.Clone(cfg.Metrics),
		interval: cfg.Interval,
		maxAge:   cfg.MaxAge,
		clock:    cfg.Clock,
		log:      cfg.Logger,
		subs:     map[chan Snapshot]struct{}{},
		latest:   Snapshot{Services: map[string]ServiceSnapshot{}},
	}
	if len(s.metrics) == 0 {
		s.metrics = slices.Clone(Metrics)
	}
	if s.interval == 0 {
		s.interval = DefaultInterval
	}
	if s.maxAge == 0 {
		s.maxAge = 3 * s.interval
	}
	if s.clock == nil {
		s.clock = realClock{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	window := cfg.HistoryWindow
	if window == 0 {
		window = DefaultHistoryWindow
	}
	s.history = newHistory(window, s.metrics)
	for i, src := range s.sources {
		s.names = append(s.names, sourceName(i, src))
	}
	st, err := newStats(cfg.Registerer, s.names)
	if err != nil {
		return nil, err
	}
	s.stats = st
	return s, nil
}

func sourceName(i int, src Source) string {
	if n, ok := src.(fmt.Stringer); ok {
		return n.String()
	}
	return fmt.Sprintf("source-%d", i)
}

// Run ticks at once, then every interval, until ctx ends; it returns nil
// then. A tick cut short by the end of ctx is not published.
func (s *Scout) Run(ctx context.Context) error {
	for {
		start := s.clock.Now()
		s.Collect(ctx)
		wait := s.interval - s.clock.Now().Sub(start)
		if wait < 0 {
			wait = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.clock.After(wait):
		}
	}
}

// Collect runs one tick now: it asks every source, publishes the snapshot
// to Latest, History and subscribers, and returns it. Run calls it every
// interval; tests and tools may call it directly. If ctx ends during the
// tick, the snapshot is returned but not published.
func (s *Scout) Collect(ctx context.Context) Snapshot {
	s.collectMu.Lock()
	defer s.collectMu.Unlock()

	now := s.clock.Now()
	services := s.registry.Services()
	tickCtx, cancel := context.WithTimeout(ctx, s.interval)
	defer cancel()

	results := make([]map[string]map[Metric]Sample, len(s.sources))
	errs := make([]error, len(s.sources))
	var wg sync.WaitGroup
	for i, src := range s.sources {
		wg.Go(func() {
			results[i], errs[i] = src.Collect(tickCtx, services, now)
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		// Our own cancellation, not a source failure: neither log nor
		// publish it.
		return s.merge(now, services, results, errs)
	}
	for i, err := range errs {
		if err != nil {
			s.stats.sourceError(s.names[i])
			s.log.Warn("scout source failed; its metrics are missing this tick", "source", s.names[i], "err", err)
		}
	}
	snap := s.merge(now, services, results, errs)
	s.stats.tick(snap, s.metrics, s.clock.Now().Sub(now))
	s.publish(snap)
	return snap
}

// merge builds the snapshot of the registered services from the sources'
// results; see Config.Sources for the precedence.
func (s *Scout) merge(now time.Time, services []registry.Service, results []map[string]map[Metric]Sample, errs []error) Snapshot {
	var failed []string
	for i, err := range errs {
		if err != nil {
			failed = append(failed, s.names[i]+": "+err.Error())
		}
	}
	noData := "no data from any source"
	if len(failed) > 0 {
		noData = strings.Join(failed, "; ")
	}
	snap := Snapshot{Time: now, Services: make(map[string]ServiceSnapshot, len(services))}
	for _, svc := range services {
		ss := ServiceSnapshot{Service: svc.Name, Time: now, Instances: len(svc.Instances), Metrics: make(map[Metric]Sample, len(s.metrics))}
		for _, m := range s.metrics {
			var got Sample
			found := false
			for _, res := range results {
				sample, ok := res[svc.Name][m]
				if !ok {
					continue
				}
				sample = check(sample, now, s.maxAge)
				if !found || (got.Missing && !sample.Missing) {
					got, found = sample, true
				}
				if !got.Missing {
					break
				}
			}
			if !found {
				got = Missingf(now, "%s", noData)
			}
			ss.Metrics[m] = got
		}
		snap.Services[svc.Name] = ss
	}
	return snap
}

func (s *Scout) publish(snap Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latest = snap
	s.history.add(snap)
	for ch := range s.subs {
		// Latest wins: a slow subscriber skips snapshots, never blocks
		// the tick.
		select {
		case <-ch:
		default:
		}
		ch <- snap
	}
}

// Latest returns the last published snapshot; before the first tick, one
// with no services and a zero Time.
func (s *Scout) Latest() Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.latest
}

// Subscribe returns a channel that receives every snapshot published from
// now on, and a func that ends the subscription (it does not close the
// channel). The channel holds one snapshot: a slow reader gets the newest
// one, skipping those it missed.
func (s *Scout) Subscribe() (<-chan Snapshot, func()) {
	ch := make(chan Snapshot, 1)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.subs, ch)
			s.mu.Unlock()
		})
	}
}

// History returns the snapshots of one service from since on, oldest
// first, as far back as the history window. The result is a copy.
func (s *Scout) History(service string, since time.Time) []ServiceSnapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.history.snapshots(service, since)
}

// Series returns one metric of one service from since on, oldest first:
// one sample per tick, missing ones included, for sparklines.
func (s *Scout) Series(service string, m Metric, since time.Time) []Sample {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.history.series(service, m, since)
}

// stats are scout's own Prometheus metrics.
type stats struct {
	ticks        prometheus.Counter
	duration     prometheus.Histogram
	sourceErrors *prometheus.CounterVec
	missing      *prometheus.GaugeVec
	services     prometheus.Gauge
}

func newStats(reg prometheus.Registerer, sources []string) (*stats, error) {
	st := &stats{
		ticks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kplane_scout_ticks_total", Help: "Snapshots scout published.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kplane_scout_tick_duration_seconds", Help: "Time to collect one snapshot from every source.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		sourceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kplane_scout_source_errors_total", Help: "Ticks in which a source measured nothing.",
		}, []string{"source"}),
		missing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kplane_scout_missing_samples", Help: "Services whose metric was missing in the last snapshot.",
		}, []string{"metric"}),
		services: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kplane_scout_services", Help: "Services in the last snapshot.",
		}),
	}
	for _, name := range sources {
		st.sourceErrors.WithLabelValues(name)
	}
	if reg == nil {
		return st, nil
	}
	for _, c := range []prometheus.Collector{st.ticks, st.duration, st.sourceErrors, st.missing, st.services} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("scout: register metrics: %w", errors.Join(ErrInvalidConfig, err))
		}
	}
	return st, nil
}

func (st *stats) sourceError(name string) { st.sourceErrors.WithLabelValues(name).Inc() }

func (st *stats) tick(snap Snapshot, metrics []Metric, took time.Duration) {
	st.ticks.Inc()
	st.duration.Observe(took.Seconds())
	st.services.Set(float64(len(snap.Services)))
	for _, m := range metrics {
		n := 0
		for _, ss := range snap.Services {
			if ss.Metrics[m].Missing {
				n++
			}
		}
		st.missing.WithLabelValues(string(m)).Set(float64(n))
	}
}
