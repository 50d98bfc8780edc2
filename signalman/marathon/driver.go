package marathon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kplane/kplane/signalman"
)

// Confirmer tells the driver that instances have registered. The registry
// Watcher implements it.
type Confirmer = signalman.Confirmer

// Config configures a Driver. Every field but URL has a safe zero value.
type Config struct {
	// URL of Marathon, e.g. http://marathon.mesos:8080 (a path prefix such
	// as a DC/OS https://dcos/service/marathon is kept).
	URL string
	// AppID maps a target to a Marathon app ID. The placeholders {service}
	// and {env} are replaced. Empty means "/{env}/{service}", or
	// "/{service}" for a target without an environment.
	AppID string
	// AppIDs overrides AppID for some services: service → template with
	// {service} and {env}, e.g. "/shop/{env}/inventory-api".
	AppIDs map[string]string
	// Username and Password, when Username is set, authenticate with HTTP
	// basic auth (Marathon's --http_credentials).
	Username, Password string
	// Token, when set, is sent as "Authorization: token=<Token>", the form
	// DC/OS's Marathon expects. Token wins over Username.
	Token string
	// Force adds ?force=true to the PUT: Marathon then cancels a deployment
	// that locks the app instead of answering 409. Off by default: a locked
	// app makes Scale return signalman.ErrBusy.
	Force bool
	// Confirmer confirms that the instances registered. Nil means the
	// driver trusts Marathon's task states and health checks alone.
	Confirmer Confirmer
	// Timeout bounds a Scale's wait for the deployment, the tasks and the
	// registration. 0 means 5 minutes.
	Timeout time.Duration
	// PollInterval is the delay between two reads while waiting. 0 means 1 s.
	PollInterval time.Duration
	// Images maps a service to the Docker image a deploy (Roll) sets, a
	// template with {version}, {service} and {env} (e.g.
	// "registry.example/{service}:{version}"). A service not in Images
	// keeps its image's name with the version as its tag.
	Images map[string]string
	// Args maps a service to the args a deploy sets, templates as Images,
	// e.g. [..., "--version", "{version}"], so that instances register
	// the version they run. A service not in Args keeps its args.
	Args map[string][]string
	// Client sends the requests. Nil means a client with a 15 s timeout.
	Client *http.Client
	// Logger; nil discards.
	Logger *slog.Logger
}

// Driver scales Marathon apps. Two Scale calls on the same target in one
// Driver do not interleave: the second returns signalman.ErrBusy, as does a
// Scale on an app a Marathon deployment locks (unless Config.Force).
type Driver struct {
	cfg Config
	api *client
	log *slog.Logger

	busy signalman.Locks
}

var _ signalman.Orchestrator = (*Driver)(nil)

// New returns a driver for the Marathon at cfg.URL.
func New(cfg Config) (*Driver, error) {
	if cfg.URL == "" {
		return nil, errors.New("marathon: URL is empty")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 15 * time.Second}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	api, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	return &Driver{cfg: cfg, api: api, log: log}, nil
}

// AppID returns the Marathon app ID of t.
func (d *Driver) AppID(t signalman.Target) string {
	tmpl, ok := d.cfg.AppIDs[t.Service]
	if !ok {
		tmpl = d.cfg.AppID
	}
	if tmpl == "" {
		tmpl = "/{env}/{service}"
		if t.Env == "" {
			tmpl = "/{service}"
		}
	}
	id := strings.NewReplacer("{service}", t.Service, "{env}", t.Env).Replace(tmpl)
	if !strings.HasPrefix(id, "/") {
		id = "/" + id
	}
	return id
}

// Scale sets the app's instance count to n and waits until Marathon's
// deployment is over, n tasks run (and are healthy, when the app has
// health checks) and, with a Confirmer, n instances are registered. If the
// wait fails the app is set back to its previous count (with force, since
// the deployment this call started may still hold the lock) and Scale
// returns the failure: signalman.ErrNotConfirmed, or ctx's error. A change
// of the count by someone else during the wait is not reverted: Scale
// returns signalman.ErrSuperseded naming it.
func (d *Driver) Scale(ctx context.Context, t signalman.Target, n int) (signalman.Result, error) {
	res := signalman.Result{Target: t}
	if err := t.Validate(); err != nil {
		return res, err
	}
	if n < 0 {
		return res, fmt.Errorf("%w: instance count %d is negative", signalman.ErrInvalid, n)
	}
	if !d.busy.TryLock(t) {
		return res, fmt.Errorf("%w: %s is being scaled", signalman.ErrBusy, t)
	}
	defer d.busy.Unlock(t)

	id := d.AppID(t)
	before, err := d.api.app(ctx, id)
	if err != nil {
		return res, err
	}
	res.From, res.To = before.Instances, before.Instances
	if before.Instances == n {
		return res, nil
	}
	dep, err := d.api.scale(ctx, id, n, d.cfg.Force)
	if err != nil {
		return res, err
	}
	d.log.Info("scaling", "target", t.String(), "app", id, "from", before.Instances, "to", n, "deployment", dep.DeploymentID)

	after, err := d.wait(ctx, t, id, dep.DeploymentID, before.Instances, n)
	if err != nil {
		return res, err
	}
	res.To = n
	res.Started, res.Stopped = diff(before.running(), after.running())
	d.log.Info("scaled", "target", t.String(), "app", id, "from", res.From, "to", res.To,
		"started", res.Started, "stopped", res.Stopped)
	return res, nil
}

// Instances lists the app's running tasks, oldest first.
func (d *Driver) Instances(ctx context.Context, t signalman.Target) ([]signalman.Instance, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	a, err := d.api.app(ctx, d.AppID(t))
	if err != nil {
		return nil, err
	}
	tasks := a.running()
	out := make([]signalman.Instance, len(tasks))
	for i, tk := range tasks {
		out[i] = signalman.Instance{ID: tk.ID, Target: t, Version: a.version(), Started: tk.StartedAt}
	}
	return out, nil
}

// wait follows deployment depID of app id to its end, then the app until n
// tasks run and are healthy, then the registry, and sets the app back to
// from if that fails (signalman.Converge). Someone else changing the
// app's instance count meanwhile is signalman.ErrSuperseded: that change
// wins and is not reverted.
func (d *Driver) wait(ctx context.Context, t signalman.Target, id, depID string, from, n int) (*app, error) {
	var last *app
	deploying := true
	err := signalman.Converge{
		Target: t, Object: "marathon app " + id, From: from, N: n,
		Timeout: d.cfg.Timeout, Poll: d.cfg.PollInterval, Confirmer: d.cfg.Confirmer, Logger: d.log,
		Check: func(ctx context.Context) (bool, string, error) {
			if deploying {
				deps, err := d.api.deployments(ctx)
				if err != nil {
					return false, "", err
				}
				if slices.ContainsFunc(deps, func(x deployment) bool { return x.ID == depID }) {
					return false, "deployment " + depID + " did not finish", nil
				}
				deploying = false
			}
			// A deployment also ends when it fails or another one
			// cancels it, so the app itself is the judge.
			a, err := d.api.app(ctx, id)
			if err != nil {
				return false, "", err
			}
			if a.Instances != n {
				return false, "", fmt.Errorf("%w: marathon app %s: another change set %d instances while scaling to %d",
					signalman.ErrSuperseded, id, a.Instances, n)
			}
			last = a
			return a.converged(), fmt.Sprintf("%d tasks were not running and healthy (running %d, healthy %d)",
				n, a.TasksRunning, a.TasksHealthy), nil
		},
		// With force: the deployment this call started may still hold
		// the app's lock.
		Revert: func(ctx context.Context) error {
			_, err := d.api.scale(ctx, id, from, true)
			return err
		},
	}.Run(ctx)
	return last, err
}

// diff returns the IDs in after but not in before, and those in before but
// not in after.
func diff(before, after []task) (started, stopped []string) {
	has := func(ts []task, id string) bool {
		return slices.ContainsFunc(ts, func(t task) bool { return t.ID == id })
	}
	for _, t := range after {
		if !has(before, t.ID) {
			started = append(started, t.ID)
		}
	}
	for _, t := range before {
		if !has(after, t.ID) {
			stopped = append(stopped, t.ID)
		}
	}
	return started, stopped
}
