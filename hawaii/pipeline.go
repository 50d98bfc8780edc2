package hawaii

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/signalman"
)

// The pipeline runner.
//
// alpha runs automatically on every new build: a throwaway environment
// alpha-b<ID> with the build and its dependencies (their registry tag is
// the environment, so they call only each other), the alpha test jobs
// against it, results stored, the environment destroyed whatever
// happened. qa runs automatically once alpha is green: a rolling deploy
// into the long-lived qa environment, then the qa jobs. prod is only ever
// entered by Promote (a person) or Rollback. A lock or pin on an
// environment holds automation and promotion out of it.

// Job is one test job: a command run against an environment that writes
// a JUnit XML report to the file named by $KPLANE_JUNIT. It also gets
// KPLANE_ENV, KPLANE_SERVICE, KPLANE_VERSION and KPLANE_BUILD_ID.
type Job struct {
	Name    string        `json:"name" yaml:"name"`
	Command []string      `json:"command" yaml:"command"`
	Timeout time.Duration `json:"timeout,omitempty" yaml:"timeout"` // 0 means 5 minutes
}

// ServicePipeline is one service's pipeline configuration.
type ServicePipeline struct {
	Service string `json:"service" yaml:"service"`
	// Dependencies are started in the alpha environment too, at the
	// version given ("service@version"), so the build's calls stay inside.
	Dependencies []string `json:"dependencies,omitempty" yaml:"dependencies"`
	Alpha        []Job    `json:"alpha" yaml:"alpha"`
	QA           []Job    `json:"qa" yaml:"qa"`
}

// Deployer is what the pipeline needs from signalman; *signalman.Deployer
// implements it.
type Deployer interface {
	Deploy(ctx context.Context, req signalman.DeployRequest) (signalman.Deploy, error)
	Begin(req signalman.DeployRequest) (signalman.Deploy, error)
	Get(ctx context.Context, id string) (signalman.Deploy, error)
	Subscribe(ctx context.Context, id string) (<-chan struct{}, func(), error)
	List(ctx context.Context, t signalman.Target, limit int) ([]signalman.Deploy, error)
	CreateEnv(ctx context.Context, env string, services []signalman.EnvService) ([]signalman.Deploy, error)
	DestroyEnv(ctx context.Context, env string) error
}

var _ Deployer = (*signalman.Deployer)(nil)

// PipelineConfig configures a Pipeline. Store and Deployer are required.
type PipelineConfig struct {
	Store     Store
	Deployer  Deployer
	Pipelines []ServicePipeline
	Logger    *slog.Logger     // nil discards
	Now       func() time.Time // nil is time.Now
	// Poll is how often new builds are looked for; 0 means 2 s.
	Poll time.Duration
	// EnvTimeout is how long an alpha environment may live before the
	// cleaner destroys it; 0 means 15 minutes.
	EnvTimeout time.Duration
	// Owner names this replica in the promotions it runs (Runner); Run
	// ends as failed those a previous life with the same Owner left
	// unfinished. Different between replicas sharing a Store; "" is fine
	// for one process. kplane names every process afresh and leaves a
	// previous life's promotions to the Sweeper.
	Owner string
	// Fence, if set, is asked before every write of the automatic stages
	// (their stage records, promotions, results and audit events, and the
	// marks Run leaves on interrupted ones): it returns nil while this
	// replica leads, an error wrapping ErrNotLeader once it does not, and
	// any other error when it cannot tell (asked again a few times, then
	// taken as not leading). A refused write is logged and dropped whole.
	// A person's promotions and rollbacks are not fenced: any replica
	// serves them. Nil means no election.
	Fence func(ctx context.Context) error
}

// ErrBlocked means a promotion or rollback is refused; a *BlockedError
// lists why.
var ErrBlocked = errors.New("promotion blocked")

// BlockedError lists every reason a promotion is refused.
type BlockedError struct{ Blockers []Blocker }

func (e *BlockedError) Error() string {
	msgs := make([]string, len(e.Blockers))
	for i, b := range e.Blockers {
		msgs[i] = b.Message
	}
	return "promotion blocked: " + strings.Join(msgs, "; ")
}

func (e *BlockedError) Unwrap() error { return ErrBlocked }

// Only reports whether every blocker is one of codes.
func (e *BlockedError) Only(codes ...string) bool {
	for _, b := range e.Blockers {
		found := false
		for _, c := range codes {
			found = found || b.Code == c
		}
		if !found {
			return false
		}
	}
	return true
}

// Pipeline runs alpha and qa, and promotes and rolls back prod.
type Pipeline struct {
	cfg   PipelineConfig
	store Store
	// auto is what the automatic stages write through: the Store, fenced
	// when PipelineConfig.Fence is set.
	auto stageWriter
	dep  Deployer
	log  *slog.Logger
	now  func() time.Time

	// prodMu serialises the check-then-start of prod promotions and
	// rollbacks, so two clicks cannot both pass the review.
	prodMu sync.Mutex

	// mu guards the promotions being run here (their copies in the
	// Store are written after each change) and the environment sets.
	mu        sync.Mutex
	alphaEnvs map[string]bool // live alpha environments of this runner
	destroyed map[string]bool // alpha environments the cleaner removed
	wg        sync.WaitGroup
}

// NewPipeline returns a pipeline; Run drives it.
func NewPipeline(cfg PipelineConfig) (*Pipeline, error) {
	if cfg.Store == nil || cfg.Deployer == nil {
		return nil, errors.New("hawaii: PipelineConfig needs a Store and a Deployer")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.EnvTimeout <= 0 {
		cfg.EnvTimeout = 15 * time.Minute
	}
	p := &Pipeline{cfg: cfg, store: cfg.Store, dep: cfg.Deployer, log: cfg.Logger, now: cfg.Now,
		alphaEnvs: map[string]bool{}, destroyed: map[string]bool{}}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.auto = cfg.Store
	if cfg.Fence != nil {
		p.auto = fencedWriter{next: cfg.Store, fence: cfg.Fence}
	}
	return p, nil
}

// Services lists the services with a configured pipeline.
func (p *Pipeline) Services() []string {
	out := make([]string, 0, len(p.cfg.Pipelines))
	for _, sp := range p.cfg.Pipelines {
		out = append(out, sp.Service)
	}
	return out
}

func (p *Pipeline) pipelineOf(service string) (ServicePipeline, bool) {
	for _, sp := range p.cfg.Pipelines {
		if sp.Service == service {
			return sp, true
		}
	}
	return ServicePipeline{}, false
}

// AlphaEnv is the throwaway environment of a build.
func AlphaEnv(id int64) string { return "alpha-b" + strconv.FormatInt(id, 10) }

// Run ends the promotions a previous life of this replica left unfinished,
// then runs alpha and qa for new builds and the cleaner until ctx ends,
// then waits for the rollouts it follows.
func (p *Pipeline) Run(ctx context.Context) error {
	if err := p.interrupted(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	t := time.NewTicker(p.cfg.Poll)
	defer t.Stop()
	defer p.wg.Wait()
	for {
		p.tick(ctx)
		p.clean(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// tick runs the automatic stages of every configured service's builds,
// oldest first, one at a time.
func (p *Pipeline) tick(ctx context.Context) {
	for _, sp := range p.cfg.Pipelines {
		builds, err := p.store.Builds(ctx, BuildQuery{Service: sp.Service, Limit: 20})
		if err != nil {
			if ctx.Err() == nil {
				p.log.Error("list builds", "service", sp.Service, "err", err)
			}
			return
		}
		for i := len(builds) - 1; i >= 0 && ctx.Err() == nil; i-- {
			b := builds[i]
			switch {
			case b.Stage(StageAlpha).Status == StatusPending:
				if p.held(ctx, sp.Service, string(StageAlpha)) == nil {
					p.runAlpha(ctx, sp, b.Build)
				}
			case b.Stage(StageAlpha).Status == StatusPassed && b.Stage(StageQA).Status == StatusPending:
				if p.held(ctx, sp.Service, string(StageQA)) == nil {
					p.runQA(ctx, sp, b.Build)
				}
			}
		}
	}
}

// InterruptedReason is the error of a promotion whose replica stopped
// while it ran.
const InterruptedReason = "interrupted: kplane stopped while it ran"

// interrupted fails the promotions this replica left unfinished, and
// their stages, which would otherwise show running for ever (and, for
// alpha and qa, never run again). Run is called at the start of each
// leadership term, and only the leader runs the automatic stages: a
// running automatic promotion of another replica is a previous leader's,
// whose term etcd has ended (it crashed or lost its session), so it is
// failed too, once, by the new leader, and an alpha environment it left
// is destroyed. A person's promotions (promote, rollback) run on the
// replica that served the request and stay that replica's to end.
func (p *Pipeline) interrupted(ctx context.Context) error {
	running, err := p.store.Promotions(ctx, PromotionQuery{Running: true, Limit: MaxLimit})
	if err != nil {
		return fmt.Errorf("promotions left running: %w", err)
	}
	for _, pr := range running {
		if pr.Runner != p.cfg.Owner && pr.Kind != KindAutomatic {
			continue
		}
		if err := pr.Advance(PromotionFailed, p.now(), InterruptedReason); err != nil {
			return err
		}
		if _, err := p.auto.SavePromotion(ctx, pr); err != nil {
			return err
		}
		b, err := p.store.Build(ctx, pr.BuildID)
		if err != nil {
			return err
		}
		if rec := b.Stage(Stage(pr.Env)); rec.Status == StatusRunning {
			rec.Status, rec.Finished = StatusFailed, p.now()
			for i := range rec.Steps {
				if rec.Steps[i].Status == StatusRunning {
					rec.Steps[i].Status, rec.Steps[i].Finished, rec.Steps[i].Message = StatusFailed, p.now(), InterruptedReason
				}
			}
			if env := pr.RunEnv; Stage(pr.Env) == StageAlpha && strings.HasPrefix(env, "alpha-b") {
				// What runAlpha's deferred destroy would have done; else the
				// cleaner removes it only after EnvTimeout.
				step := Step{Name: "destroy environment " + env, Status: StatusPassed, Started: p.now()}
				if err := p.dep.DestroyEnv(ctx, env); err != nil {
					step.Status, step.Message = StatusFailed, err.Error()
				} else {
					p.mu.Lock()
					p.destroyed[env] = true
					p.mu.Unlock()
				}
				step.Finished = p.now()
				rec.Steps = append(rec.Steps, step)
			}
			if _, err := p.auto.SetStage(ctx, rec); err != nil {
				return err
			}
		}
		p.auditTo(ctx, p.auto, Event{Actor: "pipeline", Action: ActionStageChanged, Service: pr.Service, BuildID: pr.BuildID,
			Stage: Stage(pr.Env), Details: Details(map[string]string{"status": string(StatusFailed), "reason": InterruptedReason})})
		p.log.Warn("promotion interrupted by the last stop marked failed", "promotion", pr.ID, "build", pr.BuildID, "env", pr.Env, "runner", pr.Runner)
	}
	return nil
}

// held returns what keeps automation out of env, or nil. A store that
// cannot say holds it too.
func (p *Pipeline) held(ctx context.Context, service, env string) []string {
	locks, pins, err := p.store.LocksAndPins(ctx, service)
	if err != nil {
		return []string{"locks unknown: " + err.Error()}
	}
	return Holds(locks, pins, service, env, p.now())
}

// stage tracks one stage run: its promotion, its stored record.
type stageRun struct {
	p     *Pipeline
	w     stageWriter // p.auto for the automatic stages
	promo *Promotion
	rec   StageRecord
	// lost is set once a write was refused because this replica no
	// longer leads: the run does nothing more.
	lost bool
}

func (p *Pipeline) begin(ctx context.Context, b Build, st Stage, kind, by string) *stageRun {
	now := p.now()
	pr := &Promotion{BuildID: b.ID, Service: b.Service, Version: b.Version, Env: string(st),
		Kind: kind, State: PromotionPending, By: by, Started: now, Updated: now, Runner: p.cfg.Owner}
	r := &stageRun{p: p, w: p.store, promo: pr, rec: StageRecord{BuildID: b.ID, Stage: st, Status: StatusRunning, Started: now}}
	if kind == KindAutomatic {
		r.w = p.auto
	}
	r.savePromotion(ctx)
	r.save(ctx)
	r.audit(ctx, Event{Actor: actorOr(by), Action: ActionStageChanged, Service: b.Service, BuildID: b.ID, Stage: st,
		Details: Details(map[string]string{"status": string(StatusRunning), "kind": kind})})
	return r
}

// failed logs a write that failed; one refused because leadership was
// lost marks the run lost.
func (r *stageRun) failed(what string, err error, args ...any) {
	if errors.Is(err, ErrNotLeader) {
		r.lost = true
		r.p.log.Warn(what+" refused: this replica no longer leads the pipeline", append(args, "err", err)...)
		return
	}
	r.p.log.Error(what, append(args, "err", err)...)
}

func (r *stageRun) audit(ctx context.Context, e Event) {
	if _, err := r.w.Audit(context.WithoutCancel(ctx), e); err != nil {
		r.failed("audit", err, "action", e.Action)
	}
}

func actorOr(by string) string {
	if by == "" {
		return "pipeline"
	}
	return by
}

// advance moves the promotion on and stores it; ctx is the run's.
func (r *stageRun) advance(ctx context.Context, to PromotionState, reason string) {
	r.p.mu.Lock()
	err := r.promo.Advance(to, r.p.now(), reason)
	r.p.mu.Unlock()
	if err != nil {
		r.p.log.Error("promotion", "err", err)
		return
	}
	r.savePromotion(ctx)
}

// savePromotion writes the promotion, even when the runner is stopping
// (as save does for the stage record); the first write gives it its ID.
func (r *stageRun) savePromotion(ctx context.Context) {
	r.p.mu.Lock()
	pr := *r.promo
	r.p.mu.Unlock()
	saved, err := r.w.SavePromotion(context.WithoutCancel(ctx), pr)
	if err != nil {
		r.failed("save promotion", err, "build", pr.BuildID, "env", pr.Env)
		return
	}
	r.p.mu.Lock()
	r.promo.ID = saved.ID
	r.p.mu.Unlock()
}

// step starts a named step and returns the function that ends it.
func (r *stageRun) step(ctx context.Context, name string) func(err error) {
	r.rec.Steps = append(r.rec.Steps, Step{Name: name, Status: StatusRunning, Started: r.p.now()})
	i := len(r.rec.Steps) - 1
	r.save(ctx)
	return func(err error) {
		s := &r.rec.Steps[i]
		s.Finished = r.p.now()
		s.Status = StatusPassed
		if err != nil {
			s.Status, s.Message = StatusFailed, err.Error()
		}
		r.save(ctx)
	}
}

func (r *stageRun) save(ctx context.Context) {
	// A stage's record must be written even when the runner is stopping,
	// so that the build does not stay "running" for ever.
	ctx = context.WithoutCancel(ctx)
	if _, err := r.w.SetStage(ctx, r.rec); err != nil {
		r.failed("set stage", err, "build", r.rec.BuildID, "stage", r.rec.Stage)
	}
}

func (r *stageRun) finish(ctx context.Context, st Status, reason string) {
	r.rec.Status, r.rec.Finished = st, r.p.now()
	r.save(ctx)
	r.audit(ctx, Event{Actor: "pipeline", Action: ActionStageChanged, Service: r.promo.Service, BuildID: r.rec.BuildID,
		Stage: r.rec.Stage, Details: Details(map[string]string{"status": string(st), "reason": reason})})
}

func (p *Pipeline) audit(ctx context.Context, e Event) { p.auditTo(ctx, p.store, e) }

func (p *Pipeline) auditTo(ctx context.Context, w stageWriter, e Event) {
	if _, err := w.Audit(context.WithoutCancel(ctx), e); err != nil {
		p.log.Error("audit", "action", e.Action, "err", err)
	}
}

func (p *Pipeline) runAlpha(ctx context.Context, sp ServicePipeline, b Build) {
	env := AlphaEnv(b.ID)
	r := p.begin(ctx, b, StageAlpha, KindAutomatic, "")
	if r.lost {
		return // not the leader: create nothing
	}
	r.promo.RunEnv = env
	p.mu.Lock()
	p.alphaEnvs[env] = true
	p.mu.Unlock()
	defer func() {
		done := r.step(ctx, "destroy environment "+env)
		err := p.dep.DestroyEnv(context.WithoutCancel(ctx), env)
		done(err)
		p.mu.Lock()
		delete(p.alphaEnvs, env)
		if err == nil {
			p.destroyed[env] = true
		}
		p.mu.Unlock()
	}()
	services := []signalman.EnvService{{Service: b.Service, Version: b.Version}}
	for _, d := range sp.Dependencies {
		name, version, _ := strings.Cut(d, "@")
		services = append(services, signalman.EnvService{Service: name, Version: version})
	}
	r.advance(ctx, PromotionDeploying, "")
	done := r.step(ctx, "create environment "+env)
	_, err := p.dep.CreateEnv(ctx, env, services)
	done(err)
	if err != nil {
		r.advance(ctx, PromotionFailed, err.Error())
		r.finish(ctx, StatusFailed, err.Error())
		return
	}
	r.advance(ctx, PromotionTesting, "")
	p.runJobs(ctx, r, sp.Alpha, env, b)
}

func (p *Pipeline) runQA(ctx context.Context, sp ServicePipeline, b Build) {
	r := p.begin(ctx, b, StageQA, KindAutomatic, "")
	if r.lost {
		return // not the leader: deploy nothing
	}
	r.promo.RunEnv = string(StageQA)
	r.advance(ctx, PromotionDeploying, "")
	done := r.step(ctx, "rolling deploy to qa")
	d, err := p.dep.Deploy(ctx, signalman.DeployRequest{Target: signalman.Target{Service: b.Service, Env: string(StageQA)},
		Version: b.Version, By: "pipeline"})
	if err == nil && d.State != signalman.DeploySucceeded {
		err = fmt.Errorf("deploy %s ended %s: %s", d.ID, d.State, d.Error)
	}
	done(err)
	if err != nil {
		to := PromotionFailed
		if d.State == signalman.DeployRolledBack {
			to = PromotionRolledBack
		}
		r.advance(ctx, to, err.Error())
		r.finish(ctx, StatusFailed, err.Error())
		return
	}
	r.promo.DeployID = d.ID
	r.advance(ctx, PromotionTesting, "")
	p.runJobs(ctx, r, sp.QA, string(StageQA), b)
}

// runJobs runs the stage's jobs, stores their results and ends the stage.
func (p *Pipeline) runJobs(ctx context.Context, r *stageRun, jobs []Job, env string, b Build) {
	if err := r.w.ClearResults(ctx, b.ID, r.rec.Stage); err != nil {
		r.failed("clear results", err, "build", b.ID)
	}
	var failures []string
	for _, j := range jobs {
		if r.lost {
			return // the new leader ends this stage
		}
		done := r.step(ctx, "test job "+j.Name)
		err := p.runJob(ctx, r.w, j, env, b, r.rec.Stage)
		done(err)
		if err != nil {
			failures = append(failures, j.Name+": "+err.Error())
		}
	}
	if len(jobs) == 0 {
		failures = append(failures, "no test jobs configured for "+string(r.rec.Stage))
	}
	if len(failures) > 0 {
		reason := strings.Join(failures, "; ")
		r.advance(ctx, PromotionFailed, reason)
		r.finish(ctx, StatusFailed, reason)
		return
	}
	r.advance(ctx, PromotionPassed, "")
	r.finish(ctx, StatusPassed, "")
}

func (p *Pipeline) runJob(ctx context.Context, w stageWriter, j Job, env string, b Build, st Stage) error {
	if len(j.Command) == 0 {
		return fmt.Errorf("%w: job %s has no command", ErrInvalid, j.Name)
	}
	timeout := j.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "kplane-job-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	report := filepath.Join(dir, "junit.xml")
	cmd := exec.CommandContext(ctx, j.Command[0], j.Command[1:]...)
	cmd.Env = append(os.Environ(), "KPLANE_ENV="+env, "KPLANE_SERVICE="+b.Service, "KPLANE_VERSION="+b.Version,
		"KPLANE_BUILD_ID="+strconv.FormatInt(b.ID, 10), "KPLANE_JUNIT="+report)
	out, runErr := cmd.CombinedOutput()
	data, readErr := os.ReadFile(report)
	if readErr != nil {
		if runErr != nil {
			return fmt.Errorf("exited: %v: %s", runErr, lastLine(out))
		}
		return fmt.Errorf("wrote no JUnit report to $KPLANE_JUNIT")
	}
	cases, err := ParseJUnit(b.ID, st, data)
	if err != nil {
		return err
	}
	counts, err := w.AddResults(ctx, b.ID, st, cases)
	if err != nil {
		return fmt.Errorf("store results: %w", err)
	}
	if n := counts.Failed + counts.Errored; n > 0 {
		return fmt.Errorf("%d of %d tests failed", n, counts.Total())
	}
	if runErr != nil {
		return fmt.Errorf("exited: %v: %s", runErr, lastLine(out))
	}
	return nil
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return cut(s, 300)
}

// clean destroys alpha environments that outlived EnvTimeout: those a
// crashed or stopped runner left behind.
func (p *Pipeline) clean(ctx context.Context) {
	now := p.now()
	deploys, err := p.dep.List(ctx, signalman.Target{}, 0)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("cleaner: list deploys", "err", err)
		}
		return
	}
	for _, d := range deploys {
		env := d.Target.Env
		if !strings.HasPrefix(env, "alpha-b") || now.Sub(d.Started) < p.cfg.EnvTimeout {
			continue
		}
		p.mu.Lock()
		skip := p.alphaEnvs[env] || p.destroyed[env]
		p.mu.Unlock()
		if skip {
			continue
		}
		if err := p.dep.DestroyEnv(ctx, env); err != nil {
			if ctx.Err() == nil {
				p.log.Warn("cleaner: destroy environment", "env", env, "err", err)
			}
			continue
		}
		p.mu.Lock()
		p.destroyed[env] = true
		p.mu.Unlock()
		p.log.Info("cleaner destroyed an abandoned environment", "env", env, "age", now.Sub(d.Started).Round(time.Second))
		p.auditTo(ctx, p.auto, Event{Actor: "pipeline", Action: "env.cleaned", Service: d.Target.Service,
			Details: Details(map[string]string{"env": env, "reason": "outlived " + p.cfg.EnvTimeout.String()})})
	}
}

// prodHistory returns the service's builds that went to prod, the one in
// prod first (prod stage passed, latest finish first).
func (p *Pipeline) prodHistory(ctx context.Context, service string) ([]BuildView, error) {
	if pl, ok := p.store.(prodLister); ok {
		// The one in prod and the one before it are all callers use.
		return pl.ProdBuilds(ctx, service, 2)
	}
	builds, err := p.store.Builds(ctx, BuildQuery{Service: service, Limit: MaxLimit})
	if err != nil {
		return nil, err
	}
	var out []BuildView
	for _, b := range builds {
		if b.Stage(StageProd).Status == StatusPassed {
			out = append(out, b)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].Stage(StageProd).Finished.After(out[j].Stage(StageProd).Finished)
	})
	return out, nil
}

// InProd returns the build in prod for service, or nil.
func (p *Pipeline) InProd(ctx context.Context, service string) (*Build, error) {
	h, err := p.prodHistory(ctx, service)
	if err != nil || len(h) == 0 {
		return nil, err
	}
	b := h[0].Build
	return &b, nil
}

// runningProd returns the promotion of service into prod that has not
// ended, on any replica, or nil.
func (p *Pipeline) runningProd(ctx context.Context, service string) (*Promotion, error) {
	prs, err := p.store.Promotions(ctx, PromotionQuery{Service: service, Env: string(StageProd), Running: true, Limit: 1})
	if err != nil || len(prs) == 0 {
		return nil, err
	}
	return &prs[0], nil
}

// Review reviews build id for prod as who sees it.
func (p *Pipeline) Review(ctx context.Context, id int64, who auth.Identity, override bool) (Review, error) {
	b, err := p.store.Build(ctx, id)
	if err != nil {
		return Review{}, err
	}
	prod, err := p.InProd(ctx, b.Service)
	if err != nil {
		return Review{}, err
	}
	cand, err := p.store.Results(ctx, id, "")
	if err != nil {
		return Review{}, err
	}
	running, err := p.runningProd(ctx, b.Service)
	if err != nil {
		return Review{}, err
	}
	in := ReviewInput{Candidate: b.Build, Prod: prod, Alpha: b.Stage(StageAlpha).Status, QA: b.Stage(StageQA).Status,
		CandidateTests: CasesOf(cand), Running: running, Viewer: who, Override: override, Now: p.now()}
	if prod != nil {
		pt, err := p.store.Results(ctx, prod.ID, "")
		if err != nil {
			return Review{}, err
		}
		in.ProdTests = CasesOf(pt)
		// The builds between prod and the candidate, for their changelogs.
		lo, hi := prod.ID, b.ID
		// Read back a page at a time and stop at prod: reading MaxLimit
		// builds whatever the distance would cost a review its speed.
		for before := hi + 1; lo < hi && len(in.Between) < MaxLimit; {
			bs, err := p.store.Builds(ctx, BuildQuery{Service: b.Service, Before: before, Limit: DefaultLimit})
			if err != nil {
				return Review{}, err
			}
			for _, x := range bs {
				if x.ID > lo {
					in.Between = append(in.Between, x.Build)
				}
			}
			if len(bs) < DefaultLimit || bs[len(bs)-1].ID <= lo {
				break
			}
			before = bs[len(bs)-1].ID
		}
	} else {
		in.Between = []Build{b.Build}
	}
	if in.Locks, in.Pins, err = p.store.LocksAndPins(ctx, b.Service); err != nil {
		return Review{}, err
	}
	return MakeReview(in), nil
}
