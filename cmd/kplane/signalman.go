package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kplane/kplane/signalman"
	"github.com/kplane/kplane/signalman/docker"
	"github.com/kplane/kplane/signalman/marathon"
	"github.com/kplane/kplane/signalman/process"
	"github.com/kplane/kplane/signalman/swarm"
)

// The orchestrator of `kplane server` and `kplane dev`: one driver
// (cfg.Driver) running the services of cfg.Services and, when the demo is
// on, the demo's. The demo is only one more source of service specs.

// ServiceConfig says how the configured driver runs one of your services.
// Only the fields of that driver may be set; Validate says which.
//
//	services:
//	  inventory:                       # driver: docker
//	    image: shop/inventory:{version}
//	    cmd: [--listen, "{listen}", --advertise, "{advertise}", --etcd, "http://etcd:2379", --id, "{id}", --env, "{env}"]
//	    version: 1.4.0
//	    instances: 2
type ServiceConfig struct {
	// Version is the version of new instances until a deploy names
	// another: {version} in the fields below.
	Version string `yaml:"version"`
	// Instances, when above 0, is how many instances kplane starts in the
	// autoscaler's environment (autoscaler.env) when it starts and fewer
	// run there. It never scales a service down.
	Instances int `yaml:"instances"`

	// process: the executable and its arguments.
	Path string   `yaml:"path"`
	Args []string `yaml:"args"`
	// process, docker and swarm: extra KEY=VALUE environment entries.
	Env []string `yaml:"env"`

	// docker: the image (not pulled: it must be on the engine) and the
	// arguments to its entrypoint, bind mounts and the user to run as.
	// swarm and marathon: what a deploy sets, templates with {version}:
	// the image ("" keeps the service's image name, tagged with the
	// version) and the arguments to its entrypoint (empty keeps them).
	// swarm: also env (empty keeps the entries); and a service with an
	// image can be created: a deploy into an environment that does not
	// run it (HAWAII's alpha environments) creates its Swarm service.
	Image string   `yaml:"image"`
	Cmd   []string `yaml:"cmd"`
	Binds []string `yaml:"binds"`
	User  string   `yaml:"user"`

	// swarm: the name of the service's Swarm service, a template with
	// {service} and {env}; "" means <service>-<env>. A Swarm service
	// labelled kplane.service and kplane.env is found whatever its name.
	SwarmService string `yaml:"swarm_service"`

	// marathon: the app ID, a template with {service} and {env}; ""
	// means marathon.app_id.
	AppID string `yaml:"app_id"`
}

// ProcessConfig configures driver process.
type ProcessConfig struct {
	// StopTimeout is the time between SIGTERM and SIGKILL, a Go duration;
	// "" means 10s (with the demo, its drain time).
	StopTimeout string `yaml:"stop_timeout" env:"KPLANE_PROCESS_STOP_TIMEOUT"`
}

// DockerConfig configures driver docker. The engine is the one of the
// environment (DOCKER_HOST, else the local socket).
type DockerConfig struct {
	// Network is host (the default) or the name of a user-defined bridge
	// network, created if missing (see signalman/docker's README).
	Network string `yaml:"network" env:"KPLANE_DOCKER_NETWORK"`
	// Subnet of a bridge network kplane creates; "" means 172.29.0.0/24.
	Subnet string `yaml:"subnet" env:"KPLANE_DOCKER_SUBNET"`
	// Port instances listen on in a bridge network; 0 means 8080.
	Port int `yaml:"port" env:"KPLANE_DOCKER_PORT"`
	// StopTimeout is how long a container has to drain before SIGKILL, a
	// Go duration; "" means 10s (with the demo, its drain time).
	StopTimeout string `yaml:"stop_timeout" env:"KPLANE_DOCKER_STOP_TIMEOUT"`
}

// SwarmConfig configures driver swarm. The engine is the one of the
// environment (DOCKER_HOST), a Swarm manager.
type SwarmConfig struct {
	// Timeout bounds one scale (tasks running and registered), and one
	// deploy's rollout and its rollback, a Go duration; "" means 2m.
	Timeout string `yaml:"timeout" env:"KPLANE_SWARM_TIMEOUT"`
	// Monitor is a deploy's monitor period: a task failing within it
	// makes Swarm roll back. "" means 5s.
	Monitor string `yaml:"monitor" env:"KPLANE_SWARM_MONITOR"`
	// UpdateDelay is Swarm's pause between two batches of a deploy: the
	// time kplane's health gate has before the next batch is replaced.
	// "" means none.
	UpdateDelay string `yaml:"update_delay" env:"KPLANE_SWARM_UPDATE_DELAY"`
	// Network of the Swarm services kplane creates (environments): host
	// (the default), or the name of an existing overlay network.
	Network string `yaml:"network" env:"KPLANE_SWARM_NETWORK"`
	// StopGracePeriod of the Swarm services kplane creates: the time an
	// instance has to drain between the stop signal and SIGKILL, a Go
	// duration; "" means 10s.
	StopGracePeriod string `yaml:"stop_grace_period" env:"KPLANE_SWARM_STOP_GRACE_PERIOD"`
}

// MarathonConfig configures driver marathon.
type MarathonConfig struct {
	// URL of Marathon, e.g. http://marathon.mesos:8080.
	URL string `yaml:"url" env:"KPLANE_MARATHON_URL"`
	// AppID is the app ID template of every service; "" means
	// /{env}/{service}.
	AppID string `yaml:"app_id" env:"KPLANE_MARATHON_APP_ID"`
	// Username and Password for HTTP basic auth, or Token (DC/OS).
	Username string `yaml:"username" env:"KPLANE_MARATHON_USERNAME"`
	Password string `yaml:"password" env:"KPLANE_MARATHON_PASSWORD"`
	Token    string `yaml:"token" env:"KPLANE_MARATHON_TOKEN"`
	// Force cancels a deployment that locks an app instead of waiting.
	Force bool `yaml:"force" env:"KPLANE_MARATHON_FORCE"`
	// Timeout bounds one scale, and one deploy's deployment and its
	// rollback, a Go duration; "" means 5m.
	Timeout string `yaml:"timeout" env:"KPLANE_MARATHON_TIMEOUT"`
}

// drivers kplane can run services with.
var drivers = []string{"process", "docker", "swarm", "marathon"}

// localDriver reports whether kplane itself starts the instances of
// driver, from the specs in services: (signalman.InstanceDriver). Swarm
// and Marathon run what is defined there; kplane scales and deploys it
// (signalman.Roller), and on swarm also creates the services of an
// environment from services.<name>.image (signalman.EnvDestroyer).
func localDriver(driver string) bool { return driver == "process" || driver == "docker" }

// serviceName is what a container name, a registry key and a URL path
// segment all accept.
var serviceName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// placeholder finds {word} in a spec.
var placeholder = regexp.MustCompile(`\{[a-z]+\}`)

// placeholders each driver expands.
var placeholders = map[string][]string{
	"process":  {"{id}", "{service}", "{env}", "{version}", "{n}"},
	"docker":   {"{id}", "{service}", "{env}", "{version}", "{n}", "{listen}", "{advertise}"},
	"swarm":    {"{service}", "{env}", "{version}"},
	"marathon": {"{service}", "{env}", "{version}"},
}

// validateOrchestrator checks driver, its settings and services.
func (c *Config) validateOrchestrator() error {
	if !slices.Contains(drivers, c.Driver) {
		return fmt.Errorf("driver %q: want process, docker, swarm or marathon", c.Driver)
	}
	for name, d := range map[string]string{"process.stop_timeout": c.Process.StopTimeout, "docker.stop_timeout": c.Docker.StopTimeout,
		"swarm.timeout": c.Swarm.Timeout, "swarm.monitor": c.Swarm.Monitor, "swarm.update_delay": c.Swarm.UpdateDelay,
		"swarm.stop_grace_period": c.Swarm.StopGracePeriod,
		"marathon.timeout":        c.Marathon.Timeout} {
		if d == "" {
			continue
		}
		if v, err := time.ParseDuration(d); err != nil || v <= 0 {
			return fmt.Errorf("%s %q: want a positive duration like 30s", name, d)
		}
	}
	if c.Docker.Port < 0 || c.Docker.Port > 65535 {
		return fmt.Errorf("docker.port %d: want a port number (0 means 8080)", c.Docker.Port)
	}
	if c.Demo.Enabled {
		if !localDriver(c.Driver) {
			return fmt.Errorf("the demo runs with driver process or docker, not %s: set demo.enabled: false (KPLANE_DEMO=false) to run your services on %s", c.Driver, c.Driver)
		}
		if c.Driver == "docker" && c.Docker.Network != "" && c.Docker.Network != docker.HostNetwork {
			return fmt.Errorf("the demo runs on the host network, not docker.network %q: set demo.enabled: false or leave docker.network out", c.Docker.Network)
		}
	}
	if c.Driver == "marathon" {
		if u := c.Marathon.URL; u == "" || !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return fmt.Errorf("driver marathon needs marathon.url (or KPLANE_MARATHON_URL), a URL like http://marathon.mesos:8080; got %q", u)
		}
	}
	if c.Driver == "marathon" && len(c.Pipeline.Services) > 0 {
		// Deploys work there, but HAWAII tests every build in a
		// throwaway alpha-b<ID> environment first, which the marathon
		// driver cannot create: it creates no apps.
		return fmt.Errorf("pipeline.services: HAWAII runs every build first in a throwaway environment alpha-b<build>, and driver marathon does not create or destroy environments (it deploys to the apps Marathon runs): use driver swarm, process or docker for services with a pipeline; deploys to the environments Marathon already runs (POST /api/v1/deploys, kplane deploy) work on marathon")
	}
	if c.Driver == "swarm" {
		// The alpha environment of each build is created from the
		// services' templates: each service of a pipeline, and each of
		// its dependencies, needs an image.
		for _, sp := range c.Pipeline.Services {
			need := []string{sp.Service}
			for _, dep := range sp.Dependencies {
				name, _, _ := strings.Cut(dep, "@")
				need = append(need, name)
			}
			for _, name := range need {
				if c.Services[name].Image == "" {
					return fmt.Errorf("pipeline.services: %s runs in each build's throwaway environment alpha-b<build>, which driver swarm creates from services.%s.image (and cmd, env): set services.%s.image, e.g. shop/%s:{version}", name, name, name, name)
				}
			}
		}
	}
	names := make([]string, 0, len(c.Services))
	for name := range c.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := c.validateService(name, c.Services[name]); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateService(name string, s ServiceConfig) error {
	at := "services." + name
	if !serviceName.MatchString(name) {
		return fmt.Errorf("%s: a service name is 1 to 63 letters, digits, '_', '.' and '-', starting with a letter or digit", at)
	}
	if c.Demo.Enabled && (name == "inventory" || name == "checkpoint") {
		return fmt.Errorf("%s: the demo runs %s: rename your service or set demo.enabled: false (KPLANE_DEMO=false)", at, name)
	}
	if s.Instances < 0 {
		return fmt.Errorf("%s.instances is %d: want 0 (start none) or more", at, s.Instances)
	}
	// The settings of every driver, and which of them this one takes.
	set := map[string]bool{
		"path": s.Path != "", "args": len(s.Args) > 0, "env": len(s.Env) > 0,
		"image": s.Image != "", "cmd": len(s.Cmd) > 0, "binds": len(s.Binds) > 0, "user": s.User != "",
		"swarm_service": s.SwarmService != "", "app_id": s.AppID != "",
	}
	takes := map[string][]string{
		"process":  {"path", "args", "env"},
		"docker":   {"image", "cmd", "env", "binds", "user"},
		"swarm":    {"swarm_service", "image", "cmd", "env"},
		"marathon": {"app_id", "image", "cmd"},
	}[c.Driver]
	for _, key := range []string{"path", "args", "env", "image", "cmd", "binds", "user", "swarm_service", "app_id"} {
		if set[key] && !slices.Contains(takes, key) {
			return fmt.Errorf("%s.%s is not a setting of driver %s (it takes %s)", at, key, c.Driver, strings.Join(takes, ", "))
		}
	}
	switch c.Driver {
	case "process":
		if s.Path == "" {
			return fmt.Errorf("%s.path is empty: driver process needs the executable to run", at)
		}
	case "docker":
		if s.Image == "" {
			return fmt.Errorf("%s.image is empty: driver docker needs an image on the engine, e.g. shop/%s:{version}", at, name)
		}
	}
	fields := append(append(append(append([]string{s.Path, s.Image, s.User, s.SwarmService, s.AppID}, s.Args...), s.Env...), s.Cmd...), s.Binds...)
	for _, f := range fields {
		for _, p := range placeholder.FindAllString(f, -1) {
			if !slices.Contains(placeholders[c.Driver], p) {
				return fmt.Errorf("%s: %s is not a placeholder of driver %s (it has %s)", at, p, c.Driver, strings.Join(placeholders[c.Driver], " "))
			}
		}
		// On swarm and marathon only a deploy expands {version}, with
		// the version it deploys.
		if strings.Contains(f, "{version}") && s.Version == "" && localDriver(c.Driver) {
			return fmt.Errorf("%s uses {version} but %s.version is empty: set the version instances start with", at, at)
		}
	}
	for _, f := range []string{s.SwarmService, s.AppID} {
		if strings.Contains(f, "{version}") {
			return fmt.Errorf("%s: {version} names no Swarm service or Marathon app: use it in image or cmd", at)
		}
	}
	for _, e := range s.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return fmt.Errorf("%s.env entry %q: want KEY=VALUE", at, e)
		}
	}
	return nil
}

// orchestrator is the driver serve runs. It scales every service and
// rolls deploys through instances.
type orchestrator struct {
	signalman.Orchestrator
	driver string
	// instances is the same driver as the signalman.Deployer takes it:
	// one that starts and stops single instances (process, docker: a
	// signalman.InstanceDriver) or one whose scheduler rolls by itself
	// (swarm, marathon: a signalman.Roller).
	instances signalman.Orchestrator
	run       func(ctx context.Context) error // until ctx ends
	close     func() error                    // stops what must not outlive kplane
	demo      bool                            // runs the demo's services
}

// Run keeps the driver's instances at their count until ctx ends.
func (o *orchestrator) Run(ctx context.Context) error {
	if o.run == nil {
		<-ctx.Done()
		return nil
	}
	return o.run(ctx)
}

// Close stops the instances that end with kplane: the process driver's
// children, the demo's containers.
func (o *orchestrator) Close() error {
	if o.close == nil {
		return nil
	}
	return o.close()
}

// deploys is what serve gives the deploy API: the Deployer, or nil (no
// deploy API) without one.
func (o *orchestrator) deploys(d *signalman.Deployer) deploysAPI {
	if d == nil {
		return nil
	}
	return d
}

// deploysAPI is web.Deploys; named here so that this file need not import
// web.
type deploysAPI interface {
	Begin(req signalman.DeployRequest) (signalman.Deploy, error)
	Get(ctx context.Context, id string) (signalman.Deploy, error)
	List(ctx context.Context, t signalman.Target, limit int) ([]signalman.Deploy, error)
	Subscribe(ctx context.Context, id string) (<-chan struct{}, func(), error)
	DestroyEnv(ctx context.Context, env string) error
}

// orchestratorDeps is what building an orchestrator needs besides cfg.
type orchestratorDeps struct {
	endpoints []string
	confirm   signalman.Confirmer
	progress  io.Writer // image builds of the docker demo
	log       *slog.Logger
}

// newOrchestrator builds cfg.Driver with the demo's services (when the
// demo is on) and cfg.Services. It returns nil when there is nothing to
// run: no demo and no services on a driver that needs specs (process,
// docker). Swarm and Marathon need none: they scale and deploy what runs
// there.
func newOrchestrator(ctx context.Context, cfg Config, deps orchestratorDeps) (*orchestrator, error) {
	if localDriver(cfg.Driver) && !cfg.Demo.Enabled && len(cfg.Services) == 0 {
		return nil, nil
	}
	switch cfg.Driver {
	case "docker":
		return newDockerOrchestrator(ctx, cfg, deps)
	case "swarm":
		cli, err := docker.NewClient()
		if err != nil {
			return nil, err
		}
		names := map[string]string{}
		for name, s := range cfg.Services {
			if s.SwarmService != "" {
				names[name] = s.SwarmService
			}
		}
		images, args := deployTemplates(cfg.Services)
		envs := map[string][]string{}
		for name, s := range cfg.Services {
			if len(s.Env) > 0 {
				envs[name] = s.Env
			}
		}
		d, err := swarm.New(swarm.Config{API: cli, Confirmer: deps.confirm, Timeout: duration(cfg.Swarm.Timeout),
			Names: names, Images: images, Args: args, Env: envs, Monitor: duration(cfg.Swarm.Monitor),
			Delay: duration(cfg.Swarm.UpdateDelay), Network: cfg.Swarm.Network,
			StopGracePeriod: duration(cfg.Swarm.StopGracePeriod), Logger: deps.log})
		if err != nil {
			cli.Close()
			return nil, err
		}
		return &orchestrator{Orchestrator: d, driver: "swarm", instances: d, close: cli.Close}, nil
	case "marathon":
		ids := map[string]string{}
		for name, s := range cfg.Services {
			if s.AppID != "" {
				ids[name] = s.AppID
			}
		}
		m := cfg.Marathon
		images, args := deployTemplates(cfg.Services)
		d, err := marathon.New(marathon.Config{URL: m.URL, AppID: m.AppID, AppIDs: ids, Username: m.Username,
			Password: m.Password, Token: m.Token, Force: m.Force, Confirmer: deps.confirm,
			Timeout: duration(m.Timeout), Images: images, Args: args, Logger: deps.log})
		if err != nil {
			return nil, err
		}
		return &orchestrator{Orchestrator: d, driver: "marathon", instances: d}, nil
	default:
		specs := map[string]process.Spec{}
		stop := duration(cfg.Process.StopTimeout)
		if cfg.Demo.Enabled {
			demo, err := demoProcessSpecs(cfg, deps.endpoints)
			if err != nil {
				return nil, err
			}
			for name, s := range demo {
				specs[name] = s
			}
			if stop == 0 {
				stop = demoStopTimeout
			}
		}
		for name, s := range cfg.Services {
			specs[name] = process.Spec{Path: s.Path, Args: s.Args, Env: s.Env, Version: s.Version}
		}
		d, err := process.New(process.Config{
			Services:    specs,
			Confirmer:   deps.confirm,
			StopTimeout: stop,
			LogDir:      filepath.Join(cfg.DataDir, "logs"),
			StateFile:   filepath.Join(cfg.DataDir, "instances.json"),
			Logger:      deps.log,
		})
		if err != nil {
			return nil, err
		}
		return &orchestrator{Orchestrator: d, driver: "process", instances: d, run: d.Run, close: d.Close, demo: cfg.Demo.Enabled}, nil
	}
}

// deployTemplates are the image and argument templates a deploy on swarm
// or marathon sets, of the services that have them.
func deployTemplates(svcs map[string]ServiceConfig) (images map[string]string, args map[string][]string) {
	images, args = map[string]string{}, map[string][]string{}
	for name, s := range svcs {
		if s.Image != "" {
			images[name] = s.Image
		}
		if len(s.Cmd) > 0 {
			args[name] = s.Cmd
		}
	}
	return images, args
}

// duration is a duration Validate has checked; "" is 0, the driver's
// default.
func duration(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}

// startServices starts, in parallel, the instances cfg.Services asks for
// in env where fewer run, and waits for them. Each service's count and
// start hold its scale lock, so replicas starting together start the
// missing instances once. A failure is logged, not fatal: the console is
// still useful, and the service can be scaled later.
func startServices(ctx context.Context, o signalman.Orchestrator, locks *scaleLocks, cfg Config, env string, log *slog.Logger) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for name, s := range cfg.Services {
		if s.Instances == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := signalman.Target{Service: name, Env: env}
			started, err := topUp(ctx, o, locks, t, s.Instances)
			if err != nil && ctx.Err() == nil {
				log.Error("service did not start", "service", name, "env", env, "instances", s.Instances, "err", err)
				return
			}
			if started {
				log.Info("service started", "service", name, "env", env, "instances", s.Instances)
			}
		}()
	}
}
