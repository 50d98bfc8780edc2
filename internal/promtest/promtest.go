// Package promtest starts a real Prometheus (Debian's prometheus package)
// for tests: a temp dir for its config and TSDB, a free loopback port, a
// short scrape interval, and targets a test can change while it runs
// (file-based discovery). It is stopped by PID when the test ends. When the
// binary is absent the test is skipped, or failed under
// KPLANE_REQUIRE_INTEGRATION=1 (see internal/testenv).
//
// It is for tests and benchmarks only.
package promtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplane/kplane/internal/testenv"
)

// Binary is the Prometheus executable looked up in PATH.
const Binary = "prometheus"

// Config configures a test Prometheus. The zero value scrapes nothing every
// second.
type Config struct {
	// ScrapeInterval is the global scrape and evaluation interval; 0 means
	// one second.
	ScrapeInterval time.Duration
	// Targets are host:port addresses scraped at /metrics from the start;
	// SetTargets replaces them.
	Targets []string
	// HTTPSD, when set, adds a job "http_sd" whose targets come from an
	// HTTP service discovery endpoint, such as kplane's
	// GET /api/v1/sd/prometheus.
	HTTPSD *HTTPSD
}

// HTTPSD is an http_sd_configs source, refreshed every second.
type HTTPSD struct {
	// URL answers Prometheus's HTTP SD format.
	URL string
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
}

// Server is a Prometheus process started for one test.
type Server struct {
	// URL is the base URL of its HTTP API, e.g. http://127.0.0.1:41234.
	URL string

	dir     string
	sdFile  string
	logFile string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Available reports whether the Prometheus binary is in PATH.
func Available() bool {
	_, err := exec.LookPath(Binary)
	return err == nil
}

// Start starts Prometheus and waits until it is ready. It ends the test
// through testenv.Missing when the binary is absent, and fails it if
// Prometheus does not start.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	bin, err := exec.LookPath(Binary)
	if err != nil {
		testenv.Missing(t, "%s not in PATH (apt-get install -y --no-install-recommends prometheus, or scripts/install-test-deps.sh)", Binary)
	}
	if cfg.ScrapeInterval <= 0 {
		cfg.ScrapeInterval = time.Second
	}
	dir := t.TempDir()
	s := &Server{dir: dir, sdFile: filepath.Join(dir, "targets.json"), logFile: filepath.Join(dir, "prometheus.log")}
	s.writeTargets(t, cfg.Targets)
	config := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
  evaluation_interval: %[1]s
scrape_configs:
  - job_name: test
    file_sd_configs:
      - files: [%[2]q]
        refresh_interval: 1s
`, promDuration(cfg.ScrapeInterval), s.sdFile)
	if sd := cfg.HTTPSD; sd != nil {
		config += fmt.Sprintf(`  - job_name: http_sd
    http_sd_configs:
      - url: %q
        refresh_interval: 1s
`, sd.URL)
		if sd.Token != "" {
			// type is explicit: Prometheus does not default it to Bearer
			// in http_sd_configs and would send the bare token
			// (prometheus/docs#2377).
			config += fmt.Sprintf(`        authorization:
          type: Bearer
          credentials: %q
`, sd.Token)
		}
	}
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		t.Fatalf("promtest: %v", err)
	}

	var lastErr error
	// Another process may take the port between probing and binding; a
	// fresh port almost always fixes that.
	for range 3 {
		addr := freeAddr(t)
		if lastErr = s.start(t, bin, configFile, addr); lastErr == nil {
			t.Cleanup(func() { s.Stop(t) })
			return s
		}
	}
	log, _ := os.ReadFile(s.logFile)
	t.Fatalf("promtest: %v\n%s", lastErr, log)
	return nil
}

func (s *Server) start(t testing.TB, bin, configFile, addr string) error {
	logf, err := os.Create(s.logFile)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin,
		"--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(s.dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done, s.URL = cmd, done, "http://"+addr
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/-/ready", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return errors.New("prometheus exited before it was ready")
		case <-ctx.Done():
			s.Stop(t)
			return errors.New("prometheus not ready within 20s")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// SetTargets replaces the scraped targets (host:port, scraped at
// /metrics). Prometheus notices within about a second.
func (s *Server) SetTargets(t testing.TB, targets ...string) {
	t.Helper()
	s.writeTargets(t, targets)
}

func (s *Server) writeTargets(t testing.TB, targets []string) {
	t.Helper()
	groups := []map[string]any{}
	if len(targets) > 0 {
		groups = append(groups, map[string]any{"targets": targets})
	}
	b, err := json.Marshal(groups)
	if err != nil {
		t.Fatalf("promtest: %v", err)
	}
	// Write then rename, so Prometheus never reads half a file.
	tmp := s.sdFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatalf("promtest: %v", err)
	}
	if err := os.Rename(tmp, s.sdFile); err != nil {
		t.Fatalf("promtest: %v", err)
	}
}

// Stop kills Prometheus (by its PID) and waits for it to exit: an outage
// for its clients. It is safe to call more than once.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Log returns what Prometheus wrote to stdout and stderr so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logFile)
	return strings.TrimSpace(string(b))
}

// promDuration formats d the way Prometheus configs accept ("1s", "500ms").
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("promtest: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}
