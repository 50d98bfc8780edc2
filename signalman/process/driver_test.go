package process

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
)

// The test binary doubles as the instance program: with
// PROCESS_TEST_CHILD=1 it registers in etcd like a real service and waits
// for SIGTERM.
func TestMain(m *testing.M) {
	if os.Getenv("PROCESS_TEST_CHILD") == "1" {
		os.Exit(childMain(os.Args[1:]))
	}
	if os.Getenv("PROCESS_TEST_TICKETING") == "1" {
		os.Exit(ticketingMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func childMain(args []string) int {
	fs := flag.NewFlagSet("child", flag.ContinueOnError)
	etcd := fs.String("etcd", "", "")
	id := fs.String("id", "", "")
	service := fs.String("service", "", "")
	env := fs.String("env", "", "")
	version := fs.String("version", "", "")
	mode := fs.String("mode", "", "exit: exit before registering; ignore-term: ignore SIGTERM")
	delay := fs.Duration("delay", 0, "wait before registering")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch *mode {
	case "exit":
		return 3
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	time.Sleep(*delay)
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*etcd, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return 4
	}
	defer cli.Close()
	r, err := registry.NewRegistrar(registry.RegistrarConfig{
		Client:   cli,
		Instance: registry.Instance{ID: *id, Name: *service, Addr: "127.0.0.1:1", Env: *env, Version: *version, Started: time.Now()},
		TTL:      2 * time.Second,
	})
	if err != nil {
		return 5
	}
	if *mode == "ignore-term" {
		ctx = context.Background()
	}
	if err := r.Run(ctx); err != nil {
		return 6
	}
	return 0
}

type fixture struct {
	driver  *Driver
	watcher *registry.Watcher
	state   string
}

func newFixture(t *testing.T, extraArgs ...string) *fixture {
	t.Helper()
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	w := registry.NewWatcher(registry.WatcherConfig{Client: cli})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-w.Ready()

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	args := append([]string{"--etcd", strings.Join(srv.Endpoints(), ","), "--id", "{id}", "--service", "{service}", "--env", "{env}", "--version", "{version}"}, extraArgs...)
	f := &fixture{watcher: w, state: filepath.Join(dir, "instances.json")}
	f.driver, err = New(Config{
		Services: map[string]Spec{
			"inventory": {Path: exe, Args: args, Env: []string{"PROCESS_TEST_CHILD=1"}, Version: "1.0.0"},
		},
		Confirmer:         w,
		ConfirmTimeout:    10 * time.Second,
		StopTimeout:       2 * time.Second,
		LogDir:            filepath.Join(dir, "logs"),
		StateFile:         f.state,
		MinRestartBackoff: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.driver.Close() })
	return f
}

func (f *fixture) registered(t *testing.T) []string {
	t.Helper()
	var ids []string
	for _, in := range f.watcher.Instances("inventory") {
		ids = append(ids, in.ID)
	}
	return ids
}

func (f *fixture) waitRegistered(t *testing.T, want ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := f.watcher.WaitInstances(ctx, "inventory", func(in []registry.Instance) bool {
		if len(in) != len(want) {
			return false
		}
		for i := range in {
			if in[i].ID != want[i] {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("registry has %v, want %v", f.registered(t), want)
	}
}

var inv = signalman.Target{Service: "inventory", Env: "dev"}

func TestScaleUpDown(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	res, err := f.driver.Scale(ctx, inv, 3)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 0 || res.To != 3 || len(res.Started) != 3 {
		t.Fatalf("scale up result = %+v", res)
	}
	// Scale returns only once the registry has every new instance.
	if got := f.registered(t); len(got) != 3 {
		t.Fatalf("registered right after Scale = %v, want 3 instances", got)
	}

	res, err = f.driver.Scale(ctx, inv, 3)
	if err != nil || !res.NoOp() {
		t.Fatalf("same count: result %+v err %v, want a no-op", res, err)
	}

	res, err = f.driver.Scale(ctx, inv, 1)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Stopped, ",") != "inventory-dev-3,inventory-dev-2" {
		t.Fatalf("stopped %v, want the highest-numbered first", res.Stopped)
	}
	// Scale-down returns only once callers can no longer pick the stopped
	// instances: the registry (this watcher's copy included) has dropped
	// them.
	if got := f.registered(t); strings.Join(got, ",") != "inventory-dev-1" {
		t.Fatalf("registered right after scale-down = %v, want only inventory-dev-1", got)
	}
	insts, _ := f.driver.Instances(ctx, inv)
	if len(insts) != 1 || insts[0].ID != "inventory-dev-1" || insts[0].Version != "1.0.0" {
		t.Fatalf("Instances = %+v", insts)
	}

	// Numbers are reused from the lowest free one.
	if _, err := f.driver.Scale(ctx, inv, 2); err != nil {
		t.Fatal(err)
	}
	f.waitRegistered(t, "inventory-dev-1", "inventory-dev-2")

	if err := f.driver.Close(); err != nil {
		t.Fatal(err)
	}
	f.waitRegistered(t)
	if _, err := os.Stat(f.state); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state file still there after Close: %v", err)
	}
}

func TestScaleErrors(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for name, tc := range map[string]struct {
		t    signalman.Target
		n    int
		want error
	}{
		"unknown service": {signalman.Target{Service: "nope"}, 1, signalman.ErrUnknownService},
		"negative count":  {inv, -1, signalman.ErrInvalid},
		"empty service":   {signalman.Target{}, 1, signalman.ErrInvalid},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := f.driver.Scale(ctx, tc.t, tc.n); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestInstanceExitingBeforeRegistering(t *testing.T) {
	f := newFixture(t, "--mode", "exit")
	start := time.Now()
	res, err := f.driver.Scale(context.Background(), inv, 2)
	if !errors.Is(err, signalman.ErrNotConfirmed) {
		t.Fatalf("err = %v, want ErrNotConfirmed", err)
	}
	if !strings.Contains(err.Error(), "exited before registering") {
		t.Errorf("error %q does not say the instance exited", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %s: an exited instance must fail fast, not wait for the confirm timeout", time.Since(start))
	}
	if res.To != 0 {
		t.Fatalf("result %+v: nothing must be left running", res)
	}
	if insts, _ := f.driver.Instances(context.Background(), inv); len(insts) != 0 {
		t.Fatalf("instances left: %+v", insts)
	}
}

func TestBusy(t *testing.T) {
	f := newFixture(t, "--delay", "1s")
	errc := make(chan error, 1)
	go func() {
		_, err := f.driver.Scale(context.Background(), inv, 1)
		errc <- err
	}()
	// Wait until the first Scale holds the target.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if insts, _ := f.driver.Instances(context.Background(), inv); len(insts) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first scale never started an instance")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := f.driver.Scale(context.Background(), inv, 2); !errors.Is(err, signalman.ErrBusy) {
		t.Fatalf("concurrent Scale err = %v, want ErrBusy", err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestCrashedInstanceIsRestarted(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = f.driver.Run(ctx) }()
	if _, err := f.driver.Scale(ctx, inv, 2); err != nil {
		t.Fatal(err)
	}
	f.driver.mu.Lock()
	victim := f.driver.groups[inv].children[2].cmd.Process
	f.driver.mu.Unlock()
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	// The restarted instance gets the free number 2 and registers again
	// (the killed one's lease has a 2 s TTL in these tests).
	deadline := time.Now().Add(15 * time.Second)
	for {
		insts, _ := f.driver.Instances(ctx, inv)
		f.driver.mu.Lock()
		c := f.driver.groups[inv].children[2]
		restarted := c != nil && c.cmd.Process.Pid != victim.Pid
		f.driver.mu.Unlock()
		if len(insts) == 2 && restarted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("crashed instance not restarted: %+v", insts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.waitRegistered(t, "inventory-dev-1", "inventory-dev-2")
}

func TestStopTimeoutKills(t *testing.T) {
	f := newFixture(t, "--mode", "ignore-term")
	if _, err := f.driver.Scale(context.Background(), inv, 1); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := f.driver.Scale(context.Background(), inv, 0); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 2*time.Second || d > 6*time.Second {
		t.Fatalf("stop took %s, want SIGKILL after the 2 s stop timeout", d)
	}
}

func TestLeftoverChildrenAreStoppedOnStart(t *testing.T) {
	f := newFixture(t)
	if _, err := f.driver.Scale(context.Background(), inv, 1); err != nil {
		t.Fatal(err)
	}
	f.driver.mu.Lock()
	pid := f.driver.groups[inv].children[1].cmd.Process.Pid
	f.driver.mu.Unlock()

	// A new driver on the same state file, as after a crash of kplane,
	// stops the child the first one left.
	if _, err := New(Config{StateFile: f.state, StopTimeout: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := procStartTime(pid); err == nil {
		t.Fatalf("leftover child %d still running", pid)
	}
	f.waitRegistered(t)
}
