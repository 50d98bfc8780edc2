package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kplane/kplane/examples/ticketing"
	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
)

func runLoadgenCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newLoadgenCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

// startInventory runs a real inventory instance, registered when etcd is
// given, and returns its address.
func startInventory(t *testing.T, etcd []string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() {
		done <- ticketing.Run(ctx, ticketing.Config{Service: ticketing.Inventory, Listener: ln, Etcd: etcd})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("inventory: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestLoadgenCmdJSON(t *testing.T) {
	addr := startInventory(t, nil)
	stdout, stderr, err := runLoadgenCmd(t, "--target", "http://"+addr, "--rate", "400", "--max-requests", "40",
		"--duration", "10s", "--json")
	if err != nil {
		t.Fatalf("loadgen: %v\n%s", err, stderr)
	}
	var rep struct {
		Sent, OK, Failed int
		P99              float64 `json:"latency_p99_ms"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--json output %q: %v", stdout, err)
	}
	if rep.Sent != 40 || rep.OK != 40 || rep.Failed != 0 || rep.P99 <= 0 {
		t.Errorf("report %+v, want 40 sent and ok, p99 > 0", rep)
	}
}

func TestLoadgenCmdRefusals(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"non-loopback target", []string{"--target", "http://192.0.2.1:8080"}, "loopback"},
		{"no target", []string{"--rate", "5"}, "target"},
		{"both targets", []string{"--target", "http://127.0.0.1:1", "--service", "inventory"}, "target"},
		{"service without etcd", []string{"--service", "inventory"}, "--etcd"},
		{"unknown profile", []string{"--target", "http://127.0.0.1:1", "--profile", "wave"}, "profile"},
		{"unknown mix", []string{"--target", "http://127.0.0.1:1", "--mix", "chaos"}, "mix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runLoadgenCmd(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestLoadgenCmdThroughRegistry(t *testing.T) {
	etcd := etcdtest.Start(t)
	eps := strings.Join(etcd.Endpoints(), ",")
	startInventory(t, etcd.Endpoints())
	w := registry.NewWatcher(registry.WatcherConfig{Client: etcd.Client(t)})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	go w.Run(ctx)
	if err := w.WaitInstances(ctx, "inventory", func(in []registry.Instance) bool { return len(in) == 1 }); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, err := runLoadgenCmd(t, "--service", "inventory", "--etcd", eps, "--mix", "browse",
		"--rate", "20", "--duration", "1500ms")
	if err != nil {
		t.Fatalf("loadgen: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "sent") || !strings.Contains(stdout, "0 failed") || !strings.Contains(stdout, "p99") {
		t.Errorf("progress:\n%s\nsummary:\n%s", stderr, stdout)
	}

	// An instance registered at an address elsewhere is refused.
	reg, err := registry.NewRegistrar(registry.RegistrarConfig{
		Client:   etcd.Client(t),
		Instance: registry.Instance{ID: "remote-1", Name: "remote", Addr: "192.0.2.1:80", Env: "dev"},
	})
	if err != nil {
		t.Fatal(err)
	}
	regCtx, stopReg := context.WithCancel(ctx)
	regDone := make(chan error, 1)
	go func() { regDone <- reg.Run(regCtx) }()
	defer func() { stopReg(); <-regDone }()
	<-reg.Registered()
	if err := w.WaitInstances(ctx, "remote", func(in []registry.Instance) bool { return len(in) == 1 }); err != nil {
		t.Fatal(err)
	}
	_, _, err = runLoadgenCmd(t, "--service", "remote", "--etcd", eps, "--duration", "1s")
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("remote instance: err = %v, want a loopback refusal", err)
	}
}
