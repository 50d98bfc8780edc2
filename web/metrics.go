package web

import (
	"fmt"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are kplane's own HTTP metrics, labelled by route pattern (never
// the raw path) to keep cardinality bounded.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kplane_http_requests_total",
			Help: "HTTP requests served by kplane, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kplane_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern. Event streams are not observed.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (s *Server) countRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := routeLabel(c)
	s.metrics.requests.WithLabelValues(route, strconv.Itoa(c.Writer.Status())).Inc()
	if !c.GetBool(keyStreaming) {
		s.metrics.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	}
}
