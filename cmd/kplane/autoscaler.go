package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/kplane/kplane/registry"
	scoutes "github.com/kplane/kplane/scout/elasticsearch"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/headquarter"
	"github.com/kplane/kplane/scout"
	scoutprom "github.com/kplane/kplane/scout/prometheus"
	"github.com/kplane/kplane/scout/scrape"
	"github.com/kplane/kplane/signalman"
	"github.com/kplane/kplane/web"
)

// autoscaler is Scout → Headquarter → Signalman as serve runs it: scout on
// every replica (the console shows its history), the headquarter loop only
// on the elected leader, every orchestrator call and every decision the
// loop writes fenced.
type autoscaler struct {
	scout  *scout.Scout
	store  *headquarter.SQLStore
	leader *headquarter.Leader
	loop   *headquarter.Loop
	manual manualScaler
}

// demoPolicy is the policy the demo services start with: at least two
// instances, scaled on requests per instance alone. The demo services do
// little work per request, so CPU and memory stay low and would only vote
// to scale down; QPS is the signal a ticket sale moves.
func demoPolicy(service string) headquarter.Policy {
	return headquarter.Policy{
		Service: service, Env: demoEnv, Min: 2, Max: 8,
		QPS:        headquarter.Threshold{High: 40, Low: 10, Target: 25},
		CPU:        headquarter.Threshold{Disabled: true},
		Memory:     headquarter.Threshold{Disabled: true},
		Votes:      1,
		CooldownUp: 10 * time.Second, CooldownDown: 20 * time.Second,
		StabilizationWindow: 30 * time.Second, MaxMetricAge: 15 * time.Second,
	}
}

func newAutoscaler(ctx context.Context, cfg Config, cli *clientv3.Client, db *sql.DB, services scout.Registry,
	orch signalman.Orchestrator, reg prometheus.Registerer, log *slog.Logger) (*autoscaler, error) {
	ac := cfg.Autoscaler
	var src scout.Source
	var err error
	switch ac.source() {
	case "prometheus":
		src, err = scoutprom.New(scoutprom.Config{URL: ac.PrometheusURL, Queries: promQueries(ac.PrometheusQueries)})
	case "elasticsearch":
		src, err = scoutes.New(scoutes.Config{URL: ac.ElasticsearchURL, Index: ac.ElasticsearchIndex})
	default:
		src, err = scrape.New(scrape.Config{})
	}
	if err != nil {
		return nil, err
	}
	log.Info("autoscaler", "source", ac.source(), "prometheus_url", ac.PrometheusURL, "interval", ac.interval(), "env", cfg.autoscalerEnv())
	sc, err := scout.New(scout.Config{
		Sources: []scout.Source{src}, Registry: envRegistry{services, cfg.autoscalerEnv()}, Interval: ac.interval(),
		Logger: log.With("component", "scout"), Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	store := headquarter.NewSQLStore(db, nil)
	if cfg.Demo.Enabled {
		for _, svc := range []string{"inventory", "checkpoint"} {
			if _, err := store.Policy(ctx, svc); errors.Is(err, headquarter.ErrNotFound) {
				if err := store.PutPolicy(ctx, demoPolicy(svc)); err != nil {
					return nil, fmt.Errorf("demo policy: %w", err)
				}
			}
		}
	}
	leader, err := headquarter.NewLeader(headquarter.LeaderConfig{Client: cli, Logger: log.With("component", "leader")})
	if err != nil {
		return nil, err
	}
	scaler := orchestratorScaler{orch: orch, defaultEnv: cfg.autoscalerEnv()}
	loop, err := headquarter.NewLoop(headquarter.LoopConfig{
		Observer: scoutObserver{scout: sc}, Scaler: leader.Fenced(scaler), Policies: store,
		Decisions: leader.FencedDecisions(store), Fence: leader.Fence,
		Interval: ac.interval(), Logger: log.With("component", "headquarter"), Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	return &autoscaler{
		scout: sc, store: store, leader: leader, loop: loop,
		manual: manualScaler{scaler: scaler, leader: leader, policies: store, decisions: leader.FencedDecisions(store), log: log, now: time.Now},
	}, nil
}

// newManualScaler is the manual scaler of a kplane whose autoscaler is
// off: no election runs, so nothing fences it; orch serializes the scales
// of one target across replicas (lockedOrchestrator). Its scales are
// recorded as "manual" decisions in the SQL store, in progress first, as
// with the autoscaler on, and listed by GET /api/v1/decisions. With no
// leader, nothing marks a scale cut short by a crash interrupted: it
// stays in progress.
func newManualScaler(cfg Config, db *sql.DB, orch signalman.Orchestrator, log *slog.Logger) (manualScaler, *headquarter.SQLStore) {
	store := headquarter.NewSQLStore(db, nil)
	return manualScaler{scaler: orchestratorScaler{orch: orch, defaultEnv: cfg.autoscalerEnv()},
		policies: store, decisions: store, log: log, now: time.Now}, store
}

// run observes on every replica and decides only while leading.
func (a *autoscaler) run(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- a.scout.Run(ctx) }()
	err := a.leader.Run(ctx, a.loop.Run)
	return errors.Join(err, <-done)
}

// configureWeb gives the console and API the autoscaler; a nil autoscaler
// leaves them saying it is not configured.
func (a *autoscaler) configureWeb(c *web.Config) {
	if a == nil {
		return
	}
	c.Policies, c.Decisions, c.Scaler, c.Observations = a.store, a.store, a.manual, a.scout
}

// The adapters between scout, headquarter and signalman. Those packages do
// not know each other: headquarter declares the Observer and Scaler it
// consumes, and main connects them here.

// actionManual marks a decision a person made through the API or CLI.
const actionManual = headquarter.Action("manual")

// scoutObserver gives headquarter scout's latest snapshot as Inputs.
type scoutObserver struct {
	scout interface{ Latest() scout.Snapshot }
}

var _ headquarter.Observer = scoutObserver{}

// Observe converts the latest snapshot. A missing scout sample stays
// missing, with its reason: it must never read as zero.
func (o scoutObserver) Observe(context.Context) (map[string]headquarter.Input, error) {
	snap := o.scout.Latest()
	if snap.Time.IsZero() {
		return nil, errors.New("scout has not observed anything yet")
	}
	out := make(map[string]headquarter.Input, len(snap.Services))
	for name, ss := range snap.Services {
		out[name] = headquarter.Input{
			Service:   name,
			Instances: ss.Instances,
			QPS:       hqSample(ss.Metrics[scout.QPS]),
			CPU:       hqSample(ss.Metrics[scout.CPU]),
			Memory:    hqSample(ss.Metrics[scout.Memory]),
		}
	}
	return out, nil
}

func hqSample(s scout.Sample) headquarter.Sample {
	if s.Missing || s.Time.IsZero() {
		reason := s.Reason
		if reason == "" {
			reason = "not measured"
		}
		return headquarter.MissingSample(reason)
	}
	return headquarter.Value(s.Value, s.Time)
}

// orchestratorScaler carries headquarter's decisions out through a
// signalman orchestrator, translating its errors into typed outcomes.
type orchestratorScaler struct {
	orch       signalman.Orchestrator
	defaultEnv string // for policies that name no environment
}

var _ headquarter.Scaler = orchestratorScaler{}

func (s orchestratorScaler) Scale(ctx context.Context, req headquarter.ScaleRequest) (headquarter.Outcome, error) {
	res, err := s.scale(ctx, req.Service, req.Env, req.Instances)
	switch {
	case errors.Is(err, signalman.ErrBusy):
		return headquarter.OutcomeBusy, nil
	case err != nil:
		return headquarter.OutcomeFailed, err
	case res.NoOp():
		return headquarter.OutcomeNoOp, nil
	}
	return headquarter.OutcomeDone, nil
}

func (s orchestratorScaler) scale(ctx context.Context, service, env string, n int) (signalman.Result, error) {
	if env == "" {
		env = s.defaultEnv
	}
	return s.orch.Scale(ctx, signalman.Target{Service: service, Env: env}, n)
}

// fence is what a manual scale asks for its term: the leader's fence.
type fence interface {
	Fence() (headquarter.Fence, error)
}

// manualScaler serves POST /api/v1/services/{service}/scale. Like the
// Loop, it stores a "manual" decision in progress before acting and its
// outcome when the orchestrator returns, so a scale cut short by a crash
// is on record; with the autoscaler on (leader set), only the leader
// scales, the decision carries its term, and decisions is the fenced
// store, so the next leader marks a cut-short scale interrupted and a
// deposed leader's writes are refused.
type manualScaler struct {
	scaler    orchestratorScaler
	leader    fence
	policies  headquarter.PolicyStore
	decisions headquarter.DecisionStore
	log       *slog.Logger
	now       func() time.Time
}

func (m manualScaler) ScaleManually(ctx context.Context, service string, n int, by string) (signalman.Result, error) {
	if n < 0 {
		return signalman.Result{}, fmt.Errorf("%w: %d instances", signalman.ErrInvalid, n)
	}
	var term int64
	if m.leader != nil {
		f, err := m.leader.Fence()
		if err != nil {
			return signalman.Result{}, fmt.Errorf("manual scale of %s: %w", service, err)
		}
		term = f.Revision
	}
	env := ""
	if p, err := m.policies.Policy(ctx, service); err == nil {
		env = p.Env
	}
	d := headquarter.Decision{
		Time: m.now(), Service: service, Env: env, Action: actionManual,
		Reason: fmt.Sprintf("manual scale to %d by %s", n, by),
		From:   m.instances(ctx, service, env), To: n, Term: term,
	}
	// Without its intent on record it does not act, as the Loop does not.
	d, err := m.decisions.Start(ctx, d)
	if err != nil {
		return signalman.Result{}, fmt.Errorf("manual scale of %s: store the decision before acting: %w", service, err)
	}
	res, err := m.scaler.scale(ctx, service, env, n)
	d.Outcome, d.Finished = headquarter.OutcomeDone, m.now()
	if err == nil || res.From != 0 || res.To != 0 {
		d.From = res.From // what the orchestrator found, not the earlier count
	}
	switch {
	case errors.Is(err, signalman.ErrBusy):
		d.Outcome, d.Error = headquarter.OutcomeBusy, err.Error()
	case err != nil:
		d.Outcome, d.Error = headquarter.OutcomeFailed, err.Error()
	case res.NoOp():
		d.Outcome = headquarter.OutcomeNoOp
	}
	// Stored even when the request's context ended: the scale happened.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ferr := m.decisions.Finish(fctx, d); ferr != nil {
		m.log.Warn("cannot store the outcome of a manual scale", "service", service, "decision", d.ID, "outcome", string(d.Outcome), "err", ferr)
	}
	return res, err
}

// instances is the count a manual scale starts from, for its intent; the
// orchestrator's result replaces it. Unknown (0) when it cannot be listed.
func (m manualScaler) instances(ctx context.Context, service, env string) int {
	if env == "" {
		env = m.scaler.defaultEnv
	}
	in, err := m.scaler.orch.Instances(ctx, signalman.Target{Service: service, Env: env})
	if err != nil {
		return 0
	}
	return len(in)
}

// envRegistry shows scout only the instances of one environment, the
// autoscaler's (Config.autoscalerEnv). The same service also runs in
// HAWAII's alpha, qa and prod environments, whose instances are neither
// this environment's capacity nor its load.
type envRegistry struct {
	all scout.Registry
	env string
}

func (r envRegistry) Services() []registry.Service {
	var out []registry.Service
	for _, svc := range r.all.Services() {
		var in []registry.Instance
		for _, inst := range svc.Instances {
			if inst.Env == r.env {
				in = append(in, inst)
			}
		}
		if len(in) > 0 {
			out = append(out, registry.Service{Name: svc.Name, Instances: in})
		}
	}
	return out
}

// promQueries overlays the configured PromQL on the defaults; nil keeps
// the defaults entirely.
func promQueries(custom map[string]string) map[scout.Metric]string {
	if len(custom) == 0 {
		return nil
	}
	q := scoutprom.DefaultQueries(scoutprom.DefaultCPULimit, scoutprom.DefaultMemoryLimit)
	for k, v := range custom {
		q[scout.Metric(k)] = v
	}
	return q
}
