package swarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/kplane/kplane/signalman"
)

// Labels that name the kplane target of a Swarm service.
const (
	LabelService = "kplane.service"
	LabelEnv     = "kplane.env"
	LabelVersion = "kplane.version"
)

// API is the part of the Docker client the driver uses;
// *github.com/docker/docker/client.Client implements it. Build the client
// with client.WithAPIVersionNegotiation: engines as old as API 1.41 work.
type API interface {
	ServiceList(ctx context.Context, opts swarm.ServiceListOptions) ([]swarm.Service, error)
	ServiceInspectWithRaw(ctx context.Context, id string, opts swarm.ServiceInspectOptions) (swarm.Service, []byte, error)
	ServiceUpdate(ctx context.Context, id string, version swarm.Version, spec swarm.ServiceSpec, opts swarm.ServiceUpdateOptions) (swarm.ServiceUpdateResponse, error)
	TaskList(ctx context.Context, opts swarm.TaskListOptions) ([]swarm.Task, error)
	// Environments: a deploy into an env that does not run the service
	// creates it, DestroyEnv removes what the driver created.
	ServiceCreate(ctx context.Context, spec swarm.ServiceSpec, opts swarm.ServiceCreateOptions) (swarm.ServiceCreateResponse, error)
	ServiceRemove(ctx context.Context, id string) error
}

// Confirmer tells the driver that instances have registered. The registry
// Watcher implements it.
type Confirmer = signalman.Confirmer

// Config configures a Driver. Every field but API has a safe zero value.
type Config struct {
	// API talks to a Swarm manager.
	API API
	// Confirmer confirms that the instances registered. Nil means a
	// running task counts.
	Confirmer Confirmer
	// Timeout bounds a Scale's wait for running tasks and registration.
	// 0 means 2 minutes.
	Timeout time.Duration
	// PollInterval is the delay between two task listings. 0 means 250 ms.
	PollInterval time.Duration
	// Retries bounds the re-reads after "update out of sequence". 0 means 5.
	Retries int
	// Names maps a service to the name of its Swarm service in each env,
	// a template with {service} and {env} (e.g. "shop_{service}_{env}"),
	// for services that carry no kplane labels. A service not in Names is
	// found by the name "<service>-<env>" ("<service>" without env).
	Names map[string]string
	// Images maps a service to the image a deploy (Roll) sets, a template
	// with {version}, {service} and {env} (e.g. "shop/{service}:{version}").
	// A service not in Images keeps its image's name with the version as
	// its tag. A service in Images can also be created: a deploy into an
	// env that does not run it creates its Swarm service (environments,
	// see DestroyEnv).
	Images map[string]string
	// Args maps a service to the arguments a deploy sets, templates as
	// Images, e.g. [..., "--version", "{version}"], so that instances
	// register the version they run. A service not in Args keeps its
	// arguments.
	Args map[string][]string
	// Env maps a service to KEY=VALUE environment entries of its tasks,
	// templates as Images. A deploy sets them; a service not in Env keeps
	// its entries.
	Env map[string][]string
	// Network is the network of the services the driver creates: "" or
	// "host" (the default) the host network, where instances register
	// addresses on their node; else the name of an existing swarm-scoped
	// (overlay) network, where each instance must register its own
	// address on it.
	Network string
	// StopGracePeriod is, for the services the driver creates, the time
	// between the stop signal and SIGKILL: the instance's drain
	// (deregister, finish in-flight requests). 0 means 10 s (Swarm's).
	StopGracePeriod time.Duration
	// Monitor is the update's monitor period: a task that fails within
	// it counts as a failed update, and Swarm rolls back. 0 means 5 s.
	Monitor time.Duration
	// Delay is the pause between two batches of a deploy (UpdateConfig
	// Delay): the time kplane's health gate has on a new task before
	// Swarm replaces the next batch. 0 means none.
	Delay time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// Driver scales replicated Swarm services. A second Scale on a target the
// Driver is scaling returns signalman.ErrBusy, and so does a Scale on a
// service whose rolling update (or rollback) has not converged.
type Driver struct {
	cfg Config
	log *slog.Logger

	busy signalman.Locks
}

var _ signalman.Orchestrator = (*Driver)(nil)

// New returns a driver.
func New(cfg Config) (*Driver, error) {
	if cfg.API == nil {
		return nil, errors.New("swarm: no Docker API client")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 250 * time.Millisecond
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 5
	}
	if cfg.Monitor <= 0 {
		cfg.Monitor = 5 * time.Second
	}
	if cfg.Network == "" {
		cfg.Network = HostNetwork
	}
	if cfg.StopGracePeriod <= 0 {
		cfg.StopGracePeriod = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Driver{cfg: cfg, log: log}, nil
}

// Scale sets the service's replicas to n and waits until n tasks run (and,
// with a Confirmer, n instances of the target are registered). If the wait
// fails, the replicas are set back (unless someone else changed them
// meanwhile) and Scale returns signalman.ErrNotConfirmed or ctx's error.
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

	id, err := d.find(ctx, t)
	if err != nil {
		return res, err
	}
	before, err := d.running(ctx, id)
	if err != nil {
		return res, err
	}
	from, err := d.setReplicas(ctx, id, n, func(cur int) error { return nil })
	res.From, res.To = from, from
	if err != nil {
		return res, err
	}
	if from == n && len(before) == n {
		return res, nil
	}
	d.log.Info("scaling", "target", t.String(), "service", id, "from", from, "to", n)

	after, err := d.wait(ctx, t, id, from, n)
	if err != nil {
		return res, err
	}
	res.To = n
	res.Started, res.Stopped = diff(before, after)
	d.log.Info("scaled", "target", t.String(), "service", id, "from", res.From, "to", res.To,
		"started", res.Started, "stopped", res.Stopped)
	return res, nil
}

// Instances lists the service's running tasks by slot; none when the
// service does not run but can be created (Config.Images).
func (d *Driver) Instances(ctx context.Context, t signalman.Target) ([]signalman.Instance, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	id, err := d.find(ctx, t)
	if errors.Is(err, signalman.ErrUnknownService) && d.creatable(t.Service) {
		return nil, nil // a deploy creates it
	}
	if err != nil {
		return nil, err
	}
	svc, _, err := d.cfg.API.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("swarm: inspect service %s: %w", id, err)
	}
	tasks, err := d.running(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]signalman.Instance, len(tasks))
	for i, tk := range tasks {
		out[i] = signalman.Instance{ID: tk.ID, Target: t, Version: version(svc.Spec), Started: tk.Status.Timestamp}
	}
	return out, nil
}

// find returns the ID of t's service: the one labelled kplane.service and
// kplane.env, else the one named <service>-<env> (<service> without env).
func (d *Driver) find(ctx context.Context, t signalman.Target) (string, error) {
	f := filters.NewArgs(filters.Arg("label", LabelService+"="+t.Service))
	svcs, err := d.cfg.API.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return "", fmt.Errorf("swarm: list services: %w", err)
	}
	var match []swarm.Service
	for _, s := range svcs {
		if s.Spec.Labels[LabelEnv] == t.Env {
			match = append(match, s)
		}
	}
	switch len(match) {
	case 1:
		return match[0].ID, nil
	case 0:
	default:
		names := make([]string, len(match))
		for i, s := range match {
			names[i] = s.Spec.Name
		}
		return "", fmt.Errorf("%w: services %v all carry the labels of %s", signalman.ErrInvalid, names, t)
	}
	name := d.Name(t)
	svc, _, err := d.cfg.API.ServiceInspectWithRaw(ctx, name, swarm.ServiceInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("%w: no Swarm service labelled %s=%s,%s=%s or named %q",
			signalman.ErrUnknownService, LabelService, t.Service, LabelEnv, t.Env, name)
	}
	if err != nil {
		return "", fmt.Errorf("swarm: inspect service %s: %w", name, err)
	}
	return svc.ID, nil
}

// Name is the name of the Swarm service of t when no service carries t's
// labels: Config.Names' template of t.Service, else "<service>-<env>".
func (d *Driver) Name(t signalman.Target) string {
	tmpl, ok := d.cfg.Names[t.Service]
	if !ok {
		tmpl = "{service}-{env}"
		if t.Env == "" {
			tmpl = "{service}"
		}
	}
	return strings.NewReplacer("{service}", t.Service, "{env}", t.Env).Replace(tmpl)
}

// setReplicas reads the service and writes it back with n replicas and the
// version it read. Swarm refuses a write based on a stale version ("update
// out of sequence"); then it re-reads and retries, a bounded number of
// times with a jittered pause. check vets the replicas it read before each
// write. It returns the replicas the service had.
func (d *Driver) setReplicas(ctx context.Context, id string, n int, check func(cur int) error) (int, error) {
	for attempt := 0; ; attempt++ {
		svc, _, err := d.cfg.API.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
		if err != nil {
			return 0, fmt.Errorf("swarm: inspect service %s: %w", id, err)
		}
		if svc.Spec.Mode.Replicated == nil || svc.Spec.Mode.Replicated.Replicas == nil {
			return 0, fmt.Errorf("%w: service %s is not replicated (global or job mode)", signalman.ErrInvalid, svc.Spec.Name)
		}
		if us := svc.UpdateStatus; us != nil && (us.State == swarm.UpdateStateUpdating || us.State == swarm.UpdateStateRollbackStarted) {
			return 0, fmt.Errorf("%w: service %s: %s in progress", signalman.ErrBusy, svc.Spec.Name, us.State)
		}
		cur := int(*svc.Spec.Mode.Replicated.Replicas)
		if err := check(cur); err != nil {
			return cur, err
		}
		if cur == n {
			return cur, nil
		}
		spec := svc.Spec
		r := uint64(n)
		spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: &r}
		_, err = d.cfg.API.ServiceUpdate(ctx, id, svc.Version, spec, swarm.ServiceUpdateOptions{QueryRegistry: false})
		if err == nil {
			return cur, nil
		}
		if !outOfSequence(err) || attempt >= d.cfg.Retries {
			return cur, fmt.Errorf("swarm: update service %s: %w", svc.Spec.Name, err)
		}
		d.log.Debug("update out of sequence, retrying", "service", svc.Spec.Name, "attempt", attempt+1)
		pause := time.Duration(10+rand.IntN(40*(attempt+1))) * time.Millisecond
		select {
		case <-ctx.Done():
			return cur, fmt.Errorf("swarm: update service %s: %w", svc.Spec.Name, ctx.Err())
		case <-time.After(pause):
		}
	}
}

// outOfSequence reports Swarm's optimistic-concurrency failure. The engine
// sends it as a plain error (gRPC "Unknown" over HTTP 500) with no type or
// code to test, so its message is the only signal.
func outOfSequence(err error) bool {
	return strings.Contains(err.Error(), "update out of sequence")
}

// wait polls the tasks until exactly n run and nothing is shutting down,
// then asks the Confirmer; if that fails it sets the replicas back to from,
// unless someone else changed them from n meanwhile (signalman.Converge).
func (d *Driver) wait(ctx context.Context, t signalman.Target, id string, from, n int) ([]swarm.Task, error) {
	var running []swarm.Task
	err := signalman.Converge{
		Target: t, Object: "swarm service " + id, From: from, N: n,
		Timeout: d.cfg.Timeout, Poll: d.cfg.PollInterval, Confirmer: d.cfg.Confirmer, Logger: d.log,
		Check: func(ctx context.Context) (bool, string, error) {
			all, err := d.tasks(ctx, id)
			if err != nil {
				return false, "", err
			}
			running = running[:0]
			settled := true
			for _, tk := range all {
				isRunning := tk.Status.State == swarm.TaskStateRunning
				wanted := tk.DesiredState == swarm.TaskStateRunning
				if isRunning && wanted {
					running = append(running, tk)
				}
				if isRunning != wanted {
					settled = false // starting, or still stopping
				}
			}
			return settled && len(running) == n, fmt.Sprintf("%d tasks were not running (%d are)", n, len(running)), nil
		},
		Revert: func(ctx context.Context) error {
			_, err := d.setReplicas(ctx, id, from, func(cur int) error {
				if cur != n {
					return fmt.Errorf("replicas changed to %d by someone else", cur)
				}
				return nil
			})
			return err
		},
	}.Run(ctx)
	if err != nil {
		return nil, err
	}
	sortTasks(running)
	return running, nil
}

func (d *Driver) tasks(ctx context.Context, id string) ([]swarm.Task, error) {
	f := filters.NewArgs(filters.Arg("service", id))
	tasks, err := d.cfg.API.TaskList(ctx, swarm.TaskListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("swarm: list tasks of %s: %w", id, err)
	}
	return tasks, nil
}

// running returns the tasks that run and are meant to, by slot.
func (d *Driver) running(ctx context.Context, id string) ([]swarm.Task, error) {
	all, err := d.tasks(ctx, id)
	if err != nil {
		return nil, err
	}
	var out []swarm.Task
	for _, tk := range all {
		if tk.Status.State == swarm.TaskStateRunning && tk.DesiredState == swarm.TaskStateRunning {
			out = append(out, tk)
		}
	}
	sortTasks(out)
	return out, nil
}

func sortTasks(ts []swarm.Task) {
	slices.SortFunc(ts, func(a, b swarm.Task) int {
		if a.Slot != b.Slot {
			return a.Slot - b.Slot
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// version is the service's kplane.version label, else its image tag.
func version(spec swarm.ServiceSpec) string {
	if v := spec.Labels[LabelVersion]; v != "" {
		return v
	}
	if spec.TaskTemplate.ContainerSpec == nil {
		return ""
	}
	img, _, _ := strings.Cut(spec.TaskTemplate.ContainerSpec.Image, "@")
	if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
		return img[i+1:]
	}
	return ""
}

func diff(before, after []swarm.Task) (started, stopped []string) {
	has := func(ts []swarm.Task, id string) bool {
		return slices.ContainsFunc(ts, func(t swarm.Task) bool { return t.ID == id })
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
