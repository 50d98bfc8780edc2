package registry_test

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/registry"
)

// An instance registers itself, reports ready once it can be found, and
// calls another service through the registry.
func Example() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop() // revokes the registration: the instance disappears at once

	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://127.0.0.1:2379"}, DialTimeout: 5 * time.Second})
	if err != nil {
		return
	}
	defer etcd.Close()
	log := slog.Default()

	r, err := registry.NewRegistrar(registry.RegistrarConfig{
		Client:   etcd,
		Instance: registry.Instance{Name: "checkpoint", ID: "checkpoint-1", Addr: "127.0.0.1:8081", Version: "v1"},
		Logger:   log.With("component", "registry"),
	})
	if err != nil {
		return
	}
	go r.Run(ctx)
	<-r.Registered() // now /readyz may say yes

	w := registry.NewWatcher(registry.WatcherConfig{Client: etcd, Logger: log.With("component", "registry")})
	go w.Run(ctx)
	<-w.Ready()

	// A per-build environment passes its build ID as the tag; services it
	// did not deploy are reached on the shared, untagged instances.
	client := registry.NewClient(registry.TransportConfig{
		Resolver: w,
		Selector: registry.Selector{Tag: "build-42", Fallback: registry.FallbackUntagged},
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://inventory/events", nil)
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
	}
}
