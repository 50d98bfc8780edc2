package headquarter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Observer reports the current state of every service. cmd adapts scout's
// snapshot to it.
//
// A service absent from the map is unobserved: it is held with a
// missing-data decision and never scaled, because its instance count is
// unknown. An observer that knows a service has no registered instances
// reports it with Instances 0, so that it is scaled back up to its min.
type Observer interface {
	Observe(ctx context.Context) (map[string]Input, error)
}

// ScaleRequest asks for a service to run Instances instances.
type ScaleRequest struct {
	Service   string
	Env       string
	Instances int
}

// Scaler carries out decisions. cmd adapts signalman's orchestrator to it.
//
// Scale returns when the instances are registered (or stopped), or fails.
// The outcome is one of OutcomeDone (the count changed), OutcomeNoOp
// (nothing needed to change: no cooldown starts), OutcomeBusy (the
// orchestrator is busy with this service: retried on a later tick) or
// OutcomeFailed with a non-nil error. An error with any other outcome
// counts as failed. Scale must honour ctx: it is cancelled when the Loop
// stops or this process loses the leadership.
type Scaler interface {
	Scale(ctx context.Context, req ScaleRequest) (Outcome, error)
}

// PolicyLister lists the policies the Loop evaluates; PolicyStore
// implements it.
type PolicyLister interface {
	Policies(ctx context.Context) ([]Policy, error)
}

// Clock tells the time. Nil in a Config means the real clock.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Loop defaults.
const (
	DefaultInterval     = 5 * time.Second
	DefaultScaleTimeout = 2 * time.Minute
)

// LoopConfig configures a Loop. Observer, Scaler and Policies are
// required; every other zero value is safe.
type LoopConfig struct {
	Observer Observer
	Scaler   Scaler
	Policies PolicyLister
	// Decisions stores noteworthy decisions; nil only logs them. An
	// executed decision is stored in progress before the Scaler is called
	// and finished when it returns; a Scaler is not called when its
	// intent could not be stored. Under a Leader, give it
	// Leader.FencedDecisions, so that a deposed leader's writes are refused.
	Decisions DecisionStore
	// Fence returns the leadership term the Loop runs in (Leader.Fence):
	// its revision is stamped on executed decisions, and at the start of
	// Run the decisions other terms left in progress are marked
	// interrupted. Nil means no election: every decision left in
	// progress is an earlier run's.
	Fence func() (Fence, error)
	// Interval between ticks; zero is DefaultInterval.
	Interval time.Duration
	// ScaleTimeout bounds one Scale call; zero is DefaultScaleTimeout.
	ScaleTimeout time.Duration
	// Clock gives "now" to Evaluate; nil is the real clock. Ticks come from
	// a time.Ticker, so tests run the Loop inside testing/synctest.
	Clock Clock
	// Logger; nil discards.
	Logger *slog.Logger
	// Registerer receives the loop's metrics; nil means no metrics.
	Registerer prometheus.Registerer
	// OnTick, if set, is called on the loop's goroutine after each tick.
	OnTick func(TickReport)
}

// TickReport summarises one tick.
type TickReport struct {
	// Scheduled is when the tick was due; Lag is how long after that every
	// service had been evaluated and its scale dispatched.
	Scheduled time.Time
	Lag       time.Duration
	// Work is the part of Lag spent in the tick itself (observe, list
	// policies, evaluate, dispatch); the rest waited for the CPU.
	Work      time.Duration
	Evaluated int
	// Dispatched counts Scale calls started; Recorded counts held
	// decisions handed to the store (executed ones are stored in progress
	// by their own goroutine before the Scaler is called).
	Dispatched int
	Recorded   int
	// ObserveError is the observer's error, if any.
	ObserveError error
}

// Loop evaluates every service with a policy on each tick and hands
// decisions to the Scaler, one goroutine per scaling service, so that a
// slow Scale delays nobody else. It is meant to run only on the leader:
// run it under Leader.Run.
type Loop struct {
	cfg   LoopConfig
	log   *slog.Logger
	clock Clock
	m     loopMetrics

	// Owned by the Run goroutine.
	services map[string]*service
	policies []Policy
	gen      uint64
	term     int64
	// swept is set once the decisions earlier terms left in progress
	// have been marked interrupted.
	swept bool

	results chan Decision
	record  chan []Decision
}

// NewLoop checks cfg and registers the loop's metrics.
func NewLoop(cfg LoopConfig) (*Loop, error) {
	if cfg.Observer == nil || cfg.Scaler == nil || cfg.Policies == nil {
		return nil, errors.New("headquarter: loop needs an Observer, a Scaler and Policies")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.ScaleTimeout <= 0 {
		cfg.ScaleTimeout = DefaultScaleTimeout
	}
	l := &Loop{cfg: cfg, log: cfg.Logger, clock: cfg.Clock}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.clock == nil {
		l.clock = realClock{}
	}
	m, err := newLoopMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("headquarter: metrics: %w", err)
	}
	l.m = m
	return l, nil
}

// service is the Loop's memory of one service with a policy.
type service struct {
	state    State
	inflight bool
	// gen is the tick that last saw the service's policy.
	gen uint64
	// current and desired are its gauges, looked up once: hashing label
	// values for 10,000 services every tick is a large share of a tick.
	current, desired prometheus.Gauge
}

// recordQueue is how many batches of decisions may wait for the store
// before a tick drops its batch rather than wait: the loop must not stall
// on a slow database.
const recordQueue = 64

// recordTimeout bounds one write of decisions.
const recordTimeout = 10 * time.Second

// Run ticks until ctx ends, then waits for in-flight Scale calls (whose
// context it cancels) and for their decisions to be stored. It returns nil
// when ctx ends; the loop's state (cooldowns, windows) starts fresh on the
// next Run.
func (l *Loop) Run(ctx context.Context) error {
	l.services = map[string]*service{}
	l.swept, l.term = false, 0
	if l.cfg.Fence != nil {
		if f, err := l.cfg.Fence(); err == nil {
			l.term = f.Revision
		}
	}
	l.results = make(chan Decision, 64)
	l.record = make(chan []Decision, recordQueue)

	ctx, cancel := context.WithCancel(ctx)
	var scales, recorder sync.WaitGroup
	recorder.Go(func() { l.recordLoop(context.WithoutCancel(ctx)) })
	defer func() {
		cancel()
		scales.Wait()
		close(l.record)
		recorder.Wait()
	}()

	ticker := time.NewTicker(l.cfg.Interval)
	defer ticker.Stop()
	l.tick(ctx, &scales, l.clock.Now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case t := <-ticker.C:
			l.tick(ctx, &scales, t)
		case d := <-l.results:
			l.finish(d)
		}
	}
}

func (l *Loop) tick(ctx context.Context, scales *sync.WaitGroup, scheduled time.Time) {
	// Apply finished scales first, so that this tick sees their cooldowns.
	for {
		select {
		case d := <-l.results:
			l.finish(d)
			continue
		default:
		}
		break
	}
	if !l.swept {
		l.swept = l.interruptEarlier(ctx)
	}
	now := l.clock.Now()
	rep := TickReport{Scheduled: scheduled}
	start := time.Now()

	inputs, err := l.cfg.Observer.Observe(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		rep.ObserveError = err
		l.log.Warn("observe failed", "err", err)
	}
	if ps, err := l.cfg.Policies.Policies(ctx); err != nil {
		if ctx.Err() != nil {
			return
		}
		l.log.Warn("list policies failed, using the previous list", "err", err, "policies", len(l.policies))
	} else {
		l.policies = ps
	}

	l.gen++
	var batch, execs []Decision
	for _, p := range l.policies {
		svc := p.Service
		e := l.services[svc]
		if e == nil {
			e = &service{current: l.m.current.WithLabelValues(svc), desired: l.m.desired.WithLabelValues(svc)}
			l.services[svc] = e
		}
		e.gen = l.gen
		in, ok := inputs[svc]
		switch {
		case rep.ObserveError != nil:
			in = Input{Service: svc, Missing: "observe failed: " + rep.ObserveError.Error()}
		case !ok:
			in = Input{Service: svc, Missing: "service not in the observation"}
		}
		in.Busy = e.inflight
		d, st := Evaluate(p, e.state, in, now)
		e.state = st
		rep.Evaluated++
		e.current.Set(float64(d.From))
		e.desired.Set(float64(d.To))
		if d.Noteworthy() {
			l.m.decisions.WithLabelValues(svc, string(d.Action), string(d.Guard)).Inc()
		}
		switch {
		case d.Executes():
			e.inflight = true
			execs = append(execs, d)
		case d.Noteworthy():
			batch = append(batch, d)
		}
	}
	// Dispatched once every service is evaluated: each scale first
	// stores its intent, and those writes would otherwise take the CPU
	// from the evaluation of the services after it.
	for _, d := range execs {
		scales.Go(func() { l.scale(ctx, d) })
	}
	rep.Dispatched = len(execs)
	if len(l.services) > rep.Evaluated {
		for svc, e := range l.services {
			if e.gen != l.gen && !e.inflight {
				delete(l.services, svc)
				l.m.forget(svc)
			}
		}
	}
	if len(batch) > 0 {
		select {
		case l.record <- batch:
			rep.Recorded = len(batch)
		default:
			l.m.dropped.Add(float64(len(batch)))
			l.log.Warn("decision store is behind, dropping this tick's held decisions", "decisions", len(batch))
		}
	}
	rep.Lag = l.clock.Now().Sub(scheduled)
	rep.Work = time.Since(start)
	l.m.lag.Observe(rep.Lag.Seconds())
	if l.cfg.OnTick != nil {
		l.cfg.OnTick(rep)
	}
}

// scale stores one decision in progress, runs it through the Scaler,
// stores its outcome and reports it back to Run. Without its intent on
// record it does not act: a leader that died midway would leave an
// action nobody can see.
func (l *Loop) scale(ctx context.Context, d Decision) {
	d.Term = l.term
	log := l.log.With("service", d.Service, "from", d.From, "to", d.To)
	stored, err := l.start(ctx, d)
	if err != nil {
		d.Outcome, d.Error, d.Finished = OutcomeFailed, err.Error(), l.clock.Now()
		if errors.Is(err, ErrNotLeader) {
			log.Warn("not scaling: leadership lost, the decision was refused", "err", err)
		} else if ctx.Err() == nil {
			log.Warn("not scaling: cannot store the decision before acting", "err", err)
		}
		l.m.dropped.Inc()
		l.report(ctx, d)
		return
	}
	d = stored
	sctx, cancel := context.WithTimeout(ctx, l.cfg.ScaleTimeout)
	out, err := l.cfg.Scaler.Scale(sctx, ScaleRequest{Service: d.Service, Env: d.Env, Instances: d.To})
	cancel()
	switch {
	case err != nil && out != OutcomeBusy:
		out = OutcomeFailed
	case err == nil && out != OutcomeDone && out != OutcomeNoOp && out != OutcomeBusy:
		err = fmt.Errorf("scaler returned outcome %q without an error", out)
		out = OutcomeFailed
	}
	d.Outcome = out
	if err != nil {
		d.Error = err.Error()
	}
	d.Finished = l.clock.Now()
	log = log.With("outcome", string(out))
	if out == OutcomeFailed {
		log.Warn("scale failed", "err", err)
	} else {
		log.Info("scaled", "reason", d.Reason)
	}
	// Stored even when ctx ended: the decision happened and explains why
	// instances may be changing. Refused if leadership was lost: the next
	// leader marks it interrupted.
	l.finishStored(context.WithoutCancel(ctx), d, log)
	l.m.outcome(d)
	l.report(ctx, d)
}

func (l *Loop) report(ctx context.Context, d Decision) {
	select {
	case l.results <- d:
	case <-ctx.Done():
	}
}

// start stores d in progress; without a store it only gets the outcome.
func (l *Loop) start(ctx context.Context, d Decision) (Decision, error) {
	d.Outcome = OutcomeInProgress
	if l.cfg.Decisions == nil {
		return d, nil
	}
	ctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	return l.cfg.Decisions.Start(ctx, d)
}

func (l *Loop) finishStored(ctx context.Context, d Decision, log *slog.Logger) {
	if l.cfg.Decisions == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	err := l.cfg.Decisions.Finish(ctx, d)
	switch {
	case err == nil:
	case errors.Is(err, ErrNotLeader):
		log.Warn("outcome not stored: leadership lost; the next leader marks the decision interrupted", "decision", d.ID, "err", err)
	case errors.Is(err, ErrEnded):
		log.Warn("outcome not stored: a newer leader interrupted the decision", "decision", d.ID)
	default:
		l.m.dropped.Inc()
		log.Warn("outcome not stored", "decision", d.ID, "err", err)
	}
}

// interruptEarlier marks the decisions other terms left in progress as
// interrupted, and reports whether that is done (or nothing is stored).
func (l *Loop) interruptEarlier(ctx context.Context) bool {
	if l.cfg.Decisions == nil {
		return true
	}
	ictx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	ds, err := l.cfg.Decisions.Interrupt(ictx, l.term, l.clock.Now())
	if err != nil {
		if ctx.Err() == nil {
			l.log.Warn("cannot mark the decisions an earlier leader left in progress; retrying next tick", "err", err)
		}
		return false
	}
	for _, d := range ds {
		l.m.outcome(d)
		l.log.Warn("action interrupted by a change of leader", "service", d.Service, "from", d.From, "to", d.To,
			"decision", d.ID, "term", d.Term, "started", d.Time)
	}
	return true
}

// finish applies a finished scale to the service's state.
func (l *Loop) finish(d Decision) {
	if e := l.services[d.Service]; e != nil {
		e.inflight = false
		e.state = e.state.Apply(d)
	}
}

func (l *Loop) recordLoop(ctx context.Context) {
	for batch := range l.record {
		l.recordNow(ctx, batch)
	}
}

func (l *Loop) recordNow(ctx context.Context, batch []Decision) {
	if l.cfg.Decisions == nil {
		for _, d := range batch {
			l.log.Debug("decision", "service", d.Service, "action", string(d.Action), "guard", string(d.Guard), "reason", d.Reason)
		}
		return
	}
	ctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	if err := l.cfg.Decisions.Record(ctx, batch...); err != nil {
		l.m.dropped.Add(float64(len(batch)))
		if errors.Is(err, ErrNotLeader) {
			l.log.Warn("decisions not stored: leadership lost", "err", err, "decisions", len(batch))
			return
		}
		l.log.Warn("record decisions failed", "err", err, "decisions", len(batch))
	}
}

type loopMetrics struct {
	decisions *prometheus.CounterVec
	outcomes  *prometheus.CounterVec
	desired   *prometheus.GaugeVec
	current   *prometheus.GaugeVec
	lag       prometheus.Histogram
	dropped   prometheus.Counter
}

func newLoopMetrics(reg prometheus.Registerer) (loopMetrics, error) {
	m := loopMetrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kplane_headquarter_decisions_total",
			Help: "Noteworthy autoscaler decisions (acting or held back by a guard), by service, action and guard.",
		}, []string{"service", "action", "guard"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kplane_headquarter_scale_outcomes_total",
			Help: "Scale calls by service and outcome (done, noop, busy, failed, and interrupted for those an earlier leader left in progress).",
		}, []string{"service", "outcome"}),
		desired: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kplane_headquarter_desired_instances",
			Help: "Instances the last evaluation asked for (equal to current when holding).",
		}, []string{"service"}),
		current: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kplane_headquarter_current_instances",
			Help: "Registered instances at the last evaluation.",
		}, []string{"service"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kplane_headquarter_tick_lag_seconds",
			Help:    "Time from a tick being due to every service evaluated and its scale dispatched.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kplane_headquarter_decisions_dropped_total",
			Help: "Decisions not stored because the store failed or fell behind.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.decisions, m.outcomes, m.desired, m.current, m.lag, m.dropped} {
		if err := reg.Register(c); err != nil {
			return loopMetrics{}, err
		}
	}
	return m, nil
}

func (m loopMetrics) outcome(d Decision) {
	m.outcomes.WithLabelValues(d.Service, string(d.Outcome)).Inc()
}

func (m loopMetrics) forget(service string) {
	m.current.DeleteLabelValues(service)
	m.desired.DeleteLabelValues(service)
	m.decisions.DeletePartialMatch(prometheus.Labels{"service": service})
	m.outcomes.DeletePartialMatch(prometheus.Labels{"service": service})
}
