package signalman

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/kplane/kplane/registry"
)

// Rolling deploys.
//
// A deploy replaces the instances of a target with instances of a new
// version in steps bounded by two numbers, the same ones Marathon's
// upgradeStrategy expresses as fractions:
//
//   - MaxSurge: how many instances may run beyond the desired count
//     (Marathon's maximumOverCapacity × count, rounded down);
//   - MaxUnavailable: how many of the desired count may be missing
//     (count − Marathon's minimumHealthCapacity × count, rounded up).
//
// The defaults (surge 1, unavailable 0) keep full capacity throughout:
// start one new instance, gate it, stop one old, repeat. A new instance
// counts once the driver confirmed it registered (Start) and the health
// gate passed; an old one is drained by the driver's Stop.
//
// When a new instance fails its gate, the deploy rolls back: it starts
// instances of the previous version until the count is back (within the
// same surge bound) and stops every new one. The deploy then ends
// rolled_back, or failed if the rollback itself failed or there was no
// previous version to go back to.

// DeployState is where a deploy is.
type DeployState string

const (
	DeployRunning    DeployState = "running"
	DeploySucceeded  DeployState = "succeeded"
	DeployRolledBack DeployState = "rolled_back"
	DeployFailed     DeployState = "failed"
)

// Done reports whether the state is final.
func (s DeployState) Done() bool { return s != DeployRunning }

// Step actions and outcomes.
const (
	ActionStart    = "start"    // start a new-version instance (registered)
	ActionHealth   = "health"   // health gate of a started instance
	ActionStop     = "stop"     // drain and stop an instance
	ActionRollback = "rollback" // the deploy turns back

	OutcomeOK     = "ok"
	OutcomeFailed = "failed"
)

// Step is one recorded action of a deploy.
type Step struct {
	Time     time.Time     `json:"time"`
	Action   string        `json:"action"`
	Instance string        `json:"instance,omitempty"`
	Version  string        `json:"version,omitempty"`
	Outcome  string        `json:"outcome"`
	Error    string        `json:"error,omitempty"`
	Took     time.Duration `json:"tookNanos"`
}

// DeployRequest asks for version of Target. Instances 0 means as many as
// run now (at least one). MaxSurge and MaxUnavailable nil mean 1 and 0.
type DeployRequest struct {
	Target         Target `json:"target"`
	Version        string `json:"version"`
	Instances      int    `json:"instances,omitempty"`
	MaxSurge       *int   `json:"maxSurge,omitempty"`
	MaxUnavailable *int   `json:"maxUnavailable,omitempty"`
	By             string `json:"by,omitempty"` // who asked, for the record
}

// Deploy is the record of one deploy. Values handed out are copies.
type Deploy struct {
	ID             string      `json:"id"`
	Target         Target      `json:"target"`
	Version        string      `json:"version"`
	FromVersion    string      `json:"fromVersion,omitempty"`
	Instances      int         `json:"instances"`
	MaxSurge       int         `json:"maxSurge"`
	MaxUnavailable int         `json:"maxUnavailable"`
	By             string      `json:"by,omitempty"`
	State          DeployState `json:"state"`
	Error          string      `json:"error,omitempty"`
	Started        time.Time   `json:"started"`
	Ended          time.Time   `json:"ended,omitzero"`
	Steps          []Step      `json:"steps"`
}

func (d Deploy) clone() Deploy {
	d.Steps = slices.Clone(d.Steps)
	return d
}

// HealthGate decides whether a started instance may take traffic. It
// returns nil once the instance is healthy, or an error saying why not;
// it must give up by itself (its own timeout) or when ctx ends.
type HealthGate interface {
	Healthy(ctx context.Context, in Instance) error
}

// ErrUnhealthy means an instance did not pass its health gate.
var ErrUnhealthy = errors.New("instance failed its health check")

// ErrUnknownDeploy means no deploy has that ID (or it was forgotten).
var ErrUnknownDeploy = errors.New("unknown deploy")

// Locator finds an instance's registered address; the registry Watcher
// implements it.
type Locator interface {
	Instances(name string) []registry.Instance
}

// HTTPGate is the health gate of HTTP services: GET /healthz on the
// instance's registered address must answer 2xx Successes times in a row
// within Timeout.
type HTTPGate struct {
	Locator   Locator
	Client    *http.Client  // nil: one with a 2 s timeout
	Path      string        // "" means /healthz
	Successes int           // 0 means 3
	Interval  time.Duration // between probes; 0 means 200 ms
	Timeout   time.Duration // for the whole gate; 0 means 30 s
}

// Healthy probes in until it passes, Timeout elapses or ctx ends.
func (g HTTPGate) Healthy(ctx context.Context, in Instance) error {
	client, path, need, every, timeout := g.Client, g.Path, g.Successes, g.Interval, g.Timeout
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Second}
	}
	if path == "" {
		path = "/healthz"
	}
	if need <= 0 {
		need = 3
	}
	if every <= 0 {
		every = 200 * time.Millisecond
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ok := 0
	last := errors.New("not registered")
	for {
		var err error = errors.New("not registered")
		if addr := g.addr(in); addr != "" {
			err = probe(ctx, client, "http://"+addr+path)
		}
		if ctx.Err() == nil || err == nil {
			// A probe cut short by the gate's own deadline says nothing
			// about the instance: report the one before it.
			last = err
		}
		if err == nil {
			ok++
			if ok >= need {
				return nil
			}
		} else {
			ok = 0
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s: %v after %s", ErrUnhealthy, in.ID, last, timeout)
		case <-time.After(every):
		}
	}
}

func (g HTTPGate) addr(in Instance) string {
	for _, r := range g.Locator.Instances(in.Target.Service) {
		if r.ID == in.ID {
			return r.Addr
		}
	}
	return ""
}

func probe(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// DeployerConfig configures a Deployer. Driver and Gate are required.
type DeployerConfig struct {
	// Driver is a Roller (swarm, marathon: the scheduler rolls, the
	// Deployer follows and records) or an InstanceDriver (process,
	// docker: the Deployer starts and stops instances itself). A driver
	// that is both is used as a Roller.
	Driver Orchestrator
	Gate   HealthGate
	// Store keeps the deploy records; nil keeps them in memory (the
	// latest Keep finished ones), lost when the process ends.
	Store DeployStore
	// Keep is how many finished deploys the in-memory store remembers;
	// 0 means 200. It does not apply to a configured Store.
	Keep int
	// Owner names this replica in the records of the deploys it runs; it
	// must differ between replicas sharing a Store ("" is fine for one
	// process with its own store). Run interrupts the deploys a previous
	// life with the same Owner left running; kplane names every process
	// afresh and leaves those to a Sweeper, which ends the deploys of any
	// replica whose Presence is gone.
	Owner  string
	Logger *slog.Logger // nil discards
	Now    func() time.Time
}

// storeTimeout bounds one write of a deploy record, so that a stalled
// database cannot hold a rollout still.
const storeTimeout = 10 * time.Second

// Deployer runs rolling deploys, one at a time per target, and records
// them in its DeployStore as they go.
type Deployer struct {
	cfg   DeployerConfig
	inst  InstanceDriver // nil when roller is set
	roll  Roller
	envs  EnvDestroyer // inst, or roll if it implements it; nil: no environments
	store DeployStore
	log   *slog.Logger
	now   func() time.Time

	mu      sync.Mutex
	base    context.Context // of Run; nil until Run starts
	running sync.WaitGroup
	busy    map[Target]string  // target → running deploy ID
	live    map[string]*record // deploys running in this process
	razing  map[string]bool    // environments DestroyEnv is tearing down
}

type record struct {
	d    Deploy
	subs map[chan struct{}]struct{}
}

// NewDeployer returns a deployer; Begin needs Run to be running.
func NewDeployer(cfg DeployerConfig) (*Deployer, error) {
	if cfg.Driver == nil || cfg.Gate == nil {
		return nil, errors.New("signalman: DeployerConfig needs a Driver and a Gate")
	}
	d := &Deployer{cfg: cfg, store: cfg.Store, log: cfg.Logger, now: cfg.Now,
		busy: map[Target]string{}, live: map[string]*record{}}
	if r, ok := cfg.Driver.(Roller); ok {
		d.roll = r
		d.envs, _ = r.(EnvDestroyer)
	} else if in, ok := cfg.Driver.(InstanceDriver); ok {
		d.inst, d.envs = in, in
	} else {
		return nil, fmt.Errorf("signalman: driver %T can neither roll (Roller) nor start and stop instances (InstanceDriver)", cfg.Driver)
	}
	if d.store == nil {
		d.store = NewMemoryDeployStore(cfg.Keep)
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	return d, nil
}

// InterruptedReason is the error of a deploy that was running when its
// replica stopped.
const InterruptedReason = "deploy interrupted: kplane stopped while it was running"

// Run first marks the deploys this replica (Owner) left running as
// failed, then lets Begin start deploys in the background until ctx ends;
// then it waits for them to stop (a cancelled deploy ends failed) and
// returns nil.
func (d *Deployer) Run(ctx context.Context) error {
	ids, err := d.store.Interrupt(ctx, d.cfg.Owner, d.now(), InterruptedReason)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("mark interrupted deploys: %w", err)
	}
	if len(ids) > 0 {
		d.log.Warn("deploys interrupted by the last stop marked failed", "deploys", ids)
	}
	d.mu.Lock()
	d.base = ctx
	d.mu.Unlock()
	<-ctx.Done()
	d.running.Wait()
	return nil
}

// Begin validates req, takes the target's lock and runs the deploy in the
// background (under Run's context). It returns the record as it starts.
// Errors: ErrInvalid, ErrUnknownService, ErrBusy.
func (d *Deployer) Begin(req DeployRequest) (Deploy, error) {
	d.mu.Lock()
	base := d.base
	d.mu.Unlock()
	if base == nil || base.Err() != nil {
		return Deploy{}, errors.New("signalman: deployer is not running")
	}
	rec, plan, err := d.prepare(base, req)
	if err != nil {
		return Deploy{}, err
	}
	d.running.Add(1)
	go func() {
		defer d.running.Done()
		d.execute(base, rec, plan)
	}()
	return d.snapshot(rec), nil
}

// Deploy runs a deploy to its end and returns its final record; the error
// is non-nil only if the deploy could not start (see Begin). A deploy that
// rolled back or failed is reported by its State.
func (d *Deployer) Deploy(ctx context.Context, req DeployRequest) (Deploy, error) {
	rec, plan, err := d.prepare(ctx, req)
	if err != nil {
		return Deploy{}, err
	}
	d.execute(ctx, rec, plan)
	return d.snapshot(rec), nil
}

// Get returns one deploy with its steps: a deploy running here as it is
// now, any other from the store (which another replica may be writing).
// ErrUnknownDeploy if there is none with that ID.
func (d *Deployer) Get(ctx context.Context, id string) (Deploy, error) {
	d.mu.Lock()
	rec := d.live[id]
	if rec != nil {
		defer d.mu.Unlock()
		return rec.d.clone(), nil
	}
	d.mu.Unlock()
	return d.store.Get(ctx, id)
}

// List returns up to limit deploys (0: all stored), newest first; a
// non-empty t.Service or t.Env keeps only the deploys that match it.
func (d *Deployer) List(ctx context.Context, t Target, limit int) ([]Deploy, error) {
	out, err := d.store.List(ctx, t, limit)
	if err != nil {
		return nil, err
	}
	// A deploy running here is fresher in memory (a step whose write
	// failed is still there).
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, dep := range out {
		if rec := d.live[dep.ID]; rec != nil {
			out[i] = rec.d.clone()
		}
	}
	return out, nil
}

// remotePoll is how often Subscribe looks for changes of a deploy that
// another replica runs.
const remotePoll = time.Second

// Subscribe returns a channel that receives a value (coalesced) after each
// new step or state change of deploy id, and a cancel function to call
// once. Read the deploy with Get after each signal. For a deploy run by
// another replica the channel ticks every second while it runs; for one
// that has ended it never fires. ErrUnknownDeploy if there is no such
// deploy.
func (d *Deployer) Subscribe(ctx context.Context, id string) (<-chan struct{}, func(), error) {
	d.mu.Lock()
	if rec := d.live[id]; rec != nil {
		defer d.mu.Unlock()
		ch := make(chan struct{}, 1)
		rec.subs[ch] = struct{}{}
		return ch, func() {
			d.mu.Lock()
			delete(rec.subs, ch)
			d.mu.Unlock()
		}, nil
	}
	d.mu.Unlock()
	dep, err := d.store.Get(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	ch := make(chan struct{}, 1)
	if dep.State.Done() {
		return ch, func() {}, nil
	}
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(remotePoll)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
	return ch, sync.OnceFunc(func() { close(stop) }), nil
}

type plan struct {
	old []Instance // instances not at the new version, oldest number first
}

func (d *Deployer) prepare(ctx context.Context, req DeployRequest) (*record, plan, error) {
	var p plan
	if err := req.Target.Validate(); err != nil {
		return nil, p, err
	}
	if req.Version == "" {
		return nil, p, fmt.Errorf("%w: version is empty", ErrInvalid)
	}
	surge, unavail := 1, 0
	if req.MaxSurge != nil {
		surge = *req.MaxSurge
	}
	if req.MaxUnavailable != nil {
		unavail = *req.MaxUnavailable
	}
	if surge < 0 || unavail < 0 || surge+unavail == 0 {
		return nil, p, fmt.Errorf("%w: maxSurge %d and maxUnavailable %d: both must be ≥ 0 and one > 0, or no step can be taken", ErrInvalid, surge, unavail)
	}
	if req.Instances < 0 {
		return nil, p, fmt.Errorf("%w: instances %d is negative", ErrInvalid, req.Instances)
	}
	current, err := d.cfg.Driver.Instances(ctx, req.Target)
	if err != nil {
		return nil, p, fmt.Errorf("deploy %s: %w", req.Target, err)
	}
	n := req.Instances
	if n == 0 {
		n = max(len(current), 1)
	}
	from := ""
	if len(current) > 0 {
		// The previous version is the one most instances run.
		counts := map[string]int{}
		for _, in := range current {
			counts[in.Version]++
			if counts[in.Version] > counts[from] || from == "" {
				from = in.Version
			}
		}
	}
	p.old = current

	d.mu.Lock()
	defer d.mu.Unlock()
	if id, ok := d.busy[req.Target]; ok {
		return nil, p, fmt.Errorf("%w: deploy %s is rolling out %s", ErrBusy, id, req.Target)
	}
	if d.razing[req.Target.Env] {
		return nil, p, fmt.Errorf("%w: environment %s is being destroyed", ErrBusy, req.Target.Env)
	}
	rec := &record{subs: map[chan struct{}]struct{}{}, d: Deploy{
		ID: newDeployID(), Target: req.Target, Version: req.Version, FromVersion: from,
		Instances: n, MaxSurge: surge, MaxUnavailable: unavail, By: req.By,
		State: DeployRunning, Started: d.now(), Steps: []Step{},
	}}
	d.busy[req.Target] = rec.d.ID
	d.live[rec.d.ID] = rec
	dep := rec.d.clone()
	d.mu.Unlock()
	// The record is stored before anything changes, so that a deploy is
	// never missing from the list; if the store refuses it, no deploy.
	sctx, cancel := storeContext(ctx)
	err = d.store.Create(sctx, dep, d.cfg.Owner)
	cancel()
	d.mu.Lock()
	if err != nil {
		delete(d.busy, req.Target)
		delete(d.live, rec.d.ID)
		return nil, p, fmt.Errorf("deploy %s: record: %w", req.Target, err)
	}
	return rec, p, nil
}

// storeContext is the context of one record write: it outlives the
// deploy's cancellation (an interrupted deploy is still recorded as
// failed) but not storeTimeout.
func storeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
}

func newDeployID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "d-" + hex.EncodeToString(b[:])
}

func (d *Deployer) snapshot(rec *record) Deploy {
	d.mu.Lock()
	defer d.mu.Unlock()
	return rec.d.clone()
}

func (d *Deployer) notifyLocked(rec *record) {
	for ch := range rec.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// record appends a step to the deploy and stores it. A step the store
// could not take is logged and kept in memory: the rollout goes on, since
// stopping half-way would hurt the service more than a gap in the record.
func (d *Deployer) record(ctx context.Context, rec *record, s Step) {
	d.mu.Lock()
	rec.d.Steps = append(rec.d.Steps, s)
	n := len(rec.d.Steps) - 1
	id := rec.d.ID
	d.mu.Unlock()
	sctx, cancel := storeContext(ctx)
	err := d.store.AddStep(sctx, id, n, s)
	cancel()
	if err != nil {
		d.log.Error("record deploy step", "deploy", id, "step", n, "err", err)
	}
	d.mu.Lock()
	d.notifyLocked(rec)
	d.mu.Unlock()
}

func (d *Deployer) finish(ctx context.Context, rec *record, state DeployState, err error) {
	d.mu.Lock()
	rec.d.State = state
	rec.d.Ended = d.now()
	if err != nil {
		rec.d.Error = err.Error()
	}
	dep := rec.d.clone()
	d.mu.Unlock()
	sctx, cancel := storeContext(ctx)
	serr := d.store.Finish(sctx, dep)
	cancel()
	if serr != nil {
		d.log.Error("record deploy end", "deploy", dep.ID, "err", serr)
	}
	d.mu.Lock()
	delete(d.busy, rec.d.Target)
	delete(d.live, rec.d.ID)
	d.notifyLocked(rec)
	d.mu.Unlock()
	d.log.Info("deploy ended", "deploy", dep.ID, "target", dep.Target.String(),
		"version", dep.Version, "state", string(state), "err", err)
}

// rollout is the state of one execution: the instances still at the old
// version and those started at the new one.
type rollout struct {
	ctx  context.Context // of the deploy, for its records
	d    *Deployer
	rec  *record
	t    Target
	old  []Instance
	new  []Instance
	want int
}

func (d *Deployer) execute(ctx context.Context, rec *record, p plan) {
	d.mu.Lock()
	dep := rec.d.clone()
	d.mu.Unlock()
	d.log.Info("deploy started", "deploy", dep.ID, "target", dep.Target.String(), "version", dep.Version,
		"from", dep.FromVersion, "instances", dep.Instances, "max_surge", dep.MaxSurge, "max_unavailable", dep.MaxUnavailable)
	if d.roll != nil {
		d.executeRoll(ctx, rec, dep)
		return
	}
	r := &rollout{ctx: ctx, d: d, rec: rec, t: dep.Target, want: dep.Instances}
	for _, in := range p.old {
		if in.Version == dep.Version && len(r.new) < r.want {
			r.new = append(r.new, in) // already there: keep it
		} else {
			r.old = append(r.old, in)
		}
	}
	err := r.forward(ctx, dep.Version, dep.MaxSurge, dep.MaxUnavailable)
	if err == nil {
		d.finish(ctx, rec, DeploySucceeded, nil)
		return
	}
	if ctx.Err() != nil {
		d.finish(ctx, rec, DeployFailed, fmt.Errorf("deploy interrupted: %w", err))
		return
	}
	d.record(ctx, rec, Step{Time: d.now(), Action: ActionRollback, Version: dep.FromVersion, Outcome: OutcomeOK, Error: err.Error()})
	if dep.FromVersion == "" {
		// Nothing to go back to: remove what this deploy started.
		rerr := r.stopAll(ctx, &r.new)
		d.finish(ctx, rec, DeployFailed, errors.Join(err, rerr))
		return
	}
	if rerr := r.back(ctx, dep.FromVersion, dep.MaxSurge); rerr != nil {
		d.finish(ctx, rec, DeployFailed, fmt.Errorf("%w; rollback failed: %w", err, rerr))
		return
	}
	d.finish(ctx, rec, DeployRolledBack, err)
}

// forward replaces old by new-version instances within the bounds.
func (r *rollout) forward(ctx context.Context, version string, surge, unavail int) error {
	floor := r.want - unavail // instances that must be serving
	for len(r.new) < r.want || len(r.old) > 0 {
		// Stop old instances as far as the unavailability budget allows
		// (all of them once the new ones are complete).
		stop := len(r.old)
		if len(r.new) < r.want {
			stop = min(stop, len(r.old)+len(r.new)-floor)
		}
		for range max(stop, 0) {
			if err := r.stopOne(ctx, &r.old); err != nil {
				return err
			}
		}
		// Start new instances as far as the surge budget allows.
		start := min(r.want-len(r.new), r.want+surge-len(r.old)-len(r.new))
		for range max(start, 0) {
			if err := r.startOne(ctx, version, &r.new); err != nil {
				return err
			}
		}
		if stop <= 0 && start <= 0 {
			return fmt.Errorf("%w: no step possible with maxSurge %d, maxUnavailable %d", ErrInvalid, surge, unavail)
		}
	}
	return nil
}

// back restores the previous version: start replacements (within the
// surge bound, stopping new instances to make room), then stop every new
// instance.
func (r *rollout) back(ctx context.Context, version string, surge int) error {
	for len(r.old) < r.want {
		if len(r.new) > 0 && len(r.old)+len(r.new) >= r.want+max(surge, 1) {
			if err := r.stopOne(ctx, &r.new); err != nil {
				return err
			}
			continue
		}
		if err := r.startOne(ctx, version, &r.old); err != nil {
			return err
		}
	}
	return r.stopAll(ctx, &r.new)
}

func (r *rollout) stopAll(ctx context.Context, from *[]Instance) error {
	for len(*from) > 0 {
		if err := r.stopOne(ctx, from); err != nil {
			return err
		}
	}
	return nil
}

// stopOne drains and stops the last instance of *from.
func (r *rollout) stopOne(ctx context.Context, from *[]Instance) error {
	in := (*from)[len(*from)-1]
	start := r.d.now()
	err := r.d.inst.Stop(ctx, r.t, in.ID)
	if errors.Is(err, ErrUnknownInstance) {
		err = nil // gone already (crashed and not restarted): nothing to drain
	}
	r.step(ActionStop, in.ID, in.Version, start, err)
	if err != nil {
		return fmt.Errorf("stop %s: %w", in.ID, err)
	}
	*from = (*from)[:len(*from)-1]
	return nil
}

// startOne starts an instance at version and gates it; a failed gate
// stops the instance again.
func (r *rollout) startOne(ctx context.Context, version string, into *[]Instance) error {
	start := r.d.now()
	in, err := r.d.inst.Start(ctx, r.t, version)
	r.step(ActionStart, in.ID, version, start, err)
	if err != nil {
		return fmt.Errorf("start %s at %s: %w", r.t, version, err)
	}
	start = r.d.now()
	err = r.d.cfg.Gate.Healthy(ctx, in)
	r.step(ActionHealth, in.ID, version, start, err)
	if err != nil {
		if serr := r.d.inst.Stop(ctx, r.t, in.ID); serr != nil && !errors.Is(serr, ErrUnknownInstance) {
			r.step(ActionStop, in.ID, version, r.d.now(), serr)
			return errors.Join(err, serr)
		}
		r.step(ActionStop, in.ID, version, start, nil)
		return err
	}
	*into = append(*into, in)
	return nil
}

func (r *rollout) step(action, id, version string, start time.Time, err error) {
	s := Step{Time: start, Action: action, Instance: id, Version: version, Outcome: OutcomeOK, Took: r.d.now().Sub(start)}
	if err != nil {
		s.Outcome, s.Error = OutcomeFailed, err.Error()
	}
	r.d.record(r.ctx, r.rec, s)
}

// executeRoll hands the deploy to a Roller and records the steps it
// reports; the Roller rolls back by itself (see Roller).
func (d *Deployer) executeRoll(ctx context.Context, rec *record, dep Deploy) {
	err := d.roll.Roll(ctx, dep.Target, dep.Version, RollOptions{
		Instances: dep.Instances, MaxSurge: dep.MaxSurge, MaxUnavailable: dep.MaxUnavailable, Gate: d.cfg.Gate,
	}, func(s Step) { d.record(ctx, rec, s) })
	switch {
	case err == nil:
		d.finish(ctx, rec, DeploySucceeded, nil)
	case ctx.Err() != nil:
		d.finish(ctx, rec, DeployFailed, fmt.Errorf("deploy interrupted: %w", err))
	case errors.Is(err, ErrRolledBack):
		d.finish(ctx, rec, DeployRolledBack, err)
	default:
		d.finish(ctx, rec, DeployFailed, err)
	}
}
