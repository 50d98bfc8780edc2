package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/kplane/kplane/signalman"
)

// Labels on every container the driver creates.
const (
	LabelManaged  = "kplane.managed" // "true"
	LabelService  = "kplane.service"
	LabelEnv      = "kplane.env"
	LabelVersion  = "kplane.version"
	LabelInstance = "kplane.instance" // instance number, 1-based
	labelAddr     = "kplane.addr"     // bridge network: the container's IP
)

// HostNetwork is the default Config.Network.
const HostNetwork = "host"

// Confirmer tells the driver that instances have registered. The registry
// Watcher implements it.
type Confirmer = signalman.Confirmer

// Config configures a Driver. The zero value of every field but Services
// is safe.
type Config struct {
	// Client talks to the engine. Nil means a client from the environment
	// (DOCKER_HOST etc.) with API version negotiation, closed by Close.
	Client *client.Client
	// Services says how to run each service the driver may run.
	Services map[string]Spec
	// Confirmer confirms that started instances registered. Nil means a
	// container counts as soon as it runs.
	Confirmer Confirmer
	// ConfirmTimeout bounds the wait for registration. 0 means 30 s.
	ConfirmTimeout time.Duration
	// StopTimeout is how long a container has between SIGTERM and
	// SIGKILL to drain. 0 means 10 s.
	StopTimeout time.Duration
	// Network is "host" (or "") for host networking, else the name of a
	// user-defined bridge network, created (with Subnet) if missing.
	Network string
	// Subnet of a bridge network the driver creates; containers get fixed
	// addresses in it, so that they can advertise them. "" means
	// 172.29.0.0/24.
	Subnet string
	// Port is the container port instances listen on in a bridge
	// network. 0 means 8080.
	Port int
	// Logger; nil discards.
	Logger *slog.Logger
}

// Driver runs instances as containers. Scale, Start and Stop on a target
// that is already being changed return signalman.ErrBusy; DestroyEnv waits
// for them.
type Driver struct {
	cfg       Config
	cli       *client.Client
	ownClient bool
	log       *slog.Logger
	bridge    bool
	prefix    netip.Prefix // bridge only

	mu     sync.Mutex
	groups map[signalman.Target]*group
	ipMu   sync.Mutex // serialises address choice and container creation on a bridge
}

var _ signalman.InstanceDriver = (*Driver)(nil)

type group struct {
	busy    chan struct{} // a token: held for the whole of a change
	version string        // version of new instances
}

// New returns a driver. On a bridge network it creates the network if it
// does not exist.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if len(cfg.Services) == 0 {
		return nil, errors.New("docker: no services configured")
	}
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
	if cfg.Network == "" {
		cfg.Network = HostNetwork
	}
	if cfg.Subnet == "" {
		cfg.Subnet = "172.29.0.0/24"
	}
	if cfg.Port <= 0 {
		cfg.Port = 8080
	}
	d := &Driver{cfg: cfg, cli: cfg.Client, log: cfg.Logger, groups: make(map[signalman.Target]*group)}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.cli == nil {
		cli, err := NewClient()
		if err != nil {
			return nil, err
		}
		d.cli, d.ownClient = cli, true
	}
	if cfg.Network != HostNetwork {
		d.bridge = true
		if err := d.ensureNetwork(ctx); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// NewClient returns an engine client configured from the environment
// (DOCKER_HOST, DOCKER_CERT_PATH, ...) that negotiates the API version.
func NewClient() (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker: client: %w", err)
	}
	return cli, nil
}

// Close releases the engine client if the driver made it. Containers keep
// running: the engine, not this process, owns them (see DestroyEnv).
func (d *Driver) Close() error {
	if d.ownClient {
		return d.cli.Close()
	}
	return nil
}

// Scale converges target to n containers, confirming new ones through the
// Confirmer before it returns. Containers that exited for good (the
// engine gave up restarting them, or they stopped cleanly on their own)
// are removed first and do not count.
func (d *Driver) Scale(ctx context.Context, t signalman.Target, n int) (signalman.Result, error) {
	res := signalman.Result{Target: t}
	if n < 0 {
		return res, fmt.Errorf("%w: instance count %d is negative", signalman.ErrInvalid, n)
	}
	spec, g, err := d.lookup(t)
	if err != nil {
		return res, err
	}
	if !g.tryLock() {
		return res, fmt.Errorf("%w: %s is being changed", signalman.ErrBusy, t)
	}
	defer g.unlock()

	cs, err := d.live(ctx, t)
	if err != nil {
		return res, err
	}
	res.From = len(cs)
	switch {
	case n > len(cs):
		started, err := d.start(ctx, t, spec, d.version(g, spec), n-len(cs), cs)
		if err != nil {
			res.To = res.From
			return res, err
		}
		for _, c := range started {
			res.Started = append(res.Started, c.inst.ID)
		}
	case n < len(cs):
		// cs is ordered by number: the tail is the highest.
		res.Stopped, err = d.stop(ctx, t, cs[n:])
		if err != nil {
			// Report what runs now, not what was asked for.
			res.To = len(cs) - len(res.Stopped)
			return res, err
		}
	}
	res.To = n
	if !res.NoOp() {
		d.log.Info("scaled", "target", t.String(), "from", res.From, "to", res.To,
			"started", res.Started, "stopped", res.Stopped)
	}
	return res, nil
}

// Instances lists the live containers of t (running, or being restarted
// by the engine), ordered by instance number.
func (d *Driver) Instances(ctx context.Context, t signalman.Target) ([]signalman.Instance, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	cs, err := d.list(ctx, t.Service, t.Env)
	if err != nil {
		return nil, err
	}
	var out []signalman.Instance
	for _, c := range cs {
		if !c.dead {
			out = append(out, c.inst)
		}
	}
	return out, nil
}

// Start starts one container of t at version and returns once it has
// registered. Later Scale calls on t start that version.
func (d *Driver) Start(ctx context.Context, t signalman.Target, version string) (signalman.Instance, error) {
	if version == "" {
		return signalman.Instance{}, fmt.Errorf("%w: version is empty", signalman.ErrInvalid)
	}
	spec, g, err := d.lookup(t)
	if err != nil {
		return signalman.Instance{}, err
	}
	if !g.tryLock() {
		return signalman.Instance{}, fmt.Errorf("%w: %s is being changed", signalman.ErrBusy, t)
	}
	defer g.unlock()
	cs, err := d.live(ctx, t)
	if err != nil {
		return signalman.Instance{}, err
	}
	started, err := d.start(ctx, t, spec, version, 1, cs)
	if err != nil {
		return signalman.Instance{}, err
	}
	d.mu.Lock()
	g.version = version
	d.mu.Unlock()
	d.log.Info("started instance", "target", t.String(), "instance", started[0].inst.ID, "version", version)
	return started[0].inst, nil
}

// Stop drains one container (SIGTERM: the instance deregisters and
// finishes its requests) and removes it.
func (d *Driver) Stop(ctx context.Context, t signalman.Target, id string) error {
	_, g, err := d.lookup(t)
	if err != nil {
		return err
	}
	if !g.tryLock() {
		return fmt.Errorf("%w: %s is being changed", signalman.ErrBusy, t)
	}
	defer g.unlock()
	cs, err := d.list(ctx, t.Service, t.Env)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(cs, func(c ctr) bool { return c.inst.ID == id })
	if i < 0 {
		return fmt.Errorf("%w: %s has no instance %q", signalman.ErrUnknownInstance, t, id)
	}
	if _, err := d.stop(ctx, t, cs[i:i+1]); err != nil {
		return err
	}
	d.log.Info("stopped instance", "target", t.String(), "instance", id)
	return nil
}

// DestroyEnv drains and removes every managed container of env, of every
// service, waiting (until ctx ends) for changes in progress on them.
func (d *Driver) DestroyEnv(ctx context.Context, env string) error {
	cs, err := d.list(ctx, "", env)
	if err != nil {
		return err
	}
	byTarget := make(map[signalman.Target][]ctr)
	for _, c := range cs {
		byTarget[c.inst.Target] = append(byTarget[c.inst.Target], c)
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(byTarget))
	for t := range byTarget {
		g := d.group(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case g.busy <- struct{}{}:
			case <-ctx.Done():
				errc <- fmt.Errorf("docker: destroy %s: %w", t, ctx.Err())
				return
			}
			defer g.unlock()
			// Re-list under the lock: a Scale may have changed the set.
			cs, err := d.list(ctx, t.Service, t.Env)
			if err != nil {
				errc <- err
				return
			}
			if _, err := d.stop(ctx, t, cs); err != nil {
				errc <- err
			}
		}()
	}
	wg.Wait()
	close(errc)
	var errs []error
	for e := range errc {
		errs = append(errs, e)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if left, err := d.list(ctx, "", env); err != nil {
		return err
	} else if len(left) > 0 {
		return fmt.Errorf("docker: destroy env %q: %d containers remain (created meanwhile?)", env, len(left))
	}
	if len(cs) > 0 {
		d.log.Info("destroyed environment", "env", env, "containers", len(cs))
	}
	return nil
}

func (d *Driver) lookup(t signalman.Target) (Spec, *group, error) {
	if err := t.Validate(); err != nil {
		return Spec{}, nil, err
	}
	if t.Env != "" && !validName(t.Env) {
		return Spec{}, nil, fmt.Errorf("%w: env %q cannot be part of a container name", signalman.ErrInvalid, t.Env)
	}
	spec, ok := d.cfg.Services[t.Service]
	if !ok {
		names := make([]string, 0, len(d.cfg.Services))
		for n := range d.cfg.Services {
			names = append(names, n)
		}
		sort.Strings(names)
		return Spec{}, nil, fmt.Errorf("%w: %q (the docker driver knows %v)", signalman.ErrUnknownService, t.Service, names)
	}
	return spec, d.group(t), nil
}

func (d *Driver) group(t signalman.Target) *group {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.groups[t]
	if g == nil {
		g = &group{busy: make(chan struct{}, 1)}
		d.groups[t] = g
	}
	return g
}

func (d *Driver) version(g *group, spec Spec) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if g.version != "" {
		return g.version
	}
	return spec.Version
}

func (g *group) tryLock() bool {
	select {
	case g.busy <- struct{}{}:
		return true
	default:
		return false
	}
}

func (g *group) unlock() { <-g.busy }

// ctr is one managed container as listed.
type ctr struct {
	containerID string
	n           int
	inst        signalman.Instance
	addr        string
	dead        bool // exited, and the engine will not restart it
}

// list returns the managed containers of service (all if "") in env,
// ordered by instance number.
func (d *Driver) list(ctx context.Context, service, env string) ([]ctr, error) {
	f := filters.NewArgs(filters.Arg("label", LabelManaged+"=true"), filters.Arg("label", LabelEnv+"="+env))
	if service != "" {
		f.Add("label", LabelService+"="+service)
	}
	raw, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("docker: list containers: %w", err)
	}
	out := make([]ctr, 0, len(raw))
	for _, c := range raw {
		n, err := strconv.Atoi(c.Labels[LabelInstance])
		if err != nil {
			continue // not one of ours after all
		}
		t := signalman.Target{Service: c.Labels[LabelService], Env: env}
		out = append(out, ctr{
			containerID: c.ID,
			n:           n,
			addr:        c.Labels[labelAddr],
			inst: signalman.Instance{
				ID:      instanceID(t, n),
				Target:  t,
				Version: c.Labels[LabelVersion],
				Started: time.Unix(c.Created, 0),
			},
			// "created" is a start that failed half way; "exited" with
			// restart policy on-failure means a clean exit or no retries
			// left; "restarting" is still the engine's to handle.
			dead: c.State == container.StateExited || c.State == container.StateDead || c.State == container.StateCreated,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].inst.Target.Service != out[j].inst.Target.Service {
			return out[i].inst.Target.Service < out[j].inst.Target.Service
		}
		return out[i].n < out[j].n
	})
	return out, nil
}

// live lists t's containers and removes those that are dead, so that their
// numbers are free again.
func (d *Driver) live(ctx context.Context, t signalman.Target) ([]ctr, error) {
	cs, err := d.list(ctx, t.Service, t.Env)
	if err != nil {
		return nil, err
	}
	live := cs[:0]
	for _, c := range cs {
		if !c.dead {
			live = append(live, c)
			continue
		}
		d.log.Warn("removing exited instance", "target", t.String(), "instance", c.inst.ID)
		if err := d.remove(ctx, c.containerID); err != nil {
			return nil, err
		}
	}
	return live, nil
}

func (d *Driver) remove(ctx context.Context, id string) error {
	err := d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !errdefsNotFound(err) {
		return fmt.Errorf("docker: remove container: %w", err)
	}
	return nil
}

// labels of a new container.
func labels(l launch) map[string]string {
	m := map[string]string{
		LabelManaged:  "true",
		LabelService:  l.target.Service,
		LabelEnv:      l.target.Env,
		LabelVersion:  l.version,
		LabelInstance: strconv.Itoa(l.n),
	}
	if l.ip != "" {
		m[labelAddr] = l.ip
	}
	return m
}

// start creates and starts count containers at the lowest free numbers and
// waits until the Confirmer has seen all of them. On failure it drains and
// removes every container it created, so nothing is left behind.
func (d *Driver) start(ctx context.Context, t signalman.Target, spec Spec, version string, count int, existing []ctr) ([]ctr, error) {
	used := make(map[int]bool, len(existing))
	for _, c := range existing {
		used[c.n] = true
	}
	var started []ctr
	// Waits are set up before each start, so that an exit right after it
	// is not missed; an exit before registering fails the whole start.
	wctx, stopWaits := context.WithCancel(ctx)
	defer stopWaits()
	exited := make(chan ctr, count)
	fail := func(err error) ([]ctr, error) {
		stopWaits()
		// Those that started may have registered and taken requests:
		// drain them as a scale-down does, rather than kill them and
		// leave their registrations to callers until the lease expires.
		// stop cleans up even when the caller's ctx is what failed.
		if _, serr := d.stop(ctx, t, started); serr != nil {
			d.log.Error("cannot remove the containers of a failed start", "err", serr)
		}
		return nil, err
	}
	n := 0
	for range count {
		n++
		for used[n] {
			n++
		}
		used[n] = true
		c, err := d.create(ctx, t, spec, version, n)
		if err != nil {
			return fail(err)
		}
		started = append(started, c)
		waitc, errc := d.cli.ContainerWait(wctx, c.containerID, container.WaitConditionNextExit)
		c.inst.Started = time.Now()
		started[len(started)-1] = c
		if err := d.cli.ContainerStart(ctx, c.containerID, container.StartOptions{}); err != nil {
			return fail(fmt.Errorf("docker: start %s: %w", c.inst.ID, err))
		}
		go func() {
			select {
			case <-waitc:
				exited <- c
			case <-errc:
			}
		}()
	}
	if d.cfg.Confirmer == nil {
		return started, nil
	}
	cctx, cancel := context.WithTimeout(ctx, d.cfg.ConfirmTimeout)
	defer cancel()
	var early *ctr
	var earlyMu sync.Mutex
	go func() {
		select {
		case c := <-exited:
			earlyMu.Lock()
			early = &c
			earlyMu.Unlock()
			cancel()
		case <-cctx.Done():
		}
	}()
	// An ID may be reused (a number freed by a scale-down) while the old
	// registration lives on until its lease expires: only a registration
	// made after this start counts (same host, same clock).
	want := make([]signalman.Instance, len(started))
	for i, c := range started {
		want[i] = c.inst
	}
	err := d.cfg.Confirmer.WaitInstances(cctx, t.Service, signalman.RegisteredSince(want))
	if err != nil {
		cancel()
		earlyMu.Lock()
		e := early
		earlyMu.Unlock()
		ids := make([]string, len(started))
		for i, c := range started {
			ids[i] = c.inst.ID
		}
		switch {
		case ctx.Err() != nil:
			return fail(fmt.Errorf("docker: starting %s: %w", t, ctx.Err()))
		case e != nil:
			return fail(fmt.Errorf("%w: %s exited before registering%s", signalman.ErrNotConfirmed, e.inst.ID, d.tail(e.containerID)))
		default:
			return fail(fmt.Errorf("%w: %v not registered within %s", signalman.ErrNotConfirmed, ids, d.cfg.ConfirmTimeout))
		}
	}
	return started, nil
}

// create creates (does not start) instance n of t.
func (d *Driver) create(ctx context.Context, t signalman.Target, spec Spec, version string, n int) (ctr, error) {
	l := launch{target: t, n: n, version: version, listen: "127.0.0.1:0"}
	hc := &container.HostConfig{
		Binds:         spec.Binds,
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyOnFailure},
	}
	var nc *network.NetworkingConfig
	if d.bridge {
		d.ipMu.Lock()
		defer d.ipMu.Unlock()
		ip, err := d.freeAddr(ctx)
		if err != nil {
			return ctr{}, err
		}
		port := strconv.Itoa(d.cfg.Port)
		l.ip = ip.String()
		l.listen = "0.0.0.0:" + port
		l.advertise = netip.AddrPortFrom(ip, uint16(d.cfg.Port)).String()
		hc.NetworkMode = container.NetworkMode(d.cfg.Network)
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			d.cfg.Network: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: l.ip}},
		}}
	} else {
		hc.NetworkMode = container.NetworkMode(HostNetwork)
	}
	cc := &container.Config{
		Image:  l.expand(spec.Image),
		Cmd:    l.expandAll(spec.Cmd),
		Env:    l.expandAll(spec.Env),
		User:   spec.User,
		Labels: labels(l),
	}
	name := containerName(t, n)
	resp, err := d.cli.ContainerCreate(ctx, cc, hc, nc, nil, name)
	if err != nil {
		if !cerrdefs.IsConflict(err) {
			d.removeUnstarted(ctx, name, l.version)
		}
		return ctr{}, fmt.Errorf("docker: create %s: %w", name, err)
	}
	return ctr{
		containerID: resp.ID,
		n:           n,
		addr:        l.ip,
		inst:        signalman.Instance{ID: l.id(), Target: t, Version: version, Started: time.Now()},
	}, nil
}

// removeUnstarted removes the container name if the engine created it for
// a create call that failed anyway (the answer was lost on the way): it
// was never started, and would hold the name and, on a bridge, the
// address. Best effort: a container left behind is removed by the next
// change of its target, which removes exited and created ones.
func (d *Driver) removeUnstarted(ctx context.Context, name, version string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.StopTimeout)
	defer cancel()
	c, err := d.cli.ContainerInspect(ctx, name)
	if err != nil || c.State == nil || c.State.Status != container.StateCreated ||
		c.Config == nil || c.Config.Labels[LabelManaged] != "true" || c.Config.Labels[LabelVersion] != version {
		return
	}
	if err := d.remove(ctx, c.ID); err != nil {
		d.log.Warn("cannot remove the container of a failed create", "container", name, "err", err)
	}
}

// stop drains and removes cs in parallel: SIGTERM, StopTimeout to drain,
// SIGKILL, remove. It then waits, StopTimeout at most, until the registry
// no longer lists them, so that callers can no longer pick a stopped
// instance once it returns. It returns the IDs of the instances that are
// stopped (removed, or stopped with their removal failed: the engine no
// longer restarts them and the next change removes them), and an error
// naming those the engine could neither stop nor remove: they still run.
func (d *Driver) stop(ctx context.Context, t signalman.Target, cs []ctr) ([]string, error) {
	secs := int((d.cfg.StopTimeout + time.Second - 1) / time.Second)
	// Stopping is not abandoned half way: a container is either left
	// running or removed.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.StopTimeout+30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(cs))
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stopErr := d.cli.ContainerStop(sctx, c.containerID, container.StopOptions{Timeout: &secs})
			if stopErr != nil && !errdefsNotFound(stopErr) {
				d.log.Warn("stop container", "instance", c.inst.ID, "err", stopErr)
			} else {
				stopErr = nil
			}
			if err := d.remove(sctx, c.containerID); err != nil {
				d.log.Error("remove container", "instance", c.inst.ID, "err", err)
				if stopErr != nil {
					errs[i] = fmt.Errorf("docker: %s may still be running: %w", c.inst.ID, errors.Join(stopErr, err))
				}
			}
		}()
	}
	wg.Wait()
	var ids []string
	for i, c := range cs {
		if errs[i] == nil {
			ids = append(ids, c.inst.ID)
		}
	}
	d.awaitDeregistered(ctx, t, ids)
	return ids, errors.Join(errs...)
}

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
