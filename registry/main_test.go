package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/kplane/kplane/registry"
)

// childEnv makes the test binary a registrar process that a test can
// SIGKILL: the only honest way to test what a crash leaves behind.
const childEnv = "REGISTRY_TEST_CHILD"

// childSpec is what the parent test passes to the child, as JSON.
type childSpec struct {
	Endpoints []string
	TTL       time.Duration
	Instance  registry.Instance
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	goleak.VerifyTestMain(m)
}

// runChild registers the instance, prints "registered" and then waits to
// be killed.
func runChild(raw string) int {
	var spec childSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: spec.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	r, err := registry.NewRegistrar(registry.RegistrarConfig{Client: c, Instance: spec.Instance, TTL: spec.TTL})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	go r.Run(context.Background())
	<-r.Registered()
	fmt.Println("registered")
	select {}
}
