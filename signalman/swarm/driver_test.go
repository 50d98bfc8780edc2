package swarm

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/kplane/kplane/internal/dockertest"
	"github.com/kplane/kplane/internal/swarmtest"
	"github.com/kplane/kplane/signalman"
)

// engine is a client of the local engine, a Swarm manager for the test:
// a single-node swarm it initialises on 127.0.0.1 and leaves at the end,
// or the one the engine is in (see internal/swarmtest, which also keeps
// the swarm tests of several test binaries from overlapping).
func engine(t *testing.T) *client.Client {
	t.Helper()
	return swarmtest.Manager(t)
}

// sleeperImage builds a FROM-scratch image holding testdata/sleeper, with
// no registry involved, and removes it at the end.
func sleeperImage(t *testing.T, cli *client.Client, tag string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "sleeper")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/sleeper")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build sleeper: %v\n%s", err, out)
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY sleeper /sleeper\nENTRYPOINT [\"/sleeper\"]\n")},
		{"sleeper", 0o755, exe},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(f.data)
	}
	tw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := cli.ImageBuild(ctx, &ctxTar, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true})
	if err != nil {
		t.Fatalf("image build: %v", err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(out, []byte(`"error"`)) {
		t.Fatalf("image build: %s", out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cli.ImageRemove(ctx, tag, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			t.Errorf("remove image %s: %v", tag, err)
		}
	})
}

// createService creates a replicated service of the sleeper image and
// removes it (and waits for its containers to go) at the end.
func createService(t *testing.T, cli *client.Client, name, img string, labels map[string]string) string {
	t.Helper()
	one := uint64(1)
	grace := 2 * time.Second
	return createServiceSpec(t, cli, swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: name, Labels: labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: img, StopGracePeriod: &grace},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionOnFailure},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}},
	})
}

// createServiceSpec creates a service and removes it (and waits for its
// containers to go) at the end.
func createServiceSpec(t *testing.T, cli *client.Client, spec swarm.ServiceSpec) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := spec.Name
	// No registry: the engine uses the local image by name (and warns that
	// it cannot pin a digest).
	created, err := cli.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{QueryRegistry: false})
	if err != nil {
		t.Fatalf("service create: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := cli.ServiceRemove(ctx, created.ID); err != nil {
			t.Errorf("remove service: %v", err)
		}
		f := filters.NewArgs(filters.Arg("label", "com.docker.swarm.service.id="+created.ID))
		for ctx.Err() == nil {
			cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
			if err == nil && len(cs) == 0 {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Errorf("containers of service %s still present after removal", name)
	})
	return created.ID
}

func suffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// staleWriter makes the driver's first ServiceUpdate stale: just before it,
// another writer changes the service (a label), so Swarm answers "update
// out of sequence" to the driver's write.
type staleWriter struct {
	*client.Client
	mu      sync.Mutex
	updates int
	raced   bool
}

func (s *staleWriter) ServiceUpdate(ctx context.Context, id string, v swarm.Version, spec swarm.ServiceSpec, opts swarm.ServiceUpdateOptions) (swarm.ServiceUpdateResponse, error) {
	s.mu.Lock()
	s.updates++
	race := !s.raced
	s.raced = true
	s.mu.Unlock()
	if race {
		svc, _, err := s.Client.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
		if err != nil {
			return swarm.ServiceUpdateResponse{}, err
		}
		other := svc.Spec
		other.Labels = map[string]string{}
		for k, val := range svc.Spec.Labels {
			other.Labels[k] = val
		}
		other.Labels["kplane.test.other-writer"] = "yes"
		if _, err := s.Client.ServiceUpdate(ctx, id, svc.Version, other, opts); err != nil {
			return swarm.ServiceUpdateResponse{}, err
		}
	}
	return s.Client.ServiceUpdate(ctx, id, v, spec, opts)
}

func TestScaleOnRealSwarm(t *testing.T) {
	cli := engine(t)
	sfx := suffix()
	img := "kplane-swarm-sleeper:" + sfx
	sleeperImage(t, cli, img)
	svcName := "inventory-swarmtest-" + sfx
	target := signalman.Target{Service: "inventory-" + sfx, Env: "test"}
	id := createService(t, cli, svcName, img, map[string]string{LabelService: target.Service, LabelEnv: target.Env, LabelVersion: "1.0.0"})

	api := &staleWriter{Client: cli}
	d, err := New(Config{API: api, Timeout: 30 * time.Second, PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()

	// The created service first converges to its one task; the update
	// racing with another writer is retried.
	res, err := d.Scale(ctx, target, 3)
	if err != nil {
		t.Fatalf("Scale 1→3: %v", err)
	}
	if res.From != 1 || res.To != 3 || len(res.Started) < 2 || len(res.Stopped) != 0 {
		t.Errorf("Scale 1→3 = %+v", res)
	}
	if api.updates < 2 {
		t.Errorf("ServiceUpdate called %d times, want a retry after out of sequence", api.updates)
	}
	svc, _, err := cli.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Labels["kplane.test.other-writer"] != "yes" {
		t.Error("the retry overwrote the other writer's change: it did not re-read the service")
	}
	if r := *svc.Spec.Mode.Replicated.Replicas; r != 3 {
		t.Errorf("replicas = %d, want 3", r)
	}
	insts, err := d.Instances(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 3 {
		t.Fatalf("Instances = %+v, want 3", insts)
	}
	for _, in := range insts {
		if in.Version != "1.0.0" || in.Target != target || in.Started.IsZero() {
			t.Errorf("instance %+v", in)
		}
	}

	// Same count: nothing changes.
	res, err = d.Scale(ctx, target, 3)
	if err != nil || !res.NoOp() || res.From != 3 || res.To != 3 {
		t.Errorf("Scale 3→3 = %+v, %v; want a no-op", res, err)
	}

	res, err = d.Scale(ctx, target, 1)
	if err != nil {
		t.Fatalf("Scale 3→1: %v", err)
	}
	if res.From != 3 || res.To != 1 || len(res.Stopped) != 2 {
		t.Errorf("Scale 3→1 = %+v", res)
	}
	insts, err = d.Instances(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 1 {
		t.Errorf("Instances after 3→1 = %+v, want 1", insts)
	}
	tasks, err := cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", id), filters.Arg("desired-state", "running"))})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 {
		t.Errorf("engine lists %d tasks meant to run, want 1", len(tasks))
	}

	// By name, without labels.
	byName := signalman.Target{Service: "inventory-swarmtest", Env: sfx}
	if _, err := d.Instances(ctx, byName); err != nil {
		t.Errorf("Instances of %v (found by name %s): %v", byName, svcName, err)
	}

	if _, err := d.Scale(ctx, signalman.Target{Service: "nosuch-" + sfx, Env: "test"}, 2); !errors.Is(err, signalman.ErrUnknownService) {
		t.Errorf("Scale of a missing service = %v, want ErrUnknownService", err)
	}
	if _, err := d.Scale(ctx, target, -1); !errors.Is(err, signalman.ErrInvalid) {
		t.Errorf("Scale(-1) = %v, want ErrInvalid", err)
	}
}

// tagDemo tags the ticketing demo image (built FROM scratch once per test
// binary) as repo:<version> for each version, untagged when t ends.
func tagDemo(t *testing.T, cli *client.Client, repo string, versions ...string) {
	t.Helper()
	demo := dockertest.BuildDemoImage(t)
	for _, v := range versions {
		tag := repo + ":" + v
		if err := cli.ImageTag(t.Context(), demo, tag); err != nil {
			t.Fatalf("tag %s: %v", tag, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := cli.ImageRemove(ctx, tag, image.RemoveOptions{}); err != nil {
				t.Errorf("untag %s: %v", tag, err)
			}
		})
	}
}
