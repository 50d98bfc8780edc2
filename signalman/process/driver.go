package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/kplane/kplane/signalman"
)

// Confirmer tells the driver that instances have registered. The registry
// Watcher implements it.
type Confirmer = signalman.Confirmer

// Config configures a Driver. The zero value of every field but Services is
// safe.
type Config struct {
	// Services says how to start each service the driver may run.
	Services map[string]Spec
	// Confirmer confirms that started instances registered. Nil means a
	// started instance counts as soon as its process runs.
	Confirmer Confirmer
	// ConfirmTimeout bounds the wait for registration. 0 means 30 s.
	ConfirmTimeout time.Duration
	// StopTimeout is how long a child has between SIGTERM and SIGKILL.
	// 0 means 10 s.
	StopTimeout time.Duration
	// LogDir receives one <instance-id>.log per instance with its stdout
	// and stderr. Empty discards children's output.
	LogDir string
	// StateFile records the running children so that the next start can
	// stop those a crash of kplane left behind. Empty disables it.
	StateFile string
	// Logger; nil discards.
	Logger *slog.Logger
	// MinRestartBackoff and MaxRestartBackoff bound the delay before a
	// crashed instance is restarted. 0 means 1 s and 30 s.
	MinRestartBackoff, MaxRestartBackoff time.Duration
}

// Driver runs instances as child processes. Scale on a target that is
// already being scaled returns signalman.ErrBusy.
type Driver struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	groups  map[signalman.Target]*group
	closed  bool
	stateMu sync.Mutex // serialises state file writes
}

var (
	_ signalman.Orchestrator   = (*Driver)(nil)
	_ signalman.InstanceDriver = (*Driver)(nil)
)

type group struct {
	busy     sync.Mutex // held for the whole of a Scale or a restart
	desired  int
	children map[int]*child // by instance number
	crashes  int
	retryAt  time.Time
	version  string // of the latest Start; "" means the Spec's
}

type child struct {
	inst     signalman.Instance
	n        int
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited
	stopping bool          // set (under Driver.mu) before a deliberate stop
}

// New returns a driver. It stops children that a previous run left behind
// according to the state file.
func New(cfg Config) (*Driver, error) {
	for name, spec := range cfg.Services {
		if err := spec.validate(name); err != nil {
			return nil, err
		}
	}
	if cfg.ConfirmTimeout <= 0 {
		cfg.ConfirmTimeout = 30 * time.Second
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.MinRestartBackoff <= 0 {
		cfg.MinRestartBackoff = time.Second
	}
	if cfg.MaxRestartBackoff <= 0 {
		cfg.MaxRestartBackoff = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.LogDir != "" {
		if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
			return nil, fmt.Errorf("process: log dir: %w", err)
		}
	}
	d := &Driver{cfg: cfg, log: log, groups: make(map[signalman.Target]*group)}
	if cfg.StateFile != "" {
		stopStale(cfg.StateFile, cfg.StopTimeout, log)
	}
	return d, nil
}

// Scale converges target to n instances, confirming new ones through the
// Confirmer before it returns.
func (d *Driver) Scale(ctx context.Context, t signalman.Target, n int) (signalman.Result, error) {
	res := signalman.Result{Target: t}
	if err := t.Validate(); err != nil {
		return res, err
	}
	if n < 0 {
		return res, fmt.Errorf("%w: instance count %d is negative", signalman.ErrInvalid, n)
	}
	spec, ok := d.cfg.Services[t.Service]
	if !ok {
		return res, fmt.Errorf("%w: %q (the process driver knows %v)", signalman.ErrUnknownService, t.Service, d.serviceNames())
	}
	g, err := d.group(t)
	if err != nil {
		return res, err
	}
	if !g.busy.TryLock() {
		return res, fmt.Errorf("%w: %s is being scaled", signalman.ErrBusy, t)
	}
	defer g.busy.Unlock()

	d.mu.Lock()
	spec = g.spec(spec)
	res.From = len(g.children)
	prevDesired := g.desired
	g.desired = n
	d.mu.Unlock()

	switch {
	case n > res.From:
		started, err := d.start(ctx, t, g, spec, n-res.From)
		res.Started = started
		if err != nil {
			d.mu.Lock()
			g.desired = prevDesired
			d.mu.Unlock()
			res.Started = nil
			res.To = d.count(g)
			return res, err
		}
	case n < res.From:
		res.Stopped = d.stopHighest(ctx, t, g, res.From-n)
	}
	res.To = d.count(g)
	if !res.NoOp() {
		d.log.Info("scaled", "target", t.String(), "from", res.From, "to", res.To,
			"started", res.Started, "stopped", res.Stopped)
	}
	return res, nil
}

// Instances lists the running instances of t, ordered by number.
func (d *Driver) Instances(_ context.Context, t signalman.Target) ([]signalman.Instance, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.groups[t]
	if g == nil {
		return nil, nil
	}
	return g.sorted(), nil
}

// Run restarts instances that exited unexpectedly, keeping each target at
// its desired count, until ctx is cancelled. It returns nil then.
func (d *Driver) Run(ctx context.Context) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			d.reconcile(ctx)
		}
	}
}

func (d *Driver) reconcile(ctx context.Context) {
	type work struct {
		t signalman.Target
		g *group
	}
	var todo []work
	now := time.Now()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	for t, g := range d.groups {
		if len(g.children) < g.desired && !now.Before(g.retryAt) {
			todo = append(todo, work{t, g})
		}
	}
	d.mu.Unlock()
	for _, w := range todo {
		if !w.g.busy.TryLock() {
			continue // a Scale is in progress; it owns the count
		}
		d.mu.Lock()
		missing := w.g.desired - len(w.g.children)
		d.mu.Unlock()
		if missing > 0 {
			d.mu.Lock()
			spec := w.g.spec(d.cfg.Services[w.t.Service])
			d.mu.Unlock()
			ids, err := d.start(ctx, w.t, w.g, spec, missing)
			switch {
			case err != nil && ctx.Err() == nil:
				d.log.Warn("restart failed", "target", w.t.String(), "err", err)
			case err == nil:
				d.log.Info("restarted crashed instances", "target", w.t.String(), "started", ids)
			}
		}
		w.g.busy.Unlock()
	}
}

// Close stops every child (SIGTERM, then SIGKILL after StopTimeout) and
// waits for them. Scale fails afterwards.
func (d *Driver) Close() error {
	d.mu.Lock()
	d.closed = true
	var all []*child
	for _, g := range d.groups {
		for _, c := range g.children {
			c.stopping = true
			all = append(all, c)
		}
	}
	d.mu.Unlock()
	d.stopAll(all)
	d.mu.Lock()
	for _, g := range d.groups {
		clear(g.children)
	}
	d.mu.Unlock()
	if d.cfg.StateFile != "" {
		if err := os.Remove(d.cfg.StateFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("process: remove state file: %w", err)
		}
	}
	return nil
}

func (d *Driver) group(t signalman.Target) (*group, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errors.New("process: driver is closed")
	}
	g := d.groups[t]
	if g == nil {
		g = &group{children: make(map[int]*child)}
		d.groups[t] = g
	}
	return g, nil
}

func (d *Driver) count(g *group) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(g.children)
}

func (d *Driver) serviceNames() []string {
	names := make([]string, 0, len(d.cfg.Services))
	for n := range d.cfg.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (g *group) sorted() []signalman.Instance {
	nums := make([]int, 0, len(g.children))
	for n := range g.children {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	out := make([]signalman.Instance, len(nums))
	for i, n := range nums {
		out[i] = g.children[n].inst
	}
	return out
}

// start launches count new instances at the lowest free numbers and waits
// until the Confirmer has seen all of them. On failure every instance it
// started is stopped again, so nothing is left half-recorded.
func (d *Driver) start(ctx context.Context, t signalman.Target, g *group, spec Spec, count int) ([]string, error) {
	var started []*child
	fail := func(err error) ([]string, error) {
		d.mu.Lock()
		for _, c := range started {
			c.stopping = true
		}
		d.mu.Unlock()
		d.stopAll(started)
		d.mu.Lock()
		for _, c := range started {
			delete(g.children, c.n)
		}
		d.mu.Unlock()
		d.writeState()
		return nil, err
	}
	exited := make(chan string, count)
	for range count {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return fail(errors.New("process: driver is closed"))
		}
		n := 1
		for g.children[n] != nil {
			n++
		}
		l := launch{id: instanceID(t, n), n: n, target: t, spec: spec}
		c, err := d.spawn(l)
		if err != nil {
			d.mu.Unlock()
			return fail(err)
		}
		g.children[n] = c
		started = append(started, c)
		d.mu.Unlock()
		go d.watchExit(t, g, c, exited)
	}
	d.writeState()

	ids := make([]string, len(started))
	for i, c := range started {
		ids[i] = c.inst.ID
	}
	if d.cfg.Confirmer == nil {
		return ids, nil
	}
	cctx, cancel := context.WithTimeout(ctx, d.cfg.ConfirmTimeout)
	defer cancel()
	var exitedID string
	go func() {
		select {
		case exitedID = <-exited:
			cancel()
		case <-cctx.Done():
		}
	}()
	// A restarted instance reuses its ID, and the crashed one's key may
	// live on until its lease expires: only a registration made after this
	// start counts (same host, same clock).
	want := make([]signalman.Instance, len(started))
	for i, c := range started {
		want[i] = c.inst
	}
	err := d.cfg.Confirmer.WaitInstances(cctx, t.Service, signalman.RegisteredSince(want))
	if err != nil {
		cancel()
		switch {
		case ctx.Err() != nil:
			return fail(fmt.Errorf("process: starting %s: %w", t, ctx.Err()))
		case exitedID != "":
			return fail(fmt.Errorf("%w: %s exited before registering (see its log in %s)", signalman.ErrNotConfirmed, exitedID, d.cfg.LogDir))
		default:
			return fail(fmt.Errorf("%w: %v not registered within %s", signalman.ErrNotConfirmed, ids, d.cfg.ConfirmTimeout))
		}
	}
	d.mu.Lock()
	g.crashes = 0
	d.mu.Unlock()
	return ids, nil
}

// spawn starts one child. Called with d.mu held.
func (d *Driver) spawn(l launch) (*child, error) {
	cmd := exec.Command(l.spec.Path, l.args()...)
	cmd.Env = append(os.Environ(), l.env()...)
	cmd.SysProcAttr = sysProcAttr()
	var out io.WriteCloser
	if d.cfg.LogDir != "" {
		f, err := os.OpenFile(filepath.Join(d.cfg.LogDir, l.id+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("process: instance log: %w", err)
		}
		out = f
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		if out != nil {
			out.Close()
		}
		return nil, fmt.Errorf("process: start %s: %w", l.id, err)
	}
	if out != nil {
		out.Close() // the child holds its own descriptor
	}
	return &child{
		inst: signalman.Instance{ID: l.id, Target: l.target, Version: l.spec.Version, Started: time.Now()},
		n:    l.n, cmd: cmd, done: make(chan struct{}),
	}, nil
}

func (d *Driver) watchExit(t signalman.Target, g *group, c *child, exited chan<- string) {
	err := c.cmd.Wait()
	close(c.done)
	d.mu.Lock()
	deliberate := c.stopping
	if !deliberate && g.children[c.n] == c {
		delete(g.children, c.n)
		g.crashes++
		backoff := min(d.cfg.MinRestartBackoff<<min(g.crashes-1, 10), d.cfg.MaxRestartBackoff)
		g.retryAt = time.Now().Add(backoff)
	}
	d.mu.Unlock()
	if deliberate {
		return
	}
	select {
	case exited <- c.inst.ID:
	default:
	}
	d.log.Warn("instance exited unexpectedly", "target", t.String(), "instance", c.inst.ID, "err", err)
	d.writeState()
}

// stopHighest drains and stops the k highest-numbered instances of g. A
// child drains itself on SIGTERM (deregister, keep serving while callers
// learn of it, finish in-flight requests, exit); the driver gives it
// StopTimeout for that, then kills it, and finally waits, as long again at
// most, until the registry no longer lists it, so that the scale-down
// returns only once callers can no longer pick a stopped instance.
func (d *Driver) stopHighest(ctx context.Context, t signalman.Target, g *group, k int) []string {
	d.mu.Lock()
	nums := make([]int, 0, len(g.children))
	for n := range g.children {
		nums = append(nums, n)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(nums)))
	var victims []*child
	for _, n := range nums[:min(k, len(nums))] {
		c := g.children[n]
		c.stopping = true
		victims = append(victims, c)
	}
	d.mu.Unlock()
	d.stopAll(victims)
	ids := make([]string, len(victims))
	d.mu.Lock()
	for i, c := range victims {
		delete(g.children, c.n)
		ids[i] = c.inst.ID
	}
	d.mu.Unlock()
	d.writeState()
	d.awaitDeregistered(ctx, t, ids)
	return ids
}

// awaitDeregistered waits until none of ids is registered. An instance that
// was killed before it could deregister stays listed until its lease
// expires; that is logged, because callers may still pick it until then.
func (d *Driver) awaitDeregistered(ctx context.Context, t signalman.Target, ids []string) {
	if d.cfg.Confirmer == nil || len(ids) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, d.cfg.StopTimeout)
	defer cancel()
	err := d.cfg.Confirmer.WaitInstances(wctx, t.Service, signalman.Deregistered(ids))
	if err != nil && ctx.Err() == nil {
		d.log.Warn("stopped instances are still registered; callers may pick them until their lease expires",
			"target", t.String(), "instances", ids)
	}
}

// stopAll sends SIGTERM to every child, then SIGKILL to those still running
// after StopTimeout, and waits for all of them.
func (d *Driver) stopAll(cs []*child) {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.done:
			case <-time.After(d.cfg.StopTimeout):
				d.log.Warn("instance ignored SIGTERM, killing it", "instance", c.inst.ID)
				_ = c.cmd.Process.Kill()
				<-c.done
			}
		}()
	}
	wg.Wait()
}
