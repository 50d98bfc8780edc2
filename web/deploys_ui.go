package web

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kplane/kplane/signalman"
)

// deployPageSize is how many deploys the deploys page lists.
const deployPageSize = 50

// deployUIRoutes registers the deploys page and a deploy's page, whose
// steps stream live over /api/v1/deploys/{id}/events. Without a deployer
// the deploys page says that no orchestrator is configured.
func (s *Server) deployUIRoutes(ui *gin.RouterGroup) {
	ui.GET("/deploys", s.deploysPage)
	if s.cfg.Deploys != nil {
		ui.GET("/deploys/:id", s.deployPage)
	}
}

type deployRow struct {
	signalman.Deploy
	When string // how long ago it started
	Took string // how long it ran; empty while it runs
}

type deploysView struct {
	// Enabled is false when no orchestrator is configured.
	Enabled  bool
	Service  string
	Env      string
	Deploys  []deployRow
	Running  int
	Services []string
	Envs     []string
}

func (s *Server) deployRow(d signalman.Deploy, now time.Time) deployRow {
	r := deployRow{Deploy: d, When: ago(now, d.Started)}
	if !d.Ended.IsZero() {
		r.Took = shortDuration(d.Ended.Sub(d.Started))
	}
	return r
}

// shortDuration renders a step's or deploy's duration as deploys.js does:
// milliseconds under a second, else seconds.
func shortDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < 10*time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
}

type deployStep struct {
	signalman.Step
	At, Took string
}

func (s *Server) deploysPage(c *gin.Context) {
	v := deploysView{Enabled: s.cfg.Deploys != nil, Service: c.Query("service"), Env: c.Query("env")}
	if !v.Enabled {
		s.render(c, http.StatusOK, "deploys", pageData{Title: "Deploys", Nav: "deploys", Page: v})
		return
	}
	ctx := c.Request.Context()
	all, err := s.cfg.Deploys.List(ctx, signalman.Target{}, deployPageSize*4)
	if err != nil {
		s.failPage(c, err)
		return
	}
	seenSvc, seenEnv := map[string]bool{}, map[string]bool{}
	now := s.now()
	for _, d := range all {
		if !seenSvc[d.Target.Service] {
			seenSvc[d.Target.Service] = true
			v.Services = append(v.Services, d.Target.Service)
		}
		if !seenEnv[d.Target.Env] {
			seenEnv[d.Target.Env] = true
			v.Envs = append(v.Envs, d.Target.Env)
		}
		if (v.Service != "" && d.Target.Service != v.Service) || (v.Env != "" && d.Target.Env != v.Env) || len(v.Deploys) == deployPageSize {
			continue
		}
		if !d.State.Done() {
			v.Running++
		}
		v.Deploys = append(v.Deploys, s.deployRow(d, now))
	}
	s.render(c, http.StatusOK, "deploys", pageData{Title: "Deploys", Nav: "deploys", Page: v})
}

type deployView struct {
	deployRow
	Steps []deployStep
	// Events is the URL of the live steps while the deploy runs.
	Events string
}

func (s *Server) deployPage(c *gin.Context) {
	d, err := s.cfg.Deploys.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.failPage(c, err)
		return
	}
	v := deployView{deployRow: s.deployRow(d, s.now())}
	for _, st := range d.Steps {
		v.Steps = append(v.Steps, deployStep{Step: st, At: st.Time.UTC().Format("15:04:05.000"), Took: shortDuration(st.Took)})
	}
	if !d.State.Done() {
		v.Events = "/api/v1/deploys/" + url.PathEscape(d.ID) + "/events"
	}
	s.render(c, http.StatusOK, "deploy", pageData{Title: "Deploy " + d.Target.String() + " " + d.Version, Nav: "deploys", Page: v})
}
