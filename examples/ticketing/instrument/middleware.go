package instrument

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kplane/kplane/examples/ticketing/api"
	"github.com/kplane/kplane/ktrace/sdk"
)

// UnmatchedRoute is the route label of requests no mux pattern matched
// (404 and 405 from the mux itself).
const UnmatchedRoute = "unmatched"

// Config configures the middleware. The zero value of every field but
// Service is safe.
type Config struct {
	// Service is the value of the service label and access log field.
	Service string
	// Registerer receives the request metrics; nil means no metrics.
	Registerer prometheus.Registerer
	// AccessLog receives one JSON object per line per request; nil
	// discards.
	AccessLog io.Writer
	// Logger reports handler panics; nil discards.
	Logger *slog.Logger
	// Tracer makes the server span of every request, whose trace ID goes
	// on the access log line; nil means a tracer that exports nothing but
	// still gives every request a trace ID and propagates it.
	Tracer *sdk.Tracer
}

// Middleware instruments an http.Handler. It is safe for concurrent use.
type Middleware struct {
	service  string
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	logger   *slog.Logger
	tracer   *sdk.Tracer

	accessMu  sync.Mutex // one Write per line, lines never interleave
	accessLog io.Writer
}

// New builds the middleware and registers its metrics.
func New(cfg Config) (*Middleware, error) {
	if cfg.Service == "" {
		return nil, errors.New("instrument: service is empty")
	}
	m := &Middleware{
		service: cfg.Service,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests served, by route pattern and status code.",
		}, []string{"service", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"service", "route"}),
		logger:    cfg.Logger,
		accessLog: cfg.AccessLog,
		tracer:    cfg.Tracer,
	}
	if m.tracer == nil {
		var err error
		if m.tracer, err = sdk.New(sdk.Config{ServiceName: cfg.Service}); err != nil {
			return nil, fmt.Errorf("instrument: %w", err)
		}
	}
	if m.logger == nil {
		m.logger = slog.New(slog.DiscardHandler)
	}
	if m.accessLog == nil {
		m.accessLog = io.Discard
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("instrument: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// AccessLine is one access log line, as JSON.
type AccessLine struct {
	Time       time.Time `json:"time"`
	Service    string    `json:"service"`
	Method     string    `json:"method"`
	Route      string    `json:"route"`
	Path       string    `json:"path"`
	Status     int       `json:"status"`
	DurationMS float64   `json:"duration_ms"`
	Bytes      int64     `json:"bytes"`
	TraceID    string    `json:"trace_id"`
	Remote     string    `json:"remote_addr"`
	// RequestID is the client's X-Request-ID, when it sent one.
	RequestID string `json:"request_id,omitempty"`
}

// traced tells the requests whose spans are recorded. Scrapes and probes
// still get a trace ID but no span: coming every few seconds, they would
// drown the real traces.
func traced(r *http.Request) bool {
	switch r.URL.Path {
	case "/metrics", "/healthz":
		return false
	}
	return true
}

// Wrap returns next instrumented and traced. next should be a
// *http.ServeMux (or anything that sets Request.Pattern) for routes to be
// labelled and spans named.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		tr := TraceID(r.Context())
		w.Header().Set(TraceIDHeader, tr)
		rec := &recorder{ResponseWriter: w}
		// The mux records the matched pattern on the request it is given,
		// and the tracing middleware outside reads it from the same
		// request: pass r on as it is.
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					m.observe(r, rec, start, tr)
					panic(p)
				}
				m.logger.Error("handler panic", "trace_id", tr, "route", r.Pattern, "panic", fmt.Sprint(p))
				sdk.SpanFromContext(r.Context()).SetError(fmt.Errorf("panic: %v", p))
				if !rec.wroteHeader {
					api.WriteError(rec, http.StatusInternalServerError, api.Error{Error: "internal error", Code: api.CodeInternal})
				}
			}
			m.observe(r, rec, start, tr)
		}()
		next.ServeHTTP(rec, r)
	})
	return sdk.Middleware(m.tracer, inner, sdk.HTTPOptions{Filter: traced})
}

func (m *Middleware) observe(r *http.Request, rec *recorder, start time.Time, traceID string) {
	elapsed := time.Since(start)
	route := r.Pattern
	if route == "" {
		route = UnmatchedRoute
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK // the handler wrote nothing: net/http sends 200
	}
	m.requests.WithLabelValues(m.service, route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(m.service, route).Observe(elapsed.Seconds())

	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(AccessLine{
		Time:       start.UTC(),
		Service:    m.service,
		Method:     r.Method,
		Route:      route,
		Path:       r.URL.Path,
		Status:     status,
		DurationMS: float64(elapsed.Microseconds()) / 1000,
		Bytes:      rec.bytes,
		TraceID:    traceID,
		Remote:     r.RemoteAddr,
		RequestID:  requestID(r.Header.Get(RequestIDHeader)),
	})
	m.accessMu.Lock()
	_, _ = m.accessLog.Write(buf.Bytes()) // a broken log sink must not fail requests
	m.accessMu.Unlock()
}

// recorder remembers what the handler sent.
type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	bytes       int64
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = http.StatusOK, true
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
