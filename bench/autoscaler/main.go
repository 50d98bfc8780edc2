// Command autoscaler measures spike-to-capacity: the time from a traffic
// spike on the inventory demo service to the first new instance serving a
// request, with `kplane dev` as a user runs it (process driver, scrape
// source, the demo policy, the dev tick) unless flags say otherwise.
// Results go in docs/benchmarks.md.
//
//	go run ./bench/autoscaler [-runs 5] [-base 20] [-peak 400] [-interval 2s]
//
// It builds kplane, starts `kplane dev` on free loopback ports in a temp
// dir, and sends a background load plus, each run, a spike through the
// registry client (the load generator's loopback-only transport
// underneath), recording which instance answered each request. Between
// runs inventory is scaled back to 2 through the API and the policy's
// scale-up cooldown is waited out. It exits non-zero when the p50 misses
// the goal (10 s) or a request fails. Bounded: about 30 s per run.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kplane/kplane/examples/ticketing/loadgen"
	"github.com/kplane/kplane/registry"
)

// goal is the bound on the p50 (Kubernetes' HPA takes 15–45 s
// just to notice a CPU spike).
const goal = 10 * time.Second

const token = "bench-admin-token-0123456789"

func main() {
	runs := flag.Int("runs", 5, "spikes measured")
	base := flag.Float64("base", 20, "background requests per second, throughout")
	peak := flag.Float64("peak", 400, "requests per second during a spike, background included")
	interval := flag.String("interval", "", "autoscaler interval (KPLANE_AUTOSCALER_INTERVAL); empty keeps kplane dev's default")
	kplane := flag.String("kplane", "", "kplane binary to run; empty builds ./cmd/kplane")
	flag.Parse()
	if err := run(*runs, *base, *peak, *interval, *kplane); err != nil {
		fmt.Fprintln(os.Stderr, "bench/autoscaler:", err)
		os.Exit(1)
	}
}

// sample is one spike's timeline, each from the spike's start.
type sample struct {
	decided    time.Duration // the scale-up decision's evaluation
	registered time.Duration // the first new instance in the registry
	served     time.Duration // its first answered request
	to         int           // instances the decision asked for
}

func run(runs int, base, peak float64, interval, bin string) error {
	if runs < 1 || base <= 0 || peak <= base {
		return errors.New("want -runs ≥ 1 and -peak > -base > 0")
	}
	dir, err := os.MkdirTemp("", "kplane-bench-autoscaler-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		bin = filepath.Join(dir, "kplane")
		build := exec.Command("go", "build", "-o", bin, "./cmd/kplane")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building kplane (run from the repository root): %w", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dev, err := startDev(ctx, bin, filepath.Join(dir, "data"), interval)
	if err != nil {
		return err
	}
	defer dev.stop()
	cooldown, err := dev.cooldownUp(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("kplane dev at %s (%s); inventory policy cooldownUp %s\n", dev.url, dev.sourceLine, cooldown)

	etcd, err := registry.Connect(registry.ConnectConfig{Endpoints: []string{"http://" + dev.etcd}})
	if err != nil {
		return err
	}
	defer etcd.Close()
	watcher := registry.NewWatcher(registry.WatcherConfig{Client: etcd})
	wctx, wcancel := context.WithCancel(ctx)
	var bg sync.WaitGroup
	defer bg.Wait()
	defer wcancel()
	bg.Go(func() { _ = watcher.Run(wctx) })
	select {
	case <-watcher.Ready():
	case <-time.After(10 * time.Second):
		return errors.New("registry not ready after 10 s")
	}

	rec := &recorder{first: map[string]time.Time{}}
	client := &http.Client{
		Transport: registry.NewTransport(registry.TransportConfig{
			Resolver: watcher, Base: rec.wrap(loadgen.NewTransport()),
			// The demo's environment: HAWAII's qa and prod also run inventory.
			Selector: registry.Selector{Env: "dev"},
		}),
		Timeout: loadgen.DefaultTimeout,
	}
	reports := make(chan loadgen.Report, runs+1)
	background, cancelBackground := context.WithCancel(ctx)
	defer cancelBackground()
	bg.Go(func() {
		r, _ := loadgen.Run(background, loadgen.Config{Target: "http://inventory", Client: client, Rate: base, Duration: loadgen.MaxDuration})
		reports <- r
	})

	var samples []sample
	for i := range runs {
		if err := waitInstances(ctx, watcher, 2, 60*time.Second); err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		s, err := spike(ctx, dev, watcher, rec, client, peak-base, reports)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		samples = append(samples, s)
		fmt.Printf("run %d: decision %v, registered %v, serving %v (2 → %d)\n", i+1, ms(s.decided), ms(s.registered), ms(s.served), s.to)
		if err := dev.scale(ctx, 2); err != nil {
			return fmt.Errorf("run %d: back to 2: %w", i+1, err)
		}
		// The next spike must not land in this one's scale-up cooldown.
		time.Sleep(cooldown + time.Second)
	}
	cancelBackground()

	var failed, ok int
	for range runs + 1 {
		r := <-reports
		failed += r.Failed
		ok += r.OK
	}
	served := make([]time.Duration, len(samples))
	for i, s := range samples {
		served[i] = s.served
	}
	slices.Sort(served)
	p50 := served[(len(served)-1)/2]
	fmt.Println()
	fmt.Println("| run | spike → decision | → first new instance registered | → first request served by it | scaled to |")
	fmt.Println("|---|---|---|---|---|")
	for i, s := range samples {
		fmt.Printf("| %d | %v | %v | %v | %d |\n", i+1, ms(s.decided), ms(s.registered), ms(s.served), s.to)
	}
	fmt.Printf("\nspike → first new instance serving: p50 %v, max %v over %d runs; requests %d ok, %d failed\n",
		ms(p50), ms(served[len(served)-1]), len(served), ok, failed)
	switch {
	case failed > 0:
		return fmt.Errorf("%d requests failed", failed)
	case p50 > goal:
		return fmt.Errorf("goal (p50 ≤ %v) missed: %v", goal, ms(p50))
	}
	fmt.Printf("goal (p50 ≤ %v): met\n", goal)
	return nil
}

// spike sends rate more requests per second to inventory until a new
// instance has served one (or 30 s), and returns the timeline.
func spike(ctx context.Context, dev *devProcess, watcher *registry.Watcher, rec *recorder, client *http.Client, rate float64, reports chan<- loadgen.Report) (sample, error) {
	old := map[string]bool{}
	for _, in := range devInventory(watcher) {
		old[in.Addr] = true
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() {
		r, _ := loadgen.Run(sctx, loadgen.Config{
			Target: "http://inventory", Client: client, Rate: rate, Duration: 30 * time.Second,
			Concurrency: 512, // buyers do not wait for each other
		})
		reports <- r
	})
	defer wg.Wait()

	var s sample
	for s.served == 0 {
		if sctx.Err() != nil {
			return s, errors.New("no new instance served within 30 s of the spike")
		}
		if s.registered == 0 {
			for _, in := range devInventory(watcher) {
				if !old[in.Addr] {
					s.registered = time.Since(start)
					break
				}
			}
		}
		if at, ok := rec.firstNew(old, start); ok {
			s.served = at.Sub(start)
			if s.registered == 0 || s.registered > s.served {
				s.registered = s.served // registered between two polls
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Let the decision that did it reach the store, then stop the spike.
	time.Sleep(2 * time.Second)
	cancel()
	d, err := dev.firstUp(ctx, start)
	if err != nil {
		return s, err
	}
	s.decided, s.to = d.Time.Sub(start), d.To
	return s, nil
}

// recorder notes when each instance address first answered a request.
type recorder struct {
	mu    sync.Mutex
	first map[string]time.Time
}

type recordingTransport struct {
	base http.RoundTripper
	rec  *recorder
}

func (r *recorder) wrap(base http.RoundTripper) http.RoundTripper {
	return recordingTransport{base: base, rec: r}
}

func (t recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil && resp.StatusCode < 500 {
		now := time.Now()
		t.rec.mu.Lock()
		if _, ok := t.rec.first[req.URL.Host]; !ok {
			t.rec.first[req.URL.Host] = now
		}
		t.rec.mu.Unlock()
	}
	return resp, err
}

// firstNew returns the earliest first answer after since from an address
// not in old.
func (r *recorder) firstNew(old map[string]bool, since time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first time.Time
	for addr, at := range r.first {
		if !old[addr] && at.After(since) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first, !first.IsZero()
}

func waitInstances(ctx context.Context, w *registry.Watcher, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := w.WaitInstances(ctx, "inventory", func(ins []registry.Instance) bool { return len(inEnv(ins, "dev")) == n })
	if err != nil {
		return fmt.Errorf("inventory not at %d instances: %w", n, err)
	}
	return nil
}

// devProcess is a running `kplane dev`.
type devProcess struct {
	cmd        *exec.Cmd
	url, etcd  string
	sourceLine string
	exited     chan struct{}
}

func startDev(ctx context.Context, bin, dataDir, interval string) (*devProcess, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	etcd, _ := freeAddr()
	peer, _ := freeAddr()
	cmd := exec.Command(bin, "dev", "--listen", listen, "--data-dir", dataDir, "--dev-token", token,
		"--etcd-listen", etcd, "--etcd-peer-listen", peer)
	cmd.Env = os.Environ()
	if interval != "" {
		cmd.Env = append(cmd.Env, "KPLANE_AUTOSCALER_INTERVAL="+interval)
	}
	logf, err := os.Create(filepath.Join(filepath.Dir(dataDir), "kplane.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	banner := &bannerWriter{seen: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = banner, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &devProcess{cmd: cmd, url: "http://" + listen, etcd: etcd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	select {
	case <-banner.seen:
	case <-p.exited:
		return nil, fmt.Errorf("kplane dev exited; see %s", logf.Name())
	case <-time.After(60 * time.Second):
		p.stop()
		return nil, errors.New("kplane dev printed no banner in 60 s")
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
	log, _ := os.ReadFile(logf.Name())
	p.sourceLine = regexp.MustCompile(`source=\S+.*interval=\S+`).FindString(string(log))
	return p, nil
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

// stop interrupts kplane dev, which stops its instances, and waits.
func (p *devProcess) stop() {
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *devProcess) call(ctx context.Context, method, path, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, p.url+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	c := http.Client{Timeout: 60 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

func (p *devProcess) cooldownUp(ctx context.Context) (time.Duration, error) {
	var pol struct {
		CooldownUp string `json:"cooldownUp"`
	}
	if err := p.call(ctx, http.MethodGet, "/api/v1/policies/inventory", "", &pol); err != nil {
		return 0, err
	}
	return time.ParseDuration(pol.CooldownUp)
}

// scale scales inventory to n through the API, retrying while the
// orchestrator is busy with a scale of the autoscaler's.
func (p *devProcess) scale(ctx context.Context, n int) error {
	var err error
	for range 20 {
		var ans map[string]any
		if err = p.call(ctx, http.MethodPost, "/api/v1/services/inventory/scale", fmt.Sprintf(`{"instances": %d}`, n), &ans); err == nil {
			return nil
		}
		time.Sleep(time.Second)
	}
	return err
}

type decision struct {
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`
	Outcome string    `json:"outcome"`
	To      int       `json:"to"`
}

// firstUp returns the first executed scale-up of inventory evaluated after
// since.
func (p *devProcess) firstUp(ctx context.Context, since time.Time) (decision, error) {
	var body struct {
		Decisions []decision `json:"decisions"`
	}
	if err := p.call(ctx, http.MethodGet, "/api/v1/decisions?service=inventory&limit=500", "", &body); err != nil {
		return decision{}, err
	}
	for _, d := range slices.Backward(body.Decisions) {
		if d.Action == "up" && d.Outcome == "done" && d.Time.After(since) {
			return d, nil
		}
	}
	return decision{}, errors.New("no executed scale-up decision since the spike")
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// devInventory is the demo's inventory: kplane dev also runs inventory in
// HAWAII's alpha, qa and prod environments, which the autoscaler leaves be.
func devInventory(w *registry.Watcher) []registry.Instance {
	return inEnv(w.Instances("inventory"), "dev")
}

func inEnv(ins []registry.Instance, env string) []registry.Instance {
	var out []registry.Instance
	for _, in := range ins {
		if in.Env == env {
			out = append(out, in)
		}
	}
	return out
}
