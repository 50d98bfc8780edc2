package signalman_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/kplane/kplane/signalman"
)

// slowTeardown is a fleet whose DestroyEnv holds until released, so a
// test can act while a teardown is under way.
type slowTeardown struct {
	*fleet
	entered chan string
	release chan struct{}
}

func (s *slowTeardown) DestroyEnv(ctx context.Context, env string) error {
	s.entered <- env
	<-s.release
	return s.fleet.DestroyEnv(ctx, env)
}

// A deploy and a teardown of the same environment exclude each other: the
// one that comes second is refused with ErrBusy, whichever it is (the
// deploy-first order is in TestBusyAndEvents), and the environment is
// usable again once the teardown is over.
func TestDestroyEnvRefusesDeploysIntoIt(t *testing.T) {
	ctx := context.Background()
	f := &slowTeardown{fleet: newFleet(), entered: make(chan string, 1), release: make(chan struct{})}
	d, err := signalman.NewDeployer(signalman.DeployerConfig{Driver: f, Gate: f})
	if err != nil {
		t.Fatal(err)
	}
	alpha := signalman.Target{Service: "inventory", Env: "alpha-b7"}
	if _, err := f.Scale(ctx, alpha, 2); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var destroyErr error
	go func() { defer wg.Done(); destroyErr = d.DestroyEnv(ctx, "alpha-b7") }()
	<-f.entered

	_, err = d.Deploy(ctx, signalman.DeployRequest{Target: alpha, Version: "2.0"})
	if !errors.Is(err, signalman.ErrBusy) || !strings.Contains(err.Error(), "being destroyed") {
		t.Fatalf("deploy during the teardown = %v, want ErrBusy saying the environment is being destroyed", err)
	}
	if _, err := d.CreateEnv(ctx, "alpha-b7", []signalman.EnvService{{Service: "checkpoint", Version: "1.0"}}); !errors.Is(err, signalman.ErrBusy) {
		t.Fatalf("CreateEnv during the teardown = %v, want ErrBusy", err)
	}
	if err := d.DestroyEnv(ctx, "alpha-b7"); !errors.Is(err, signalman.ErrBusy) {
		t.Fatalf("second DestroyEnv during the teardown = %v, want ErrBusy", err)
	}
	// Other environments are not held.
	qa, err := d.Deploy(ctx, signalman.DeployRequest{Target: inventory, Version: "2.0"})
	if err != nil || qa.State != signalman.DeploySucceeded {
		t.Fatalf("deploy to qa during alpha's teardown = %+v, %v", qa, err)
	}

	close(f.release)
	wg.Wait()
	if destroyErr != nil {
		t.Fatal(destroyErr)
	}
	if n := len(f.list(alpha)); n != 0 {
		t.Fatalf("%d instances after the teardown", n)
	}
	f.entered = make(chan string, 1) // a later teardown must not block the test
	dep, err := d.Deploy(ctx, signalman.DeployRequest{Target: alpha, Version: "2.0"})
	if err != nil || dep.State != signalman.DeploySucceeded {
		t.Fatalf("deploy after the teardown = %+v, %v", dep, err)
	}
}
