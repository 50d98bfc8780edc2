package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/registry"
)

// DefaultMaxBodyBytes bounds request bodies when Config.MaxBodyBytes is
// zero: ample for JSON API calls and forms, small enough that a stray
// upload cannot exhaust memory.
const DefaultMaxBodyBytes = 1 << 20

// readyTimeout bounds one /readyz check so that a hung dependency makes the
// probe fail rather than hang.
const readyTimeout = 2 * time.Second

// heartbeatInterval is how often an idle event stream sends a comment line,
// so that proxies and browsers do not drop it as dead.
const heartbeatInterval = 15 * time.Second

// Timeouts of the http.Server that HTTPServer returns. A slow or stalled
// client cannot hold a connection and its goroutine for longer than these.
// Event streams are meant to stay open: openStream lifts the write
// deadline of its connection, and the read deadline does not end a
// handler that has read its request (TestStreamsOutliveServerTimeouts).
const (
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout = 10 * time.Second
	// ReadTimeout bounds reading a whole request, body included: ample
	// for the largest span batch (IngestMaxBodyBytes) on a slow link.
	ReadTimeout = 2 * time.Minute
	// WriteTimeout bounds a handler and the writing of its answer; the
	// slowest handler, a manual scale, waits at most 30 s for instances.
	WriteTimeout = 2 * time.Minute
	// IdleTimeout closes keep-alive connections idle for this long.
	IdleTimeout = 2 * time.Minute
)

// ServiceSource is what web needs from the registry: the current services
// and a coalescing change signal.
//
// Services returns a snapshot the caller may read but must not modify.
// Subscribe returns a channel that receives a value some time after any
// change (several changes may be coalesced into one value) and a cancel
// function that releases the subscription; it is safe to call once. A
// source that stops may close the channel, which ends open event streams.
type ServiceSource interface {
	Services() []registry.Service
	Subscribe() (<-chan struct{}, func())
}

// Config configures a Server. Auth is required; every other zero value is
// usable.
type Config struct {
	// Logger receives one line per request and every failure. Nil discards.
	Logger *slog.Logger
	// Auth checks tokens and sessions. Required.
	Auth *auth.Service
	// Services feeds the services API and page. Nil shows no services.
	Services ServiceSource
	// Ready reports whether kplane can serve (etcd reachable, store open).
	// Nil is always ready.
	Ready func(context.Context) error
	// Registerer receives web's own request metrics. Nil registers nothing.
	Registerer prometheus.Registerer
	// Gatherer is what /metrics exposes. Nil exposes an empty registry.
	Gatherer prometheus.Gatherer
	// Version is shown in the console footer and /healthz.
	Version string
	// SecureCookies marks cookies Secure even on plain-HTTP requests, for
	// deployments behind a TLS-terminating proxy. Requests that arrive over
	// TLS get Secure cookies regardless.
	SecureCookies bool
	// MaxBodyBytes bounds every request body; larger requests get 413.
	// Zero is DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// Policies, Decisions, Scaler and Observations feed the autoscaler API
	// and page. Without Policies and Decisions the page says the autoscaler
	// is not configured; Decisions alone serves the decisions API; without
	// Scaler there is no manual scale route; without Observations the page
	// shows no charts.
	Policies     Policies
	Decisions    Decisions
	Scaler       ManualScaler
	Observations Observations
	// Now is the clock for uptimes. Nil is time.Now.
	Now func() time.Time
	// Traces answers trace lookups, searches and the dependency graph.
	// Nil makes those routes answer 503 (no span store).
	Traces TraceReader
	// Ingester receives decoded spans from POST /v1/traces (OTLP) and
	// POST /api/v2/spans (Zipkin). Nil leaves both routes unregistered.
	Ingester SpanIngester
	// Deploys runs rolling deploys and destroys environments. Nil leaves
	// the deploy and environment routes unregistered.
	Deploys Deploys
	// Pipeline reviews, promotes and rolls back builds and locks
	// environments. Nil leaves those routes unregistered.
	Pipeline Pipeline
	// Builds configures the build report, test result and audit log API;
	// a nil Builds.Store leaves those routes unregistered.
	Builds BuildAPI
	// Login bounds failed sign-ins; the zero value is the defaults.
	Login LoginLimits
}

// Server serves kplane's HTTP API and console.
type Server struct {
	cfg       Config
	log       *slog.Logger
	auth      *auth.Service
	services  ServiceSource
	ready     func(context.Context) error
	now       func() time.Time
	maxBody   int64
	heartbeat time.Duration
	// bodyLimits overrides maxBody per route (gin's FullPath); written
	// only while routes are registered, in New.
	bodyLimits map[string]int64
	loginLimit *loginLimiter

	engine  *gin.Engine
	pages   *pages
	metrics *metrics

	// streamsDone ends every open event stream on shutdown: http.Server's
	// Shutdown waits for connections to go idle, which a stream never does.
	streamsDone chan struct{}
	closeOnce   sync.Once
}

// New builds a Server. It fails if Auth is missing, a template does not
// parse or the metrics cannot be registered (for example twice on one
// registry).
func New(cfg Config) (*Server, error) {
	if cfg.Auth == nil {
		return nil, errors.New("web: Config.Auth is required")
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("web: negative MaxBodyBytes %d", cfg.MaxBodyBytes)
	}
	s := &Server{
		cfg:         cfg,
		log:         cfg.Logger,
		auth:        cfg.Auth,
		services:    cfg.Services,
		ready:       cfg.Ready,
		now:         cfg.Now,
		maxBody:     cfg.MaxBodyBytes,
		heartbeat:   heartbeatInterval,
		bodyLimits:  map[string]int64{},
		loginLimit:  newLoginLimiter(cfg.Login),
		streamsDone: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.services == nil {
		s.services = noServices{}
	}
	if s.ready == nil {
		s.ready = func(context.Context) error { return nil }
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxBody == 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	var err error
	if s.pages, err = loadPages(); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	if s.metrics, err = newMetrics(cfg.Registerer); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s.engine = s.routes()
	return s, nil
}

// Handler returns the HTTP handler serving every route.
func (s *Server) Handler() http.Handler { return s.engine }

// HTTPServer returns an http.Server for Handler with kplane's timeouts,
// its errors logged, and CloseStreams registered to run on Shutdown. The
// caller may set BaseContext or TLSConfig before serving.
func (s *Server) HTTPServer() *http.Server {
	hs := &http.Server{
		Handler:           s.engine,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	hs.RegisterOnShutdown(s.CloseStreams)
	return hs
}

// CloseStreams ends every open server-sent-event stream and makes new ones
// end at once. Register it with http.Server.RegisterOnShutdown so that a
// graceful shutdown is not held up by open consoles.
func (s *Server) CloseStreams() {
	s.closeOnce.Do(func() { close(s.streamsDone) })
}

func (s *Server) routes() *gin.Engine {
	// Release mode silences gin's debug printing; it is process-wide, but
	// kplane never wants gin's own output.
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	// Without this gin believes X-Forwarded-For from anyone, so the logged
	// client address could be forged.
	_ = e.SetTrustedProxies(nil)
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true

	e.Use(s.requestID, s.logRequests, s.countRequests, s.recoverPanics, s.securityHeaders, s.limitBody)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	gatherer := s.cfg.Gatherer
	if gatherer == nil {
		gatherer = prometheus.NewRegistry()
	}
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{ErrorLog: slogPromLogger{s.log}})))

	api := e.Group("/api/v1", noStore)
	api.GET("/services", s.requireRead(auth.Viewer), s.apiServices)
	api.GET("/users", s.requireRole(auth.Admin), s.apiListUsers)
	api.POST("/users", s.requireRole(auth.Admin), s.apiCreateUser)
	api.POST("/tokens", s.requireRole(auth.Admin), s.apiCreateToken)

	e.GET("/static/*filepath", s.static())
	e.GET("/login", noStore, s.loginPage)
	e.POST("/login", noStore, s.login)

	ui := e.Group("/", noStore, s.requireSession)
	ui.GET("/", func(c *gin.Context) { c.Redirect(http.StatusFound, "/services") })
	ui.GET("/services", s.servicesPage)
	ui.GET("/ui/events/services", s.serviceEvents)
	s.hawaiiUIRoutes(ui)
	s.deployUIRoutes(ui)
	// Each feature registers its own API and console routes, in its own
	// file.
	s.ingestRoutes(e)
	s.traceRoutes(e, api, ui)
	s.autoscalerRoutes(e, api, ui)
	s.deployRoutes(api)
	s.buildRoutes(api)
	s.pipelineRoutes(api)
	s.sdRoutes(api)
	ui.POST("/logout", s.requireCSRF, s.logout)

	e.NoRoute(s.notFound)
	e.NoMethod(func(c *gin.Context) { s.fail(c, errMethodNotAllowed) })
	return e
}

func (s *Server) healthz(c *gin.Context) {
	c.String(http.StatusOK, "ok\n")
}

func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		// Readiness reasons are for operators and probes, and name the
		// dependency that is missing, so they are shown as they are.
		c.JSON(http.StatusServiceUnavailable, errorBody{Error: "not ready: " + err.Error(), Code: "unavailable"})
		return
	}
	c.String(http.StatusOK, "ready\n")
}

func noStore(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
}

type noServices struct{}

func (noServices) Services() []registry.Service { return nil }

func (noServices) Subscribe() (<-chan struct{}, func()) { return nil, func() {} }

// slogPromLogger lets promhttp report gathering errors through slog.
type slogPromLogger struct{ log *slog.Logger }

func (l slogPromLogger) Println(v ...any) { l.log.Error("serve metrics", "err", fmt.Sprint(v...)) }
