package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var kplaneBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kplane-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kplaneBin = filepath.Join(dir, "kplane")
	build := exec.Command("go", "build", "-o", kplaneBin, "../cmd/kplane")
	// Static, so that kplane dev --driver docker can run it FROM scratch.
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building kplane:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// devProcess is a running `kplane dev`.
type devProcess struct {
	cmd     *exec.Cmd
	url     string
	token   string
	dataDir string
	etcd    string // embedded etcd client address, unique to this run: it marks its children
	mu      sync.Mutex
	out     bytes.Buffer // stdout and stderr
	exited  chan struct{}
	waitErr error
	// transport reaches the console; nil is http.DefaultTransport (a
	// test of an https console sets one trusting its CA).
	transport http.RoundTripper
}

func (p *devProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

type lockedWriter struct{ p *devProcess }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

// startDev runs `kplane dev` on free ports and waits for its banner.
func startDev(t *testing.T, dataDir string, extra ...string) *devProcess {
	t.Helper()
	return startDevScheme(t, "http", dataDir, extra...)
}

// startDevScheme is startDev for a console served over scheme: https when
// extra configures tls:.
func startDevScheme(t *testing.T, scheme, dataDir string, extra ...string) *devProcess {
	t.Helper()
	listen, etcd := freePort(t), freePort(t)
	token := "e2e-admin-token-0123456789"
	args := append([]string{"dev",
		"--listen", listen,
		"--data-dir", dataDir,
		"--dev-token", token,
		"--etcd-listen", etcd,
		"--etcd-peer-listen", freePort(t),
	}, extra...)
	p := &devProcess{cmd: exec.Command(kplaneBin, args...), dataDir: dataDir, etcd: etcd, token: token, exited: make(chan struct{})}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = lockedWriter{p}
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The banner is complete (URL, token, addresses) at its last line.
	banner := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var url string
		for sc.Scan() {
			line := sc.Text()
			lockedWriter{p}.Write([]byte(line + "\n"))
			if m := regexp.MustCompile(`Console:\s+(\S+)`).FindStringSubmatch(line); m != nil {
				url = m[1]
			}
			if strings.Contains(line, "Ctrl-C stops everything") {
				banner <- url
			}
		}
	}()
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				p.cmd.Process.Kill()
				<-p.exited
			}
		}
		if t.Failed() {
			t.Logf("kplane dev output:\n%s", p.output())
		}
	})
	select {
	case p.url = <-banner:
	case <-p.exited:
		t.Fatalf("kplane dev exited before printing its banner: %v\n%s", p.waitErr, p.output())
	case <-time.After(60 * time.Second):
		t.Fatalf("no banner after 60 s:\n%s", p.output())
	}
	t.Logf("kplane dev printed its banner after %s", time.Since(start).Round(time.Millisecond))
	if want := scheme + "://" + listen; p.url != want {
		t.Fatalf("banner URL %s, want %s", p.url, want)
	}
	if !strings.Contains(p.output(), token) {
		t.Fatalf("banner does not show the admin token:\n%s", p.output())
	}
	return p
}

// stop sends SIGINT, as Ctrl-C does, and waits for a clean exit.
func (p *devProcess) stop(t *testing.T) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("kplane dev still running 30 s after SIGINT:\n%s", p.output())
	}
	if p.waitErr != nil {
		t.Fatalf("kplane dev exited with %v after SIGINT:\n%s", p.waitErr, p.output())
	}
	t.Logf("kplane dev stopped %s after SIGINT", time.Since(start).Round(time.Millisecond))
}

func (p *devProcess) get(t *testing.T, path string, auth bool) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", p.url+path, nil)
	if auth {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	rt := p.transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type servicesBody struct {
	Services []struct {
		Name      string `json:"name"`
		Instances []struct {
			ID      string    `json:"id"`
			Addr    string    `json:"addr"`
			Version string    `json:"version"`
			Env     string    `json:"env"`
			Started time.Time `json:"started"`
		} `json:"instances"`
	} `json:"services"`
}

func (p *devProcess) services(t *testing.T) map[string][]string {
	t.Helper()
	code, b := p.get(t, "/api/v1/services", true)
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/services: %d %s", code, b)
	}
	var body servicesBody
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("services JSON: %v: %s", err, b)
	}
	out := map[string][]string{}
	for _, s := range body.Services {
		for _, in := range s.Instances {
			out[s.Name] = append(out[s.Name], in.ID)
		}
	}
	return out
}

// demoChildren lists live demo processes of the kplane dev whose etcd
// listens on etcdAddr.
func demoChildren(t *testing.T, etcdAddr string) []string {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var found []string
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmdline, " ticketing ") && strings.Contains(cmdline, etcdAddr) {
			found = append(found, filepath.Base(filepath.Dir(p))+": "+cmdline)
		}
	}
	return found
}

func TestDevServesDemoAndStopsCleanly(t *testing.T) {
	dataDir := t.TempDir()
	start := time.Now()
	p := startDev(t, dataDir)
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("banner after %s; the quick start promises 15 s", d)
	}

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200} {
		if code, b := p.get(t, path, false); code != want {
			t.Errorf("GET %s = %d %s, want %d", path, code, b, want)
		}
	}
	if _, b := p.get(t, "/metrics", false); !bytes.Contains(b, []byte("go_goroutines")) {
		t.Errorf("/metrics lacks kplane's own metrics:\n%.500s", b)
	}
	if code, _ := p.get(t, "/api/v1/services", false); code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/services without a token = %d, want 401", code)
	}
	// The demo's dev environment; HAWAII may add throwaway alpha ones.
	got := p.services(t)
	dev := func(ids []string) (n int) {
		for _, id := range ids {
			if strings.Contains(id, "-dev-") {
				n++
			}
		}
		return n
	}
	if dev(got["inventory"]) != 2 || dev(got["checkpoint"]) != 2 {
		t.Fatalf("registered services = %v, want 2 inventory and 2 checkpoint in env dev", got)
	}

	// The CLI reads the same registry.
	cli := exec.Command(kplaneBin, "services", "--addr", p.url, "--token", p.token)
	out, err := cli.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("inventory-dev-1")) || !bytes.Contains(out, []byte("checkpoint-dev-2")) {
		t.Fatalf("kplane services: %v\n%s", err, out)
	}

	if n := len(demoChildren(t, p.etcd)); n < 4 {
		t.Fatalf("%d demo processes running, want at least the 4 of env dev", n)
	}
	p.stop(t)
	if left := demoChildren(t, p.etcd); len(left) != 0 {
		t.Fatalf("processes left after Ctrl-C:\n%s", strings.Join(left, "\n"))
	}

	// A second start on the same data dir needs no clean-up, and the
	// registrations of the first run are gone (deregistered, not expired:
	// a lease would still have seconds to run).
	p2 := startDev(t, dataDir, "--no-demo")
	if got := p2.services(t); len(got) != 0 {
		t.Fatalf("registrations left from the first run: %v", got)
	}
	p2.stop(t)
}

func TestDevBusyPortIsAOneLineError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kplaneBin, "dev", "--listen", l.Addr().String(), "--data-dir", t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("kplane dev on a busy port succeeded:\n%s", out)
	}
	want := "kplane: listen " + l.Addr().String() + ": address already in use\n"
	if string(out) != want {
		t.Fatalf("output = %q, want exactly %q", out, want)
	}
}

func TestBadFlagIsAOneLineError(t *testing.T) {
	out, err := exec.Command(kplaneBin, "dev", "--log-level", "loud", "--data-dir", t.TempDir()).CombinedOutput()
	if err == nil {
		t.Fatal("bad log level accepted")
	}
	if lines := strings.Count(strings.TrimSpace(string(out)), "\n") + 1; lines != 1 || !strings.Contains(string(out), "log level") {
		t.Fatalf("output = %q, want one line naming the log level", out)
	}
}
