// Package dockertest gives tests a real Docker engine: a client with API
// version negotiation, Missing when there is no engine (a skip, or a
// failure when KPLANE_REQUIRE_INTEGRATION=1), cleanup of the containers,
// networks and images a test made, and the ticketing demo as a FROM
// scratch image built offline.
//
// Use:
//
//	func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }
//
//	func TestX(t *testing.T) {
//		cli := dockertest.Client(t)      // skips or fails without an engine
//		image := dockertest.BuildDemoImage(t) // once per test binary; Cmd: inventory --etcd ...
//		...
//	}
//
// Everything a test makes should carry the label kplane.managed=true, as
// the docker driver's containers and networks do; CleanupManaged removes
// those of one environment.
package dockertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/kplane/kplane/internal/testenv"
	"github.com/kplane/kplane/signalman/docker"
)

// Client returns a client of the local engine, closed at the end of the
// test. Without a reachable engine the test ends through testenv.Missing.
func Client(t testing.TB) *client.Client {
	t.Helper()
	cli, err := docker.NewClient()
	if err != nil {
		testenv.Missing(t, "docker client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		cli.Close()
		testenv.Missing(t, "docker engine not reachable: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Env returns an environment name unique to this test run, so that tests
// running at the same time (other packages, other machines' CI on a shared
// engine) never touch each other's containers.
func Env(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "t" + hex.EncodeToString(b)
}

// CleanupManaged removes, at the end of the test, every container labelled
// kplane.managed=true and kplane.env=env, then fails the test if any
// remains: a driver that leaves containers behind is a bug the test should
// see, and the engine must not fill up either way.
func CleanupManaged(t testing.TB, cli *client.Client, env string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f := filters.NewArgs(filters.Arg("label", docker.LabelManaged+"=true"), filters.Arg("label", docker.LabelEnv+"="+env))
		left, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		if err != nil {
			t.Errorf("dockertest: list containers: %v", err)
			return
		}
		for _, c := range left {
			if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
				t.Errorf("dockertest: remove %v: %v", c.Names, err)
			}
		}
	})
}

// RemoveNetwork removes the network at the end of the test.
func RemoveNetwork(t testing.TB, cli *client.Client, name string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cli.NetworkRemove(ctx, name); err != nil && !client.IsErrNotFound(err) {
			t.Errorf("dockertest: remove network %s: %v", name, err)
		}
	})
}

var demo struct {
	once sync.Once
	tag  string
	err  error
}

// BuildDemoImage builds, once per test binary, the ticketing demo's own
// command (examples/ticketing/cmd/ticketing: the flags of `kplane
// ticketing`) with CGO_ENABLED=0 and a FROM scratch image of it
// (entrypoint /ticketing), and returns the image's tag. A container runs
// one service with the command `inventory|checkpoint --etcd ... --listen
// ...`. The image holds the demo's binary rather than all of kplane, so
// that it builds in seconds and does not depend on every kplane package.
// Main removes the image when the tests end.
func BuildDemoImage(t testing.TB) string {
	t.Helper()
	Client(t)
	demo.once.Do(func() { demo.tag, demo.err = buildDemo() })
	if demo.err != nil {
		t.Fatalf("dockertest: demo image: %v", demo.err)
	}
	return demo.tag
}

func buildDemo() (string, error) {
	dir, err := os.MkdirTemp("", "kplane-demo-image")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "ticketing")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/kplane/kplane/examples/ticketing/cmd/ticketing")
	cmd.Dir = moduleRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build (CGO_ENABLED=0): %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	cli, err := docker.NewClient()
	if err != nil {
		return "", err
	}
	defer cli.Close()
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	tag := "kplane-demo-test:" + hex.EncodeToString(suffix)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = docker.BuildImage(ctx, cli, docker.ImageConfig{
		Tag: tag, Binary: b, Name: "ticketing",
		Labels: map[string]string{docker.LabelManaged: "true", "kplane.test": "true"},
	})
	if err != nil {
		return "", err
	}
	return tag, nil
}

// moduleRoot is the directory of go.mod, found from this source file.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Main runs the tests, then removes the image BuildDemoImage built, if
// any. Use it in TestMain: os.Exit(dockertest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if demo.tag != "" {
		if err := removeImage(demo.tag); err != nil {
			fmt.Fprintf(os.Stderr, "dockertest: remove image %s: %v\n", demo.tag, err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

func removeImage(tag string) error {
	cli, err := docker.NewClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = cli.ImageRemove(ctx, tag, image.RemoveOptions{Force: true, PruneChildren: true})
	return err
}
