package elasticsearch

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/scout"
)

// Defaults of Config.
const (
	DefaultIndex        = "access-logs-*"
	DefaultServiceField = "service"
	DefaultRouteField   = "route"
	DefaultTimeField    = "time"
	DefaultWindow       = time.Minute
	DefaultTimeout      = 4 * time.Second
)

// DefaultExcludeRoutes are the route values of the ticketing demo's access
// log that are not traffic.
var DefaultExcludeRoutes = []string{"GET /metrics", "GET /healthz"}

// aggName names the terms aggregation in request and response.
const aggName = "services"

// Config configures a Source. URL is required; every other zero value is
// usable.
type Config struct {
	// URL of Elasticsearch, e.g. http://127.0.0.1:9200.
	URL string
	// Client sends the searches; nil means a client with Timeout.
	Client *http.Client
	// Timeout bounds one search when Client is nil; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// Index (or pattern) holding the access logs; "" means DefaultIndex.
	Index string
	// ServiceField, RouteField and TimeField name the access-log fields
	// (keyword, keyword, date); "" means the defaults, which match the
	// demo's JSON access log lines.
	ServiceField, RouteField, TimeField string
	// ExcludeRoutes are route values that are not traffic; nil means
	// DefaultExcludeRoutes.
	ExcludeRoutes []string
	// Window is the span counted; 0 means DefaultWindow.
	Window time.Duration
}

// Source counts access-log lines per service. Safe for concurrent use.
type Source struct {
	client  *elastic.Client
	index   string
	service string
	route   string
	time    string
	exclude []string
	window  time.Duration
}

var _ scout.Source = (*Source)(nil)

// New returns a Source; it does not contact Elasticsearch.
func New(cfg Config) (*Source, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("elasticsearch source: url is empty: %w", ErrInvalidConfig)
	}
	if cfg.Window < 0 || cfg.Timeout < 0 {
		return nil, fmt.Errorf("elasticsearch source: negative window or timeout: %w", ErrInvalidConfig)
	}
	httpClient := cfg.Client
	if httpClient == nil {
		timeout := cfg.Timeout
		if timeout == 0 {
			timeout = DefaultTimeout
		}
		httpClient = &http.Client{Timeout: timeout}
	}
	client, err := elastic.NewClient(
		elastic.SetURL(cfg.URL),
		elastic.SetHttpClient(httpClient),
		elastic.SetSniff(false),
		elastic.SetHealthcheck(false),
		elastic.SetMaxRetries(0), // the next tick is the retry
	)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch source: %w: %w", ErrInvalidConfig, err)
	}
	s := &Source{
		client: client, index: cfg.Index, service: cfg.ServiceField, route: cfg.RouteField, time: cfg.TimeField,
		exclude: slices.Clone(cfg.ExcludeRoutes), window: cfg.Window,
	}
	if s.index == "" {
		s.index = DefaultIndex
	}
	if s.service == "" {
		s.service = DefaultServiceField
	}
	if s.route == "" {
		s.route = DefaultRouteField
	}
	if s.time == "" {
		s.time = DefaultTimeField
	}
	if cfg.ExcludeRoutes == nil {
		s.exclude = slices.Clone(DefaultExcludeRoutes)
	}
	if s.window == 0 {
		s.window = DefaultWindow
	}
	return s, nil
}

// String names the source in scout's logs and metrics.
func (s *Source) String() string { return "elasticsearch" }

// Search returns the one search a tick sends, for inspection and golden
// tests.
func (s *Source) Search(services []registry.Service, now time.Time) *elastic.SearchSource {
	names := make([]any, 0, len(services))
	for _, svc := range services {
		names = append(names, svc.Name)
	}
	excluded := make([]any, 0, len(s.exclude))
	for _, r := range s.exclude {
		excluded = append(excluded, r)
	}
	q := elastic.NewBoolQuery().
		Filter(
			elastic.NewRangeQuery(s.time).Gte(now.Add(-s.window).UTC().Format(time.RFC3339Nano)).Lt(now.UTC().Format(time.RFC3339Nano)),
			elastic.NewTermsQuery(s.service, names...),
		).
		MustNot(elastic.NewTermsQuery(s.route, excluded...))
	agg := elastic.NewTermsAggregation().Field(s.service).Size(max(len(services), 1))
	return elastic.NewSearchSource().Query(q).Size(0).TrackTotalHits(false).Aggregation(aggName, agg)
}

// Collect sends one search and returns QPS per service.
func (s *Source) Collect(ctx context.Context, services []registry.Service, now time.Time) (map[string]map[scout.Metric]scout.Sample, error) {
	if len(services) == 0 {
		return nil, nil
	}
	res, err := s.client.Search(s.index).SearchSource(s.Search(services, now)).Do(ctx)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: search %s: %w", s.index, err)
	}
	terms, ok := res.Aggregations.Terms(aggName)
	if !ok {
		return nil, fmt.Errorf("elasticsearch: search %s: no %q aggregation: %w", s.index, aggName, ErrUnexpectedResponse)
	}
	counts := map[string]int64{}
	for _, b := range terms.Buckets {
		if name, ok := b.Key.(string); ok {
			counts[name] = b.DocCount
		}
	}
	out := make(map[string]map[scout.Metric]scout.Sample, len(services))
	for _, svc := range services {
		n, ok := counts[svc.Name]
		if !ok {
			out[svc.Name] = map[scout.Metric]scout.Sample{
				scout.QPS: scout.Missingf(now, "elasticsearch: no access-log lines for %s in the last %s", svc.Name, s.window),
			}
			continue
		}
		out[svc.Name] = map[scout.Metric]scout.Sample{scout.QPS: scout.Value(float64(n)/s.window.Seconds(), now)}
	}
	return out, nil
}
