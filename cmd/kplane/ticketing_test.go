package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
)

// lockedBuffer is a stderr the test reads while the command writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitServing returns the address from the "serving" log line.
func waitServing(t *testing.T, stderr *lockedBuffer) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(stderr.String(), "\n") {
			var l struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "serving" {
				return l.Addr
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no serving line in stderr:\n%s", stderr)
	return ""
}

func TestTicketingCmdDeregistersOnSIGTERM(t *testing.T) {
	etcd := etcdtest.Start(t)
	cli := etcd.Client(t)
	cmd := newTicketingCmd()
	var stdout, stderr lockedBuffer
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs([]string{"inventory", "--listen", "127.0.0.1:0", "--etcd", strings.Join(etcd.Endpoints(), ","),
		"--id", "inventory-1", "--version", "v1", "--env", "dev", "--tag", "x",
		"--db", filepath.Join(t.TempDir(), "inventory.db")})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	addr := waitServing(t, &stderr)
	key := registry.DefaultPrefix + "inventory/inventory-1"
	for {
		resp, err := cli.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count == 1 {
			var in registry.Instance
			if err := json.Unmarshal(resp.Kvs[0].Value, &in); err != nil || in.Addr != addr || in.Version != "v1" || !in.HasTag("x") {
				t.Errorf("registered %s (%v), want addr %s version v1 tag x", resp.Kvs[0].Value, err, addr)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	// The command is serving, so its signal handler is installed: the
	// signal stops it instead of the test process.
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after SIGTERM: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("SIGTERM did not stop the command")
	}
	if resp, err := cli.Get(t.Context(), key); err != nil || resp.Count != 0 {
		t.Errorf("still registered after the command returned: %v %v", resp, err)
	}
	if !strings.Contains(stdout.String(), `"route":"GET /healthz"`) {
		t.Errorf("stdout has no access log line for /healthz:\n%s", stdout.String())
	}
}

func TestTicketingCmdUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"checkpoint", "--db", "x.db"}, // --db is inventory's
		{"inventory", "--inventory-url", "http://127.0.0.1:1"},
		{"inventory", "extra"},
		{"checkpoint"}, // nothing to find inventory with
	} {
		cmd := newTicketingCmd()
		cmd.SetArgs(args)
		cmd.SetOut(new(bytes.Buffer))
		cmd.SetErr(new(bytes.Buffer))
		if err := cmd.ExecuteContext(t.Context()); err == nil {
			t.Errorf("ticketing %v: no error", args)
		}
	}
}
