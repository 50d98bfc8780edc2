package etcdserver_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kplane/kplane/internal/etcdserver"
)

// childEnv makes the test binary act as an etcd process that a test can
// kill with SIGKILL: the only honest way to leave a data dir as a crash
// leaves it.
const childEnv = "ETCDSERVER_TEST_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(m.Run())
}

// runChild starts etcd as described by spec (dir,client,peer), writes the
// key "crash"="survived", prints "ready" and waits to be killed.
func runChild(spec string) int {
	parts := strings.Split(spec, ",")
	ctx := context.Background()
	srv, err := etcdserver.Start(ctx, etcdserver.Config{DataDir: parts[0], ClientURL: parts[1], PeerURL: parts[2]})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c := newClient(srv.Endpoints())
	if _, err := c.Put(ctx, "crash", "survived"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	select {}
}

func newClient(endpoints []string) *clientv3.Client {
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		panic(err) // clientv3.New only fails on a malformed config
	}
	return c
}

func freeURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

func config(t *testing.T, dir string) etcdserver.Config {
	return etcdserver.Config{DataDir: dir, ClientURL: freeURL(t), PeerURL: freeURL(t), UnsafeNoFsync: true}
}

func start(t *testing.T, cfg etcdserver.Config) *etcdserver.Server {
	t.Helper()
	srv, err := etcdserver.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return srv
}

func get(t *testing.T, endpoints []string, key string) string {
	t.Helper()
	c := newClient(endpoints)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

func TestRestartAfterCleanClose(t *testing.T) {
	cfg := config(t, t.TempDir())
	var logs strings.Builder
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	srv := start(t, cfg)
	c := newClient(srv.Endpoints())
	if _, err := c.Put(t.Context(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// A clean start and stop is not worth a log line; etcd reports its
	// own listeners closing as errors unless silenced.
	if logs.Len() != 0 {
		t.Fatalf("clean start and close logged:\n%s", logs.String())
	}

	srv = start(t, cfg)
	defer srv.Close()
	if got := get(t, srv.Endpoints(), "k"); got != "v" {
		t.Fatalf("after restart k=%q, want v", got)
	}
}

func TestRestartAfterCrash(t *testing.T) {
	cfg := config(t, t.TempDir())
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join([]string{cfg.DataDir, cfg.ClientURL, cfg.PeerURL}, ","))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child did not get ready: %q %v", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	cfg.UnsafeNoFsync = false
	srv := start(t, cfg)
	defer srv.Close()
	if got := get(t, srv.Endpoints(), "crash"); got != "survived" {
		t.Fatalf("after crash crash=%q, want survived", got)
	}
}

func TestPortBusy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := config(t, t.TempDir())
	cfg.ClientURL = "http://" + l.Addr().String()

	_, err = etcdserver.Start(t.Context(), cfg)
	if !errors.Is(err, etcdserver.ErrAddrInUse) {
		t.Fatalf("Start on a busy port: %v, want ErrAddrInUse", err)
	}
	want := "etcd: listen " + l.Addr().String() + ": address already in use"
	if err.Error() != want {
		t.Fatalf("error = %q, want %q", err, want)
	}
	// The failed start must release the data dir.
	cfg.ClientURL = freeURL(t)
	start(t, cfg).Close()
}

func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	srv := start(t, config(t, dir))
	defer srv.Close()

	_, err := etcdserver.Start(t.Context(), config(t, dir))
	if !errors.Is(err, etcdserver.ErrDataDirInUse) {
		t.Fatalf("second Start on one data dir: %v, want ErrDataDirInUse", err)
	}
}

func TestDataDirUnusable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{
		"empty":        "",
		"is a file":    file,
		"under a file": filepath.Join(file, "etcd"),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := etcdserver.Start(t.Context(), config(t, dir))
			if err == nil {
				t.Fatal("Start succeeded")
			}
			if strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "etcd: ") {
				t.Fatalf("error %q is not one line starting with etcd:", err)
			}
		})
	}
}
