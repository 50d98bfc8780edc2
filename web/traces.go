package web

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/ktrace"
)

// TraceReader is what web reads from the span store; every ktrace.Store
// satisfies it. The contract (concurrency, ownership, errors) is
// ktrace.Store's.
type TraceReader interface {
	Trace(ctx context.Context, id ktrace.TraceID) (ktrace.Trace, error)
	FindTraces(ctx context.Context, q ktrace.Query) ([]ktrace.TraceSummary, error)
	Services(ctx context.Context) ([]string, error)
	Operations(ctx context.Context, service string) ([]string, error)
	Dependencies(ctx context.Context, start, end time.Time) ([]ktrace.Dependency, error)
}

const (
	// defaultLookback is the search window when a query gives no start,
	// as ktrace.Query defines it.
	defaultLookback = time.Hour
	// maxSearchLimit bounds one search: the scatter plot and the list stay
	// readable, and a careless script cannot ask for the whole store.
	maxSearchLimit = 1000
	defaultLimit   = 20
)

// errNoTraceStore answers trace reads on a server built without a span
// store (a test, or a future deployment that splits the roles).
var errNoTraceStore = fmt.Errorf("no span store is configured: %w", ktrace.ErrUnavailable)

// traceRoutes registers KTrace: the trace API and the trace pages.
func (s *Server) traceRoutes(_ *gin.Engine, api, ui *gin.RouterGroup) {
	read := s.requireRead(auth.Viewer)
	// Static segments before the parameter: gin prefers them, and a trace
	// ID is hex, so "services" and "dependencies" can never be one.
	api.GET("/traces", read, s.apiFindTraces)
	api.GET("/traces/services", read, s.apiTraceServices)
	api.GET("/traces/services/:service/operations", read, s.apiTraceOperations)
	api.GET("/traces/dependencies", read, s.apiTraceDependencies)
	api.GET("/traces/:traceID", read, s.apiTrace)

	ui.GET("/traces", s.tracesPage)
	ui.GET("/traces/:traceID", s.tracePage)
}

func (s *Server) traceReader() (TraceReader, error) {
	if s.cfg.Traces == nil {
		return nil, errNoTraceStore
	}
	return s.cfg.Traces, nil
}

// ---- API ----

// spanJSON is the API shape of a span (docs/api.md). Start and the
// annotations' times are as the span reported them; a span the viewer
// moves to correct clock skew also carries the shift and its adjusted
// start. Maps and lists are never null.
type spanJSON struct {
	SpanID         string            `json:"spanID"`
	ParentSpanID   string            `json:"parentSpanID"`
	Service        string            `json:"service"`
	Name           string            `json:"name"`
	Kind           string            `json:"kind"`
	Start          time.Time         `json:"start"`
	DurationMicros int64             `json:"durationMicros"`
	Tags           map[string]string `json:"tags"`
	Annotations    []annotationJSON  `json:"annotations"`
	Status         string            `json:"status"`
	Error          bool              `json:"error"`
	StatusMessage  string            `json:"statusMessage,omitempty"`
	Process        map[string]string `json:"process"`
	// Orphan: the parent span is not in the trace.
	Orphan bool `json:"orphan,omitempty"`
	// ClockSkew is set when the span (and its subtree) had to be moved into
	// its client parent's window.
	ClockSkew *clockSkewJSON `json:"clockSkew,omitempty"`
}

type annotationJSON struct {
	Time  time.Time         `json:"time"`
	Value string            `json:"value"`
	Tags  map[string]string `json:"tags,omitempty"`
}

type clockSkewJSON struct {
	// DeltaMicros is this span's own shift; AdjustedStart includes the
	// shifts of its ancestors too.
	DeltaMicros   int64     `json:"deltaMicros"`
	AdjustedStart time.Time `json:"adjustedStart"`
}

type traceJSON struct {
	TraceID string     `json:"traceID"`
	Status  string     `json:"status"`
	Spans   []spanJSON `json:"spans"`
}

func statusName(c ktrace.StatusCode) string {
	if c == ktrace.StatusUnset {
		return "unset"
	}
	return string(c)
}

func kindName(k ktrace.Kind) string {
	if k == ktrace.KindUnspecified {
		return "unspecified"
	}
	return string(k)
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// traceResponse renders a lookup with spans in the store's (start time)
// order, each with what the view learned about it.
func traceResponse(tr ktrace.Trace) traceJSON {
	out := traceJSON{TraceID: tr.ID.String(), Status: string(tr.Status), Spans: []spanJSON{}}
	if len(tr.Spans) == 0 {
		return out
	}
	v := ktrace.BuildView(tr.Spans)
	type viewed struct {
		orphan bool
		skew   time.Duration
		start  time.Time
	}
	byID := make(map[ktrace.SpanID]viewed, len(v.Spans))
	for _, vs := range v.Spans {
		if _, dup := byID[vs.SpanID]; !dup {
			byID[vs.SpanID] = viewed{vs.Orphan, vs.Skew, vs.Start}
		}
	}
	for _, sp := range tr.Spans {
		j := spanJSON{
			SpanID:         sp.SpanID.String(),
			Service:        sp.Service,
			Name:           sp.Name,
			Kind:           kindName(sp.Kind),
			Start:          sp.Start.UTC(),
			DurationMicros: sp.Duration.Microseconds(),
			Tags:           nonNil(sp.Tags),
			Annotations:    make([]annotationJSON, 0, len(sp.Annotations)),
			Status:         statusName(sp.Status),
			Error:          sp.Error(),
			StatusMessage:  sp.StatusMessage,
			Process:        nonNil(sp.Process),
		}
		if !sp.ParentSpanID.IsZero() {
			j.ParentSpanID = sp.ParentSpanID.String()
		}
		for _, a := range sp.Annotations {
			j.Annotations = append(j.Annotations, annotationJSON{Time: a.Time.UTC(), Value: a.Value, Tags: a.Tags})
		}
		vw := byID[sp.SpanID]
		j.Orphan = vw.orphan
		if vw.skew != 0 {
			j.ClockSkew = &clockSkewJSON{DeltaMicros: vw.skew.Microseconds(), AdjustedStart: vw.start.UTC()}
		}
		out.Spans = append(out.Spans, j)
	}
	return out
}

// apiTrace answers one trace lookup. Found, expired and unknown are all
// 200: the lookup worked and the body's status says what kplane knows,
// which is the one thing a caller needs to tell "wait for it" (unknown)
// from "too late" (expired).
func (s *Server) apiTrace(c *gin.Context) {
	id, err := ktrace.ParseTraceID(c.Param("traceID"))
	if err != nil {
		s.fail(c, err)
		return
	}
	tr, err := s.lookupTrace(c.Request.Context(), id)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, traceResponse(tr))
}

func (s *Server) lookupTrace(ctx context.Context, id ktrace.TraceID) (ktrace.Trace, error) {
	r, err := s.traceReader()
	if err != nil {
		return ktrace.Trace{}, err
	}
	tr, err := r.Trace(ctx, id)
	if err != nil {
		return ktrace.Trace{}, fmt.Errorf("look up trace %s: %w", id, err)
	}
	if tr.Status == "" {
		tr.Status = ktrace.Unknown
	}
	tr.ID = id
	return tr, nil
}

type traceSummaryJSON struct {
	TraceID        string    `json:"traceID"`
	RootService    string    `json:"rootService"`
	RootName       string    `json:"rootName"`
	Start          time.Time `json:"start"`
	DurationMicros int64     `json:"durationMicros"`
	SpanCount      int       `json:"spanCount"`
	ErrorCount     int       `json:"errorCount"`
	Services       []string  `json:"services"`
}

// parseTime accepts RFC 3339 or a Unix timestamp. A bare number's unit
// follows from its size, so that seconds (what `date +%s` prints),
// milliseconds (JavaScript), microseconds (Jaeger, Zipkin) and nanoseconds
// all work: below 1e11 it is seconds (fractions allowed), below 1e14
// milliseconds, below 1e17 microseconds, else nanoseconds.
func parseTime(name, raw string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, raw); err == nil {
		return t, nil
	}
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return time.Time{}, fmt.Errorf("%s %q: want RFC 3339 (2026-03-01T12:00:00Z) or a Unix timestamp: %w", name, raw, errMalformed)
	}
	switch {
	case f < 1e11:
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), nil
	case f < 1e14:
		return time.UnixMilli(int64(f)), nil
	case f < 1e17:
		return time.UnixMicro(int64(f)), nil
	default:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s %q: a Unix timestamp out of range: %w", name, raw, errMalformed)
		}
		return time.Unix(0, n), nil
	}
}

func parseDuration(name, raw string) (time.Duration, error) {
	d, err := time.ParseDuration(raw)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s %q: want a duration with a unit, like 250ms or 1.5s: %w", name, raw, errMalformed)
	}
	return d, nil
}

// parseTraceQuery reads a search from URL parameters, the same for the API
// and the search page. Empty parameters do not filter.
func parseTraceQuery(v url.Values, now time.Time) (ktrace.Query, error) {
	q := ktrace.Query{
		Service:   strings.TrimSpace(v.Get("service")),
		Operation: strings.TrimSpace(v.Get("operation")),
		Limit:     defaultLimit,
	}
	var err error
	if raw := v.Get("minDuration"); raw != "" {
		if q.MinDuration, err = parseDuration("minDuration", raw); err != nil {
			return q, err
		}
	}
	if raw := v.Get("maxDuration"); raw != "" {
		if q.MaxDuration, err = parseDuration("maxDuration", raw); err != nil {
			return q, err
		}
	}
	if q.MaxDuration > 0 && q.MaxDuration < q.MinDuration {
		return q, fmt.Errorf("maxDuration %v is below minDuration %v: %w", q.MaxDuration, q.MinDuration, errMalformed)
	}
	q.End = now
	if raw := v.Get("end"); raw != "" {
		if q.End, err = parseTime("end", raw); err != nil {
			return q, err
		}
	}
	lookback := defaultLookback
	if raw := v.Get("lookback"); raw != "" {
		if lookback, err = parseDuration("lookback", raw); err != nil {
			return q, err
		}
	}
	q.Start = q.End.Add(-lookback)
	if raw := v.Get("start"); raw != "" {
		if q.Start, err = parseTime("start", raw); err != nil {
			return q, err
		}
	}
	if !q.Start.Before(q.End) {
		return q, fmt.Errorf("start %s is not before end %s: %w", q.Start.UTC().Format(time.RFC3339), q.End.UTC().Format(time.RFC3339), errMalformed)
	}
	if raw := v.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxSearchLimit {
			return q, fmt.Errorf("limit %q: want a whole number from 1 to %d: %w", raw, maxSearchLimit, errMalformed)
		}
		q.Limit = n
	}
	if q.Operation != "" && q.Service == "" {
		return q, fmt.Errorf("operation %q needs a service: %w", q.Operation, errMalformed)
	}
	for _, raw := range v["tag"] {
		k, val, ok := strings.Cut(raw, ":")
		if !ok || k == "" {
			return q, fmt.Errorf("tag %q: want key:value: %w", raw, errMalformed)
		}
		if q.Tags == nil {
			q.Tags = map[string]string{}
		}
		q.Tags[k] = val
	}
	return q, nil
}

func (s *Server) findTraces(ctx context.Context, q ktrace.Query) ([]ktrace.TraceSummary, error) {
	r, err := s.traceReader()
	if err != nil {
		return nil, err
	}
	res, err := r.FindTraces(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("find traces: %w", err)
	}
	return res, nil
}

func (s *Server) apiFindTraces(c *gin.Context) {
	q, err := parseTraceQuery(c.Request.URL.Query(), s.now())
	if err != nil {
		s.fail(c, err)
		return
	}
	res, err := s.findTraces(c.Request.Context(), q)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]traceSummaryJSON, 0, len(res))
	for _, t := range res {
		svcs := t.Services
		if svcs == nil {
			svcs = []string{}
		}
		out = append(out, traceSummaryJSON{
			TraceID: t.ID.String(), RootService: t.RootService, RootName: t.RootName, Start: t.Start.UTC(),
			DurationMicros: t.Duration.Microseconds(), SpanCount: t.SpanCount, ErrorCount: t.ErrorCount, Services: svcs,
		})
	}
	c.JSON(http.StatusOK, gin.H{"traces": out})
}

func (s *Server) apiTraceServices(c *gin.Context) {
	r, err := s.traceReader()
	if err != nil {
		s.fail(c, err)
		return
	}
	svcs, err := r.Services(c.Request.Context())
	if err != nil {
		s.fail(c, fmt.Errorf("list traced services: %w", err))
		return
	}
	if svcs == nil {
		svcs = []string{}
	}
	c.JSON(http.StatusOK, gin.H{"services": svcs})
}

func (s *Server) apiTraceOperations(c *gin.Context) {
	r, err := s.traceReader()
	if err != nil {
		s.fail(c, err)
		return
	}
	svc := c.Param("service")
	ops, err := r.Operations(c.Request.Context(), svc)
	if err != nil {
		s.fail(c, fmt.Errorf("list operations of %s: %w", svc, err))
		return
	}
	if ops == nil {
		ops = []string{}
	}
	c.JSON(http.StatusOK, gin.H{"service": svc, "operations": ops})
}

type dependencyJSON struct {
	Parent     string `json:"parent"`
	Child      string `json:"child"`
	CallCount  int64  `json:"callCount"`
	ErrorCount int64  `json:"errorCount"`
}

func (s *Server) dependencies(ctx context.Context, v url.Values) ([]ktrace.Dependency, error) {
	q, err := parseTraceQuery(url.Values{"start": v["start"], "end": v["end"], "lookback": v["lookback"]}, s.now())
	if err != nil {
		return nil, err
	}
	r, err := s.traceReader()
	if err != nil {
		return nil, err
	}
	deps, err := r.Dependencies(ctx, q.Start, q.End)
	if err != nil {
		return nil, fmt.Errorf("service dependencies: %w", err)
	}
	return deps, nil
}

func (s *Server) apiTraceDependencies(c *gin.Context) {
	deps, err := s.dependencies(c.Request.Context(), c.Request.URL.Query())
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]dependencyJSON, 0, len(deps))
	for _, d := range deps {
		out = append(out, dependencyJSON{d.Parent, d.Child, d.CallCount, d.ErrorCount})
	}
	c.JSON(http.StatusOK, gin.H{"dependencies": out})
}

// ---- pages ----

// traceLookupPath is where the trace-ID box sends a pasted ID. Pasted IDs
// often carry stray spaces or a "trace_id=" prefix copied with them from
// a log line; those are dropped, anything else goes on as typed so that
// the trace page can say what is wrong with it.
func traceLookupPath(raw string) string {
	id := strings.TrimSpace(raw)
	if _, v, ok := strings.Cut(id, "="); ok {
		id = strings.TrimSpace(v)
	}
	id = strings.Trim(id, `"'`)
	return "/traces/" + url.PathEscape(strings.ToLower(id))
}

// searchView is the search page.
type searchView struct {
	Form       searchForm
	Services   []string
	Operations []string
	Results    []resultView
	Searched   bool
	Error      string
	Scatter    scatterView
	Graph      graphView
	// NoStore: this server has no span store at all.
	NoStore   bool
	Lookbacks []lookback
}

type searchForm struct {
	Service, Operation, MinDuration, Lookback string
	Limit                                     int
}

type resultView struct {
	ID, RootService, RootName, Start, Ago, Duration string
	Spans, Errors                                   int
	Services                                        []string
	// Width is the duration bar's share of the slowest result, 0..100.
	Width int
}

type lookback struct{ Value, Label string }

// lookbacks are the time ranges the search form offers.
var lookbacks = []lookback{
	{"5m", "Last 5 minutes"}, {"15m", "Last 15 minutes"}, {"1h", "Last hour"},
	{"6h", "Last 6 hours"}, {"24h", "Last 24 hours"}, {"168h", "Last 7 days"},
}

func (s *Server) tracesPage(c *gin.Context) {
	if id := c.Query("id"); id != "" {
		c.Redirect(http.StatusSeeOther, traceLookupPath(id))
		return
	}
	ctx := c.Request.Context()
	vals := c.Request.URL.Query()
	v := searchView{Form: searchForm{
		Service: vals.Get("service"), Operation: vals.Get("operation"),
		MinDuration: vals.Get("minDuration"), Lookback: vals.Get("lookback"), Limit: defaultLimit,
	}, Lookbacks: lookbacks}
	if v.Form.Lookback == "" {
		v.Form.Lookback = "1h"
	}
	r, err := s.traceReader()
	if err != nil {
		v.NoStore = true
		s.renderTraces(c, http.StatusServiceUnavailable, v)
		return
	}
	status := http.StatusOK
	// A broken list of services should not hide the search form: the
	// page still renders, with the error shown.
	if v.Services, err = r.Services(ctx); err != nil {
		requestLogger(c, s.log).Error("list traced services", "err", err)
		v.Error = "The span store did not answer; try again shortly."
	}
	if v.Form.Service != "" {
		if v.Operations, err = r.Operations(ctx, v.Form.Service); err != nil {
			requestLogger(c, s.log).Error("list operations", "service", v.Form.Service, "err", err)
		}
	}
	q, err := parseTraceQuery(vals, s.now())
	if err != nil {
		_, body := classify(err)
		v.Error = body.Error
		s.renderTraces(c, http.StatusBadRequest, v)
		return
	}
	v.Form.Limit = q.Limit
	res, err := r.FindTraces(ctx, q)
	if err != nil {
		st, body := classify(err)
		if st >= 500 {
			requestLogger(c, s.log).Error("find traces", "err", err)
		}
		v.Error, status = body.Error, st
		s.renderTraces(c, status, v)
		return
	}
	v.Searched = true
	v.Results = resultViews(res, s.now())
	v.Scatter = buildScatter(res, q.Start, q.End)
	if deps, err := r.Dependencies(ctx, q.Start, q.End); err != nil {
		requestLogger(c, s.log).Error("service dependencies", "err", err)
	} else {
		v.Graph = buildGraph(deps)
	}
	s.renderTraces(c, status, v)
}

func (s *Server) renderTraces(c *gin.Context, status int, v searchView) {
	s.render(c, status, "traces", pageData{Title: "Traces", Nav: "traces", Page: v})
}

func resultViews(res []ktrace.TraceSummary, now time.Time) []resultView {
	var slowest time.Duration
	for _, t := range res {
		slowest = max(slowest, t.Duration)
	}
	out := make([]resultView, 0, len(res))
	for _, t := range res {
		w := 100
		if slowest > 0 {
			w = max(1, int(100*t.Duration/slowest))
		}
		out = append(out, resultView{
			ID: t.ID.String(), RootService: t.RootService, RootName: t.RootName,
			Start: t.Start.UTC().Format("2006-01-02 15:04:05.000 MST"), Ago: formatUptime(now.Sub(t.Start)) + " ago",
			Duration: formatSpanDuration(t.Duration), Spans: t.SpanCount, Errors: t.ErrorCount,
			Services: t.Services, Width: w,
		})
	}
	return out
}

// formatSpanDuration renders a duration with three significant digits in
// the unit an operator expects: µs, ms or s. trace.js mirrors it.
func formatSpanDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	us := float64(d) / float64(time.Microsecond)
	switch {
	case us < 1000:
		return strconv.FormatFloat(us, 'f', sigDecimals(us), 64) + "µs"
	case us < 1e6:
		ms := us / 1000
		return strconv.FormatFloat(ms, 'f', sigDecimals(ms), 64) + "ms"
	default:
		sec := us / 1e6
		return strconv.FormatFloat(sec, 'f', sigDecimals(sec), 64) + "s"
	}
}

func sigDecimals(x float64) int {
	switch {
	case x >= 100:
		return 0
	case x >= 10:
		return 1
	default:
		return 2
	}
}

// ---- the scatter plot: duration over time ----

const (
	plotW, plotH                        = 720.0, 220.0
	plotLeft, plotRight, plotTop, plotB = 56.0, 12.0, 12.0, 28.0
)

type scatterView struct {
	Width, Height float64
	Points        []scatterPoint
	XTicks        []tick
	YTicks        []tick
	// Plot area, for the grid.
	Left, Right, Top, Bottom float64
}

type scatterPoint struct {
	X, Y, R float64
	Error   bool
	ID      string
	Title   string
}

type tick struct {
	Pos   float64
	Label string
	// Anchor keeps the outermost labels inside the plot: start, middle
	// or end (SVG text-anchor).
	Anchor string
}

// buildScatter places each result at its start (x) and duration (y);
// the radius grows with the span count so that big traces stand out.
func buildScatter(res []ktrace.TraceSummary, from, to time.Time) scatterView {
	sv := scatterView{Width: plotW, Height: plotH, Left: plotLeft, Right: plotW - plotRight, Top: plotTop, Bottom: plotH - plotB}
	if len(res) == 0 {
		return sv
	}
	var maxDur time.Duration
	for _, t := range res {
		maxDur = max(maxDur, t.Duration)
	}
	yMax := niceCeil(float64(maxDur))
	span := to.Sub(from)
	w, h := sv.Right-sv.Left, sv.Bottom-sv.Top
	for _, t := range res {
		x := sv.Left + w*float64(t.Start.Sub(from))/float64(span)
		x = min(max(x, sv.Left), sv.Right)
		y := sv.Bottom - h*float64(t.Duration)/yMax
		r := min(3.5+math.Log2(float64(max(t.SpanCount, 1))), 9)
		title := fmt.Sprintf("%s %s · %s · %d spans", t.RootService, t.RootName, formatSpanDuration(t.Duration), t.SpanCount)
		if t.ErrorCount > 0 {
			title += fmt.Sprintf(" · %d errors", t.ErrorCount)
		}
		sv.Points = append(sv.Points, scatterPoint{X: round1(x), Y: round1(y), R: round1(r), Error: t.ErrorCount > 0, ID: t.ID.String(), Title: title})
	}
	for i := 0; i <= 4; i++ {
		frac := float64(i) / 4
		sv.YTicks = append(sv.YTicks, tick{Pos: round1(sv.Bottom - h*frac), Label: formatSpanDuration(time.Duration(yMax * frac))})
		at := from.Add(time.Duration(float64(span) * frac))
		layout := "15:04:05"
		if span > 24*time.Hour {
			layout = "Jan 2 15:04"
		}
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 4:
			anchor = "end"
		}
		sv.XTicks = append(sv.XTicks, tick{Pos: round1(sv.Left + w*frac), Label: at.UTC().Format(layout), Anchor: anchor})
	}
	return sv
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten, for axis labels
// that read well.
func niceCeil(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// ---- the service dependency graph ----

type graphView struct {
	Width, Height float64
	Nodes         []graphNode
	Edges         []graphEdge
}

type graphNode struct {
	Name        string
	X, Y        float64 // centre
	Left, Top   float64
	W           float64
	Colour      int
	Calls, Errs int64 // calls received
}

type graphEdge struct {
	Path         string
	LabelX       float64
	LabelY       float64
	Label, Title string
	Error        bool
}

const (
	nodeH, colGap, rowGap = 30.0, 90.0, 22.0
)

// buildGraph lays services out left to right by call depth: a service sits
// one column right of its deepest caller. Cycles (two services calling
// each other) are cut where the walk first meets them.
func buildGraph(deps []ktrace.Dependency) graphView {
	var g graphView
	if len(deps) == 0 {
		return g
	}
	names := map[string]bool{}
	callers := map[string][]string{}
	for _, d := range deps {
		names[d.Parent], names[d.Child] = true, true
		if d.Parent != d.Child {
			callers[d.Child] = append(callers[d.Child], d.Parent)
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	slices.Sort(sorted)
	col := map[string]int{}
	const visiting = -1
	var depth func(n string) int
	depth = func(n string) int {
		if c, ok := col[n]; ok {
			if c == visiting {
				return -1 // a cycle: this caller does not push n right
			}
			return c
		}
		col[n] = visiting
		d := 0
		for _, p := range callers[n] {
			d = max(d, depth(p)+1)
		}
		col[n] = d
		return d
	}
	columns := map[int][]string{}
	maxCol := 0
	for _, n := range sorted {
		c := depth(n)
		columns[c] = append(columns[c], n)
		maxCol = max(maxCol, c)
	}
	colour := map[string]int{}
	for i, n := range sorted {
		colour[n] = serviceColour(i)
	}
	// Column width follows the longest name in it.
	widths := make([]float64, maxCol+1)
	rows := 0
	for c := 0; c <= maxCol; c++ {
		for _, n := range columns[c] {
			widths[c] = max(widths[c], 24+7.2*float64(len(n)))
		}
		rows = max(rows, len(columns[c]))
	}
	g.Height = float64(rows)*(nodeH+rowGap) + rowGap
	pos := map[string]*graphNode{}
	x := 12.0
	for c := 0; c <= maxCol; c++ {
		n := len(columns[c])
		top := (g.Height - float64(n)*nodeH - float64(n-1)*rowGap) / 2
		for i, name := range columns[c] {
			cy := top + float64(i)*(nodeH+rowGap) + nodeH/2
			g.Nodes = append(g.Nodes, graphNode{
				Name: name, X: round1(x + widths[c]/2), Y: round1(cy), Left: round1(x), Top: round1(cy - nodeH/2),
				W: round1(widths[c]), Colour: colour[name],
			})
		}
		x += widths[c] + colGap
	}
	g.Width = x - colGap + 12
	for i := range g.Nodes {
		pos[g.Nodes[i].Name] = &g.Nodes[i]
	}
	for _, d := range deps {
		p, ch := pos[d.Parent], pos[d.Child]
		ch.Calls += d.CallCount
		ch.Errs += d.ErrorCount
		e := graphEdge{
			Label: strconv.FormatInt(d.CallCount, 10),
			Title: fmt.Sprintf("%s → %s: %d calls, %d errors", d.Parent, d.Child, d.CallCount, d.ErrorCount),
			Error: d.ErrorCount > 0,
		}
		x1, y1 := p.X+p.W/2, p.Y
		x2, y2 := ch.X-ch.W/2, ch.Y
		switch {
		case p == ch:
			// A service calling itself: a loop over the node.
			e.Path = fmt.Sprintf("M%.1f %.1f C%.1f %.1f %.1f %.1f %.1f %.1f", p.X-8, p.Y-nodeH/2, p.X-24, p.Y-nodeH-14, p.X+24, p.Y-nodeH-14, p.X+8, p.Y-nodeH/2)
			e.LabelX, e.LabelY = p.X, p.Y-nodeH-8
		case x2 <= x1:
			// A call back to the left (a cycle): arc under the nodes.
			x1, x2 = p.X, ch.X
			y1, y2 = p.Y+nodeH/2, ch.Y+nodeH/2
			bottom := max(y1, y2) + rowGap
			e.Path = fmt.Sprintf("M%.1f %.1f C%.1f %.1f %.1f %.1f %.1f %.1f", x1, y1, x1, bottom, x2, bottom, x2, y2)
			e.LabelX, e.LabelY = round1((x1+x2)/2), round1(bottom-4)
		default:
			mid := (x1 + x2) / 2
			e.Path = fmt.Sprintf("M%.1f %.1f C%.1f %.1f %.1f %.1f %.1f %.1f", x1, y1, mid, y1, mid, y2, x2-2, y2)
			e.LabelX, e.LabelY = round1(mid), round1((y1+y2)/2-5)
		}
		g.Edges = append(g.Edges, e)
	}
	return g
}

// serviceColour picks one of the palette's colours (console.css .sc0 to
// .sc9) for the i-th service in name order, so that a service keeps its
// colour across the trace's pages.
func serviceColour(i int) int { return i % 10 }

// ---- the trace page ----

type traceView struct {
	ID     string
	Status ktrace.LookupStatus
	// Invalid explains why the ID is not a trace ID.
	Invalid string
	Raw     string
	// Summary of a found trace.
	Duration   string
	SpanCount  int
	Services   []traceServiceView
	ErrorCount int
	Depth      int
	Adjusted   int
	Orphans    int
	Started    string
	// Data is the JSON that trace.js renders the waterfall from.
	Data template.JS
}

type traceServiceView struct {
	Name   string
	Spans  int
	Colour int
}

func (s *Server) tracePage(c *gin.Context) {
	raw := c.Param("traceID")
	v := traceView{Raw: raw}
	id, err := ktrace.ParseTraceID(raw)
	if err != nil {
		_, body := classify(err)
		v.Invalid = body.Error
		s.render(c, http.StatusBadRequest, "trace", pageData{Title: "Not a trace ID", Nav: "traces", Page: v})
		return
	}
	v.ID = id.String()
	tr, err := s.lookupTrace(c.Request.Context(), id)
	if err != nil {
		s.failPage(c, err)
		return
	}
	v.Status = tr.Status
	title := "Trace " + shortID(v.ID)
	if tr.Status == ktrace.Found && len(tr.Spans) > 0 {
		view := ktrace.BuildView(tr.Spans)
		v.SpanCount = len(view.Spans)
		v.Duration = formatSpanDuration(view.Duration)
		v.ErrorCount = view.ErrorCount
		v.Depth = view.MaxDepth + 1
		v.Adjusted = view.Adjusted
		v.Orphans = view.Orphans
		v.Started = view.Start.UTC().Format("2006-01-02 15:04:05.000 MST")
		for i, sc := range view.Services {
			v.Services = append(v.Services, traceServiceView{Name: sc.Service, Spans: sc.Spans, Colour: serviceColour(i)})
		}
		data, err := waterfallJSON(v.ID, view)
		if err != nil {
			s.failPage(c, fmt.Errorf("encode trace %s: %w", v.ID, err))
			return
		}
		v.Data = data
		if root := view.Spans[0]; root.Name != "" {
			title = root.Service + " " + root.Name + " · " + shortID(v.ID)
		}
	} else if tr.Status == ktrace.Found {
		// A store may report found with no spans only if they expired in
		// between; say what the reader can act on.
		v.Status = ktrace.Expired
	}
	s.render(c, http.StatusOK, "trace", pageData{Title: title, Nav: "traces", Page: v})
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// The waterfall's data: spans in depth-first order with everything the
// renderer needs precomputed, times as nanoseconds from the trace start
// (exact in a JavaScript number for 104 days). Services and processes are
// tables the spans index, which keeps a 10,000-span page small.
type waterfallData struct {
	TraceID   string              `json:"traceID"`
	Start     time.Time           `json:"start"`
	Duration  int64               `json:"duration"`
	Services  []string            `json:"services"`
	Processes []map[string]string `json:"processes"`
	Spans     []waterfallSpan     `json:"spans"`
}

type waterfallSpan struct {
	ID          string            `json:"id"`
	ParentID    string            `json:"parentID,omitempty"`
	Parent      int               `json:"p"`
	Depth       int               `json:"d"`
	Children    int               `json:"k"`
	Descendants int               `json:"n"`
	Service     int               `json:"s"`
	Name        string            `json:"name"`
	Kind        string            `json:"kind"`
	Offset      int64             `json:"o"`
	Duration    int64             `json:"t"`
	Error       bool              `json:"e,omitempty"`
	Message     string            `json:"msg,omitempty"`
	Critical    bool              `json:"c,omitempty"`
	Orphan      bool              `json:"orphan,omitempty"`
	Skew        int64             `json:"skew,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Annotations []waterfallAnn    `json:"ann,omitempty"`
	Process     int               `json:"proc"`
}

type waterfallAnn struct {
	Offset int64             `json:"o"`
	Value  string            `json:"v"`
	Tags   map[string]string `json:"tags,omitempty"`
}

// waterfallJSON encodes a view for trace.js. encoding/json escapes <, >
// and & inside strings, so the result cannot end the script element it is
// embedded in.
func waterfallJSON(id string, v ktrace.View) (template.JS, error) {
	d := waterfallData{TraceID: id, Start: v.Start.UTC(), Duration: int64(v.Duration), Spans: make([]waterfallSpan, len(v.Spans))}
	svcIdx := map[string]int{}
	for i, sc := range v.Services {
		svcIdx[sc.Service] = i
		d.Services = append(d.Services, sc.Service)
	}
	procIdx := map[string]int{}
	for i := range v.Spans {
		s := &v.Spans[i]
		key := processKey(s.Process)
		pi, ok := procIdx[key]
		if !ok {
			pi = len(d.Processes)
			procIdx[key] = pi
			d.Processes = append(d.Processes, nonNil(s.Process))
		}
		ws := waterfallSpan{
			ID: s.SpanID.String(), Parent: s.Parent, Depth: s.Depth, Children: s.Children, Descendants: s.Descendants,
			Service: svcIdx[s.Service], Name: s.Name, Kind: string(s.Kind),
			Offset: int64(s.Start.Sub(v.Start)), Duration: int64(s.Duration),
			Error: s.Error(), Message: s.StatusMessage, Critical: s.Critical, Orphan: s.Orphan, Skew: int64(s.Skew),
			Tags: s.Tags, Process: pi,
		}
		if !s.ParentSpanID.IsZero() {
			ws.ParentID = s.ParentSpanID.String()
		}
		for _, a := range s.Annotations {
			ws.Annotations = append(ws.Annotations, waterfallAnn{Offset: int64(a.Time.Sub(v.Start)), Value: a.Value, Tags: a.Tags})
		}
		d.Spans[i] = ws
	}
	b, err := json.Marshal(d)
	if err != nil {
		return "", err
	}
	return template.JS(b), nil
}

// processKey identifies a process by its attributes, to share one entry
// among the spans of one process.
func processKey(p map[string]string) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(p[k])
		b.WriteByte(0)
	}
	return b.String()
}
