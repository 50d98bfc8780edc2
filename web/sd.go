package web

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/kplane/kplane/auth"
)

// Prometheus service discovery: GET /api/v1/sd/prometheus answers
// Prometheus's HTTP SD format (http_sd_configs), so that Prometheus
// scrapes exactly the instances the registry holds, without a file kept in
// step by hand. Prometheus sends the token with its `authorization:`
// setting; a viewer's is enough.

// sdGroup is one HTTP SD target group. Each instance is its own group:
// the labels differ per instance.
type sdGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

func (s *Server) sdRoutes(api *gin.RouterGroup) {
	api.GET("/sd/prometheus", s.requireRead(auth.Viewer), s.apiPrometheusSD)
}

// apiPrometheusSD lists every registered instance with an address as a
// target labelled service, env, instance (the instance ID, which replaces
// Prometheus's default host:port) and version; ?env= keeps one
// environment. Labels without a value are left out, as Prometheus drops
// empty labels anyway. The answer is always an array, [] when nothing is
// registered: Prometheus treats anything else as a failed refresh.
func (s *Server) apiPrometheusSD(c *gin.Context) {
	env := c.Query("env")
	out := []sdGroup{}
	for _, svc := range s.sortedServices() {
		for _, in := range svc.Instances {
			if in.Addr == "" || (env != "" && in.Env != env) {
				continue
			}
			labels := map[string]string{"service": svc.Name, "instance": in.ID}
			if in.Env != "" {
				labels["env"] = in.Env
			}
			if in.Version != "" {
				labels["version"] = in.Version
			}
			out = append(out, sdGroup{Targets: []string{in.Addr}, Labels: labels})
		}
	}
	c.JSON(http.StatusOK, out)
}
