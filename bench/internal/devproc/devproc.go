// Package devproc runs `kplane dev` as a user does, for the benchmark
// and soak programs under bench/: on free loopback ports, with a known
// admin token, its log in a file, stopped with Ctrl-C.
package devproc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/kplane/kplane/registry"
)

// Config says how to start kplane dev. Bin, DataDir, Token and Log are
// required.
type Config struct {
	Bin     string   // the kplane binary
	DataDir string   // --data-dir
	Token   string   // --dev-token, sent by Do
	Env     []string // KEY=VALUE added to the environment
	Log     string   // file for kplane's stderr (its log)
	// BannerTimeout bounds the wait for the banner; 0 is 90 s.
	BannerTimeout time.Duration
}

// Process is a running kplane dev.
type Process struct {
	URL  string // http://host:port of its console and API
	Etcd string // its embedded etcd's client address
	Log  string // its log file

	cmd    *exec.Cmd
	token  string
	exited chan struct{}
	http   *http.Client
}

// Start starts kplane dev and returns once it has printed its banner.
func Start(ctx context.Context, cfg Config) (*Process, error) {
	if cfg.BannerTimeout <= 0 {
		cfg.BannerTimeout = 90 * time.Second
	}
	listen, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	etcd, _ := FreeAddr()
	peer, _ := FreeAddr()
	cmd := exec.Command(cfg.Bin, "dev", "--listen", listen, "--data-dir", cfg.DataDir, "--dev-token", cfg.Token,
		"--etcd-listen", etcd, "--etcd-peer-listen", peer)
	cmd.Env = append(os.Environ(), cfg.Env...)
	logFile, err := os.Create(cfg.Log)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	banner := &bannerWriter{seen: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = banner, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{URL: "http://" + listen, Etcd: etcd, Log: cfg.Log, cmd: cmd, token: cfg.Token,
		exited: make(chan struct{}), http: &http.Client{Timeout: 60 * time.Second}}
	go func() { cmd.Wait(); close(p.exited) }()
	select {
	case <-banner.seen:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("kplane dev exited; see %s", cfg.Log)
	case <-time.After(cfg.BannerTimeout):
		p.Stop()
		return nil, fmt.Errorf("kplane dev printed no banner in %s; see %s", cfg.BannerTimeout, cfg.Log)
	case <-ctx.Done():
		p.Stop()
		return nil, ctx.Err()
	}
}

// bannerWriter is kplane dev's stdout: it closes seen once the banner's
// console line has been printed.
type bannerWriter struct {
	mu   sync.Mutex
	buf  []byte
	done bool
	seen chan struct{}
}

func (w *bannerWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.buf = append(w.buf, b...)
		if bytes.Contains(w.buf, []byte("Console:")) {
			w.done, w.buf = true, nil
			close(w.seen)
		}
	}
	return len(b), nil
}

// Stop interrupts kplane dev, which stops its instances, and waits (30 s
// at most, then kills it).
func (p *Process) Stop() {
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// Do sends a request with the admin token and returns the body of a 2xx
// answer; any other status is an error carrying the body.
func (p *Process) Do(ctx context.Context, method, path, ctype string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, p.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	return b, nil
}

// Call sends a JSON body ("" for none) and decodes the JSON answer into
// out.
func (p *Process) Call(ctx context.Context, method, path, body string, out any) error {
	var in []byte
	if body != "" {
		in = []byte(body)
	}
	b, err := p.Do(ctx, method, path, "application/json", in)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// FreeAddr returns a loopback address that was free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// InEnv keeps the instances of env: kplane dev also runs inventory in
// HAWAII's alpha, qa and prod environments beside the demo's dev.
func InEnv(ins []registry.Instance, env string) []registry.Instance {
	var out []registry.Instance
	for _, in := range ins {
		if in.Env == env {
			out = append(out, in)
		}
	}
	return out
}
