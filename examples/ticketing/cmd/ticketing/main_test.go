package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kplane/kplane/examples/ticketing/instrument"
	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
)

// childEnv makes the test binary run main, so that the test can signal a
// real process.
const childEnv = "TICKETING_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSIGTERMDeregistersAndExitsZero(t *testing.T) {
	etcd := etcdtest.Start(t)
	w := registry.NewWatcher(registry.WatcherConfig{Client: etcd.Client(t)})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	go w.Run(ctx)

	cmd := exec.CommandContext(ctx, os.Args[0], "inventory",
		"--listen", "127.0.0.1:0", "--etcd", strings.Join(etcd.Endpoints(), ","),
		"--id", "inventory-sig", "--version", "v2", "--tag", "canary")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	var inst registry.Instance
	err := w.WaitInstances(ctx, "inventory", func(in []registry.Instance) bool {
		if len(in) == 1 {
			inst = in[0]
		}
		return len(in) == 1
	})
	if err != nil {
		t.Fatalf("instance never registered: %v\nstderr: %s", err, &stderr)
	}
	if inst.ID != "inventory-sig" || inst.Version != "v2" || !inst.HasTag("canary") || strings.HasSuffix(inst.Addr, ":0") {
		t.Errorf("registered %+v", inst)
	}

	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + inst.Addr + "/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /events: %d", resp.StatusCode)
	}
	client.CloseIdleConnections()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v, want exit 0\nstderr: %s", err, &stderr)
	}
	got, err := etcd.Client(t).Get(t.Context(), registry.DefaultPrefix+"inventory/inventory-sig")
	if err != nil || got.Count != 0 {
		t.Errorf("still registered after exit: %v %v", got, err)
	}

	// stdout carries access log lines and nothing else.
	sc := bufio.NewScanner(&stdout)
	lines := 0
	for sc.Scan() {
		var line instrument.AccessLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil || line.Route == "" || line.TraceID == "" {
			t.Errorf("stdout line %q is not an access log line: %v", sc.Text(), err)
		}
		lines++
	}
	if lines != 1 {
		t.Errorf("%d access log lines on stdout, want 1", lines)
	}
}

func TestBadUsageExitsNonZero(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"payments"},
		{"checkpoint"}, // neither --etcd nor --inventory-url
		{"inventory", "--no-such-flag"},
	} {
		cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
		cmd.Env = append(os.Environ(), childEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("ticketing %v: exit 0, want an error\n%s", args, out)
		}
	}
}
