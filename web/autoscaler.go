package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/headquarter"
	"github.com/kplane/kplane/scout"
	"github.com/kplane/kplane/signalman"
)

// Policies stores scaling policies; headquarter's stores implement it.
// Policy returns headquarter.ErrNotFound when none is stored for the
// service; Policies returns every stored policy.
type Policies interface {
	Policy(ctx context.Context, service string) (headquarter.Policy, error)
	PutPolicy(ctx context.Context, p headquarter.Policy) error
	Policies(ctx context.Context) ([]headquarter.Policy, error)
}

// Decisions lists stored decisions, newest first; headquarter's stores
// implement it.
type Decisions interface {
	Decisions(ctx context.Context, q headquarter.DecisionQuery) ([]headquarter.Decision, error)
}

// ManualScaler scales a service on a person's request and records it as a
// manual decision. Errors are signalman's (ErrInvalid, ErrUnknownService,
// ErrBusy, ErrNotConfirmed) or headquarter.ErrNotLeader.
type ManualScaler interface {
	ScaleManually(ctx context.Context, service string, n int, by string) (signalman.Result, error)
}

// Observations is what the autoscaler page shows of scout: the latest
// snapshot, an hour of history per service, and a signal per tick.
// *scout.Scout implements it.
type Observations interface {
	Latest() scout.Snapshot
	History(service string, since time.Time) []scout.ServiceSnapshot
	Subscribe() (<-chan scout.Snapshot, func())
}

// Decision list bounds of GET /api/v1/decisions.
const (
	defaultDecisionLimit = headquarter.DefaultDecisionLimit
	maxDecisionLimit     = headquarter.MaxDecisionLimit
	// chartWindow is how far back the page's sparklines reach.
	chartWindow = time.Hour
)

// autoscalerRoutes registers the autoscaler: policies, decisions, manual
// scale and the autoscaler page. Manual scale needs only a Scaler (an
// orchestrator), and the decisions API only Decisions; without a policy
// store (no autoscaler configured) the page says what is coming and the
// policy API answers 404.
func (s *Server) autoscalerRoutes(_ *gin.Engine, api, ui *gin.RouterGroup) {
	if s.cfg.Scaler != nil {
		api.POST("/services/:service/scale", s.requireRole(auth.Developer), s.apiScale)
	}
	if s.cfg.Decisions != nil {
		api.GET("/decisions", s.requireRead(auth.Viewer), s.apiDecisions)
	}
	if s.cfg.Policies == nil || s.cfg.Decisions == nil {
		ui.GET("/autoscaler", s.comingPage(comingAutoscaler))
		return
	}
	api.GET("/policies/:service", s.requireRead(auth.Viewer), s.apiGetPolicy)
	api.PUT("/policies/:service", s.requireRole(auth.Developer), s.apiPutPolicy)
	ui.GET("/autoscaler", s.autoscalerPage)
	ui.POST("/autoscaler/policies/:service", s.requireCSRF, s.postPolicyForm)
	ui.GET("/ui/events/autoscaler", s.autoscalerEvents)
}

func (s *Server) apiGetPolicy(c *gin.Context) {
	p, err := s.cfg.Policies.Policy(c.Request.Context(), c.Param("service"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, p.WithDefaults())
}

func (s *Server) apiPutPolicy(c *gin.Context) {
	service := c.Param("service")
	var p headquarter.Policy
	if err := json.NewDecoder(c.Request.Body).Decode(&p); err != nil {
		if errors.Is(err, headquarter.ErrInvalidPolicy) {
			s.fail(c, err)
			return
		}
		s.fail(c, fmt.Errorf("policy body is not JSON: %w: %w", err, errMalformed))
		return
	}
	if p.Service != "" && p.Service != service {
		s.fail(c, fmt.Errorf("%w %s: service in the body (%q) differs from the URL", headquarter.ErrInvalidPolicy, service, p.Service))
		return
	}
	p.Service = service
	if err := p.Validate(); err != nil {
		s.fail(c, err)
		return
	}
	if err := s.cfg.Policies.PutPolicy(c.Request.Context(), p); err != nil {
		s.fail(c, err)
		return
	}
	requestLogger(c, s.log).Info("policy changed", "service", service, "user", identity(c).User)
	c.JSON(http.StatusOK, p.WithDefaults())
}

func (s *Server) apiDecisions(c *gin.Context) {
	limit := defaultDecisionLimit
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDecisionLimit {
			s.fail(c, fmt.Errorf("limit %q: want a number from 1 to %d: %w", v, maxDecisionLimit, errMalformed))
			return
		}
		limit = n
	}
	ds, err := s.cfg.Decisions.Decisions(c.Request.Context(), headquarter.DecisionQuery{Service: c.Query("service"), Limit: limit})
	if err != nil {
		s.fail(c, err)
		return
	}
	if ds == nil {
		ds = []headquarter.Decision{}
	}
	c.JSON(http.StatusOK, gin.H{"decisions": ds})
}

// scaleAnswer is the API shape of a manual scale.
type scaleAnswer struct {
	Service string   `json:"service"`
	From    int      `json:"from"`
	To      int      `json:"to"`
	Started []string `json:"started"`
	Stopped []string `json:"stopped"`
	Outcome string   `json:"outcome"`
}

func (s *Server) apiScale(c *gin.Context) {
	var body struct {
		Instances *int `json:"instances"`
	}
	if err := json.NewDecoder(c.Request.Body).Decode(&body); err != nil {
		// %w keeps a body over the limit a 413.
		s.fail(c, fmt.Errorf(`want a JSON body like {"instances": 3}: %w: %w`, err, errMalformed))
		return
	}
	if body.Instances == nil {
		s.fail(c, fmt.Errorf(`want a JSON body like {"instances": 3}: %w`, errMalformed))
		return
	}
	service := c.Param("service")
	res, err := s.cfg.Scaler.ScaleManually(c.Request.Context(), service, *body.Instances, identity(c).User)
	if err != nil {
		s.fail(c, err)
		return
	}
	ans := scaleAnswer{Service: service, From: res.From, To: res.To, Started: res.Started, Stopped: res.Stopped, Outcome: string(headquarter.OutcomeDone)}
	if res.NoOp() {
		ans.Outcome = string(headquarter.OutcomeNoOp)
	}
	if ans.Started == nil {
		ans.Started = []string{}
	}
	if ans.Stopped == nil {
		ans.Stopped = []string{}
	}
	c.JSON(http.StatusOK, ans)
}

// The page.

type autoscalerView struct {
	autoscalerLive
	Policies []policyForm
	CanEdit  bool
	Flash    string
	Error    string
}

type autoscalerLive struct {
	Services  []scaleServiceView
	Decisions []decisionView
	Instances int
	Observed  string
}

type scaleServiceView struct {
	Name         string
	Instances    int
	AnyMissing   bool
	Policy       *headquarter.Policy
	Charts       []chartView
	LastDecision *decisionView
}

type decisionView struct {
	ID                    int64
	Time, When            string
	Service               string
	From, To              int
	Action, Guard, Reason string
	Outcome               string
	Votes                 []voteView
}

type voteView struct{ Metric, Vote, Detail string }

// policyForm is a policy as the form shows it: durations as Go duration
// strings, numbers as typed.
type policyForm struct {
	Service                                                 string
	Stored, Open, DryRun                                    bool
	Min, Max, VotesNeeded, MaxStep                          int
	QPSHigh, QPSLow, CPUHigh, CPULow, MemoryHigh, MemoryLow string
	CooldownUp, CooldownDown, Stabilization, MaxAge         string
}

func newPolicyForm(p headquarter.Policy, stored bool) policyForm {
	p = p.WithDefaults()
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	return policyForm{
		Service: p.Service, Stored: stored, DryRun: p.DryRun,
		Min: p.Min, Max: p.Max, VotesNeeded: p.Votes, MaxStep: p.MaxStep,
		QPSHigh: f(p.QPS.High), QPSLow: f(p.QPS.Low), CPUHigh: f(p.CPU.High), CPULow: f(p.CPU.Low),
		MemoryHigh: f(p.Memory.High), MemoryLow: f(p.Memory.Low),
		CooldownUp: p.CooldownUp.String(), CooldownDown: p.CooldownDown.String(),
		Stabilization: p.StabilizationWindow.String(), MaxAge: p.MaxMetricAge.String(),
	}
}

// policyFromForm applies the form's fields to the current policy, so that
// settings the form does not show (targets, flap detection) are kept.
func policyFromForm(c *gin.Context, p headquarter.Policy) (headquarter.Policy, error) {
	var errs []error
	num := func(field string, dst *int) {
		v := strings.TrimSpace(c.PostForm(field))
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q is not a whole number", field, v))
			return
		}
		*dst = n
	}
	flt := func(field string, dst *float64) {
		v := strings.TrimSpace(c.PostForm(field))
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
			errs = append(errs, fmt.Errorf("%s %q is not a number", field, v))
			return
		}
		*dst = n
	}
	dur := func(field string, dst *time.Duration) {
		v := strings.TrimSpace(c.PostForm(field))
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q is not a duration: write it like 30s or 2m", field, v))
			return
		}
		*dst = d
	}
	num("min", &p.Min)
	num("max", &p.Max)
	num("votes", &p.Votes)
	num("max_step", &p.MaxStep)
	flt("qps_high", &p.QPS.High)
	flt("qps_low", &p.QPS.Low)
	flt("cpu_high", &p.CPU.High)
	flt("cpu_low", &p.CPU.Low)
	flt("memory_high", &p.Memory.High)
	flt("memory_low", &p.Memory.Low)
	dur("cooldown_up", &p.CooldownUp)
	dur("cooldown_down", &p.CooldownDown)
	dur("stabilization", &p.StabilizationWindow)
	dur("max_age", &p.MaxMetricAge)
	p.DryRun = c.PostForm("dry_run") == "true"
	if len(errs) > 0 {
		return p, fmt.Errorf("%w %s: %w", headquarter.ErrInvalidPolicy, p.Service, errors.Join(errs...))
	}
	return p, p.Validate()
}

func (s *Server) autoscalerPage(c *gin.Context) {
	v, err := s.autoscalerView(c.Request.Context())
	if err != nil {
		s.failPage(c, err)
		return
	}
	v.CanEdit = identity(c).Role.Allows(auth.Developer)
	if svc := c.Query("saved"); svc != "" {
		v.Flash = "Policy of " + svc + " saved: Headquarter applies it from its next evaluation."
	}
	s.render(c, http.StatusOK, "autoscaler", pageData{Title: "Autoscaler", Nav: "autoscaler", Page: v})
}

func (s *Server) postPolicyForm(c *gin.Context) {
	ctx := c.Request.Context()
	service := c.Param("service")
	if !identity(c).Role.Allows(auth.Developer) {
		s.failPage(c, fmt.Errorf("role %s may not change policies, it needs %s: %w", identity(c).Role, auth.Developer, auth.ErrForbidden))
		return
	}
	cur, err := s.cfg.Policies.Policy(ctx, service)
	if errors.Is(err, headquarter.ErrNotFound) {
		cur, err = headquarter.DefaultPolicy(service), nil
	}
	if err != nil {
		s.failPage(c, err)
		return
	}
	p, err := policyFromForm(c, cur)
	if err == nil {
		err = s.cfg.Policies.PutPolicy(ctx, p)
	}
	if err != nil {
		status, body := classify(err)
		if status != http.StatusBadRequest {
			s.failPage(c, err)
			return
		}
		v, verr := s.autoscalerView(ctx)
		if verr != nil {
			s.failPage(c, verr)
			return
		}
		v.CanEdit = true
		v.Error = body.Error
		for i := range v.Policies {
			if v.Policies[i].Service == service {
				v.Policies[i] = newPolicyForm(p, v.Policies[i].Stored)
				v.Policies[i].Open = true
			}
		}
		s.render(c, status, "autoscaler", pageData{Title: "Autoscaler", Nav: "autoscaler", Page: v})
		return
	}
	requestLogger(c, s.log).Info("policy changed", "service", service, "user", identity(c).User)
	c.Redirect(http.StatusSeeOther, "/autoscaler?saved="+service)
}

func (s *Server) autoscalerView(ctx context.Context) (autoscalerView, error) {
	var v autoscalerView
	policies, err := s.cfg.Policies.Policies(ctx)
	if err != nil {
		return v, err
	}
	byService := map[string]headquarter.Policy{}
	for _, p := range policies {
		byService[p.Service] = p.WithDefaults()
	}
	live, err := s.autoscalerLive(ctx, byService)
	if err != nil {
		return v, err
	}
	v.autoscalerLive = live
	names := make([]string, 0, len(byService))
	for n := range byService {
		names = append(names, n)
	}
	for _, sv := range live.Services {
		if _, ok := byService[sv.Name]; !ok {
			names = append(names, sv.Name)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		p, stored := byService[n]
		if !stored {
			p = headquarter.DefaultPolicy(n)
		}
		v.Policies = append(v.Policies, newPolicyForm(p, stored))
	}
	return v, nil
}

// autoscalerLive is the part of the page that server-sent events refresh.
func (s *Server) autoscalerLive(ctx context.Context, policies map[string]headquarter.Policy) (autoscalerLive, error) {
	var v autoscalerLive
	now := s.now()
	ds, err := s.cfg.Decisions.Decisions(ctx, headquarter.DecisionQuery{Limit: defaultDecisionLimit})
	if err != nil {
		return v, err
	}
	events := map[string][]scaleEvent{}
	for _, d := range ds {
		dv := newDecisionView(d, now)
		v.Decisions = append(v.Decisions, dv)
		if d.From != d.To && (d.Outcome == headquarter.OutcomeDone) {
			events[d.Service] = append(events[d.Service], scaleEvent{Time: d.Time, From: d.From, To: d.To})
		}
	}
	var snap scout.Snapshot
	if s.cfg.Observations != nil {
		snap = s.cfg.Observations.Latest()
	}
	if !snap.Time.IsZero() {
		v.Observed = formatAgo(now.Sub(snap.Time))
	}
	names := make([]string, 0, len(snap.Services))
	for n := range snap.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		ss := snap.Services[n]
		sv := scaleServiceView{Name: n, Instances: ss.Instances}
		if p, ok := policies[n]; ok {
			sv.Policy = &p
		}
		for _, m := range ss.Metrics {
			if m.Missing {
				sv.AnyMissing = true
			}
		}
		for i := range v.Decisions {
			if v.Decisions[i].Service == n {
				sv.LastDecision = &v.Decisions[i]
				break
			}
		}
		sv.Charts = s.serviceCharts(n, now, sv.Policy, events[n])
		v.Instances += ss.Instances
		v.Services = append(v.Services, sv)
	}
	return v, nil
}

// serviceCharts draws instances, QPS per instance, CPU and memory over the
// last hour, with the policy's thresholds and the service's scale events.
func (s *Server) serviceCharts(service string, now time.Time, p *headquarter.Policy, events []scaleEvent) []chartView {
	hist := s.cfg.Observations.History(service, now.Add(-chartWindow))
	start := now.Add(-chartWindow)
	nan := math.NaN()
	var inst, qps, cpu, mem []chartPoint
	for _, h := range hist {
		inst = append(inst, chartPoint{t: h.Time, v: float64(h.Instances)})
		q := h.Metrics[scout.QPS]
		per := chartPoint{t: h.Time, missing: q.Missing || h.Instances == 0}
		if !per.missing {
			per.v = q.Value / float64(h.Instances)
		}
		qps = append(qps, per)
		for m, dst := range map[scout.Metric]*[]chartPoint{scout.CPU: &cpu, scout.Memory: &mem} {
			smp := h.Metrics[m]
			*dst = append(*dst, chartPoint{t: h.Time, v: smp.Value, missing: smp.Missing})
		}
	}
	thr := func(t headquarter.Threshold) (float64, float64) {
		if p == nil || t.Disabled {
			return nan, nan
		}
		return t.High, t.Low
	}
	minMax := func() (float64, float64) {
		if p == nil {
			return nan, nan
		}
		return float64(p.Max), float64(p.Min)
	}
	var charts []chartView
	hi, lo := minMax()
	charts = append(charts, buildChart("Instances", inst, start, now, hi, lo, events, formatCount))
	if p != nil {
		charts[0].High.Label = fmt.Sprintf("max %d", p.Max)
		charts[0].Low.Label = fmt.Sprintf("min %d", p.Min)
	}
	var qh, ql, ch, cl, mh, ml float64 = nan, nan, nan, nan, nan, nan
	if p != nil {
		qh, ql = thr(p.QPS)
		ch, cl = thr(p.CPU)
		mh, ml = thr(p.Memory)
	}
	charts = append(charts,
		buildChart("QPS / instance", qps, start, now, qh, ql, events, formatQPS),
		buildChart("CPU", cpu, start, now, ch, cl, events, formatFraction),
		buildChart("Memory", mem, start, now, mh, ml, events, formatFraction),
	)
	if n := len(hist); n > 0 {
		for m, smp := range hist[n-1].Metrics {
			for j := range charts {
				if smp.Missing && charts[j].Label == chartLabel(m) {
					charts[j].Reason = smp.Reason
				}
			}
		}
	}
	return charts
}

func chartLabel(m scout.Metric) string {
	switch m {
	case scout.QPS:
		return "QPS / instance"
	case scout.CPU:
		return "CPU"
	case scout.Memory:
		return "Memory"
	}
	return string(m)
}

type scaleEvent struct {
	Time     time.Time
	From, To int
}

func newDecisionView(d headquarter.Decision, now time.Time) decisionView {
	dv := decisionView{
		ID: d.ID, Time: d.Time.UTC().Format(time.RFC3339), When: formatAgo(now.Sub(d.Time)),
		Service: d.Service, From: d.From, To: d.To,
		Action: string(d.Action), Guard: strings.ReplaceAll(string(d.Guard), "_", " "), Reason: d.Reason,
		Outcome: strings.ReplaceAll(string(d.Outcome), "_", " "), // "in progress"
	}
	if d.Error != "" {
		dv.Outcome += ": " + d.Error
	}
	for _, mv := range d.Votes {
		detail := mv.Missing
		if detail == "" && mv.Vote != headquarter.VoteDisabled {
			detail = fmt.Sprintf("%.3g (high %g, low %g)", mv.Value, mv.High, mv.Low)
		}
		dv.Votes = append(dv.Votes, voteView{Metric: string(mv.Metric), Vote: string(mv.Vote), Detail: detail})
	}
	return dv
}

func formatAgo(d time.Duration) string {
	if d < time.Second {
		return "just now"
	}
	return formatUptime(d) + " ago"
}

// autoscalerEvents streams the live part of the page after every scout
// tick, like serviceEvents does for the services page.
func (s *Server) autoscalerEvents(c *gin.Context) {
	var ticks <-chan scout.Snapshot
	if s.cfg.Observations != nil {
		var cancel func()
		ticks, cancel = s.cfg.Observations.Subscribe()
		defer cancel()
	}
	rc := s.openStream(c)

	ctx := c.Request.Context()
	log := requestLogger(c, s.log)
	send := func() bool {
		v, err := s.autoscalerView(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("autoscaler event", "err", err)
			}
			return false
		}
		html, err := s.renderFragment("autoscaler", "autoscaler-live", v.autoscalerLive)
		if err != nil {
			log.Error("render autoscaler event", "err", err)
			return false
		}
		return writeEvent(c.Writer, "autoscaler", html) == nil && rc.Flush() == nil
	}
	pump(s, c, rc, ticks, send)
}

// Sparklines are inline SVG drawn by the template from coordinates
// computed here, so the page needs no chart library.

// Chart geometry, in SVG user units (the SVG scales to its box).
const (
	chartW   = 300.0
	chartH   = 56.0
	chartPad = 3.0
)

// chartView is one sparkline: a metric of one service over the window.
type chartView struct {
	Label     string   // "QPS / instance"
	Current   string   // the latest value, formatted, or "missing"
	Missing   bool     // the latest sample is missing
	Reason    string   // why it is missing
	Paths     []string // SVG path data, one per unbroken run of samples
	Area      string   // closed path under the line, for a soft fill
	High, Low *thresholdLine
	Events    []eventMark
	Gaps      []gapMark // where samples were missing
	Max       string    // the top of the scale, formatted
}

type thresholdLine struct {
	Y     float64
	Label string
}

// eventMark is a scale event drawn as a vertical line.
type eventMark struct {
	X     float64
	Up    bool
	Title string
}

type gapMark struct{ X, W float64 }

// point is one value at one time; a missing point breaks the line.
type chartPoint struct {
	t       time.Time
	v       float64
	missing bool
}

// buildChart lays out points over [start, end]. high and low are the
// policy thresholds (NaN when none); format renders values.
func buildChart(label string, pts []chartPoint, start, end time.Time, high, low float64, events []scaleEvent, format func(float64) string) chartView {
	cv := chartView{Label: label, Current: "—"}
	top := 0.0
	for _, p := range pts {
		if !p.missing && p.v > top {
			top = p.v
		}
	}
	if !math.IsNaN(high) && high > top {
		top = high
	}
	if top <= 0 {
		top = 1
	}
	top *= 1.1
	cv.Max = format(top)
	span := end.Sub(start).Seconds()
	if span <= 0 {
		span = 1
	}
	x := func(t time.Time) float64 {
		f := t.Sub(start).Seconds() / span
		return chartRound(chartPad + math.Max(0, math.Min(1, f))*(chartW-2*chartPad))
	}
	y := func(v float64) float64 {
		return chartRound(chartH - chartPad - math.Max(0, math.Min(1, v/top))*(chartH-2*chartPad))
	}
	var cur strings.Builder
	var runStart, lastX float64
	var area strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			cv.Paths = append(cv.Paths, cur.String())
			fmt.Fprintf(&area, "%sL%g %gL%g %gZ", strings.Replace(cur.String(), "M", "M", 1), lastX, chartH-chartPad, runStart, chartH-chartPad)
			cur.Reset()
		}
	}
	gapFrom := math.NaN()
	for _, p := range pts {
		px := x(p.t)
		if p.missing {
			flush()
			if math.IsNaN(gapFrom) {
				gapFrom = px
			}
			continue
		}
		if !math.IsNaN(gapFrom) {
			cv.Gaps = append(cv.Gaps, gapMark{X: gapFrom, W: math.Max(1, px-gapFrom)})
			gapFrom = math.NaN()
		}
		if cur.Len() == 0 {
			fmt.Fprintf(&cur, "M%g %g", px, y(p.v))
			runStart = px
		} else {
			fmt.Fprintf(&cur, "L%g %g", px, y(p.v))
		}
		lastX = px
	}
	flush()
	if !math.IsNaN(gapFrom) && len(pts) > 0 {
		cv.Gaps = append(cv.Gaps, gapMark{X: gapFrom, W: math.Max(2, x(pts[len(pts)-1].t)-gapFrom)})
	}
	cv.Area = area.String()
	if !math.IsNaN(high) {
		cv.High = &thresholdLine{Y: y(high), Label: "scale up above " + format(high)}
	}
	if !math.IsNaN(low) {
		cv.Low = &thresholdLine{Y: y(low), Label: "scale down below " + format(low)}
	}
	for _, e := range events {
		if e.Time.Before(start) || e.Time.After(end) {
			continue
		}
		cv.Events = append(cv.Events, eventMark{X: x(e.Time), Up: e.To > e.From,
			Title: fmt.Sprintf("%s: %d → %d", e.Time.Local().Format("15:04:05"), e.From, e.To)})
	}
	if n := len(pts); n > 0 {
		last := pts[n-1]
		if last.missing {
			cv.Missing = true
			cv.Current = "missing"
		} else {
			cv.Current = format(last.v)
		}
	}
	return cv
}

func chartRound(f float64) float64 { return math.Round(f*10) / 10 }

func formatQPS(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func formatFraction(v float64) string {
	return strconv.FormatFloat(v*100, 'f', 1, 64) + "%"
}

func formatCount(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
