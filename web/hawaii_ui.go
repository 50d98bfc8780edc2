package web

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kplane/kplane/hawaii"
)

// buildPageSize is how many builds one page of /builds lists.
const buildPageSize = 25

// pickerBuilds is how many of the newest builds the service picker looks
// at; versionScan bounds how far back the builds page looks for the
// version in alpha and QA.
const (
	pickerBuilds = 50
	versionScan  = hawaii.MaxLimit
)

// latestPasser is the optional part of a build store that finds the
// newest build that passed a stage without listing builds; both of
// hawaii's stores have it.
type latestPasser interface {
	LatestPassed(ctx context.Context, service string, st hawaii.Stage) (*hawaii.Build, error)
}

// prodReader is the optional part of a Pipeline that knows which build
// runs in prod; *hawaii.Pipeline has it. Without it the builds page shows
// the newest build whose prod stage passed.
type prodReader interface {
	InProd(ctx context.Context, service string) (*hawaii.Build, error)
}

// hawaiiUIRoutes registers the builds and build pages when a build store
// is configured, and the review page and promotion when a pipeline is
// too: without one, builds CI reports are still listed and shown, and the
// review page says that promotion needs a pipeline. Without a build store
// /builds says what is coming.
func (s *Server) hawaiiUIRoutes(ui *gin.RouterGroup) {
	if s.cfg.Builds.Store == nil {
		ui.GET("/builds", s.comingPage(comingBuilds))
		return
	}
	ui.GET("/builds", s.buildsPage)
	ui.GET("/builds/:id", s.buildPage)
	if s.cfg.Pipeline == nil {
		ui.GET("/builds/:id/review", s.noPipelinePage)
		ui.POST("/builds/:id/promote", s.requireCSRF, s.noPipelinePage)
		return
	}
	ui.GET("/builds/:id/review", s.reviewPage)
	ui.POST("/builds/:id/promote", s.requireCSRF, s.promoteForm)
}

// noPipelinePage answers the review and promote pages of a kplane without
// a pipeline: the build exists, promotion does not.
func (s *Server) noPipelinePage(c *gin.Context) {
	id, err := buildID(c)
	if err != nil {
		s.failPage(c, err)
		return
	}
	b, err := s.cfg.Builds.Store.Build(c.Request.Context(), id)
	if err != nil {
		s.failBuildPage(c, err)
		return
	}
	s.render(c, http.StatusNotFound, "nopipeline", pageData{Title: "Review " + b.Service + " " + b.Version, Nav: "builds", Page: b})
}

// failBuildPage shows a store or pipeline error as a page.
func (s *Server) failBuildPage(c *gin.Context, err error) {
	if errors.Is(err, hawaii.ErrNotFound) {
		err = fmt.Errorf("%w: %w", errNotFound, err)
	}
	s.failPage(c, err)
}

type envVersion struct {
	Env     hawaii.Stage
	Version string
	BuildID int64
}

type buildRow struct {
	hawaii.BuildView
	Tests hawaii.TestCounts
	When  string
}

type buildsView struct {
	// Pipeline is false when no pipeline is configured: builds are only
	// listed, never tested or promoted.
	Pipeline bool
	Services []string
	Service  string
	Current  []envVersion
	Builds   []buildRow
	// Older is the query of the next page, empty on the last one
	// (url.Values.Encode output, safe in an href).
	Older template.URL
	// First is false on every page after the first.
	First bool
}

func (s *Server) buildsPage(c *gin.Context) {
	ctx := c.Request.Context()
	store := s.cfg.Builds.Store
	v := buildsView{Service: c.Query("service"), First: c.Query("before") == "", Pipeline: s.cfg.Pipeline != nil}
	var before int64
	if b := c.Query("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			s.failPage(c, fmt.Errorf("before %q is not a build ID: %w", b, errMalformed))
			return
		}
		before = n
	}
	// The picker offers registered services, those with a pipeline and
	// those with recent builds: reading every build's service would cost
	// a scan of the whole table on every page.
	recent, err := store.Builds(ctx, hawaii.BuildQuery{Limit: pickerBuilds})
	if err != nil {
		s.failBuildPage(c, err)
		return
	}
	for _, svc := range s.services.Services() {
		v.Services = append(v.Services, svc.Name)
	}
	if ps, ok := s.cfg.Pipeline.(interface{ Services() []string }); ok {
		v.Services = append(v.Services, ps.Services()...)
	}
	if v.Service != "" {
		v.Services = append(v.Services, v.Service)
	}
	for _, b := range recent {
		v.Services = append(v.Services, b.Service)
	}
	slices.Sort(v.Services)
	v.Services = slices.Compact(v.Services)
	if v.Service == "" && len(recent) > 0 {
		v.Service = recent[0].Service
	}
	if v.Service == "" {
		s.render(c, http.StatusOK, "builds", pageData{Title: "Builds", Nav: "builds", Page: v})
		return
	}
	page, err := store.Builds(ctx, hawaii.BuildQuery{Service: v.Service, Before: before, Limit: buildPageSize + 1})
	if err != nil {
		s.failBuildPage(c, err)
		return
	}
	if len(page) > buildPageSize {
		page = page[:buildPageSize]
		q := url.Values{"service": {v.Service}, "before": {strconv.FormatInt(page[len(page)-1].ID, 10)}}
		v.Older = template.URL(q.Encode())
	}
	now := s.now()
	for _, b := range page {
		row := buildRow{BuildView: b, When: ago(now, b.ReportedAt)}
		for _, st := range b.Stages {
			row.Tests = row.Tests.Add(st.Tests)
		}
		v.Builds = append(v.Builds, row)
	}
	if v.Pipeline {
		var newest []hawaii.BuildView
		if before == 0 {
			newest = page
		}
		v.Current, err = s.currentVersions(ctx, v.Service, newest)
	}
	if err != nil {
		s.failBuildPage(c, err)
		return
	}
	s.render(c, http.StatusOK, "builds", pageData{Title: "Builds", Nav: "builds", Page: v})
}

// currentVersions finds the version in each environment: for alpha and
// QA the newest build that passed there, for prod the pipeline's answer.
//
// newest, when not nil, are the service's newest builds, already read:
// they are looked at first.
func (s *Server) currentVersions(ctx context.Context, service string, newest []hawaii.BuildView) ([]envVersion, error) {
	out := make([]envVersion, len(hawaii.Stages))
	for i, st := range hawaii.Stages {
		out[i].Env = st
	}
	// Page back until every environment has a version: the newest build
	// is most often green everywhere already. The pipeline knows prod.
	pr, hasProd := s.cfg.Pipeline.(prodReader)
	scan := out
	if hasProd {
		scan = out[:len(out)-1]
	}
	if lp, ok := s.cfg.Builds.Store.(latestPasser); ok {
		// The store answers from its stage records without reading builds.
		for i := range scan {
			b, err := lp.LatestPassed(ctx, service, scan[i].Env)
			if err != nil {
				return nil, err
			}
			if b != nil {
				scan[i].Version, scan[i].BuildID = b.Version, b.ID
			}
		}
		newest = nil
		scan = nil
	}
	missing := len(scan)
	var before int64
	for scanned := 0; missing > 0 && scanned < versionScan; {
		bs, want := newest, len(newest)
		newest = nil
		if bs == nil {
			var err error
			want = hawaii.DefaultLimit
			if bs, err = s.cfg.Builds.Store.Builds(ctx, hawaii.BuildQuery{Service: service, Before: before, Limit: want}); err != nil {
				return nil, err
			}
		}
		for _, b := range bs {
			for i := range scan {
				if scan[i].BuildID == 0 && b.Stage(scan[i].Env).Status == hawaii.StatusPassed {
					scan[i].Version, scan[i].BuildID = b.Version, b.ID
					missing--
				}
			}
		}
		if len(bs) < want || len(bs) == 0 {
			break
		}
		scanned += len(bs)
		before = bs[len(bs)-1].ID
	}
	if hasProd {
		b, err := pr.InProd(ctx, service)
		if err != nil {
			return nil, err
		}
		prod := &out[len(out)-1]
		prod.Version, prod.BuildID = "", 0
		if b != nil {
			prod.Version, prod.BuildID = b.Version, b.ID
		}
	}
	return out, nil
}

type stepRow struct {
	hawaii.Step
	Took string
}

type stageView struct {
	hawaii.StageRecord
	Steps []stepRow
}

// testPageSize is how many test cases one page of a build page shows.
const testPageSize = 50

type testsView struct {
	hawaii.ResultPage
	// Stage is the stage shown, "" for all; Stages offers the filter.
	Stage  hawaii.Stage
	Stages []hawaii.Stage
	// Page and Pages count from 1; Prev and Next are query strings,
	// empty at either end.
	Page, Pages int
	Prev, Next  template.URL // url.Values.Encode output
	First, Last int          // 1-based positions of the cases shown
}

type buildView struct {
	hawaii.BuildView
	Pipeline   bool
	Stages     []stageView
	Tests      testsView
	Promotions []hawaii.Promotion
}

func (s *Server) buildPage(c *gin.Context) {
	id, err := buildID(c)
	if err != nil {
		s.failPage(c, err)
		return
	}
	st := hawaii.Stage(c.Query("tests"))
	if st != "" && !st.Valid() {
		s.failPage(c, fmt.Errorf("tests=%q: show alpha, qa, prod or all: %w", st, errMalformed))
		return
	}
	page := 1
	if p := c.Query("page"); p != "" {
		if page, err = strconv.Atoi(p); err != nil || page < 1 {
			s.failPage(c, fmt.Errorf("page %q is not a page number: %w", p, errMalformed))
			return
		}
	}
	ctx := c.Request.Context()
	b, res, err := buildResults(ctx, s.cfg.Builds.Store, id, hawaii.ResultQuery{Stage: st, Offset: (page - 1) * testPageSize, Limit: testPageSize})
	if err != nil {
		s.failBuildPage(c, err)
		return
	}
	v := buildView{BuildView: b, Pipeline: s.cfg.Pipeline != nil}
	if s.cfg.Pipeline != nil {
		if v.Promotions, err = s.cfg.Pipeline.Promotions(ctx, id); err != nil {
			s.failBuildPage(c, err)
			return
		}
	}
	for _, st := range b.Stages {
		sv := stageView{StageRecord: st}
		for _, step := range st.Steps {
			row := stepRow{Step: step}
			if d := step.Duration(); d > 0 {
				row.Took = d.Round(time.Millisecond).String()
			}
			sv.Steps = append(sv.Steps, row)
		}
		v.Stages = append(v.Stages, sv)
	}
	v.Tests = testsView{ResultPage: res, Stage: st, Stages: hawaii.Stages, Page: page,
		Pages: max(1, (res.Total+testPageSize-1)/testPageSize)}
	if len(res.Cases) > 0 {
		v.Tests.First, v.Tests.Last = res.Offset+1, res.Offset+len(res.Cases)
	}
	q := func(p int) template.URL {
		vals := url.Values{"page": {strconv.Itoa(p)}}
		if st != "" {
			vals.Set("tests", string(st))
		}
		return template.URL(vals.Encode())
	}
	if page > 1 {
		v.Tests.Prev = q(min(page-1, v.Tests.Pages))
	}
	if res.Next() >= 0 {
		v.Tests.Next = q(page + 1)
	}
	s.render(c, http.StatusOK, "build", pageData{Title: b.Service + " " + b.Version, Nav: "builds", Page: v})
}

type reviewView struct {
	hawaii.Review
	// Rollout is the build's latest promotion into prod, if any.
	Rollout *hawaii.Promotion
	// Events is the URL of the rollout's live steps, empty when no
	// deployer is configured.
	Events string
	// Error says why the promotion just asked for was refused.
	Error string
}

func (s *Server) reviewPage(c *gin.Context) {
	id, err := buildID(c)
	if err != nil {
		s.failPage(c, err)
		return
	}
	s.showReview(c, id, http.StatusOK, "")
}

func (s *Server) showReview(c *gin.Context, id int64, status int, msg string) {
	r, err := s.cfg.Pipeline.Review(c.Request.Context(), id, identity(c), false)
	if err != nil {
		s.failBuildPage(c, err)
		return
	}
	v := reviewView{Review: r, Error: msg}
	prs, err := s.cfg.Pipeline.Promotions(c.Request.Context(), id)
	if err != nil {
		s.failBuildPage(c, err)
		return
	}
	for _, p := range prs {
		if p.Env == string(hawaii.StageProd) && (v.Rollout == nil || p.ID > v.Rollout.ID) {
			v.Rollout = &p
		}
	}
	if v.Rollout != nil && v.Rollout.DeployID != "" && s.cfg.Deploys != nil {
		v.Events = "/api/v1/deploys/" + url.PathEscape(v.Rollout.DeployID) + "/events"
	}
	s.render(c, status, "review", pageData{Title: "Review " + r.Candidate.Service + " " + r.Candidate.Version, Nav: "builds", Page: v})
}

// promoteForm promotes a build to prod as the signed-in user and goes
// back to the review page, which then follows the rollout.
func (s *Server) promoteForm(c *gin.Context) {
	id, err := buildID(c)
	if err != nil {
		s.failPage(c, err)
		return
	}
	who := identity(c)
	pr, err := s.cfg.Pipeline.Promote(c.Request.Context(), id, who, false)
	var be *hawaii.BlockedError
	if errors.As(err, &be) {
		status := http.StatusConflict
		if be.Only(hawaii.BlockRole, hawaii.BlockCommitter) {
			status = http.StatusForbidden
		}
		s.showReview(c, id, status, "Not promoted: "+be.Error())
		return
	}
	if err != nil {
		s.failBuildPage(c, err)
		return
	}
	requestLogger(c, s.log).Info("build promoted", "build", id, "version", pr.Version, "deploy", pr.DeployID, "user", who.User)
	c.Redirect(http.StatusSeeOther, fmt.Sprintf("/builds/%d/review", id))
}

// ago says how long before now t was, coarsely.
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case t.IsZero():
		return ""
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
}
