// Package swarmtest gives tests a Docker engine that is a Swarm manager:
// a single-node swarm on 127.0.0.1 that the test initialises and leaves,
// or the swarm the engine already is in (used, and left alone).
//
// Test binaries of several packages (signalman/swarm, cmd/kplane) run at
// the same time under `go test ./...`; one leaving the swarm would pull it
// from under another. Manager therefore holds an exclusive lock on a file
// in the temp dir (flock) from before it looks at the swarm until after
// the test's cleanup left it, so that swarm tests of all binaries on one
// engine run one after the other.
package swarmtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/kplane/kplane/internal/testenv"
)

// lockFile is shared by every test binary of the machine.
var lockFile = filepath.Join(os.TempDir(), "kplane-swarmtest.lock")

// Manager returns a client of the local engine, made a Swarm manager for
// the test (see the package comment). Without an engine the test ends
// through testenv.Missing.
func Manager(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		testenv.Missing(t, "docker client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		testenv.Missing(t, "docker engine: %v", err)
	}
	lock(t)
	info, err := cli.Info(ctx)
	if err != nil {
		testenv.Missing(t, "docker engine: %v", err)
	}
	switch info.Swarm.LocalNodeState {
	case swarm.LocalNodeStateActive:
		if !info.Swarm.ControlAvailable {
			t.Fatal("this engine is a swarm worker; the test needs a manager")
		}
		return cli
	case swarm.LocalNodeStateInactive:
	default:
		t.Fatalf("engine swarm state %q", info.Swarm.LocalNodeState)
	}
	leave, err := Init(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := leave(ctx); err != nil {
			t.Error(err)
		}
	})
	return cli
}

// gwBridge is the bridge network the engine creates when it joins a swarm
// and keeps after leaving it.
const gwBridge = "docker_gwbridge"

// Init makes the engine the manager of a single-node swarm on 127.0.0.1
// and returns what undoes it: leave the swarm and remove the
// docker_gwbridge network that joining it created (leaving keeps it), so
// that the engine is as it was.
func Init(ctx context.Context, cli *client.Client) (leave func(context.Context) error, err error) {
	_, err = cli.NetworkInspect(ctx, gwBridge, network.InspectOptions{})
	hadBridge := err == nil
	if _, err := cli.SwarmInit(ctx, swarm.InitRequest{ListenAddr: "127.0.0.1:2377", AdvertiseAddr: "127.0.0.1"}); err != nil {
		return nil, fmt.Errorf("swarm init: %w", err)
	}
	return func(ctx context.Context) error {
		if err := cli.SwarmLeave(ctx, true); err != nil {
			return fmt.Errorf("swarm leave: %w", err)
		}
		if hadBridge {
			return nil
		}
		if err := cli.NetworkRemove(ctx, gwBridge); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove %s after leaving the swarm: %w", gwBridge, err)
		}
		return nil
	}, nil
}

// lock takes the machine-wide swarm test lock until the test ends (its
// cleanup runs after every cleanup registered later: the swarm's leave
// and the removal of what the test made).
func lock(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("swarm test lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("swarm test lock %s: %v", lockFile, err)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}
