package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/docker/docker/client"
	"github.com/kplane/kplane/examples/ticketing"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
	"github.com/kplane/kplane/signalman/docker"
)

// closingConfirmer passes the driver's waits to the registry watcher
// until the demo closes. By then kplane's shutdown has stopped the
// watcher; the instances deregister themselves on SIGTERM, and waiting
// for a stopped watcher to see it would only hold Ctrl-C up for the
// drain timeout.
type closingConfirmer struct {
	docker.Confirmer
	closed atomic.Bool
}

func (c *closingConfirmer) WaitInstances(ctx context.Context, name string, ok func([]registry.Instance) bool) error {
	if c.closed.Load() {
		return nil
	}
	return c.Confirmer.WaitInstances(ctx, name, ok)
}

// newDockerOrchestrator runs the services as containers on the engine of
// the environment (DOCKER_HOST, else the local socket). The engine keeps
// them and restarts crashed ones, so Run only waits, and Close leaves your
// services' containers running for the next kplane to find by label; it
// removes the demo's, as the process driver stops its children.
func newDockerOrchestrator(ctx context.Context, cfg Config, deps orchestratorDeps) (*orchestrator, error) {
	cli, err := docker.NewClient()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*orchestrator, error) {
		cli.Close()
		return nil, err
	}
	if _, err := cli.Ping(ctx); err != nil {
		return fail(fmt.Errorf("driver docker needs a Docker engine: %w", err))
	}
	specs := map[string]docker.Spec{}
	stop := duration(cfg.Docker.StopTimeout)
	if cfg.Demo.Enabled {
		demo, err := demoDockerSpecs(ctx, cfg, cli, deps)
		if err != nil {
			return fail(err)
		}
		for name, s := range demo {
			specs[name] = s
		}
		if stop == 0 {
			stop = demoStopTimeout
		}
	}
	for name, s := range cfg.Services {
		specs[name] = docker.Spec{Image: s.Image, Cmd: s.Cmd, Env: s.Env, Binds: s.Binds, User: s.User, Version: s.Version}
	}
	confirm := &closingConfirmer{Confirmer: deps.confirm}
	d, err := docker.New(ctx, docker.Config{
		Client:      cli,
		Services:    specs,
		Confirmer:   confirm,
		StopTimeout: stop,
		Network:     cfg.Docker.Network,
		Subnet:      cfg.Docker.Subnet,
		Port:        cfg.Docker.Port,
		Logger:      deps.log,
	})
	if err != nil {
		return fail(err)
	}
	o := &orchestrator{Orchestrator: d, driver: "docker", instances: d, demo: cfg.Demo.Enabled}
	o.close = func() error {
		var err error
		if cfg.Demo.Enabled {
			ctx, cancel := context.WithTimeout(context.Background(), 2*stop+30*time.Second)
			defer cancel()
			confirm.closed.Store(true)
			err = removeDemo(ctx, d, cfg)
		}
		return errors.Join(err, d.Close(), cli.Close())
	}
	if cfg.Demo.Enabled {
		// Containers of a previous run that ended without cleaning up
		// would register with an old image and arguments: start afresh.
		if err := removeDemo(ctx, d, cfg); err != nil {
			d.Close()
			return fail(fmt.Errorf("demo: remove containers of a previous run: %w", err))
		}
	}
	return o, nil
}

// removeDemo removes the demo's containers: its whole environment when
// the driver runs nothing else, else its two services there.
func removeDemo(ctx context.Context, d *docker.Driver, cfg Config) error {
	if len(cfg.Services) == 0 {
		return d.DestroyEnv(ctx, demoEnv)
	}
	var errs []error
	for _, svc := range []string{"inventory", "checkpoint"} {
		for {
			_, err := d.Scale(ctx, signalman.Target{Service: svc, Env: demoEnv}, 0)
			if errors.Is(err, signalman.ErrBusy) && ctx.Err() == nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			errs = append(errs, err)
			break
		}
	}
	return errors.Join(errs...)
}

const demoEnv = "dev"

// demoStopTimeout is the time to drain: deregister, let callers notice,
// finish requests.
const demoStopTimeout = ticketing.ShutdownTimeout + ticketing.DeregisterDelay + 2*time.Second

// demoDockerSpecs runs the ticketing demo as containers of a FROM
// scratch image, built on first use, of a static binary (see demoBinary).
// Containers use the host network, so they reach the embedded etcd and
// this kplane on loopback; the data dir's ticketing directory is
// bind-mounted at the same path, so inventory instances share one SQLite
// database, and they run as the current user, so the files stay the
// user's. Their logs are the engine's: docker logs <container>.
func demoDockerSpecs(ctx context.Context, cfg Config, cli *client.Client, deps orchestratorDeps) (map[string]docker.Spec, error) {
	progress := deps.progress
	bin, err := demoBinary(ctx, progress)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(bin.exe)
	tag := "kplane-demo:" + hex.EncodeToString(sum[:6])
	ok, err := docker.ImageExists(ctx, cli, tag)
	if err != nil {
		return nil, err
	}
	if !ok {
		fmt.Fprintf(progress, "Building the demo image %s (FROM scratch, %s)...\n", tag, bin.what)
		start := time.Now()
		err := docker.BuildImage(ctx, cli, docker.ImageConfig{
			Tag: tag, Binary: bin.exe, Name: bin.name,
			Labels:   map[string]string{docker.LabelManaged: "true"},
			Progress: prefixWriter{w: progress, prefix: "  "},
		})
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		fmt.Fprintf(progress, "Built %s in %s.\n", tag, time.Since(start).Round(time.Millisecond))
	}

	demoDir, err := filepath.Abs(filepath.Join(cfg.DataDir, "ticketing"))
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := os.MkdirAll(demoDir, 0o700); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	common := []string{"--listen", "{listen}", "--advertise={advertise}", "--etcd", strings.Join(deps.endpoints, ","),
		"--id", "{id}", "--env", "{env}", "--version", "{version}"}
	ktraceArgs, err := demoKTraceArgs(cfg, demoDir)
	if err != nil {
		return nil, err
	}
	common = append(common, ktraceArgs...)
	user := strconv.Itoa(os.Getuid()) + ":" + strconv.Itoa(os.Getgid())
	image := func(service string) string {
		if ref := cfg.Demo.Images[service]; ref != "" {
			return ref
		}
		return tag
	}
	// The arguments before the service's own: an image of demo.images
	// takes kplane's (ticketing inventory ...), the built one its binary's.
	args := func(service string) []string {
		if cfg.Demo.Images[service] != "" {
			return []string{"ticketing", service}
		}
		return append(slices.Clone(bin.args), service)
	}
	return map[string]docker.Spec{
		"inventory": {
			Image:   image("inventory"),
			Cmd:     append(append(args("inventory"), common...), "--db", filepath.Join(demoDir, "inventory.db")),
			Binds:   []string{demoDir + ":" + demoDir},
			User:    user,
			Version: demoVersion,
		},
		"checkpoint": {
			Image:   image("checkpoint"),
			Cmd:     append(args("checkpoint"), common...),
			User:    user,
			Version: demoVersion,
		},
	}, nil
}

// staticDemo is a static Linux binary that runs a demo service.
type staticDemo struct {
	exe  []byte
	name string   // file name in the image
	args []string // before "inventory|checkpoint <flags>"
	what string   // for the progress line
}

// demoBinary returns the binary the demo image holds: this kplane binary
// if it is static (CGO_ENABLED=0, as release builds are), else the demo's
// own command (examples/ticketing/cmd/ticketing), built now with
// CGO_ENABLED=0 by the go tool from the kplane source tree this command
// runs in (as `go run ./cmd/kplane dev --driver docker` does). A FROM
// scratch image has no loader and no libc, so a dynamic binary cannot run
// there.
func demoBinary(ctx context.Context, progress io.Writer) (staticDemo, error) {
	exe, err := os.Executable()
	if err != nil {
		return staticDemo{}, fmt.Errorf("demo: locate kplane binary: %w", err)
	}
	self, err := os.ReadFile(exe)
	if err != nil {
		return staticDemo{}, fmt.Errorf("demo: read kplane binary: %w", err)
	}
	staticErr := checkStatic(self)
	if staticErr == nil {
		return staticDemo{exe: self, name: "kplane", args: []string{"ticketing"}, what: "this kplane binary"}, nil
	}
	// The source tree: the main module of the working directory, if it is
	// kplane's.
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Path}}\t{{.Dir}}").Output()
	path, dir, _ := strings.Cut(strings.TrimSpace(string(out)), "\t")
	if err != nil || path != kplaneModule || dir == "" {
		return staticDemo{}, fmt.Errorf("%w; to build a static demo binary instead, run kplane in its source tree with the go tool on PATH", staticErr)
	}
	tmp, err := os.MkdirTemp("", "kplane-demo-build-")
	if err != nil {
		return staticDemo{}, fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(progress, "This kplane binary is dynamically linked: building the demo's own command with CGO_ENABLED=0...\n")
	start := time.Now()
	out2 := filepath.Join(tmp, "ticketing")
	build := exec.CommandContext(ctx, "go", "build", "-o", out2, kplaneModule+"/examples/ticketing/cmd/ticketing")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if msg, err := build.CombinedOutput(); err != nil {
		return staticDemo{}, fmt.Errorf("demo: go build (CGO_ENABLED=0) of the demo: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out2)
	if err != nil {
		return staticDemo{}, fmt.Errorf("demo: %w", err)
	}
	if err := checkStatic(b); err != nil {
		return staticDemo{}, err
	}
	fmt.Fprintf(progress, "Built the demo binary in %s.\n", time.Since(start).Round(time.Millisecond))
	return staticDemo{exe: b, name: "ticketing", what: "the demo's command, static"}, nil
}

const kplaneModule = "github.com/kplane/kplane"

// demoLogs says where the demo instances' logs are, for the banner.
func demoLogs(cfg Config, driver string) string {
	if driver == "docker" {
		// The engine keeps them; no file of kplane's holds them.
		return "logs: docker logs -f kplane-inventory-" + demoEnv + "-1; containers: docker ps --filter label=" + docker.LabelEnv + "=" + demoEnv
	}
	return "logs in " + filepath.Join(cfg.DataDir, "logs")
}

// checkStatic rejects a dynamically linked binary: a FROM scratch image
// has no loader and no libc.
func checkStatic(bin []byte) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("demo: --driver docker needs a Linux kplane binary: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("demo: --driver docker runs this kplane binary in a FROM scratch image, " +
				"which needs a static binary: build or run kplane with CGO_ENABLED=0")
		}
	}
	return nil
}

// prefixWriter indents the build output under the progress line.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		if _, err := io.WriteString(p.w, p.prefix+line); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}
