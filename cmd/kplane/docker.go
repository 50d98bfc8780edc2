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
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kplane/kplane/examples/ticketing"
	"github.com/kplane/kplane/signalman"
	"github.com/kplane/kplane/signalman/docker"
)

// demoDriver is what serve needs of the driver that runs the demo.
type demoDriver interface {
	signalman.InstanceDriver
	// Run keeps instances at their count until ctx ends.
	Run(ctx context.Context) error
	// Close stops the demo's instances.
	Close() error
}

// newDemo returns the driver that runs the demo: cfg.Driver is "process"
// (children of this binary, the default) or "docker".
func newDemo(ctx context.Context, cfg Config, endpoints []string, c docker.Confirmer, progress io.Writer, log *slog.Logger) (demoDriver, error) {
	if cfg.Driver == "docker" {
		return newDockerDemoDriver(ctx, cfg, endpoints, c, progress, log)
	}
	d, err := newDemoDriver(cfg, endpoints, c, log)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// dockerDemo runs the demo as containers. The engine restarts crashed
// containers, so Run only waits; Close removes the demo's containers, as
// the process driver stops its children.
type dockerDemo struct {
	*docker.Driver
}

func (d dockerDemo) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func (d dockerDemo) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*demoStopTimeout+30*time.Second)
	defer cancel()
	err := d.DestroyEnv(ctx, demoEnv)
	return errors.Join(err, d.Driver.Close())
}

const demoEnv = "dev"

// demoStopTimeout is the time to drain: deregister, let callers notice,
// finish requests.
const demoStopTimeout = ticketing.ShutdownTimeout + ticketing.DeregisterDelay + 2*time.Second

// newDockerDemoDriver runs the ticketing demo as containers of a FROM
// scratch image of this very binary, built on first use (the binary must
// be static: CGO_ENABLED=0). Containers use the host network, so they
// reach the embedded etcd and this kplane on loopback; the data dir's
// ticketing directory is bind-mounted at the same path, so inventory
// instances share one SQLite database, and they run as the current user,
// so the files stay the user's.
func newDockerDemoDriver(ctx context.Context, cfg Config, endpoints []string, c docker.Confirmer, progress io.Writer, log *slog.Logger) (demoDriver, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("demo: locate kplane binary: %w", err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		return nil, fmt.Errorf("demo: read kplane binary: %w", err)
	}
	if err := checkStatic(bin); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(bin)
	tag := "kplane-demo:" + hex.EncodeToString(sum[:6])

	cli, err := docker.NewClient()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (demoDriver, error) {
		cli.Close()
		return nil, err
	}
	if _, err := cli.Ping(ctx); err != nil {
		return fail(fmt.Errorf("demo: --driver docker needs a Docker engine: %w", err))
	}
	ok, err := docker.ImageExists(ctx, cli, tag)
	if err != nil {
		return fail(err)
	}
	if !ok {
		fmt.Fprintf(progress, "Building the demo image %s (FROM scratch, this kplane binary)...\n", tag)
		start := time.Now()
		err := docker.BuildImage(ctx, cli, docker.ImageConfig{
			Tag: tag, Binary: bin, Name: "kplane",
			Labels:   map[string]string{docker.LabelManaged: "true"},
			Progress: prefixWriter{w: progress, prefix: "  "},
		})
		if err != nil {
			return fail(fmt.Errorf("demo: %w", err))
		}
		fmt.Fprintf(progress, "Built %s in %s.\n", tag, time.Since(start).Round(time.Millisecond))
	}

	demoDir, err := filepath.Abs(filepath.Join(cfg.DataDir, "ticketing"))
	if err != nil {
		return fail(fmt.Errorf("demo: %w", err))
	}
	if err := os.MkdirAll(demoDir, 0o700); err != nil {
		return fail(fmt.Errorf("demo: %w", err))
	}
	common := []string{"--listen", "{listen}", "--advertise={advertise}", "--etcd", strings.Join(endpoints, ","),
		"--id", "{id}", "--env", "{env}", "--version", "{version}"}
	if host, port, err := net.SplitHostPort(cfg.Listen); err == nil && port != "0" {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		common = append(common, "--ktrace", "http://"+net.JoinHostPort(host, port))
	}
	user := strconv.Itoa(os.Getuid()) + ":" + strconv.Itoa(os.Getgid())
	image := func(service string) string {
		if ref := cfg.Demo.Images[service]; ref != "" {
			return ref
		}
		return tag
	}
	d, err := docker.New(ctx, docker.Config{
		Client: cli,
		Services: map[string]docker.Spec{
			"inventory": {
				Image:   image("inventory"),
				Cmd:     append(append([]string{"ticketing", "inventory"}, common...), "--db", filepath.Join(demoDir, "inventory.db")),
				Binds:   []string{demoDir + ":" + demoDir},
				User:    user,
				Version: demoVersion,
			},
			"checkpoint": {
				Image:   image("checkpoint"),
				Cmd:     append([]string{"ticketing", "checkpoint"}, common...),
				User:    user,
				Version: demoVersion,
			},
		},
		Confirmer:   c,
		StopTimeout: demoStopTimeout,
		Logger:      log,
	})
	if err != nil {
		return fail(err)
	}
	// Containers of a previous run that ended without cleaning up would
	// register with an old image and arguments: start afresh.
	if err := d.DestroyEnv(ctx, demoEnv); err != nil {
		d.Close()
		return fail(fmt.Errorf("demo: remove containers of a previous run: %w", err))
	}
	return dockerDemo{Driver: d}, nil
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
