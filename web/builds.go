package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/hawaii"
)

// BuildAPI configures the build report, test result and audit log API.
type BuildAPI struct {
	// Store keeps builds, results and the audit log. Nil leaves the
	// build and audit routes unregistered.
	Store hawaii.Store
	// Known lists the services builds may be reported for: registered
	// services and services with a configured pipeline. Nil accepts every
	// service.
	Known func(ctx context.Context) ([]string, error)
	// Secrets verify signed requests (GitHub X-Hub-Signature-256 or
	// Standard Webhooks). Empty accepts only API tokens.
	Secrets []hawaii.Secret
	// Rate and Burst bound build reports and result uploads, from all
	// senders together; over it a request gets 429 with Retry-After.
	// Zero is DefaultBuildRate and DefaultBuildBurst.
	Rate  rate.Limit
	Burst int
	// MaxResultBytes bounds one JUnit upload; zero is
	// DefaultMaxResultBytes.
	MaxResultBytes int64
}

// Defaults of BuildAPI.
const (
	DefaultBuildRate      = rate.Limit(20)
	DefaultBuildBurst     = 40
	DefaultMaxResultBytes = 32 << 20
)

var errRateLimited = errors.New("too many build reports: retry after the time in Retry-After")

// keyRawBody holds a request body that signature checking has read.
const keyRawBody = "kplane.rawBody"

// buildRoutes registers the build and audit API when a build store is
// configured.
//
// Roles: reporting builds and results needs a developer token or a valid
// webhook signature; reading builds and the audit log needs a viewer.
func (s *Server) buildRoutes(api *gin.RouterGroup) {
	cfg := s.cfg.Builds
	if cfg.Store == nil {
		return
	}
	if cfg.Rate == 0 {
		cfg.Rate, cfg.Burst = DefaultBuildRate, DefaultBuildBurst
	}
	if cfg.MaxResultBytes == 0 {
		cfg.MaxResultBytes = DefaultMaxResultBytes
	}
	b := &buildAPI{s: s, cfg: cfg, limiter: rate.NewLimiter(cfg.Rate, max(cfg.Burst, 1))}
	s.bodyLimits["/api/v1/builds/:id/results"] = cfg.MaxResultBytes
	api.POST("/builds", b.limit, b.authenticate, b.report)
	api.GET("/builds", s.requireRead(auth.Viewer), b.list)
	api.GET("/builds/:id", s.requireRead(auth.Viewer), b.get)
	api.POST("/builds/:id/results", b.limit, b.authenticate, b.results)
	api.GET("/audit", s.requireRead(auth.Viewer), b.audit)
}

type buildAPI struct {
	s       *Server
	cfg     BuildAPI
	limiter *rate.Limiter
}

// limit refuses requests over the rate with 429 and how long to wait.
func (b *buildAPI) limit(c *gin.Context) {
	r := b.limiter.ReserveN(b.s.now(), 1)
	if !r.OK() {
		b.s.fail(c, errRateLimited)
		return
	}
	if d := r.DelayFrom(b.s.now()); d > 0 {
		r.CancelAt(b.s.now())
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
		b.s.fail(c, errRateLimited)
		return
	}
	c.Next()
}

// authenticate admits a developer's Bearer token or, without an
// Authorization header, a body signed with one of the webhook secrets.
// A signed request acts as "webhook:<secret name>" with the developer
// role.
func (b *buildAPI) authenticate(c *gin.Context) {
	if _, present := bearerToken(c.Request); present || !hawaii.IsSigned(c.Request.Header) {
		if !present {
			b.s.fail(c, fmt.Errorf("send Authorization: Bearer <token> or sign the body: %w", auth.ErrUnauthenticated))
			return
		}
		b.s.requireRole(auth.Developer)(c)
		return
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		b.s.fail(c, err)
		return
	}
	signed, err := hawaii.VerifySignature(c.Request.Header, body, b.cfg.Secrets, b.s.now())
	if err != nil {
		requestLogger(c, b.s.log).Info("refused webhook signature", "err", err)
		b.s.fail(c, err)
		return
	}
	c.Set(keyRawBody, body)
	if signed.DeliveryID != "" {
		c.Set(keyDelivery, signed.DeliveryID)
	}
	b.s.admit(c, auth.Identity{User: "webhook:" + signed.Secret, Role: auth.Developer}, auth.Developer)
}

const keyDelivery = "kplane.delivery"

func rawBody(c *gin.Context) ([]byte, error) {
	if v, ok := c.Get(keyRawBody); ok {
		return v.([]byte), nil
	}
	return io.ReadAll(c.Request.Body)
}

// claimDelivery returns false if the request's webhook delivery ID was
// applied already (a retry or a replay). release forgets the claim, for
// when applying fails.
func (b *buildAPI) claimDelivery(c *gin.Context) (first bool, release func(), err error) {
	v, ok := c.Get(keyDelivery)
	if !ok {
		return true, func() {}, nil
	}
	id := v.(string)
	first, err = b.cfg.Store.ClaimDelivery(c.Request.Context(), id, b.s.now())
	if err != nil {
		return false, nil, err
	}
	return first, func() {
		// The request's context may be what failed; the release must
		// still happen for the sender's retry to be applied.
		if err := b.cfg.Store.ReleaseDelivery(context.WithoutCancel(c.Request.Context()), id); err != nil {
			requestLogger(c, b.s.log).Error("release webhook delivery", "delivery_id", id, "err", err)
		}
	}, nil
}

// reportBody is a build report as CI sends it. Timestamps are strings so
// that a bad one is reported by field name.
type reportBody struct {
	Service     string         `json:"service"`
	Version     string         `json:"version"`
	Image       string         `json:"image"`
	SCMRevision string         `json:"scmRevision"`
	Committer   string         `json:"committer"`
	Timestamp   string         `json:"timestamp"`
	GUID        string         `json:"guid"`
	Changelog   []changelogRow `json:"changelog"`
}

type changelogRow struct {
	ID      string `json:"id"`
	Author  string `json:"author"`
	Message string `json:"message"`
	Time    string `json:"time"`
}

// decodeReport turns a request body into a Build, naming every bad field.
func decodeReport(body []byte) (hawaii.Build, error) {
	var r reportBody
	if err := json.Unmarshal(body, &r); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return hawaii.Build{}, &hawaii.FieldsError{What: "build", Fields: map[string]string{te.Field: "must be a JSON " + te.Type.Kind().String()}}
		}
		return hawaii.Build{}, fmt.Errorf("build report is not a JSON object: %w", errMalformed)
	}
	b := hawaii.Build{Service: r.Service, Version: r.Version, Image: r.Image, SCMRevision: r.SCMRevision,
		Committer: r.Committer, GUID: r.GUID}
	bad := map[string]string{}
	if r.Timestamp != "" {
		t, err := time.Parse(time.RFC3339Nano, r.Timestamp)
		if err != nil {
			bad["timestamp"] = "not an RFC 3339 time"
		}
		b.Timestamp = t
	}
	for i, cr := range r.Changelog {
		cm := hawaii.Commit{ID: cr.ID, Author: cr.Author, Message: cr.Message}
		if cr.Time != "" {
			t, err := time.Parse(time.RFC3339Nano, cr.Time)
			if err != nil {
				bad["changelog["+strconv.Itoa(i)+"].time"] = "not an RFC 3339 time"
			}
			cm.Time = t
		}
		b.Changelog = append(b.Changelog, cm)
	}
	if err := b.Validate(); err != nil {
		var fe *hawaii.FieldsError
		if !errors.As(err, &fe) {
			return hawaii.Build{}, err
		}
		// A time that did not parse is zero, which Validate calls
		// missing: the parse reason is the useful one.
		for f, why := range bad {
			fe.Fields[f] = why
		}
		return hawaii.Build{}, fe
	}
	if len(bad) > 0 {
		return hawaii.Build{}, &hawaii.FieldsError{What: "build", Fields: bad}
	}
	return b, nil
}

func (b *buildAPI) checkService(ctx context.Context, service string) error {
	if b.cfg.Known == nil {
		return nil
	}
	known, err := b.cfg.Known(ctx)
	if err != nil {
		return fmt.Errorf("list known services: %w", err)
	}
	if slices.Contains(known, service) {
		return nil
	}
	known = slices.Clone(known)
	slices.Sort(known)
	return &hawaii.UnknownServiceError{Service: service, Known: slices.Compact(known)}
}

func (b *buildAPI) report(c *gin.Context) {
	ctx := c.Request.Context()
	body, err := rawBody(c)
	if err != nil {
		b.s.fail(c, err)
		return
	}
	build, err := decodeReport(body)
	if err != nil {
		b.s.fail(c, err)
		return
	}
	first, release, err := b.claimDelivery(c)
	if err != nil {
		b.s.fail(c, err)
		return
	}
	if !first {
		// A retried or replayed delivery: answer as the first time did.
		v, err := b.cfg.Store.BuildByGUID(ctx, build.GUID)
		if err != nil {
			b.s.fail(c, err)
			return
		}
		c.JSON(http.StatusOK, v)
		return
	}
	if err := b.checkService(ctx, build.Service); err != nil {
		release()
		b.s.fail(c, err)
		return
	}
	who := identity(c)
	build.ReportedAt, build.ReportedBy = b.s.now(), who.User
	stored, created, err := b.cfg.Store.Report(ctx, build)
	if err != nil {
		release()
		b.s.fail(c, err)
		return
	}
	c.Header("Location", "/api/v1/builds/"+strconv.FormatInt(stored.ID, 10))
	if !created {
		v, err := b.cfg.Store.Build(ctx, stored.ID)
		if err != nil {
			b.s.fail(c, err)
			return
		}
		c.JSON(http.StatusOK, v)
		return
	}
	if _, err := b.cfg.Store.Audit(ctx, hawaii.Event{
		Actor: who.User, Action: hawaii.ActionBuildReported, Service: stored.Service, BuildID: stored.ID,
		Details: hawaii.Details(map[string]string{"version": stored.Version, "image": stored.Image, "guid": stored.GUID, "scmRevision": stored.SCMRevision}),
	}); err != nil {
		// The build is stored: answering 500 would make CI retry into a
		// 200. The missing audit entry is an operator's problem, logged.
		requestLogger(c, b.s.log).Error("audit build report", "build_id", stored.ID, "err", err)
	}
	requestLogger(c, b.s.log).Info("build reported", "build_id", stored.ID, "service", stored.Service, "version", stored.Version, "user", who.User)
	v, err := b.cfg.Store.Build(ctx, stored.ID)
	if err != nil {
		b.s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, v)
}

// buildPage is one page of the build list. Next is the before= value of
// the following page, absent on the last one.
type buildPage struct {
	Builds []hawaii.BuildView `json:"builds"`
	Next   string             `json:"next,omitempty"`
}

func queryInt(c *gin.Context, name string) (int64, error) {
	v := c.Query(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q is not a non-negative number: %w", name, v, errMalformed)
	}
	return n, nil
}

func (b *buildAPI) list(c *gin.Context) {
	lim, err := queryInt(c, "limit")
	if err != nil {
		b.s.fail(c, err)
		return
	}
	before, err := queryInt(c, "before")
	if err != nil {
		b.s.fail(c, err)
		return
	}
	q := hawaii.BuildQuery{Service: c.Query("service"), Before: before, Limit: int(min(lim, hawaii.MaxLimit))}
	views, err := b.cfg.Store.Builds(c.Request.Context(), q)
	if err != nil {
		b.s.fail(c, err)
		return
	}
	page := buildPage{Builds: views}
	if page.Builds == nil {
		page.Builds = []hawaii.BuildView{}
	}
	page.Next = nextCursor(views, q.Limit, func(v hawaii.BuildView) int64 { return v.ID })
	c.JSON(http.StatusOK, page)
}

// buildDetail is a build with one page of its test cases, failed and
// errored first. ResultsNext is the offset= of the following page, absent
// on the last one.
type buildDetail struct {
	hawaii.BuildView
	Results        []hawaii.TestCase `json:"results"`
	ResultsTotal   int               `json:"resultsTotal"`
	ResultsFailing int               `json:"resultsFailing"`
	ResultsNext    *int              `json:"resultsNext,omitempty"`
}

// resultQuery reads stage=, offset= and limit= of a build's test cases.
func resultQuery(c *gin.Context) (hawaii.ResultQuery, error) {
	q := hawaii.ResultQuery{Stage: hawaii.Stage(c.Query("stage"))}
	if q.Stage != "" && !q.Stage.Valid() {
		return q, &hawaii.FieldsError{What: "results query", Fields: map[string]string{"stage": "must be alpha, qa or prod"}}
	}
	off, err := queryInt(c, "offset")
	if err != nil {
		return q, err
	}
	lim, err := queryInt(c, "limit")
	if err != nil {
		return q, err
	}
	q.Offset, q.Limit = int(min(off, math.MaxInt32)), int(min(lim, hawaii.MaxLimit))
	return q, nil
}

// buildResults returns the build and the page of its results q selects;
// the store reads that page only, however many cases the build has.
func buildResults(ctx context.Context, store hawaii.Store, id int64, q hawaii.ResultQuery) (hawaii.BuildView, hawaii.ResultPage, error) {
	v, err := store.Build(ctx, id)
	if err != nil {
		return v, hawaii.ResultPage{}, err
	}
	page, err := store.ResultsPage(ctx, id, q)
	if err != nil {
		return v, hawaii.ResultPage{}, err
	}
	return v, page, nil
}

func (b *buildAPI) get(c *gin.Context) {
	id, err := buildID(c)
	if err != nil {
		b.s.fail(c, err)
		return
	}
	q, err := resultQuery(c)
	if err != nil {
		b.s.fail(c, err)
		return
	}
	v, page, err := buildResults(c.Request.Context(), b.cfg.Store, id, q)
	if err != nil {
		b.s.fail(c, err)
		return
	}
	d := buildDetail{BuildView: v, Results: page.Cases, ResultsTotal: page.Total, ResultsFailing: page.Failing}
	if n := page.Next(); n >= 0 {
		d.ResultsNext = &n
	}
	c.JSON(http.StatusOK, d)
}

// resultsReply answers a results upload.
type resultsReply struct {
	BuildID int64             `json:"buildId"`
	Stage   hawaii.Stage      `json:"stage"`
	Added   hawaii.TestCounts `json:"added"`
	Tests   hawaii.TestCounts `json:"tests"`
	// Duplicate is true when the webhook delivery was applied before and
	// this request changed nothing.
	Duplicate bool `json:"duplicate,omitempty"`
}

func (b *buildAPI) results(c *gin.Context) {
	ctx := c.Request.Context()
	id, err := buildID(c)
	if err != nil {
		b.s.fail(c, err)
		return
	}
	st := hawaii.Stage(c.Query("stage"))
	if st != hawaii.StageAlpha && st != hawaii.StageQA {
		b.s.fail(c, &hawaii.FieldsError{What: "results upload", Fields: map[string]string{"stage": "must be alpha or qa"}})
		return
	}
	body, err := rawBody(c)
	if err != nil {
		b.s.fail(c, err)
		return
	}
	cases, err := hawaii.ParseJUnit(id, st, body)
	if err != nil {
		b.s.fail(c, err)
		return
	}
	v, err := b.cfg.Store.Build(ctx, id)
	if err != nil {
		b.s.fail(c, err)
		return
	}
	first, release, err := b.claimDelivery(c)
	if err != nil {
		b.s.fail(c, err)
		return
	}
	if !first {
		c.JSON(http.StatusOK, resultsReply{BuildID: id, Stage: st, Tests: v.Stage(st).Tests, Duplicate: true})
		return
	}
	var added hawaii.TestCounts
	for _, tc := range cases {
		added = added.Add(countOf(tc.Status))
	}
	total, err := b.cfg.Store.AddResults(ctx, id, st, cases)
	if err != nil {
		release()
		b.s.fail(c, err)
		return
	}
	who := identity(c)
	if _, err := b.cfg.Store.Audit(ctx, hawaii.Event{
		Actor: who.User, Action: hawaii.ActionTestsReported, Service: v.Service, BuildID: id, Stage: st,
		Details: hawaii.Details(map[string]any{"added": added, "tests": total}),
	}); err != nil {
		requestLogger(c, b.s.log).Error("audit test results", "build_id", id, "err", err)
	}
	c.JSON(http.StatusCreated, resultsReply{BuildID: id, Stage: st, Added: added, Tests: total})
}

func countOf(s hawaii.TestStatus) hawaii.TestCounts {
	switch s {
	case hawaii.TestPassed:
		return hawaii.TestCounts{Passed: 1}
	case hawaii.TestFailed:
		return hawaii.TestCounts{Failed: 1}
	case hawaii.TestSkipped:
		return hawaii.TestCounts{Skipped: 1}
	default:
		return hawaii.TestCounts{Errored: 1}
	}
}

// auditPage is one page of the audit log, newest first.
type auditPage struct {
	Events []hawaii.Event `json:"events"`
	Next   string         `json:"next,omitempty"`
}

func (b *buildAPI) audit(c *gin.Context) {
	q := hawaii.AuditQuery{Service: c.Query("service"), Actor: c.Query("actor"), Action: hawaii.Action(c.Query("action"))}
	var err error
	var lim int64
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"build", &q.BuildID}, {"before", &q.Before}, {"limit", &lim}} {
		if *p.dst, err = queryInt(c, p.name); err != nil {
			b.s.fail(c, err)
			return
		}
	}
	q.Limit = int(min(lim, hawaii.MaxLimit))
	events, err := b.cfg.Store.AuditEvents(c.Request.Context(), q)
	if err != nil {
		b.s.fail(c, err)
		return
	}
	page := auditPage{Events: events}
	if page.Events == nil {
		page.Events = []hawaii.Event{}
	}
	page.Next = nextCursor(events, q.Limit, func(e hawaii.Event) int64 { return e.ID })
	c.JSON(http.StatusOK, page)
}

// nextCursor is the `before` value of the page after items, a page read
// with limit (0: hawaii.DefaultLimit): the last item's ID when the page is
// full, "" when it was the last page.
func nextCursor[T any](items []T, limit int, id func(T) int64) string {
	if limit == 0 {
		limit = hawaii.DefaultLimit
	}
	if len(items) == 0 || len(items) < limit {
		return ""
	}
	return strconv.FormatInt(id(items[len(items)-1]), 10)
}
