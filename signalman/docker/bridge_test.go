package docker_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"

	"github.com/kplane/kplane/internal/dockertest"
	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
	"github.com/kplane/kplane/signalman/docker"
)

// TestBridgeNetwork runs instances on a user-defined bridge network: each
// container gets a fixed address of the network's subnet, listens on it,
// registers it (not loopback, which the host cannot reach), and serves
// requests from the host. etcd is reached through the network's gateway,
// the host's address on the bridge.
func TestBridgeNetwork(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	image := dockertest.BuildDemoImage(t)
	env := dockertest.Env(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	// The network is the test's: made with a subnet no other network
	// holds, removed last (after the containers, see the cleanups below).
	name := "kplane-test-" + env
	var subnet netip.Prefix
	var gateway netip.Addr
	for attempt := 0; ; attempt++ {
		subnet = netip.MustParsePrefix(fmt.Sprintf("172.30.%d.0/24", rand.IntN(256)))
		gateway = subnet.Addr().Next()
		_, err := cli.NetworkCreate(ctx, name, network.CreateOptions{
			Driver: "bridge",
			IPAM:   &network.IPAM{Config: []network.IPAMConfig{{Subnet: subnet.String(), Gateway: gateway.String()}}},
			Labels: map[string]string{docker.LabelManaged: "true", docker.LabelEnv: env},
		})
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "overlap") || attempt == 10 {
			t.Fatalf("create network: %v", err)
		}
	}
	dockertest.RemoveNetwork(t, cli, name)
	dockertest.CleanupManaged(t, cli, env)

	srv := etcdtest.Start(t)
	// Containers dial etcd on the gateway; this process on loopback.
	onBridge := srv.ProxyOn(t, gateway.String())
	w := registry.NewWatcher(registry.WatcherConfig{Client: srv.Client(t)})
	wctx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); _ = w.Run(wctx) }()
	t.Cleanup(func() { stopWatch(); <-watchDone })
	<-w.Ready()

	d, err := docker.New(ctx, docker.Config{
		Client: cli,
		Services: map[string]docker.Spec{"inventory": {
			Image: image,
			Cmd: []string{"inventory", "--listen", "{listen}", "--advertise={advertise}",
				"--etcd", strings.Join(onBridge.Endpoints(), ","), "--id", "{id}", "--env", "{env}", "--version", "{version}"},
			Version: "1.0.0",
		}},
		Confirmer:      w,
		ConfirmTimeout: 30 * time.Second,
		StopTimeout:    5 * time.Second,
		Network:        name,
		Port:           8080,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.DestroyEnv(ctx, env); err != nil {
			t.Errorf("DestroyEnv: %v", err)
		}
		d.Close()
	})
	tg := signalman.Target{Service: "inventory", Env: env}
	if _, err := d.Scale(ctx, tg, 2); err != nil {
		t.Fatal(err)
	}

	// Registered with the container's address on the bridge, port 8080.
	nw, err := cli.NetworkInspect(ctx, name, network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var onNetwork []string
	for _, ep := range nw.Containers {
		p, err := netip.ParsePrefix(ep.IPv4Address)
		if err != nil {
			t.Fatalf("endpoint %s: %v", ep.Name, err)
		}
		onNetwork = append(onNetwork, netip.AddrPortFrom(p.Addr(), 8080).String())
	}
	slices.Sort(onNetwork)
	var registered []string
	for _, in := range w.Instances("inventory") {
		registered = append(registered, in.Addr)
		ap, err := netip.ParseAddrPort(in.Addr)
		if err != nil || !subnet.Contains(ap.Addr()) || ap.Addr() == gateway {
			t.Errorf("%s registered %q, want a container address in %s", in.ID, in.Addr, subnet)
		}
	}
	slices.Sort(registered)
	if len(registered) != 2 || !slices.Equal(registered, onNetwork) {
		t.Fatalf("registered %v, containers on the network %v", registered, onNetwork)
	}

	// Served from the host: straight to each address, and through the
	// registry client.
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, addr := range registered {
		resp, err := hc.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatalf("GET /healthz on %s from the host: %v", addr, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /healthz on %s: %s", addr, resp.Status)
		}
	}
	rc := registry.NewClient(registry.TransportConfig{Resolver: w})
	for range 4 {
		resp, err := rc.Get("http://inventory/healthz")
		if err != nil {
			t.Fatalf("through the registry: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("through the registry: %s", resp.Status)
		}
	}

	// Scale down: the highest goes, deregistered, its address freed.
	res, err := d.Scale(ctx, tg, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := "inventory-" + env + "-2"; !slices.Equal(res.Stopped, []string{want}) {
		t.Fatalf("scale down stopped %v, want %s", res.Stopped, want)
	}
	if in := w.Instances("inventory"); len(in) != 1 || in[0].Addr != registered[0] && in[0].Addr != registered[1] {
		t.Fatalf("registered after the scale down: %+v", in)
	}
	if nw, err = cli.NetworkInspect(ctx, name, network.InspectOptions{}); err != nil || len(nw.Containers) != 1 {
		t.Fatalf("containers on the network after the scale down: %v, %v; want 1", nw.Containers, err)
	}
	// The freed address is taken again by the next instance.
	if _, err := d.Scale(ctx, tg, 2); err != nil {
		t.Fatal(err)
	}
	var again []string
	for _, in := range w.Instances("inventory") {
		again = append(again, in.Addr)
	}
	slices.Sort(again)
	if !slices.Equal(again, registered) {
		t.Errorf("addresses after scaling back up %v, want %v again", again, registered)
	}
	if _, err := d.Scale(ctx, tg, 0); err != nil {
		t.Fatal(err)
	}
	if in := w.Instances("inventory"); len(in) != 0 {
		t.Fatalf("registered after scaling to 0: %+v", in)
	}
}
